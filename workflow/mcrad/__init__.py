"""mcrad: multicentre radiomics studies of head-and-neck cancer as one Snakemake workflow."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcrad")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0+unknown"

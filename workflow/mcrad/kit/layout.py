"""The layout of a site kit and of a site's return: paths inside the archives, not under a study's results folder
(those are mcrad.paths)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcrad.paths import BundleLayout


@dataclass(frozen=True)
class _Archive:
    """A folder that travels as one archive, with the sha256 of its other members in manifest.json."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


class KitPaths(_Archive, BundleLayout):
    """The members of a site kit (unpacked at `root`). Bundles, harmoniser and Nyul landmarks sit where Paths puts
    them in a study, so a site run's rules read them from here with the same calls."""

    @property
    def record(self) -> Path:
        """Study name, training centres, endpoints, models and bundle hashes."""
        return self.root / "kit.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock.json"

    @property
    def config_template(self) -> Path:
        return self.root / "config" / "site.yaml"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    def params(self, name: str) -> Path:
        """A pyradiomics parameter file, by its file name."""
        return self.root / "params" / name

    @property
    def harmoniser(self) -> Path:
        return self.root / "harmonise" / "combat.json"

    @property
    def nyul_standard(self) -> Path:
        return self.root / "preprocess" / "nyul.json"


class ReturnPaths(_Archive):
    """The members of a site's return (`mcrad kit run`), relative to the return's root."""

    @property
    def record(self) -> Path:
        """Study, centre, kit and bundle hashes, stage, what is shared, counts."""
        return self.root / "return.json"

    def predictions(self, endpoint: str) -> Path:
        return self.root / "predictions" / f"{endpoint}.tsv"

    def metrics(self, endpoint: str) -> Path:
        return self.root / "metrics" / f"{endpoint}.tsv"

    def paired(self, endpoint: str) -> Path:
        return self.root / "metrics" / f"{endpoint}_paired.tsv"

    def calibration(self, endpoint: str) -> Path:
        return self.root / "metrics" / f"{endpoint}_calibration.tsv"

    @property
    def qc_summary(self) -> Path:
        return self.root / "qc_summary.tsv"

    @property
    def feature_summary(self) -> Path:
        return self.root / "feature_summary.tsv"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

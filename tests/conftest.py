from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: reference data nobody here wrote. Missing in CI is a failure, never a skip."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_DATA} is missing: CI must run with ../shared beside the clone")
        pytest.skip(f"{SHARED_DATA} not present (reference-data tests need ../shared/data)")
    return SHARED_DATA


@pytest.fixture()
def demo_config() -> dict:
    with open(REPO / "config" / "config.yaml") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="session")
def rscript() -> str:
    """Rscript with pROC and sva (Debian r-cran-proc, r-bioc-sva): trusted references, required in CI."""
    import shutil
    import subprocess

    exe = shutil.which("Rscript")
    ok = exe and subprocess.run([exe, "-e", "library(pROC); library(sva); library(survival)"],
                                capture_output=True).returncode == 0
    if not ok:
        if os.environ.get("CI"):
            pytest.fail("Rscript with pROC, sva and survival is missing; `make test` installs them as root")
        pytest.skip("R reference packages not installed (apt-get install r-cran-proc r-bioc-sva r-cran-survival)")
    return exe


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    """A small synthetic study run once with `snakemake` for all end-to-end tests."""
    from helpers import STUDY, root, run_study

    work = tmp_path_factory.mktemp("study")
    run_study(STUDY, work)
    return root(work)


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> dict:
    """The lean tiny study (helpers.TINY_BASE: 3 centres x 16 synthetic cases given as a sheet, C1 trains, C2 and C3
    external), run once up to the binary endpoint's metrics: the site-kit tests' all-in-one study, and the built
    study a copy of which the negative-controls test adds its rules to."""
    from helpers import TINY_BASE, TINY_SYNTH, run_study
    from mcrad.synth import make_cohort

    work = tmp_path_factory.mktemp("kit")
    synth = work / "synth"
    cohort = make_cohort(TINY_SYNTH, 7, synth).astype(str)
    cfg = {**TINY_BASE, "cohort": {"sheet": str(synth / "cohort.tsv")}, "design": {"train": ["C1"],
                                                                                    "external": ["C2", "C3"]}}
    run_study(cfg, work / "all", targets=[Path("validation/nodal_metastasis/metrics.tsv")])
    return {"work": work, "synth": synth, "cohort": cohort, "config": cfg, "workdir": work / "all",
            "root": work / "all" / "results" / TINY_BASE["study"]["name"]}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marks into groups
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n N --dist loadgroup` (what `make test` runs) each test module stays whole on one worker (its
    module fixtures, an Orthanc server or a SLURM cluster, start once and its tests keep their order), and the
    modules that use a costly session study share one worker, so that each study is built once."""
    shared: dict[str, str] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        study = next((name for name in ("study", "tiny_study") if name in item.fixturenames), None)
        if study and shared.setdefault(module, study) != study:
            raise pytest.UsageError(f"{module} uses both session studies: split it, so that each is built once")
    for item in items:
        module = item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(shared.get(module, module)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist turns the groups into node-id suffixes; where it does not (pytest-xdist issue 1386: pytest 9.2's
    structured node ids), every study would be rebuilt on each worker and module fixtures split, so stop."""
    if node.config.getvalue("dist") == "loadgroup" and any("@" not in nodeid for nodeid in ids):
        pytest.exit("--dist loadgroup did not group the tests (pytest-xdist 3.8 needs pytest < 9.2)", returncode=4)

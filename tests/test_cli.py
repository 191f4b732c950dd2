import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mcrad import __version__
from mcrad.cli import main

DEMO = str(Path(__file__).resolve().parent.parent / "config" / "config.yaml")


def test_version_comes_from_the_package_metadata():
    out = subprocess.run([sys.executable, "-m", "mcrad.cli", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"mcrad {__version__}" and __version__ != "0+unknown"


def test_check_accepts_the_demo_config(capsys):
    assert main(["check", DEMO]) == 0
    assert "synthetic demo cohort" in capsys.readouterr().out


def test_check_reports_a_bad_config_without_a_traceback(tmp_path, capsys):
    cfg = yaml.safe_load(open(DEMO))
    cfg["harmonise"] = {"covariates": ["nodal_metastasis"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["check", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcrad: error:") and "is an endpoint" in err and "Traceback" not in err


@pytest.mark.e2e
def test_a_study_config_replaces_the_demo_config_instead_of_merging_into_it():
    """--configfile must not inherit demo-only options (the demo's prospective centre, deep models)."""
    from helpers import REPO, SNAKEMAKE

    def jobs(*args: str) -> str:
        # --forceall: the full job list even where an earlier `make demo` left results/ behind
        proc = subprocess.run([str(SNAKEMAKE), "-n", "--forceall", *args], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    demo, tiny = jobs(), jobs("--configfile", "tests/configs/tiny.yaml")
    assert "predict_prospective" in demo and "deep_train" in demo
    assert "predict_prospective" not in tiny and "deep_train" not in tiny

import subprocess
import sys
from pathlib import Path

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

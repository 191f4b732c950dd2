from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def test_conda_env_pins_equal_the_lock_file():
    lock = {line.strip() for line in (REPO / "requirements.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")}
    env = yaml.safe_load((REPO / "envs" / "mcrad.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) == lock
    assert "python=3.11" in env["dependencies"]
    assert any(p.startswith("torch==2.13.0") for p in pip), "torch stays pinned"

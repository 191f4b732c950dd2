"""Determinism and resume: a second run of the session study from an empty folder, killed part-way and resumed,
ends byte-identical to the first (one run checks both, the most expensive e2e test)."""
from __future__ import annotations

import copy
import filecmp
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO, SNAKEMAKE, STUDY, root

pytestmark = pytest.mark.e2e

OUTPUTS = ["features/raw.tsv", "features/harmonised.tsv", "harmonise/combat.json", "qc/ingest.tsv",
           "validation/nodal_metastasis/metrics.tsv", "validation/nodal_metastasis/predictions.tsv",
           "validation/nodal_metastasis/paired_delong.tsv", "validation/grade/metrics.tsv",
           "validation/grade/predictions.tsv", "validation/os/metrics.tsv", "report/figures/roc_nodal_metastasis.png",
           *(f"models/{e}/{m}/{f}" for e in ("nodal_metastasis", "grade", "os")
             for m in ("clinical", "radiomics", "nomogram") for f in ("model.pkl", "meta.json", "manifest.json"))]


def assert_same(a: Path, b: Path) -> None:
    different = [f for f in OUTPUTS if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert different == []


def test_a_second_run_killed_and_resumed_is_byte_identical_to_the_first(study, tmp_path):
    """Every output is recomputed after the kill except the first feature shards, which are compared too (through
    features/raw.tsv): the second run reproduces the first byte for byte, and the resume redoes only what is
    missing."""
    cfg = copy.deepcopy(STUDY)
    cfg["study"]["results"] = str(tmp_path / "results")
    (tmp_path / "config.yaml").write_text(__import__("yaml").safe_dump(cfg))
    cmd = [str(SNAKEMAKE), "--cores", "2", "--configfile", str(tmp_path / "config.yaml")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    shards = root(tmp_path) / "shards" / "features"
    deadline = time.time() + 300
    while time.time() < deadline and not (shards.is_dir() and len(list(shards.glob("*.tsv"))) >= 2):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job tree, as a node failure would
    proc.wait()
    assert shards.is_dir() and len(list(shards.glob("*.tsv"))) >= 2, "the run was not killed part-way"
    subprocess.run([*cmd, "--unlock"], cwd=REPO, check=True, capture_output=True)
    plan = subprocess.run([*cmd, "--rerun-incomplete", "--dry-run", "--quiet", "rules"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout
    full = subprocess.run([*cmd, "--rerun-incomplete", "--dry-run", "--forceall", "--quiet", "rules"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout

    def jobs(text: str) -> int:
        return int(next(line.split()[-1] for line in text.splitlines() if line.startswith("total")))

    assert "synth_cohort" not in plan, "finished jobs are not redone"
    assert jobs(plan) < jobs(full)
    subprocess.run([*cmd, "--rerun-incomplete"], cwd=REPO, check=True, capture_output=True)
    assert_same(study, root(tmp_path))

"""Small test images shared by several test modules."""
from __future__ import annotations

import copy
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from mcrad.endpoints import endpoint
from mcrad.model.registry import MODELS

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def write_pair(directory: Path, name: str, shape=(20, 24, 24), spacing=(1.0, 1.0, 2.0), radius_vox=5,
               value=50.0, seed=0) -> tuple[Path, Path]:
    """A small noisy image with a spherical mask, written as NIfTI; returns (image, mask) paths."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    c = [s // 2 for s in shape]
    sphere = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= radius_vox ** 2
    arr = rng.normal(0, 10, shape) + np.where(sphere, value, -50.0)
    img = sitk.GetImageFromArray(arr.astype(np.int16))
    img.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(sphere.astype(np.uint8))
    mask.CopyInformation(img)
    directory.mkdir(parents=True, exist_ok=True)
    ip, mp = directory / f"{name}_ct.nii.gz", directory / f"{name}_mask.nii.gz"
    sitk.WriteImage(img, str(ip))
    sitk.WriteImage(mask, str(mp))
    return ip, mp


STUDY = {
    "study": {"name": "e2e", "seed": 11},
    "cohort": {"sheet": None, "synthetic": {"centres": 3, "patients_per_centre": [80, 40, 40],
                                             "field_of_view_mm": 56}},
    "design": {"train": ["C1"], "external": ["C2", "C3"]},
    "endpoints": [{"name": "nodal_metastasis", "column": "nodal_metastasis"},
                  {"name": "grade", "type": "multiclass", "column": "grade", "classes": ["G1", "G2", "G3"],
                   "ordinal": True},
                  {"name": "os", "type": "survival", "column": "os_event", "time": "os_months", "times": [24]}],
    "preprocess": {"spacing_mm": [1.5, 1.5, 1.5]},
    "model": {"outer_folds": 5, "inner_folds": 3},
    "execution": {"shard_size": 20},
    # a few-second deep stage, so the e2e study has deep/<endpoint>/features_<centre>.tsv for the model stage
    "deep": {"activate": True, "crop_voxels": 12, "width": 4, "embedding_size": 4, "epochs": 3, "folds": 2,
             "device": "cpu", "threads": 1},
}


# The lean tiny study (tests/configs/tiny.yaml's cohort, given as a sheet): the site-kit tests' all-in-one study
# (conftest's `tiny_study`), which the negative-controls test copies and adds its rules to.
TINY_SYNTH = {"centres": 3, "patients_per_centre": 16, "field_of_view_mm": 56}
TINY_BASE = {"study": {"name": "kitstudy", "seed": 7}, "endpoints": [{"name": "nodal_metastasis",
                                                                      "column": "nodal_metastasis"}],
             "preprocess": {"spacing_mm": [1.5, 1.5, 1.5]}, "model": {"outer_folds": 3, "inner_folds": 3},
             # lean for CI: one shard per centre, no contour-robustness re-extraction, no QC pictures
             "features": {"robustness": {"activate": False}}, "ingest": {"qc_png": False},
             "execution": {"shard_size": 16}}


def model_options(**overrides) -> dict:
    """The model options the workflow passes (the schema's defaults), with a test's overrides."""
    from mcrad.config import load_config

    cfg = load_config(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    return {**cfg["model"], **overrides}


def run_study(cfg: dict, workdir: Path, expect_ok: bool = True,
              targets: list[Path] = ()) -> subprocess.CompletedProcess:
    """Run the study of `cfg` in `workdir` with `snakemake`: all of it, or only what `targets` (paths relative to
    the study's results folder) need."""
    cfg = copy.deepcopy(cfg)
    cfg["study"]["results"] = str(workdir / "results")
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_file = workdir / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg))
    wanted = [str(workdir / "results" / cfg["study"]["name"] / t) for t in targets]
    # targets first: --configfile takes every argument after it
    proc = subprocess.run([str(SNAKEMAKE), *wanted, "--cores", "2", "--configfile", str(cfg_file)],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    if expect_ok and proc.returncode != 0:
        logs = "\n".join(f"== {p}\n{p.read_text()[-3000:]}" for p in (workdir / "results").rglob("*.log"))
        pytest.fail(f"snakemake failed:\n{proc.stderr[-5000:]}\n{logs}")
    return proc


def run_killed_and_resumed(cfg: dict, workdir: Path) -> tuple[subprocess.CompletedProcess, int, int]:
    """Run the study of `cfg` in `workdir`, kill its whole job tree (as a node failure would) once two feature shards
    are written, unlock and resume with --rerun-incomplete. Returns the resumed run, the number of jobs the resume
    planned and the number a run from scratch plans."""
    import signal
    import time

    cfg = copy.deepcopy(cfg)
    cfg["study"]["results"] = str(workdir / "results")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(SNAKEMAKE), "--cores", "2", "--configfile", str(workdir / "config.yaml")]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    shards = workdir / "results" / cfg["study"]["name"] / "shards" / "features"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (shards.is_dir() and len(list(shards.glob("*.tsv"))) >= 2):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert shards.is_dir() and len(list(shards.glob("*.tsv"))) >= 2, "the run was not killed part-way"
    subprocess.run([*cmd, "--unlock"], cwd=REPO, check=True, capture_output=True)

    def planned(*extra: str) -> int:
        out = subprocess.run([*cmd, "--rerun-incomplete", "--dry-run", "--quiet", "rules", *extra], cwd=REPO,
                             capture_output=True, text=True, check=True, env=env).stdout
        return int(next(line.split()[-1] for line in out.splitlines() if line.startswith("total")))

    left, everything = planned(), planned("--forceall")
    resumed = subprocess.run([*cmd, "--rerun-incomplete"], cwd=REPO, capture_output=True, text=True, env=env)
    assert resumed.returncode == 0, resumed.stderr[-5000:]
    return resumed, left, everything


def root(workdir: Path, name: str = "e2e") -> Path:
    return workdir / "results" / name


# STUDY turns on a tiny deep stage, so the nodal endpoint has the deep and fusion models as well
NODAL_MODELS = endpoint({"name": "nodal_metastasis", "column": "nodal_metastasis"}).model_names(deep_active=True)


def training_artefacts(r: Path) -> list[Path]:
    files = [Path("features/harmonised/train.tsv"), Path("features/raw/C1.tsv"), Path("harmonise/combat.json"),
             Path("models/nodal_metastasis/internal_predictions.tsv"), Path("deep/nodal_metastasis/features_C1.tsv"),
             Path("models/nodal_metastasis/internal_predictions_fusion.tsv")]
    files += [Path(f"models/nodal_metastasis/{name}/{f}") for name in NODAL_MODELS
              for f in ("model.pkl", "meta.json", "manifest.json")]
    for ep in ("grade", "os"):  # the multi-class and survival endpoints: clinical, radiomics, nomogram
        files += [Path(f"models/{ep}/internal_predictions.tsv")]
        files += [Path(f"models/{ep}/{name}/{f}") for name in MODELS
                  for f in ("model.pkl", "meta.json", "manifest.json")]
    return files


def assert_identical(a: Path, b: Path, files: list[Path]) -> None:
    for f in files:
        assert (a / f).is_file() and (b / f).is_file(), f
        assert filecmp.cmp(a / f, b / f, shallow=False), f"{f} differs"


def ingest_cases(tmp_path: Path, cases: dict, strict: bool = False, **ingest):
    """Ingest {patient_id: (image, mask)} of one centre "A" through a sheet in `tmp_path`, with the tiny study's
    ingest options (overridden by `ingest`), into tmp_path/out."""
    import pandas as pd
    from mcrad.config import load_config
    from mcrad.ingest import ingest_shard
    from mcrad.paths import Paths

    rows = [{"patient_id": pid, "centre": "A", "image": str(i), "mask": str(m)} for pid, (i, m) in cases.items()]
    sheet = tmp_path / "cohort.tsv"
    pd.DataFrame(rows).to_csv(sheet, sep="\t", index=False)
    opts = load_config({**STUDY, "ingest": ingest})["ingest"]
    return ingest_shard(pd.DataFrame(rows), sheet, list(cases), Paths(tmp_path / "out"), strict, opts)

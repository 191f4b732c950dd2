"""How long Snakemake takes to build the DAG and dry-run a large study (no images are processed).

Usage: .venv/bin/python benchmarks/scale_dag.py [--cases 1000 10000] [--shard-size 20]
Makes a cohort sheet of N cases over 10 centres (every row points at the same small image and mask, which is
all a dry run needs), then times `snakemake --dry-run` (parse, sheet validation, DAG, job plan).
Target (issue 9): 10,000 cases in under 60 s.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

REPO = Path(__file__).resolve().parent.parent


def make_study(tmp: Path, n_cases: int, shard_size: int) -> Path:
    image = sitk.Image([8, 8, 8], sitk.sitkInt16)
    sitk.WriteImage(image, str(tmp / "ct.nii.gz"))
    sitk.WriteImage(sitk.Image([8, 8, 8], sitk.sitkUInt8), str(tmp / "mask.nii.gz"))
    rng = np.random.default_rng(0)
    centres = [f"S{k:02d}" for k in range(10)]
    sheet = pd.DataFrame({
        "patient_id": [f"P{i:06d}" for i in range(n_cases)], "centre": [centres[i % 10] for i in range(n_cases)],
        "image": "ct.nii.gz", "mask": "mask.nii.gz", "age": rng.integers(40, 80, n_cases),
        "sex": rng.choice(["M", "F"], n_cases), "t_stage": rng.integers(1, 5, n_cases),
        "hpv": rng.choice(["positive", "negative"], n_cases), "smoking": rng.choice(["never", "current"], n_cases),
        "nodal_metastasis": rng.integers(0, 2, n_cases)})
    sheet.to_csv(tmp / "cohort.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["study"].update(name=f"scale{n_cases}", results=str(tmp / "results"))
    cfg["cohort"] = {"sheet": str(tmp / "cohort.tsv")}
    cfg["design"] = {"train": centres[:1], "external": centres[1:]}
    cfg["execution"] = {"shard_size": shard_size}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "config.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--shard-size", type=int, default=20)
    args = ap.parse_args()
    snakemake = Path(sys.executable).parent / "snakemake"
    for n in args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = make_study(Path(tmp), n, args.shard_size)
            start = time.perf_counter()
            out = subprocess.run([str(snakemake), "--dry-run", "--quiet", "rules", "--cores", "2", "--configfile",
                                  str(cfg)], cwd=REPO, capture_output=True, text=True, check=True).stdout
            seconds = time.perf_counter() - start
            total = next(line.split()[-1] for line in out.splitlines() if line.startswith("total"))
            print(f"{n} cases, shard size {args.shard_size}: {total} jobs planned, dry run {seconds:.1f} s")


if __name__ == "__main__":
    main()

"""How long Snakemake takes to build the DAG and dry-run a large study (no images are processed).

Usage: .venv/bin/python benchmarks/scale_dag.py [--cases 1000 10000] [--shard-size 20] [--smoke]
Makes a cohort sheet of N cases over 10 centres (every row points at the same small image and mask, which is
all a dry run needs; clinical columns and the demo config's three endpoints, drawn at random), then times
`snakemake --dry-run` (parse, sheet validation, DAG, job plan) of the demo config on that sheet.
--smoke: 100 cases only (the suite's size).
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
        # the demo config's endpoints: binary, multi-class (grade) and survival (os_event, os_months)
        "nodal_metastasis": rng.integers(0, 2, n_cases), "grade": rng.choice(["G1", "G2", "G3"], n_cases),
        "os_months": rng.uniform(1, 84, n_cases).round(2), "os_event": rng.integers(0, 2, n_cases)})
    sheet.to_csv(tmp / "cohort.tsv", sep="\t", index=False)
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["study"].update(name=f"scale{n_cases}", results=str(tmp / "results"))
    cfg["cohort"] = {"sheet": str(tmp / "cohort.tsv")}
    cfg["design"] = {"train": centres[:1], "external": centres[1:]}
    cfg["execution"] = {"shard_size": shard_size}
    # Snakemake runs in the temporary folder (--directory): the parameter file by its absolute path
    cfg["features"]["params"] = str(REPO / cfg["features"]["params"])
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "config.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--shard-size", type=int, default=20)
    ap.add_argument("--smoke", action="store_true", help="100 cases only (the suite's size)")
    args = ap.parse_args()
    snakemake = Path(sys.executable).parent / "snakemake"
    for n in [100] if args.smoke else args.cases:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = make_study(Path(tmp), n, args.shard_size)
            start = time.perf_counter()
            # --directory: Snakemake's own state (.snakemake/) goes to the temporary folder, not the repo
            proc = subprocess.run([str(snakemake), "--snakefile", str(REPO / "Snakefile"), "--directory", tmp,
                                   "--dry-run", "--quiet", "rules", "--cores", "2", "--configfile", str(cfg)],
                                  cwd=REPO, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(f"snakemake --dry-run failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
            out = proc.stdout
            seconds = time.perf_counter() - start
            total = next(line.split()[-1] for line in out.splitlines() if line.startswith("total"))
            print(f"{n} cases, shard size {args.shard_size}: {total} jobs planned, dry run {seconds:.1f} s")


if __name__ == "__main__":
    main()

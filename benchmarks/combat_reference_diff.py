"""Largest difference between `mcrad harmonise` and R neuroCombat's reference outputs, per configuration.

Usage: .venv/bin/python benchmarks/combat_reference_diff.py [--smoke]   (needs ../shared/data/combat_reference)
--smoke runs the same six configurations (the whole check takes a few seconds).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from mcrad.cli import main as mcrad

RUNS = {"parametric_unadjusted": [], "parametric_adjusted": ["--covariates", "pheno"],
        "nonparametric_adjusted": ["--covariates", "pheno", "--nonparametric"],
        "parametric_adjusted_noeb": ["--covariates", "pheno", "--no-eb"],
        "parametric_adjusted_meanonly": ["--covariates", "pheno", "--mean-only"],
        "parametric_adjusted_batchref": ["--covariates", "pheno", "--ref-batch", "1"]}
REF = Path(__file__).resolve().parents[2] / "shared" / "data" / "combat_reference"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="the suite's size (the same as the full check)")
    ap.parse_args()
    data = pd.read_csv(REF / "testdata.csv")
    with tempfile.TemporaryDirectory() as d:
        for name, args in RUNS.items():
            t = data.T.reset_index(drop=True)
            t.columns = [f"f{j}" for j in range(t.shape[1])]
            t.insert(0, "batch", [1] * 5 + [2] * 5)
            if "pheno" in args:
                t.insert(1, "pheno", [1, 0] * 5)
            t.to_csv(f"{d}/in.tsv", sep="\t", index=False)
            rc = mcrad(["harmonise", "--features", f"{d}/in.tsv", "--batch-col", "batch", "--out", f"{d}/out.tsv",
                        *args])
            if rc:
                raise SystemExit(rc)
            ours = pd.read_csv(f"{d}/out.tsv", sep="\t").drop(columns=["batch", "pheno"], errors="ignore").to_numpy()
            exp = pd.read_csv(REF / "outputs" / f"testdata_combat_{name}_r.csv").T.to_numpy()
            print(f"{name}: max |ours - R| = {np.abs(ours - exp).max():.2e}")


if __name__ == "__main__":
    main()

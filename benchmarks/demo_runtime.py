"""Time the demo study from scratch (fresh results folder) and summarise Snakemake's per-job benchmarks.

Usage: .venv/bin/python benchmarks/demo_runtime.py [--cores 2] [--config config/config.yaml] [--smoke]
Prints the wall time of the whole run and, per rule, the number of jobs, summed seconds and peak RSS.
Snakemake runs in a temporary folder (results and .snakemake/ there), removed afterwards.
--smoke: instead, the tiny test study (tests/configs/tiny.yaml) shrunk further so that it runs in well under a
minute on 2 cores: one training centre of 16 small cases in one shard, one endpoint, 2 x 2 folds, no deep stage,
no robustness filter, no QC pictures.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from mcrad.config import load_config
from mcrad.paths import Paths

REPO = Path(__file__).resolve().parent.parent


def smoke_config() -> dict:
    """Most of the time of so small a study is each job's start (Python and its libraries): few jobs, then."""
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["cohort"]["synthetic"].update(centres=1, patients_per_centre=16)
    cfg["design"] = {"train": ["C1"], "external": []}
    cfg["model"].update(outer_folds=2, inner_folds=2, lasso_C=[0.1, 1.0])
    cfg["execution"] = {"shard_size": 100}
    cfg["ingest"] = {"qc_png": False}
    cfg["features"] = {"robustness": {"activate": False}}
    cfg["deep"] = {"activate": False}
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", default="2")
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--smoke", action="store_true", help="a tiny study without the deep stage (the suite's size)")
    args = ap.parse_args()
    cfg = smoke_config() if args.smoke else yaml.safe_load(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cfg.setdefault("study", {})["results"] = str(Path(tmp) / "results")
        # Snakemake runs in the temporary folder: repo-relative files by their absolute path
        features = cfg.setdefault("features", {})
        features["params"] = str(REPO / features.get("params", "config/radiomics/ct_default.yaml"))
        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg))
        bin_dir = Path(sys.executable).parent  # the rules run `python -m mcrad.cli`: this environment's python
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        start = time.perf_counter()
        subprocess.run([str(bin_dir / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", tmp,
                        "--cores", args.cores, "--configfile", str(cfg_file), "--quiet", "rules"], cwd=REPO,
                       env=env, check=True)
        wall = time.perf_counter() - start
        bench = Paths.from_config(load_config(cfg)).benchmarks_dir
        rows = []
        for f in bench.rglob("*.tsv"):  # benchmarks/<rule>.tsv, or benchmarks/<rule>/<job>.tsv
            b = pd.read_csv(f, sep="\t")
            rows.append({"rule": f.stem if f.parent == bench else f.parent.name, "s": b["s"].sum(),
                         "max_rss_mb": b["max_rss"].max()})
        per_rule = pd.DataFrame(rows).groupby("rule").agg(jobs=("s", "size"), seconds=("s", "sum"),
                                                          peak_rss_mb=("max_rss_mb", "max"))
    print(f"{cfg['study']['name']} study ({cfg['cohort']['synthetic']}) on {args.cores} cores: {wall:.1f} s wall time")
    print(per_rule.round(1).to_string())


if __name__ == "__main__":
    main()

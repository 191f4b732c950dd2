"""Time the demo study from scratch (fresh results folder) and summarise Snakemake's per-job benchmarks.

Usage: .venv/bin/python benchmarks/demo_runtime.py [--cores 2] [--config config/config.yaml]
Prints the wall time of the whole run and, per rule, the number of jobs, summed seconds and peak RSS.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cores", default="2")
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        cfg.setdefault("study", {})["results"] = tmp
        cfg_file = Path(tmp) / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg))
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "snakemake"), "--cores", args.cores, "--configfile",
                        str(cfg_file), "--quiet", "rules"], cwd=REPO, check=True)
        wall = time.perf_counter() - start
        rows = []
        for f in (Path(tmp) / cfg["study"]["name"] / "benchmarks").rglob("*.tsv"):
            b = pd.read_csv(f, sep="\t")
            rows.append({"rule": f.parent.name, "s": b["s"].sum(), "max_rss_mb": b["max_rss"].max()})
        per_rule = pd.DataFrame(rows).groupby("rule").agg(jobs=("s", "size"), seconds=("s", "sum"),
                                                          peak_rss_mb=("max_rss_mb", "max"))
    print(f"demo study ({cfg['cohort']['synthetic']}) on {args.cores} cores: {wall:.1f} s wall time")
    print(per_rule.round(1).to_string())


if __name__ == "__main__":
    main()

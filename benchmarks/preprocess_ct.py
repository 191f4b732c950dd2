"""Time and peak memory of ingest + preprocess for one 512x512x150 CT case (target: < 3 s, < 2 GB).

Usage: .venv/bin/python benchmarks/preprocess_ct.py [--repeats 5] [--qc-png] [--smoke]
A synthetic int16 CT (0.98 x 0.98 x 3 mm, a 25 mm-radius tumour) is written as NIfTI; then, in a fresh process
each time, the ingest stage (read, checks, canonical copy) and the preprocess stage (crop to the ROI box + margin,
resample to config spacing, HU clip) run with the default config. Prints per-stage wall time and the peak RSS of
that process (ru_maxrss, which includes the Python interpreter and imported libraries).
--smoke: a 128x128x50 CT, run once (checks the script; its figures are not the targets').
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from mcrad.config import load_config
from mcrad.ingest import ingest_case
from mcrad.paths import Paths
from mcrad.preprocess import preprocess_case

SHAPE = (150, 512, 512)  # z, y, x
SMOKE_SHAPE = (50, 128, 128)
SPACING = (0.977, 0.977, 3.0)


def write_case(folder: Path, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    nz, ny, nx = shape
    z, y, x = np.ogrid[:nz, :ny, :nx]
    # at SHAPE: tumour centre (300, 220, 70), body of radius 220 around (256, 256)
    dist = np.sqrt(((x - nx * 300 // 512) * SPACING[0]) ** 2 + ((y - ny * 220 // 512) * SPACING[1]) ** 2
                   + ((z - nz * 70 // 150) * SPACING[2]) ** 2)
    body = ((x - nx // 2) ** 2 + (y - ny // 2) ** 2) < (nx * 220 // 512) ** 2
    arr = np.where(body, 40, -1000) + np.where(dist <= 25, 30, 0) + rng.normal(0, 15, shape)
    image = sitk.GetImageFromArray(arr.astype(np.int16))
    image.SetSpacing(SPACING)
    image.SetOrigin((-250.0, -250.0, -400.0))
    mask = sitk.GetImageFromArray((dist <= 25).astype(np.uint8))
    mask.CopyInformation(image)
    ip, mp = folder / "ct.nii.gz", folder / "ct_mask.nii.gz"
    sitk.WriteImage(image, str(ip), useCompression=True)
    sitk.WriteImage(mask, str(mp), useCompression=True)
    return ip, mp


def run_once(folder: Path, qc_png: bool) -> dict:
    """The measured part; runs in its own process so that ru_maxrss is this case's peak."""
    cfg = load_config({"study": {"name": "bench"}, "cohort": {"sheet": None},
                       "design": {"train": ["A"], "external": ["B"]}, "endpoints": [{"name": "y", "column": "y"}],
                       "ingest": {"qc_png": qc_png}})
    paths = Paths(folder / "out")
    row = pd.Series({"patient_id": "bench", "centre": "A", "image": str(folder / "ct.nii.gz"),
                     "mask": str(folder / "ct_mask.nii.gz")})
    t0 = time.perf_counter()
    ingest_case(row, folder / "sheet.tsv", paths, cfg["ingest"])
    t1 = time.perf_counter()
    pre = preprocess_case(row, cfg["preprocess"], paths)
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"ingest_s": t1 - t0, "preprocess_s": t2 - t1, "total_s": t2 - t0, "peak_rss_mb": peak_mb,
            "pre_size": pre["pre_size"], "spacing_mm": cfg["preprocess"]["spacing_mm"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--qc-png", action="store_true", help="also draw the ingest QC picture (off: pure compute)")
    ap.add_argument("--smoke", action="store_true", help="a 128x128x50 CT, one repeat (the suite's size)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--write", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape, repeats = (SMOKE_SHAPE, 1) if args.smoke else (SHAPE, args.repeats)
    if args.write:
        write_case(Path(args.write), shape)
        return
    if args.child:
        print(json.dumps(run_once(Path(args.child), args.qc_png)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        # in a child too: Linux carries ru_maxrss over fork+exec, so a big parent would inflate the children's peak
        smoke = ["--smoke"] if args.smoke else []
        subprocess.run([sys.executable, __file__, "--write", tmp, *smoke], check=True)
        runs = []
        for _ in range(repeats):
            cmd = [sys.executable, __file__, "--child", tmp] + (["--qc-png"] if args.qc_png else [])
            runs.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    print(f"CT {shape[2]}x{shape[1]}x{shape[0]} voxels, {SPACING} mm -> {runs[0]['spacing_mm']} mm, cropped "
          f"{runs[0]['pre_size']}; qc png: {args.qc_png}")
    for r in runs:
        print(f"ingest {r['ingest_s']:.2f} s + preprocess {r['preprocess_s']:.2f} s = {r['total_s']:.2f} s; "
              f"peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"median total {np.median([r['total_s'] for r in runs]):.2f} s (target < 3 s); "
          f"max peak RSS {max(r['peak_rss_mb'] for r in runs):.0f} MB (target < 2048 MB)")


if __name__ == "__main__":
    main()

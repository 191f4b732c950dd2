"""Feature-extraction throughput: the workflow's per-case path vs the plain pyradiomics batch CLI.

Usage: .venv/bin/python benchmarks/features_throughput.py [--cases 40] [--params config/radiomics/ct_default.yaml]
         [--smoke]

Both sides get the same synthetic CT cases (tumour + noise, 128x128x64 voxels) and the same parameter file, with
two jobs each, run once:
  workflow:    `mcrad features --shard ...` (what rule `features` runs: per-case cache key, NaN/QC-flag policy,
               one shard per job) on 2 shards in parallel;
  pyradiomics: `pyradiomics cases.csv --param X --jobs 2 -o out.csv -f csv`.
Throughput ratio = pyradiomics seconds / workflow seconds (>= 0.95: the wrapper costs at most 5%).
Peak memory per job: `/usr/bin/time -v` maximum RSS of one `mcrad extract` (and of pyradiomics on the same case)
on a 512x512x150 CT with a ~60 ml tumour.
--smoke: 4 cases of 64x64x32 voxels and a 128x128x50 CT for the memory figure (the suite's size; its figures are
not the targets').
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from mcrad.config import load_config
from mcrad.paths import Paths

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def write_case(path_image: Path, path_mask: Path, shape: tuple[int, int, int], radius: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [s / 2 for s in shape]
    r = np.sqrt(((z - c[0]) * 2) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)  # 2 mm slices, 1 mm in-plane
    tumour = r <= radius * (1 + 0.15 * np.sin(3 * np.arctan2(y - c[1], x - c[2])))
    arr = np.where(tumour, 40.0, -60.0) + rng.normal(0, 15, shape)
    image = sitk.GetImageFromArray(arr.astype(np.int16))
    image.SetSpacing((1.0, 1.0, 2.0))
    mask = sitk.GetImageFromArray(tumour.astype(np.uint8))
    mask.CopyInformation(image)
    path_image.parent.mkdir(parents=True, exist_ok=True)
    path_mask.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path_image))
    sitk.WriteImage(mask, str(path_mask))


def peak_rss_mb(cmd: list[str]) -> float:
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=REPO, capture_output=True, text=True, check=True)
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--params", default="config/radiomics/ct_default.yaml")
    ap.add_argument("--smoke", action="store_true", help="4 small cases, a small memory case (the suite's size)")
    args = ap.parse_args()
    n_cases, shape, big_shape, big_radius = (4, (32, 64, 64), (50, 128, 128), 12) if args.smoke else \
        (args.cases, (64, 128, 128), (150, 512, 512), 30)
    params = str(REPO / args.params)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "study"
        paths = Paths(root)
        pids = [f"P{i:03d}" for i in range(n_cases)]
        rows = []
        for i, pid in enumerate(pids):
            case = paths.case("A", pid)
            # tumour radius 14-20 voxels; 7-10 at the smoke size
            write_case(case.preprocess_image, case.roi("tumour"), shape, (14 + i % 7) * shape[0] / 64, i)
            rows.append({"Image": str(case.preprocess_image), "Mask": str(case.roi("tumour"))})
        pd.DataFrame(rows).to_csv(Path(tmp) / "cases.csv", index=False)
        shards = []
        for j, part in enumerate((pids[::2], pids[1::2])):
            f = Path(tmp) / f"shard{j}.tsv"
            pd.DataFrame({"patient_id": part, "centre": "A", "status": "ok", "failed_stage": "", "message": ""}
                         ).to_csv(f, sep="\t", index=False)
            shards.append(f)
        # the features and segment sections the workflow passes: the schema's defaults, ring off
        cfg = load_config({"study": {"name": "bench"}, "cohort": {"clinical": []},
                           "design": {"train": ["A"], "external": ["B"]}, "endpoints": [{"name": "y", "column": "y"}],
                           "features": {"params": str(params)}, "segment": {"peritumoral": {"activate": False}}})
        opts, seg = json.dumps(cfg["features"]), json.dumps(cfg["segment"])

        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-m", "mcrad.cli", "features", "--shard", str(s), "--options",
                                   opts, "--segment-options", seg, "--root", str(root), "--out",
                                   str(s.with_suffix(".out.tsv"))], cwd=REPO) for s in shards]
        assert all(p.wait() == 0 for p in procs)
        workflow_s = time.perf_counter() - start

        pyrad_cmd = [str(BIN / "pyradiomics"), str(Path(tmp) / "cases.csv"), "--param", params, "--jobs", "2",
                     "-o", str(Path(tmp) / "out.csv"), "-f", "csv"]
        start = time.perf_counter()
        subprocess.run(pyrad_cmd, cwd=REPO, check=True, capture_output=True)
        pyrad_s = time.perf_counter() - start
        ours = pd.concat([pd.read_csv(s.with_suffix(".out.tsv"), sep="\t") for s in shards])
        theirs = pd.read_csv(Path(tmp) / "out.csv")
        assert len(ours) == len(theirs) == n_cases and (ours["status"] == "ok").all()

        big_image, big_mask = Path(tmp) / "big/ct.nii.gz", Path(tmp) / "big/mask.nii.gz"
        write_case(big_image, big_mask, big_shape, big_radius, 0)
        ours_mb = peak_rss_mb([sys.executable, "-m", "mcrad.cli", "extract", "--image", str(big_image), "--mask",
                               str(big_mask), "--params", params, "--out", str(Path(tmp) / "big_ours.csv")])
        pd.DataFrame([{"Image": str(big_image), "Mask": str(big_mask)}]).to_csv(Path(tmp) / "big.csv", index=False)
        theirs_mb = peak_rss_mb([str(BIN / "pyradiomics"), str(Path(tmp) / "big.csv"), "--param", params,
                                 "-o", str(Path(tmp) / "big_out.csv"), "-f", "csv"])

    size = "x".join(map(str, shape[::-1]))
    print(f"cases: {n_cases} ({size}), params: {args.params}, 2 jobs each, one run")
    for name, s in (("workflow (mcrad features, 2 shards in parallel)", workflow_s),
                    ("pyradiomics batch CLI (--jobs 2)", pyrad_s)):
        print(f"{name:50s} {s:.1f} s = {n_cases / s:.2f} cases/s")
    print(f"throughput ratio workflow/pyradiomics: {pyrad_s / workflow_s:.3f} (target >= 0.95)")
    big = "x".join(map(str, big_shape[::-1]))
    print(f"peak RSS per job, {big} CT: mcrad extract {ours_mb:.0f} MB; pyradiomics CLI {theirs_mb:.0f} MB")


if __name__ == "__main__":
    main()

"""Time and peak memory of `mcrad discover` over a tree of many small DICOM files: first run and cached rerun.

Usage: .venv/bin/python benchmarks/discover_files.py [--files 20000] [--jobs 2] [--smoke]
Writes a synthetic tree (patients of one 8 x 8-pixel CT series of 49 slices + an RTSTRUCT, i.e. 50 files each;
half the patients in nested folders, half flat with extension-less names) to a temporary folder, then runs
`mcrad discover` in a fresh process twice with one header cache: the first run reads every header, the rerun only
stats the files. Prints files, wall time and the peak RSS of each run (the process and its header-reading
workers, ru_maxrss).
--smoke: 500 files (checks the script; its figures are not the targets').
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mcrad.dicomsynth import PHI, square, write_rtstruct, write_series

SLICES = 49
CHILD = """
import resource, sys
from mcrad.cli import main
rc = main(sys.argv[1:])
self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
kids_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"PEAK {self_kb} {kids_kb}")
sys.exit(rc)
"""


def make_tree(root: Path, files: int) -> int:
    patients = max(1, files // (SLICES + 1))
    for n in range(patients):
        phi = {**PHI, "PatientID": f"H{n:06d}"}
        flat = n % 2 == 1
        folder = root / ("flat" if flat else f"p{n:06d}/ct")
        series, frame, ref = write_series(folder, n=SLICES, rows=8, cols=8, phi=phi,
                                          name=f"IM{n:06d}_{{k:03d}}" if flat else "{k:03d}.dcm")
        write_rtstruct(folder / (f"RS{n:06d}" if flat else "../rs.dcm"), series, frame, ref,
                       {"GTV": [(20, square(2, 6))]}, phi=phi)
    return patients * (SLICES + 1)


def run(tree: Path, out: Path, cache: Path, jobs: int) -> tuple[float, float, str]:
    argv = ["discover", f"A={tree}", "--roi", "GTV", "--out", str(out), "--keep-ids", "--cache", str(cache),
            "--jobs", str(jobs)]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(proc.stdout + proc.stderr)
    peak = next(line for line in proc.stdout.splitlines() if line.startswith("PEAK")).split()
    return wall, max(int(peak[1]), int(peak[2])) / 1024, proc.stdout.splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        n = make_tree(tmp / "tree", 500 if a.smoke else a.files)
        print(f"wrote {n} DICOM files in {time.perf_counter() - start:.1f} s")
        for label in ("first run", "cached rerun"):
            wall, peak_mb, line = run(tmp / "tree", tmp / "sheet" / "cohort.tsv", tmp / "cache.sqlite", a.jobs)
            print(f"{label}: {wall:.2f} s wall, peak RSS {peak_mb:.0f} MB ({line})")


if __name__ == "__main__":
    main()

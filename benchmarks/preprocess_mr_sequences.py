"""Time and peak memory of ingest + preprocess for one two-sequence MR case of clinical size (T1 reference and a T2
moved by a known rigid motion), and the registration error against that motion.

Usage: .venv/bin/python benchmarks/preprocess_mr_sequences.py [--smoke]
T1: 256 x 256 x 60 at 0.9 x 0.9 x 3 mm; T2: 320 x 320 x 30 at 0.72 x 0.72 x 4.5 mm (an analytic head with a tumour,
T2 contrast inverted), the patient moved by 5 deg and (4.2, -3.4, 2.6) mm between them. Default MR config (N4,
z-score, 1 mm grid, registration defaults). Prints per-stage wall time, peak RSS of this process (ru_maxrss,
interpreter and libraries included) and the largest registration error over the ROI voxels.
--smoke: the same head at half the in-plane resolution (T1 128 x 128 x 60, T2 160 x 160 x 30), the suite's size.
"""
from __future__ import annotations

import argparse
import resource
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

MOTION = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, np.deg2rad(2.0), np.deg2rad(5.0), (4.2, -3.4, 2.6))


def acquire(size, spacing, contrast, moved: bool, seed: int) -> tuple[sitk.Image, sitk.Image]:
    """Analytic head (ellipsoid, tumour sphere, ventricle) seen on a grid centred on 0; `moved`: the voxel at q
    shows the anatomy at MOTION^-1(q)."""
    k, j, i = np.indices(size[::-1], dtype=np.float32)
    origin = [-(n - 1) / 2 * s for n, s in zip(size, spacing, strict=True)]
    q = np.stack([origin[0] + i * spacing[0], origin[1] + j * spacing[1], origin[2] + k * spacing[2]], axis=-1)
    if moved:  # inverse of p -> R p + t (centre 0): q -> R^T (q - t)
        r = np.array(MOTION.GetMatrix()).reshape(3, 3)
        q = (q - np.array(MOTION.GetTranslation())) @ r
    x, y, z = q[..., 0], q[..., 1], q[..., 2]
    head = (x / 80) ** 2 + (y / 95) ** 2 + (z / 70) ** 2 <= 1
    tumour = (x - 30) ** 2 + (y + 25) ** 2 + (z - 10) ** 2 <= 15 ** 2
    vent = ((x + 15) / 25) ** 2 + ((y - 20) / 12) ** 2 + ((z + 8) / 15) ** 2 <= 1
    value = np.where(tumour, contrast[1], np.where(vent, contrast[2], np.where(head, contrast[0], 0.0)))
    value = value + np.random.default_rng(seed).normal(0, 8, value.shape)
    image, mask = sitk.GetImageFromArray(value.astype(np.float32)), sitk.GetImageFromArray(tumour.astype(np.uint8))
    for im in (image, mask):
        im.SetSpacing(spacing)
        im.SetOrigin(origin)
    return image, mask


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="half the in-plane resolution (the suite's size)")
    args = ap.parse_args()
    k = 2 if args.smoke else 1  # in-plane: k times fewer voxels, k times larger, over the same field of view
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        t1, m1 = acquire((256 // k, 256 // k, 60), (0.9 * k, 0.9 * k, 3.0), (100.0, 300.0, 40.0), False, 1)
        t2, _ = acquire((320 // k, 320 // k, 30), (0.72 * k, 0.72 * k, 4.5), (250.0, 80.0, 400.0), True, 2)
        for name, im in (("t1", t1), ("mask", m1), ("t2", t2)):
            sitk.WriteImage(im, str(d / f"{name}.nii.gz"))
        cfg = load_config({"study": {"name": "bench"}, "cohort": {"sheet": "x.tsv", "sequences": ["T1", "T2"]},
                           "design": {"train": ["A"], "external": []},
                           "endpoints": [{"name": "n", "column": "n"}], "preprocess": {"modality": "MR"}})
        row = pd.Series({"patient_id": "p1", "centre": "A", "image": "t1.nii.gz", "mask": "mask.nii.gz",
                         "image_T2": "t2.nii.gz"})
        paths = Paths(d / "out")
        start = time.perf_counter()
        ingest_case(row, d / "cohort.tsv", paths, cfg["ingest"], ["T1", "T2"])
        ingest_s = time.perf_counter() - start
        start = time.perf_counter()
        qc = preprocess_case(row, cfg["preprocess"], paths, None, ["T1", "T2"], cfg["study"]["seed"])
        pre_s = time.perf_counter() - start
        case = paths.case("A", "p1")
        found = sitk.ReadTransform(str(case.preprocess_transform("T2")))
        ref_mask = sitk.ReadImage(str(case.preprocess_mask))
        roi = np.argwhere(sitk.GetArrayFromImage(ref_mask) > 0)[:, ::-1]
        points = [ref_mask.TransformIndexToPhysicalPoint(v) for v in roi[::5].tolist()]
        err = max(np.linalg.norm(np.subtract(found.TransformPoint(p), MOTION.TransformPoint(p))) for p in points)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"T1 {t1.GetSize()}, T2 {t2.GetSize()}")
        print(f"ingest {ingest_s:.2f} s; preprocess (N4 + z-score x2, registration, resampling) {pre_s:.2f} s; "
              f"peak RSS {peak_mb:.0f} MB; MI {qc['reg_T2_mi']:.3f}; max registration error in ROI {err:.2f} mm")


if __name__ == "__main__":
    main()

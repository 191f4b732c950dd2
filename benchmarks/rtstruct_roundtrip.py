"""Round trip mask -> RTSTRUCT -> mask: how faithfully each reader gives back what each producer meant.

Usage: .venv/bin/python benchmarks/rtstruct_roundtrip.py [--shapes 200] [--seed 0] [--smoke]
Random structures (mcrad.dicomsynth.random_shape: blobs, bars one to three voxels wide, holes, islands) on a
CT series of 10 x 40 x 40 voxels (0.8 x 0.8 x 2 mm) are written as RTSTRUCTs by four producers and read back by
three readers; prints a markdown table of Dice and volume ratio (read / source) per producer and reader, the table
docs/rtstruct_rasterisation.md quotes.
Producers: rt-utils 1.2.7 with its default voxel-centre contours (cv.CHAIN_APPROX_SIMPLE) and with every boundary
point (CHAIN_APPROX_NONE); marching squares at level 0.5 (contours half-way between voxel centres, what
scikit-image's find_contours gives); voxel-border outlines (marching squares on the mask upsampled 2x).
Readers: mcrad (centre inside or on the contour), the plain centre-inside rule (mcrad before 0.x.y, and most
point-in-polygon readers), rt-utils' own reader (cv.fillPoly on rounded vertices).
--smoke: 6 shapes (checks the script; its figures are not the table's).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from mcrad import dicom, dicomsynth
from mcrad.errors import CaseError

SIZE = (10, 40, 40)


def producers(root: Path, masks: dict[str, np.ndarray]) -> dict[str, Path]:
    series, frame, ref = dicomsynth.write_series(root / "ct", n=SIZE[0], rows=SIZE[1], cols=SIZE[2],
                                                 spacing=(0.8, 0.8, 2.0))
    out = {
        "rt-utils voxel-centre (default)": dicomsynth.rtutils_rtstruct(root / "ct", masks, root / "rtu.dcm"),
        "rt-utils voxel-centre, all points": dicomsynth.rtutils_rtstruct(root / "ct", masks, root / "rtu_all.dcm",
                                                                         approximate_contours=False),
    }
    for label, up, name in (("marching squares (half-voxel)", 1, "ms.dcm"), ("voxel-border outline", 2, "edge.dcm")):
        contours = {n: dicomsynth.iso_contours(m, upsample=up) for n, m in masks.items()}
        out[label] = dicomsynth.write_rtstruct(root / name, series, frame, ref, contours)
    return out


def read_all(reader: str, rt: Path, series_dir: Path, names: list[str]) -> dict[str, np.ndarray]:
    if reader == "rt-utils 1.2.7 reader":
        from rt_utils import RTStructBuilder

        rts = RTStructBuilder.create_from(str(series_dir), str(rt))
        return {n: np.transpose(rts.get_roi_mask_by_name(n), (2, 0, 1)) for n in names}
    image = dicom.read_series(series_dir, "bench").image
    ds = dicom.read_rtstruct(rt, "bench")
    numbers = {name: number for number, name in dicom.roi_names(ds).items()}
    tol = dicom.ON_CONTOUR_TOL_VOX if reader == "mcrad" else None
    out = {}
    for n in names:
        try:
            out[n] = sitk.GetArrayFromImage(dicom.rasterise(ds, {numbers[n]: n}, image, "bench", rt, tol)) > 0
        except CaseError:  # nothing inside any contour: an empty mask
            out[n] = np.zeros(SIZE, dtype=bool)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    n = 6 if a.smoke else a.shapes
    rng = np.random.default_rng(a.seed)
    masks = {f"S{i:03d}": dicomsynth.random_shape(rng, SIZE) for i in range(n)}
    readers = ["mcrad", "centre-inside only", "rt-utils 1.2.7 reader"]
    print(f"{n} random shapes (seed {a.seed}), {SIZE[0]}x{SIZE[1]}x{SIZE[2]} voxels; median source volume "
          f"{np.median([m.sum() for m in masks.values()]):.0f} voxels\n")
    print("| producer | reader | exact | Dice min | Dice median | volume ratio min | median | max |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for producer, rt in producers(Path(tmp), masks).items():
            for reader in readers:
                try:
                    got = read_all(reader, rt, Path(tmp) / "ct", list(masks))
                except Exception as exc:  # rt-utils refuses RTSTRUCTs without ContourImageSequence
                    print(f"| {producer} | {reader} | refuses to load ({str(exc)[:40]}) | | | | | |")
                    continue
                dice = [2 * (got[k] & m).sum() / (got[k].sum() + m.sum()) for k, m in masks.items()]
                ratio = [got[k].sum() / m.sum() for k, m in masks.items()]
                exact = sum(np.array_equal(got[k], m) for k, m in masks.items())
                print(f"| {producer} | {reader} | {exact}/{n} | {min(dice):.3f} | {np.median(dice):.3f} | "
                      f"{min(ratio):.3f} | {np.median(ratio):.3f} | {max(ratio):.3f} |")
        print(f"\n(all producers and readers: {time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()

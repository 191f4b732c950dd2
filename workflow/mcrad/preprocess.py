"""Preprocess: crop around the ROI, resample image and mask to a common spacing (IBSI-style grid alignment),
clip intensities."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.config import Paths
from mcrad.errors import CaseError

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


def crop_to_roi(image: sitk.Image, mask: sitk.Image, margin_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """Crop both to the mask's bounding box grown by `margin_mm`, clipped to the image."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    margin = [int(np.ceil(margin_mm / s)) for s in image.GetSpacing()]
    lo = [max(0, v - m) for v, m in zip((x, y, z), margin, strict=True)]
    hi = [min(n, v + s + m) for v, s, m, n in zip((x, y, z), (sx, sy, sz), margin, image.GetSize(), strict=True)]
    size = [h - low for h, low in zip(hi, lo, strict=True)]
    return sitk.RegionOfInterest(image, size, lo), sitk.RegionOfInterest(mask, size, lo)


def aligned_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> tuple[list[int], list[float]]:
    """Size and origin of a grid with `spacing` whose centre coincides with the image's centre (IBSI)."""
    old_sp, old_size = np.array(image.GetSpacing()), np.array(image.GetSize())
    new_sp = np.array(spacing, dtype=float)
    new_size = np.maximum(1, np.ceil(old_size * old_sp / new_sp)).astype(int)
    offset = (old_sp * (old_size - 1) - new_sp * (new_size - 1)) / 2.0
    origin = np.array(image.GetOrigin()) + np.array(image.GetDirection()).reshape(3, 3) @ offset
    return new_size.tolist(), origin.tolist()


def resample_pair(image: sitk.Image, mask: sitk.Image, spacing: tuple[float, float, float], interpolator: str,
                  mask_threshold: float) -> tuple[sitk.Image, sitk.Image]:
    size, origin = aligned_grid(image, spacing)
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetOrigin(origin)
    ref.SetDirection(image.GetDirection())
    lowest = float(sitk.GetArrayViewFromImage(image).min())
    img = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ref, sitk.Transform(), INTERPOLATORS[interpolator],
                        lowest, sitk.sitkFloat32)
    frac = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    return img, sitk.Cast(frac >= mask_threshold, sitk.sitkUInt8)


def preprocess_case(row: pd.Series, opts: dict, paths: Paths) -> dict[str, Any]:
    case = paths.case_dir(row["centre"], row["patient_id"])
    image = sitk.ReadImage(str(case / "ingest" / "image.nii.gz"))
    mask = sitk.ReadImage(str(case / "ingest" / "mask.nii.gz"))
    image, mask = crop_to_roi(image, mask, opts["crop_margin_mm"])
    image, mask = resample_pair(image, mask, tuple(opts["spacing_mm"]), opts["image_interpolator"],
                                opts["mask_threshold"])
    low, high = opts["intensity_clip"]
    image = sitk.Clamp(image, sitk.sitkFloat32, float(low), float(high))
    n_roi = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    if n_roi == 0:
        raise CaseError(row["patient_id"], str(case / "ingest" / "mask.nii.gz"),
                        f"ROI vanishes when resampled to {opts['spacing_mm']} mm (partial-volume threshold "
                        f"{opts['mask_threshold']})", "use a finer preprocess.spacing_mm or check the mask")
    out = case / "preprocess"
    out.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(out / "image.nii.gz"), useCompression=True)
    sitk.WriteImage(mask, str(out / "mask.nii.gz"), useCompression=True)
    return {"pre_size": "x".join(map(str, image.GetSize())), "pre_mask_voxels": n_roi}


def preprocess_shard(rows: pd.DataFrame, opts: dict, paths: Paths, strict: bool) -> pd.DataFrame:
    def inputs(r: pd.Series) -> list[Path]:
        d = paths.case_dir(r["centre"], r["patient_id"]) / "ingest"
        return [d / "image.nii.gz", d / "mask.nii.gz"]

    return run_stage(rows, "preprocess", lambda r: preprocess_case(r, opts, paths), inputs, paths,
                     __file__, opts, strict)

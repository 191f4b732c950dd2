"""Segment: regions of interest from the provided mask: the tumour itself and a peritumoral ring."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.errors import CaseError
from mcrad.paths import Paths


def roi_names(opts: dict) -> list[str]:
    return ["tumour"] + (["peritumoral"] if opts["peritumoral"]["activate"] else [])


def peritumoral_ring(image: sitk.Image, mask: sitk.Image, radius_mm: float, min_intensity: float | None
                     ) -> sitk.Image:
    """Voxels outside the tumour within `radius_mm` of it (physical distance), optionally without air."""
    dist = sitk.SignedMaurerDistanceMap(mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True,
                                        backgroundValue=0)
    ring = sitk.And(dist > 0, dist <= radius_mm)
    if min_intensity is not None:
        ring = sitk.And(ring, image >= min_intensity)
    ring = sitk.Cast(ring, sitk.sitkUInt8)
    ring.CopyInformation(mask)
    return ring


def roi_gate(roi: sitk.Image, opts: dict) -> str | None:
    """Why features cannot be extracted from this ROI (segment.min_voxels, segment.min_extent_voxels), or None."""
    arr = sitk.GetArrayViewFromImage(roi)
    where = np.nonzero(arr)
    n = int(where[0].size)
    if n == 0:
        return "is empty"
    extent = tuple(int(w.max() - w.min() + 1) for w in reversed(where))  # x, y, z
    if n < opts["min_voxels"]:
        return f"has {n} voxel(s), fewer than segment.min_voxels = {opts['min_voxels']}"
    if min(extent) < opts["min_extent_voxels"]:
        return (f"spans {'x'.join(map(str, extent))} voxels, thinner than segment.min_extent_voxels = "
                f"{opts['min_extent_voxels']} along an axis")
    return None


def segment_case(row: pd.Series, opts: dict, paths: Paths) -> dict[str, Any]:
    """The case's ROIs. A tumour ROI that fails the gate quarantines the case; a derived ROI (the ring) that
    fails it is still written, and the features stage gives it NaN features with a QC flag."""
    case = paths.case(row["centre"], row["patient_id"])
    image = sitk.ReadImage(str(case.preprocess_image))
    mask = sitk.ReadImage(str(case.preprocess_mask))
    problem = roi_gate(mask, opts)
    if problem:
        raise CaseError(row["patient_id"], str(case.preprocess_mask), f"tumour ROI {problem} after resampling",
                        "check the mask (a fragment or a stray mark?), or lower segment.min_voxels / "
                        "min_extent_voxels if ROIs this small are meant to be analysed")
    rois = {"tumour": mask}
    peri = opts["peritumoral"]
    if peri["activate"]:
        rois["peritumoral"] = peritumoral_ring(image, mask, peri["radius_mm"], peri["min_intensity"])
    case.segment_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, roi in rois.items():
        sitk.WriteImage(roi, str(case.roi(name)), useCompression=True)
        result[f"roi_{name}_voxels"] = int(np.count_nonzero(sitk.GetArrayViewFromImage(roi)))
    return result


def segment_shard(rows: pd.DataFrame, opts: dict, paths: Paths, strict: bool) -> pd.DataFrame:
    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case(r["centre"], r["patient_id"])
        return [case.preprocess_image, case.preprocess_mask]

    return run_stage(rows, "segment", lambda r: segment_case(r, opts, paths), inputs, paths,
                     __file__, opts, strict)

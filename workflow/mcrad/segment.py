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


def segment_case(row: pd.Series, opts: dict, paths: Paths) -> dict[str, Any]:
    case = paths.case(row["centre"], row["patient_id"])
    image = sitk.ReadImage(str(case.preprocess_image))
    mask = sitk.ReadImage(str(case.preprocess_mask))
    rois = {"tumour": mask}
    peri = opts["peritumoral"]
    if peri["activate"]:
        rois["peritumoral"] = peritumoral_ring(image, mask, peri["radius_mm"], peri["min_intensity"])
    case.segment_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for name, roi in rois.items():
        n = int(np.count_nonzero(sitk.GetArrayViewFromImage(roi)))
        if n == 0:
            raise CaseError(row["patient_id"], str(case.preprocess_mask), f"ROI '{name}' is empty",
                            "check the mask, or switch the peritumoral ring off (segment.peritumoral.activate)")
        sitk.WriteImage(roi, str(case.roi(name)), useCompression=True)
        result[f"roi_{name}_voxels"] = n
    return result


def segment_shard(rows: pd.DataFrame, opts: dict, paths: Paths, strict: bool) -> pd.DataFrame:
    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case(r["centre"], r["patient_id"])
        return [case.preprocess_image, case.preprocess_mask]

    return run_stage(rows, "segment", lambda r: segment_case(r, opts, paths), inputs, paths,
                     __file__, opts, strict)

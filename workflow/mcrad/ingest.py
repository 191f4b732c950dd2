"""Ingest: read each case's image and mask (NIfTI, NRRD or a DICOM series folder), check them, and write a
canonical copy (image as read, binary uint8 mask) plus a QC row."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import STATUS_COLUMNS, file_sha256, run_stage
from mcrad.cohort import resolve_path
from mcrad.config import Paths
from mcrad.errors import CaseError

GEOMETRY_TOL_MM = 1e-3


def read_image(path: Path, patient_id: str, what: str) -> sitk.Image:
    """Read a NIfTI/NRRD file, or the single DICOM series in a folder."""
    if not path.exists():
        raise CaseError(patient_id, str(path), f"{what} file not found", "correct the path in the cohort sheet")
    try:
        if path.is_dir():
            series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if len(series) != 1:
                raise CaseError(patient_id, str(path), f"{what} folder holds {len(series)} DICOM series, not one",
                                "point the sheet at a folder with exactly one series")
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), series[0]))
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown reader error"
        raise CaseError(patient_id, str(path), f"{what} cannot be read ({first})",
                        "re-export the file as NIfTI (.nii.gz) or NRRD, or check that it is not truncated") from exc


def check_pair(image: sitk.Image, mask: sitk.Image, patient_id: str, image_path: Path, mask_path: Path
               ) -> list[str]:
    """Raise CaseError for a pair that cannot be analysed; return warnings for one that can."""
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise CaseError(patient_id, str(image_path), f"image is not a 3D volume (size {image.GetSize()})",
                        "provide the full 3D series, not a single slice")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(patient_id, str(image_path), "image has several components per voxel (colour/vector)",
                        "provide a greyscale volume")
    if mask.GetDimension() != 3:
        raise CaseError(patient_id, str(mask_path), "mask is not 3D", "provide a 3D label volume")
    same = (mask.GetSize() == image.GetSize()
            and np.allclose(mask.GetSpacing(), image.GetSpacing(), atol=GEOMETRY_TOL_MM)
            and np.allclose(mask.GetOrigin(), image.GetOrigin(), atol=GEOMETRY_TOL_MM)
            and np.allclose(mask.GetDirection(), image.GetDirection(), atol=1e-4))
    if not same:
        raise CaseError(patient_id, str(mask_path),
                        f"mask is not on the image grid (mask size {mask.GetSize()}, spacing "
                        f"{tuple(round(s, 4) for s in mask.GetSpacing())}, origin "
                        f"{tuple(round(o, 3) for o in mask.GetOrigin())}; image size {image.GetSize()}, spacing "
                        f"{tuple(round(s, 4) for s in image.GetSpacing())}, origin "
                        f"{tuple(round(o, 3) for o in image.GetOrigin())})",
                        "export the mask on the grid of this image (same series)")
    arr = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(arr).all():
        raise CaseError(patient_id, str(image_path), f"image has {int((~np.isfinite(arr)).sum())} NaN/inf voxels",
                        "re-export the image; mcrad does not guess missing intensities")
    labels = np.unique(sitk.GetArrayViewFromImage(mask))
    if not (labels > 0).any():
        raise CaseError(patient_id, str(mask_path), "mask is empty (no voxel > 0)",
                        "check that the right mask file is listed, or remove the case")
    warnings = []
    if len(labels[labels > 0]) > 1:
        warnings.append(f"mask has labels {labels[labels > 0].tolist()}; all non-zero labels form the ROI")
    return warnings


def ingest_case(row: pd.Series, sheet_path: Path, paths: Paths) -> dict[str, Any]:
    pid = row["patient_id"]
    image_path, mask_path = resolve_path(row["image"], sheet_path), resolve_path(row["mask"], sheet_path)
    image = read_image(image_path, pid, "image")
    mask = read_image(mask_path, pid, "mask")
    warnings = check_pair(image, mask, pid, image_path, mask_path)
    binary = sitk.Cast(mask > 0, sitk.sitkUInt8)
    binary.CopyInformation(image)
    out = paths.case_dir(row["centre"], pid) / "ingest"
    out.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(out / "image.nii.gz"), useCompression=True)
    sitk.WriteImage(binary, str(out / "mask.nii.gz"), useCompression=True)
    stats = sitk.StatisticsImageFilter()
    stats.Execute(image)
    n_roi = int(np.count_nonzero(sitk.GetArrayViewFromImage(binary)))
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return {
        "size": "x".join(map(str, image.GetSize())),
        "spacing_mm": "x".join(f"{s:.4g}" for s in image.GetSpacing()),
        "pixel_type": image.GetPixelIDTypeAsString(),
        "intensity_min": float(stats.GetMinimum()), "intensity_max": float(stats.GetMaximum()),
        "mask_voxels": n_roi, "mask_volume_ml": round(n_roi * voxel_ml, 4),
        "warnings": "; ".join(warnings),
        "image_sha256": file_sha256(image_path), "mask_sha256": file_sha256(mask_path),
    }


def ingest_shard(sheet: pd.DataFrame, sheet_path: Path, patient_ids: list[str], paths: Paths, strict: bool
                 ) -> pd.DataFrame:
    rows = sheet.set_index("patient_id").loc[patient_ids].reset_index()
    rows = rows[["patient_id", "centre", "image", "mask"]].assign(status="ok", failed_stage="", message="")
    rows = rows[[*STATUS_COLUMNS, "image", "mask"]]

    def inputs(row: pd.Series) -> list[Path]:
        files = [resolve_path(row[c], sheet_path) for c in ("image", "mask")]
        for f, what in zip(files, ("image", "mask"), strict=True):
            if not f.exists():
                raise CaseError(row["patient_id"], str(f), f"{what} file not found",
                                "correct the path in the cohort sheet")
        return files

    return run_stage(rows, "ingest", lambda r: ingest_case(r, sheet_path, paths), inputs, paths,
                     __file__, {}, strict)

"""DICOM-SEG masks (highdicom): binary and fractional segmentations, segments chosen by label regex like RTSTRUCT
ROIs, placed on the image series through their source-instance references (a SEG drawn on another series is
quarantined, as an RTSTRUCT is)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mcrad.dicom import DicomSeries, matching_names
from mcrad.errors import CaseError

FRACTIONAL_THRESHOLD = 0.5  # a fractional (probability / occupancy) segment is inside from this value on


def read_seg(path: Path, patient_id: str):
    import highdicom as hd

    try:
        return hd.seg.segread(path)
    except (ValueError, AttributeError, KeyError, OSError) as exc:
        raise CaseError(patient_id, str(path), f"DICOM-SEG cannot be read ({type(exc).__name__}: {exc})",
                        "export the segmentation again (a DICOM-SEG drawn on the image series)") from exc


def segment_labels(seg) -> dict[int, str]:
    return {int(s.SegmentNumber): str(s.get("SegmentLabel", "")) for s in seg.SegmentSequence}


def select_segments(seg, pattern: str, patient_id: str, path: Path) -> dict[int, str]:
    return matching_names(segment_labels(seg), pattern, patient_id, path, "segment label", "SEG")


def seg_mask(seg, segments: dict[int, str], series: DicomSeries | None, image: sitk.Image, patient_id: str,
             path: Path) -> sitk.Image:
    """Binary uint8 mask on `image`'s grid: union of `segments` (fractional ones thresholded)."""
    if series is None or not series.sop_order:
        raise CaseError(patient_id, str(path), "a DICOM-SEG can only be placed on its DICOM image series",
                        "give the DICOM series the SEG was drawn on as the image")
    referenced = {str(s.SeriesInstanceUID) for s in seg.get("ReferencedSeriesSequence", [])}
    if referenced and series.series_uid not in referenced:
        raise CaseError(patient_id, str(path), "DICOM-SEG references another image series than the one given",
                        "pair the SEG with the series it was drawn on")
    try:
        pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=list(series.sop_order),
                                                   segment_numbers=sorted(segments), rescale_fractional=True)
    except (ValueError, KeyError) as exc:
        raise CaseError(patient_id, str(path), f"DICOM-SEG frames do not fit the image series ({exc})",
                        "pair the SEG with the series it was drawn on") from exc
    fractional = str(seg.get("SegmentationType", "BINARY")) == "FRACTIONAL"
    inside = (pixels >= FRACTIONAL_THRESHOLD) if fractional else (pixels > 0)
    mask = sitk.GetImageFromArray(np.any(inside, axis=-1).astype(np.uint8))
    if mask.GetSize() != image.GetSize():
        raise CaseError(patient_id, str(path), f"DICOM-SEG frames are {mask.GetSize()}, the image {image.GetSize()}",
                        "pair the SEG with the series it was drawn on")
    mask.CopyInformation(image)
    return mask

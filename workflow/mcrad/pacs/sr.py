"""What goes back to the archive: a DICOM Comprehensive 3D SR (a TID 1500 measurement report: per endpoint and
model the score as a numeric measurement, the locked threshold and the call, model and endpoint names, bundle
sha256, mcrad version and harmonisation as text items; evidence: the image series and the structure used), and
optionally a DICOM SEG of the scored ROI. UIDs derive from the study and the bundles, so a retried STOW-RS
stores the same instance, never a second one."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.sr.codedict import codes

from mcrad import __version__

SCHEME = "99MCRAD"  # local coding scheme for the items no standard code names
MANUFACTURER = "mcrad"


def derived_uid(*parts: str) -> str:
    """A DICOM UID (2.25 form) that is the same for the same parts: retries store the same instance."""
    digest = hashlib.sha256("\0".join(parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def code(value: str, meaning: str):
    from highdicom.sr import CodedConcept

    return CodedConcept(value=value, scheme_designator=SCHEME, meaning=meaning)


def text(name: str, value: str):
    from highdicom.sr import TextContentItem

    return TextContentItem(name=code(name, name.replace("_", " ")), value=str(value),
                           relationship_type="HAS PROPERTIES")


def group(endpoint: str, row: pd.Series, numeric: list[str], harmonisation: str, structure: str):
    """One measurement group: a locked model's result for the study."""
    import highdicom.sr as sr

    unit = codes.UCUM.NoUnits
    algorithm = sr.AlgorithmIdentification(name=f"mcrad {endpoint}/{row['model']}", version=__version__)
    measurements = [sr.Measurement(name=code(c, f"{endpoint} {c}"), value=float(row[c]), unit=unit,
                                   algorithm_id=algorithm)
                    for c in numeric if c in row and pd.notna(row[c])]
    g = sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=sr.TrackingIdentifier(identifier=f"{endpoint}/{row['model']}",
                                                  uid=derived_uid(row["bundle_sha256"], endpoint, row["model"])),
        algorithm_id=algorithm, measurements=measurements)
    items = {"endpoint": endpoint, "model": row["model"], "bundle_sha256": row["bundle_sha256"],
             "mcrad_version": __version__, "harmonisation": harmonisation, "structure": structure}
    if "positive" in row and pd.notna(row["positive"]):
        items["call"] = "positive" if int(row["positive"]) else "negative"
    if "predicted" in row:
        items["call"] = str(row["predicted"])
    for name, value in items.items():
        g[0].ContentSequence.append(text(name, value))
    return g


def build_sr(images: list[pydicom.Dataset], structure: pydicom.Dataset, results: dict[str, pd.DataFrame],
             numeric: dict[str, list[str]], harmonisation: str, structure_label: str, bundles_key: str):
    """The measurement report of one study (every endpoint and model scored), referencing its evidence."""
    import highdicom.sr as sr

    study_uid = images[0].StudyInstanceUID
    observer = sr.ObserverContext(observer_type=codes.DCM.Device,
                                  observer_identifying_attributes=sr.DeviceObserverIdentifyingAttributes(
                                      uid=derived_uid("mcrad", __version__), name="mcrad"))
    groups = [group(ep, row, numeric[ep], harmonisation, structure_label)
              for ep, table in results.items() for _, row in table.iterrows()]
    report = sr.MeasurementReport(observation_context=sr.ObservationContext(observer_device_context=observer),
                                  procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=groups,
                                  title=codes.DCM.ImagingMeasurementReport)
    return sr.Comprehensive3DSR(
        evidence=[*images, structure], content=report[0], series_instance_uid=derived_uid(study_uid, bundles_key, "sr"),
        series_number=9901, sop_instance_uid=sr_uid(study_uid, bundles_key), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, series_description="mcrad locked model scores")


def sr_uid(study_uid: str, bundles_key: str) -> str:
    return derived_uid(study_uid, bundles_key, "sr-instance")


def build_seg(images: list[pydicom.Dataset], mask: np.ndarray, bundles_key: str):
    """A binary DICOM SEG of the scored ROI (z, y, x on the image series, slices ordered as `images`): the
    provided (manual) structure as the features saw it, on the image grid."""
    import highdicom as hd

    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="mcrad ROI",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    study_uid = images[0].StudyInstanceUID
    return hd.seg.Segmentation(
        source_images=images, pixel_array=mask.astype(np.uint8), segmentation_type="BINARY",
        segment_descriptions=[description], series_instance_uid=derived_uid(study_uid, bundles_key, "seg"),
        series_number=9902, sop_instance_uid=derived_uid(study_uid, bundles_key, "seg-instance"), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name="mcrad", software_versions=__version__,
        device_serial_number="0", omit_empty_frames=False)


def read_scores(ds: pydicom.Dataset) -> list[dict[str, str | float]]:
    """The results an SR carries, one dict per measurement group (text items and numeric measurements)."""
    out = []
    for item in ds.ContentSequence:
        for grp in getattr(item, "ContentSequence", []):
            if grp.ValueType != "CONTAINER":
                continue
            found: dict[str, str | float] = {}
            for c in grp.ContentSequence:
                name = c.ConceptNameCodeSequence[0].CodeValue
                if c.ValueType == "TEXT":
                    found[name] = c.TextValue
                elif c.ValueType == "NUM":
                    mv = c.MeasuredValueSequence[0]
                    found[name] = float(getattr(mv, "FloatingPointValue", mv.NumericValue))
            if "model" in found:
                out.append(found)
    return out


def save(ds: pydicom.Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path

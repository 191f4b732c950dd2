"""QIDO-RS search with the config's filters, choice of the image series and the structure, WADO-RS retrieval into
the workspace. Identifying values are read here and go no further than the workspace (deleted after the study)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom

from mcrad import dicom
from mcrad.errors import McradError

STUDY_UID, STUDY_DATE, STUDY_DESCRIPTION = "0020000D", "00080020", "00081030"
SERIES_UID, MODALITY, N_INSTANCES = "0020000E", "00080060", "00201209"
STRUCTURES = ("RTSTRUCT", "SEG")


def value(item: dict, tag: str) -> str | None:
    """The first value of a DICOM JSON attribute (QIDO-RS answer), or None."""
    values = item.get(tag, {}).get("Value") or [None]
    first = values[0]
    return None if first is None else str(first)


def search_filters(modality: str, since: str | None) -> dict[str, str]:
    filters = {"ModalitiesInStudy": modality}
    if since:
        filters["StudyDate"] = f"{since}-"
    return filters


def matches(item: dict, description_regex: str) -> bool:
    """The study description filter (full match, case-insensitive; an empty description is the empty string)."""
    return re.fullmatch(description_regex, value(item, STUDY_DESCRIPTION) or "", re.IGNORECASE) is not None


def find_studies(client, query: dict, since: str | None) -> list[str]:
    """Study instance UIDs of the studies the query selects, oldest first (a stable order)."""
    items = client.search_for_studies(search_filters=search_filters(query["modality"], since),
                                      fields=[STUDY_DESCRIPTION, STUDY_DATE], limit=query["limit"])
    chosen = [i for i in items if matches(i, query["study_description"])]
    chosen.sort(key=lambda i: (value(i, STUDY_DATE) or "", value(i, STUDY_UID) or ""))
    return [value(i, STUDY_UID) for i in chosen if value(i, STUDY_UID)]


@dataclass(frozen=True)
class StudySeries:
    image: str | None             # the largest series of the modality
    structures: tuple[str, ...]   # RTSTRUCT and SEG series


def study_series(client, study_uid: str, modality: str) -> StudySeries:
    items = client.search_for_series(study_instance_uid=study_uid, fields=[N_INSTANCES])
    images = [(int(value(i, N_INSTANCES) or 0), value(i, SERIES_UID)) for i in items if value(i, MODALITY) == modality]
    structures = tuple(value(i, SERIES_UID) for i in items if value(i, MODALITY) in STRUCTURES)
    return StudySeries(max(images)[1] if images else None, structures)


def retrieve_series(client, study_uid: str, series_uid: str, folder: Path) -> list[pydicom.Dataset]:
    """Every instance of a series, written to `folder` (one file each)."""
    folder.mkdir(parents=True, exist_ok=True)
    instances = client.retrieve_series(study_uid, series_uid)
    for k, ds in enumerate(instances):
        ds.save_as(folder / f"{k:05d}.dcm", enforce_file_format=True)
    return instances


def structure_time(ds: pydicom.Dataset) -> str:
    date = getattr(ds, "StructureSetDate", "") or getattr(ds, "ContentDate", "") or ""
    time = getattr(ds, "StructureSetTime", "") or getattr(ds, "ContentTime", "") or ""
    return f"{date}{time}"


def references(ds: pydicom.Dataset, image_series: str) -> bool:
    """Does a structure set or SEG name the image series (or carry no series reference at all)?"""
    found = {str(e.value) for e in ds.iterall() if e.keyword == "SeriesInstanceUID"} - {ds.SeriesInstanceUID}
    return not found or image_series in found


def choose_structure(candidates: list[pydicom.Dataset], image_series: str, pattern: str) -> pydicom.Dataset | None:
    """The newest structure set (or SEG) on the image series with an ROI matching `pattern`."""
    usable = []
    for ds in candidates:
        if not references(ds, image_series):
            continue
        names = dicom.roi_names(ds) if ds.Modality == "RTSTRUCT" else {
            int(s.SegmentNumber): str(s.SegmentLabel) for s in getattr(ds, "SegmentSequence", [])}
        if any(re.fullmatch(pattern, n, re.IGNORECASE) for n in names.values()):
            usable.append(ds)
    return max(usable, key=structure_time) if usable else None


def retrieve_study(client, study_uid: str, modality: str, pattern: str, folder: Path
                   ) -> tuple[list[pydicom.Dataset], pydicom.Dataset, Path, Path]:
    """(image instances, structure instance, image folder, structure file) of one study, in `folder`. A study
    without an image series or a matching structure is a McradError (reported; the next poll looks again)."""
    series = study_series(client, study_uid, modality)
    if series.image is None:
        raise McradError(f"no {modality} series in the study")
    structures = []
    for k, uid in enumerate(series.structures):
        structures += retrieve_series(client, study_uid, uid, folder / f"structure{k}")
    chosen = choose_structure(structures, series.image, pattern)
    if chosen is None:
        raise McradError(f"no RTSTRUCT or SEG with an ROI matching {pattern!r} on the {modality} series "
                         f"({len(structures)} structure instance(s) found)")
    images = retrieve_series(client, study_uid, series.image, folder / "image")
    mask_file = folder / "structure.dcm"
    chosen.save_as(mask_file, enforce_file_format=True)
    return images, chosen, folder / "image", mask_file

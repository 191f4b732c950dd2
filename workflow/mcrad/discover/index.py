"""The header index of a DICOM tree: every file's header fields discovery needs, read once (pydicom,
`stop_before_pixels`), in parallel, and cached by path, size and mtime so a rerun reads only new or changed files.

The cache holds PatientIDs (discovery groups by them), so it lives outside the study's results (by default under
the user's cache folder, readable by the owner only) and never travels with a study.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from mcrad.dicom import NON_IMAGE_MODALITIES

CACHE_VERSION = 1
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
SERIAL_BELOW = 256  # fewer files than this are read in this process (starting workers costs more)


def default_cache() -> Path:
    """~/.cache/mcrad/discover.sqlite (or under $XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mcrad" / "discover.sqlite"


def _text(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    return "\\".join(map(str, value)) if isinstance(value, pydicom.multival.MultiValue) else str(value)


def _floats(ds: pydicom.Dataset, keyword: str) -> list[float]:
    try:
        return [float(v) for v in ds.get(keyword, [])]
    except (TypeError, ValueError):
        return []


def _rtstruct_fields(ds: pydicom.Dataset) -> dict:
    return {
        "rois": [str(r.get("ROIName", "")) for r in ds.get("StructureSetROISequence", [])],
        "ref_series": sorted({str(s.SeriesInstanceUID)
                              for f in ds.get("ReferencedFrameOfReferenceSequence", [])
                              for st in f.get("RTReferencedStudySequence", [])
                              for s in st.get("RTReferencedSeriesSequence", []) if "SeriesInstanceUID" in s}),
        "ref_frames": sorted({str(f.get("FrameOfReferenceUID", ""))
                              for f in ds.get("ReferencedFrameOfReferenceSequence", [])} - {""}),
        "ref_sops": sorted({str(i.ReferencedSOPInstanceUID)
                            for rc in ds.get("ROIContourSequence", []) for c in rc.get("ContourSequence", [])
                            for i in c.get("ContourImageSequence", [])})[:4],
        "when": _text(ds, "StructureSetDate") + _text(ds, "StructureSetTime"),
    }


def _seg_fields(ds: pydicom.Dataset) -> dict:
    return {
        "rois": [str(s.get("SegmentLabel", "")) for s in ds.get("SegmentSequence", [])],
        "ref_series": sorted({str(s.SeriesInstanceUID) for s in ds.get("ReferencedSeriesSequence", [])
                              if "SeriesInstanceUID" in s}),
        "ref_frames": [_text(ds, "FrameOfReferenceUID")] if "FrameOfReferenceUID" in ds else [],
        "ref_sops": [],
        "when": _text(ds, "ContentDate") + _text(ds, "ContentTime"),
    }


def read_record(path: str) -> dict | None:
    """The fields of one file discovery uses, or None for a file that is not DICOM (or is a DICOMDIR).
    Identifying values are kept only as the grouping key (`patient`); nothing else identifying is read."""
    if os.path.basename(path).upper() == "DICOMDIR":
        return None
    try:
        with open(path, "rb") as fh:
            if fh.read(132)[128:132] != b"DICM":
                return None
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, AttributeError, KeyError, TypeError):
        return None
    sop_class = str(ds.file_meta.get("MediaStorageSOPClassUID", "")) if "file_meta" in dir(ds) else ""
    if sop_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        return None
    modality = _text(ds, "Modality")
    record = {
        "patient": _text(ds, "PatientID"), "study": _text(ds, "StudyInstanceUID"),
        "series": _text(ds, "SeriesInstanceUID"), "sop": _text(ds, "SOPInstanceUID"),
        "frame": _text(ds, "FrameOfReferenceUID"), "modality": modality,
        "description": _text(ds, "SeriesDescription")[:64], "protocol": _text(ds, "ProtocolName")[:64],
        "image_type": _text(ds, "ImageType"), "position": _floats(ds, "ImagePositionPatient"),
        "orientation": _floats(ds, "ImageOrientationPatient"), "frames": int(ds.get("NumberOfFrames", 1) or 1),
    }
    if modality == "RTSTRUCT":
        record.update(kind="rtstruct", **_rtstruct_fields(ds))
    elif modality == "SEG":
        record.update(kind="seg", **_seg_fields(ds))
    elif modality not in NON_IMAGE_MODALITIES and "Rows" in ds:
        record["kind"] = "image"
    else:
        record["kind"] = "other"
    return record


@dataclass(frozen=True)
class CrawlStats:
    files: int
    read: int
    dicom: int


def walk(root: Path) -> Iterator[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every regular file under `root`, any depth, any name (hidden folders too)."""
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file():
                        st = entry.stat()
                        yield entry.path, st.st_size, st.st_mtime_ns
        except OSError:
            continue


class HeaderIndex:
    """path -> record for one tree, backed by an SQLite cache keyed by (path, size, mtime_ns)."""

    def __init__(self, cache: Path | None):
        self.cache = cache
        self.db = None
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fresh = not cache.exists()
            self.db = sqlite3.connect(cache)
            if fresh:
                os.chmod(cache, 0o600)
            self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                            "version INTEGER, record TEXT)")

    def _cached(self, root: Path) -> dict[str, tuple[int, int, str]]:
        if self.db is None:
            return {}
        prefix = str(root).rstrip(os.sep) + os.sep
        rows = self.db.execute("SELECT path, size, mtime, record FROM files WHERE version = ? AND "
                               "substr(path, 1, ?) = ?", (CACHE_VERSION, len(prefix), prefix))
        return {p: (s, m, r) for p, s, m, r in rows}

    def scan(self, root: Path, jobs: int = 1) -> tuple[dict[str, dict], CrawlStats]:
        """Records of every DICOM file under `root` (non-DICOM files and DICOMDIRs left out)."""
        root = root.resolve()
        cached = self._cached(root)
        files = list(walk(root))
        todo = [(p, s, m) for p, s, m in files if cached.get(p, (None, None))[:2] != (s, m)]
        paths = [p for p, _, _ in todo]
        if len(paths) < SERIAL_BELOW or jobs <= 1:
            fresh = list(map(read_record, paths))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                fresh = list(pool.map(read_record, paths, chunksize=max(1, len(paths) // (jobs * 8))))
        records = {p: json.loads(r) for p, (_, _, r) in cached.items() if r != "null"}
        for (p, _, _), rec in zip(todo, fresh, strict=True):
            records.pop(p, None)
            if rec is not None:
                records[p] = rec
        seen = {p for p, _, _ in files}
        if self.db is not None:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                                    [(p, s, m, CACHE_VERSION, json.dumps(rec)) for (p, s, m), rec in
                                     zip(todo, fresh, strict=True)])
                self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in cached if p not in seen])
        records = {p: r for p, r in records.items() if p in seen}
        return records, CrawlStats(files=len(files), read=len(todo), dicom=len(records))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

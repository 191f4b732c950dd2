"""A site's return: what leaves the hospital. Tables only (TSV, JSON, an HTML page of tables): predictions with the
sheet's pseudonymous ids (none with --aggregate-only), metrics, paired tests and calibration tables, QC counts,
per-feature summaries and the site report, with a manifest. Every member is checked before packing and again on
collection: an allow-list of names and kinds, and content checks for images, voxel arrays, paths, DICOM tags,
DICOM UIDs and identifying DICOM attribute names."""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from mcrad import __version__
from mcrad.errors import McradError
from mcrad.files import read_table, write_json, write_table
from mcrad.kit import RETURN_FORMAT, manifest
from mcrad.kit.layout import KitPaths, ReturnPaths
from mcrad.paths import Paths

ALLOWED = re.compile(r"^(manifest\.json|return\.json|report\.html|qc_summary\.tsv|feature_summary\.tsv|"
                     r"predictions/[A-Za-z0-9][A-Za-z0-9_-]*\.tsv|"
                     r"metrics/[A-Za-z0-9][A-Za-z0-9_-]*(_paired|_calibration)?\.tsv)$")
MAGIC = {b"\x1f\x8b": "gzip data (a compressed image?)", b"\x93NUMPY": "a numpy array", b"\x89PNG": "a PNG image",
         b"\xff\xd8\xff": "a JPEG image", b"PK\x03\x04": "a zip archive", b"NRRD": "an NRRD image"}
PATH = re.compile(r"(?:[A-Za-z]:\\|\\\\|~/|(?<![\w.<])/(?:[\w .-]+/)+[\w.-]*|\b[\w.-]+/[\w.-]+\.\w{2,4}\b)")
IMAGE_FILE = re.compile(r"\.(nii(\.gz)?|nrrd|nhdr|mha|mhd|dcm|ima|npy|npz|png|jpe?g|tiff?)\b", re.IGNORECASE)
DICOM_TAG = re.compile(r"\(\s*[0-9A-Fa-f]{4}\s*,\s*[0-9A-Fa-f]{4}\s*\)|\b[0-9A-Fa-f]{4}\|[0-9A-Fa-f]{4}\b")
DICOM_UID = re.compile(r"(?<![\d.])\d+(?:\.\d+){4,}(?![\d.])")
DICOM_NAMES = re.compile(r"Patient(?:Name|ID|BirthDate|Sex|Age|Address)|AccessionNumber|InstitutionName|"
                         r"(?:Study|Series|SOP)InstanceUID|ReferringPhysician|StudyDate|OtherPatientIDs")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*$")
MAX_COLUMNS = 64     # a return's tables are narrow; a wide numeric table is a voxel or feature dump
MAX_JSON_NUMBERS = 256


def _numbers_in(obj) -> int:
    if isinstance(obj, list):
        return sum(_numbers_in(v) for v in obj) + sum(isinstance(v, (int, float)) for v in obj)
    if isinstance(obj, dict):
        return sum(_numbers_in(v) for v in obj.values())
    return 0


def check_member(name: str, data: bytes) -> list[str]:
    """Why this member must not leave a site (empty when it may)."""
    if not ALLOWED.match(name):
        return [f"{name}: not a kind a return may hold (TSV, JSON and HTML tables named as mcrad writes them)"]
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            return [f"{name}: {what}"]
    if data[128:132] == b"DICM" or data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return [f"{name}: a DICOM or NIfTI file"]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{name}: binary content"]
    if name == manifest.MANIFEST:  # member names and their sha256, nothing else
        try:
            files = json.loads(text)["files"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return [f"{name}: not a manifest"]
        return [f"{name}: lists {m!r}, not a member a return may hold" for m, h in files.items()
                if not ALLOWED.match(m) or m == manifest.MANIFEST or not re.fullmatch(r"[0-9a-f]{64}", str(h))]
    problems = []
    for pattern, what in ((IMAGE_FILE, "an image file name"), (PATH, "a file path"), (DICOM_TAG, "a DICOM tag"),
                          (DICOM_UID, "a DICOM UID"), (DICOM_NAMES, "an identifying DICOM attribute")):
        hit = pattern.search(text)
        if hit:
            problems.append(f"{name}: {what} ({hit.group(0)[:40]!r})")
    if name.endswith(".html") and re.search(r"<img|data:|<script|<object|<embed|<iframe", text, re.IGNORECASE):
        problems.append(f"{name}: an embedded image, script or object")
    if name.endswith(".json"):
        try:
            numbers = _numbers_in(json.loads(text))
        except json.JSONDecodeError:
            return [*problems, f"{name}: not valid JSON"]
        if numbers > MAX_JSON_NUMBERS:
            problems.append(f"{name}: an array of {numbers} numbers (voxels?)")
    if name.endswith(".tsv"):
        header = text.split("\n", 1)[0].split("\t")
        if len(header) > MAX_COLUMNS:
            problems.append(f"{name}: {len(header)} columns (a voxel or feature dump?)")
        bad = [c for c in header if not COLUMN.match(c)]
        if bad:
            problems.append(f"{name}: column name(s) {bad[:3]} that are not names (an array of values?)")
    return problems


def check_folder(folder: Path) -> list[str]:
    return [p for m in [*manifest.members(folder), manifest.MANIFEST] if (folder / m).is_file()
            for p in check_member(m, (folder / m).read_bytes())]


def pack_return(cfg: dict, kit: KitPaths, paths: Paths, centre: str, out: Path, aggregate_only: bool) -> dict:
    """Pack the site run's return into `out` after checking every member; return its record."""
    from mcrad.endpoints import endpoints

    kit_record = json.loads(kit.record.read_text())
    stage = "external" if centre in cfg["design"]["external"] else "prospective"
    qc = read_table(paths.site_qc_summary)
    with tempfile.TemporaryDirectory(prefix="mcrad-return-") as tmp:
        ret = ReturnPaths(Path(tmp) / "return")
        for ep in endpoints(cfg):
            if stage == "external":
                own = lambda df: df[(df["centre"] == centre) & (df["stage"] == "external")]  # noqa: E731
                write_table(own(read_table(paths.metrics(ep.name))), ret.metrics(ep.name))
                write_table(own(read_table(paths.paired(ep.name))), ret.paired(ep.name))
                calibration = paths.curves(ep.name, "calibration")
                if calibration.is_file():
                    write_table(read_table(calibration), ret.calibration(ep.name))
                if not aggregate_only:
                    write_table(own(read_table(paths.predictions(ep.name))), ret.predictions(ep.name))
            elif not aggregate_only:
                write_table(read_table(paths.prospective_predictions(ep.name)), ret.predictions(ep.name))
        shutil.copyfile(paths.site_qc_summary, ret.qc_summary)
        shutil.copyfile(paths.site_feature_summary, ret.feature_summary)
        shutil.copyfile(paths.site_report, ret.report)
        record = {"format": RETURN_FORMAT, "study": kit_record["study"], "centre": centre, "stage": stage,
                  "aggregate_only": aggregate_only, "mcrad": __version__, "bundles": kit_record["bundles"],
                  "kit_sha256": manifest.digest(manifest.verify(kit.root, "kit")),
                  "cases": int(qc.loc[qc["item"] == "cases in the sheet", "n"].sum())}
        write_json(record, ret.record)
        manifest.build(ret.root)
        problems = check_folder(ret.root)
        if problems:
            raise McradError("the return would carry what must not leave the site, refused:\n  "
                             + "\n  ".join(problems) + "\nFix: report this to the study team (a bug of mcrad).")
        manifest.pack(ret.root, Path(out))
    return record


def open_return(archive: Path, into: Path) -> tuple[dict, Path]:
    """Unpack a return, verify its manifest and check every member; (its record, its folder)."""
    folder = manifest.unpack(archive, into, "return")
    manifest.verify(folder, f"return {archive}")
    problems = check_folder(folder)
    if problems:
        raise McradError(f"return {archive} holds what must not leave a site, refused:\n  " + "\n  ".join(problems))
    return json.loads(ReturnPaths(folder).record.read_text()), folder


def list_return(archive: Path) -> pd.DataFrame:
    """Every member of a return with its size and any problem (what a site checks before sending it)."""
    with tempfile.TemporaryDirectory(prefix="mcrad-list-") as tmp:
        folder = manifest.unpack(archive, Path(tmp), "return")
        rows = [{"member": m, "bytes": (folder / m).stat().st_size,
                 "problems": "; ".join(check_member(m, (folder / m).read_bytes()))}
                for m in [*manifest.members(folder), manifest.MANIFEST] if (folder / m).is_file()]
    return pd.DataFrame(rows, columns=["member", "bytes", "problems"])

"""Cohort discovery: from one DICOM tree per centre to a cohort sheet (`mcrad discover`).

Crawl each tree (headers only, cached), group files by patient, study and series, link every RTSTRUCT / SEG to the
series it was drawn on, choose each patient's case or say why not, join the clinical spreadsheet, and write the
sheet (pseudonymous ids) and `discovery.tsv` beside it: one row per patient found, included or excluded.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrad.cohort import ID_PATTERN
from mcrad.discover.clinical import read_clinical, unmatched_lines
from mcrad.discover.index import CrawlStats, HeaderIndex
from mcrad.discover.pairing import Pairing, PairingOptions, Series, group, pair
from mcrad.errors import McradError
from mcrad.files import write_table

SERIES_LIST_HEADER = "# mcrad series list: one DICOM file per line"
DISCOVERY_COLUMNS = ["patient_id", "centre", "status", "reason", "detail", "rois_seen", "image_series",
                     "localizers", "notes"]


@dataclass
class Summary:
    """What a run found, without identifiers: counts per centre, exclusions by reason, unmatched clinical lines."""
    crawl: dict[str, CrawlStats] = field(default_factory=dict)
    included: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    clinical_unmatched_lines: list[int] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"centre {c}: {s.files} files, {s.dicom} DICOM, {s.read} headers read (the rest from the cache); "
               f"{self.included.get(c, 0)} patients included" for c, s in self.crawl.items()]
        out += [f"excluded: {n} x {reason}" for reason, n in sorted(self.excluded.items())]
        if self.clinical_unmatched_lines:
            out.append(f"clinical rows matching no patient in the trees: lines {self.clinical_unmatched_lines}")
        return out


def series_list(paths: list[str], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(SERIES_LIST_HEADER + "\n" + "\n".join(sorted(paths)) + "\n")
    return out


class ImageFolders:
    """Whether a series can be named by its folder: every image file under the folder belongs to it, once."""

    def __init__(self, records: dict[str, dict]):
        images = sorted((p, r["series"]) for p, r in records.items() if r["kind"] == "image")
        self.paths = [p for p, _ in images]
        self.series = [s for _, s in images]

    def exclusive(self, s: Series) -> Path | None:
        folder = os.path.commonpath(s.files) if len(s.files) > 1 else os.path.dirname(s.files[0])
        prefix = folder.rstrip(os.sep) + os.sep
        lo = bisect.bisect_left(self.paths, prefix)
        hi = bisect.bisect_left(self.paths, prefix[:-1] + chr(ord(os.sep) + 1))
        inside = self.series[lo:hi]
        return Path(folder) if len(inside) == len(s.files) and set(inside) == {s.uid} else None


def _image_cell(s: Series, folders: ImageFolders, lists: Path, name: str) -> str:
    """The series' folder, or a series list beside the sheet (relative to it: the sheet and its lists move
    together)."""
    folder = folders.exclusive(s)
    if folder:
        return str(folder)
    series_list(s.files, lists / f"{name}.series")
    return str(Path(lists.name) / f"{name}.series")


def _row(pid: str, centre: str, p: Pairing, series: dict[str, Series], status: str) -> dict:
    return {"patient_id": pid, "centre": centre, "status": status, "reason": p.reason, "detail": p.detail,
            "rois_seen": "; ".join(p.rois_seen), "image_series": sum(not s.localizer for s in series.values()),
            "localizers": sum(s.localizer for s in series.values()), "notes": "; ".join(p.notes)}


def discover(centres: dict[str, Path], opts: PairingOptions, out: Path, pseudonymise, clinical: Path | None = None,
             id_col: str | None = None, cache: Path | None = None, jobs: int = 1) -> Summary:
    """Write the cohort sheet `out`, `discovery.tsv` beside it and, for series that share a folder with others,
    series lists in `<sheet stem>.series/`. `pseudonymise(centre, hospital_id)` gives each patient's sheet id."""
    for centre, root in centres.items():
        if not ID_PATTERN.match(centre):
            raise McradError(f"centre name {centre!r} is not a valid id (letters, digits, '.', '_', '-'). Fix: "
                             "rename it in CENTRE=DIR")
        if not Path(root).is_dir():
            raise McradError(f"DICOM tree {root} of centre {centre} is not a folder. Fix: give CENTRE=DIR")
    table = read_clinical(clinical, id_col) if clinical else None
    by_id = table.set_index(id_col) if table is not None else None
    lists = out.parent / f"{out.stem}.series"
    index = HeaderIndex(cache)
    summary, sheet_rows, report_rows, found_ids = Summary(), [], [], set()
    try:
        for centre, root in centres.items():
            records, summary.crawl[centre] = index.scan(Path(root), jobs)
            folders = ImageFolders(records)
            for hospital_id, (series, structures) in sorted(group(records).items()):
                pid = pseudonymise(centre, hospital_id)
                found_ids.add(hospital_id)
                p = pair(series, structures, opts)
                if p.included and by_id is not None and hospital_id not in by_id.index:
                    p.reason, p.detail = "no clinical row", f"no row of {clinical.name} has this patient's id"
                if not p.included:
                    summary.excluded[p.reason] = summary.excluded.get(p.reason, 0) + 1
                    report_rows.append(_row(pid, centre, p, series, "excluded"))
                    continue
                summary.included[centre] = summary.included.get(centre, 0) + 1
                report_rows.append(_row(pid, centre, p, series, "included"))
                row = {"patient_id": pid, "centre": centre, "image": _image_cell(p.image, folders, lists, pid),
                       "mask": p.mask}
                for name, s in list(p.sequences.items()):
                    row[f"image_{name}"] = _image_cell(s, folders, lists, f"{pid}_{name}")
                if by_id is not None:
                    row.update(by_id.loc[hospital_id].to_dict())
                sheet_rows.append(row)
    finally:
        index.close()
    pseudonymise.save()
    if table is not None:
        summary.clinical_unmatched_lines = unmatched_lines(table, id_col, found_ids)
    seq_cols = [f"image_{n}" for n, _ in opts.sequences[1:]]
    clin_cols = [c for c in (table.columns if table is not None else []) if c != id_col]
    sheet = pd.DataFrame(sheet_rows, columns=["patient_id", "centre", "image", "mask", *seq_cols, *clin_cols])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(sheet.sort_values(["centre", "patient_id"], kind="stable"), out)
    write_table(pd.DataFrame(report_rows, columns=DISCOVERY_COLUMNS).sort_values(["centre", "patient_id"]),
                out.parent / "discovery.tsv")
    return summary


def discover_study(cfg: dict, sheet: Path) -> Summary:
    """cohort.discover: write the study's cohort sheet (and discovery.tsv, series lists) from the DICOM trees,
    replacing the files only where their content changed, so that an unchanged tree reruns nothing and new
    patients are the only new work."""
    import filecmp
    import shutil
    import tempfile

    from mcrad.discover.ids import Pseudonymiser
    from mcrad.discover.index import default_cache

    d = cfg["cohort"]["discover"]
    opts = PairingOptions(roi=d["roi"], modality=d["modality"], sequences=tuple(d["sequences"].items()))
    with tempfile.TemporaryDirectory(dir=sheet.parent.parent if sheet.parent.exists() else None) as tmp:
        staged = Path(tmp) / sheet.parent.name / sheet.name
        summary = discover({c: Path(p) for c, p in d["centres"].items()}, opts, staged,
                           Pseudonymiser(Path(d["key"])), Path(d["clinical"]) if d["clinical"] else None,
                           d["id_col"], Path(d["cache"]) if d["cache"] else default_cache(), d["jobs"])
        for new in sorted(p for p in staged.parent.rglob("*") if p.is_file()):
            old = sheet.parent / new.relative_to(staged.parent)
            if not (old.is_file() and filecmp.cmp(new, old, shallow=False)):
                old.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(new, old)
    return summary


def with_discovered_sheet(cfg: dict) -> dict:
    """The config with cohort.sheet set to the discovered sheet (cohort.discover; <results>/discover/cohort.tsv),
    after running discovery; the config unchanged without cohort.discover."""
    from mcrad.paths import Paths

    if cfg["cohort"]["discover"] is None:
        return cfg
    sheet = Paths.from_config(cfg).discovered_sheet
    if cfg["cohort"]["sheet"] is not None:
        raise McradError("cohort.sheet and cohort.discover are both set. Fix: keep one (discover writes the sheet).")
    sheet.parent.mkdir(parents=True, exist_ok=True)
    for line in discover_study(cfg, sheet).lines():
        print(f"mcrad discover: {line}")
    return {**cfg, "cohort": {**cfg["cohort"], "sheet": str(sheet)}}

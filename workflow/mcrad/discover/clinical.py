"""The clinical spreadsheet (TSV, CSV or XLSX) keyed by the hospital PatientID, joined to the discovered
patients. Unmatched ids are reported without showing them: patients by pseudonym, spreadsheet rows by line."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.errors import CohortError

RESERVED = ("patient_id", "centre", "image", "mask")


def read_clinical(path: Path, id_col: str) -> pd.DataFrame:
    """All columns as text, empty cells empty; the id column stripped. Errors name the file and the fix."""
    if not path.is_file():
        raise CohortError(f"clinical file {path} does not exist. Fix: give --clinical an existing TSV/CSV/XLSX file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
        else:
            df = pd.read_csv(path, sep="\t" if suffix in (".tsv", ".txt") else ",", dtype=str,
                             keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise CohortError(f"clinical file {path} cannot be read ({type(exc).__name__}). Fix: save it as TSV, CSV "
                          "(UTF-8) or XLSX with one header row") from exc
    df.columns = [str(c).strip() for c in df.columns]
    if id_col not in df.columns:
        raise CohortError(f"clinical file {path} has no column {id_col!r} (columns: {list(df.columns)}). Fix: set "
                          "--id-col to the column holding the DICOM PatientID")
    clash = [c for c in df.columns if c in RESERVED]
    if clash:
        raise CohortError(f"clinical file {path} has column(s) {clash}, which the cohort sheet writes itself. "
                          "Fix: rename them")
    df[id_col] = df[id_col].str.strip()
    dup = df[id_col][df[id_col].duplicated() & (df[id_col] != "")]
    if len(dup):
        lines = [str(i + 2) for i in dup.index]
        raise CohortError(f"clinical file {path}: lines {', '.join(lines)} repeat a patient id of an earlier line. "
                          "Fix: keep one row per patient")
    return df


def unmatched_lines(clinical: pd.DataFrame, id_col: str, found_ids: set[str]) -> list[int]:
    """Spreadsheet lines (1 = header) whose id matches no patient found in the trees."""
    return [int(i) + 2 for i, v in clinical[id_col].items() if v not in found_ids]

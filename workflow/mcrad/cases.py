"""Run one stage over the cases of a shard: quarantine bad cases, reuse per-case results that are current.

A shard is the unit of a Snakemake job; the case is the unit of work. Each finished case leaves a
`done.json` whose key hashes the stage's code, options and input files, so rerunning a shard (after a kill,
or after adding cases) redoes only the cases whose key changed.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from mcrad import __version__
from mcrad.errors import CaseError
from mcrad.files import file_sha256, stable_hash
from mcrad.paths import Paths

log = logging.getLogger("mcrad")
LIBRARIES = ("numpy", "SimpleITK", "pyradiomics-bhklab", "scipy")


def case_key(stage: str, code_file: str, options: Any, inputs: Iterable[str | Path]) -> str:
    """What a case's result depends on: stage code, library versions, options and input bytes."""
    return stable_hash({
        "stage": stage, "version": __version__, "code": [file_sha256(code_file), file_sha256(__file__)],
        "libraries": {lib: metadata.version(lib) for lib in LIBRARIES}, "options": options,
        "inputs": [file_sha256(p) for p in inputs],
    })


def unexpected(row: pd.Series, stage: str, files: list[Path], exc: Exception) -> CaseError:
    """A CaseError for an exception no check foresaw: the case is quarantined with what is known (its stage,
    files, the exception's type and message) and the traceback goes to the job log."""
    traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split())[:300] or "no message"
    return CaseError(row["patient_id"], ", ".join(map(str, files)) or None,
                     f"{stage} failed unexpectedly ({type(exc).__name__}: {message})",
                     "open the files in a viewer (corrupt, truncated or implausible image or mask?); the traceback "
                     "is in the job log; if the files look right, report it with that traceback")


def run_stage(
    rows: pd.DataFrame,
    stage: str,
    work: Callable[[pd.Series], dict[str, Any]],
    inputs: Callable[[pd.Series], list[Path]],
    paths: Paths,
    code_file: str,
    options: Any,
    strict: bool,
) -> pd.DataFrame:
    """Apply `work` to each 'ok' row; rows already quarantined pass through unchanged.

    `work` returns the new columns of the row (JSON-able) and raises CaseError for a bad case. Any other
    exception of one case quarantines that case too (the error boundary: one case never stops the shard);
    `strict` re-raises instead.
    """
    out = []
    for _, row in rows.iterrows():
        record = row.to_dict()
        if record["status"] != "ok":
            out.append(record)
            continue
        done = paths.case(row["centre"], row["patient_id"]).done(stage)
        files: list[Path] = []
        try:
            try:
                files = inputs(row)
                key = case_key(stage, code_file, options, files)
                cached = json.loads(done.read_text()) if done.is_file() else None
                if cached and cached.get("key") == key:
                    result = cached["result"]
                else:
                    result = work(row)
                    done.parent.mkdir(parents=True, exist_ok=True)
                    done.write_text(json.dumps({"key": key, "result": result}) + "\n")  # keep column order
            except CaseError:
                raise
            except Exception as exc:  # noqa: BLE001 - the per-case error boundary
                if strict:
                    raise
                raise unexpected(row, stage, files, exc) from exc
        except CaseError as exc:
            if strict:
                raise
            log.warning("quarantined: %s", exc)
            print(f"mcrad: quarantined {exc}", file=sys.stderr)
            record.update(status="quarantined", failed_stage=stage, message=str(exc))
            out.append(record)
            continue
        record.update(result)
        out.append(record)
    return pd.DataFrame(out)


_MESSAGE = re.compile(r"^patient \S+(?: \(file: .*?\))?: (?P<reason>.*?)(?:\. Fix: .*)?$", re.S)


def reason_of(message: str) -> str:
    """The problem of a quarantine message, without the patient, the file and the fix (for counting)."""
    m = _MESSAGE.match(str(message))
    return m.group("reason") if m else str(message)


def failure_summary(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantined cases per centre, stage and reason (columns centre, stage, reason, cases)."""
    if quarantine.empty:
        return pd.DataFrame(columns=["centre", "stage", "reason", "cases"])
    table = quarantine.assign(reason=quarantine["message"].map(reason_of), stage=quarantine["failed_stage"])
    return (table.groupby(["centre", "stage", "reason"], sort=True).size().rename("cases").reset_index()
            .sort_values(["centre", "cases"], ascending=[True, False], kind="stable").reset_index(drop=True))


def failure_line(quarantine: pd.DataFrame) -> str:
    """One log line for the end of a run: how many cases were quarantined, per centre and stage."""
    if quarantine.empty:
        return "mcrad: no case was quarantined"
    counts = quarantine.groupby(["centre", "failed_stage"], sort=True).size()
    parts = ", ".join(f"{centre} {stage} {n}" for (centre, stage), n in counts.items())
    return f"mcrad: {len(quarantine)} case(s) quarantined ({parts}); reasons in qc/quarantine.tsv and the report"

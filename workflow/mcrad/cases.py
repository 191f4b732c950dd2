"""Run one stage over the cases of a shard: quarantine bad cases, reuse per-case results that are current.

A shard is the unit of a Snakemake job; the case is the unit of work. Each finished case leaves a
`done.json` whose key hashes the stage's code, options and input files, so rerunning a shard (after a kill,
or after adding cases) redoes only the cases whose key changed.
"""
from __future__ import annotations

import json
import logging
import sys
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

    `work` returns the new columns of the row (JSON-able) and raises CaseError for a bad case.
    """
    out = []
    for _, row in rows.iterrows():
        record = row.to_dict()
        if record["status"] != "ok":
            out.append(record)
            continue
        done = paths.case(row["centre"], row["patient_id"]).done(stage)
        try:
            key = case_key(stage, code_file, options, inputs(row))
            cached = json.loads(done.read_text()) if done.is_file() else None
            if cached and cached.get("key") == key:
                result = cached["result"]
            else:
                result = work(row)
                done.parent.mkdir(parents=True, exist_ok=True)
                done.write_text(json.dumps({"key": key, "result": result}) + "\n")  # keep column order
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

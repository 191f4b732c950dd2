"""Table I/O, shared column names and hashing: how every stage reads and writes its TSV tables and fingerprints
files, defined once."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

# identity columns of every per-patient table (features, predictions, cohort tables)
META = ("patient_id", "centre")
# status columns of the per-case shard tables (ingest -> preprocess -> segment -> features)
STATUS_COLUMNS = ["patient_id", "centre", "status", "failed_stage", "message"]
_ID_TYPES = {"patient_id": str, "centre": str}
# pandas' default float parser is off by one unit in the last place for about a third of shortest-repr numbers;
# round-trip parsing gives back exactly the float that was written (a locked threshold, a stage-2 score)
EXACT_FLOATS = "round_trip"  # pandas read_csv(float_precision=...)


def read_table(path: str | Path) -> pd.DataFrame:
    """A results table: ids as text, an empty cell as NaN (a feature a case could not give, an absent value)."""
    return pd.read_csv(path, sep="\t", dtype=_ID_TYPES, keep_default_na=False, na_values=[""],
                       float_precision=EXACT_FLOATS)


def read_tables(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Several tables of the same kind (one per centre, say) as one."""
    return pd.concat([read_table(p) for p in paths], ignore_index=True)


def read_shard(path: str | Path) -> pd.DataFrame:
    """A per-case shard table: every cell as written (an empty message stays ''), ids as text."""
    return pd.read_csv(path, sep="\t", dtype=_ID_TYPES, keep_default_na=False, float_precision=EXACT_FLOATS)


def read_shards(paths: Iterable[str | Path]) -> pd.DataFrame:
    return pd.concat([read_shard(p) for p in paths], ignore_index=True)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, sep="\t", index=False)


def write_json(obj: Any, path: str | Path, indent: int | None = 1) -> None:
    """Key-sorted JSON with a final newline: byte-identical for equal content."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=indent, sort_keys=True) + "\n")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes; of a folder, of all its files' bytes in path order (a DICOM series)."""
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-able object, independent of dict order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()

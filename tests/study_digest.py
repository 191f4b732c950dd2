"""The numbers of a study in one long table, so that a refactoring can prove it changed no result.

Every metrics, predictions, paired-test and comparison table under validation/, the internal (out-of-fold)
predictions and deep scores of stage 1, and every number a locked bundle's meta.json records (threshold,
coefficients, hyper-parameters) become rows `file, key, column, value`: `key` joins the row's text columns
(patient, centre, stage, model, ...), `value` is the number rounded to 1e-12.

    python tests/study_digest.py RESULTS/e2e tests/data/e2e_digest.tsv.gz   # write (from a run of helpers.STUDY)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# The deep stage's numbers and everything fed by them. CPU training is deterministic on one machine, but torch
# picks kernels by instruction set, so a CPU of another generation trains a (slightly) different network.
DEEP_MODELS = ("deep", "fusion_decision", "fusion_features")
TABLES = ("validation/*/*.tsv", "models/*/internal_predictions*.tsv", "deep/*/features_*.tsv")
DIGITS = 12


def _table_rows(root: Path, path: Path) -> list[tuple[str, str, str, float]]:
    df = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""], dtype={"patient_id": str})
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    text = [c for c in df.columns if c not in numeric]
    keys = df[text].astype(str).agg("|".join, axis=1) if text else pd.Series(df.index.astype(str))
    name = str(path.relative_to(root))
    rows = []
    for col in numeric:
        for key, value in zip(keys, df[col].to_numpy(float), strict=True):
            rows.append((name, key, col, value))
    return rows


def _json_leaves(obj, prefix: str = ""):
    if isinstance(obj, dict):
        for k in sorted(obj):
            yield from _json_leaves(obj[k], f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _json_leaves(v, f"{prefix}[{i}]")
    elif isinstance(obj, bool):
        return
    elif isinstance(obj, int | float):
        yield prefix, float(obj)


def _bundle_rows(root: Path, meta_file: Path) -> list[tuple[str, str, str, float]]:
    meta = json.loads(meta_file.read_text())
    name = str(meta_file.relative_to(root))
    keep = {"threshold": meta.get("threshold"), "description": meta.get("description", {})}
    return [(name, key, "value", value) for key, value in _json_leaves(keep)]


def digest(root: Path) -> pd.DataFrame:
    """The study's numbers as a sorted long table (file, key, column, value), values rounded to 1e-12."""
    root = Path(root)
    rows = []
    for pattern in TABLES:
        for path in sorted(root.glob(pattern)):
            rows += _table_rows(root, path)
    for meta in sorted(root.glob("models/*/*/meta.json")):
        rows += _bundle_rows(root, meta)
    df = pd.DataFrame(rows, columns=["file", "key", "column", "value"])
    df["value"] = np.round(df["value"].to_numpy(float), DIGITS)
    return df.sort_values(["file", "key", "column"], kind="stable").reset_index(drop=True)


def compare(expected: pd.DataFrame, actual: pd.DataFrame, atol: float) -> list[str]:
    """Differences between two digests: rows only in one of them, and values further apart than `atol`."""
    keys = ["file", "key", "column"]
    both = expected.merge(actual, on=keys, how="outer", suffixes=("_expected", "_actual"), indicator=True)
    problems = [f"only in the {'expected' if side == 'left_only' else 'new'} digest: {r.file} {r.key} {r.column}"
                for side in ("left_only", "right_only") for r in both[both["_merge"] == side].itertuples()]
    matched = both[both["_merge"] == "both"]
    a, b = matched["value_expected"].to_numpy(float), matched["value_actual"].to_numpy(float)
    same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= atol)
    problems += [f"{r.file} {r.key} {r.column}: expected {r.value_expected!r}, got {r.value_actual!r}"
                 for r in matched[~same].itertuples()]
    return problems


def machine_dependent(digest: pd.DataFrame) -> pd.Series:
    """Rows that come from the deep network: its scores and embeddings, the deep and fusion bundles and their
    predictions, metrics and paired tests."""
    in_key = digest["key"].astype(str).str.split("|").map(lambda parts: any(p in DEEP_MODELS for p in parts))
    in_file = digest["file"].str.startswith("deep/") | digest["file"].str.contains("|".join(
        [f"/{m}/" for m in DEEP_MODELS] + ["_fusion"]), regex=True)
    return in_key | in_file


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["nan"], dtype={"key": str})


if __name__ == "__main__":
    study, out = Path(sys.argv[1]), Path(sys.argv[2])
    d = digest(study)
    d.to_csv(out, sep="\t", index=False, na_rep="nan")
    print(f"{len(d)} numbers from {d['file'].nunique()} files -> {out}")

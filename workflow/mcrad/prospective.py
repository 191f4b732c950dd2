"""Prospective (stage 3): a held-back cohort is scored by the locked bundles before any outcome is known, and
evaluated later, once the labels arrive, at the thresholds locked in the bundles (never re-chosen)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.errors import McradError
from mcrad.model import load_bundle, probability_columns
from mcrad.validate import (
    attach_outcomes,
    paired_comparisons,
    paired_concordance,
    paired_multiclass,
    predict_bundle,
    summarise,
    summarise_multiclass,
    summarise_survival,
)

STAGE = "prospective"
COLUMNS = ["patient_id", "centre", "stage", "model", "score", "threshold", "positive"]


def predict(bundles: list[Path], features: pd.DataFrame, clinical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scores of every patient by every bundle, with the bundle's locked threshold and the call it makes
    (positive: probability >= threshold; for survival bundles: the high-risk group; for multi-class bundles the
    class probabilities and the most probable class). Reads no outcome."""
    frames = []
    endpoints = {}
    for bundle in bundles:
        _, meta = load_bundle(bundle)
        endpoints[meta["endpoint"]["name"]] = meta["endpoint"]
        scored = predict_bundle(bundle, features, clinical).assign(stage=STAGE)
        if meta["endpoint"].get("type") != "multiclass":
            scored = scored.assign(threshold=meta["threshold"],
                                   positive=(scored["score"] >= meta["threshold"]).astype(int))
        frames.append(scored)
    if len(endpoints) != 1:
        raise McradError(f"bundles of {len(endpoints)} endpoints {sorted(endpoints)} given to one prediction table. "
                         "Fix: give the bundles of one endpoint (models/<endpoint>/*), once per endpoint.")
    (endpoint,) = endpoints.values()
    columns = (["patient_id", "centre", "stage", "model", "predicted", *probability_columns(endpoint["classes"])]
               if endpoint.get("type") == "multiclass" else COLUMNS)
    return pd.concat(frames, ignore_index=True)[columns]


def evaluate(predictions: pd.DataFrame, outcomes: pd.DataFrame, endpoint: dict,
             alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage-3 metrics (one row per model x centre, plus pooled centres) and paired tests between models (DeLong;
    C-index for survival endpoints), at the thresholds stored in the predictions table (locked at training).
    Multi-class endpoints: the stored class probabilities and the most probable class (no threshold)."""
    if endpoint.get("type") == "multiclass":
        return _evaluate_multiclass(predictions, outcomes, endpoint, alpha)
    missing = [c for c in ("patient_id", "centre", "model", "score", "threshold") if c not in predictions.columns]
    if missing:
        raise McradError(f"the predictions table lacks column(s) {missing}. Fix: give the output of `mcrad predict`.")
    thresholds = predictions.groupby("model")["threshold"].agg(["min", "max"])
    if (thresholds["min"] != thresholds["max"]).any():
        raise McradError("the predictions table holds several thresholds for one model (bundles of different "
                         "trainings mixed). Fix: predict every centre with the same locked bundles.")
    pred = attach_outcomes(predictions.drop(columns=["positive"], errors="ignore"), outcomes, endpoint)
    # summarise pools centres of stage "external"; the prospective centres are pooled the same way
    pooled = pred.assign(stage="external")
    locked = thresholds["min"].to_dict()
    if endpoint.get("type") == "survival":
        metrics = summarise_survival(pooled, locked, alpha, endpoint.get("times", []))
        paired = paired_concordance(pooled)
    else:
        metrics = summarise(pooled, locked, alpha)
        paired = paired_comparisons(pooled)
    return metrics.assign(stage=STAGE), paired.assign(stage=STAGE)


def _evaluate_multiclass(predictions: pd.DataFrame, outcomes: pd.DataFrame, endpoint: dict,
                         alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    classes = endpoint["classes"]
    missing = [c for c in ("patient_id", "centre", "model", *probability_columns(classes))
               if c not in predictions.columns]
    if missing:
        raise McradError(f"the predictions table lacks column(s) {missing} of endpoint {endpoint['name']!r} (classes "
                         f"{classes}). Fix: give the output of `mcrad predict` with this endpoint's bundles.")
    pooled = attach_outcomes(predictions, outcomes, endpoint).assign(stage="external")
    metrics = summarise_multiclass(pooled, classes, alpha, endpoint.get("ordinal", False))
    return metrics.assign(stage=STAGE), paired_multiclass(pooled, classes).assign(stage=STAGE)

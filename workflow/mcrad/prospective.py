"""Prospective (stage 3): a held-back cohort is scored by the locked bundles before any outcome is known, and
evaluated later, once the labels arrive, at the thresholds locked in the bundles (never re-chosen)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.endpoints import Endpoint, endpoint
from mcrad.errors import McradError
from mcrad.files import read_table, read_tables, write_table
from mcrad.model.bundle import load_bundle
from mcrad.model.fusion import join_deep
from mcrad.validate.scoring import predict_bundle

STAGE = "prospective"


def predict(bundles: list[Path], features: pd.DataFrame, clinical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scores of every patient by every bundle, with the bundle's locked threshold and the call it makes
    (positive: probability >= threshold; for survival bundles: the high-risk group; for multi-class bundles the
    class probabilities and the most probable class). Reads no outcome."""
    frames = []
    endpoints: dict[str, Endpoint] = {}
    for bundle in bundles:
        _, meta = load_bundle(bundle)
        ep = endpoint(meta["endpoint"])
        endpoints[ep.name] = ep
        frames.append(ep.locked_call(predict_bundle(bundle, features, clinical).assign(stage=STAGE),
                                     meta["threshold"]))
    if len(endpoints) != 1:
        raise McradError(f"bundles of {len(endpoints)} endpoints {sorted(endpoints)} given to one prediction table. "
                         "Fix: give the bundles of one endpoint (models/<endpoint>/*), once per endpoint.")
    (ep,) = endpoints.values()
    return pd.concat(frames, ignore_index=True)[ep.prospective_columns]


def evaluate(predictions: pd.DataFrame, outcomes: pd.DataFrame, ep: Endpoint,
             alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage-3 metrics (one row per model x centre, plus pooled centres) and paired tests between models, at the
    thresholds stored in the predictions table (locked at training; multi-class: the most probable class)."""
    missing = [c for c in ("patient_id", "centre", "model", *ep.score_columns) if c not in predictions.columns]
    if ep.locks_threshold and "threshold" not in predictions.columns:
        missing.append("threshold")
    if missing:
        raise McradError(f"the predictions table lacks column(s) {missing} of endpoint {ep.name!r}. Fix: give the "
                         "output of `mcrad predict` with this endpoint's bundles.")
    locked: dict[str, float | None] = {}
    if ep.locks_threshold:
        thresholds = predictions.groupby("model")["threshold"].agg(["min", "max"])
        if (thresholds["min"] != thresholds["max"]).any():
            raise McradError("the predictions table holds several thresholds for one model (bundles of different "
                             "trainings mixed). Fix: predict every centre with the same locked bundles.")
        locked = thresholds["min"].to_dict()
    scored = predictions.drop(columns=["positive"], errors="ignore")
    # metrics pool the centres of stage "external"; the prospective centres are pooled the same way
    pooled = ep.scored(ep.attach_outcomes(scored, outcomes).assign(stage="external"))
    return (ep.summarise(pooled, locked, alpha).assign(stage=STAGE),
            ep.paired(pooled).assign(stage=STAGE))


def predict_stage(bundles: list[Path], feature_files: list[Path], cohort_files: list[Path], deep_files: list[Path],
                  out_file: Path) -> None:
    """`mcrad predict`: score a new cohort with locked bundles (deep and fusion bundles read the deep tables)."""
    features = read_tables(feature_files)
    if deep_files:  # deep and fusion bundles read deep_score / deep_emb_* columns
        features = join_deep(features, read_tables(deep_files))
    clinical = read_tables(cohort_files) if cohort_files else None
    write_table(predict([Path(b) for b in bundles], features, clinical), out_file)


def evaluate_stage(cfg: dict, endpoint_name: str, predictions_file: Path, cohort_files: list[Path],
                   out_file: Path, paired_file: Path | None) -> None:
    """`mcrad evaluate`: stage-3 metrics of `mcrad predict` output once the labels arrive."""
    from mcrad.endpoints import endpoint_named

    ep = endpoint_named(cfg, endpoint_name)
    metrics, paired = evaluate(read_table(predictions_file), read_tables(cohort_files), ep, cfg["validate"]["alpha"])
    write_table(metrics, out_file)
    if paired_file:
        write_table(paired, paired_file)

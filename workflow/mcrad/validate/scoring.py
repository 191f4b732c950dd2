"""Scoring with locked bundles: a bundle's predictions for new patients (outcomes unseen), then joined with the
outcomes for validation; a radiologist's read scored like a model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint, endpoint
from mcrad.errors import McradError
from mcrad.model.bundle import load_bundle
from mcrad.model.registry import DEEP_EMB, DEEP_SCORE


def predict_bundle(bundle_dir: Path, features: pd.DataFrame, clinical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score patients with a locked bundle, outcomes unseen: patient_id, centre, model, score (probability; for
    survival bundles the Cox linear predictor; for multi-class bundles predicted and p_<class> instead). Only the
    feature and clinical columns the bundle was trained on are read; a missing one is refused with a clear
    message."""
    model, meta = load_bundle(bundle_dir)
    needed_clinical = [c["name"] for c in meta["clinical"]]
    df = features
    if clinical is not None:
        keep = ["patient_id"] + [c for c in needed_clinical if c in clinical.columns]
        df = features.merge(clinical[keep], on="patient_id", how="left", validate="one_to_one")
    missing = [c for c in meta["features"] if c not in df.columns]
    if missing:
        raise McradError(f"bundle {bundle_dir} was trained on {len(missing)} feature column(s) these data lack, e.g. "
                         f"{missing[:3]}. Fix: extract features with the same parameter file, ROIs and sequence "
                         "names as the training centre.")
    uses_clinical = meta["model"] in ("clinical", "nomogram")
    missing = [c for c in needed_clinical if c not in df.columns] if uses_clinical else []
    if missing:
        raise McradError(f"bundle {bundle_dir} ({meta['model']}) needs clinical column(s) {missing} these data lack. "
                         "Fix: pass the centre's clinical table (--cohort) with the columns of cohort.clinical.")
    ep = endpoint(meta["endpoint"])
    # a case without a deep score (its crop failed in the deep stage) is not scored by the deep and fusion models
    deep = [c for c in meta["features"] if c == DEEP_SCORE or c.startswith(DEEP_EMB)]
    scorable = ~df[deep].isna().any(axis=1).to_numpy() if deep else np.ones(len(df), bool)
    try:
        scores = ep.score(model, df[scorable]) if scorable.any() else None
    except ValueError as exc:  # e.g. a clinical category the training centre never had
        raise McradError(f"bundle {bundle_dir} cannot score centre(s) {sorted(df['centre'].unique())}: {exc}. "
                         "Fix: recode the clinical column to the categories used in training.") from exc
    out = pd.DataFrame({"patient_id": df["patient_id"].to_numpy(), "centre": df["centre"].to_numpy(),
                        "model": meta["model"]})
    if scores is not None and scorable.all():
        return pd.concat([out, scores.reset_index(drop=True)], axis=1)
    full = pd.DataFrame(np.nan, index=range(len(df)), columns=ep.score_columns)  # deep models: binary endpoints
    if scores is not None:
        full.loc[np.flatnonzero(scorable), "score"] = scores["score"].to_numpy()
    return pd.concat([out, full], axis=1)


def score_bundle(bundle_dir: Path, features: pd.DataFrame, cohort: pd.DataFrame, ep: Endpoint) -> pd.DataFrame:
    """Locked-bundle scores of labelled patients: the columns of the endpoint's predictions table, without stage."""
    out = ep.attach_outcomes(predict_bundle(bundle_dir, features, cohort), cohort)
    return out[[c for c in ep.prediction_columns if c != "stage"]]


def reader_predictions(cohort: pd.DataFrame, ep: Endpoint, column: str) -> pd.DataFrame:
    """A radiologist's read (score or probability in `column`) as model 'reader', so it enters the metrics and the
    paired DeLong tests like a locked model. Every patient needs a numeric read."""
    if column not in cohort.columns:
        raise McradError(f"validate.reader names column {column!r}, which the cohort table lacks. Fix: add the "
                         "reader's scores to the cohort sheet, or set validate.reader: null.")
    read = pd.to_numeric(cohort[column], errors="coerce")
    if read.isna().any():
        raise McradError(f"patients {cohort.loc[read.isna(), 'patient_id'].tolist()[:5]} have no numeric reader score "
                         f"in {column!r}. Fix: fill in the reads (a missing read cannot be compared).")
    scored = pd.DataFrame({"patient_id": cohort["patient_id"], "centre": cohort["centre"], "model": "reader",
                           "score": read.to_numpy(float)})
    return ep.attach_outcomes(scored, cohort)[["patient_id", "centre", "model", "label", "score"]]



"""Deep and fusion models of a binary endpoint: the recalibrated deep score, radiomics + deep embeddings
(feature-level fusion) and the mean of the radiomics and deep probabilities (decision-level fusion)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from mcrad.errors import McradError
from mcrad.model.registry import DEEP_EMB, DEEP_SCORE, FUSION_MODELS
from mcrad.model.selection import ColumnSubset, radiomics_pipeline
from mcrad.model.train import build_model, lock, weight_rows, weight_table, youden_threshold


def join_deep(features: pd.DataFrame, deep: pd.DataFrame, source: str = "deep features") -> pd.DataFrame:
    """Add the deep stage's deep_score and deep_emb_* columns to a feature table; every patient needs them."""
    cols = ["patient_id", DEEP_SCORE, *sorted(c for c in deep.columns if c.startswith(DEEP_EMB))]
    missing = sorted(set(features["patient_id"]) - set(deep["patient_id"]))
    if missing or DEEP_SCORE not in deep.columns:
        raise McradError(f"{source}: no deep_score for patients {missing[:5]} (or no deep_score column). Fix: rerun "
                         "the deep stage for these centres, or set deep.activate: false.")
    return features.merge(deep[cols], on="patient_id", how="left", validate="one_to_one")


class Logit(TransformerMixin, BaseEstimator):
    """logit of a probability column, clipped away from 0 and 1."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        p = np.clip(np.asarray(X, float), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))


class MeanFusion(ClassifierMixin, BaseEstimator):
    """Decision-level fusion: the mean of the radiomics model's and the recalibrated deep model's probabilities."""

    def __init__(self, radiomics, deep):
        self.radiomics, self.deep = radiomics, deep

    def fit(self, X, y):
        self.radiomics_ = clone(self.radiomics).fit(X, y)
        self.deep_ = clone(self.deep).fit(X, y)
        self.classes_ = self.deep_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        p = (self.radiomics_.predict_proba(X)[:, 1] + self.deep_.predict_proba(X)[:, 1]) / 2
        return np.column_stack([1 - p, p])

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def build_fusion_model(name: str, radiomics_columns: list[str], emb_columns: list[str], opts: dict, seed: int):
    deep = Pipeline([("select", ColumnSubset([DEEP_SCORE])), ("logit", Logit()),
                     ("recalibrate", LogisticRegression(max_iter=1000))])
    if name == "deep":  # logistic recalibration of logit(deep_score): same ranking, probabilities fit to training
        return deep
    if name == "fusion_features":  # radiomics pipeline (selection inside CV) on radiomics + deep embeddings
        return Pipeline([("select", ColumnSubset(radiomics_columns + emb_columns)),
                         ("model", radiomics_pipeline(opts, seed))])
    if name == "fusion_decision":
        return MeanFusion(build_model("radiomics", radiomics_columns, [], opts, seed), deep)
    raise ValueError(f"unknown model {name!r}")


def train_fusion(df: pd.DataFrame, radiomics_columns: list[str], label: str, opts: dict,
                 seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Deep and fusion models of a binary endpoint, on a training table joined with the deep stage's features
    (deep_score is out-of-fold on the training centre, so the recalibration does not learn over-fitted scores).
    Same outer folds, thresholds and locking as train_endpoint."""
    emb = sorted(c for c in df.columns if c.startswith(DEEP_EMB))
    y = df[label].to_numpy(int)
    X = df.drop(columns=[label])
    outer = StratifiedKFold(opts["outer_folds"], shuffle=True, random_state=seed)
    needs = {"deep": [DEEP_SCORE], "fusion_features": radiomics_columns + emb,
             "fusion_decision": radiomics_columns + [DEEP_SCORE]}
    fitted, preds = {}, []
    for name in FUSION_MODELS:
        est = build_fusion_model(name, radiomics_columns, emb, opts, seed)
        oof = cross_val_predict(est, X, y, cv=outer, method="predict_proba")[:, 1]
        final = clone(est).fit(X, y)
        fitted[name] = {"model": lock(final), "threshold": youden_threshold(y, oof),
                        "info": describe_fusion(name, final), "features": needs[name]}
        preds.append(pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "stage": "internal",
                                   "model": name, "label": y, "score": oof}))
    return fitted, pd.concat(preds, ignore_index=True)


def describe_fusion(name: str, model) -> dict[str, Any]:
    if name == "deep":
        logit = model.named_steps["recalibrate"]
        return {"recalibration": {"intercept": round(float(logit.intercept_[0]), 10),
                                  "slope": round(float(logit.coef_[0, 0]), 10)}}
    pipe = model if name == "fusion_features" else model.radiomics_
    best = pipe.named_steps["model"]  # locked: the search's best pipeline
    names = best[:-1].get_feature_names_out(np.asarray(pipe.named_steps["select"].columns))
    info: dict[str, Any] = {"selected_features": weight_table(names, weight_rows(best.steps[-1][1]), nonzero=True)}
    if name == "fusion_decision":
        info["fusion"] = "mean of the radiomics and recalibrated deep probabilities"
    return info



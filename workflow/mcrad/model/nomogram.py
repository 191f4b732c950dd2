"""Nomograms: a logistic model of the rad-score and the clinical predictors independent of it (backward
elimination by likelihood-ratio p inside every fold), and the scales a printed nomogram draws."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline


def log_ratios(proba: np.ndarray) -> np.ndarray:
    """Multi-class rad-score: log(p_k / p_first) for every class but the first (the multinomial linear
    predictors relative to the reference class), from any classifier's probabilities."""
    p = np.clip(np.asarray(proba, float), 1e-6, None)
    return np.log(p[:, 1:] / p[:, :1])


def margin(est, X) -> np.ndarray:
    """Rad-score of a fitted radiomics model: its decision function, or the logit of its probability for a
    classifier without one (random forest)."""
    if hasattr(est, "decision_function"):
        return est.decision_function(X)
    p = np.clip(est.predict_proba(X)[:, 1], 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def clinical_groups(clinical: Pipeline) -> dict[str, np.ndarray]:
    """Encoded column indices of each clinical predictor of a fitted ColumnSubset + clinical_preprocessor
    pipeline: one for a numeric predictor, its one-hot levels together for a categorical one."""
    encoder = clinical.named_steps["encode"]
    groups: dict[str, np.ndarray] = {}
    for name, transformer, columns in encoder.transformers_:
        if name not in ("num", "cat") or len(columns) == 0:  # an empty transformer is never fitted
            continue
        start = encoder.output_indices_[name].start
        if name == "num":
            widths = [1] * len(columns)
        else:
            onehot = transformer[-1]
            drops = onehot.drop_idx_ if onehot.drop_idx_ is not None else [None] * len(columns)
            widths = [len(cats) - (d is not None) for cats, d in zip(onehot.categories_, drops, strict=True)]
        for column, width in zip(columns, widths, strict=True):
            groups[column] = np.arange(start, start + width)
            start += width
    return groups


def backward_elimination(loglik, dof: dict[str, int], p_max: float) -> list[str]:
    """Clinical predictors independent of the rest: from all of them (the keys of dof), repeatedly drop the one
    whose likelihood-ratio test (`loglik` of the kept predictors, with and without it; chi-square with dof[g]
    degrees of freedom) has the largest p, while that p exceeds p_max. Ties drop the first listed."""
    from scipy.stats import chi2

    kept = list(dof)
    while kept and p_max < 1:
        full = loglik(kept)
        p = {g: chi2.sf(max(0.0, 2 * (full - loglik([k for k in kept if k != g]))), dof[g]) for g in kept}
        worst = max(kept, key=p.__getitem__)
        if p[worst] <= p_max:
            break
        kept.remove(worst)
    return kept


class ClinicalSelection:
    """Nomogram part shared by the logistic and Cox nomograms: their parameters (the radiomics model giving the
    rad-score, the clinical encoder, inner folds and seed of the out-of-fold rad-score, the elimination p from
    model.nomogram_clinical_p) and which clinical predictors enter, chosen by backward elimination on the
    training rows (kept_clinical_, kept_columns_ of the encoded clinical table)."""

    def __init__(self, radiomics, clinical, radiomics_columns: list[str], inner_folds: int, seed: int,
                 clinical_p: float):
        self.radiomics, self.clinical = radiomics, clinical
        self.radiomics_columns, self.inner_folds, self.seed = radiomics_columns, inner_folds, seed
        self.clinical_p = clinical_p

    def _select_clinical(self, radscore: np.ndarray, X: pd.DataFrame, loglik, df_per_column: int) -> None:
        """df_per_column: parameters per design column (classes - 1 for a multinomial model, else 1)."""
        encoded = self.clinical_.transform(X)
        groups = clinical_groups(self.clinical_)
        # free parameters of a predictor: rank of its columns beside the intercept (a categorical predictor with
        # three or more levels keeps every one-hot column, one of which the intercept makes redundant)
        ones = np.ones((len(encoded), 1))
        dof = {g: (np.linalg.matrix_rank(np.hstack([ones, encoded[:, cols]])) - 1) * df_per_column
               for g, cols in groups.items()}

        def fit_loglik(kept: list[str]) -> float:
            cols = np.concatenate([groups[g] for g in kept]).astype(int) if kept else np.array([], int)
            return loglik(np.column_stack([radscore, encoded[:, cols]]))

        self.kept_clinical_ = backward_elimination(fit_loglik, dof, self.clinical_p)
        self.kept_columns_ = (np.concatenate([groups[g] for g in self.kept_clinical_]).astype(int)
                              if self.kept_clinical_ else np.array([], int))

    def _design(self, radscore: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([radscore, self.clinical_.transform(X)[:, self.kept_columns_]])

    def clinical_names(self) -> list[str]:
        """Encoded names of the clinical columns the nomogram uses."""
        names = self.clinical_.named_steps["encode"].get_feature_names_out()
        return [str(n) for n in np.asarray(names)[self.kept_columns_]]


def logistic_loglik(y: np.ndarray):
    """Log-likelihood of an unpenalised (multinomial) logistic model of y on a design matrix."""
    from sklearn.metrics import log_loss

    def loglik(design: np.ndarray) -> float:
        fit = LogisticRegression(C=np.inf, max_iter=2000).fit(design, y)
        return -float(log_loss(y, fit.predict_proba(design), normalize=False, labels=fit.classes_))
    return loglik


class Nomogram(ClinicalSelection, ClassifierMixin, BaseEstimator):
    """Logistic regression of the rad-score and the clinical factors independent of it (backward elimination by
    likelihood-ratio p > clinical_p on the training rows). The rad-score it learns from is out-of-fold (inner
    CV) so the nomogram does not trust an over-fitted score; at prediction the final radiomics model gives the
    rad-score (its linear predictor; multi-class: log-ratios of each class against the first)."""

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y)
        cv = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)
        Xr = X[self.radiomics_columns]
        if len(np.unique(y)) > 2:  # multinomial: one rad-score per non-reference class
            rad_oof = log_ratios(cross_val_predict(clone(self.radiomics), Xr, y, cv=cv, method="predict_proba"))
        elif hasattr(self.radiomics, "decision_function"):
            rad_oof = cross_val_predict(clone(self.radiomics), Xr, y, cv=cv, method="decision_function")
        else:
            p = np.clip(cross_val_predict(clone(self.radiomics), Xr, y, cv=cv, method="predict_proba")[:, 1],
                        1e-6, 1 - 1e-6)
            rad_oof = np.log(p / (1 - p))
        self.radiomics_ = clone(self.radiomics).fit(Xr, y)
        self.clinical_ = clone(self.clinical).fit(X, y)
        self._select_clinical(rad_oof, X, logistic_loglik(y), df_per_column=len(np.unique(y)) - 1)
        self.logit_ = LogisticRegression(max_iter=1000).fit(self._design(rad_oof, X), y)
        self.classes_ = self.logit_.classes_
        return self

    def radscore(self, X: pd.DataFrame) -> np.ndarray:
        if len(self.classes_) > 2:
            return log_ratios(self.radiomics_.predict_proba(X[self.radiomics_columns]))
        return margin(self.radiomics_, X[self.radiomics_columns])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.logit_.predict_proba(self._design(self.radscore(X), X))

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def nomogram_scales(model: Nomogram, X: pd.DataFrame, clinical: list[dict]) -> dict[str, Any]:
    """Linear-predictor contribution of each nomogram predictor over its training range, in original units,
    relative to a baseline patient (training median/mode): what a printed nomogram draws."""
    beta = model.logit_.coef_[0]
    rad = model.radscore(X)
    base = {c["name"]: (X[c["name"]].median() if c["type"] != "categorical" else X[c["name"]].mode().iloc[0])
            for c in clinical}
    base_row = pd.DataFrame([base])
    base_enc = model.clinical_.transform(base_row)[0, model.kept_columns_]
    terms = [{"name": "rad-score", "values": np.linspace(rad.min(), rad.max(), 5).round(3).tolist(),
              "contribution": (beta[0] * np.linspace(rad.min(), rad.max(), 5)).tolist()}]
    for c in clinical:
        if c["name"] not in model.kept_clinical_:  # not independent of the rad-score: not in the nomogram
            continue
        col = X[c["name"]]
        values = sorted(col.dropna().unique()) if c["type"] == "categorical" or col.nunique() <= 5 \
            else np.linspace(col.min(), col.max(), 5).round(1).tolist()
        rows = pd.DataFrame([{**base, c["name"]: v} for v in values])
        enc = model.clinical_.transform(rows)[:, model.kept_columns_]
        terms.append({"name": c["name"], "values": [str(v) if c["type"] == "categorical" else float(v) for v in values],
                      "contribution": ((enc - base_enc) @ beta[1:]).tolist()})
    offset = float(model.logit_.intercept_[0] + base_enc @ beta[1:])
    return {"terms": terms, "intercept": offset}



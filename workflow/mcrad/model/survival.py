"""Survival endpoints: penalised Cox models (lifelines), the radiomics Cox search, the Cox nomogram, and their
training with out-of-fold internal validation."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from mcrad.errors import McradError
from mcrad.model.nomogram import ClinicalSelection
from mcrad.model.registry import MODELS
from mcrad.model.selection import ColumnSubset, ConcordanceFilter, CorrelationFilter, clinical_preprocessor
from mcrad.stats import concordance


class CoxModel(BaseEstimator):
    """Penalised Cox proportional hazards (lifelines CoxPHFitter) on a numeric matrix; y = (time, event) columns.
    Keeps only the coefficients and centring, not the fitter (which stores fit timestamps), so a locked
    model pickles byte-identically across runs. decision_function is the linear predictor (log hazard)."""

    def __init__(self, penalizer: float = 0.01, l1_ratio: float = 0.0):
        self.penalizer, self.l1_ratio = penalizer, l1_ratio

    def fit(self, X, y):
        from lifelines import CoxPHFitter

        X, y = np.asarray(X, float), np.asarray(y, float)
        cols = [f"x{j}" for j in range(X.shape[1])]
        data = pd.DataFrame(X, columns=cols).assign(_time=y[:, 0], _event=y[:, 1])
        cph = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
        cph.fit(data, "_time", "_event")
        self.coef_ = cph.params_.loc[cols].to_numpy()
        self.offset_ = float(X.mean(axis=0) @ self.coef_)
        self.log_likelihood_ = float(cph.log_likelihood_)  # partial log-likelihood minus lifelines' penalty
        return self

    def decision_function(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return np.asarray(X, float) @ self.coef_ - self.offset_


def survival_splits(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds stratified by the event indicator."""
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y)), y[:, 1].astype(int)))


def out_of_fold_risk(est, X, y: np.ndarray, splits) -> np.ndarray:
    risk = np.empty(len(y))
    for train, test in splits:
        fitted = clone(est).fit(_rows(X, train), y[train])
        risk[test] = fitted.decision_function(_rows(X, test))
    return risk


def _rows(X, idx):
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else np.asarray(X)[idx]


class CoxSearch(BaseEstimator):
    """Radiomics Cox pipeline whose penalty (penalizer x l1_ratio grid) maximises the mean inner-CV C-index;
    ties go to the stronger penalty. Keeps the refitted best pipeline only."""

    def __init__(self, opts: dict, seed: int = 0):
        self.opts, self.seed = opts, seed

    def pipeline(self, penalizer: float, l1_ratio: float) -> Pipeline:
        return Pipeline([
            ("impute", SimpleImputer(strategy="median")),
            ("variance", VarianceThreshold(0.0)),
            ("scale", StandardScaler()),
            ("decorrelate", CorrelationFilter(self.opts["correlation_threshold"])),
            ("univariate", ConcordanceFilter(self.opts["cox_max_features"])),
            ("cox", CoxModel(penalizer, l1_ratio)),
        ])

    def fit(self, X, y):
        y = np.asarray(y, float)
        grid = [(p, r) for p in sorted(self.opts["cox_penalizer"], reverse=True) for r in self.opts["cox_l1_ratio"]]
        scores = np.zeros((len(grid), self.opts["inner_folds"]))
        for k, (train, test) in enumerate(survival_splits(y, self.opts["inner_folds"], self.seed)):
            # the filters do not depend on the penalty: fit them once per fold, then only the Cox step per penalty
            prep = self.pipeline(*grid[0])[:-1].fit(_rows(X, train), y[train])
            Xtr, Xte = prep.transform(_rows(X, train)), prep.transform(_rows(X, test))
            for g, (p, r) in enumerate(grid):
                risk = CoxModel(p, r).fit(Xtr, y[train]).decision_function(Xte)
                scores[g, k] = concordance(y[test, 0], y[test, 1], risk)[0]
        mean = np.where(np.isnan(scores).all(axis=1), -np.inf, np.nanmean(np.nan_to_num(scores, nan=0.5), axis=1))
        best = int(np.argmax(mean))  # first maximum: the strongest penalty among equals
        self.best_params_ = {"penalizer": grid[best][0], "l1_ratio": grid[best][1]}
        self.cv_c_index_ = float(mean[best])
        self.best_estimator_ = self.pipeline(*grid[best]).fit(X, y)
        self.feature_names_in_ = np.asarray(X.columns) if isinstance(X, pd.DataFrame) else None
        return self

    def decision_function(self, X) -> np.ndarray:
        return self.best_estimator_.decision_function(X)


class SurvivalNomogram(ClinicalSelection, BaseEstimator):
    """Cox model of the radiomics Cox rad-score (out-of-fold in inner CV) and the clinical factors independent of
    it (backward elimination by partial-likelihood-ratio p > clinical_p on the training rows)."""

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y, float)
        Xr = X[self.radiomics_columns]
        self.radiomics_ = clone(self.radiomics).fit(Xr, y)
        # out-of-fold rad-scores: the whole search (penalty included) in each fold, so the nomogram never learns
        # from a score whose penalty saw the held-out rows (as the binary Nomogram's cross_val_predict does)
        rad_oof = out_of_fold_risk(self.radiomics, Xr, y, survival_splits(y, self.inner_folds, self.seed))
        self.clinical_ = clone(self.clinical).fit(X, y)
        # likelihood-ratio tests need the (practically) unpenalised partial likelihood: lifelines subtracts the
        # penalty from it, and 0.01 would cost every extra coefficient ~ n * 0.005 * beta^2
        self._select_clinical(rad_oof, X, lambda design: CoxModel(1e-5).fit(design, y).log_likelihood_,
                              df_per_column=1)
        self.cox_ = CoxModel(0.01).fit(self._design(rad_oof, X), y)
        return self

    def radscore(self, X: pd.DataFrame) -> np.ndarray:
        return self.radiomics_.decision_function(X[self.radiomics_columns])

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        return self.cox_.decision_function(self._design(self.radscore(X), X))


def build_survival_model(name: str, radiomics_columns: list[str], clinical: list[dict], opts: dict, seed: int):
    clin = [c["name"] for c in clinical]
    encode = Pipeline([("select", ColumnSubset(clin)), ("encode", clinical_preprocessor(clinical))])
    if name == "clinical":
        return Pipeline([*encode.steps, ("cox", CoxModel(0.01))])  # a little ridge: separable one-hot levels
    if name == "radiomics":
        return Pipeline([("select", ColumnSubset(radiomics_columns)), ("model", CoxSearch(opts, seed))])
    if name == "nomogram":
        return SurvivalNomogram(CoxSearch(opts, seed), encode, radiomics_columns, opts["inner_folds"], seed,
                                opts["nomogram_clinical_p"])
    raise ValueError(f"unknown model {name!r}")


def train_survival(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], time: str, event: str,
                   opts: dict, seed: int, models: tuple[str, ...] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Survival endpoint: clinical Cox, radiomics penalised Cox (the rad-score) and a Cox nomogram of rad-score +
    clinical factors. The locked 'threshold' is the median training risk of the final model: it splits any
    later cohort into high- and low-risk groups without looking at their outcomes."""
    y = np.column_stack([pd.to_numeric(df[time]).to_numpy(float), pd.to_numeric(df[event]).to_numpy(float)])
    events = int(y[:, 1].sum())
    if min(events, len(y) - events) < opts["outer_folds"]:
        raise McradError(f"training data have {events} events and {len(y) - events} censored cases for '{event}'; "
                         f"{opts['outer_folds']}-fold cross-validation needs at least {opts['outer_folds']} of each. "
                         "Fix: add training centres or lower model.outer_folds.")
    X = df.drop(columns=[time, event])
    outer = survival_splits(y, opts["outer_folds"], seed)
    fitted, preds = {}, []
    for name in models or MODELS:
        est = build_survival_model(name, radiomics_columns, clinical, opts, seed)
        oof = out_of_fold_risk(est, X, y, outer)
        final = clone(est).fit(X, y)
        fitted[name] = {"model": final, "threshold": float(np.median(final.decision_function(X))),
                        "info": describe_survival(name, final)}
        preds.append(pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "stage": "internal",
                                   "model": name, "label": y[:, 1].astype(int), "time": y[:, 0], "score": oof}))
    return fitted, pd.concat(preds, ignore_index=True)


def describe_survival(name: str, model) -> dict[str, Any]:
    if name == "clinical":
        cols = model.named_steps["encode"].get_feature_names_out()
        return {"coefficients": dict(zip(map(str, cols), model.named_steps["cox"].coef_.round(10).tolist(),
                                         strict=True))}
    search = model.named_steps["model"] if name == "radiomics" else model.radiomics_
    pipe = search.best_estimator_
    names = pipe[:-1].get_feature_names_out(search.feature_names_in_)
    coef = pipe.named_steps["cox"].coef_
    info: dict[str, Any] = {**search.best_params_, "inner_cv_c_index": round(search.cv_c_index_, 10),
                            "selected_features": {str(n): float(round(c, 10)) for n, c in zip(names, coef, strict=True)
                                                  if abs(c) > 1e-6}}
    if name == "nomogram":
        enc = model.clinical_names()
        info["coefficients"] = dict(zip(["radscore", *map(str, enc)], model.cox_.coef_.round(10).tolist(),
                                        strict=True))
    return info



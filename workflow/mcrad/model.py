"""Model: stage 1 on the training centre(s) only. Clinical model, radiomics model (LASSO logistic with
correlation filtering, everything fitted inside cross-validation) and a nomogram (rad-score + clinical
factors), for binary, multi-class (multinomial) and survival (Cox) endpoints. Internal validation from outer
folds; final models locked as bundles with a sha256 manifest."""
from __future__ import annotations

import hashlib
import json
import logging
import pickle
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from mcrad import __version__
from mcrad.errors import McradError

MODELS = ("clinical", "radiomics", "nomogram")
log = logging.getLogger("mcrad")
META = ("patient_id", "centre")


def univariate_auc(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUC of each column for a binary y (Mann-Whitney with midranks), all columns at once."""
    ranks = stats.rankdata(X, axis=0)
    pos = y == 1
    m, n = pos.sum(), (~pos).sum()
    return (ranks[pos].sum(axis=0) - m * (m + 1) / 2) / (m * n)


class KeepColumns(TransformerMixin, BaseEstimator):
    """Base of the feature selectors: fit sets keep_ (column indices) and n_features_in_."""

    def transform(self, X):
        check_is_fitted(self, "keep_")
        return np.asarray(X, float)[:, self.keep_]

    def get_feature_names_out(self, input_features=None):
        names = np.asarray(input_features) if input_features is not None else np.arange(self.n_features_in_)
        return names[self.keep_]


class CorrelationFilter(KeepColumns):
    """Keep one feature per group of features whose |Pearson r| exceeds `threshold`: the one most related to
    the outcome (univariate |AUC - 0.5|, or |C - 0.5| for survival y, on the data it is fitted on, so inside
    CV it never sees test folds)."""

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(np.corrcoef(X, rowvar=False)) if X.shape[1] > 1 else np.zeros((1, 1))
        r = np.nan_to_num(np.atleast_2d(r), nan=0.0)
        order = np.arange(X.shape[1])
        if y is not None and is_survival(y):
            relevance = np.nan_to_num(np.abs(univariate_concordance(X, np.asarray(y, float)) - 0.5))
            order = np.argsort(-relevance, kind="stable")
        elif y is not None and len(np.unique(y)) == 2:
            relevance = np.abs(univariate_auc(X, np.asarray(y)) - 0.5)
            order = np.argsort(-relevance, kind="stable")
        elif y is not None and len(np.unique(y)) > 2:  # multi-class: ANOVA F across the classes
            from sklearn.feature_selection import f_classif

            with np.errstate(invalid="ignore", divide="ignore"):
                relevance = np.nan_to_num(f_classif(X, np.asarray(y))[0])
            order = np.argsort(-relevance, kind="stable")
        keep: list[int] = []
        for j in order:
            if all(r[j, k] <= self.threshold for k in keep):
                keep.append(int(j))
        self.keep_ = np.array(sorted(keep), dtype=int)
        self.n_features_in_ = X.shape[1]
        return self


def one_standard_error(cv_results: dict) -> int:
    """Index of the strongest penalty (smallest C) whose mean CV score is within one standard error of the
    best: the sparser model that is statistically as good (glmnet's lambda.1se)."""
    mean, sd = np.asarray(cv_results["mean_test_score"]), np.asarray(cv_results["std_test_score"])
    n_splits = sum(1 for k in cv_results if k.startswith("split") and k.endswith("_test_score"))
    Cs = np.asarray(cv_results["param_lasso__C"], float)
    if np.isnan(mean).all():  # every inner fold held one class only: no evidence, take the sparsest model
        log.warning("inner cross-validation could not score any penalty (folds with one class); using the "
                    "strongest penalty C=%s", Cs.min())
        return int(np.argmin(Cs))
    best = int(np.nanargmax(mean))
    cutoff = mean[best] - sd[best] / np.sqrt(n_splits)
    ok = np.where(mean >= cutoff)[0]
    return int(ok[np.argmin(Cs[ok])])


def clinical_preprocessor(clinical: list[dict]) -> ColumnTransformer:
    numeric = [c["name"] for c in clinical if c["type"] in ("numeric", "ordinal")]
    categorical = [c["name"] for c in clinical if c["type"] == "categorical"]
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(drop="if_binary", handle_unknown="error", sparse_output=False)),
         categorical),
    ], verbose_feature_names_out=False)


class MRMR(KeepColumns):
    """Minimum-redundancy maximum-relevance selection (Ding & Peng 2005; the FCQ form): greedily add the feature
    with the largest ANOVA F statistic divided by its mean |Pearson r| with the features already chosen."""

    def __init__(self, k: int = 10):
        self.k = k

    def fit(self, X, y):
        from sklearn.feature_selection import f_classif

        X = np.asarray(X, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            relevance = np.nan_to_num(f_classif(X, np.asarray(y))[0])
            r = np.nan_to_num(np.abs(np.corrcoef(X, rowvar=False))) if X.shape[1] > 1 else np.ones((1, 1))
        chosen = [int(np.argmax(relevance))]
        while len(chosen) < min(self.k, X.shape[1]):
            redundancy = np.maximum(np.atleast_2d(r)[:, chosen].mean(axis=1), 1e-12)
            score = relevance / redundancy
            score[chosen] = -np.inf
            chosen.append(int(np.argmax(score)))
        self.keep_ = np.array(chosen, dtype=int)  # in order of selection
        self.n_features_in_ = X.shape[1]
        return self


def lasso_logistic(C: float, seed: int, multiclass: bool) -> LogisticRegression:
    """L1-penalised logistic regression: liblinear for two classes; saga (multinomial) for more, which
    liblinear cannot fit."""
    return LogisticRegression(l1_ratio=1.0, solver="saga" if multiclass else "liblinear", max_iter=5000, C=C,
                              random_state=seed)


class LassoSelector(KeepColumns):
    """Keep the features with a non-zero L1-penalised logistic coefficient (for any class, when multinomial). A
    penalty strong enough to zero them all keeps the single feature that enters the LASSO path first (largest
    |X_j' (y_k - mean y_k)| over the class indicators y_k, on the standardised data it is fitted on; the first
    on ties), so every candidate penalty of the inner CV gives a classifier something to fit and a finite
    score."""

    def __init__(self, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed

    def fit(self, X, y):
        X, y = np.asarray(X, float), np.asarray(y)
        classes = np.unique(y)
        lasso = lasso_logistic(self.C, self.seed, len(classes) > 2).fit(X, y)
        keep = np.flatnonzero(np.any(lasso.coef_ != 0, axis=0))
        if len(keep) == 0:
            indicators = (y[:, None] == classes[None, :]).astype(float)
            gradient = np.abs(X.T @ (indicators - indicators.mean(axis=0))).max(axis=1)
            keep = np.array([int(np.argmax(gradient))])
        self.keep_ = keep
        self.n_features_in_ = X.shape[1]
        return self


def radiomics_pipeline(opts: dict, seed: int, multiclass: bool = False) -> GridSearchCV:
    """The radiomics model inside its inner-CV search. Default: LASSO logistic (selection and classifier in one,
    penalty by the one-standard-error rule). Otherwise a selector (LASSO or mRMR) then a classifier (logistic,
    SVM, random forest), their hyper-parameters searched together for the best inner-CV AUC (multi-class: the
    macro-average of the one-vs-rest AUCs)."""
    steps = [
        ("impute", SimpleImputer(strategy="median")),
        ("variance", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
        ("decorrelate", CorrelationFilter(opts["correlation_threshold"])),
    ]
    inner = StratifiedKFold(opts["inner_folds"], shuffle=True, random_state=seed)
    selector, classifier = opts.get("selector", "lasso"), opts.get("classifier", "logistic")
    scoring = "roc_auc_ovr" if multiclass else "roc_auc"
    if selector == "lasso" and classifier == "logistic":
        pipe = Pipeline([*steps, ("lasso", lasso_logistic(1.0, seed, multiclass))])
        return GridSearchCV(pipe, {"lasso__C": opts["lasso_C"]}, scoring=scoring, cv=inner, n_jobs=1,
                            refit=one_standard_error)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.svm import SVC

    grid: dict[str, list] = {}
    if selector == "lasso":
        steps.append(("select", LassoSelector(seed=seed)))
        grid["select__C"] = opts["lasso_C"]
    else:
        steps.append(("select", MRMR()))
        grid["select__k"] = opts["mrmr_k"]
    if classifier == "logistic":
        steps.append(("clf", LogisticRegression(max_iter=5000)))
    elif classifier == "svm":  # Platt-scaled linear SVM (CalibratedClassifierCV replaces SVC(probability=True))
        steps.append(("clf", CalibratedClassifierCV(SVC(kernel="linear", random_state=seed), ensemble=False)))
        grid["clf__estimator__C"] = opts["svm_C"]
    else:
        steps.append(("clf", RandomForestClassifier(n_estimators=opts["rf_trees"], random_state=seed, n_jobs=1)))
        grid["clf__max_depth"] = opts["rf_max_depth"]
    return GridSearchCV(Pipeline(steps), grid, scoring=scoring, cv=inner, n_jobs=1, error_score=np.nan)


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


class ColumnSubset(TransformerMixin, BaseEstimator):
    def __init__(self, columns: list[str]):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[self.columns]


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


def build_model(name: str, radiomics_columns: list[str], clinical: list[dict], opts: dict, seed: int,
                multiclass: bool = False):
    if name == "clinical":
        clin = [c["name"] for c in clinical]
        return Pipeline([("select", ColumnSubset(clin)), ("encode", clinical_preprocessor(clinical)),
                         ("logit", LogisticRegression(max_iter=1000))])
    if name == "radiomics":
        return Pipeline([("select", ColumnSubset(radiomics_columns)),
                         ("model", radiomics_pipeline(opts, seed, multiclass))])
    if name == "nomogram":
        clin = [c["name"] for c in clinical]
        encode = Pipeline([("select", ColumnSubset(clin)), ("encode", clinical_preprocessor(clinical))])
        return Nomogram(radiomics_pipeline(opts, seed, multiclass), encode, radiomics_columns, opts["inner_folds"],
                        seed, opts["nomogram_clinical_p"])
    raise ValueError(f"unknown model {name!r}")


def concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, float]:
    """Harrell's C of a risk score (higher = earlier event) and its infinitesimal-jackknife variance, as R
    survival::concordance(reverse = TRUE) computes them: a pair is comparable when the earlier time is an
    event (a censored time tied with an event counts as later), tied risks count 1/2, tied event times are
    not comparable. O(n^2) memory: fine for cohorts of a few thousand."""
    c, influence = concordance_influence(time, event, risk)
    return c, float(np.sum(influence ** 2)) if np.isfinite(c) else np.nan


def concordance_influence(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, np.ndarray]:
    """Harrell's C (as `concordance`) and each patient's infinitesimal-jackknife influence on it: the sum of
    squares is its variance; the cross-products of two risk scores' influences on the same patients their
    covariance (R survival::concordance with several predictors)."""
    t, e, r = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(risk, float)
    comparable = e[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :]))
    score = comparable * ((r[:, None] > r[None, :]) + 0.5 * (r[:, None] == r[None, :]))
    n_pairs = comparable.sum()
    if n_pairs == 0:
        return np.nan, np.full(len(t), np.nan)
    c = score.sum() / n_pairs
    # derivative of C = N(w)/D(w) with respect to each case weight, at w = 1 (each case is in rows and columns)
    d_num = score.sum(axis=1) + score.sum(axis=0)
    d_den = comparable.sum(axis=1) + comparable.sum(axis=0)
    return float(c), (d_num - c * d_den) / n_pairs


def univariate_concordance(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C-index of each column as a risk score for survival y = (time, event) columns."""
    return np.array([concordance(y[:, 0], y[:, 1], X[:, j])[0] for j in range(X.shape[1])])


def is_survival(y) -> bool:
    return np.ndim(y) == 2


class ConcordanceFilter(KeepColumns):
    """Keep the k features with the strongest univariate concordance |C - 0.5| (survival y, inside CV)."""

    def __init__(self, k: int = 20):
        self.k = k

    def fit(self, X, y):
        strength = np.nan_to_num(np.abs(univariate_concordance(np.asarray(X, float), np.asarray(y)) - 0.5))
        self.keep_ = np.sort(np.argsort(-strength, kind="stable")[:self.k])
        self.n_features_in_ = np.shape(X)[1]
        return self


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
                   opts: dict, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
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
    for name in MODELS:
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


def training_table(features: pd.DataFrame, cohort: pd.DataFrame, label: str, numeric: bool = True) -> pd.DataFrame:
    """Join features and clinical rows by patient_id; every feature row must have a clinical row. The label is
    made numeric unless it holds class names (numeric=False: multi-class endpoints)."""
    missing = sorted(set(features["patient_id"]) - set(cohort["patient_id"]))
    if missing:
        raise McradError(f"patients {missing[:5]} have features but no cohort row. Fix: the cohort tables are stale; "
                         "rerun the workflow from the cohort sheet.")
    df = features.merge(cohort.drop(columns=["centre"]), on="patient_id", how="left", validate="one_to_one")
    if numeric:
        df[label] = pd.to_numeric(df[label])
    return df


def class_name(value: Any) -> str:
    """A multi-class label as the text of the config's `classes` (a TSV cell read back as 1 or 1.0 is '1')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def class_index(labels: pd.Series, classes: list[str], patients: pd.Series, source: str) -> np.ndarray:
    """Position of each label in the endpoint's `classes`; a label outside them (or missing) is refused, naming
    the patients."""
    text = labels.map(class_name)
    lookup = {c: i for i, c in enumerate(classes)}
    bad = ~text.isin(list(lookup))
    if bad.any():
        shown = [f"{p} ({v!r})" for p, v in zip(patients[bad], labels[bad], strict=True)][:5]
        raise McradError(f"{source}: patients {shown} have a label outside the endpoint's classes {classes}. Fix: "
                         "correct the labels, or list every class in the endpoint's `classes`.")
    return text.map(lookup).to_numpy(int)


def probability_columns(classes: list[str]) -> list[str]:
    return [f"p_{c}" for c in classes]


def class_probabilities(classes: list[str], proba: np.ndarray) -> pd.DataFrame:
    """Multi-class predictions: predicted (the most probable class, the locked decision rule) and p_<class>."""
    proba = np.asarray(proba, float)
    return pd.DataFrame({"predicted": np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)],
                         **dict(zip(probability_columns(classes), proba.T, strict=True))})


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Probability cut maximising sensitivity + specificity on (out-of-fold) training predictions."""
    order = np.unique(p)
    best, cut = -1.0, 0.5
    pos, neg = (y == 1).sum(), (y == 0).sum()
    for t in order:
        j = ((p >= t) & (y == 1)).sum() / pos + ((p < t) & (y == 0)).sum() / neg
        if j > best + 1e-12:
            best, cut = j, float(t)
    return cut


def fit_models(df: pd.DataFrame, y: np.ndarray, radiomics_columns: list[str], clinical: list[dict], label: str,
               opts: dict, seed: int, classes: list[str] | None = None):
    """Each of MODELS in turn: (name, final model fitted on every training row, its description, out-of-fold
    probabilities from the outer folds). classes: a multi-class endpoint's class names (multinomial models)."""
    X = df.drop(columns=[label])
    outer = StratifiedKFold(opts["outer_folds"], shuffle=True, random_state=seed)
    for name in MODELS:
        est = build_model(name, radiomics_columns, clinical, opts, seed, multiclass=classes is not None)
        oof = cross_val_predict(est, X, y, cv=outer, method="predict_proba")
        final = clone(est).fit(X, y)
        yield name, final, describe(name, final, classes), oof  # described before lock() drops the search


def train_endpoint(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], label: str,
                   opts: dict, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit every model; return ({model: (fitted, threshold, info)}, internal out-of-fold predictions)."""
    y = df[label].to_numpy(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < opts["outer_folds"]:
        raise McradError(f"training data have {counts[1]} events and {counts[0]} non-events for '{label}'; "
                         f"{opts['outer_folds']}-fold cross-validation needs at least {opts['outer_folds']} of each. "
                         "Fix: add training centres or lower model.outer_folds.")
    fitted, preds = {}, []
    for name, final, info, proba in fit_models(df, y, radiomics_columns, clinical, label, opts, seed):
        oof = proba[:, 1]
        if name == "nomogram":
            info["scales"] = nomogram_scales(final, df.drop(columns=[label]), clinical)
        fitted[name] = {"model": lock(final), "threshold": youden_threshold(y, oof), "info": info}
        preds.append(pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "stage": "internal",
                                   "model": name, "label": y, "score": oof}))
    return fitted, pd.concat(preds, ignore_index=True)


def train_multiclass(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], label: str,
                     classes: list[str], opts: dict, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Multi-class endpoint (e.g. grade, stage): multinomial clinical logistic model, radiomics model (multinomial
    LASSO logistic by default; selection and classifier tuned on the inner-CV macro one-vs-rest AUC) and a
    multinomial nomogram of the out-of-fold rad-scores (log-ratios against the first class) and the clinical
    factors. The locked decision is the most probable class (no threshold)."""
    y = class_index(df[label], classes, df["patient_id"], f"training cohort table, column {label!r}")
    counts = np.bincount(y, minlength=len(classes))
    if counts.min() < opts["outer_folds"]:
        raise McradError(f"training data have {dict(zip(classes, counts.tolist(), strict=True))} patients per class of "
                         f"'{label}'; {opts['outer_folds']}-fold cross-validation needs at least {opts['outer_folds']} "
                         "of each. Fix: add training centres, merge rare classes, or lower model.outer_folds.")
    fitted, preds = {}, []
    for name, final, info, oof in fit_models(df, y, radiomics_columns, clinical, label, opts, seed, classes):
        fitted[name] = {"model": lock(final), "threshold": None, "info": info}
        preds.append(pd.concat([pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"],
                                              "stage": "internal", "model": name,
                                              "label": np.asarray(classes, dtype=object)[y]}).reset_index(drop=True),
                                class_probabilities(classes, oof)], axis=1))
    return fitted, pd.concat(preds, ignore_index=True)


FUSION_MODELS = ("deep", "fusion_features", "fusion_decision")
DEEP_SCORE, DEEP_EMB = "deep_score", "deep_emb_"


def model_names(endpoint: dict, deep_active: bool) -> tuple[str, ...]:
    """The model registry of an endpoint: every name here is trained, locked, validated and compared."""
    if deep_active and endpoint.get("type", "binary") == "binary":
        return MODELS + FUSION_MODELS
    return MODELS


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


def lock(model):
    """Keep only what predicts: a fitted search is replaced by its best estimator, so the bundle holds no
    fit timings (which differ run to run) and is byte-identical across reruns."""
    if isinstance(model, MeanFusion):
        lock(model.radiomics_)
    elif isinstance(model, Nomogram):
        model.radiomics_ = model.radiomics_.best_estimator_
    elif isinstance(model, Pipeline) and isinstance(model.steps[-1][1], GridSearchCV):
        model.steps[-1] = (model.steps[-1][0], model.steps[-1][1].best_estimator_)
    return model


def uncalibrated(est):
    """The classifier inside a Platt-scaled CalibratedClassifierCV (ensemble=False: one, fitted on all rows)."""
    return est.calibrated_classifiers_[0].estimator if hasattr(est, "calibrated_classifiers_") else est


def weight_rows(est, classes: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-input weights of a fitted final step: impurity importances (random forest), one coefficient row (binary
    logistic, linear SVM), one row per class (multinomial logistic) or per class pair (SVM's one-vs-one)."""
    est = uncalibrated(est)
    if not hasattr(est, "coef_"):
        return {"importance": np.asarray(est.feature_importances_)}
    coef = np.atleast_2d(est.coef_)
    if coef.shape[0] == 1:
        return {"coefficient": coef[0]}
    if hasattr(est, "decision_function_shape"):  # sklearn SVC: one row per pair of classes
        labels = [f"{a} vs {b}" for i, a in enumerate(classes) for b in classes[i + 1:]]
    else:
        labels = list(classes)
    return dict(zip(labels, coef, strict=True))


def weight_table(names, rows: dict[str, np.ndarray], nonzero: bool) -> dict[str, Any]:
    """{input: weight} for one weight row; {input: {class: weight}} for several (multi-class). With nonzero, inputs
    whose weights are all 0 are left out."""
    names = list(map(str, names))
    if len(rows) == 1:
        (w,) = rows.values()
        return {n: float(round(c, 10)) for n, c in zip(names, w, strict=True) if c != 0 or not nonzero}
    return {n: {k: float(round(w[j], 10)) for k, w in rows.items()} for j, n in enumerate(names)
            if not nonzero or any(w[j] != 0 for w in rows.values())}


def describe(name: str, model, classes: list[str] | None = None) -> dict[str, Any]:
    """What a reader of the bundle needs: the chosen penalty and the selected features with coefficients (one per
    class for multi-class endpoints)."""
    if name == "clinical":
        logit = model.named_steps["logit"]
        cols = model.named_steps["encode"].get_feature_names_out()
        return {"coefficients": weight_table(cols, weight_rows(logit, classes), nonzero=False)}
    search = model.named_steps["model"] if name == "radiomics" else model.radiomics_
    pipe = search.best_estimator_
    names = pipe[:-1].get_feature_names_out(search.feature_names_in_)
    if "lasso" in pipe.named_steps:
        selected = weight_table(names, weight_rows(pipe.named_steps["lasso"], classes), nonzero=True)
        info: dict[str, Any] = {"lasso_C": search.best_params_["lasso__C"], "selected_features": selected}
    else:  # selector + classifier: coefficients (logistic, linear SVM) or impurity importances (random forest)
        rows = weight_rows(pipe.named_steps["clf"], classes)
        info = {"hyper_parameters": {k: v for k, v in search.best_params_.items()},
                "selected_features": weight_table(names, rows, nonzero=False)}
    if name == "nomogram":
        enc = model.clinical_names()
        rad = ["radscore"] if len(model.classes_) == 2 else [f"radscore_{c}" for c in classes[1:]]
        info["coefficients"] = weight_table([*rad, *enc], weight_rows(model.logit_, classes), nonzero=False)
    return info


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


def linear_log_odds(est) -> np.ndarray:
    """Coefficients of the log-odds (log-hazard for Cox) in the inputs of a final step linear in them: logistic,
    Cox, or a Platt-scaled linear SVM (log-odds = -a * decision - b). One row per class when multinomial."""
    if hasattr(est, "calibrated_classifiers_"):
        cal = est.calibrated_classifiers_[0]
        if len(cal.calibrators) == 1 and hasattr(uncalibrated(est), "coef_"):
            return -cal.calibrators[0].a_ * np.ravel(uncalibrated(est).coef_)
    elif hasattr(est, "coef_"):
        return np.ravel(est.coef_) if np.ndim(est.coef_) == 1 or len(est.coef_) == 1 else np.asarray(est.coef_)
    raise ValueError(f"the radiomics model ({type(uncalibrated(est)).__name__}) is not linear in the log-odds of its "
                     "inputs")


def linear_design(name: str, model, X: pd.DataFrame,
                  classes: list[str] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The inputs the final linear layer of a locked radiomics or nomogram model sees for the rows of X (selected
    standardised features; or rad-score(s) and encoded clinical factors), with its coefficients (a row per class
    for multi-class models)."""
    if name == "radiomics":
        inner = model.named_steps["model"]
        pipe = getattr(inner, "best_estimator_", inner)  # a survival CoxSearch keeps its refitted pipeline
        cols = model.named_steps["select"].columns
        Z = pipe[:-1].transform(X[cols])
        names = list(map(str, pipe[:-1].get_feature_names_out(np.asarray(cols))))
        coef = linear_log_odds(pipe.steps[-1][1])
    elif name == "nomogram":
        Z = model._design(model.radscore(X), X)
        multiclass = not isinstance(model, SurvivalNomogram) and len(model.classes_) > 2
        rad = [f"rad-score {c}" for c in classes[1:]] if multiclass else ["rad-score"]
        names = [*rad, *model.clinical_names()]
        coef = linear_log_odds(model.cox_ if isinstance(model, SurvivalNomogram) else model.logit_)
    else:
        raise ValueError(f"SHAP values are computed for the radiomics and nomogram models, not {name!r}")
    return names, np.asarray(Z, float), coef


def linear_shap(name: str, model, X: pd.DataFrame, classes: list[str] | None = None) -> pd.DataFrame:
    """Exact SHAP values of a linear(-logit or Cox) model on its training rows: for a model linear in its inputs
    z with independent (interventional) background equal to the training rows, phi_j = beta_j (z_j - mean z_j),
    in log-odds (log-hazard) units; they sum to the linear predictor minus its training mean. Long table:
    patient_id, feature, value (the input z), shap. Features with a zero coefficient are left out. Multi-class
    models: one set per class (column `class`), of that class's multinomial linear predictor."""
    names, Z, coef = linear_design(name, model, X, classes)
    if coef.ndim == 2:
        return pd.concat([_shap_rows(names, Z, row, X).assign(**{"class": c}) for c, row in
                          zip(classes, coef, strict=True)], ignore_index=True)
    return _shap_rows(names, Z, coef, X)


def _shap_rows(names: list[str], Z: np.ndarray, coef: np.ndarray, X: pd.DataFrame) -> pd.DataFrame:
    phi = coef * (Z - Z.mean(axis=0))
    keep = np.flatnonzero(coef != 0)
    return pd.DataFrame({"patient_id": np.repeat(X["patient_id"].to_numpy(), len(keep)),
                         "feature": np.tile(np.asarray(names)[keep], len(X)),
                         "value": Z[:, keep].ravel(), "shap": phi[:, keep].ravel()})


def shap_summary(shap: pd.DataFrame) -> pd.DataFrame:
    """Per-feature mean |SHAP| (importance; per class for multi-class models), most important first. (Their mean
    is 0 by construction.)"""
    keys = ["class", "feature"] if "class" in shap.columns else ["feature"]
    out = shap.groupby(keys)["shap"].agg(mean_abs_shap=lambda v: np.abs(v).mean()).reset_index()
    return out.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def software_versions() -> dict[str, str]:
    import radiomics
    import SimpleITK

    return {"mcrad": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
            "SimpleITK": SimpleITK.Version_VersionString(),
            "pyradiomics": radiomics.__version__}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_bundle(out: Path, name: str, entry: dict[str, Any], features: list[str], clinical: list[dict],
                endpoint: dict, training: dict[str, Any]) -> None:
    """Lock a model: model.pkl + meta.json, and manifest.json with the sha256 of each."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "model.pkl", "wb") as fh:
        pickle.dump(entry["model"], fh, protocol=5)
    meta = {"model": name, "endpoint": endpoint, "threshold": entry["threshold"], "features": features,
            "clinical": clinical, "training": training, "description": entry["info"],
            "software": software_versions()}
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    manifest = {"files": {f: sha256(out / f) for f in ("model.pkl", "meta.json")}}
    manifest["bundle_sha256"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def load_bundle(path: Path) -> tuple[Any, dict]:
    """Load a locked bundle after checking every file against its manifest."""
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise McradError(f"{path} is not a model bundle (no manifest.json).")
    manifest = json.loads(manifest_file.read_text())
    for f, digest in manifest["files"].items():
        if not (path / f).is_file() or sha256(path / f) != digest:
            raise McradError(f"bundle {path}: {f} does not match its manifest sha256; the locked model was "
                             "changed after training. Fix: retrain, or restore the original bundle.")
    with open(path / "model.pkl", "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - our own bundle, verified against the manifest above
    return model, json.loads((path / "meta.json").read_text())

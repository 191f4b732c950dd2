"""Feature selection and the radiomics pipeline: filters and selectors fitted inside cross-validation, the
clinical encoder, and the inner-CV search of the radiomics model."""
from __future__ import annotations

import logging

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.feature_selection import VarianceThreshold
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from mcrad.stats import univariate_auc, univariate_concordance

log = logging.getLogger("mcrad")


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


def is_survival(y) -> bool:
    return np.ndim(y) == 2


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


class ConcordanceFilter(KeepColumns):
    """Keep the k features with the strongest univariate concordance |C - 0.5| (survival y, inside CV)."""

    def __init__(self, k: int = 20):
        self.k = k

    def fit(self, X, y):
        strength = np.nan_to_num(np.abs(univariate_concordance(np.asarray(X, float), np.asarray(y)) - 0.5))
        self.keep_ = np.sort(np.argsort(-strength, kind="stable")[:self.k])
        self.n_features_in_ = np.shape(X)[1]
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


class ColumnSubset(TransformerMixin, BaseEstimator):
    def __init__(self, columns: list[str]):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[self.columns]


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



"""Model: stage 1 on the training centre(s) only. Clinical model, radiomics model (LASSO logistic with
correlation filtering, everything fitted inside cross-validation) and a nomogram (rad-score + clinical
factors). Internal validation from outer folds; final models locked as bundles with a sha256 manifest."""
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


class CorrelationFilter(TransformerMixin, BaseEstimator):
    """Keep one feature per group of features whose |Pearson r| exceeds `threshold`: the one most related to
    the outcome (univariate |AUC - 0.5| on the data it is fitted on, so inside CV it never sees test folds)."""

    def __init__(self, threshold: float = 0.9):
        self.threshold = threshold

    def fit(self, X, y=None):
        X = np.asarray(X, float)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.abs(np.corrcoef(X, rowvar=False)) if X.shape[1] > 1 else np.zeros((1, 1))
        r = np.nan_to_num(np.atleast_2d(r), nan=0.0)
        order = np.arange(X.shape[1])
        if y is not None and len(np.unique(y)) == 2:
            relevance = np.abs(univariate_auc(X, np.asarray(y)) - 0.5)
            order = np.argsort(-relevance, kind="stable")
        keep: list[int] = []
        for j in order:
            if all(r[j, k] <= self.threshold for k in keep):
                keep.append(int(j))
        self.keep_ = np.array(sorted(keep), dtype=int)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        check_is_fitted(self, "keep_")
        return np.asarray(X, float)[:, self.keep_]

    def get_feature_names_out(self, input_features=None):
        names = np.asarray(input_features) if input_features is not None else np.arange(self.n_features_in_)
        return names[self.keep_]


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


def radiomics_pipeline(opts: dict, seed: int) -> GridSearchCV:
    pipe = Pipeline([
        ("impute", SimpleImputer(strategy="median")),
        ("variance", VarianceThreshold(0.0)),
        ("scale", StandardScaler()),
        ("decorrelate", CorrelationFilter(opts["correlation_threshold"])),
        ("lasso", LogisticRegression(l1_ratio=1.0, solver="liblinear", max_iter=5000, random_state=seed)),
    ])
    inner = StratifiedKFold(opts["inner_folds"], shuffle=True, random_state=seed)
    return GridSearchCV(pipe, {"lasso__C": opts["lasso_C"]}, scoring="roc_auc", cv=inner, n_jobs=1,
                        refit=one_standard_error)


class ColumnSubset(TransformerMixin, BaseEstimator):
    def __init__(self, columns: list[str]):
        self.columns = columns

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X[self.columns]


class Nomogram(ClassifierMixin, BaseEstimator):
    """Logistic regression of the rad-score and clinical factors. The rad-score it learns from is out-of-fold
    (inner CV) so the nomogram does not trust an over-fitted score; at prediction the final radiomics model
    gives the rad-score (its linear predictor)."""

    def __init__(self, radiomics, clinical, radiomics_columns: list[str], inner_folds: int = 3, seed: int = 0):
        self.radiomics, self.clinical = radiomics, clinical
        self.radiomics_columns, self.inner_folds, self.seed = radiomics_columns, inner_folds, seed

    def fit(self, X: pd.DataFrame, y):
        y = np.asarray(y)
        cv = StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed)
        Xr = X[self.radiomics_columns]
        rad_oof = cross_val_predict(clone(self.radiomics), Xr, y, cv=cv, method="decision_function")
        self.radiomics_ = clone(self.radiomics).fit(Xr, y)
        self.clinical_ = clone(self.clinical).fit(X, y)
        self.logit_ = LogisticRegression(max_iter=1000).fit(self._design(rad_oof, X), y)
        self.classes_ = self.logit_.classes_
        return self

    def _design(self, radscore: np.ndarray, X: pd.DataFrame) -> np.ndarray:
        return np.column_stack([radscore, self.clinical_.transform(X)])

    def radscore(self, X: pd.DataFrame) -> np.ndarray:
        return self.radiomics_.decision_function(X[self.radiomics_columns])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.logit_.predict_proba(self._design(self.radscore(X), X))

    def predict(self, X):
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def build_model(name: str, radiomics_columns: list[str], clinical: list[dict], opts: dict, seed: int):
    if name == "clinical":
        clin = [c["name"] for c in clinical]
        return Pipeline([("select", ColumnSubset(clin)), ("encode", clinical_preprocessor(clinical)),
                         ("logit", LogisticRegression(max_iter=1000))])
    if name == "radiomics":
        return Pipeline([("select", ColumnSubset(radiomics_columns)), ("model", radiomics_pipeline(opts, seed))])
    if name == "nomogram":
        clin = [c["name"] for c in clinical]
        encode = Pipeline([("select", ColumnSubset(clin)), ("encode", clinical_preprocessor(clinical))])
        return Nomogram(radiomics_pipeline(opts, seed), encode, radiomics_columns, opts["inner_folds"], seed)
    raise ValueError(f"unknown model {name!r}")


def training_table(features: pd.DataFrame, cohort: pd.DataFrame, label: str) -> pd.DataFrame:
    """Join features and clinical rows by patient_id; every feature row must have a clinical row."""
    missing = sorted(set(features["patient_id"]) - set(cohort["patient_id"]))
    if missing:
        raise McradError(f"patients {missing[:5]} have features but no cohort row. Fix: the cohort tables are stale; "
                         "rerun the workflow from the cohort sheet.")
    df = features.merge(cohort.drop(columns=["centre"]), on="patient_id", how="left", validate="one_to_one")
    df[label] = pd.to_numeric(df[label])
    return df


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


def train_endpoint(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], label: str,
                   opts: dict, seed: int) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit every model; return ({model: (fitted, threshold, info)}, internal out-of-fold predictions)."""
    y = df[label].to_numpy(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < opts["outer_folds"]:
        raise McradError(f"training data have {counts[1]} events and {counts[0]} non-events for '{label}'; "
                         f"{opts['outer_folds']}-fold cross-validation needs at least {opts['outer_folds']} of each. "
                         "Fix: add training centres or lower model.outer_folds.")
    X = df.drop(columns=[label])
    outer = StratifiedKFold(opts["outer_folds"], shuffle=True, random_state=seed)
    fitted, preds = {}, []
    for name in MODELS:
        est = build_model(name, radiomics_columns, clinical, opts, seed)
        oof = cross_val_predict(est, X, y, cv=outer, method="predict_proba")[:, 1]
        final = clone(est).fit(X, y)
        info = describe(name, final)
        if name == "nomogram":
            info["scales"] = nomogram_scales(final, X, clinical)
        fitted[name] = {"model": lock(final), "threshold": youden_threshold(y, oof), "info": info}
        preds.append(pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "stage": "internal",
                                   "model": name, "label": y, "score": oof}))
    return fitted, pd.concat(preds, ignore_index=True)


def lock(model):
    """Keep only what predicts: a fitted search is replaced by its best estimator, so the bundle holds no
    fit timings (which differ run to run) and is byte-identical across reruns."""
    if isinstance(model, Nomogram):
        model.radiomics_ = model.radiomics_.best_estimator_
    elif isinstance(model, Pipeline) and isinstance(model.steps[-1][1], GridSearchCV):
        model.steps[-1] = (model.steps[-1][0], model.steps[-1][1].best_estimator_)
    return model


def describe(name: str, model) -> dict[str, Any]:
    """What a reader of the bundle needs: the chosen penalty and the selected features with coefficients."""
    if name == "clinical":
        logit = model.named_steps["logit"]
        cols = model.named_steps["encode"].get_feature_names_out()
        return {"coefficients": dict(zip(map(str, cols), logit.coef_[0].round(10).tolist(), strict=True))}
    search = model.named_steps["model"] if name == "radiomics" else model.radiomics_
    pipe = search.best_estimator_
    names = pipe[:-1].get_feature_names_out(search.feature_names_in_)
    coef = pipe.named_steps["lasso"].coef_[0]
    selected = {str(n): float(round(c, 10)) for n, c in zip(names, coef, strict=True) if c != 0}
    info: dict[str, Any] = {"lasso_C": search.best_params_["lasso__C"], "selected_features": selected}
    if name == "nomogram":
        enc = model.clinical_.named_steps["encode"].get_feature_names_out()
        info["coefficients"] = dict(zip(["radscore", *map(str, enc)], model.logit_.coef_[0].round(10).tolist(),
                                        strict=True))
    return info


def nomogram_scales(model: Nomogram, X: pd.DataFrame, clinical: list[dict]) -> dict[str, Any]:
    """Linear-predictor contribution of each nomogram predictor over its training range, in original units,
    relative to a baseline patient (training median/mode): what a printed nomogram draws."""
    beta = model.logit_.coef_[0]
    rad = model.radscore(X)
    base = {c["name"]: (X[c["name"]].median() if c["type"] != "categorical" else X[c["name"]].mode().iloc[0])
            for c in clinical}
    base_row = pd.DataFrame([base])
    base_enc = model.clinical_.transform(base_row)[0]
    terms = [{"name": "rad-score", "values": np.linspace(rad.min(), rad.max(), 5).round(3).tolist(),
              "contribution": (beta[0] * np.linspace(rad.min(), rad.max(), 5)).tolist()}]
    for c in clinical:
        col = X[c["name"]]
        values = sorted(col.dropna().unique()) if c["type"] == "categorical" or col.nunique() <= 5 \
            else np.linspace(col.min(), col.max(), 5).round(1).tolist()
        rows = pd.DataFrame([{**base, c["name"]: v} for v in values])
        enc = model.clinical_.transform(rows)
        terms.append({"name": c["name"], "values": [str(v) if c["type"] == "categorical" else float(v) for v in values],
                      "contribution": ((enc - base_enc) @ beta[1:]).tolist()})
    offset = float(model.logit_.intercept_[0] + base_enc @ beta[1:])
    return {"terms": terms, "intercept": offset}


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

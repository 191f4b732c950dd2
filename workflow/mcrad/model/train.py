"""Training of binary and multi-class endpoints: the three models, the outer cross-validation that gives the
internal (out-of-fold) predictions, the locked threshold, and what a bundle records of each model."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline

from mcrad.endpoints import class_index, class_probabilities
from mcrad.errors import McradError
from mcrad.model.nomogram import Nomogram, nomogram_scales
from mcrad.model.registry import MODELS
from mcrad.model.selection import ColumnSubset, clinical_preprocessor, radiomics_pipeline


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
               opts: dict, seed: int, classes: list[str] | None = None, models: tuple[str, ...] | None = None):
    """Each of MODELS (or `models`) in turn: (name, final model fitted on every training row, its description,
    out-of-fold probabilities from the outer folds). classes: a multi-class endpoint's class names."""
    X = df.drop(columns=[label])
    outer = StratifiedKFold(opts["outer_folds"], shuffle=True, random_state=seed)
    for name in models or MODELS:
        est = build_model(name, radiomics_columns, clinical, opts, seed, multiclass=classes is not None)
        oof = cross_val_predict(est, X, y, cv=outer, method="predict_proba")
        final = clone(est).fit(X, y)
        yield name, final, describe(name, final, classes), oof  # described before lock() drops the search


def train_binary(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], label: str,
                 opts: dict, seed: int, models: tuple[str, ...] | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Fit every model (or `models`); return ({model: (fitted, threshold, info)}, internal out-of-fold
    predictions)."""
    y = df[label].to_numpy(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < opts["outer_folds"]:
        raise McradError(f"training data have {counts[1]} events and {counts[0]} non-events for '{label}'; "
                         f"{opts['outer_folds']}-fold cross-validation needs at least {opts['outer_folds']} of each. "
                         "Fix: add training centres or lower model.outer_folds.")
    fitted, preds = {}, []
    for name, final, info, proba in fit_models(df, y, radiomics_columns, clinical, label, opts, seed,
                                                  models=models):
        oof = proba[:, 1]
        if name == "nomogram":
            info["scales"] = nomogram_scales(final, df.drop(columns=[label]), clinical)
        fitted[name] = {"model": lock(final), "threshold": youden_threshold(y, oof), "info": info}
        preds.append(pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "stage": "internal",
                                   "model": name, "label": y, "score": oof}))
    return fitted, pd.concat(preds, ignore_index=True)


def train_multiclass(df: pd.DataFrame, radiomics_columns: list[str], clinical: list[dict], label: str,
                     classes: list[str], opts: dict, seed: int, models: tuple[str, ...] | None = None
                     ) -> tuple[dict[str, Any], pd.DataFrame]:
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
    for name, final, info, oof in fit_models(df, y, radiomics_columns, clinical, label, opts, seed, classes,
                                                models):
        fitted[name] = {"model": lock(final), "threshold": None, "info": info}
        preds.append(pd.concat([pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"],
                                              "stage": "internal", "model": name,
                                              "label": np.asarray(classes, dtype=object)[y]}).reset_index(drop=True),
                                class_probabilities(classes, oof)], axis=1))
    return fitted, pd.concat(preds, ignore_index=True)


def lock(model):
    """Keep only what predicts: a fitted search is replaced by its best estimator (inside a pipeline, and as the
    rad-score model of a nomogram or decision-level fusion), so the bundle holds no fit timings (which differ
    run to run) and is byte-identical across reruns."""
    if isinstance(model, GridSearchCV):
        return model.best_estimator_
    if isinstance(model, Pipeline):
        model.steps[-1] = (model.steps[-1][0], lock(model.steps[-1][1]))
    elif hasattr(model, "radiomics_"):
        model.radiomics_ = lock(model.radiomics_)
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



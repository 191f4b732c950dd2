"""Exact SHAP values of the locked linear models (radiomics and nomogram) on the training centre."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mcrad.model.survival import SurvivalNomogram
from mcrad.model.train import uncalibrated


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



"""The curves of the report, as tables validate writes (validation/<endpoint>/curves/<kind>.tsv) and the report
draws: ROC, calibration and decision curves (binary), Kaplan-Meier curves of the locked risk groups (survival),
confusion matrices (multi-class); each per panel (internal CV, each external centre, the external centres
pooled) and model, in that order."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mcrad.endpoints import class_index, probability_columns
from mcrad.stats import logrank_p

DECISION_THRESHOLDS = np.round(np.arange(0.05, 0.81, 0.05), 2)


def panels(pred: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) of the report's panels: internal CV, each external centre, pooled external centres."""
    out = [("internal (CV)", pred[pred["stage"] == "internal"])]
    ext = pred[pred["stage"] == "external"]
    out += [(f"{c} (external)", g) for c, g in ext.groupby("centre")]
    if ext["centre"].nunique() > 1:
        out.append(("pooled external", ext))
    return out


def _per_model(pred: pd.DataFrame, table) -> pd.DataFrame:
    """table(rows of one model in one panel) for every panel and model, stacked with `panel` and `model`."""
    frames = []
    for title, g in panels(pred):
        for model, gm in g.groupby("model", sort=False):
            t = table(gm)
            if t is not None and len(t):
                frames.append(t.assign(panel=title, model=model))
    if not frames:
        return pd.DataFrame(columns=["panel", "model"])
    df = pd.concat(frames, ignore_index=True)
    return df[["panel", "model", *(c for c in df.columns if c not in ("panel", "model"))]]


def _binary(gm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray] | None:
    y, s = gm["label"].to_numpy(int), gm["score"].to_numpy(float)
    return None if y.min() == y.max() else (y, s)


def calibration_curve(y: np.ndarray, p: np.ndarray, bins: int = 5) -> pd.DataFrame:
    """Observed event rate against mean predicted risk in quantile bins of the prediction."""
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    df = pd.DataFrame({"bin": which, "p": p, "y": y}).groupby("bin").agg(predicted=("p", "mean"),
                                                                            observed=("y", "mean"), n=("y", "size"))
    return df.reset_index(drop=True)


def decision_curve(y: np.ndarray, scores: dict[str, np.ndarray], thresholds: np.ndarray) -> pd.DataFrame:
    """Net benefit of each model and of treating all/none (dcurves, Vickers & Elkin 2006)."""
    from dcurves import dca

    data = pd.DataFrame({"outcome": np.asarray(y, int), **scores})
    out = dca(data=data, outcome="outcome", modelnames=list(scores), thresholds=thresholds)
    return out[["model", "threshold", "net_benefit"]]


def roc_table(pred: pd.DataFrame, thresholds: dict | None = None) -> pd.DataFrame:
    """ROC curve points (fpr, tpr) per panel and model."""
    from sklearn.metrics import roc_curve

    def table(gm):
        ys = _binary(gm)
        if ys is None:
            return None
        fpr, tpr, _ = roc_curve(*ys)
        return pd.DataFrame({"fpr": fpr, "tpr": tpr})

    return _per_model(pred, table)


def calibration_table(pred: pd.DataFrame, thresholds: dict | None = None) -> pd.DataFrame:
    """Calibration curve (quintiles of predicted risk: mean predicted, observed rate, n) per panel and model."""
    return _per_model(pred, lambda gm: None if _binary(gm) is None else calibration_curve(*_binary(gm)))


def decision_table(pred: pd.DataFrame, thresholds: dict | None = None) -> pd.DataFrame:
    """Net benefit over threshold probabilities per panel and model, plus `treat all` (from the panel's
    prevalence) and `treat none` (0) per panel."""
    def table(gm):
        ys = _binary(gm)
        if ys is None:
            return None
        dc = decision_curve(ys[0], {"m": ys[1]}, DECISION_THRESHOLDS)
        return dc.loc[dc["model"] == "m", ["threshold", "net_benefit"]].reset_index(drop=True)

    models = _per_model(pred, table)
    references = []
    for title, g in panels(pred):
        prev = g.drop_duplicates("patient_id")["label"].to_numpy(int).mean()
        t = DECISION_THRESHOLDS
        references += [pd.DataFrame({"panel": title, "model": "treat all", "threshold": t,
                                     "net_benefit": prev - (1 - prev) * t / (1 - t)}),
                       pd.DataFrame({"panel": title, "model": "treat none", "threshold": t, "net_benefit": 0.0})]
    return pd.concat([models, *references], ignore_index=True)


def km_curves(pred: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Kaplan-Meier survival of the locked risk groups (lifelines): group, time, survival."""
    from lifelines import KaplanMeierFitter

    rows = []
    high = pred["score"].to_numpy(float) >= threshold
    for name, mask in (("low risk", ~high), ("high risk", high)):
        if mask.any():
            km = KaplanMeierFitter().fit(pred["time"][mask], pred["label"][mask])
            sf = km.survival_function_
            rows.append(pd.DataFrame({"group": name, "time": sf.index.to_numpy(),
                                      "survival": sf.iloc[:, 0].to_numpy()}))
    return pd.concat(rows, ignore_index=True)


def km_table(pred: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """Kaplan-Meier curves of the risk groups each model locked on training (risk >= threshold is high), per
    panel and model, with the log-rank p between the groups."""
    def table(gm):
        threshold = thresholds[gm["model"].iloc[0]]
        high = gm["score"].to_numpy(float) >= threshold
        p = logrank_p(gm["time"].to_numpy(float), gm["label"].to_numpy(int), high)
        return km_curves(gm, threshold).assign(logrank_p=p)

    return _per_model(pred, table)


def confusion(pred: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Confusion matrix of the most probable class: rows true class, columns predicted class (counts)."""
    from sklearn.metrics import confusion_matrix

    y = class_index(pred["label"], classes, pred["patient_id"], "predictions table, column 'label'")
    called = np.argmax(pred[probability_columns(classes)].to_numpy(float), axis=1)
    return pd.DataFrame(confusion_matrix(y, called, labels=list(range(len(classes)))), index=classes, columns=classes)


def confusion_table(pred: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Confusion matrices per panel and model as rows true, predicted, count."""
    def table(gm):
        cm = confusion(gm, classes)
        return pd.DataFrame([{"true": t, "predicted": p, "count": int(cm.loc[t, p])} for t in classes
                             for p in classes])

    return _per_model(pred, table)

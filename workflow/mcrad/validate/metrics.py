"""Metrics of locked models on groups of patients (each model x centre x stage, plus the external centres
pooled) and paired tests between models on the same patients: binary (AUC, threshold metrics, calibration),
multi-class (macro one-vs-rest AUC, Hand-Till M, per-class metrics) and survival (C-index, locked risk groups,
time-dependent AUC). The statistics themselves are mcrad.stats."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mcrad.endpoints import class_index, probability_columns
from mcrad.errors import McradError
from mcrad.stats import (
    auc_ci,
    calibration,
    concordance,
    concordance_paired,
    delong_paired,
    hand_till,
    influence_paired,
    logrank_p,
    macro_auc,
    td_auc,
    wald_interval,
    wilson,
)


def _centre_groups(predictions: pd.DataFrame):
    """(centre, stage) groups of a predictions table, plus the external centres pooled when there are several."""
    ext = predictions[predictions["stage"] == "external"].assign(centre="pooled")
    frames = [predictions] + ([ext] if predictions.loc[predictions["stage"] == "external", "centre"].nunique() > 1
                              else [])
    yield from pd.concat(frames).groupby(["centre", "stage"], sort=False)


def _paired_groups(predictions: pd.DataFrame):
    """Per centre and stage (and pooled external centres): the patients' scores, one column per model, with their
    outcome rows (label[, time]) in the same order, and the models in order of appearance."""
    outcome = [c for c in ("label", "time") if c in predictions.columns]
    for (centre, stage), g in _centre_groups(predictions):
        wide = g.pivot_table(index="patient_id", columns="model", values="score", aggfunc="first")
        yield centre, stage, wide, g.groupby("patient_id")[outcome].first().loc[wide.index], list(dict.fromkeys(
            g["model"]))


def _metric_groups(predictions: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(model, centre, stage) groups, plus each model's external centres pooled when there are several."""
    ext = predictions[predictions["stage"] == "external"]
    groups = [(k, g) for k, g in predictions.groupby(["model", "centre", "stage"], sort=False)]
    groups += [((m, "pooled", "external"), g) for m, g in ext.groupby("model", sort=False)
               if g["centre"].nunique() > 1]
    return groups


def binary_metric_row(pred: pd.DataFrame, threshold: float, alpha: float) -> dict:
    y, s = pred["label"].to_numpy(int), pred["score"].to_numpy(float)
    row = {"n": len(y), "events": int(y.sum())}
    if 0 < y.sum() < len(y):
        row["auc"], row["auc_lo"], row["auc_hi"] = auc_ci(y, s, alpha)
        row["note"] = ""
    else:
        row.update(auc=np.nan, auc_lo=np.nan, auc_hi=np.nan, note="one class only: AUC undefined")
    called = s >= threshold
    tp, tn = int((called & (y == 1)).sum()), int((~called & (y == 0)).sum())
    row["threshold"] = threshold
    row["sensitivity"] = tp / y.sum() if y.sum() else np.nan
    row["specificity"] = tn / (len(y) - y.sum()) if len(y) > y.sum() else np.nan
    row["sens_lo"], row["sens_hi"] = wilson(tp, int(y.sum()), alpha)
    row["spec_lo"], row["spec_hi"] = wilson(tn, int(len(y) - y.sum()), alpha)
    n_called = int(called.sum())
    row["ppv"] = tp / n_called if n_called else np.nan
    row["ppv_lo"], row["ppv_hi"] = wilson(tp, n_called, alpha)
    row["npv"] = tn / (len(y) - n_called) if len(y) > n_called else np.nan
    row["npv_lo"], row["npv_hi"] = wilson(tn, len(y) - n_called, alpha)
    row["accuracy"] = (tp + tn) / len(y)
    row["acc_lo"], row["acc_hi"] = wilson(tp + tn, len(y), alpha)
    row["brier"] = float(np.mean((s - y) ** 2))
    row["cal_intercept"], row["cal_slope"] = calibration(y, s)
    return row


def summarise_binary(predictions: pd.DataFrame, thresholds: dict[str, float], alpha: float) -> pd.DataFrame:
    """metrics.tsv of a binary endpoint: one row per model x centre x stage, plus the pooled external centres."""
    rows = []
    for (model, centre, stage), g in _metric_groups(predictions):
        rows.append({"model": model, "centre": centre, "stage": stage,
                     **binary_metric_row(g, thresholds[model], alpha)})
    return pd.DataFrame(rows)


def paired_delong(predictions: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests between every pair of models, per centre and stage (and pooled external)."""
    rows = []
    for centre, stage, wide, outcome, models in _paired_groups(predictions):
        label = outcome["label"].to_numpy(int)
        if label.min() == label.max():
            continue
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                both = wide[[a, b]].notna().all(axis=1).to_numpy()  # the patients both models scored
                if not both.any() or label[both].min() == label[both].max():
                    continue
                diff, p = delong_paired(label[both], wide[a].to_numpy()[both], wide[b].to_numpy()[both])
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": int(both.sum()),
                             "auc_difference": diff, "p_delong": p})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "auc_difference", "p_delong"])


def multiclass_metric_row(pred: pd.DataFrame, classes: list[str], alpha: float, ordinal: bool) -> dict:
    """Metrics of one model on one group of patients: macro one-vs-rest AUC (interval from the DeLong influences,
    see ovr_influence), Hand-Till M, accuracy of the most probable class (Wilson interval), balanced accuracy,
    Cohen's kappa (quadratic weights for an ordinal endpoint), multi-class Brier score and log loss; per class:
    one-vs-rest AUC (DeLong CI), sensitivity (recall) and PPV with Wilson intervals, calibration intercept and
    slope of its probability."""
    from sklearn.metrics import cohen_kappa_score

    y = class_index(pred["label"], classes, pred["patient_id"], "predictions table, column 'label'")
    proba = pred[probability_columns(classes)].to_numpy(float)
    n, k_all = len(y), range(len(classes))
    called = np.argmax(proba, axis=1)
    row: dict = {"n": n, **{f"n_{c}": int((y == k).sum()) for k, c in enumerate(classes)}}
    auc, influence, present = macro_auc(y, proba)
    row["auc"] = auc
    row["auc_lo"], row["auc_hi"] = wald_interval(auc, float(np.sum(influence ** 2)), alpha)
    row["hand_till"] = hand_till(y, proba)
    correct = int((called == y).sum())
    row["accuracy"] = correct / n
    row["acc_lo"], row["acc_hi"] = wilson(correct, n, alpha)
    row["balanced_accuracy"] = float(np.mean([(called[y == k] == k).mean() for k in k_all if (y == k).any()]))
    row["kappa"] = float(cohen_kappa_score(y, called, labels=list(k_all), weights="quadratic" if ordinal else None))
    onehot = (y[:, None] == np.arange(len(classes))[None, :]).astype(float)
    row["brier"] = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    row["log_loss"] = float(-np.mean(np.log(np.clip(proba[np.arange(n), y], 1e-15, 1.0))))
    for k, c in enumerate(classes):
        pos, hit = y == k, called == k
        if 0 < pos.sum() < n:
            row[f"auc_{c}"], row[f"auc_{c}_lo"], row[f"auc_{c}_hi"] = auc_ci(pos.astype(int), proba[:, k], alpha)
        else:
            row[f"auc_{c}"] = row[f"auc_{c}_lo"] = row[f"auc_{c}_hi"] = np.nan
        tp = int((pos & hit).sum())
        row[f"sens_{c}"] = tp / pos.sum() if pos.any() else np.nan
        row[f"sens_{c}_lo"], row[f"sens_{c}_hi"] = wilson(tp, int(pos.sum()), alpha)
        row[f"ppv_{c}"] = tp / hit.sum() if hit.any() else np.nan
        row[f"ppv_{c}_lo"], row[f"ppv_{c}_hi"] = wilson(tp, int(hit.sum()), alpha)
        row[f"cal_intercept_{c}"], row[f"cal_slope_{c}"] = calibration(pos.astype(int), proba[:, k])
    absent = [c for k, c in enumerate(classes) if k not in present]
    single = [c for k, c in enumerate(classes) if (y == k).sum() == 1 or (y != k).sum() == 1]
    notes = []
    if len(present) < 2:
        notes.append("fewer than two classes: AUC undefined")
    elif absent:
        notes.append(f"class(es) {absent} absent: macro AUC over the others")
    if single:
        notes.append(f"class(es) {single} with one patient: no interval")
    row["note"] = "; ".join(notes)
    return row


def summarise_multiclass(predictions: pd.DataFrame, classes: list[str], alpha: float,
                         ordinal: bool = False) -> pd.DataFrame:
    """metrics.tsv of a multi-class endpoint: one row per model x centre x stage, plus pooled external centres."""
    rows = [{"model": model, "centre": centre, "stage": stage,
             **multiclass_metric_row(g, classes, alpha, ordinal)}
            for (model, centre, stage), g in _metric_groups(predictions)]
    return pd.DataFrame(rows)


def paired_macro_auc(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Paired tests of the macro one-vs-rest AUC between every pair of models on the same patients, per centre and
    stage (and pooled external): difference and two-sided Wald p, its variance from the two macro AUCs' DeLong
    influences (for a binary endpoint this is exactly the paired DeLong test)."""
    rows = []
    for (centre, stage), g in _centre_groups(predictions):
        models = list(dict.fromkeys(g["model"]))
        by_model = {m: g[g["model"] == m].sort_values("patient_id", kind="stable") for m in models}
        ids = by_model[models[0]]["patient_id"].to_numpy()
        y = class_index(by_model[models[0]]["label"], classes, by_model[models[0]]["patient_id"],
                        "predictions table, column 'label'")
        macro = {}
        for mod in models:
            if not np.array_equal(by_model[mod]["patient_id"].to_numpy(), ids):
                raise McradError(f"{centre} ({stage}): models {models[0]} and {mod} scored different patients; "
                                 "paired tests need the same patients. Fix: rerun validation.")
            macro[mod] = macro_auc(y, by_model[mod][probability_columns(classes)].to_numpy(float))
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                (auc_a, psi_a, _), (auc_b, psi_b, _) = macro[a], macro[b]
                diff, p = influence_paired(auc_a, psi_a, auc_b, psi_b)
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": len(y),
                             "auc_difference": diff, "p_macro_auc": p})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "auc_difference", "p_macro_auc"])


def survival_metric_row(pred: pd.DataFrame, threshold: float, alpha: float, horizons: list[float]) -> dict:
    """C-index (IJ variance as R survival::concordance, Wald interval clipped to [0, 1]), the locked risk groups
    (risk >= threshold is high) with their log-rank p, and time-dependent AUCs."""
    t, e, r = pred["time"].to_numpy(float), pred["label"].to_numpy(int), pred["score"].to_numpy(float)
    row: dict = {"n": len(t), "events": int(e.sum())}
    c, var = concordance(t, e, r)
    c_lo, c_hi = wald_interval(c, var, alpha)
    row.update(c_index=c, c_lo=c_lo, c_hi=c_hi)
    high = r >= threshold
    row.update(threshold=threshold, n_high=int(high.sum()), events_high=int(e[high].sum()),
               events_low=int(e[~high].sum()), logrank_p=logrank_p(t, e, high))
    for h in horizons:
        row[f"td_auc_{h:g}"] = td_auc(t, e, r, h)
    row["note"] = "" if np.isfinite(c) else "no comparable pairs: C-index undefined"
    return row


def summarise_survival(predictions: pd.DataFrame, thresholds: dict[str, float], alpha: float,
                       horizons: list[float]) -> pd.DataFrame:
    """metrics.tsv of a survival endpoint: one row per model x centre x stage, plus pooled external centres."""
    rows = []
    for (model, centre, stage), g in _metric_groups(predictions):
        rows.append({"model": model, "centre": centre, "stage": stage,
                     **survival_metric_row(g, thresholds[model], alpha, horizons)})
    return pd.DataFrame(rows)


def paired_concordance(predictions: pd.DataFrame) -> pd.DataFrame:
    """Survival endpoints: paired C-index tests between every pair of models on the same patients, per centre and
    stage (and pooled external). Groups without an event (no comparable pair) are left out."""
    rows = []
    for centre, stage, wide, outcome, models in _paired_groups(predictions):
        t, e = outcome["time"].to_numpy(float), outcome["label"].to_numpy(int)
        if not e.any():
            continue
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                diff, p = concordance_paired(t, e, wide[a].to_numpy(), wide[b].to_numpy())
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": len(t),
                             "events": int(e.sum()), "c_difference": diff, "p_concordance": p})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "events", "c_difference",
                                       "p_concordance"])



"""Validate: score each external centre with the locked bundles; AUC with DeLong CIs, threshold metrics (binary),
macro one-vs-rest AUC, Hand-Till M and per-class metrics (multi-class), C-index and risk groups (survival)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mcrad.errors import McradError
from mcrad.model import (
    class_index,
    class_probabilities,
    concordance,
    concordance_influence,
    load_bundle,
    probability_columns,
)


def _midranks(x: np.ndarray) -> np.ndarray:
    return stats.rankdata(x, method="average")


def delong(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance (DeLong et al. 1988, fast midrank form of Sun & Xu 2014)."""
    y = np.asarray(y).astype(int)
    score = np.asarray(score, float)
    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError("AUC needs both classes")
    tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (tz[:m] - tx) / n          # structural components of positives
    v01 = 1.0 - (tz[m:] - ty) / m    # and of negatives
    var = np.var(v10, ddof=1) / m + np.var(v01, ddof=1) / n if m > 1 and n > 1 else np.nan
    return float(auc), float(var)


def _components(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    tx, ty, tz = _midranks(pos), _midranks(neg), _midranks(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2) / (m * n)
    return auc, (tz[:m] - tx) / n, 1.0 - (tz[m:] - ty) / m


def delong_paired(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired DeLong test of two scores on the same cases: (AUC_a - AUC_b, two-sided p)."""
    y = np.asarray(y).astype(int)
    auc_a, v10a, v01a = _components(y, np.asarray(a, float))
    auc_b, v10b, v01b = _components(y, np.asarray(b, float))
    s10, s01 = np.cov(np.vstack([v10a, v10b])), np.cov(np.vstack([v01a, v01b]))
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / len(v10a) + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / len(v01a)
    diff = auc_a - auc_b
    if var <= 0:
        return float(diff), 1.0 if diff == 0 else 0.0
    return float(diff), float(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))


def concordance_paired(time: np.ndarray, event: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired test of two risk scores' C-indices on the same patients: (C_a - C_b, two-sided Wald p), the variance
    of the difference from the infinitesimal-jackknife covariance of the two C-indices (as R
    survival::concordance(Surv(time, event) ~ a + b) with the contrast c(1, -1))."""
    ca, ia = concordance_influence(time, event, a)
    cb, ib = concordance_influence(time, event, b)
    if not (np.isfinite(ca) and np.isfinite(cb)):
        return np.nan, np.nan
    diff, var = ca - cb, float(np.sum((ia - ib) ** 2))  # var_a + var_b - 2 cov_ab
    if var <= 0:
        return float(diff), 1.0 if diff == 0 else 0.0
    return float(diff), float(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))


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


def paired_comparisons(predictions: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests between every pair of models, per centre and stage (and pooled external)."""
    rows = []
    for centre, stage, wide, outcome, models in _paired_groups(predictions):
        label = outcome["label"].to_numpy(int)
        if label.min() == label.max():
            continue
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                diff, p = delong_paired(label, wide[a].to_numpy(), wide[b].to_numpy())
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": len(label),
                             "auc_difference": diff, "p_delong": p})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "auc_difference", "p_delong"])


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


def auc_ci(y: np.ndarray, score: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """AUC with a DeLong (1 - alpha) interval, clipped to [0, 1] as R pROC does."""
    auc, var = delong(y, score)
    return (auc, *_ci(auc, var, alpha))


def wilson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return np.nan, np.nan
    z = stats.norm.ppf(1 - alpha / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def calibration(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration intercept (in the large: logistic model of y with offset logit(p)) and slope (coefficient
    of logit(p)); 0 and 1 when predictions are calibrated. NaN when they cannot be estimated."""
    import warnings

    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    lp = np.log(np.clip(p, 1e-12, 1 - 1e-12) / (1 - np.clip(p, 1e-12, 1 - 1e-12)))
    if len(np.unique(y)) < 2 or np.ptp(lp) == 0:
        return np.nan, np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            intercept = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=lp).fit().params[0]
            slope = sm.GLM(y, sm.add_constant(lp), family=sm.families.Binomial()).fit().params[1]
        except (PerfectSeparationWarning, np.linalg.LinAlgError, ValueError):
            return np.nan, np.nan
    return float(intercept), float(slope)


def metric_row(pred: pd.DataFrame, threshold: float, alpha: float) -> dict:
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


def predict_bundle(bundle_dir: Path, features: pd.DataFrame, clinical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Score patients with a locked bundle, outcomes unseen: patient_id, centre, model, score (probability; for
    survival bundles the Cox linear predictor; for multi-class bundles predicted and p_<class> instead). Only the
    feature and clinical columns the bundle was trained on are read; a missing one is refused with a clear
    message."""
    model, meta = load_bundle(bundle_dir)
    needed_clinical = [c["name"] for c in meta["clinical"]]
    df = features
    if clinical is not None:
        keep = ["patient_id"] + [c for c in needed_clinical if c in clinical.columns]
        df = features.merge(clinical[keep], on="patient_id", how="left", validate="one_to_one")
    missing = [c for c in meta["features"] if c not in df.columns]
    if missing:
        raise McradError(f"bundle {bundle_dir} was trained on {len(missing)} feature column(s) these data lack, e.g. "
                         f"{missing[:3]}. Fix: extract features with the same parameter file, ROIs and sequence "
                         "names as the training centre.")
    uses_clinical = meta["model"] in ("clinical", "nomogram")
    missing = [c for c in needed_clinical if c not in df.columns] if uses_clinical else []
    if missing:
        raise McradError(f"bundle {bundle_dir} ({meta['model']}) needs clinical column(s) {missing} these data lack. "
                         "Fix: pass the centre's clinical table (--cohort) with the columns of cohort.clinical.")
    kind = meta["endpoint"].get("type")
    try:
        if kind == "survival":
            score = model.decision_function(df)
        elif kind == "multiclass":
            proba = model.predict_proba(df)
        else:
            score = model.predict_proba(df)[:, 1]
    except ValueError as exc:  # e.g. a clinical category the training centre never had
        raise McradError(f"bundle {bundle_dir} cannot score centre(s) {sorted(df['centre'].unique())}: {exc}. "
                         "Fix: recode the clinical column to the categories used in training.") from exc
    out = pd.DataFrame({"patient_id": df["patient_id"].to_numpy(), "centre": df["centre"].to_numpy(),
                        "model": meta["model"]})
    if kind == "multiclass":
        return pd.concat([out, class_probabilities(meta["endpoint"]["classes"], proba)], axis=1)
    return out.assign(score=score)


def attach_outcomes(scored: pd.DataFrame, cohort: pd.DataFrame, endpoint: dict) -> pd.DataFrame:
    """Add the endpoint's label (and follow-up time for survival) to scored patients; every one must have it."""
    cols = ["patient_id", endpoint["column"]] + ([endpoint["time"]] if endpoint.get("time") else [])
    missing = [c for c in cols if c not in cohort.columns]
    if missing:
        raise McradError(f"the outcome table lacks column(s) {missing} of endpoint {endpoint['name']!r}. "
                         "Fix: add them to the cohort table of these patients.")
    df = scored.merge(cohort[cols], on="patient_id", how="left", validate="many_to_one")
    absent = df.loc[df[endpoint["column"]].isna() | (df[endpoint["column"]].astype(str) == ""), "patient_id"]
    if len(absent):
        raise McradError(f"patients {sorted(absent.unique())[:5]} were scored but have no {endpoint['column']!r} "
                         "outcome. Fix: add their outcomes, or remove them from the predictions table.")
    if endpoint.get("type") == "multiclass":
        classes, column = endpoint["classes"], endpoint["column"]
        index = class_index(df[column], classes, df["patient_id"], f"outcome table, column {column!r}")
        out = df.assign(label=np.asarray(classes, dtype=object)[index])
    else:
        out = df.assign(label=pd.to_numeric(df[endpoint["column"]]).astype(int))
    if endpoint.get("time"):
        out["time"] = pd.to_numeric(out[endpoint["time"]]).astype(float)
    return out.drop(columns=[c for c in cols[1:] if c not in ("label", "time")])


def prediction_columns(endpoint: dict) -> list[str]:
    """Columns of predictions.tsv: binary label + score; survival label (event) + time + score (linear predictor);
    multi-class label + predicted (most probable class) + p_<class>."""
    if endpoint.get("type") == "multiclass":
        tail = ["label", "predicted", *probability_columns(endpoint["classes"])]
    else:
        tail = ["label", *(["time"] if endpoint.get("time") else []), "score"]
    return ["patient_id", "centre", "stage", "model", *tail]


def score_bundle(bundle_dir: Path, features: pd.DataFrame, cohort: pd.DataFrame, label: str | dict) -> pd.DataFrame:
    """Locked-bundle scores of labelled patients: the columns of prediction_columns, without stage."""
    endpoint = label if isinstance(label, dict) else {"name": label, "column": label}
    scored = predict_bundle(bundle_dir, features, cohort)
    out = attach_outcomes(scored, cohort, endpoint)
    return out[[c for c in prediction_columns(endpoint) if c != "stage"]]


def reader_predictions(cohort: pd.DataFrame, endpoint: dict, column: str) -> pd.DataFrame:
    """A radiologist's read (score or probability in `column`) as model 'reader', so it enters the metrics and the
    paired DeLong tests like a locked model. Every patient needs a numeric read."""
    if column not in cohort.columns:
        raise McradError(f"validate.reader names column {column!r}, which the cohort table lacks. Fix: add the "
                         "reader's scores to the cohort sheet, or set validate.reader: null.")
    read = pd.to_numeric(cohort[column], errors="coerce")
    if read.isna().any():
        raise McradError(f"patients {cohort.loc[read.isna(), 'patient_id'].tolist()[:5]} have no numeric reader score "
                         f"in {column!r}. Fix: fill in the reads (a missing read cannot be compared).")
    scored = pd.DataFrame({"patient_id": cohort["patient_id"], "centre": cohort["centre"], "model": "reader",
                           "score": read.to_numpy(float)})
    return attach_outcomes(scored, cohort, endpoint)[["patient_id", "centre", "model", "label", "score"]]


def _metric_groups(predictions: pd.DataFrame) -> list[tuple[tuple[str, str, str], pd.DataFrame]]:
    """(model, centre, stage) groups, plus each model's external centres pooled when there are several."""
    ext = predictions[predictions["stage"] == "external"]
    groups = [(k, g) for k, g in predictions.groupby(["model", "centre", "stage"], sort=False)]
    groups += [((m, "pooled", "external"), g) for m, g in ext.groupby("model", sort=False)
               if g["centre"].nunique() > 1]
    return groups


def summarise(predictions: pd.DataFrame, thresholds: dict[str, float], alpha: float) -> pd.DataFrame:
    """metrics.tsv: one row per model x centre x stage, plus the pooled external centres."""
    rows = []
    for (model, centre, stage), g in _metric_groups(predictions):
        rows.append({"model": model, "centre": centre, "stage": stage, **metric_row(g, thresholds[model], alpha)})
    return pd.DataFrame(rows)


def ovr_influence(y: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray]:
    """AUC of a score for binary y, and each patient's DeLong influence on it: (V10_i - AUC) / sqrt(m (m - 1)) for
    the m positives, (V01_j - AUC) / sqrt(n (n - 1)) for the n negatives. The sum of squares is DeLong's variance;
    summed cross-products of two AUCs' influences on the same patients are their covariance, which for two scores
    of one label is exactly the paired DeLong covariance, and extends it to AUCs of different labels (the
    one-vs-rest AUCs of a multi-class model). NaN influences when a class has fewer than two patients."""
    y, score = np.asarray(y).astype(int), np.asarray(score, float)
    auc, v10, v01 = _components(y, score)
    m, n = len(v10), len(v01)
    psi = np.full(len(y), np.nan)
    if m > 1 and n > 1:
        psi[y == 1] = (v10 - auc) / np.sqrt(m * (m - 1))
        psi[y == 0] = (v01 - auc) / np.sqrt(n * (n - 1))
    return float(auc), psi


def macro_auc(y: np.ndarray, proba: np.ndarray) -> tuple[float, np.ndarray, list[int]]:
    """Macro-average of the one-vs-rest AUCs (class k's probability separating class k from the rest) over the
    classes present, each patient's influence on it (its variance is their sum of squares), and the classes used.
    NaN with fewer than two classes present."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    present = [k for k in range(proba.shape[1]) if 0 < (y == k).sum() < len(y)]
    if len(present) < 2:
        return np.nan, np.full(len(y), np.nan), present
    aucs, influences = zip(*(ovr_influence(y == k, proba[:, k]) for k in present), strict=True)
    return float(np.mean(aucs)), np.mean(influences, axis=0), present


def hand_till(y: np.ndarray, proba: np.ndarray) -> float:
    """Hand & Till (2001) multi-class AUC M: the mean over pairs of classes (i, j), both present, of
    (A(i|j) + A(j|i)) / 2, where A(i|j) is the AUC of p_i separating class i from class j among their patients
    (as R pROC::multiclass.roc and sklearn's roc_auc_score(multi_class='ovo'))."""
    y, proba = np.asarray(y, int), np.asarray(proba, float)
    present = [k for k in range(proba.shape[1]) if (y == k).any()]
    pairs = []
    for a, i in enumerate(present):
        for j in present[a + 1:]:
            both = (y == i) | (y == j)
            a_ij = delong((y[both] == i).astype(int), proba[both, i])[0]
            a_ji = delong((y[both] == j).astype(int), proba[both, j])[0]
            pairs.append((a_ij + a_ji) / 2)
    return float(np.mean(pairs)) if pairs else np.nan


def _ci(estimate: float, var: float, alpha: float) -> tuple[float, float]:
    """Wald interval clipped to [0, 1]; NaN when the variance is undefined (a class with one patient)."""
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    if not np.isfinite(half):
        return np.nan, np.nan
    return max(0.0, estimate - half), min(1.0, estimate + half)


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
    row["auc_lo"], row["auc_hi"] = _ci(auc, float(np.sum(influence ** 2)), alpha)
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


def paired_multiclass(predictions: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
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
                diff, var = auc_a - auc_b, float(np.sum((psi_a - psi_b) ** 2))
                p = (1.0 if diff == 0 else 0.0) if var <= 0 else float(2 * stats.norm.sf(abs(diff) / np.sqrt(var)))
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": len(y),
                             "auc_difference": diff, "p_macro_auc": p if np.isfinite(diff) else np.nan})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "auc_difference", "p_macro_auc"])


def confusion(pred: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Confusion matrix of the most probable class: rows true class, columns predicted class (counts)."""
    from sklearn.metrics import confusion_matrix

    y = class_index(pred["label"], classes, pred["patient_id"], "predictions table, column 'label'")
    called = np.argmax(pred[probability_columns(classes)].to_numpy(float), axis=1)
    return pd.DataFrame(confusion_matrix(y, called, labels=list(range(len(classes)))), index=classes, columns=classes)


def ipcw_weights(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """1 / G(T_i-) with G the Kaplan-Meier estimate of the censoring distribution (events before censorings
    at tied times, so a censoring at T_i does not lower G(T_i-))."""
    t, e = np.asarray(time, float), np.asarray(event).astype(bool)
    times = np.unique(t[~e])
    at_risk = np.array([(t >= u).sum() for u in times])
    censored = np.array([((t == u) & ~e).sum() for u in times])
    surv = np.concatenate([[1.0], np.cumprod(1 - censored / at_risk)])  # surv[k]: after the first k censorings
    before = np.searchsorted(times, t, side="left")  # censoring times strictly before each T_i
    return 1.0 / surv[before]


def td_auc(time: np.ndarray, event: np.ndarray, risk: np.ndarray, horizon: float) -> float:
    """Cumulative/dynamic AUC at `horizon` (Uno et al. 2007): cases had the event by the horizon (weighted by
    inverse probability of remaining uncensored), controls are still event-free after it. NaN if either is empty."""
    t, e, r = np.asarray(time, float), np.asarray(event).astype(bool), np.asarray(risk, float)
    cases, controls = e & (t <= horizon), t > horizon
    if not cases.any() or not controls.any():
        return np.nan
    w = ipcw_weights(t, e)[cases]
    rc, rn = r[cases][:, None], r[controls][None, :]
    wins = ((rc > rn) + 0.5 * (rc == rn)).sum(axis=1)
    return float((w * wins).sum() / (w.sum() * controls.sum()))


def logrank_p(time: np.ndarray, event: np.ndarray, high: np.ndarray) -> float:
    """Log-rank test between the locked high- and low-risk groups (lifelines)."""
    from lifelines.statistics import logrank_test

    high = np.asarray(high, bool)
    if high.all() or not high.any():
        return np.nan
    return float(logrank_test(time[high], time[~high], event[high], event[~high]).p_value)


def survival_metric_row(pred: pd.DataFrame, threshold: float, alpha: float, horizons: list[float]) -> dict:
    """C-index (IJ variance as R survival::concordance, Wald interval clipped to [0, 1]), the locked risk groups
    (risk >= threshold is high) with their log-rank p, and time-dependent AUCs."""
    t, e, r = pred["time"].to_numpy(float), pred["label"].to_numpy(int), pred["score"].to_numpy(float)
    row: dict = {"n": len(t), "events": int(e.sum())}
    c, var = concordance(t, e, r)
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var) if np.isfinite(var) else np.nan
    row.update(c_index=c, c_lo=max(0.0, c - half), c_hi=min(1.0, c + half))
    high = r >= threshold
    row.update(threshold=threshold, n_high=int(high.sum()), events_high=int(e[high].sum()),
               events_low=int(e[~high].sum()), logrank_p=logrank_p(t, e, high))
    for h in horizons:
        row[f"td_auc_{h:g}"] = td_auc(t, e, r, h)
    row["note"] = "" if np.isfinite(c) else "no comparable pairs: C-index undefined"
    return row


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


def summarise_survival(predictions: pd.DataFrame, thresholds: dict[str, float], alpha: float,
                       horizons: list[float]) -> pd.DataFrame:
    """metrics.tsv of a survival endpoint: one row per model x centre x stage, plus pooled external centres."""
    rows = []
    for (model, centre, stage), g in _metric_groups(predictions):
        rows.append({"model": model, "centre": centre, "stage": stage,
                     **survival_metric_row(g, thresholds[model], alpha, horizons)})
    return pd.DataFrame(rows)

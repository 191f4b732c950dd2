"""Validate: score each external centre with the locked bundles; AUC with DeLong CIs, threshold metrics."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mcrad.errors import McradError
from mcrad.model import load_bundle


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


def paired_comparisons(predictions: pd.DataFrame) -> pd.DataFrame:
    """Paired DeLong tests between every pair of models, per centre and stage (and pooled external)."""
    rows = []
    ext = predictions[predictions["stage"] == "external"].assign(centre="pooled")
    frames = [predictions] + ([ext] if predictions.loc[predictions["stage"] == "external", "centre"].nunique() > 1
                              else [])
    for (centre, stage), g in pd.concat(frames).groupby(["centre", "stage"], sort=False):
        wide = g.pivot_table(index="patient_id", columns="model", values="score", aggfunc="first")
        label = g.groupby("patient_id")["label"].first().loc[wide.index].to_numpy(int)
        if label.min() == label.max():
            continue
        models = list(dict.fromkeys(g["model"]))
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                diff, p = delong_paired(label, wide[a].to_numpy(), wide[b].to_numpy())
                rows.append({"centre": centre, "stage": stage, "model_a": a, "model_b": b, "n": len(label),
                             "auc_difference": diff, "p_delong": p})
    return pd.DataFrame(rows, columns=["centre", "stage", "model_a", "model_b", "n", "auc_difference", "p_delong"])


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
    half = stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    return auc, max(0.0, auc - half), min(1.0, auc + half)


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
    row["brier"] = float(np.mean((s - y) ** 2))
    row["cal_intercept"], row["cal_slope"] = calibration(y, s)
    return row


def score_bundle(bundle_dir: Path, features: pd.DataFrame, cohort: pd.DataFrame, label: str) -> pd.DataFrame:
    model, meta = load_bundle(bundle_dir)
    needed = meta["features"] + [c["name"] for c in meta["clinical"]]
    df = features.merge(cohort.drop(columns=["centre"]), on="patient_id", how="left", validate="one_to_one")
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise McradError(f"bundle {bundle_dir} was trained on {len(missing)} column(s) these data lack, e.g. "
                         f"{missing[:3]}. Fix: extract features with the same parameter file, ROIs and sequence "
                         "names as the training centre.")
    try:
        score = model.predict_proba(df)[:, 1]
    except ValueError as exc:  # e.g. a clinical category the training centre never had
        raise McradError(f"bundle {bundle_dir} cannot score centre(s) {sorted(df['centre'].unique())}: {exc}. "
                         "Fix: recode the clinical column to the categories used in training.") from exc
    return pd.DataFrame({"patient_id": df["patient_id"], "centre": df["centre"], "model": meta["model"],
                         "label": pd.to_numeric(df[label]).astype(int), "score": score})


def summarise(predictions: pd.DataFrame, thresholds: dict[str, float], alpha: float) -> pd.DataFrame:
    """metrics.tsv: one row per model x centre x stage, plus the pooled external centres."""
    rows = []
    ext = predictions[predictions["stage"] == "external"]
    groups = [(k, g) for k, g in predictions.groupby(["model", "centre", "stage"], sort=False)]
    groups += [((m, "pooled", "external"), g) for m, g in ext.groupby("model", sort=False)
               if g["centre"].nunique() > 1]
    for (model, centre, stage), g in groups:
        rows.append({"model": model, "centre": centre, "stage": stage, **metric_row(g, thresholds[model], alpha)})
    return pd.DataFrame(rows)

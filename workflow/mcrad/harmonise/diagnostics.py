"""Harmonisation diagnostics before/after ComBat. Label-free (its own rule): centre identifiability, per-feature
Kruskal-Wallis p across centres, PCA. With training labels only (a rule of its own, so label edits never rerun
the label-free part): the training centre's outcome signal, which ComBat must keep."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


# ---- diagnostics: does harmonisation remove the centre and keep the signal? --------------------------------
def _feature_matrix(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The features as a matrix; a value a case could not give (NaN, flagged at extraction) takes the feature's
    median, for these diagnostics only."""
    X = features[columns].astype(float)
    return X.fillna(X.median()).fillna(0.0).to_numpy(float)


def centre_identifiability(X: np.ndarray, centre: np.ndarray, seed: int, folds: int = 5) -> float:
    """Cross-validated AUC of telling centres apart from the features (one-vs-rest macro AUC for several)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(folds, int(pd.Series(centre).value_counts().min()))
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    proba = cross_val_predict(clf, X, centre, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                              method="predict_proba")
    labels = np.unique(centre)
    if len(labels) == 2:
        return float(roc_auc_score(centre == labels[1], proba[:, 1]))
    return float(roc_auc_score(centre, proba, multi_class="ovr", average="macro", labels=labels))


def outcome_auc(X: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> float:
    """Cross-validated AUC of a ridge logistic model of the outcome: the signal harmonisation must keep."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    cv = StratifiedKFold(min(folds, int(np.bincount(y).min())), shuffle=True, random_state=seed)
    return float(roc_auc_score(y, cross_val_predict(clf, X, y, cv=cv, method="predict_proba")[:, 1]))


def kruskal_pvalues(features: pd.DataFrame, columns: list[str]) -> pd.Series:
    from scipy.stats import kruskal

    groups = [g for _, g in features.groupby("centre")]
    p = {}
    for col in columns:
        values = [v[np.isfinite(v)] for v in (g[col].to_numpy(float) for g in groups)]  # NaN: flagged, left out
        values = [v for v in values if v.size]
        pooled = np.concatenate(values) if values else np.zeros(0)
        p[col] = np.nan if len(values) < 2 or np.ptp(pooled) == 0 else float(kruskal(*values).pvalue)
    return pd.Series(p)


def pca_coordinates(features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    pcs = PCA(2, svd_solver="full").fit_transform(StandardScaler().fit_transform(_feature_matrix(features, columns)))
    return pd.DataFrame({"patient_id": features["patient_id"].to_numpy(), "centre": features["centre"].to_numpy(),
                         "pc1": pcs[:, 0], "pc2": pcs[:, 1]})


def diagnostics(raw: pd.DataFrame, harmonised: pd.DataFrame, seed: int
                ) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Before/after ComBat, from unlabelled features of every centre: centre identifiability, per-feature
    Kruskal-Wallis p across centres, PCA. Nothing here flows back into training."""
    columns = [c for c in harmonised.columns if c not in ("patient_id", "centre")]
    raw = raw.set_index("patient_id").loc[harmonised["patient_id"]].reset_index()
    summary: dict[str, Any] = {"features": len(columns), "centres": sorted(harmonised["centre"].unique())}
    kw = pd.DataFrame({"feature": columns})
    pca = []
    for name, table in (("before", raw), ("after", harmonised)):
        centre = table["centre"].to_numpy()
        if len(np.unique(centre)) > 1:
            summary[f"centre_auc_{name}"] = centre_identifiability(_feature_matrix(table, columns), centre, seed)
            kw[f"p_{name}"] = kruskal_pvalues(table, columns).to_numpy()
            summary[f"kruskal_p_below_0.05_{name}"] = int((kw[f"p_{name}"] < 0.05).sum())
        pca.append(pca_coordinates(table, columns).assign(harmonisation=name))
    return summary, kw, pd.concat(pca, ignore_index=True)


def outcome_check(raw_train: pd.DataFrame, harmonised_train: pd.DataFrame, labels: dict[str, pd.Series],
                  seed: int) -> dict[str, float]:
    """The training centre(s)' outcome signal before/after ComBat: cross-validated AUC of a ridge logistic model
    of each endpoint's 0/1 outcome (labels indexed by patient_id), which harmonisation must keep."""
    columns = [c for c in harmonised_train.columns if c not in ("patient_id", "centre")]
    raw_train = raw_train.set_index("patient_id").loc[harmonised_train["patient_id"]].reset_index()
    out = {}
    for name, table in (("before", raw_train), ("after", harmonised_train)):
        for endpoint, y in labels.items():
            yy = y.loc[table["patient_id"]].to_numpy(int)
            out[f"train_outcome_auc_{endpoint}_{name}"] = outcome_auc(_feature_matrix(table, columns), yy, seed)
    return out

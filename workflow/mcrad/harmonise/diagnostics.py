"""Harmonisation diagnostics before/after ComBat. Label-free (its own rule): centre identifiability with ComBat
refitted inside each cross-validation fold (held-out cases harmonised by a model that never saw them), per-feature
Kruskal-Wallis p and share of variance explained by centre, PCA. With training labels only (a rule of its own, so
label edits never rerun the label-free part): the training centre's outcome signal, which ComBat must keep."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mcrad.errors import McradError


# ---- diagnostics: does harmonisation remove the centre and keep the signal? --------------------------------
def _feature_matrix(features: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The features as a matrix; a value a case could not give (NaN, flagged at extraction) takes the feature's
    median, for these diagnostics only."""
    X = features[columns].astype(float)
    return X.fillna(X.median()).fillna(0.0).to_numpy(float)


def _centre_classifier():
    """The label-free centre classifier: ridge logistic on standardised features, a missing value taking the
    median of the cases it is trained on."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                         LogisticRegression(C=1.0, max_iter=5000))


def _centre_auc(centre: np.ndarray, proba: np.ndarray, labels: np.ndarray) -> float:
    """AUC of telling centres apart (one-vs-rest macro AUC for several) from out-of-fold probabilities."""
    from sklearn.metrics import roc_auc_score

    if len(labels) == 2:
        return float(roc_auc_score(centre == labels[1], proba[:, 1]))
    return float(roc_auc_score(centre, proba, multi_class="ovr", average="macro", labels=labels))


def centre_folds(centre: np.ndarray, seed: int, folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds stratified by centre (as many as the smallest centre allows, at most `folds`)."""
    from sklearn.model_selection import StratifiedKFold

    folds = min(folds, int(pd.Series(centre).value_counts().min()))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(centre)), centre))


def centre_identifiability(X: np.ndarray, centre: np.ndarray, seed: int, folds: int = 5) -> float:
    """Cross-validated AUC of telling centres apart from the features as given (one-vs-rest macro AUC for
    several). On features harmonised with every case, held-out ones included, this is biased below 0.5."""
    from sklearn.model_selection import cross_val_predict

    splits = centre_folds(centre, seed, folds)
    proba = cross_val_predict(_centre_classifier(), X, centre, cv=splits, method="predict_proba")
    return _centre_auc(centre, proba, np.unique(centre))


# A factory of the workflow's harmoniser (training centre as reference), unfitted: harmonise.from_options
Harmoniser = Callable[[], Any]


def fold_harmonise(make: Harmoniser, X: pd.DataFrame, centre: pd.Series, covariates: pd.DataFrame | None,
                   train_centres: list[str], fit_rows: np.ndarray) -> pd.DataFrame:
    """Every case harmonised as the pipeline would, but learning only from `fit_rows` (a fold's training
    cases): ComBat fitted on the training centre(s)' fit rows (features constant or incomplete there left out,
    NaN for all), each other centre's batch effect estimated from its own fit rows (the unseen-centre mapping)
    and applied to its held-out cases, which it never saw."""
    from mcrad.harmonise import split_constant

    fit = np.zeros(len(X), bool)
    fit[fit_rows] = True
    ref = fit & centre.isin(train_centres).to_numpy()
    keep, _ = split_constant(X[ref])
    model = make()
    model.fit(X.loc[ref, keep], centre[ref], None if covariates is None else covariates[ref])
    for other in sorted(set(centre) - set(train_centres)):
        rows = fit & (centre == other).to_numpy()
        model.add_batch(other, X.loc[rows, keep], covariates)
    out = pd.DataFrame(np.nan, index=X.index, columns=X.columns)
    out[keep] = model.transform(X[keep], centre, covariates)
    return out


def omega_squared(X: pd.DataFrame, centre: pd.Series) -> pd.Series:
    """Per feature, the share of its variance explained by centre: one-way ANOVA omega-squared, (SS_between -
    (k - 1) MS_within) / (SS_total + MS_within), over the cases that have the feature. Unlike eta-squared it is
    unbiased (about 0, possibly negative, when the centres do not differ), so small held-out folds compare with
    larger samples. NaN for a feature constant over them or present in fewer than two centres."""
    V = X.to_numpy(float)
    ok = np.isfinite(V)
    V = np.where(ok, V, 0.0)
    G = (centre.to_numpy()[:, None] == np.unique(centre.to_numpy())[None, :]).astype(float)  # cases x centres
    n_g, sum_g = G.T @ ok, G.T @ V                                                            # centres x features
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = V.sum(axis=0) / n
        total = ((V - mean) ** 2 * ok).sum(axis=0)
        between = (np.where(n_g > 0, sum_g ** 2 / np.maximum(n_g, 1), 0.0)).sum(axis=0) - n * mean ** 2
        k = (n_g > 0).sum(axis=0)
        ms_within = (total - between) / (n - k)
        omega = (between - (k - 1) * ms_within) / (total + ms_within)
    omega[(k < 2) | (n <= k) | ~(total > 1e-12 * np.maximum(1.0, n * mean ** 2))] = np.nan
    return pd.Series(omega, index=X.columns, dtype=float)


def _kruskal_share(X: pd.DataFrame, centre: pd.Series) -> float:
    """Share of the features whose Kruskal-Wallis p across centres is below 0.05 (about 0.05 by chance)."""
    framed = X.reset_index(drop=True).assign(centre=centre.to_numpy())
    p = kruskal_pvalues(framed, list(X.columns))
    return float((p < 0.05).sum() / max(1, p.notna().sum()))


def in_fold_diagnostics(make: Harmoniser, X: pd.DataFrame, centre: pd.Series, covariates: pd.DataFrame | None,
                        train_centres: list[str], seed: int, folds: int = 5) -> tuple[dict[str, Any], pd.DataFrame]:
    """Before and after ComBat refitted inside each fold, judged on the held-out cases only: they are harmonised
    by a model fitted on the other cases and scored by a centre classifier trained on those (harmonised) cases.
    Returns (summary, per-feature omega-squared before/after, the mean over the folds).

    Identifiability: AUC of the pooled out-of-fold centre probabilities; 0.5 = the centres can no longer be told
    apart. The per-feature statistics are computed within each fold's held-out cases and averaged over the folds:
    pooling every fold's held-out values instead would equalise the centre means by construction (each fold's
    held-out mean minus its training mean sums to zero over the folds), the very artefact this avoids."""
    labels = np.unique(centre)
    c = centre.to_numpy()
    splits = centre_folds(c, seed, folds)
    before, after = np.zeros((len(c), len(labels))), np.zeros((len(c), len(labels)))
    omega: dict[str, list[pd.Series]] = {"before": [], "after": []}
    kruskal: dict[str, list[float]] = {"before": [], "after": []}
    for train, test in splits:
        before[test] = _centre_classifier().fit(X.iloc[train], c[train]).predict_proba(X.iloc[test])
        harmonised = fold_harmonise(make, X, centre, covariates, train_centres, train)
        after[test] = _centre_classifier().fit(harmonised.iloc[train], c[train]).predict_proba(harmonised.iloc[test])
        for name, table in (("before", X), ("after", harmonised)):
            omega[name].append(omega_squared(table.iloc[test], centre.iloc[test]))
            kruskal[name].append(_kruskal_share(table.iloc[test], centre.iloc[test]))
    summary: dict[str, Any] = {"folds": len(splits), "centre_auc_before": _centre_auc(c, before, labels),
                               "centre_auc_after_in_fold": _centre_auc(c, after, labels)}
    variance = pd.DataFrame({"feature": list(X.columns)})
    for name in ("before", "after"):
        variance[f"omega2_{name}"] = pd.concat(omega[name], axis=1).mean(axis=1).to_numpy()
        summary[f"centre_variance_share_median_{name}"] = float(variance[f"omega2_{name}"].median())
        summary[f"centre_variance_share_p90_{name}"] = float(variance[f"omega2_{name}"].quantile(0.9))
        summary[f"kruskal_share_below_0.05_{name}"] = float(np.mean(kruskal[name]))
    return summary, variance


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
    """Per feature, the Kruskal-Wallis p across centres; a NaN value (flagged at extraction) is left out; NaN for
    a feature constant over the cases or present in fewer than two centres."""
    from scipy.stats import kruskal

    groups = [g for _, g in features.groupby("centre")]
    p = pd.Series(np.nan, index=columns, dtype=float)
    values = features[columns].to_numpy(float)
    with warnings.catch_warnings():  # a feature no case has: all-NaN column, left NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        varying = np.nanmax(values, axis=0) > np.nanmin(values, axis=0) if len(values) else np.zeros(len(columns), bool)
    complete = ~np.isnan(values).any(axis=0) & varying
    if len(groups) > 1 and complete.any():  # one vectorised test for the features every case has
        cols = [c for c, keep in zip(columns, complete, strict=True) if keep]
        p[cols] = kruskal(*[g[cols].to_numpy(float) for g in groups], axis=0).pvalue
    for col in (c for c, done, var in zip(columns, complete, varying, strict=True) if var and not done):
        present = [v[np.isfinite(v)] for v in (g[col].to_numpy(float) for g in groups)]
        present = [v for v in present if v.size]
        if len(present) > 1:
            p[col] = float(kruskal(*present).pvalue)
    return p


def pca_coordinates(features: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    pcs = PCA(2, svd_solver="full").fit_transform(StandardScaler().fit_transform(_feature_matrix(features, columns)))
    return pd.DataFrame({"patient_id": features["patient_id"].to_numpy(), "centre": features["centre"].to_numpy(),
                         "pc1": pcs[:, 0], "pc2": pcs[:, 1]})


def diagnostics(raw: pd.DataFrame, harmonised: pd.DataFrame, seed: int, make: Harmoniser | None = None,
                covariates: pd.DataFrame | None = None, train_centres: list[str] = ()
                ) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Before/after ComBat, from unlabelled features of every centre: (summary, per-feature Kruskal-Wallis p
    across centres, per-feature share of variance explained by centre, PCA coordinates).

    The summary's before/after numbers come from in_fold_diagnostics: a harmoniser fitted on every case and
    judged on those cases removes each centre's mean by construction (identifiability below 0.5). The numbers of
    the pipeline's harmonised table are kept, labelled `_all_cases`, as is its per-feature Kruskal-Wallis table;
    the PCA shows that table (what the models see). `make` builds the workflow's harmoniser (None: off);
    covariates are indexed by patient_id. Nothing here flows back into training."""
    columns = [c for c in harmonised.columns if c not in ("patient_id", "centre")]
    raw = raw.set_index("patient_id").loc[harmonised["patient_id"]].reset_index()
    centres = sorted(harmonised["centre"].unique())
    summary: dict[str, Any] = {"features": len(columns), "centres": centres, "harmonisation": make is not None}
    kw = pd.DataFrame({"feature": columns})
    variance = pd.DataFrame({"feature": columns})
    pca = [pca_coordinates(t, columns).assign(harmonisation=n) for n, t in (("before", raw), ("after", harmonised))]
    if len(centres) > 1:
        X = raw.set_index("patient_id")[columns].astype(float)
        centre = raw.set_index("patient_id")["centre"]
        if make is not None:
            try:
                folds, variance = in_fold_diagnostics(make, X, centre, covariates, list(train_centres), seed)
                summary.update(folds)
            except McradError as exc:  # e.g. a fold too small for ComBat, a covariate level absent from a fold
                summary["in_fold_not_computed"] = f"ComBat could not be refitted in every fold: {exc}"
            summary["centre_auc_after_all_cases"] = centre_identifiability(
                harmonised[columns].to_numpy(float), harmonised["centre"].to_numpy(), seed)
        if "centre_auc_before" not in summary:  # harmonisation off, or not refitted in every fold
            summary["centre_auc_before"] = centre_identifiability(X.to_numpy(), centre.to_numpy(), seed)
            variance["omega2_before"] = omega_squared(X, centre).to_numpy()
        tables = [("before", raw)] + ([("after_all_cases", harmonised)] if make is not None else [])
        for name, table in tables:
            kw[f"p_{name}"] = kruskal_pvalues(table, columns).to_numpy()
            summary[f"kruskal_p_below_0.05_{name}"] = int((kw[f"p_{name}"] < 0.05).sum())
    return summary, kw, variance, pd.concat(pca, ignore_index=True)


def outcome_check(raw_train: pd.DataFrame, harmonised_train: pd.DataFrame, labels: dict[str, pd.Series],
                  seed: int, train_centres: list[str]) -> dict[str, float]:
    """The training centre(s)' outcome signal before/after ComBat: cross-validated AUC of a ridge logistic model
    of each endpoint's 0/1 outcome (labels indexed by patient_id), which harmonisation must keep. Any row or label
    from another centre is refused: this check reads training labels only."""
    for what, centres in (("features", harmonised_train["centre"]), ("raw features", raw_train["centre"])):
        other = sorted(set(centres) - set(train_centres))
        if other:
            raise McradError(f"harmonisation outcome check: the {what} hold centre(s) {other}, not training centres "
                             f"{train_centres}. Fix: pass the training centres' tables only.")
    columns = [c for c in harmonised_train.columns if c not in ("patient_id", "centre")]
    raw_train = raw_train.set_index("patient_id").loc[harmonised_train["patient_id"]].reset_index()
    out = {}
    for name, table in (("before", raw_train), ("after", harmonised_train)):
        for endpoint, y in labels.items():
            yy = y.loc[table["patient_id"]].to_numpy(int)
            out[f"train_outcome_auc_{endpoint}_{name}"] = outcome_auc(_feature_matrix(table, columns), yy, seed)
    return out

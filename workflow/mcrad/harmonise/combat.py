"""ComBat that never lets an external centre touch training: fit on the training centre(s) with
the first one as reference batch, then map any centre, seen or unseen, onto that reference.

The location/scale fit and the empirical-Bayes estimation are neuroCombat's own functions; its
`neuroCombat()`/`neuroCombatFromTraining()` entry points are not used because they crash under numpy 2
(`np.int`, array-to-scalar) and refuse unseen batches. Standardisation (design with the reference coding of
sva/neuroCombat, covariate coefficients, pooled variance) is written out here so its coefficients can be kept
and applied to new data. For an unseen centre the location/scale and its priors come from that centre's own
(unlabelled) features standardised by the training fit; without covariates this equals a joint ComBat of
training + that centre with the training centre as reference (tested against R sva).
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mcrad.errors import McradError

nc = importlib.import_module("neuroCombat.neuroCombat")  # the module; the package re-exports only the function


log = logging.getLogger("mcrad")


def _nonparametric_prior(sdat: np.ndarray, g_hat: np.ndarray, d_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """neuroCombat's/sva's `int_eprior` (non-parametric empirical Bayes) computed in log space.

    The original multiplies n Gaussian densities, which underflows to 0/0 = NaN once a batch has enough samples
    or a feature sits far from the others; normalising the log-likelihoods by their maximum gives the same
    weights wherever the original is finite, and finite weights everywhere else."""
    n_feat = sdat.shape[0]
    gamma, delta = np.empty(n_feat), np.empty(n_feat)
    for i in range(n_feat):
        others = np.arange(n_feat) != i
        g, d = g_hat[others], d_hat[others]
        x = sdat[i][np.isfinite(sdat[i])]
        sum2 = ((x[None, :] - g[:, None]) ** 2).sum(axis=1)
        log_lh = -0.5 * len(x) * np.log(2 * np.pi * d) - sum2 / (2 * d)
        w = np.exp(log_lh - log_lh.max())
        gamma[i], delta[i] = (g * w).sum() / w.sum(), (d * w).sum() / w.sum()
    return gamma, delta


def _nonparametric_adjustments(s_data: np.ndarray, ls: dict, info: dict, mean_only: bool
                               ) -> tuple[np.ndarray, np.ndarray]:
    """As neuroCombat's `find_non_parametric_adjustments`, with the log-space prior above."""
    gamma, delta = [], []
    for i, idx in enumerate(info["batch_info"]):
        d_hat = np.ones(s_data.shape[0]) if mean_only else np.asarray(ls["delta_hat"][i], float)
        g, d = _nonparametric_prior(s_data[:, idx], np.asarray(ls["gamma_hat"][i], float), d_hat)
        gamma.append(g)
        delta.append(d)
    gamma, delta = np.array(gamma), np.array(delta)
    if info["ref_level"] is not None:
        gamma[info["ref_level"]], delta[info["ref_level"]] = 0.0, 1.0
    return gamma, delta


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints progress on stdout
        return fn(*args)


class ComBat(TransformerMixin, BaseEstimator):
    """Location/scale (ComBat) harmoniser with scikit-learn style fit/transform.

    X: samples x features DataFrame; batch: Series of centre names (same index); covariates: DataFrame of the
    biological variables to preserve (same index), `categorical` ones one-hot encoded (first level dropped,
    as R's model.matrix), `continuous` ones as numbers. With `ref_batch`, that batch is the reference: it is
    returned unchanged and every other batch is mapped onto it. A batch not seen in fit is mapped from its
    own features only (location/scale and empirical-Bayes priors of that batch alone).
    """

    def __init__(self, ref_batch: str | None = None, parametric: bool = True, eb: bool = True,
                 mean_only: bool = False, min_batch_size: int = 3, categorical: tuple[str, ...] = (),
                 continuous: tuple[str, ...] = ()):
        self.ref_batch, self.parametric, self.eb, self.mean_only = ref_batch, parametric, eb, mean_only
        self.min_batch_size, self.categorical, self.continuous = min_batch_size, categorical, continuous

    # ---- checks -------------------------------------------------------------------------------------
    def _check(self, X: pd.DataFrame, batch: pd.Series, allow_nan: bool = False) -> None:
        if not X.index.equals(batch.index):
            raise McradError("ComBat: features and batch labels must share the same index (patient ids).")
        if not allow_nan and X.isna().any().any():
            bad = X.isna().stack()
            pid, feat = bad[bad].index[0]
            raise McradError(f"ComBat: feature {feat!r} is missing (NaN) for patient {pid} "
                             f"({int(bad.sum())} missing values in all). Fix: inspect that case's QC, or "
                             "quarantine it; ComBat does not impute.")
        counts = batch.value_counts()
        small = counts[counts < self.min_batch_size]
        if len(small):
            sizes = {k: int(v) for k, v in small.items()}
            raise McradError(f"ComBat: centre(s) {sizes} have fewer than {self.min_batch_size} cases, too few "
                             "to estimate a batch effect. Fix: merge such a centre with a similar one, or set "
                             "harmonise.activate: false.")

    def _covariate_design(self, covariates: pd.DataFrame | None, index: pd.Index) -> np.ndarray:
        names = [*self.categorical, *self.continuous]
        if not names:
            return np.zeros((len(index), 0))
        if covariates is None or any(c not in covariates.columns for c in names):
            raise McradError(f"ComBat: covariates {names} are needed (they were used in fit).")
        cov = covariates.loc[index]
        blocks = []
        for c in self.categorical:
            values = cov[c].astype(str)
            unseen = sorted(set(values) - set(self.levels_[c]))
            if unseen:
                pid = values.index[values.isin(unseen)][0]
                raise McradError(f"ComBat: covariate {c!r} has value(s) {unseen} (e.g. patient {pid}) not seen in "
                                 f"the training centre(s) {self.levels_[c]}. Fix: recode it, or drop {c!r} from "
                                 "harmonise.covariates.")
            blocks.append(np.column_stack([(values == lv).to_numpy(float) for lv in self.levels_[c][1:]])
                          if len(self.levels_[c]) > 1 else np.zeros((len(index), 0)))
        for c in self.continuous:
            num = pd.to_numeric(cov[c], errors="coerce")
            if num.isna().any():
                raise McradError(f"ComBat: covariate {c!r} is missing or not a number for patient "
                                 f"{num.index[num.isna()][0]}. Fix: complete it in the cohort sheet.")
            blocks.append(num.to_numpy(float)[:, None])
        return np.hstack(blocks)

    # ---- fit ----------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, batch: pd.Series, covariates: pd.DataFrame | None = None) -> ComBat:
        self._check(X, batch)
        levels = sorted(set(batch))
        if self.ref_batch is not None and self.ref_batch not in levels:
            raise McradError(f"ComBat: reference centre {self.ref_batch!r} has no cases in the data it is "
                             f"fitted on (centres: {levels}).")
        std = X.std(axis=0, ddof=0)
        if (std == 0).any():
            raise McradError(f"ComBat: feature(s) {list(std.index[std == 0])[:5]} are constant and cannot be "
                             "standardised. Fix: drop them first (the workflow lists them in "
                             "harmonise/excluded_features.tsv).")
        self.features_ = list(X.columns)
        self.levels_ = {c: sorted(set(covariates[c].astype(str))) for c in self.categorical} \
            if self.categorical else {}
        data = X.to_numpy(float).T                                   # features x samples, as neuroCombat
        codes = np.array([levels.index(b) for b in batch])
        ref = None if self.ref_batch is None else levels.index(self.ref_batch)
        onehot = (codes[:, None] == np.arange(len(levels))[None, :]).astype(float)
        if ref is not None:
            onehot[:, ref] = 1.0                                     # neuroCombat/sva reference coding
        cov = self._covariate_design(covariates, X.index)
        design = np.hstack([onehot, cov])
        beta = np.linalg.lstsq(design, data.T, rcond=None)[0]       # (batches + covariates) x features
        n_batch = len(levels)
        counts = np.bincount(codes, minlength=n_batch)
        if ref is None:
            grand = (counts / counts.sum()) @ beta[:n_batch]
            resid = data - (design @ beta).T
            var_pooled = (resid ** 2).mean(axis=1)
        else:
            grand = beta[ref]
            rows = codes == ref
            var_pooled = ((data[:, rows] - (design[rows] @ beta).T) ** 2).mean(axis=1)
        self.stand_mean_, self.var_pooled_ = grand, var_pooled
        self.beta_cov_ = beta[n_batch:]
        info = {"batch_levels": np.arange(n_batch), "ref_level": ref, "n_batch": n_batch,
                "n_sample": data.shape[1], "sample_per_batch": counts,
                "batch_info": [list(np.where(codes == j)[0]) for j in range(n_batch)], "design": design}
        s_data = (data - grand[:, None] - (cov @ self.beta_cov_).T) / np.sqrt(var_pooled)[:, None]
        gamma, delta = self._adjustments(s_data, design, info)
        self.batches_ = {b: {"gamma": gamma[j].tolist(), "delta": delta[j].tolist()} for j, b in enumerate(levels)}
        return self

    def _adjustments(self, s_data: np.ndarray, design: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
        ls = nc.fit_LS_model_and_find_priors(s_data, design, info, self.mean_only)
        if not self.eb:
            gamma, delta = nc.find_non_eb_adjustments(s_data, ls, info)
        elif self.parametric:
            gamma, delta = _quiet(nc.find_parametric_adjustments, s_data, ls, info, self.mean_only)
        else:
            gamma, delta = _nonparametric_adjustments(s_data, ls, info, self.mean_only)
        return np.asarray(gamma, float), np.asarray(delta, float)

    # ---- transform ----------------------------------------------------------------------------------
    def _standardise(self, X: pd.DataFrame, covariates: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        mod = (self._covariate_design(covariates, X.index) @ self.beta_cov_).T
        data = X[self.features_].to_numpy(float).T
        return (data - self.stand_mean_[:, None] - mod) / np.sqrt(self.var_pooled_)[:, None], mod

    def estimate_batch(self, X: pd.DataFrame, covariates: pd.DataFrame | None = None) -> dict[str, list[float]]:
        """Batch effect of an unseen centre from its own features only (no labels, no other centre)."""
        s_data, _ = self._standardise(X, covariates)
        n = s_data.shape[1]
        design = np.ones((n, 1))
        info = {"batch_levels": np.arange(1), "ref_level": None, "n_batch": 1, "n_sample": n,
                "sample_per_batch": np.array([n]), "batch_info": [list(range(n))], "design": design}
        gamma, delta = self._adjustments(s_data, design, info)
        return {"gamma": gamma[0].tolist(), "delta": delta[0].tolist()}

    def add_batch(self, name: str, X: pd.DataFrame, covariates: pd.DataFrame | None = None) -> ComBat:
        """Fix an unseen centre's batch effect from these cases (its complete rows), so that transform maps
        other cases of that centre with it instead of estimating from the cases it is given (the in-fold
        diagnostics harmonise held-out cases with estimates from the fold's training cases only)."""
        check_is_fitted(self, "batches_")
        complete = X[self.features_].dropna()
        if len(complete) < self.min_batch_size:
            raise McradError(f"ComBat: centre {name} has {len(complete)} case(s) with every feature present, fewer "
                             f"than {self.min_batch_size}, too few to estimate its batch effect.")
        self.batches_[name] = self.estimate_batch(complete, covariates)
        return self

    def transform(self, X: pd.DataFrame, batch: pd.Series, covariates: pd.DataFrame | None = None) -> pd.DataFrame:
        check_is_fitted(self, "batches_")
        missing = [f for f in self.features_ if f not in X.columns]
        if missing:
            raise McradError(f"ComBat: {len(missing)} training feature(s) missing, e.g. {missing[:3]}. Fix: extract "
                             "every centre with the same parameter file and ROIs.")
        # A NaN (a feature class that failed for one case, flagged in qc/feature_flags.tsv) stays NaN: the
        # locked model imputes it as in training. An unseen centre's batch effect comes from its complete rows.
        self._check(X[self.features_], batch, allow_nan=True)
        incomplete = X[self.features_].isna().any(axis=1)
        if incomplete.any():
            log.warning("ComBat: %d case(s) have missing features and keep NaN there: %s", int(incomplete.sum()),
                        ", ".join(map(str, X.index[incomplete][:10])))
        out = X[self.features_].astype(float)
        for b in pd.unique(batch):
            rows = (batch == b).to_numpy()
            if b == self.ref_batch:
                continue  # the reference is left exactly as it is
            flat = X.loc[rows, self.features_].std(axis=0, ddof=0) == 0
            if flat.any():
                log.warning("ComBat: centre %s has %d feature(s) constant within it (e.g. %s); their values are "
                            "mapped to the reference mean", b, int(flat.sum()), list(flat.index[flat])[:3])
            est = self.batches_.get(b)
            if est is None:
                complete = rows & ~incomplete.to_numpy()
                if complete.sum() < self.min_batch_size:
                    raise McradError(f"ComBat: centre {b} has {int(complete.sum())} case(s) with every feature "
                                     f"present, fewer than {self.min_batch_size}, too few to estimate its batch "
                                     "effect. Fix: check qc/feature_flags.tsv for that centre, or set "
                                     "harmonise.activate: false.")
                est = self.estimate_batch(X.loc[complete], covariates)
            s, mod = self._standardise(X.loc[rows], covariates)
            adj = (s - np.array(est["gamma"])[:, None]) / np.sqrt(np.array(est["delta"]))[:, None]
            out.loc[rows, :] = (adj * np.sqrt(self.var_pooled_)[:, None] + self.stand_mean_[:, None] + mod).T
        return out

    def fit_transform(self, X, batch=None, covariates=None, **fit_params):
        return self.fit(X, batch, covariates).transform(X, batch, covariates)

    # ---- persistence: plain JSON, exact float round-trip, byte-stable ----------------------------------
    def to_json(self, path: str | Path) -> None:
        state = {"params": self.get_params(), "features": self.features_, "levels": self.levels_,
                 "stand_mean": self.stand_mean_.tolist(), "var_pooled": self.var_pooled_.tolist(),
                 "beta_cov": self.beta_cov_.tolist(), "batches": self.batches_}
        state["params"]["categorical"] = list(self.categorical)
        state["params"]["continuous"] = list(self.continuous)
        Path(path).write_text(json.dumps(state, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ComBat:
        s = json.loads(Path(path).read_text())
        params = s["params"]
        model = cls(**{**params, "categorical": tuple(params["categorical"]),
                       "continuous": tuple(params["continuous"])})
        model.features_, model.levels_, model.batches_ = s["features"], s["levels"], s["batches"]
        model.stand_mean_, model.var_pooled_ = np.array(s["stand_mean"]), np.array(s["var_pooled"])
        model.beta_cov_ = np.array(s["beta_cov"]).reshape(-1, len(model.features_))
        return model



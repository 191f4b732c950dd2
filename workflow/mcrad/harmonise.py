"""ComBat harmonisation that never lets an external centre touch training: fit on the training centre(s) with
the first one as reference batch, then map any centre, seen or unseen, onto that reference.

Estimation reuses neuroCombat's own functions (design matrix, standardisation, L/S fit, parametric and
non-parametric empirical Bayes); its `neuroCombat()`/`neuroCombatFromTraining()` entry points are avoided
because they crash under numpy 2 (`np.int`, array-to-scalar) and refuse unseen batches. For an unseen centre
the location/scale and its priors come from that centre's own (unlabelled) features standardised by the
reference; with no covariates this equals a joint ComBat of training + that centre with the training
centre as reference.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
nc = importlib.import_module("neuroCombat.neuroCombat")  # the module; the package re-exports only the function

from mcrad.errors import McradError


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):  # neuroCombat prints progress on stdout
        return fn(*args)


@dataclass
class ComBat:
    """Location/scale harmoniser. Data are (samples x features) DataFrames; batch is a Series of centre names."""

    ref_batch: str
    parametric: bool = True
    eb: bool = True
    mean_only: bool = False
    min_batch_size: int = 3
    features_: list[str] = field(default_factory=list)
    stand_mean_: np.ndarray | None = None
    var_pooled_: np.ndarray | None = None
    batches_: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def _check(self, X: pd.DataFrame, batch: pd.Series) -> None:
        if X.isna().any().any():
            bad = X.isna().stack()
            pid, feat = bad[bad].index[0]
            raise McradError(f"ComBat: feature {feat!r} is missing (NaN) for patient {pid} "
                             f"({int(bad.sum())} missing values in all). Fix: inspect that case's QC, or "
                             "quarantine it; ComBat does not impute.")
        counts = batch.value_counts()
        small = counts[counts < self.min_batch_size]
        if len(small):
            raise McradError(f"ComBat: centre(s) { {k: int(v) for k, v in small.items()} } have fewer than {self.min_batch_size} cases, too few "
                             "to estimate a batch effect. Fix: merge such a centre with a similar one, or set "
                             "harmonise.activate: false.")

    def fit(self, X: pd.DataFrame, batch: pd.Series) -> ComBat:
        self._check(X, batch)
        if self.ref_batch not in set(batch):
            raise McradError(f"ComBat: reference centre {self.ref_batch!r} has no cases in the training data.")
        self.features_ = list(X.columns)
        levels = sorted(set(batch), key=lambda b: (b != self.ref_batch, b))
        data = X.to_numpy(float).T
        s_data, info, design = self._standardise_joint(data, batch.to_numpy(), levels)
        gamma, delta = self._adjustments(s_data, design, info)
        for j, b in enumerate(levels):
            self.batches_[b] = {"gamma": gamma[j].tolist(), "delta": delta[j].tolist()}
        return self

    def _standardise_joint(self, data: np.ndarray, batch: np.ndarray, levels: list[str]):
        codes = np.array([levels.index(b) for b in batch])
        covars = codes.reshape(-1, 1).astype(object)
        design = nc.make_design_matrix(covars, 0, [], [], 0)
        info = {"batch_levels": np.arange(len(levels)), "ref_level": 0, "n_batch": len(levels),
                "n_sample": data.shape[1], "sample_per_batch": np.bincount(codes, minlength=len(levels)),
                "batch_info": [list(np.where(codes == j)[0]) for j in range(len(levels))], "design": design}
        s_data, stand_mean, var_pooled, _ = nc.standardize_across_features(data, design, info)
        self.stand_mean_ = stand_mean[:, 0].copy()
        self.var_pooled_ = var_pooled[:, 0].copy()
        return s_data, info, design

    def _adjustments(self, s_data: np.ndarray, design: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
        ls = nc.fit_LS_model_and_find_priors(s_data, design, info, self.mean_only)
        if not self.eb:
            gamma, delta = nc.find_non_eb_adjustments(s_data, ls, info)
        elif self.parametric:
            gamma, delta = _quiet(nc.find_parametric_adjustments, s_data, ls, info, self.mean_only)
        else:
            gamma, delta = _quiet(nc.find_non_parametric_adjustments, s_data, ls, info, self.mean_only)
        return np.asarray(gamma, float), np.asarray(delta, float)

    def _standardise(self, data: np.ndarray) -> np.ndarray:
        return (data - self.stand_mean_[:, None]) / np.sqrt(self.var_pooled_)[:, None]

    def estimate_batch(self, X: pd.DataFrame, name: str) -> dict[str, list[float]]:
        """Batch effect of an unseen centre from its own features only (no labels, no other centre)."""
        s_data = self._standardise(X[self.features_].to_numpy(float).T)
        n = s_data.shape[1]
        design = np.ones((n, 1))
        info = {"batch_levels": np.arange(1), "ref_level": None, "n_batch": 1, "n_sample": n,
                "sample_per_batch": np.array([n]), "batch_info": [list(range(n))], "design": design}
        gamma, delta = self._adjustments(s_data, design, info)
        return {"gamma": gamma[0].tolist(), "delta": delta[0].tolist()}

    def transform(self, X: pd.DataFrame, batch: pd.Series) -> pd.DataFrame:
        if self.stand_mean_ is None:
            raise McradError("ComBat: transform() called before fit().")
        missing = [f for f in self.features_ if f not in X.columns]
        if missing:
            raise McradError(f"ComBat: {len(missing)} training feature(s) missing, e.g. {missing[:3]}. Fix: extract "
                             "every centre with the same parameter file and ROIs.")
        self._check(X[self.features_], batch)
        out = X[self.features_].copy()
        for b in pd.unique(batch):
            rows = (batch == b).to_numpy()
            if b == self.ref_batch:
                continue  # the reference is left exactly as it is
            est = self.batches_.get(b) or self.estimate_batch(X.loc[rows], b)
            s = self._standardise(X.loc[rows, self.features_].to_numpy(float).T)
            adj = (s - np.array(est["gamma"])[:, None]) / np.sqrt(np.array(est["delta"]))[:, None]
            out.loc[rows, :] = (adj * np.sqrt(self.var_pooled_)[:, None] + self.stand_mean_[:, None]).T
        return out

    # persistence: plain JSON, exact float round-trip, byte-stable
    def to_json(self, path: str | Path) -> None:
        state = {"ref_batch": self.ref_batch, "parametric": self.parametric, "eb": self.eb,
                 "mean_only": self.mean_only, "min_batch_size": self.min_batch_size, "features": self.features_,
                 "stand_mean": self.stand_mean_.tolist(), "var_pooled": self.var_pooled_.tolist(),
                 "batches": self.batches_}
        Path(path).write_text(json.dumps(state, sort_keys=True) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ComBat:
        s = json.loads(Path(path).read_text())
        return cls(ref_batch=s["ref_batch"], parametric=s["parametric"], eb=s["eb"], mean_only=s["mean_only"],
                   min_batch_size=s["min_batch_size"], features_=s["features"],
                   stand_mean_=np.array(s["stand_mean"]), var_pooled_=np.array(s["var_pooled"]),
                   batches_=s["batches"])


def split_constant(X: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Features that vary in the reference data, and a table of those excluded (constant) with the reason."""
    std = X.std(axis=0, ddof=0)
    constant = list(std.index[~(std > 0)])
    excluded = pd.DataFrame({"feature": constant, "reason": "constant in the training centre(s): carries no "
                             "information and cannot be standardised"})
    return [c for c in X.columns if c not in constant], excluded


def fit_training(features: pd.DataFrame, train_centres: list[str], opts: dict[str, Any]
                 ) -> tuple[ComBat | None, pd.DataFrame, pd.DataFrame]:
    """(fitted model or None when off, harmonised training features, excluded-feature table)."""
    meta = ["patient_id", "centre"]
    feats = [c for c in features.columns if c not in meta]
    X = features.set_index("patient_id")[feats]
    keep, excluded = split_constant(X)
    if not opts["activate"]:
        return None, features[meta + keep], excluded
    model = ComBat(ref_batch=train_centres[0], parametric=opts["parametric"], eb=opts["eb"],
                   mean_only=opts["mean_only"], min_batch_size=opts["min_batch_size"])
    batch = features.set_index("patient_id")["centre"]
    model.fit(X[keep], batch)
    out = model.transform(X[keep], batch).reset_index()
    out.insert(1, "centre", batch.to_numpy())
    return model, out, excluded


def apply(model: ComBat | None, features: pd.DataFrame, keep: list[str]) -> pd.DataFrame:
    X = features.set_index("patient_id")
    if model is None:
        return features[["patient_id", "centre", *keep]]
    out = model.transform(X[keep], X["centre"]).reset_index()
    out.insert(1, "centre", X["centre"].to_numpy())
    return out


def save(model: ComBat | None, keep: list[str], path: str | Path) -> None:
    """The fitted harmoniser, or a record that harmonisation is off, with the features that go on."""
    if model is None:
        Path(path).write_text(json.dumps({"method": "none", "features": keep}, sort_keys=True) + "\n")
    else:
        model.to_json(path)


def load(path: str | Path) -> tuple[ComBat | None, list[str]]:
    state = json.loads(Path(path).read_text())
    if state.get("method") == "none":
        return None, state["features"]
    model = ComBat.from_json(path)
    return model, model.features_

"""Permutation p-values of the external discrimination (validate.permutations): the locked scores stay fixed and
the outcomes are permuted within each centre (pooled rows: within each of the pooled centres), so the null is
"this locked model ranks these patients no better than chance" at the centre's own case mix. One-sided, +1
corrected (mcrad.stats.permutation_p); seeded by the study seed, the model and the centre."""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint
from mcrad.stats import permutation_indices, permutation_p
from mcrad.validate.metrics import _metric_groups


def group_rng(seed: int, model: str, centre: str) -> np.random.Generator:
    """The generator of one metrics row: the same permutations on every run, independent across rows."""
    return np.random.default_rng([seed, zlib.crc32(model.encode()), zlib.crc32(centre.encode())])


def permutation_null(ep: Endpoint, pred: pd.DataFrame, permutations: int, rng: np.random.Generator,
                     chunk: int = 500) -> tuple[float, np.ndarray]:
    """(observed statistic, its null over `permutations` within-centre permutations of the outcomes), the
    permutation matrix drawn `chunk` rows at a time (memory on large cohorts)."""
    pred = pred.reset_index(drop=True)
    centres = pred["centre"].to_numpy()
    null = [ep.permuted_statistic(pred, permutation_indices(centres, min(chunk, permutations - start), rng))
            for start in range(0, permutations, chunk)]
    return ep.discrimination(pred), np.concatenate(null) if null else np.empty(0)


def with_permutation_p(metrics: pd.DataFrame, predictions: pd.DataFrame, ep: Endpoint, permutations: int,
                       seed: int) -> pd.DataFrame:
    """metrics.tsv with `p_permutation` after the statistic's interval: filled on external and pooled rows;
    empty on internal rows (out-of-fold scores are not fixed: their null is the y-randomisation) and when
    permutations is 0 or the statistic is undefined."""
    p = {}
    if permutations > 0:
        for (model, centre, stage), g in _metric_groups(predictions):
            if stage == "external":
                observed, null = permutation_null(ep, g, permutations, group_rng(seed, model, centre))
                p[(model, centre, stage)] = permutation_p(observed, null)
    keys = zip(metrics["model"], metrics["centre"], metrics["stage"], strict=True)
    column = [p.get(k, np.nan) for k in keys]
    out = metrics.copy()
    after = [c for c in ("auc_hi", "c_hi") if c in out.columns]  # beside the statistic's interval
    out.insert(list(out.columns).index(after[0]) + 1 if after else len(out.columns), "p_permutation", column)
    return out

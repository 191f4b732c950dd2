"""Minimum sample size of each locked model (Riley et al. 2020 criteria, mcrad.samplesize) against what its
training centre(s) had: the candidate parameters actually offered to the model (read from the locked bundles),
the training outcome frequency (from the out-of-fold internal predictions: training labels only) and an
anticipated R-squared from the config (guardrails.sample_size). One row per model: required n and events vs
available, events per candidate parameter, and a status a reader cannot miss."""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mcrad import samplesize as ss
from mcrad.errors import McradError

COLUMNS = ["model", "criterion", "parameters", "parameters_counted", "n_available", "events_available",
           "epp_available", "outcome_frequency", "r2cs", "r2cs_source", "max_r2cs", "n_required", "events_required",
           "epp_required", "n_criterion_1", "n_criterion_2", "n_criterion_3", "available_vs_required", "status", "note"]
# survival without an anticipated R-squared: Riley et al. 2020 (BMJ 368:m441) suggest, as a conservative choice,
# the Cox-Snell R-squared that is 15% of its maximum (pmsampsize derives one from a C-statistic for binary only)
SURVIVAL_DEFAULT_SHARE = 0.15


@lru_cache(maxsize=64)
def _r2_from_c(cstatistic: float, prevalence: float) -> float:
    """pmsampsize's C-statistic conversion (a million draws): once per prevalence, every model shares it."""
    return ss.cstatistic_to_r2cs(cstatistic, prevalence)


def candidate_parameters(meta: dict[str, Any], clinical_terms: int) -> tuple[int, str]:
    """The candidate predictor parameters offered to a locked model, before any selection, and how they were
    counted. `clinical_terms`: the encoded clinical columns (numeric ones once, categories one-hot) of the
    endpoint's clinical model."""
    name, features = meta["model"], len(meta["features"])
    if name == "clinical":
        return clinical_terms, f"{clinical_terms} encoded clinical predictor column(s)"
    if name == "nomogram":
        return (features + clinical_terms,
                f"{features} radiomics feature(s) behind the rad-score + {clinical_terms} encoded clinical column(s) "
                "offered to backward elimination")
    if name == "deep":
        return 1, "the deep score's recalibration slope; the network's weights are not counted"
    return features, f"{features} input column(s) offered to selection"


def _result_row(res: ss.SampleSize, n: int, events: float, parameters: int, r2_source: str) -> dict[str, Any]:
    by = {r.criterion: r for r in res.rows}
    final = by["final"]
    return {"parameters": parameters, "n_available": n, "events_available": events,
            "epp_available": round(events / parameters, 2), "r2cs": res.r2cs, "r2cs_source": r2_source,
            "max_r2cs": round(res.max_r2cs, 4), "n_required": final.n, "events_required": round(final.events, 1),
            "epp_required": final.epp, **{f"n_criterion_{k}": by[k].n for k in ("1", "2", "3")},
            "available_vs_required": round(n / final.n, 3)}


def binary_requirement(y: np.ndarray, parameters: int, opts: dict[str, Any]) -> dict[str, Any]:
    """Riley's binary criteria at the training prevalence of 0/1 labels y."""
    n, events = len(y), int(np.sum(y))
    q = events / n
    if opts.get("rsquared") is not None:
        r2, source = float(opts["rsquared"]), "guardrails.sample_size.rsquared"
    else:
        r2 = _r2_from_c(opts["cstatistic"], q)
        source = f"C-statistic {opts['cstatistic']} at prevalence {q:.3f} (as pmsampsize)"
    res = ss.binary(parameters, q, r2, opts["shrinkage"])
    return {"criterion": "binary (Riley 2020: shrinkage, optimism, overall risk)",
            "outcome_frequency": f"prevalence {q:.3f}", **_result_row(res, n, events, parameters, source)}


def survival_requirement(event: np.ndarray, time: np.ndarray, parameters: int, opts: dict[str, Any],
                         times: list[float]) -> dict[str, Any]:
    """Riley's survival criteria at the training event rate (events per unit of follow-up) and mean follow-up;
    the timepoint is the config's, else the endpoint's last reporting time, else the median follow-up."""
    n, events = len(time), int(np.sum(event))
    rate, meanfup = events / float(np.sum(time)), float(np.mean(time))
    timepoint = opts.get("timepoint") or (max(times) if times else float(np.median(time)))
    max_r2 = ss.max_r2cs_survival(rate, meanfup)
    if opts.get("rsquared") is not None:
        r2, source = float(opts["rsquared"]), "guardrails.sample_size.rsquared"
    else:
        r2 = round(SURVIVAL_DEFAULT_SHARE * max_r2, 4)
        source = (f"{SURVIVAL_DEFAULT_SHARE:.0%} of the maximum Cox-Snell R-squared (Riley 2020's conservative "
                  "default; set guardrails.sample_size.rsquared)")
    res = ss.survival(parameters, rate, timepoint, meanfup, r2, opts["shrinkage"])
    lo, risk, hi = res.risk_ci
    row = {"criterion": "survival (Riley 2020: shrinkage, optimism; overall risk precision reported)",
           "outcome_frequency": f"event rate {rate:.4f} per unit time, mean follow-up {meanfup:.1f}",
           **_result_row(res, n, events, parameters, source)}
    row["note"] = f"risk at t = {timepoint:g}: {risk:.3f} (95% CI {lo:.3f}-{hi:.3f} at the required n)"
    return row


def multiclass_requirement(labels: pd.Series, classes: list[str], parameters: int, opts: dict[str, Any]
                           ) -> dict[str, Any]:
    """Multi-class outcomes are not covered by Riley 2020's binary and survival criteria: the binary criteria of
    each class against the rest are computed at that class's prevalence, and the most demanding is reported
    (parameters counted once per contrast; the multinomial criteria of Pate et al. 2023 are not implemented)."""
    text = labels.astype(str)
    best: dict[str, Any] | None = None
    for c in classes:
        y = (text == c).to_numpy(int)
        if not 0 < y.sum() < len(y):
            continue
        row = binary_requirement(y, parameters, opts)
        if best is None or row["n_required"] > best["n_required"]:
            best = {**row, "criterion": f"multi-class: binary one-vs-rest of class {c}, the most demanding of the "
                    "classes (multinomial criteria not implemented)",
                    "outcome_frequency": f"class {c} {row['outcome_frequency']}"}
    if best is None:
        raise McradError("fewer than two classes in training: no sample size criterion applies")
    return best


def status(ratio: float, far_below: float) -> str:
    if not math.isfinite(ratio):
        return "not computed"
    if ratio >= 1:
        return "meets the minimum"
    return "FAR BELOW the minimum" if ratio < far_below else "below the minimum"


def sample_size_table(ep, metas: dict[str, dict], internal: pd.DataFrame, opts: dict[str, Any]) -> pd.DataFrame:
    """One row per model of the endpoint (metas: model name -> bundle meta.json, in registry order). A model whose
    calculation is impossible (an anticipated R-squared above the maximum its outcome frequency allows, one class
    only) keeps its row, with the reason in `note` and status `not computed`."""
    clinical = metas.get("clinical", {}).get("description", {}).get("coefficients", {})
    rows = []
    for name, meta in metas.items():
        parameters, counted = candidate_parameters(meta, len(clinical))
        rows_of = internal[internal["model"] == name]
        base = {"model": name, "parameters": parameters, "parameters_counted": counted, "n_available": len(rows_of)}
        try:
            if parameters < 1:
                raise McradError("no candidate parameter was offered to this model")
            row = {**base, **ep.sample_size(rows_of, parameters, opts)}
        except McradError as exc:
            row = {**base, "note": str(exc)}
        row["status"] = status(row.get("available_vs_required", float("nan")), opts["far_below"])
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


def sample_size_stage(cfg: dict, endpoint_name: str, models_dir: Path, models: list[str], internal_files: list[Path],
                      out_file: Path) -> None:
    """`mcrad model-sample-size`: models/<endpoint>/sample_size.tsv from the locked bundles' meta.json and the
    out-of-fold internal predictions (training centre(s) only)."""
    from mcrad.endpoints import endpoint_named
    from mcrad.files import read_tables, write_table
    from mcrad.model.bundle import load_meta

    ep = endpoint_named(cfg, endpoint_name)
    metas = {name: load_meta(Path(models_dir) / name)[0] for name in models}
    internal = read_tables(internal_files)
    other = sorted(set(internal["stage"]) - {"internal"})
    if other:
        raise McradError(f"sample size of {endpoint_name}: the predictions hold stage(s) {other}; only the training "
                         "centre(s)' internal predictions may be used. Fix: pass models/<endpoint>/internal_*.tsv.")
    write_table(sample_size_table(ep, metas, internal, cfg["guardrails"]["sample_size"]), out_file)

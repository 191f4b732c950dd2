"""Y-randomisation of stage 1 (guardrails.y_randomisation): the whole training pipeline of a model (filters,
selection, hyper-parameter search, nested cross-validation: the very function that trains the locked model) rerun
k times on training outcomes shuffled at random. With no signal left to find, its internal (out-of-fold)
statistic must centre on chance (0.5). A null well above chance means the pipeline finds signal in noise (labels
reaching feature selection outside the cross-validation, say); a real internal statistic inside the null is no
better than noise (Ruecker, Ruecker & Meringer 2007, J Chem Inf Model 47:2345; Ojala & Garriga 2010, JMLR
11:1833, test 1)."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint, endpoint_named
from mcrad.errors import McradError
from mcrad.files import read_table, read_tables, write_table
from mcrad.model.stage import robust_columns
from mcrad.model.train import training_table
from mcrad.stats import permutation_p

CHANCE = 0.5  # AUC, macro one-vs-rest AUC and C-index of a score unrelated to the outcome
NULL_COLUMNS = ["model", "permutation", "statistic", "note"]
SUMMARY_COLUMNS = ["model", "statistic", "k", "failed", "null_mean", "null_sd", "null_q025", "null_q975", "real",
                   "p_empirical", "flagged", "note"]

# a training table (outcome columns shuffled) -> one model's internal predictions (predictions.tsv columns)
InternalPipeline = Callable[[pd.DataFrame], pd.DataFrame]


def permutation_rng(seed: int, permutation: int) -> np.random.Generator:
    """The generator of permutation j: the same shuffle for every model (and every job) of a study."""
    return np.random.default_rng([seed, permutation])


def shuffled_outcomes(df: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    """df with the outcome columns' rows shuffled together (survival: (time, event) pairs stay pairs); predictors
    and ids stay in place."""
    order = rng.permutation(len(df))
    return df.assign(**{c: df[c].to_numpy()[order] for c in columns})


def stage1_pipeline(ep: Endpoint, radiomics_columns: list[str], clinical: list[dict], opts: dict, seed: int,
                    model: str) -> InternalPipeline:
    """Stage 1 of one model as the train rule runs it (Endpoint.train), keeping its internal predictions."""
    return lambda df: ep.train(df, radiomics_columns, clinical, opts, seed, models=(model,))[1]


def y_randomisation(df: pd.DataFrame, pipeline: InternalPipeline, ep: Endpoint, permutations: int,
                    seed: int) -> pd.DataFrame:
    """permutation, statistic (ep.statistic of the pipeline's internal predictions on shuffled outcomes), note.
    A permutation whose training fails is kept with an empty statistic and the error as its note."""
    rows = []
    for j in range(permutations):
        shuffled = shuffled_outcomes(df, ep.outcome_columns, permutation_rng(seed, j))
        try:
            with warnings.catch_warnings():  # shuffled outcomes make sklearn's small-fold warnings the rule
                warnings.simplefilter("ignore")
                internal = pipeline(shuffled)
            rows.append({"permutation": j, "statistic": ep.discrimination(internal), "note": ""})
        except (McradError, ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            print(f"y-randomisation: permutation {j} failed: {exc}")
            rows.append({"permutation": j, "statistic": np.nan, "note": f"failed: {exc}"})
    return pd.DataFrame(rows, columns=["permutation", "statistic", "note"])


def summarise_null(null: pd.DataFrame, real: dict[str, float], statistic: str, tolerance: float) -> pd.DataFrame:
    """Per model: k permutations with a statistic (and how many failed), null mean, SD and 2.5/97.5% quantiles,
    the real internal statistic, its empirical p ((1 + #{null >= real}) / (1 + k)), and flagged when the null
    mean is more than `tolerance` from chance."""
    rows = []
    for model, g in null.groupby("model", sort=False):
        values = pd.to_numeric(g["statistic"]).to_numpy(float)
        ok = values[np.isfinite(values)]
        row = {"model": model, "statistic": statistic, "k": len(ok), "failed": int(len(values) - len(ok)),
               "real": real.get(model, np.nan)}
        if len(ok):
            mean = float(ok.mean())
            row.update(null_mean=mean, null_sd=float(ok.std(ddof=1)) if len(ok) > 1 else np.nan,
                       null_q025=float(np.quantile(ok, 0.025)), null_q975=float(np.quantile(ok, 0.975)),
                       p_empirical=permutation_p(row["real"], ok), flagged=bool(abs(mean - CHANCE) > tolerance))
            row["note"] = _note(mean, tolerance)
        else:
            row.update(flagged=True, note="no permutation could be trained: see the y_randomisation log")
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


def _note(mean: float, tolerance: float) -> str:
    gap = mean - CHANCE
    if gap > tolerance:
        return (f"null mean {mean:.3f} is {gap:.3f} above chance: the pipeline finds signal in shuffled outcomes. "
                "Check that nothing fitted on labels (selection, scaling, tuning) runs outside the cross-validation")
    if gap < -tolerance:
        return (f"null mean {mean:.3f} is {-gap:.3f} below chance: not a leak, but the pooled out-of-fold "
                "predictions of few cases rank below chance without signal (cross-validation's pessimistic bias), so "
                "internal estimates lean low")
    return ""


def _options(cfg: dict) -> dict:
    opts = cfg["guardrails"]["y_randomisation"]
    return {**opts, "seed": cfg["study"]["seed"] if opts["seed"] is None else opts["seed"]}


def y_randomisation_stage(cfg: dict, endpoint_name: str, model: str, features_file: Path, cohort_files: list[Path],
                          robustness_file: Path | None, out_file: Path) -> None:
    """One model's null: its stage-1 pipeline on the training table of the train rule, outcomes shuffled."""
    ep = endpoint_named(cfg, endpoint_name)
    opts = _options(cfg)
    features = read_table(features_file)
    columns = robust_columns(features, read_table(robustness_file) if robustness_file else None)
    df = training_table(features, read_tables(cohort_files), ep.column, numeric=ep.numeric_label)
    pipeline = stage1_pipeline(ep, columns, cfg["cohort"]["clinical"], cfg["model"], cfg["study"]["seed"], model)
    null = y_randomisation(df, pipeline, ep, opts["permutations"], opts["seed"]).assign(model=model)
    write_table(null[NULL_COLUMNS], out_file)


def y_randomisation_gather(cfg: dict, endpoint_name: str, null_files: list[Path], internal_file: Path,
                           out_file: Path, summary_file: Path) -> None:
    """All models' nulls in one table, and their summary against each model's real internal statistic (from the
    out-of-fold predictions of the locked models)."""
    ep = endpoint_named(cfg, endpoint_name)
    null = read_tables(null_files).reindex(columns=NULL_COLUMNS)
    null["note"] = null["note"].fillna("")
    internal = read_table(internal_file)
    real = {m: ep.discrimination(g) for m, g in internal.groupby("model", sort=False)}
    write_table(null, out_file)
    write_table(summarise_null(null, real, ep.statistic, _options(cfg)["tolerance"]), summary_file)

"""Harmonise (stage between features and models): ComBat fitted on the training centre(s) only, with the first
as reference batch, then every centre mapped onto it.

combat (the ComBat estimator), diagnostics (does it remove the centre and keep the signal?), and here the
workflow's use of it: features constant or incomplete in training are excluded, the fitted harmoniser is
saved as JSON and applied to each external centre from its own unlabelled features.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from mcrad.errors import McradError
from mcrad.files import EXACT_FLOATS, META, read_table, read_tables, write_table
from mcrad.harmonise.combat import ComBat


def split_constant(X: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
    """Features that vary in the reference data, and a table of those excluded (constant) with the reason."""
    std = X.std(axis=0, ddof=0)
    # NaN = a feature some training case could not give (qc/feature_flags.tsv says why): ComBat needs complete data
    missing = list(X.columns[X.isna().any()])
    constant = [c for c in std.index[~(std > 0)] if c not in missing]
    excluded = pd.concat([
        pd.DataFrame({"feature": constant, "reason": "constant in the training centre(s): carries no "
                      "information and cannot be standardised"}),
        pd.DataFrame({"feature": missing, "reason": [f"NaN for {int(X[c].isna().sum())} training case(s) "
                                                     "(see qc/feature_flags.tsv)" for c in missing]}),
    ], ignore_index=True)
    return [c for c in X.columns if c not in constant and c not in missing], excluded


def from_options(opts: dict[str, Any], ref_batch: str, clinical: list[dict]) -> ComBat:
    """The workflow's harmoniser: the config's `harmonise` section, covariates typed by `cohort.clinical`."""
    types = {c["name"]: c["type"] for c in clinical}
    covariates = opts.get("covariates", [])
    return ComBat(ref_batch=ref_batch, parametric=opts["parametric"], eb=opts["eb"], mean_only=opts["mean_only"],
                  min_batch_size=opts["min_batch_size"],
                  categorical=tuple(c for c in covariates if types[c] == "categorical"),
                  continuous=tuple(c for c in covariates if types[c] != "categorical"))


def _covariates(model: ComBat, features: pd.DataFrame, cohort: pd.DataFrame | None) -> pd.DataFrame | None:
    names = [*model.categorical, *model.continuous]
    if not names:
        return None
    cov = cohort.set_index("patient_id")
    missing = sorted(set(features["patient_id"]) - set(cov.index))
    if missing:
        raise McradError(f"ComBat covariates: patients {missing[:5]} have features but no cohort row.")
    return cov.loc[features["patient_id"], names]


def fit_training(features: pd.DataFrame, cohort: pd.DataFrame | None, train_centres: list[str],
                 opts: dict[str, Any], clinical: list[dict]) -> tuple[ComBat | None, pd.DataFrame, pd.DataFrame]:
    """(fitted model or None when off, harmonised training features, excluded-feature table)."""
    meta = ["patient_id", "centre"]
    feats = [c for c in features.columns if c not in meta]
    X = features.set_index("patient_id")[feats]
    keep, excluded = split_constant(X)
    if not opts["activate"]:
        return None, features[meta + keep], excluded
    model = from_options(opts, train_centres[0], clinical)
    batch = features.set_index("patient_id")["centre"]
    cov = _covariates(model, features, cohort)
    model.fit(X[keep], batch, cov)
    out = model.transform(X[keep], batch, cov).reset_index()
    out.insert(1, "centre", batch.to_numpy())
    return model, out, excluded


def apply(model: ComBat | None, features: pd.DataFrame, keep: list[str], cohort: pd.DataFrame | None = None
          ) -> pd.DataFrame:
    if model is None:
        return features[["patient_id", "centre", *keep]]
    X = features.set_index("patient_id")
    out = model.transform(X[keep], X["centre"], _covariates(model, features, cohort)).reset_index()
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




def fit_stage(cfg: dict, feature_files: list[Path], predictor_files: list[Path], model_file: Path, out_file: Path,
              excluded_file: Path) -> None:
    """`mcrad harmonise-fit`: ComBat on the training centre(s)' raw features; covariates come from their
    label-free predictors tables (harmonisation never needs an outcome)."""
    model, out, excluded = fit_training(read_tables(feature_files), read_tables(predictor_files),
                                        cfg["design"]["train"], cfg["harmonise"], cfg["cohort"]["clinical"])
    save(model, [c for c in out.columns if c not in META], model_file)
    write_table(out, out_file)
    write_table(excluded, excluded_file)


def apply_stage(model_file: Path, features_file: Path, predictors_file: Path, out_file: Path) -> None:
    """`mcrad harmonise-apply`: one centre mapped onto the training reference, from its own unlabelled features."""
    model, keep = load(model_file)
    write_table(apply(model, read_table(features_file), keep, read_table(predictors_file)), out_file)


def diagnostics_stage(cfg: dict, raw_file: Path, harmonised_file: Path, predictor_files: list[Path],
                      summary_file: Path, kruskal_file: Path, variance_file: Path, pca_file: Path) -> None:
    """`mcrad harmonise-diagnostics`: label-free diagnostics before/after ComBat, "after" with the harmoniser
    refitted inside each fold (covariates from the centres' label-free predictors tables)."""
    from mcrad.files import write_json
    from mcrad.harmonise.diagnostics import diagnostics

    train, h, clinical = cfg["design"]["train"], cfg["harmonise"], cfg["cohort"]["clinical"]
    harmonised = read_table(harmonised_file)
    make = (lambda: from_options(h, train[0], clinical)) if h["activate"] else None
    cov = _covariates(make(), harmonised, read_tables(predictor_files)) if make else None
    summary, kw, variance, pca = diagnostics(read_table(raw_file), harmonised, cfg["study"]["seed"], make, cov,
                                             train)
    write_json(summary, summary_file)
    write_table(kw, kruskal_file)
    write_table(variance, variance_file)
    write_table(pca, pca_file)


def outcome_check_stage(cfg: dict, raw_files: list[Path], harmonised_file: Path, cohort_files: list[Path],
                        out_file: Path) -> None:
    """`mcrad harmonise-outcome-check`: the training centre(s)' outcome signal before/after ComBat, for every
    endpoint with a 0/1 outcome (training labels only: a cohort table of another centre is refused)."""
    from mcrad.endpoints import endpoints
    from mcrad.files import write_json
    from mcrad.harmonise.diagnostics import outcome_check

    train = cfg["design"]["train"]
    cohort = read_tables(cohort_files).set_index("patient_id")
    other = sorted(set(cohort["centre"]) - set(train))
    if other:
        raise McradError(f"harmonisation outcome check: cohort tables of centre(s) {other} were given; it reads the "
                         f"training centres' ({train}) labels only. Fix: pass cohort/<training centre>.tsv only.")
    labels = {ep.name: y for ep in endpoints(cfg) if (y := ep.harmonisation_outcome(cohort)) is not None}
    harmonised = read_table(harmonised_file)
    write_json(outcome_check(read_tables(raw_files), harmonised, labels, cfg["study"]["seed"], train), out_file)


def harmonise_table(features: Path, batch_col: str, covariates: list[str], categorical: set[str], id_col: str | None,
                    ref_batch: str | None, parametric: bool, eb: bool, mean_only: bool, min_batch_size: int,
                    out: Path, model_file: Path | None = None) -> None:
    """`mcrad harmonise`: standalone ComBat on one table (rows = samples; TSV, or CSV by extension), like
    neuroCombat/sva but with numpy 2 and a reference batch. Covariates are categorical when named in
    `categorical` or not numeric."""
    df = pd.read_csv(features, sep="\t" if str(features).endswith((".tsv", ".txt")) else ",",
                     float_precision=EXACT_FLOATS)
    if batch_col not in df.columns:
        raise McradError(f"{features}: no batch column {batch_col!r}; columns are {list(df.columns)[:10]}...")
    cat = tuple(c for c in covariates if c in categorical or not pd.api.types.is_numeric_dtype(df[c]))
    ids = [c for c in (id_col,) if c and c in df.columns]
    columns = [c for c in df.columns if c not in {batch_col, *covariates, *ids}]
    non_numeric = [c for c in columns if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        raise McradError(f"{features}: column(s) {non_numeric[:5]} are not numeric. Fix: name them with "
                         "--covariates or --id-col, or remove them.")
    batch = df[batch_col].astype(str)
    model = ComBat(ref_batch=ref_batch, parametric=parametric, eb=eb, mean_only=mean_only,
                   min_batch_size=min_batch_size, categorical=cat,
                   continuous=tuple(c for c in covariates if c not in cat))
    cov = df[covariates] if covariates else None
    harmonised = model.fit(df[columns], batch, cov).transform(df[columns], batch, cov)
    write_table(pd.concat([df[ids + [batch_col] + covariates], harmonised], axis=1), out)
    if model_file:
        model.to_json(model_file)

"""The study's model pipeline on one control's features: ComBat fitted on the training centre(s) exactly as the
harmonise stage fits it, the endpoint's models trained and locked by the model stage's functions, and the locked
bundles scored on the external centres by the validate stage's functions; per feature family."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.controls import family_columns
from mcrad.endpoints import Endpoint, endpoint_named
from mcrad.errors import McradError
from mcrad.files import META, read_table, read_tables, write_table
from mcrad.harmonise import apply, fit_training
from mcrad.model.bundle import load_bundle, save_bundle
from mcrad.model.stage import robust_columns
from mcrad.model.train import training_table
from mcrad.validate.scoring import score_bundle


def metric_names(ep: Endpoint) -> tuple[str, str, str]:
    """(value, lower, upper) columns of the endpoint's metrics table: AUC (macro AUC for multi-class) or C-index."""
    return (ep.statistic, *ep.statistic_interval)


def control_rows(metrics: pd.DataFrame, ep: Endpoint, control: str, family: str) -> pd.DataFrame:
    """negative_controls.tsv rows from a metrics table: control, features, model, centre, stage, n, auc or
    c_index, lo, hi."""
    value, lo, hi = metric_names(ep)
    out = metrics.reindex(columns=["model", "centre", "stage", "n", value, lo, hi, "note"]).rename(
        columns={lo: "lo", hi: "hi"})
    out.insert(0, "features", family)
    out.insert(0, "control", control)
    return out.reset_index(drop=True)


def _not_run(control: str, family: str, models: list[str], centre: str, stage: str, note: str) -> pd.DataFrame:
    return pd.DataFrame([{"control": control, "features": family, "model": m, "centre": centre, "stage": stage,
                          "n": 0, "note": note} for m in models])


def validate_control(cfg: dict, ep: Endpoint, features: pd.DataFrame, predictors: pd.DataFrame,
                     cohorts: dict[str, pd.DataFrame], robustness: pd.DataFrame | None, control: str,
                     families: list[str], models: list[str], models_dir: Path) -> pd.DataFrame:
    """Stage 1 and 2 of one endpoint on a control's raw features (every training and external centre): ComBat,
    training and locking per family (models_dir/<family>/<model>), external scoring, metrics as validate writes
    them. Returns the negative_controls.tsv rows. What cannot run (too few control cases for cross-validation or
    ComBat: randomised_roi can leave cases out) gets rows with n 0 and a note saying why, not a failed study."""
    design, clinical, seed = cfg["design"], cfg["cohort"]["clinical"], cfg["study"]["seed"]
    train = features[features["centre"].isin(design["train"])].reset_index(drop=True)
    try:
        if train.empty:
            raise McradError("no training case has control features")
        combat, harmonised, _ = fit_training(train, predictors, design["train"], cfg["harmonise"], clinical)
    except McradError as exc:
        return pd.concat([_not_run(control, f, models, "+".join(design["train"]), "internal",
                                   f"not trained: {exc}") for f in families], ignore_index=True)
    keep = [c for c in harmonised.columns if c not in META]
    external, skipped = {}, []
    for c in design["external"]:
        rows = features[features["centre"] == c].reset_index(drop=True)
        try:
            if rows.empty:
                raise McradError("no case of this centre has control features")
            external[c] = apply(combat, rows, keep, predictors)
        except McradError as exc:
            skipped.append((c, f"not validated: {exc}"))
    df = training_table(harmonised, pd.concat([cohorts[c] for c in design["train"]], ignore_index=True), ep.column,
                        numeric=ep.numeric_label)
    rows = []
    for family in families:
        try:
            columns = family_columns(robust_columns(harmonised, robustness), family, train,
                                     cfg["negative_controls"]["volume_rho"])
            fitted, internal = ep.train(df, columns, clinical, cfg["model"], seed, tuple(models))
        except McradError as exc:
            rows.append(_not_run(control, family, models, "+".join(design["train"]), "internal", f"not trained: {exc}"))
            continue
        training = {"centres": design["train"], "n": int(len(df)), "seed": seed, "options": cfg["model"],
                    "negative_control": control, "feature_family": family, **ep.training_record(df, internal)}
        for name in models:
            save_bundle(models_dir / family / name, name, fitted[name], columns, clinical, ep.spec, training)
        scored = [score_bundle(models_dir / family / name, table, cohorts[c], ep).assign(stage="external")
                  for name in models for c, table in external.items()]
        predictions = pd.concat([internal, *scored], ignore_index=True)[ep.prediction_columns]
        thresholds = {name: load_bundle(models_dir / family / name)[1]["threshold"] for name in models}
        metrics = ep.summarise(ep.scored(predictions), thresholds, cfg["validate"]["alpha"])
        rows.append(control_rows(metrics, ep, control, family))
        rows += [_not_run(control, family, models, c, "external", note) for c, note in skipped]
    return pd.concat(rows, ignore_index=True)


def validate_control_stage(cfg: dict, endpoint_name: str, control: str, feature_files: list[Path],
                           predictor_files: list[Path], cohort_files: list[Path], robustness_file: Path | None,
                           models_dir: Path, out: Path) -> None:
    """`mcrad controls-validate`: one control kind (or `none`, the real features, for the families the real
    models do not cover) of one endpoint; feature, predictor and cohort files: one per training and external
    centre."""
    ep = endpoint_named(cfg, endpoint_name)
    opts = cfg["negative_controls"]
    cohorts = {str(t["centre"].iloc[0]): t for t in (read_table(f) for f in cohort_files) if len(t)}
    families = [f for f in opts["families"] if control != "none" or f != "all"]
    table = validate_control(cfg, ep, read_tables(feature_files), read_tables(predictor_files), cohorts,
                             read_table(robustness_file) if robustness_file else None, control, families,
                             list(opts["models"]), Path(models_dir))
    write_table(table, out)

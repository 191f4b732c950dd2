"""Volume confounding: many published radiomic signatures are tumour volume in disguise. Tumour volume alone is
trained and locked on the training centre(s) as the endpoint's clinical model of one predictor (log volume), then
scored on every external centre and summarised exactly as the locked models are (metrics.tsv columns); and each
feature the locked radiomics model selected, and its score, is correlated with volume on the training centre(s),
flagged when |Spearman rho| reaches guardrails.volume_check.surrogate_rho. Volume is the raw (un-harmonised)
physical measurement: ComBat would move it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mcrad.endpoints import Endpoint
from mcrad.errors import McradError

VOLUME = "log_tumour_volume"  # the one predictor of the volume model: log(mm^3), volumes spread over decades
MODEL = "volume"
SHAPE = re.compile(r"^(?P<seq>[A-Za-z0-9]+)_tumour_original_shape_(?P<kind>MeshVolume|VoxelVolume)$")


def volume_column(columns: list[str], sequences: list[str], feature: str | None = None) -> str:
    """The feature column holding the tumour volume: `feature` when given, else the tumour ROI's MeshVolume (else
    VoxelVolume) of the reference sequence (the first of cohort.sequences, else the first found)."""
    if feature is not None:
        if feature not in columns:
            raise McradError(f"guardrails.volume_check.feature {feature!r} is not a feature column (e.g. "
                             f"{columns[:3]}). Fix: name a column of features/raw.tsv, or null to find it.")
        return feature
    found = [(m["seq"], m["kind"], c) for c in columns if (m := SHAPE.match(c))]
    if sequences:
        found = [f for f in found if f[0] == sequences[0]] or found
    for kind in ("MeshVolume", "VoxelVolume"):
        for _, k, col in found:
            if k == kind:
                return col
    raise McradError("the volume check found no tumour volume among the features (<sequence>_tumour_original_shape_"
                     "MeshVolume or VoxelVolume). Fix: enable the shape class in the pyradiomics parameter file, name "
                     "the column in guardrails.volume_check.feature, or set guardrails.volume_check.activate: false.")


def volume_table(raw: pd.DataFrame, column: str) -> tuple[pd.DataFrame, list[str]]:
    """patient_id, centre, log volume of the cases with a positive volume, and the patients left out (no volume)."""
    v = pd.to_numeric(raw[column], errors="coerce")
    ok = v > 0
    out = pd.DataFrame({"patient_id": raw["patient_id"], "centre": raw["centre"], VOLUME: np.log(v.where(ok))})
    return out[ok.to_numpy()].reset_index(drop=True), raw.loc[~ok.to_numpy(), "patient_id"].tolist()


def volume_model(ep: Endpoint, volumes: pd.DataFrame, train_cohort: pd.DataFrame, opts: dict[str, Any], seed: int
                 ) -> tuple[Any, float | None, pd.DataFrame]:
    """Volume alone locked on the training centre(s): the endpoint's clinical model with log volume as its only
    predictor, fitted, cross-validated (same outer folds) and thresholded exactly as the locked clinical model.
    Returns (fitted model, locked threshold, internal out-of-fold predictions)."""
    from mcrad.model.train import training_table

    df = training_table(volumes, train_cohort, ep.column, numeric=ep.numeric_label)
    fitted, internal = ep.train(df, [], [{"name": VOLUME, "type": "numeric"}], opts, seed, models=("clinical",))
    entry = fitted["clinical"]
    return entry["model"], entry["threshold"], internal[internal["model"] == "clinical"].assign(model=MODEL)


def volume_metrics(ep: Endpoint, volumes: pd.DataFrame, cohorts: dict[str, pd.DataFrame], train: list[str],
                   opts: dict[str, Any], seed: int, alpha: float, permutations: int) -> pd.DataFrame:
    """metrics.tsv rows of the volume model: internal (out-of-fold) on the training centre(s), each external centre
    scored by the locked volume model, and the external centres pooled (with the same permutation p)."""
    from mcrad.validate.permutation import with_permutation_p

    train_cohort = pd.concat([cohorts[c] for c in train], ignore_index=True)
    model, threshold, internal = volume_model(ep, volumes[volumes["centre"].isin(train)], train_cohort, opts, seed)
    frames = [internal[ep.prediction_columns]]
    for centre, cohort in cohorts.items():
        rows = volumes[volumes["centre"] == centre].reset_index(drop=True)
        if centre in train or rows.empty:
            continue
        scored = pd.concat([rows[["patient_id", "centre"]].assign(model=MODEL), ep.score(model, rows)], axis=1)
        frames.append(ep.attach_outcomes(scored, cohort).assign(stage="external")[ep.prediction_columns])
    predictions = ep.scored(pd.concat(frames, ignore_index=True))
    return with_permutation_p(ep.summarise(predictions, {MODEL: threshold}, alpha), predictions, ep, permutations, seed)


def volume_correlation(volumes: pd.DataFrame, train_features: pd.DataFrame, meta: dict[str, Any], scores: pd.DataFrame,
                       surrogate_rho: float) -> pd.DataFrame:
    """On the training centre(s): Spearman rho (and p) with volume of each feature the locked radiomics model
    selected (its standardised weight beside it) and of each numeric output of that model, flagged when
    |rho| >= surrogate_rho. `scores`: patient_id + the model's output columns on the training rows."""
    from scipy.stats import spearmanr

    vol = volumes.set_index("patient_id")[VOLUME]
    selected = meta["description"].get("selected_features", {})
    items: list[tuple[str, str, Any, pd.Series]] = []
    feats = train_features.set_index("patient_id")
    for name, weight in selected.items():
        w = max(weight.values(), key=abs) if isinstance(weight, dict) else weight  # multi-class: largest |weight|
        items.append(("selected feature", name, w, pd.to_numeric(feats[name], errors="coerce")))
    out = scores.set_index("patient_id")
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            items.append(("model output", f"radiomics {col}", np.nan, out[col].astype(float)))
    rows = []
    for kind, name, weight, values in items:
        both = pd.concat([values.rename("x"), vol.rename("v")], axis=1, join="inner").dropna()
        rho, p = spearmanr(both["x"], both["v"]) if len(both) > 2 and both["x"].nunique() > 1 else (np.nan, np.nan)
        rows.append({"kind": kind, "name": name, "weight": weight, "n": len(both), "spearman_rho": float(rho),
                     "p": float(p), "volume_surrogate": bool(abs(rho) >= surrogate_rho) if np.isfinite(rho) else False})
    return pd.DataFrame(rows, columns=["kind", "name", "weight", "n", "spearman_rho", "p", "volume_surrogate"])


def volume_check_stage(cfg: dict, endpoint_name: str, raw_files: list[Path], train_features_file: Path,
                       cohort_files: list[Path], radiomics_bundle: Path, metrics_file: Path,
                       correlation_file: Path) -> None:
    """`mcrad volume-check`: validation/<endpoint>/volume_confounding.tsv and volume_correlation.tsv. raw_files and
    cohort_files hold one table per centre (training and external centres)."""
    from mcrad.endpoints import endpoint_named
    from mcrad.files import read_table, read_tables, write_table
    from mcrad.model.bundle import load_meta
    from mcrad.validate.scoring import predict_bundle

    ep, opts = endpoint_named(cfg, endpoint_name), cfg["guardrails"]["volume_check"]
    train = cfg["design"]["train"]
    raw = read_tables(raw_files)
    column = volume_column([c for c in raw.columns if c not in ("patient_id", "centre")], cfg["cohort"]["sequences"],
                           opts["feature"])
    volumes, missing = volume_table(raw, column)
    if missing:  # listed, never silently dropped
        print(f"volume-check: {len(missing)} case(s) without a positive {column} left out of the volume model: "
              f"{missing[:20]}")
    cohorts = {str(t["centre"].iloc[0]): t for t in (read_table(f) for f in cohort_files) if len(t)}
    metrics = volume_metrics(ep, volumes, cohorts, train, cfg["model"], cfg["study"]["seed"], cfg["validate"]["alpha"],
                             cfg["validate"]["permutations"])
    write_table(metrics.assign(volume_feature=column), metrics_file)
    features = read_table(train_features_file)
    meta, _ = load_meta(Path(radiomics_bundle))
    scores = predict_bundle(Path(radiomics_bundle), features).drop(columns=["centre", "model"])
    write_table(volume_correlation(volumes, features, meta, scores, opts["surrogate_rho"]), correlation_file)

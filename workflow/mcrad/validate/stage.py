"""`mcrad validate`: score the external centres with an endpoint's locked bundles and write its predictions,
metrics, paired tests, curve tables and (with harmonise.compare) the metrics with and without ComBat."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrad.endpoints import endpoint_named
from mcrad.files import read_table, read_tables, write_table
from mcrad.model.bundle import load_bundle
from mcrad.model.fusion import join_deep
from mcrad.paths import Paths
from mcrad.validate.permutation import with_permutation_p
from mcrad.validate.scoring import reader_predictions, score_bundle


def validate_stage(cfg: dict, endpoint_name: str, models_dir: Path, models: list[str], internal_files: list[Path],
                   feature_files: list[Path], cohort_files: list[Path], deep_files: list[Path],
                   raw_feature_files: list[Path], out: Paths) -> None:
    """Stage 2 of one endpoint. feature_files, cohort_files (and deep_files, raw_feature_files when given) hold
    one table per external centre, in the same order; `out` names the files written (validation/<endpoint>/)."""
    ep = endpoint_named(cfg, endpoint_name)
    alpha = cfg["validate"]["alpha"]
    cohorts = [read_table(p) for p in cohort_files]
    thresholds = {name: load_bundle(Path(models_dir) / name)[1]["threshold"] for name in models}
    columns = ep.prediction_columns
    deep = [read_table(p) for p in deep_files] if deep_files else [None] * len(cohorts)

    def score(files: list[Path]) -> pd.DataFrame:
        tables = [read_table(f) if d is None else join_deep(read_table(f), d, f"deep features for {f}")
                  for f, d in zip(files, deep, strict=True)]
        scored = [score_bundle(Path(models_dir) / name, t, cohort, ep).assign(stage="external")
                  for name in models for t, cohort in zip(tables, cohorts, strict=True)]
        return pd.concat(scored, ignore_index=True)[columns] if scored else pd.DataFrame(columns=columns)

    internal = [read_tables(internal_files)] if internal_files else []  # a site run has no training patients
    predictions = pd.concat([*internal, score(feature_files)], ignore_index=True)
    reader = cfg["validate"].get("reader")
    if reader and ep.reader_comparable and cohorts:  # a radiologist's read, compared like a model
        reads = [reader_predictions(c, ep, reader).assign(stage="external")[columns] for c in cohorts]
        predictions = pd.concat([predictions, *reads], ignore_index=True)
        thresholds["reader"] = cfg["validate"]["reader_threshold"]
    write_table(predictions, out.predictions(ep.name))
    scored = ep.scored(predictions)
    metrics = with_permutation_p(ep.summarise(scored, thresholds, alpha), scored, ep,
                                 cfg["validate"]["permutations"], cfg["study"]["seed"])
    write_table(metrics, out.metrics(ep.name))
    write_table(ep.paired(scored), out.paired(ep.name))
    for kind, table in ep.curves(scored, thresholds).items():
        write_table(table, out.curves(ep.name, kind))
    if raw_feature_files:  # the same locked models on the external centres' features without ComBat
        external = scored[scored["stage"] == "external"]
        raw = ep.scored(score(raw_feature_files))
        both = pd.concat([ep.summarise(external, thresholds, alpha).assign(harmonisation="combat"),
                          ep.summarise(raw, thresholds, alpha).assign(harmonisation="none")],
                         ignore_index=True)
        write_table(both.sort_values(["model", "centre", "harmonisation"], kind="stable"), out.comparison(ep.name))

"""Guardrail subcommands: model-sample-size (stage 1: Riley's minimum sample size per locked model) and
volume-check (stage 2: tumour volume alone and the selected features' correlation with it)."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_model_sample_size(a) -> None:
    from mcrad.model.sample_size import sample_size_stage

    sample_size_stage(a.config, a.endpoint, Path(a.models_dir), a.models, a.internal, Path(a.out))


def cmd_volume_check(a) -> None:
    from mcrad.validate.confounding import volume_check_stage

    volume_check_stage(a.config, a.endpoint, a.raw, Path(a.train_features), a.cohort, Path(a.radiomics_bundle),
                       Path(a.metrics), Path(a.correlation))


def register(sub) -> None:
    s = sub.add_parser("model-sample-size",
                       help="minimum sample size (Riley 2020) of each locked model vs its training data")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: endpoints and guardrails sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True, help="models/<endpoint>/ with one locked bundle per model")
    s.add_argument("--models", nargs="+", required=True, help="the endpoint's model names")
    s.add_argument("--internal", nargs="+", required=True, help="out-of-fold internal predictions (training only)")
    s.add_argument("--out", required=True, help="the output table (models/<endpoint>/sample_size.tsv)")
    s.set_defaults(func=cmd_model_sample_size)

    s = sub.add_parser("volume-check", help="tumour volume alone, locked and validated; features vs volume")
    s.add_argument("--config", required=True, type=json_arg,
                   help="JSON: study, cohort, design, endpoints, model, validate and guardrails sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--raw", nargs="+", required=True, help="raw feature tables of the training and external centres")
    s.add_argument("--train-features", required=True, help="the training centre(s)' harmonised features")
    s.add_argument("--cohort", nargs="+", required=True, help="cohort tables of the training and external centres")
    s.add_argument("--radiomics-bundle", required=True, help="the endpoint's locked radiomics bundle (folder)")
    s.add_argument("--metrics", required=True, help="the output metrics (validation/<endpoint>/volume_confounding.tsv)")
    s.add_argument("--correlation", required=True, help="output (validation/<endpoint>/volume_correlation.tsv)")
    s.set_defaults(func=cmd_volume_check)

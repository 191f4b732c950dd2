"""Negative-control subcommands: controls (one kind over a shard), controls-validate (ComBat, models and external
validation of one kind's features), controls-summary (validation/<endpoint>/negative_controls.tsv)."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg, sequences_arg
from mcrad.controls import KINDS, REAL


def cmd_controls(a) -> None:
    from mcrad.controls.cases import controls_shard_stage

    controls_shard_stage(a.config, a.kind, Path(a.shard), a.root, a.strict, a.sequences, Path(a.out))


def cmd_controls_validate(a) -> None:
    from mcrad.controls.models import validate_control_stage

    validate_control_stage(a.config, a.endpoint, a.control, a.features, a.predictors, a.cohort,
                           Path(a.robustness) if a.robustness else None, Path(a.models_dir), Path(a.out))


def cmd_controls_summary(a) -> None:
    from mcrad.controls.summary import summary_stage

    summary_stage(a.config, a.endpoint, Path(a.metrics), a.controls, Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("controls", help="negative-control features of the cases of a features shard")
    s.add_argument("--config", required=True, type=json_arg,
                   help="JSON: study, preprocess, segment, features and negative_controls sections")
    s.add_argument("--kind", required=True, choices=KINDS)
    s.add_argument("--shard", required=True, help="the real features shard table (its cases)")
    s.add_argument("--sequences", default="", type=sequences_arg, help="cohort.sequences, comma-separated")
    add_root(s)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_controls)

    s = sub.add_parser("controls-validate", help="ComBat, models and external validation on one control's features")
    s.add_argument("--config", required=True, type=json_arg,
                   help="JSON: study, cohort, design, endpoints, harmonise, model, validate, negative_controls")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--control", required=True, choices=(*KINDS, REAL),
                   help="a control kind, or none: the real features (for the families the real models leave out)")
    s.add_argument("--features", nargs="+", required=True, help="raw feature tables, training and external centres")
    s.add_argument("--predictors", nargs="+", required=True, help="the same centres' label-free predictors tables")
    s.add_argument("--cohort", nargs="+", required=True, help="the same centres' cohort tables (outcomes)")
    s.add_argument("--robustness", default=None, help="features/robustness.tsv (the models' feature filter)")
    s.add_argument("--models-dir", required=True, help="where the control's locked bundles go")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_controls_validate)

    s = sub.add_parser("controls-summary", help="the table (validation/<endpoint>/negative_controls.tsv)")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: endpoints and negative_controls sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--metrics", required=True, help="the endpoint's validation metrics.tsv (the real models)")
    s.add_argument("--controls", nargs="*", default=[], help="controls-validate tables")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_controls_summary)

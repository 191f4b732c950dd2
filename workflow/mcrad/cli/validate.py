"""Validate subcommand (stage 2): validate."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg


def cmd_validate(a) -> None:
    from mcrad.validate.stage import validate_stage

    validate_stage(a.config, a.endpoint, Path(a.models_dir), a.models, a.internal, a.features, a.cohort, a.deep,
                   a.raw_features, a.root)


def register(sub) -> None:
    s = sub.add_parser("validate", help="stage 2: score external centres with the locked bundles")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: endpoints and validate sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True)
    s.add_argument("--models", nargs="+", required=True, help="model names of the endpoint's registry")
    s.add_argument("--internal", nargs="*", default=[],
                   help="out-of-fold training predictions (none in a site run from a kit)")
    s.add_argument("--features", nargs="*", default=[], help="one harmonised feature table per external centre")
    s.add_argument("--cohort", nargs="*", default=[], help="the same centres' cohort tables")
    s.add_argument("--deep", nargs="*", default=[], help="deep feature tables, one per --features table")
    s.add_argument("--raw-features", nargs="*", default=[],
                   help="the same centres without ComBat: also write the metrics with and without it")
    add_root(s)
    s.set_defaults(func=cmd_validate)

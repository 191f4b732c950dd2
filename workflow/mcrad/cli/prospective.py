"""Prospective subcommands (stage 3): predict (no labels), evaluate (once labels arrive)."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_predict(a) -> None:
    from mcrad.prospective import predict_stage

    predict_stage(a.bundle, a.features, a.cohort, a.deep, Path(a.out))


def cmd_evaluate(a) -> None:
    from mcrad.prospective import evaluate_stage

    evaluate_stage(a.config, a.endpoint, Path(a.predictions), a.cohort, Path(a.out),
                   Path(a.paired) if a.paired else None)


def register(sub) -> None:
    s = sub.add_parser("predict", help="stage 3: score a new cohort with locked bundles, no labels needed")
    s.add_argument("--bundle", nargs="+", required=True, help="bundle folder(s) (models/<endpoint>/<model>)")
    s.add_argument("--features", nargs="+", required=True, help="feature table(s) of the new cohort")
    s.add_argument("--cohort", nargs="*", default=[], help="clinical table(s); only cohort.clinical columns are read")
    s.add_argument("--deep", nargs="*", default=[], help="deep feature table(s), for deep and fusion bundles")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("evaluate", help="stage 3: metrics of `mcrad predict` output once the labels arrive")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: endpoints and validate sections")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--predictions", required=True, help="`mcrad predict` output")
    s.add_argument("--cohort", nargs="+", required=True, help="table(s) with patient_id and the endpoint columns")
    s.add_argument("--out", required=True)
    s.add_argument("--paired", default=None, help="also write paired tests between models here")
    s.set_defaults(func=cmd_evaluate)

"""Model subcommands (stage 1): train, train-fusion, explain, y-randomise, y-randomisation-summary."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_train(a) -> None:
    from mcrad.model.stage import train_stage

    train_stage(a.config, a.endpoint, Path(a.features), a.cohort, Path(a.robustness) if a.robustness else None,
                Path(a.out_dir), Path(a.internal))


def cmd_train_fusion(a) -> None:
    from mcrad.model.stage import train_fusion_stage

    train_fusion_stage(a.config, a.endpoint, Path(a.features), a.deep, a.cohort, Path(a.radiomics_bundle),
                       Path(a.out_dir), Path(a.internal))


def cmd_explain(a) -> None:
    from mcrad.model.stage import explain_stage

    explain_stage(a.config, a.endpoint, Path(a.models_dir), Path(a.features), a.cohort, Path(a.out), Path(a.summary))


def cmd_y_randomise(a) -> None:
    from mcrad.model.nulls import y_randomisation_stage

    y_randomisation_stage(a.config, a.endpoint, a.model, Path(a.features), a.cohort,
                          Path(a.robustness) if a.robustness else None, Path(a.out))


def cmd_y_randomisation_summary(a) -> None:
    from mcrad.model.nulls import y_randomisation_gather

    y_randomisation_gather(a.config, a.endpoint, a.nulls, Path(a.internal), Path(a.out), Path(a.summary))


def register(sub) -> None:
    s = sub.add_parser("train", help="stage 1: train and lock the models of one endpoint")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--features", required=True)
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--out-dir", required=True)
    s.add_argument("--internal", required=True)
    s.add_argument("--robustness", default=None, help="features/robustness.tsv: train only on features kept there")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("train-fusion", help="stage 1: deep and fusion models of one binary endpoint")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--features", required=True, help="training-centre radiomics features")
    s.add_argument("--deep", nargs="+", required=True, help="training centres' deep feature tables")
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--radiomics-bundle", required=True, help="the locked radiomics bundle (its feature list)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--internal", required=True)
    s.set_defaults(func=cmd_train_fusion)

    s = sub.add_parser("explain", help="SHAP values of the locked radiomics and nomogram models on training data")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--models-dir", required=True)
    s.add_argument("--features", required=True, help="training-centre features")
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables")
    s.add_argument("--out", required=True, help="per-patient SHAP values (long table)")
    s.add_argument("--summary", required=True, help="per-feature mean |SHAP|")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("y-randomise", help="stage-1 null: one model's pipeline retrained on shuffled training outcomes")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--model", required=True, choices=["clinical", "radiomics", "nomogram"])
    s.add_argument("--features", required=True, help="training-centre features (as for train)")
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables")
    s.add_argument("--robustness", default=None, help="features/robustness.tsv: only the features kept there")
    s.add_argument("--out", required=True, help="model, permutation, statistic, note")
    s.set_defaults(func=cmd_y_randomise)

    s = sub.add_parser("y-randomisation-summary", help="gather the models' y-randomisation nulls and summarise them")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--endpoint", required=True)
    s.add_argument("--nulls", nargs="+", required=True, help="the y-randomise tables of the endpoint's models")
    s.add_argument("--internal", required=True, help="models/<endpoint>/internal_predictions.tsv (real statistic)")
    s.add_argument("--out", required=True, help="the null table (models/<endpoint>/y_randomisation.tsv)")
    s.add_argument("--summary", required=True, help="the summary (models/<endpoint>/y_randomisation_summary.tsv)")
    s.set_defaults(func=cmd_y_randomisation_summary)

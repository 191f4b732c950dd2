"""Harmonise subcommands: harmonise (one table, standalone ComBat), harmonise-fit, harmonise-apply,
harmonise-diagnostics, harmonise-outcome-check."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_harmonise(a) -> None:
    from mcrad.harmonise import harmonise_table

    harmonise_table(Path(a.features), a.batch_col, [c for c in a.covariates.split(",") if c],
                    {c for c in a.categorical.split(",") if c}, a.id_col, a.ref_batch, not a.nonparametric,
                    not a.no_eb, a.mean_only, a.min_batch_size, Path(a.out), Path(a.model) if a.model else None)


def cmd_harmonise_fit(a) -> None:
    from mcrad.harmonise import fit_stage

    fit_stage(a.config, a.features, a.predictors, Path(a.model), Path(a.out), Path(a.excluded))


def cmd_harmonise_apply(a) -> None:
    from mcrad.harmonise import apply_stage

    apply_stage(Path(a.model), Path(a.features), Path(a.predictors), Path(a.out))


def cmd_harmonise_diagnostics(a) -> None:
    from mcrad.harmonise import diagnostics_stage

    diagnostics_stage(a.config, Path(a.raw), Path(a.harmonised), a.predictors, Path(a.summary), Path(a.kruskal),
                      Path(a.variance), Path(a.pca))


def cmd_harmonise_outcome_check(a) -> None:
    from mcrad.harmonise import outcome_check_stage

    outcome_check_stage(a.config, a.raw, Path(a.harmonised), a.cohort, Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("harmonise", help="ComBat-harmonise one feature table (rows = samples)")
    s.add_argument("--features", required=True, help="TSV (or CSV) with one row per sample")
    s.add_argument("--batch-col", required=True)
    s.add_argument("--covariates", default="", help="comma-separated columns whose effect is preserved")
    s.add_argument("--categorical", default="", help="covariates to one-hot encode even if numeric")
    s.add_argument("--id-col", default="patient_id", help="identifier column passed through, if present")
    s.add_argument("--nonparametric", action="store_true")
    s.add_argument("--no-eb", action="store_true", help="no empirical Bayes shrinkage")
    s.add_argument("--mean-only", action="store_true")
    s.add_argument("--ref-batch", default=None, help="reference batch, left unchanged")
    s.add_argument("--min-batch-size", type=int, default=2)
    s.add_argument("--model", default=None, help="also save the fitted harmoniser (JSON)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_harmonise)

    s = sub.add_parser("harmonise-fit", help="fit ComBat on the training centre(s)")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: cohort, design and harmonise sections")
    s.add_argument("--features", nargs="+", required=True)
    s.add_argument("--predictors", nargs="+", required=True,
                   help="training centres' label-free predictors tables (covariates)")
    s.add_argument("--model", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--excluded", required=True)
    s.set_defaults(func=cmd_harmonise_fit)

    s = sub.add_parser("harmonise-apply", help="map a centre onto the training reference")
    s.add_argument("--model", required=True)
    s.add_argument("--features", required=True)
    s.add_argument("--predictors", required=True, help="that centre's label-free predictors table (covariates)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_harmonise_apply)

    s = sub.add_parser("harmonise-diagnostics",
                       help="centre identifiability (ComBat refitted in each fold), Kruskal-Wallis, PCA before/after")
    s.add_argument("--config", required=True, type=json_arg,
                   help="JSON: study, cohort, design and harmonise sections")
    s.add_argument("--raw", required=True)
    s.add_argument("--harmonised", required=True)
    s.add_argument("--predictors", nargs="+", required=True,
                   help="label-free predictors tables of the harmonised centres (ComBat covariates)")
    s.add_argument("--summary", required=True)
    s.add_argument("--kruskal", required=True)
    s.add_argument("--variance", required=True, help="per-feature share of variance explained by centre")
    s.add_argument("--pca", required=True)
    s.set_defaults(func=cmd_harmonise_diagnostics)

    s = sub.add_parser("harmonise-outcome-check", help="training outcome signal before/after ComBat (labels)")
    s.add_argument("--config", required=True, type=json_arg, help="JSON: study, design and endpoints sections")
    s.add_argument("--raw", nargs="+", required=True, help="training centres' raw feature tables")
    s.add_argument("--harmonised", required=True, help="the training centres' harmonised features")
    s.add_argument("--cohort", nargs="+", required=True, help="training centres' cohort tables")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_harmonise_outcome_check)

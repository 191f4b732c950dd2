"""Study-level subcommands: synth, check, cohort-tables, concat."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_synth(a) -> None:
    from mcrad import synth

    synth.make_cohort(a.options, a.seed, a.out_dir)


def cmd_check(a) -> None:
    from mcrad.cohort import check_study

    print(check_study(Path(a.configfile)))


def cmd_cohort_tables(a) -> None:
    from mcrad.cohort import cohort_tables_stage

    cohort_tables_stage(Path(a.sheet), a.config, a.centres, a.out, a.predictors)


def cmd_concat(a) -> None:
    from mcrad.files import read_tables, write_table

    write_table(read_tables(a.inputs), a.out)


def register(sub) -> None:
    s = sub.add_parser("synth", help="make the synthetic multicentre demo cohort")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's cohort.synthetic section")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("check", help="validate a config file and its cohort sheet (nothing runs)")
    s.add_argument("configfile")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("cohort-tables", help="split the cohort sheet into per-centre clinical tables")
    s.add_argument("--sheet", required=True)
    s.add_argument("--config", required=True, type=json_arg, help="JSON: cohort, design and endpoints sections")
    s.add_argument("--centres", nargs="+", required=True)
    s.add_argument("--out", nargs="+", required=True)
    s.add_argument("--predictors", nargs="*", default=[], help="also the label-free tables of the same centres")
    s.set_defaults(func=cmd_cohort_tables)

    s = sub.add_parser("concat", help="concatenate TSV tables")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_concat)

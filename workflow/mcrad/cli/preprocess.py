"""Preprocess subcommands: nyul-fit, preprocess (a shard)."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg, sequences_arg


def cmd_nyul_fit(a) -> None:
    from mcrad.preprocess import nyul_fit_stage

    nyul_fit_stage(a.shards, a.options, a.root)


def cmd_preprocess(a) -> None:
    from mcrad.files import read_shard, write_table
    from mcrad.preprocess import preprocess_shard

    write_table(preprocess_shard(read_shard(a.shard), a.options, a.root, a.strict, a.sequences, a.seed, a.standard),
                Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("nyul-fit", help="learn MR Nyul standard landmarks on the training centre's ingest shards")
    s.add_argument("--shards", nargs="+", required=True, help="the training centre(s)' ingest shard tables")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's preprocess section")
    add_root(s)
    s.set_defaults(func=cmd_nyul_fit)

    s = sub.add_parser("preprocess", help="crop, resample and normalise the cases of a shard")
    s.add_argument("--shard", required=True, help="the ingest shard table")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's preprocess section")
    s.add_argument("--sequences", default="", type=sequences_arg, help="cohort.sequences, comma-separated")
    s.add_argument("--seed", type=int, required=True, help="study.seed (registration sampling)")
    add_root(s)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--standard", default=None, help="Nyul landmarks (default: the study's preprocess/nyul.json)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_preprocess)

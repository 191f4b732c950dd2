"""Deep-stage subcommands: deep-train, deep-score."""
from __future__ import annotations

from mcrad.cli.common import add_root, json_arg


def cmd_deep_train(a) -> None:
    from mcrad.deep import train_stage

    train_stage(a.options, a.preprocess, a.seed, a.threads, a.column, a.shards, a.cohort, a.root, a.centres,
                a.endpoint)


def cmd_deep_score(a) -> None:
    from mcrad.deep import score_stage

    score_stage(a.options, a.seed, a.threads, a.shards, a.root, a.endpoint, a.centre)


def register(sub) -> None:
    s = sub.add_parser("deep-train", help="deep stage: CV deep scores and the final network of one endpoint")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's deep section")
    s.add_argument("--preprocess", required=True, type=json_arg, help="JSON: the config's preprocess section")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: deep.threads)")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--column", required=True, help="endpoint column (0/1) of the cohort tables")
    s.add_argument("--shards", nargs="+", required=True, help="segment shard tables of the training centre(s)")
    s.add_argument("--cohort", nargs="+", required=True)
    s.add_argument("--centres", nargs="+", required=True, help="the training centres")
    add_root(s)
    s.set_defaults(func=cmd_deep_train)

    s = sub.add_parser("deep-score", help="deep stage: score one centre with the final network")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's deep section (device)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: deep.threads)")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--centre", required=True)
    s.add_argument("--shards", nargs="+", required=True)
    add_root(s)
    s.set_defaults(func=cmd_deep_score)

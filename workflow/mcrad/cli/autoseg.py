"""Auto-segmentation subcommands: autoseg-train, autoseg-predict, autoseg-summary."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg


def cmd_autoseg_train(a) -> None:
    from mcrad.autoseg import autoseg_train_stage

    autoseg_train_stage(a.options, a.seed, a.shards, a.root)


def cmd_autoseg_predict(a) -> None:
    from mcrad.autoseg import autoseg_predict_stage

    autoseg_predict_stage(a.seed, a.shards, a.segment_options, a.root, Path(a.out))


def cmd_autoseg_summary(a) -> None:
    from mcrad.autoseg import dice_summary
    from mcrad.files import read_tables, write_table

    write_table(dice_summary(read_tables(a.inputs), a.train, a.use_for_features), Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("autoseg-train", help="auto-segmentation: train the UNet on the training centre's masks")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's deep section (with autoseg)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--shards", nargs="+", required=True, help="preprocess shard tables of the training centre(s)")
    add_root(s)
    s.set_defaults(func=cmd_autoseg_train)

    s = sub.add_parser("autoseg-predict", help="auto-segmentation: masks and Dice of one centre's cases")
    s.add_argument("--segment-options", required=True, type=json_arg,
                   help="JSON: the config's segment section (peritumoral ring)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--shards", nargs="+", required=True)
    add_root(s)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_autoseg_predict)

    s = sub.add_parser("autoseg-summary", help="auto-segmentation: Dice per centre")
    s.add_argument("--inputs", nargs="+", required=True)
    s.add_argument("--train", nargs="+", required=True, help="training centres")
    s.add_argument("--use-for-features", action="store_true", help="deep.autoseg.use_for_features is on")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_autoseg_summary)

"""Segment subcommand: segment (a shard)."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import add_root, json_arg


def cmd_segment(a) -> None:
    from mcrad.files import read_shard, write_table
    from mcrad.segment import segment_shard

    write_table(segment_shard(read_shard(a.shard), a.options, a.root, a.strict), Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("segment", help="tumour and peritumoral ROIs of the cases of a shard")
    s.add_argument("--shard", required=True, help="the preprocess shard table")
    s.add_argument("--options", required=True, type=json_arg, help="JSON: the config's segment section")
    add_root(s)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_segment)

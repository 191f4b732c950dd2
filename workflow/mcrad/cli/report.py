"""Report subcommand: report."""
from __future__ import annotations

from pathlib import Path

from mcrad.cli.common import json_arg


def cmd_report(a) -> None:
    from mcrad.report import write_report

    write_report(a.config, Path(a.root), a.inputs, Path(a.sheet), Path(a.out), Path(a.figures) if a.figures else None)
    print(f"report: {Path(a.out).resolve()}")


def register(sub) -> None:
    s = sub.add_parser("report", help="write the multicentre validation report")
    s.add_argument("--config", required=True, type=json_arg)
    s.add_argument("--root", required=True, help="the study's results folder")
    s.add_argument("--inputs", nargs="+", required=True, help="every file the report may read (the rule's inputs)")
    s.add_argument("--sheet", required=True, help="the cohort sheet (its checksum goes to the provenance)")
    s.add_argument("--out", required=True)
    s.add_argument("--figures", default=None, help="also write each figure as a PNG here")
    s.set_defaults(func=cmd_report)

"""`mcrad` command line: one subcommand per workflow step (what the Snakemake rules call), usable alone.

Each stage declares its subcommands in cli/<stage>.py: the arguments, and a handler that passes them to the
stage's own functions (imported only when the subcommand runs, so `mcrad --help` stays fast).
"""
from __future__ import annotations

import argparse
import sys

from mcrad import __version__
from mcrad.cli import (
    autoseg,
    controls,
    deep,
    discover,
    features,
    guardrails,
    harmonise,
    ingest,
    kit,
    model,
    pacs,
    preprocess,
    prospective,
    report,
    samplesize,
    segment,
    study,
    validate,
)
from mcrad.errors import McradError

STAGES = (study, discover, ingest, preprocess, segment, autoseg, features, harmonise, model, deep, validate,
          prospective, report, samplesize, pacs, kit, guardrails, controls)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcrad", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"mcrad {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except McradError as exc:
        print(f"mcrad: error: {exc}", file=sys.stderr)
        return 2
    return 0

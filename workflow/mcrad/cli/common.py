"""Argument helpers shared by the subcommands."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def json_arg(text: str) -> dict:
    """A JSON option value (what the rules pass: config sections as compact JSON)."""
    return json.loads(text)


def paths_arg(text: str):
    """--root: the study's results folder, as the Paths every stage builds its files from."""
    from mcrad.paths import Paths

    return Paths(Path(text))


def add_root(s: argparse.ArgumentParser) -> None:
    s.add_argument("--root", required=True, type=paths_arg, help="the study's results folder")


def sequences_arg(text: str) -> list[str]:
    return [s for s in text.split(",") if s]

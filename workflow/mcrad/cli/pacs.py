"""PACS subcommands (stage 3 over DICOMweb): pacs poll."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from mcrad.errors import McradError


def setup_logging(log_file: Path) -> None:
    """The poll's log: stderr and results/<study>/logs/pacs_poll.log (pseudonymous ids only)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    logger = logging.getLogger("mcrad.pacs")
    logger.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)):
        handler.setFormatter(fmt)
        logger.addHandler(handler)


def cmd_poll(a) -> None:
    import yaml

    from mcrad.config import load_config
    from mcrad.pacs.poll import loop, pacs_options, poll
    from mcrad.paths import Paths

    if a.since and not (len(a.since) == 8 and a.since.isdigit()):
        raise McradError(f"--since {a.since!r} is not a date. Fix: give YYYYMMDD.")
    if not Path(a.config).is_file():
        raise McradError(f"config {a.config} not found. Fix: give the study's config YAML.")
    cfg = load_config(yaml.safe_load(Path(a.config).read_text()))
    pacs_options(cfg)  # a config without prospective.pacs stops here, before anything is written
    setup_logging(Paths.from_config(cfg).log("pacs_poll"))
    if a.every:
        loop(cfg, a.every, a.since, a.dry_run)
    else:
        counts = poll(cfg, a.since, a.dry_run)
        print(" ".join(f"{k}={v}" for k, v in counts.items()))
        if counts["failed"]:
            print(f"mcrad: {counts['failed']} study(ies) failed; see prospective/pacs/<endpoint>/scores.tsv and the "
                  "log", file=sys.stderr)


def register(sub) -> None:
    s = sub.add_parser("pacs", help="stage 3 at the PACS over DICOMweb")
    pacs_sub = s.add_subparsers(dest="pacs_command", required=True)
    p = pacs_sub.add_parser("poll", help="score new studies of the archive with the locked bundles, write back SRs")
    p.add_argument("--config", required=True, help="the study's config YAML (with prospective.pacs)")
    p.add_argument("--since", default=None, help="only studies from this StudyDate on (YYYYMMDD)")
    p.add_argument("--dry-run", action="store_true", help="list the studies a poll would score; change nothing")
    p.add_argument("--every", default=None, help="poll again and again, e.g. 10m (a silent trial's service)")
    p.set_defaults(func=cmd_poll)

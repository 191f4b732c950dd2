"""Discovery subcommand: DICOM trees (one per centre) -> cohort sheet + discovery.tsv."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from mcrad.errors import McradError


def centre_arg(text: str) -> tuple[str, Path]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{text!r} is not CENTRE=DIR")
    return name, Path(folder)


def sequence_arg(text: str) -> tuple[str, str]:
    name, sep, pattern = text.partition("=")
    if not sep or not name.isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=REGEX (NAME: letters and digits)")
    return name, pattern


def cmd_discover(a) -> None:
    from mcrad.discover import PairingOptions, discover
    from mcrad.discover.ids import KeepIds, Pseudonymiser
    from mcrad.discover.index import default_cache

    if (a.clinical is None) != (a.id_col is None):
        raise McradError("give both --clinical and --id-col, or neither")
    modes = sum(x is not None and x is not False for x in (a.pseudonymise, a.code_map, a.keep_ids or None))
    if modes != 1:
        raise McradError("choose how patients are named in the sheet: --pseudonymise KEYFILE (keyed hash), "
                         "--code-map FILE (sequential codes), or --keep-ids (a tree already pseudonymised)")
    ids = KeepIds() if a.keep_ids else Pseudonymiser(
        Path(a.pseudonymise) if a.pseudonymise else None, Path(a.code_map) if a.code_map else None)
    centres = dict(a.centres)
    if len(centres) != len(a.centres):
        raise McradError("a centre is named twice")
    opts = PairingOptions(roi=a.roi, modality=a.modality, sequences=tuple(a.sequence))
    cache = None if a.no_cache else (Path(a.cache) if a.cache else default_cache())
    summary = discover(centres, opts, Path(a.out), ids, Path(a.clinical) if a.clinical else None, a.id_col, cache,
                       a.jobs)
    for line in summary.lines():
        print(line)
    print(f"wrote {a.out} and {Path(a.out).parent / 'discovery.tsv'}")


def register(sub) -> None:
    s = sub.add_parser("discover", help="crawl DICOM trees (one per centre) and write the cohort sheet")
    s.add_argument("centres", nargs="+", type=centre_arg, metavar="CENTRE=DIR")
    s.add_argument("--roi", required=True, help="regex (full match, case-insensitive) of the ROI / segment label")
    s.add_argument("--out", required=True, help="the cohort sheet to write (TSV); discovery.tsv goes beside it")
    s.add_argument("--modality", choices=["CT", "MR", "PT"], default=None,
                   help="modality of the series the ROI is drawn on (default: any)")
    s.add_argument("--sequence", action="append", type=sequence_arg, default=[], metavar="NAME=REGEX",
                   help="a sequence of each case, matched on modality, SeriesDescription and ProtocolName; the first "
                        "is the series the ROI is drawn on, the others get sheet columns image_NAME (repeatable)")
    s.add_argument("--clinical", default=None, help="clinical spreadsheet (TSV, CSV or XLSX) to join")
    s.add_argument("--id-col", default=None, help="its column holding the DICOM PatientID")
    s.add_argument("--pseudonymise", default=None, metavar="KEYFILE",
                   help="sheet ids are keyed hashes under this key (made if absent; keep it outside results/)")
    s.add_argument("--code-map", default=None, metavar="FILE",
                   help="sheet ids are sequential codes; their map to hospital ids is kept in FILE")
    s.add_argument("--keep-ids", action="store_true", help="keep the trees' PatientIDs (already pseudonyms)")
    s.add_argument("--cache", default=None, help="header index cache (default: ~/.cache/mcrad/discover.sqlite)")
    s.add_argument("--no-cache", action="store_true", help="read every header, keep no index")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes reading headers")
    s.set_defaults(func=cmd_discover)

"""Ingest subcommands: ingest (a shard), dicom2nifti (one case), qc-pictures."""
from __future__ import annotations

import sys
from pathlib import Path

from mcrad.cli.common import add_root, json_arg
from mcrad.errors import McradError


def cmd_ingest(a) -> None:
    from mcrad.ingest import ingest_stage

    ingest_stage(Path(a.sheet), a.config, a.patients.split(","), a.root, a.strict, Path(a.out))


def cmd_dicom2nifti(a) -> None:
    from mcrad.ingest import dicom_to_nifti

    if (a.rtstruct is None) != (a.out_mask is None):
        raise McradError("give both --rtstruct and --out-mask, or neither")
    rtstruct, out_mask = (Path(a.rtstruct), Path(a.out_mask)) if a.rtstruct else (None, None)
    for warning in dicom_to_nifti(Path(a.series), rtstruct, a.roi, Path(a.out_image), out_mask):
        print(f"mcrad: warning: {warning}", file=sys.stderr)
    print(f"wrote {a.out_image}" + (f" and {a.out_mask}" if out_mask else ""))


def cmd_qc_pictures(a) -> None:
    from mcrad.ingest import qc_pictures_stage

    qc_pictures_stage(Path(a.qc), a.root)


def cmd_qc_ingest(a) -> None:
    from mcrad.ingest import qc_ingest_stage

    qc_ingest_stage(a.shards, Path(a.out))


def register(sub) -> None:
    s = sub.add_parser("ingest", help="read, check and canonicalise the images and masks of a shard")
    s.add_argument("--sheet", required=True)
    s.add_argument("--config", required=True, type=json_arg, help="JSON: cohort, design, endpoints, ingest")
    s.add_argument("--patients", required=True, help="comma-separated patient ids")
    add_root(s)
    s.add_argument("--strict", action="store_true")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("dicom2nifti", help="one DICOM series (+ RTSTRUCT ROI) to NIfTI, with the ingest checks")
    s.add_argument("--series", required=True, help="folder holding one DICOM image series")
    s.add_argument("--rtstruct", default=None, help="RTSTRUCT .dcm drawn on that series")
    s.add_argument("--roi", default="GTV.*", help="regex (full match, case-insensitive); matching ROIs are united")
    s.add_argument("--out-image", required=True)
    s.add_argument("--out-mask", default=None)
    s.set_defaults(func=cmd_dicom2nifti)

    s = sub.add_parser("qc-ingest", help="the study's ingest QC table (warns on an image file listed twice)")
    s.add_argument("--shards", nargs="+", required=True, help="ingest shard tables")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_qc_ingest)

    s = sub.add_parser("qc-pictures", help="copy the QC pictures the report shows (a few per centre)")
    s.add_argument("--qc", required=True, help="the ingest QC table of the study (qc/ingest.tsv)")
    add_root(s)
    s.set_defaults(func=cmd_qc_pictures)

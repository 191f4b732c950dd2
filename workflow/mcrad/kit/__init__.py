"""Site kit: the locked study travels to a hospital whose images cannot leave it, and only results come back.

export (`mcrad kit export`: bundles, harmoniser reference, settings, software lock, manifest), run (`mcrad kit run`
at the site: verify, check the lock, the same Snakemake DAG with kit.locked, pack a return), summary (the site
run's label-free summaries and site report, a rule of the DAG), returns (pack, list and verify a return: only
tables, never an image, voxel array, path or DICOM tag), collect (`mcrad kit collect`: returns into the study's
validation tables and report), manifest (sha256 of every member), lock (installed versions against the study's).
layout (KitPaths, ReturnPaths: the members of a kit and of a return).
"""
from __future__ import annotations

KIT_FORMAT = 1
RETURN_FORMAT = 1

"""Negative controls (stage beside features -> model -> validate): control versions of each case's tumour ROI
and image whose features carry no real tumour information, run through the study's own feature extraction,
ComBat, model training and locked external validation, so that a reader sees how far the real model stands
above what the same pipeline makes of noise.

generators (the control images and ROIs), cases (one control kind over a shard of cases, through the
preprocess, segment and features stages' own functions), models (ComBat, training and validation per control
kind and feature family) and summary (validation/<endpoint>/negative_controls.tsv with the flag).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

# shuffled: voxel intensities permuted within each ROI; sampled: intensities drawn iid from each ROI's histogram;
# randomised_roi: the tumour ROI moved (same size and shape) to random non-tumour tissue of the whole image
KINDS = ("shuffled", "sampled", "randomised_roi")
# the real images: the reference the controls are compared with
REAL = "none"
# all: every feature the real model is offered; no_shape: without the shape class, which is computed from the mask
# alone and so is identical in the real data and the shuffled and sampled controls; no_volume: also without the
# features that track tumour volume in the training centre (energies, non-uniformities, ...: shape by another name)
FAMILIES = ("all", "no_shape", "no_volume")
VOLUME = "_tumour_original_shape_VoxelVolume"


def case_rng(seed: int, kind: str, patient_id: str) -> np.random.Generator:
    """The random stream of one case's control: from the config seed, the control kind and the pseudonymous id,
    so a case gets the same control whatever shard, centre order or rerun it comes in."""
    digest = hashlib.sha256(f"{kind}\0{patient_id}".encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "little")])


def family_columns(columns: list[str], family: str, train: pd.DataFrame | None = None, rho: float = 0.5
                   ) -> list[str]:
    """The feature columns of a family: all; no_shape: those not of pyradiomics' shape class (`<seq>_<roi>_
    <imagetype>_shape_<feature>`, shape2D included); no_volume: no_shape without the features whose Spearman
    correlation with the tumour's voxel volume reaches |rho| on the training rows `train` (label-free)."""
    if family == "all":
        return list(columns)
    if family not in FAMILIES:
        raise ValueError(f"unknown feature family {family!r}; choose from {FAMILIES}")
    no_shape = [c for c in columns if not any(part.startswith("shape") for part in c.split("_")[2:4])]
    if family == "no_shape":
        return no_shape
    from mcrad.errors import McradError

    volume = next((c for c in (train.columns if train is not None else []) if c.endswith(VOLUME)), None)
    if volume is None:
        raise McradError(f"feature family no_volume needs the tumour's volume (a column ending {VOLUME}); the "
                         "parameter file extracts no shape features. Fix: leave no_volume out of "
                         "negative_controls.families.")
    corr = train[no_shape].corrwith(train[volume], method="spearman").abs()
    return [c for c in no_shape if not corr[c] >= rho]


def check_config(cfg: dict) -> None:
    """Combinations the controls cannot honour, refused before any job runs."""
    from mcrad.errors import ConfigError

    if cfg["negative_controls"]["activate"] and cfg["deep"]["autoseg"]["use_for_features"]:
        raise ConfigError("negative_controls with deep.autoseg.use_for_features: the controls are made from the "
                          "provided masks, the external centres' real features from the auto masks, so they would "
                          "not compare. Fix: set negative_controls.activate: false or use_for_features: false.")

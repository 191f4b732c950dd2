"""Robustness: features that survive plausible contour changes (Zwanenburg et al. 2019, Sci Rep 9:614): ICC(3,1)
of each feature over perturbed ROIs of a seeded sample of training cases."""
from __future__ import annotations

import itertools
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.errors import McradError
from mcrad.features.extract import _read, extract_roi, make_extractors, sequence_images
from mcrad.files import read_tables, write_table
from mcrad.paths import Paths
from mcrad.segment import peritumoral_ring, roi_names
from mcrad.stats import icc_31

# ---- robustness: features that survive plausible contour changes (Zwanenburg et al. 2019, Sci Rep 9:614) ----
PERTURBATIONS = ("erode", "dilate", "translate", "rotate", "randomise")


def _resample_roi(roi: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    return sitk.Resample(roi, roi, transform, sitk.sitkNearestNeighbor, 0, roi.GetPixelID())


def perturbed_rois(roi: sitk.Image, kinds: list[str], seed: int) -> dict[str, sitk.Image]:
    """Named variants of a binary ROI: erosion/dilation by one voxel; translation by one voxel along x and y;
    rotation by +-5 degrees about the ROI centroid (axial plane); two contour randomisations. The randomisation
    is a supervoxel-free approximation of Zwanenburg's: the signed distance to the contour (mm) plus a smooth
    Gaussian random field (2 mm correlation, SD half a voxel) is thresholded at 0, so the contour moves by up to a
    voxel in spatially coherent patches, as supervoxel-based randomisation does."""
    roi = sitk.Cast(roi > 0, sitk.sitkUInt8)
    spacing = np.array(roi.GetSpacing())
    out: dict[str, sitk.Image] = {}
    if "erode" in kinds:
        out["erode"] = sitk.BinaryErode(roi, [1, 1, 1], sitk.sitkBall, 0, 1)
    if "dilate" in kinds:
        out["dilate"] = sitk.BinaryDilate(roi, [1, 1, 1], sitk.sitkBall, 0, 1)
    if "translate" in kinds:
        for axis, name in ((0, "x"), (1, "y")):
            offset = [0.0, 0.0, 0.0]
            offset[axis] = float(spacing[axis])
            out[f"translate_{name}"] = _resample_roi(roi, sitk.TranslationTransform(3, offset))
    if "rotate" in kinds:
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(roi)
        for degrees in (5, -5):
            t = sitk.Euler3DTransform(stats.GetCentroid(1), 0.0, 0.0, np.deg2rad(degrees))
            out[f"rotate_{degrees:+d}"] = _resample_roi(roi, t)
    if "randomise" in kinds:
        distance = sitk.SignedMaurerDistanceMap(roi, insideIsPositive=True, squaredDistance=False,
                                                useImageSpacing=True)
        rng = np.random.default_rng(seed)
        for i in (1, 2):
            noise = sitk.GetImageFromArray(rng.standard_normal(sitk.GetArrayViewFromImage(roi).shape))
            noise.CopyInformation(roi)
            field = sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(noise, 2.0))
            field *= 0.5 * spacing.mean() / max(field.std(), 1e-12)
            mask = sitk.GetImageFromArray((sitk.GetArrayFromImage(distance) + field > 0).astype(np.uint8))
            mask.CopyInformation(roi)
            out[f"randomise_{i}"] = mask
    return out


def robustness_table(per_case: dict[str, pd.DataFrame], threshold: float) -> pd.DataFrame:
    """Per feature: ICC(3,1) over cases (subjects) x contour variants (raters), 95% CI, kept (icc >= threshold).
    A case where the feature is NaN in some variant is left out of that feature's ICC (`cases` counts those
    used); with fewer than 3 cases, or no variation, the ICC is NaN and the feature is not kept."""
    cases = sorted(per_case)
    features = list(per_case[cases[0]].columns)
    rows = []
    for feat in features:
        Y = np.vstack([per_case[c][feat].to_numpy(float) for c in cases])
        Y = Y[np.isfinite(Y).all(axis=1)]
        icc, low, high = icc_31(Y) if len(Y) >= 3 else (np.nan, np.nan, np.nan)
        rows.append({"feature": feat, "icc": icc, "ci95_low": low, "ci95_high": high, "cases": len(Y),
                     "kept": bool(np.isfinite(icc) and icc >= threshold)})
    return pd.DataFrame(rows)


def robustness_case(row: pd.Series, extractors: dict, opts: dict, segment_opts: dict, paths: Paths, seed: int,
                    sequences: list[str] = ()) -> pd.DataFrame:
    """Features of one case, original ROIs and every perturbation (rows), with the study's names. The tumour is
    perturbed and the peritumoral ring re-derived from it (as segment does), so the ring follows the contour."""
    case = paths.case(row["centre"], row["patient_id"])
    image = _read(row["patient_id"], case.preprocess_image)
    images = {seq: _read(row["patient_id"], f) for seq, f in sequence_images(case, opts, list(sequences)).items()}
    original = {roi: _read(row["patient_id"], case.roi(roi))
                for roi in roi_names(segment_opts)}
    peri = segment_opts["peritumoral"]
    per_variant: dict[str, dict[str, float]] = {"original": {}}
    for name, tumour in perturbed_rois(original["tumour"], opts["robustness"]["perturbations"], seed).items():
        rois = {"tumour": tumour}
        if "peritumoral" in original:
            rois["peritumoral"] = peritumoral_ring(image, tumour, peri["radius_mm"], peri["min_intensity"])
        per_variant[name] = {}
        for (roi, mask), (seq, img) in itertools.product(rois.items(), images.items()):
            try:
                per_variant[name].update(extract_roi(extractors[seq], img, mask, f"{seq}_{roi}")[0])
            except ValueError:
                pass  # e.g. erosion emptied a small ROI: this case drops out of that ROI's ICCs
    for (roi, mask), (seq, img) in itertools.product(original.items(), images.items()):
        per_variant["original"].update(extract_roi(extractors[seq], img, mask, f"{seq}_{roi}")[0])
    return pd.DataFrame.from_dict(per_variant, orient="index")


def robustness_study(features: pd.DataFrame, opts: dict, segment_opts: dict, paths: Paths, seed: int,
                     sequences: list[str] = ()) -> pd.DataFrame:
    """features/robustness.tsv from a seeded sample of the training centre(s)' cases (features.robustness.cases
    of them: the extra cost is cases x (1 + perturbations) ROI extractions, independent of the study size)."""
    extractors = make_extractors(opts, list(sequences))
    rob = opts["robustness"]
    if len(features) < 3:
        raise McradError(f"robustness: {len(features)} training case(s) came through features; ICC needs at "
                         "least 3. Fix: set features.robustness.activate: false for so small a study.")
    rng = np.random.default_rng(seed)
    chosen = features.iloc[np.sort(rng.choice(len(features), min(rob["cases"], len(features)), replace=False))]
    per_case = {}
    for _, row in chosen.iterrows():
        case_seed = int(rng.integers(2**31))
        try:
            table = robustness_case(row, extractors, opts, segment_opts, paths, case_seed, sequences)
        except Exception as exc:  # noqa: BLE001 - one case's failure leaves it out of the ICCs, not the study
            traceback.print_exception(exc, file=sys.stderr)
            print(f"mcrad: robustness: patient {row['patient_id']} left out of the ICCs ({type(exc).__name__}: "
                  f"{exc}); each feature's `cases` column counts the cases used", file=sys.stderr)
            continue
        per_case[row["patient_id"]] = table.reindex(columns=[c for c in features.columns
                                                              if c not in ("patient_id", "centre")])
    if not per_case:
        raise McradError("robustness: every sampled training case failed (see the log above). Fix: inspect those "
                         "cases, or set features.robustness.activate: false.")
    return robustness_table(per_case, rob["threshold"])


def robustness_stage(feature_files: list[Path], opts: dict, segment_opts: dict, paths: Paths, seed: int,
                     sequences: list[str], out: Path) -> None:
    """`mcrad robustness`: features/robustness.tsv from the training centre(s)' raw feature tables."""
    write_table(robustness_study(read_tables(feature_files), opts, segment_opts, paths, seed, sequences), out)

"""Features: pyradiomics on each ROI with a standard parameter file; names follow
<sequence>_<roi>_<imagetype>_<class>_<feature>."""
from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import STATUS_COLUMNS, file_sha256, run_stage
from mcrad.config import Paths
from mcrad.errors import CaseError, McradError
from mcrad.segment import peritumoral_ring, roi_file, roi_names

logging.getLogger("radiomics").setLevel(logging.ERROR)


def make_extractor(params_file: str | Path):
    from radiomics import featureextractor  # heavy import, only in the rules that extract

    if not Path(params_file).is_file():
        raise McradError(f"pyradiomics parameter file {params_file} not found. Fix: set features.params to "
                         "one of config/radiomics/*.yaml or your own pyradiomics YAML.")
    try:
        return featureextractor.RadiomicsFeatureExtractor(str(params_file))
    except Exception as exc:  # pykwalify/yaml errors: report the file, not a stack trace
        raise McradError(f"pyradiomics rejects parameter file {params_file}: {exc}") from exc


def extract(extractor, image: sitk.Image, roi: sitk.Image, prefix: str) -> dict[str, float]:
    """Feature values of one ROI, prefixed; pyradiomics' diagnostics are left out."""
    result = extractor.execute(image, roi, label=1)
    return {f"{prefix}_{k}": float(np.asarray(v)) for k, v in result.items() if not k.startswith("diagnostics_")}


TEXTURE_CLASSES = ("glcm", "glrlm", "glszm", "gldm", "ngtdm")
# pyradiomics' ROI checks that mean "this ROI is too small for features", not "this case's files are bad"
_TOO_SMALL = ("single voxel", "too few dimensions", "ROI is too small", "excluded too many voxels")


def extract_roi(extractor, image: sitk.Image, roi: sitk.Image, prefix: str) -> tuple[dict[str, float], list[dict]]:
    """(feature values, QC flags) of one ROI. A ROI too small for pyradiomics gives no values (NaN in the
    study table) and a flag; in a flat ROI (one intensity) texture is undefined: pyradiomics' conventional
    values (e.g. correlation 1) become NaN and are flagged; any NaN pyradiomics returns itself is flagged too.
    Other pyradiomics errors (empty ROI, geometry mismatch) propagate: they are problems of the case."""
    try:
        values = extract(extractor, image, roi, prefix)
    except ValueError as exc:
        if not any(s in str(exc) for s in _TOO_SMALL):
            raise
        return {}, [{"prefix": prefix, "image_type": "all", "feature_class": "all", "problem": str(exc)}]
    flags = []
    label = extractor.settings.get("label", 1)
    inside = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(roi) == label]
    flat = bool(np.ptp(inside) == 0)
    if flat:
        for cls in TEXTURE_CLASSES:
            names = [k for k in values if k.startswith(f"{prefix}_original_{cls}_")]
            values.update(dict.fromkeys(names, float("nan")))
            if names:
                flags.append({"prefix": prefix, "image_type": "original", "feature_class": cls,
                              "problem": f"flat intensity region (all {inside.size} voxels = {inside[0]:g}): "
                                         "texture undefined"})
    nan_groups: dict[tuple[str, str], list[str]] = {}
    for k, v in values.items():
        image_type, cls, feature = k[len(prefix) + 1:].split("_", 2)
        if np.isnan(v) and not (flat and image_type == "original" and cls in TEXTURE_CLASSES):
            nan_groups.setdefault((image_type, cls), []).append(feature)
    flags += [{"prefix": prefix, "image_type": it, "feature_class": cls,
               "problem": f"pyradiomics returned NaN for {', '.join(feats)}"}
              for (it, cls), feats in nan_groups.items()]
    return values, flags


def sequence_images(case: Path, opts: dict, sequences: list[str]) -> dict[str, Path]:
    """Sequence name -> preprocessed image: each of cohort.sequences (preprocess/image-<SEQ>, registered onto the
    reference's grid), or, for one image per case, preprocess/image named features.sequence."""
    if not sequences:
        return {opts["sequence"]: case / "preprocess" / "image.nii.gz"}
    return {seq: case / "preprocess" / f"image-{seq}.nii.gz" for seq in sequences}


def features_case(row: pd.Series, extractor, opts: dict, rois: list[str], paths: Paths, sequences: list[str] = (),
                  auto_masks: bool = False) -> dict[str, Any]:
    case = paths.case_dir(row["centre"], row["patient_id"])
    values: dict[str, Any] = {}
    flags: list[dict] = []
    for seq, image_file in sequence_images(case, opts, list(sequences)).items():
        image = _read(row["patient_id"], image_file)
        for roi in rois:
            roi_path = roi_file(case, roi, auto_masks)
            try:
                v, f = extract_roi(extractor, image, _read(row["patient_id"], roi_path), f"{seq}_{roi}")
            except (ValueError, RuntimeError) as exc:
                raise CaseError(row["patient_id"], str(roi_path), f"pyradiomics failed on ROI '{roi}' of {seq} ({exc})",
                                "inspect the ROI in the QC images (empty ROI, or image and ROI grids differ)") from exc
            values.update(v)
            flags += [{"roi": roi, **x} for x in f]
    values["qc_flags"] = json.dumps(flags)
    return values


def _read(patient_id: str, path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CaseError(patient_id, str(path), f"cannot read the image ({exc})", "rerun the previous stage") from exc


def features_shard(rows: pd.DataFrame, opts: dict, segment_opts: dict, paths: Paths, strict: bool,
                   sequences: list[str] = (), auto_masks: bool = False) -> pd.DataFrame:
    """`auto_masks`: ROIs from the auto-segmentation UNet (deep.autoseg.use_for_features) instead of the provided."""
    extractor = make_extractor(opts["params"])
    rois = roi_names(segment_opts)
    rows = rows[STATUS_COLUMNS]
    # the robustness filter does not change a case's features: its options must not invalidate the cache
    options = {**{k: v for k, v in opts.items() if k != "robustness"}, "params_sha256": file_sha256(opts["params"]),
               "rois": rois, **({"sequences": list(sequences)} if sequences else {}),
               **({"auto_masks": True} if auto_masks else {})}

    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case_dir(r["centre"], r["patient_id"])
        return [*sequence_images(case, opts, list(sequences)).values(),
                *(roi_file(case, x, auto_masks) for x in rois)]

    return run_stage(rows, "features", lambda r: features_case(r, extractor, opts, rois, paths, sequences, auto_masks),
                     inputs, paths, __file__, options, strict)


FLAG_COLUMNS = ["patient_id", "centre", "roi", "image_type", "feature_class", "problem"]


def gather(shard_tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(features of every case that came through, quarantine list, per-case feature-class QC flags); a case is
    never silently dropped, and a feature a case could not give is NaN there with a flag saying why."""
    allrows = pd.concat(shard_tables, ignore_index=True)
    ok = allrows[allrows["status"] == "ok"].drop(columns=["status", "failed_stage", "message"])
    flags = [{"patient_id": r.patient_id, "centre": r.centre, **{k: f[k] for k in FLAG_COLUMNS[2:]}}
             for r in ok.itertuples() for f in json.loads(r.qc_flags or "[]")] if "qc_flags" in ok else []
    ok = ok.drop(columns=["qc_flags"], errors="ignore")
    feature_columns = [c for c in ok.columns if c not in ("patient_id", "centre")]
    ok[feature_columns] = ok[feature_columns].replace("", np.nan).astype(float)
    quarantined = allrows.loc[allrows["status"] != "ok", STATUS_COLUMNS]
    return ok.reset_index(drop=True), quarantined.reset_index(drop=True), pd.DataFrame(flags, columns=FLAG_COLUMNS)


# ---- IBSI 1 compliance: our wrapper on the digital phantom against the consensus values ---------------------
# pyradiomics "<class>_<feature>" -> IBSI 1 feature tags without aggregation suffix. Where IBSI defines two names
# for one quantity (sum variance = cluster tendency, dissimilarity = difference average) both tags are checked.
# Not mapped (no IBSI counterpart): shape Maximum2DDiameter*, Compactness*/SphericalDisproportion (deprecated),
# firstorder TotalEnergy, glcm MCC.
IBSI_TAGS: dict[str, tuple[str, ...]] = {
    "shape_MeshVolume": ("morph_volume",), "shape_VoxelVolume": ("morph_vol_approx",),
    "shape_SurfaceArea": ("morph_area_mesh",), "shape_SurfaceVolumeRatio": ("morph_av",),
    "shape_Sphericity": ("morph_sphericity",), "shape_Maximum3DDiameter": ("morph_diam",),
    "shape_MajorAxisLength": ("morph_pca_maj_axis",), "shape_MinorAxisLength": ("morph_pca_min_axis",),
    "shape_LeastAxisLength": ("morph_pca_least_axis",), "shape_Elongation": ("morph_pca_elongation",),
    "shape_Flatness": ("morph_pca_flatness",),
    "firstorder_Mean": ("stat_mean",), "firstorder_Variance": ("stat_var",), "firstorder_Skewness": ("stat_skew",),
    "firstorder_Kurtosis": ("stat_kurt",), "firstorder_Median": ("stat_median",), "firstorder_Minimum": ("stat_min",),
    "firstorder_10Percentile": ("stat_p10",), "firstorder_90Percentile": ("stat_p90",),
    "firstorder_Maximum": ("stat_max",), "firstorder_InterquartileRange": ("stat_iqr",),
    "firstorder_Range": ("stat_range",), "firstorder_MeanAbsoluteDeviation": ("stat_mad",),
    "firstorder_RobustMeanAbsoluteDeviation": ("stat_rmad",), "firstorder_Energy": ("stat_energy",),
    "firstorder_RootMeanSquared": ("stat_rms",), "firstorder_Entropy": ("ih_entropy",),
    "firstorder_Uniformity": ("ih_uniformity",),
    "glcm_MaximumProbability": ("cm_joint_max",), "glcm_JointAverage": ("cm_joint_avg",),
    "glcm_SumSquares": ("cm_joint_var",), "glcm_JointEntropy": ("cm_joint_entr",),
    "glcm_DifferenceAverage": ("cm_diff_avg", "cm_dissimilarity"), "glcm_DifferenceVariance": ("cm_diff_var",),
    "glcm_DifferenceEntropy": ("cm_diff_entr",), "glcm_SumAverage": ("cm_sum_avg",),
    "glcm_SumEntropy": ("cm_sum_entr",), "glcm_JointEnergy": ("cm_energy",), "glcm_Contrast": ("cm_contrast",),
    "glcm_Id": ("cm_inv_diff",), "glcm_Idn": ("cm_inv_diff_norm",), "glcm_Idm": ("cm_inv_diff_mom",),
    "glcm_Idmn": ("cm_inv_diff_mom_norm",), "glcm_InverseVariance": ("cm_inv_var",),
    "glcm_Correlation": ("cm_corr",), "glcm_Autocorrelation": ("cm_auto_corr",),
    "glcm_ClusterTendency": ("cm_clust_tend", "cm_sum_var"), "glcm_ClusterShade": ("cm_clust_shade",),
    "glcm_ClusterProminence": ("cm_clust_prom",), "glcm_Imc1": ("cm_info_corr1",), "glcm_Imc2": ("cm_info_corr2",),
    "glrlm_ShortRunEmphasis": ("rlm_sre",), "glrlm_LongRunEmphasis": ("rlm_lre",),
    "glrlm_LowGrayLevelRunEmphasis": ("rlm_lgre",), "glrlm_HighGrayLevelRunEmphasis": ("rlm_hgre",),
    "glrlm_ShortRunLowGrayLevelEmphasis": ("rlm_srlge",), "glrlm_ShortRunHighGrayLevelEmphasis": ("rlm_srhge",),
    "glrlm_LongRunLowGrayLevelEmphasis": ("rlm_lrlge",), "glrlm_LongRunHighGrayLevelEmphasis": ("rlm_lrhge",),
    "glrlm_GrayLevelNonUniformity": ("rlm_glnu",), "glrlm_GrayLevelNonUniformityNormalized": ("rlm_glnu_norm",),
    "glrlm_RunLengthNonUniformity": ("rlm_rlnu",), "glrlm_RunLengthNonUniformityNormalized": ("rlm_rlnu_norm",),
    "glrlm_RunPercentage": ("rlm_r_perc",), "glrlm_GrayLevelVariance": ("rlm_gl_var",),
    "glrlm_RunVariance": ("rlm_rl_var",), "glrlm_RunEntropy": ("rlm_rl_entr",),
    "glszm_SmallAreaEmphasis": ("szm_sze",), "glszm_LargeAreaEmphasis": ("szm_lze",),
    "glszm_LowGrayLevelZoneEmphasis": ("szm_lgze",), "glszm_HighGrayLevelZoneEmphasis": ("szm_hgze",),
    "glszm_SmallAreaLowGrayLevelEmphasis": ("szm_szlge",), "glszm_SmallAreaHighGrayLevelEmphasis": ("szm_szhge",),
    "glszm_LargeAreaLowGrayLevelEmphasis": ("szm_lzlge",), "glszm_LargeAreaHighGrayLevelEmphasis": ("szm_lzhge",),
    "glszm_GrayLevelNonUniformity": ("szm_glnu",), "glszm_GrayLevelNonUniformityNormalized": ("szm_glnu_norm",),
    "glszm_SizeZoneNonUniformity": ("szm_zsnu",), "glszm_SizeZoneNonUniformityNormalized": ("szm_zsnu_norm",),
    "glszm_ZonePercentage": ("szm_z_perc",), "glszm_GrayLevelVariance": ("szm_gl_var",),
    "glszm_ZoneVariance": ("szm_zs_var",), "glszm_ZoneEntropy": ("szm_zs_entr",),
    # pyradiomics GLDM with gldm_a = 0 is IBSI's NGLDM (Chebyshev distance 1, coarseness 0)
    "gldm_SmallDependenceEmphasis": ("ngl_lde",), "gldm_LargeDependenceEmphasis": ("ngl_hde",),
    "gldm_LowGrayLevelEmphasis": ("ngl_lgce",), "gldm_HighGrayLevelEmphasis": ("ngl_hgce",),
    "gldm_SmallDependenceLowGrayLevelEmphasis": ("ngl_ldlge",),
    "gldm_SmallDependenceHighGrayLevelEmphasis": ("ngl_ldhge",),
    "gldm_LargeDependenceLowGrayLevelEmphasis": ("ngl_hdlge",),
    "gldm_LargeDependenceHighGrayLevelEmphasis": ("ngl_hdhge",),
    "gldm_GrayLevelNonUniformity": ("ngl_glnu",), "gldm_DependenceNonUniformity": ("ngl_dcnu",),
    "gldm_DependenceNonUniformityNormalized": ("ngl_dcnu_norm",), "gldm_GrayLevelVariance": ("ngl_gl_var",),
    "gldm_DependenceVariance": ("ngl_dc_var",), "gldm_DependenceEntropy": ("ngl_dc_entr",),
    "ngtdm_Coarseness": ("ngt_coarseness",), "ngtdm_Contrast": ("ngt_contrast",), "ngtdm_Busyness": ("ngt_busyness",),
    "ngtdm_Complexity": ("ngt_complexity",), "ngtdm_Strength": ("ngt_strength",),
}

# Deviations from the IBSI 1 consensus that pyradiomics has by design, keyed by IBSI tag. The IBSI test asserts
# that exactly these tags fall outside tolerance: a fixed deviation or a new one both fail it.
IBSI_KNOWN_DEVIATIONS: dict[str, str] = {
    "stat_kurt": "pyradiomics reports kurtosis, IBSI excess kurtosis (kurtosis - 3)",
    "morph_pca_min_axis": "pyradiomics' PCA uses the biased (1/N) covariance of voxel centres, IBSI 1/(N-1): "
                          "axis lengths are sqrt((N-1)/N) of IBSI's (74 voxels: -0.7%); the major axis and the "
                          "ratios (elongation, flatness) stay within tolerance",
    "morph_pca_least_axis": "as morph_pca_min_axis (biased 1/N covariance)",
}


def ibsi_suffix(feature_class: str, settings: dict[str, Any]) -> str:
    """IBSI aggregation of a pyradiomics texture class: GLCM/GLRLM average the 13 directional matrices' features
    (`_3D_avg`) unless `weightingNorm` merges the matrices first (`_3D_comb`); the others are 3D by construction."""
    if feature_class in ("shape", "firstorder"):
        return ""
    if feature_class in ("glcm", "glrlm"):
        if settings.get("force2D"):
            raise McradError("IBSI check: 2D aggregation is not mapped; use a 3D IBSI parameter file")
        return "_3D_comb" if settings.get("weightingNorm") else "_3D_avg"
    return "_3D"


def read_ibsi_reference(path: str | Path) -> pd.DataFrame:
    """IBSI consensus table indexed by tag: reference, tolerance."""
    return pd.read_csv(path, sep=";").rename(columns={"reference value": "reference"}).set_index("tag")


def _allowed(reference: float, tolerance: float) -> float:
    """IBSI 1 phantom values are published to 3 significant digits with tolerance 0: a match is a value that
    rounds to the published one, i.e. within half a unit of the third significant digit (or the stated tolerance
    if larger)."""
    if reference == 0:
        return tolerance
    return max(tolerance, 0.5 * 10.0 ** (np.floor(np.log10(abs(reference))) - 2))


def ibsi_phantom_check(phantom_dir: str | Path, params_file: str | Path) -> pd.DataFrame:
    """Run the IBSI 1 digital phantom through `extract` with the IBSI settings, once as configured and once with
    merged direction matrices, and compare every mapped feature with its consensus value."""
    phantom = Path(phantom_dir)
    # IBSI 1 pre-processing of the phantom: cast to float and round to integers
    image = sitk.Round(sitk.Cast(sitk.ReadImage(str(phantom / "nifti/image/phantom.nii.gz")), sitk.sitkFloat64))
    mask = sitk.ReadImage(str(phantom / "nifti/mask/mask.nii.gz"))
    ref = read_ibsi_reference(phantom / "reference_values.csv")
    rows = []
    for merged in (False, True):
        extractor = make_extractor(params_file)
        if merged:
            extractor.settings["weightingNorm"] = "no_weighting"
        values = extract(extractor, image, mask, "phantom")
        for name, tags in IBSI_TAGS.items():
            cls = name.split("_")[0]
            if merged and cls not in ("glcm", "glrlm"):
                continue  # only GLCM/GLRLM change with weightingNorm
            ours = values[f"phantom_original_{name}"]
            for base in tags:
                tag = base + ibsi_suffix(cls, extractor.settings)
                r = ref.loc[tag]
                allowed = float(_allowed(r["reference"], r["tolerance"]))
                rows.append({"pyradiomics": f"{name}" + (" (weightingNorm)" if merged else ""), "ibsi_tag": tag,
                             "ours": ours, "reference": r["reference"], "tolerance": r["tolerance"],
                             "allowed": allowed, "within": bool(abs(ours - r["reference"]) <= allowed)})
    return pd.DataFrame(rows)


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def ibsi_compliance_markdown(check: pd.DataFrame, params_file: str, reference_tags: list[str]) -> str:
    """docs/ibsi_compliance.md, generated from `ibsi_phantom_check` (never edited by hand)."""
    dev = check[~check["within"]]
    # 3D and non-texture IBSI tags pyradiomics has no feature for (2D/2.5D aggregations are out of scope)
    unmapped = sorted(t for t in reference_tags if not t.endswith(("_2D", "_2D_avg", "_2D_comb", "_2_5D", "_2_5D_avg",
                                                                   "_2_5D_comb")) and t not in set(check["ibsi_tag"]))
    lines = [
        "# IBSI 1 compliance of mcrad's feature extraction",
        "",
        "<!-- generated by `mcrad ibsi-report`; tests/test_ibsi.py checks this file is current -->",
        "",
        f"The IBSI 1 digital phantom run through `mcrad.features.extract` with `{params_file}` (no interpolation,",
        "no resegmentation, fixed bin width 1 from grey level 1, image cast to float and rounded). pyradiomics",
        "averages GLCM/GLRLM features over the 13 directions (IBSI `_3D_avg`); with `weightingNorm: no_weighting`",
        "it merges the directional matrices first (IBSI `_3D_comb`). GLSZM, GLDM (= NGLDM, alpha 0) and NGTDM are",
        "`_3D`. A value matches when it is within the IBSI tolerance, or, where that is 0, rounds to the published",
        "3 significant digits. IBSI 2D/2.5D aggregations are not checked: pyradiomics' `force2D` pools all",
        "slices into one matrix per in-plane direction, which is neither IBSI `_2D_avg` nor `_2_5D_comb`.",
        "",
        f"Mapped checks: {len(check)}; within tolerance: {int(check['within'].sum())}; deviations: {len(dev)}.",
        "",
        "## Deviations",
        "",
    ]
    if dev.empty:
        lines.append("None.")
    else:
        lines += ["| IBSI tag | pyradiomics | ours | reference | tolerance | reason |", "|---|---|---|---|---|---|"]
        lines += [f"| {r.ibsi_tag} | {r.pyradiomics} | {_fmt(r.ours)} | {_fmt(r.reference)} | {_fmt(r.tolerance)} | "
                  f"{IBSI_KNOWN_DEVIATIONS.get(r.ibsi_tag, 'UNEXPLAINED')} |" for r in dev.itertuples()]
    lines += ["", f"## IBSI 3D features with no mapped pyradiomics feature ({len(unmapped)}, not checked)", "",
              ", ".join(f"`{t}`" for t in unmapped)]
    lines += ["", "## All mapped features", "", "| IBSI tag | pyradiomics | ours | reference | allowed | ok |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r.ibsi_tag} | {r.pyradiomics} | {_fmt(r.ours)} | {_fmt(r.reference)} | {_fmt(r.allowed)} | "
              f"{'yes' if r.within else 'NO'} |" for r in check.itertuples()]
    return "\n".join(lines) + "\n"


def ibsi_report(phantom_dir: str | Path, params_file: str) -> str:
    check = ibsi_phantom_check(phantom_dir, params_file)
    tags = list(read_ibsi_reference(Path(phantom_dir) / "reference_values.csv").index)
    return ibsi_compliance_markdown(check, params_file, tags)


def extract_single(image_file: str | Path, mask_file: str | Path, params_file: str | Path, prefix: str
                   ) -> pd.DataFrame:
    """`mcrad extract`: one case outside the workflow, same wrapper and NaN/QC-flag policy as the rule."""
    images = []
    for f in (image_file, mask_file):
        if not Path(f).is_file():
            raise McradError(f"{f} not found. Fix: give an existing image/mask file.")
        try:
            images.append(sitk.ReadImage(str(f)))
        except RuntimeError as exc:
            raise McradError(f"cannot read {f} ({exc}). Fix: give a NIfTI/NRRD/MHA file.") from exc
    values, flags = extract_roi(make_extractor(params_file), images[0], images[1], prefix)
    return pd.DataFrame([{**values, "qc_flags": json.dumps(flags)}])


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


def icc_31(Y: np.ndarray) -> tuple[float, float, float]:
    """ICC(3,1), two-way mixed, consistency, single rater (Shrout & Fleiss 1979; McGraw & Wong 1996 case 3),
    with its exact F-based 95% interval. Y: subjects x raters (here cases x contour variants)."""
    from scipy.stats import f

    n, k = Y.shape
    grand = Y.mean()
    ss_rows = k * ((Y.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((Y.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((Y - grand) ** 2).sum() - ss_rows - ss_cols
    ms_rows, ms_err = ss_rows / (n - 1), ss_err / ((n - 1) * (k - 1))
    if not (np.isfinite(ms_rows) and np.isfinite(ms_err)) or ms_rows + (k - 1) * ms_err <= 0:
        return (np.nan, np.nan, np.nan)  # no variation at all: agreement is undefined, not perfect
    icc = (ms_rows - ms_err) / (ms_rows + (k - 1) * ms_err)
    df1, df2 = n - 1, (n - 1) * (k - 1)
    F = ms_rows / ms_err if ms_err > 0 else np.inf
    f_low, f_up = F / f.ppf(0.975, df1, df2), F * f.ppf(0.975, df2, df1)
    return float(icc), float((f_low - 1) / (f_low + k - 1)), float((f_up - 1) / (f_up + k - 1))


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


def robustness_case(row: pd.Series, extractor, opts: dict, segment_opts: dict, paths: Paths, seed: int,
                    sequences: list[str] = ()) -> pd.DataFrame:
    """Features of one case, original ROIs and every perturbation (rows), with the study's names. The tumour is
    perturbed and the peritumoral ring re-derived from it (as segment does), so the ring follows the contour."""
    case = paths.case_dir(row["centre"], row["patient_id"])
    image = _read(row["patient_id"], case / "preprocess" / "image.nii.gz")
    images = {seq: _read(row["patient_id"], f) for seq, f in sequence_images(case, opts, list(sequences)).items()}
    original = {roi: _read(row["patient_id"], case / "segment" / f"roi-{roi}.nii.gz")
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
                per_variant[name].update(extract_roi(extractor, img, mask, f"{seq}_{roi}")[0])
            except ValueError:
                pass  # e.g. erosion emptied a small ROI: this case drops out of that ROI's ICCs
    for (roi, mask), (seq, img) in itertools.product(original.items(), images.items()):
        per_variant["original"].update(extract_roi(extractor, img, mask, f"{seq}_{roi}")[0])
    return pd.DataFrame.from_dict(per_variant, orient="index")


def robustness_study(features: pd.DataFrame, opts: dict, segment_opts: dict, paths: Paths, seed: int,
                     sequences: list[str] = ()) -> pd.DataFrame:
    """features/robustness.tsv from a seeded sample of the training centre(s)' cases (features.robustness.cases
    of them: the extra cost is cases x (1 + perturbations) ROI extractions, independent of the study size)."""
    extractor = make_extractor(opts["params"])
    rob = opts["robustness"]
    if len(features) < 3:
        raise McradError(f"robustness: {len(features)} training case(s) came through features; ICC needs at "
                         "least 3. Fix: set features.robustness.activate: false for so small a study.")
    rng = np.random.default_rng(seed)
    chosen = features.iloc[np.sort(rng.choice(len(features), min(rob["cases"], len(features)), replace=False))]
    per_case = {}
    for _, row in chosen.iterrows():
        case_seed = int(rng.integers(2**31))
        table = robustness_case(row, extractor, opts, segment_opts, paths, case_seed, sequences)
        per_case[row["patient_id"]] = table.reindex(columns=[c for c in features.columns
                                                              if c not in ("patient_id", "centre")])
    return robustness_table(per_case, rob["threshold"])

"""pyradiomics on each ROI of a case with the study's parameter file, with the NaN policy: a feature a case
cannot give is NaN with a QC flag saying why, never a silent value."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.errors import CaseError, McradError
from mcrad.files import STATUS_COLUMNS, file_sha256, read_shard, write_table
from mcrad.paths import CaseFiles, Paths
from mcrad.segment import roi_gate, roi_names

logging.getLogger("radiomics").setLevel(logging.ERROR)


def make_extractor(params_file: str | Path, options: dict[str, Any] | None = None):
    """pyradiomics' extractor for the parameter file, with the features section's IBSI options (`options`:
    resegment, discretisation, ibsi_extra; None: pyradiomics as it is)."""
    if not Path(params_file).is_file():
        raise McradError(f"pyradiomics parameter file {params_file} not found. Fix: set features.params to "
                         "one of config/radiomics/*.yaml or your own pyradiomics YAML.")
    from mcrad.features.extractor import McradExtractor  # heavy import, only in the rules that extract

    try:
        return McradExtractor(params_file, options)
    except McradError:
        raise
    except Exception as exc:  # pykwalify/yaml errors: report the file, not a stack trace
        raise McradError(f"pyradiomics rejects parameter file {params_file}: {exc}") from exc


def _number(value: Any) -> float:
    """A pyradiomics value as a float; a complex or non-finite value (a degenerate shape, e.g. the eigenvalues of
    a ROI one voxel thick) is NaN, which extract_roi flags."""
    arr = np.asarray(value)
    if np.iscomplexobj(arr) or arr.size != 1:
        return float("nan")
    number = float(arr)
    return number if np.isfinite(number) else float("nan")


def extract(extractor, image: sitk.Image, roi: sitk.Image, prefix: str) -> dict[str, float]:
    """Feature values of one ROI, prefixed; pyradiomics' diagnostics are left out."""
    result = extractor.execute(image, roi, label=1)
    return {f"{prefix}_{k}": _number(v) for k, v in result.items() if not k.startswith("diagnostics_")}


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
               "problem": f"pyradiomics returned NaN, inf or a complex value for {', '.join(feats)}"}
              for (it, cls), feats in nan_groups.items()]
    return values, flags


def sequence_images(case: CaseFiles, opts: dict, sequences: list[str]) -> dict[str, Path]:
    """Sequence name -> preprocessed image: each of cohort.sequences (preprocess/image-<SEQ>, registered onto the
    reference's grid), or, for one image per case, preprocess/image named features.sequence."""
    if not sequences:
        return {opts["sequence"]: case.preprocess_image}
    return {seq: case.preprocess_sequence(seq) for seq in sequences}


def sequence_params(opts: dict, sequences: list[str]) -> dict[str, str]:
    """Sequence -> its pyradiomics parameter file: features.sequence_params where given, else features.params."""
    names = list(sequences) or [opts["sequence"]]
    return {seq: opts["sequence_params"].get(seq, opts["params"]) for seq in names}


def make_extractors(opts: dict, sequences: list[str]) -> dict[str, Any]:
    """One extractor per sequence (sequences sharing a parameter file share it)."""
    by_file: dict[str, Any] = {}
    return {seq: by_file.setdefault(f, by_file.get(f) or make_extractor(f, opts))
            for seq, f in sequence_params(opts, sequences).items()}


def features_case(row: pd.Series, extractors: dict[str, Any], opts: dict, segment_opts: dict, paths: Paths,
                  sequences: list[str] = (), auto_masks: bool = False) -> dict[str, Any]:
    """Features of every ROI of the case (features.sequence or each of cohort.sequences), with QC flags;
    `extractors`: make_extractors."""
    case = paths.case(row["centre"], row["patient_id"])
    values: dict[str, Any] = {}
    flags: list[dict] = []
    for seq, image_file in sequence_images(case, opts, list(sequences)).items():
        image = _read(row["patient_id"], image_file)
        for roi in roi_names(segment_opts):
            roi_path = case.roi(roi, auto_masks)
            mask = _read(row["patient_id"], roi_path)
            problem = roi_gate(mask, segment_opts)
            if problem:  # the tumour passed this gate at segment: a derived ROI (ring) too small for features
                flags.append({"roi": roi, "prefix": f"{seq}_{roi}", "image_type": "all", "feature_class": "all",
                              "problem": f"ROI {problem}"})
                continue
            try:
                v, f = extract_roi(extractors[seq], image, mask, f"{seq}_{roi}")
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
    extractors = make_extractors(opts, list(sequences))
    rois = roi_names(segment_opts)
    rows = rows[STATUS_COLUMNS]
    # the robustness filter does not change a case's features: its options must not invalidate the cache
    params = sequence_params(opts, list(sequences))
    options = {**{k: v for k, v in opts.items() if k != "robustness"}, "params_sha256": file_sha256(opts["params"]),
               **({"sequence_params_sha256": {s: file_sha256(f) for s, f in params.items()}}
                  if opts["sequence_params"] else {}),
               "rois": rois, "gates": [segment_opts["min_voxels"], segment_opts["min_extent_voxels"]],
               **({"sequences": list(sequences)} if sequences else {}),
               **({"auto_masks": True} if auto_masks else {})}

    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case(r["centre"], r["patient_id"])
        return [*sequence_images(case, opts, list(sequences)).values(),
                *(case.roi(x, auto_masks) for x in rois)]

    return run_stage(rows, "features",
                     lambda r: features_case(r, extractors, opts, segment_opts, paths, sequences, auto_masks),
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


def gather_stage(shard_files: list[Path], out: Path, quarantine: Path, flags: Path | None) -> None:
    """`mcrad gather`: one centre's features, quarantine list and feature flags from its shard tables."""
    ok, quarantined, flag_table = gather([read_shard(p) for p in shard_files])
    write_table(ok, out)
    write_table(quarantined, quarantine)
    if flags:
        write_table(flag_table, flags)


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



"""Features: pyradiomics on each ROI with a standard parameter file; names follow
<sequence>_<roi>_<imagetype>_<class>_<feature>."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import STATUS_COLUMNS, file_sha256, run_stage
from mcrad.config import Paths
from mcrad.errors import CaseError, McradError
from mcrad.segment import roi_names

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


def features_case(row: pd.Series, extractor, opts: dict, rois: list[str], paths: Paths) -> dict[str, Any]:
    case = paths.case_dir(row["centre"], row["patient_id"])
    image = sitk.ReadImage(str(case / "preprocess" / "image.nii.gz"))
    values: dict[str, Any] = {}
    for roi in rois:
        roi_file = case / "segment" / f"roi-{roi}.nii.gz"
        try:
            values.update(extract(extractor, image, sitk.ReadImage(str(roi_file)), f"{opts['sequence']}_{roi}"))
        except (ValueError, RuntimeError) as exc:
            raise CaseError(row["patient_id"], str(roi_file), f"pyradiomics failed on ROI '{roi}' ({exc})",
                            "inspect the ROI in the QC images; a one-voxel or flat ROI cannot give texture") from exc
    return values


def features_shard(rows: pd.DataFrame, opts: dict, segment_opts: dict, paths: Paths, strict: bool
                   ) -> pd.DataFrame:
    extractor = make_extractor(opts["params"])
    rois = roi_names(segment_opts)
    rows = rows[STATUS_COLUMNS]
    options = {**opts, "params_sha256": file_sha256(opts["params"]), "rois": rois}

    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case_dir(r["centre"], r["patient_id"])
        return [case / "preprocess" / "image.nii.gz", *(case / "segment" / f"roi-{x}.nii.gz" for x in rois)]

    return run_stage(rows, "features", lambda r: features_case(r, extractor, opts, rois, paths), inputs, paths,
                     __file__, options, strict)


def gather(shard_tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(features of every case that came through, quarantine list); a case is never silently dropped."""
    allrows = pd.concat(shard_tables, ignore_index=True)
    ok = allrows[allrows["status"] == "ok"].drop(columns=["status", "failed_stage", "message"])
    quarantined = allrows.loc[allrows["status"] != "ok", STATUS_COLUMNS]
    return ok.reset_index(drop=True), quarantined.reset_index(drop=True)

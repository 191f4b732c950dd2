"""One control kind over the cases of a shard. Each control case lives in a case folder of its own under
controls/<kind>/ (the study's case layout, through Paths.controls) and passes through the study's own stage
functions: intensity controls through features (the real ROIs, a control image); randomised_roi through
preprocess, segment and features (the whole ingested image, a moved mask). So a control's features come from the
same code and options as the real ones, and a case whose control cannot be made is quarantined there with the
reason, never dropped."""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.controls import case_rng
from mcrad.controls.generators import allowed_region, moved_roi, place_roi, sampled, shuffled
from mcrad.errors import CaseError
from mcrad.features.extract import features_case, make_extractors, sequence_images
from mcrad.files import STATUS_COLUMNS, file_sha256
from mcrad.paths import Paths
from mcrad.preprocess import preprocess_case, uses_nyul
from mcrad.segment import roi_names, segment_case

INTENSITY = {"shuffled": shuffled, "sampled": sampled}


def _read(patient_id: str, path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CaseError(patient_id, str(path), f"cannot read the image ({exc})", "rerun the real stages first") from exc


def _link(source: Path, target: Path) -> None:
    """The real file in the control case folder: a hard link (no copy of a large image), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def intensity_case(row: pd.Series, kind: str, opts: dict, real: Paths, control: Paths, sequences: list[str]
                   ) -> None:
    """The control image of every sequence (each ROI's voxels shuffled or sampled, ROI by ROI: tumour, then the
    peritumoral ring) beside the real ROIs, in the control case folder."""
    pid = row["patient_id"]
    case, ctrl = real.case(row["centre"], pid), control.case(row["centre"], pid)
    names = roi_names(opts["segment"])
    rois = [_read(pid, case.roi(name)) for name in names]
    rng = case_rng(opts["seed"], kind, pid)
    targets = sequence_images(ctrl, opts["features"], sequences)
    for seq, source in sequence_images(case, opts["features"], sequences).items():
        targets[seq].parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(INTENSITY[kind](_read(pid, source), rois, rng), str(targets[seq]), useCompression=True)
    for name in names:
        _link(case.roi(name), ctrl.roi(name))


def randomised_case(row: pd.Series, opts: dict, real: Paths, control: Paths, sequences: list[str]) -> None:
    """The tumour mask moved to random non-tumour tissue of the whole ingested image (the preprocess stage crops
    around the ROI, so the search runs on the image as ingested, before any crop), then preprocessed and
    segmented by the study's own functions, the peritumoral ring re-derived around the moved ROI."""
    pid = row["patient_id"]
    case, ctrl = real.case(row["centre"], pid), control.case(row["centre"], pid)
    image, mask = _read(pid, case.ingest_image), _read(pid, case.ingest_mask)
    allowed = allowed_region(image, mask, opts["exclusion_mm"])
    placement = place_roi(mask, allowed, case_rng(opts["seed"], "randomised_roi", pid), opts["tries"])
    if placement is None:
        n = int(sitk.GetArrayViewFromImage(mask).astype(bool).sum())
        raise CaseError(pid, str(case.ingest_mask),
                        f"no place in the image's non-tumour tissue fits the tumour ROI ({n} voxels) for the "
                        f"randomised_roi control (searched: the whole ingested image, tissue = largest Otsu "
                        f"foreground component, more than {opts['exclusion_mm']} mm from the tumour)",
                        "nothing to fix if the tumour is large for the field of view: this case has no randomised_roi "
                        "control and the control models are fitted and validated without it (n in "
                        "negative_controls.tsv)")
    for source, target in [(case.ingest_image, ctrl.ingest_image),
                           *((case.ingest_sequence(s), ctrl.ingest_sequence(s)) for s in sequences[1:])]:
        _link(source, target)
    sitk.WriteImage(moved_roi(mask, placement), str(ctrl.ingest_mask), useCompression=True)
    standard = json.loads(real.nyul_standard.read_text())["standard"] if uses_nyul(opts["preprocess"]) else None
    preprocess_case(row, opts["preprocess"], control, standard, sequences, opts["study_seed"])
    segment_case(row, opts["segment"], control)
    # to the job log only: a column here would reach the feature table (gather takes every column as a feature)
    print(f"mcrad: randomised_roi {pid}: ROI moved by {placement.offset_mm} mm (x, y, z) after "
          f"{placement.candidates or 'an exhaustive search of'} candidate position(s)", file=sys.stderr)


def control_inputs(row: pd.Series, kind: str, opts: dict, real: Paths, sequences: list[str]) -> list[Path]:
    """The real files a case's control is made from (its cache key)."""
    case = real.case(row["centre"], row["patient_id"])
    if kind == "randomised_roi":
        return [case.ingest_image, case.ingest_mask, *(case.ingest_sequence(s) for s in sequences[1:]),
                *([real.nyul_standard] if uses_nyul(opts["preprocess"]) else [])]
    return [*sequence_images(case, opts["features"], sequences).values(),
            *(case.roi(name) for name in roi_names(opts["segment"]))]


def controls_shard(rows: pd.DataFrame, kind: str, opts: dict, real: Paths, strict: bool,
                   sequences: list[str] = ()) -> pd.DataFrame:
    """Features of one control kind for the cases of a shard that came through the real features stage (the
    others are in the study's quarantine already). `opts`: negative_controls (seed, exclusion_mm, tries) plus the
    study's preprocess, segment and features sections and study_seed. The table has the features stage's
    columns (gather reads it), plus randomised_roi's placement."""
    sequences = list(sequences)
    control = real.controls(kind)
    extractors = make_extractors(opts["features"], sequences)
    rows = rows.loc[rows["status"] == "ok", STATUS_COLUMNS].reset_index(drop=True)

    def work(row: pd.Series) -> dict[str, Any]:
        if kind == "randomised_roi":
            randomised_case(row, opts, real, control, sequences)
        else:
            intensity_case(row, kind, opts, real, control, sequences)
        return features_case(row, extractors, opts["features"], opts["segment"], control, sequences)

    used = {k: opts[k] for k in ("seed", "features", "segment")}
    if kind == "randomised_roi":
        used.update({k: opts[k] for k in ("exclusion_mm", "tries", "preprocess", "study_seed")})
    key = {**used, "kind": kind, "sequences": sequences, "params_sha256": file_sha256(opts["features"]["params"]),
           "features": {k: v for k, v in opts["features"].items() if k != "robustness"}}
    return run_stage(rows, f"controls_{kind}", work, lambda r: control_inputs(r, kind, opts, real, sequences),
                     control, __file__, key, strict)


def shard_options(cfg: dict) -> dict[str, Any]:
    """What a control shard needs of the config: negative_controls (seed null -> study.seed) and the preprocess,
    segment and features sections the real cases went through."""
    nc = cfg["negative_controls"]
    return {"seed": cfg["study"]["seed"] if nc["seed"] is None else nc["seed"], "exclusion_mm": nc["exclusion_mm"],
            "tries": nc["tries"], "preprocess": cfg["preprocess"], "segment": cfg["segment"],
            "features": cfg["features"], "study_seed": cfg["study"]["seed"]}


def controls_shard_stage(cfg: dict, kind: str, shard_file: Path, real: Paths, strict: bool, sequences: list[str],
                         out: Path) -> None:
    """`mcrad controls`: one control kind's features of the cases of a features shard table."""
    from mcrad.files import read_shard, write_table

    write_table(controls_shard(read_shard(shard_file), kind, shard_options(cfg), real, strict, sequences), out)

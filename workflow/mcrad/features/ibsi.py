"""IBSI 1 compliance: an image and mask run through the workflow's own preprocess and feature functions with one of
the IBSI configurations (config/ibsi/<name>.yaml: the preprocess and features sections of a study config), every
value mapped to its IBSI tag and compared with a reference in IBSI's `reference value;tolerance;tag` format
(`mcrad ibsi-report`); docs/ibsi_compliance.md is generated from those tables (`mcrad ibsi-docs`)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
import yaml

from mcrad.config import load_sections
from mcrad.errors import McradError
from mcrad.features.extract import make_extractor
from mcrad.features.ibsi_map import IBSI_TAGS, VALUE_TRANSFORMS
from mcrad.preprocess import _grid_offset, preprocess_images, target_spacing

IBSI_CONFIGS = ("digital", "A", "B", "C", "D", "E")
CONFIG_DIR = Path("config/ibsi")
TABLE_COLUMNS = ["tag", "value", "reference", "tolerance", "ok", "source"]


def ibsi_configuration(name: str, config_dir: str | Path = CONFIG_DIR) -> dict[str, Any]:
    """The preprocess and features sections of IBSI configuration `name`, validated, with the schema's defaults."""
    path = Path(config_dir) / f"{name}.yaml"
    if name not in IBSI_CONFIGS or not path.is_file():
        raise McradError(f"no IBSI configuration {name!r} ({path}). Fix: choose one of {', '.join(IBSI_CONFIGS)} "
                         "and run from the repository root.")
    return load_sections(yaml.safe_load(path.read_text()))


def ibsi_suffix(feature_class: str, settings: dict[str, Any]) -> str:
    """IBSI aggregation of a pyradiomics class. GLCM/GLRLM: the directional matrices' features averaged (`_avg`),
    or the matrices merged first with `weightingNorm` (`_comb`). force2D pools all axial slices per in-plane
    direction: IBSI 2.5D, never 2D (per-slice features). GLSZM, GLDM (= NGLDM, alpha 0) and NGTDM have one matrix."""
    if feature_class in ("shape", "firstorder"):
        return ""
    two = bool(settings.get("force2D"))
    if two and settings.get("force2Ddimension", 0) != 0:
        raise McradError("IBSI check: force2D needs force2Ddimension 0 (axial slices) to map onto IBSI 2.5D")
    base = "_2_5D" if two else "_3D"
    if feature_class in ("glcm", "glrlm"):
        return base + ("_comb" if settings.get("weightingNorm") else "_avg")
    return base


def read_ibsi_reference(path: str | Path) -> pd.DataFrame:
    """IBSI reference table indexed by tag: reference, tolerance (NaN where IBSI found no consensus)."""
    return pd.read_csv(path, sep=";").rename(columns={"reference value": "reference"}).set_index("tag")


def allowed_difference(reference: float, tolerance: float) -> float:
    """IBSI 1 values are published to 3 significant digits, the phantom's with tolerance 0: a match is within the
    tolerance or within half a unit of the third significant digit, whichever is larger."""
    if reference == 0 or not np.isfinite(reference):
        return float(tolerance)
    return float(max(tolerance, 0.5 * 10.0 ** (np.floor(np.log10(abs(reference))) - 2)))


def pyradiomics_values(image: sitk.Image, mask: sitk.Image, features: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """IBSI tag -> (value, source) of everything the features stage computes with these options, once as configured
    and once more for GLCM/GLRLM with merged direction matrices (weightingNorm), so both IBSI aggregations show."""
    out: dict[str, tuple[float, str]] = {}
    for merged in (False, True):
        opts = {**features, "ibsi_extra": {"activate": features["ibsi_extra"]["activate"] and not merged}}
        extractor = make_extractor(features["params"], opts)
        if merged:
            extractor.settings["weightingNorm"] = "no_weighting"
            extractor.disableAllFeatures()
            extractor.enableFeaturesByName(glcm=[], glrlm=[])
        values = extractor.execute(image, mask, label=extractor.settings.get("label", 1))
        for key, raw in values.items():
            if key.startswith("diagnostics_"):
                continue
            _, cls, name = key.split("_", 2)
            if cls == "ibsi":
                out[name] = (float(raw), "ibsi (mcrad)")
                continue
            transform: Callable[[float], float] = VALUE_TRANSFORMS.get(f"{cls}_{name}", lambda v: v)
            for tag in IBSI_TAGS.get(f"{cls}_{name}", ()):
                out[tag + ibsi_suffix(cls, extractor.settings)] = (
                    transform(float(raw)), f"{cls}_{name}" + (" (weightingNorm)" if merged else ""))
    return out


def _roi_stats(image: sitk.Image, roi: np.ndarray, what: str, stage: str) -> dict[str, float]:
    arr = sitk.GetArrayViewFromImage(image)[roi]
    nz = np.argwhere(roi)
    box = nz.max(axis=0) - nz.min(axis=0) + 1 if nz.size else np.zeros(3)
    out = {f"{what}_mask_vox_count_{stage}_roi": float(roi.sum())}
    out.update({f"{what}_mask_bb_dim_{ax}_{stage}_roi": float(n) for ax, n in zip("zyx", box, strict=True)})
    if what == "int" and arr.size:
        out.update({f"int_mask_mean_int_{stage}_roi": float(arr.mean()), f"int_mask_min_int_{stage}_roi":
                    float(arr.min()), f"int_mask_max_int_{stage}_roi": float(arr.max())})
    return out


def diagnostic_values(image_file: Path, mask_file: Path, image: sitk.Image, mask: sitk.Image, cfg: dict[str, Any]
                      ) -> dict[str, tuple[float, str]]:
    """IBSI's diagnostic tags (image and ROI after each step) that locate a deviation: initial image and ROI, the
    interpolated grid (size of the whole image's grid, of which preprocess keeps the part around the ROI) and ROI,
    and the intensity ROI after re-segmentation."""
    original, original_mask = sitk.ReadImage(str(image_file)), sitk.ReadImage(str(mask_file))
    spacing = target_spacing(original_mask, cfg["preprocess"]["spacing_mm"])
    grid_size, _ = _grid_offset(original_mask, spacing)
    arr = sitk.GetArrayViewFromImage(original)
    out: dict[str, float] = {"mean_int_init_img": float(arr.mean()), "min_int_init_img": float(arr.min()),
                             "max_int_init_img": float(arr.max())}
    for ax, n, s, m, t in zip("xyz", original.GetSize(), original.GetSpacing(), grid_size, spacing, strict=True):
        out.update({f"img_dim_{ax}_init_img": n, f"vox_dim_{ax}_init_img": s, f"img_dim_{ax}_interp_img": m,
                    f"vox_dim_{ax}_interp_img": t, f"int_mask_dim_{ax}_init_roi": n, f"int_mask_dim_{ax}_interp_roi": m,
                    f"int_mask_dim_{ax}_reseg_roi": m})
    roi0 = sitk.GetArrayViewFromImage(original_mask) > 0
    roi = sitk.GetArrayViewFromImage(mask) > 0
    for what in ("int", "morph"):
        out.update(_roi_stats(original, roi0, what, "init"))
        out.update(_roi_stats(image, roi, what, "interp"))
    extractor = make_extractor(cfg["features"]["params"], {**cfg["features"], "ibsi_extra": {"activate": False}})
    low, high = extractor.case_settings(image, mask, 1).get("resegmentRange", (-np.inf, np.inf))
    values = sitk.GetArrayViewFromImage(image)
    out.update(_roi_stats(image, roi & (values >= low) & (values <= high), "int", "reseg"))
    out.update(_roi_stats(image, roi, "morph", "reseg"))
    return {k: (float(v), "diagnostic") for k, v in out.items()}


def ibsi_values(image_file: str | Path, mask_file: str | Path, cfg: dict[str, Any]) -> dict[str, tuple[float, str]]:
    """Every IBSI tag mcrad computes for this image and mask with IBSI configuration `cfg`: preprocess_images (what
    rule preprocess writes) then the features stage's extractor."""
    image, mask, _, _ = preprocess_images(Path(image_file), Path(mask_file), cfg["preprocess"])
    return {**diagnostic_values(Path(image_file), Path(mask_file), image, mask, cfg),
            **pyradiomics_values(image, mask, cfg["features"])}


def ibsi_table(values: dict[str, tuple[float, str]], reference: pd.DataFrame | None) -> pd.DataFrame:
    """One row per reference tag (value empty where nothing maps to it), or per computed tag without a reference:
    tag, value, reference, tolerance, ok, source."""
    tags = list(reference.index) if reference is not None else [t for t, (_, s) in values.items() if s != "diagnostic"]
    rows = []
    for tag in tags:
        value, source = values.get(tag, (np.nan, ""))
        ref, tol = (reference.loc[tag, "reference"], reference.loc[tag, "tolerance"]) if reference is not None \
            else (np.nan, np.nan)
        ok: Any = ""
        if np.isfinite(value) and np.isfinite(ref):
            ok = bool(abs(value - ref) <= allowed_difference(float(ref), float(np.nan_to_num(tol))))
        rows.append({"tag": tag, "value": value, "reference": ref, "tolerance": tol, "ok": ok, "source": source})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def ibsi_report(image_file: str | Path, mask_file: str | Path, config: str, reference_file: str | Path | None
                ) -> pd.DataFrame:
    """`mcrad ibsi-report`: the comparison table of one image and mask under IBSI configuration `config`."""
    for f in (image_file, mask_file, reference_file):
        if f is not None and not Path(f).is_file():
            raise McradError(f"{f} not found. Fix: give an existing image, mask and IBSI reference file.")
    reference = read_ibsi_reference(reference_file) if reference_file is not None else None
    return ibsi_table(ibsi_values(image_file, mask_file, ibsi_configuration(config)), reference)


def summary(table: pd.DataFrame) -> dict[str, int]:
    """Mapped / within-tolerance counts of pyradiomics' features and of the ibsi class (rows with a reference)."""
    checked = table[table["ok"] != ""]
    out = {}
    for kind, sel in (("pyradiomics", ~checked["source"].str.startswith(("ibsi", "diagnostic"))),
                      ("ibsi", checked["source"].str.startswith("ibsi")),
                      ("diagnostic", checked["source"] == "diagnostic")):
        out[f"{kind}_mapped"] = int(sel.sum())
        out[f"{kind}_ok"] = int(checked.loc[sel, "ok"].astype(bool).sum())
    return out

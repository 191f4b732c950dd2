"""Negative controls: the control generators (unit), the table and its flags, and one lean end-to-end run of the
controls rules on the tiny study (targets only: the binary endpoint's negative_controls.tsv)."""
from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from helpers import REPO
from mcrad.config import load_config
from mcrad.controls import KINDS, case_rng, check_config, family_columns
from mcrad.controls.generators import allowed_region, moved_roi, place_roi, sampled, shuffled
from mcrad.controls.summary import flag_controls
from mcrad.errors import ConfigError, McradError


def image_and_rois(shape=(12, 30, 30), seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.normal(40, 20, shape).astype(np.float32)
    z, y, x = np.indices(shape)
    tumour = ((z - 6) ** 2 + (y - 10) ** 2 + (x - 10) ** 2 <= 9).astype(np.uint8)
    ring = (((z - 6) ** 2 + (y - 10) ** 2 + (x - 10) ** 2 <= 25) & (tumour == 0)).astype(np.uint8)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 2.0))
    rois = []
    for a in (tumour, ring):
        r = sitk.GetImageFromArray(a)
        r.CopyInformation(img)
        rois.append(r)
    return img, rois


def test_shuffled_keeps_each_roi_histogram_and_the_rest_of_the_image():
    img, rois = image_and_rois()
    out = shuffled(img, rois, case_rng(1, "shuffled", "C1-001"))
    a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(out)
    masks = [sitk.GetArrayFromImage(r).astype(bool) for r in rois]
    for m in masks:
        assert np.array_equal(np.sort(a[m]), np.sort(b[m]))  # the same values ...
        assert not np.array_equal(a[m], b[m])  # ... elsewhere
    outside = ~(masks[0] | masks[1])
    assert np.array_equal(a[outside], b[outside])
    again = shuffled(img, rois, case_rng(1, "shuffled", "C1-001"))
    assert np.array_equal(sitk.GetArrayFromImage(again), b)  # deterministic per seed, kind and patient
    other = shuffled(img, rois, case_rng(1, "shuffled", "C1-002"))
    assert not np.array_equal(sitk.GetArrayFromImage(other), b)


def test_sampled_draws_from_each_roi_only():
    img, rois = image_and_rois()
    out = sampled(img, rois, case_rng(1, "sampled", "C1-001"))
    a, b = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(out)
    for r in rois:
        m = sitk.GetArrayFromImage(r).astype(bool)
        assert set(b[m]) <= set(a[m])
        assert len(set(b[m])) < m.sum()  # with replacement: some values repeat, some drop out
    outside = ~(sitk.GetArrayFromImage(rois[0]).astype(bool) | sitk.GetArrayFromImage(rois[1]).astype(bool))
    assert np.array_equal(a[outside], b[outside])


def body_image(shape=(20, 40, 40), air_corner=True):
    """A 'patient' of 0 HU with air around a box, the tumour a sphere near one end."""
    arr = np.full(shape, -1000.0, np.float32)
    arr[2:-2, 2:-2, 2:-2] = 20.0
    if air_corner:
        arr[8:12, 28:36, 28:36] = -1000.0  # an airway inside the body: not tissue
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.0, 2.0))
    z, y, x = np.indices(shape)
    tumour = sitk.GetImageFromArray(((z - 10) ** 2 + (y - 10) ** 2 + (x - 10) ** 2 <= 16).astype(np.uint8))
    tumour.CopyInformation(img)
    return img, tumour


@pytest.mark.parametrize("tries", [2000, 1])
def test_randomised_roi_lands_in_tissue_away_from_the_tumour_with_the_same_shape(tries):
    img, tumour = body_image()
    allowed = allowed_region(img, tumour, 3.0)
    placement = place_roi(tumour, allowed, case_rng(3, "randomised_roi", "C1-001"), tries)
    assert placement is not None
    moved = sitk.GetArrayFromImage(moved_roi(tumour, placement)).astype(bool)
    original = sitk.GetArrayFromImage(tumour).astype(bool)
    assert moved.sum() == original.sum()
    assert np.array_equal(np.roll(original, placement.offset_voxels, axis=(0, 1, 2)), moved)  # same shape
    assert allowed[moved].all()  # tissue only, no airway, no air
    assert not (moved & original).any()
    assert sitk.GetArrayFromImage(img)[moved].min() > -500
    assert placement.offset_mm[2] == pytest.approx(2.0 * placement.offset_voxels[0])  # z spacing 2 mm


def test_randomised_roi_exhaustive_search_finds_the_only_place():
    img, tumour = body_image(air_corner=False)
    allowed = np.zeros(sitk.GetArrayFromImage(img).shape, bool)
    allowed[3:12, 25:34, 25:34] = True  # exactly one 9^3 box: the ROI (9 wide) fits at one place in x, y
    placement = place_roi(tumour, allowed, np.random.default_rng(0), tries=1)
    assert placement is not None and placement.candidates in (0, 1)
    assert allowed[sitk.GetArrayFromImage(moved_roi(tumour, placement)).astype(bool)].all()


def test_randomised_roi_reports_no_placement_when_nothing_fits():
    img, tumour = body_image()
    allowed = allowed_region(img, tumour, 30.0)  # 30 mm around the tumour: nothing left of this small body
    assert place_roi(tumour, allowed, np.random.default_rng(0), tries=50) is None


def test_feature_families():
    cols = ["CT_tumour_original_shape_VoxelVolume", "CT_tumour_original_firstorder_Mean",
            "CT_peritumoral_original_shape2D_Area", "T2_tumour_wavelet-LLH_glcm_Contrast"]
    assert family_columns(cols, "all") == cols
    assert family_columns(cols, "no_shape") == ["CT_tumour_original_firstorder_Mean",
                                                "T2_tumour_wavelet-LLH_glcm_Contrast"]
    with pytest.raises(ValueError):
        family_columns(cols, "texture")
    rng = np.random.default_rng(0)
    volume = rng.uniform(1, 10, 30)
    train = pd.DataFrame({"CT_tumour_original_shape_VoxelVolume": volume, cols[1]: rng.normal(size=30),
                          cols[2]: volume, cols[3]: volume ** 2 + rng.normal(0, 0.1, 30)})
    train["CT_tumour_original_firstorder_TotalEnergy"] = volume * 3
    with_energy = [*cols, "CT_tumour_original_firstorder_TotalEnergy"]
    assert family_columns(with_energy, "no_volume", train, 0.5) == ["CT_tumour_original_firstorder_Mean"]
    with pytest.raises(McradError, match="VoxelVolume"):
        family_columns(cols, "no_volume", train.drop(columns=["CT_tumour_original_shape_VoxelVolume"]))


def test_flags_compare_each_control_with_the_real_model_of_its_cell():
    rows = [("none", "all", "C2", 0.80, 0.70, 0.90), ("shuffled", "all", "C2", 0.77, 0.66, 0.88),
            ("randomised_roi", "all", "C2", 0.55, 0.40, 0.70), ("none", "no_shape", "C2", 0.70, 0.60, 0.80),
            ("shuffled", "no_shape", "C2", 0.72, 0.60, 0.84)]
    table = pd.DataFrame([{"control": c, "features": f, "model": "radiomics", "centre": ce, "stage": "external",
                           "n": 40, "auc": v, "lo": lo, "hi": hi} for c, f, ce, v, lo, hi in rows])
    out = flag_controls(table, "auc", 0.05).set_index(["control", "features"])
    assert bool(out.loc[("shuffled", "all"), "near_real"])  # 0.77 >= 0.80 - 0.05
    assert not bool(out.loc[("randomised_roi", "all"), "near_real"])
    assert bool(out.loc[("shuffled", "no_shape"), "near_real"])  # above the real model
    assert not out.loc[("none", "all"), "near_real"]  # the real rows are never flagged
    assert out.loc[("randomised_roi", "all"), "covers_chance"] and not out.loc[("none", "all"), "covers_chance"]
    assert out.loc[("shuffled", "no_shape"), "real"] == 0.70


def demo_cfg(**nc):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["negative_controls"] = {**cfg.get("negative_controls", {}), **nc}
    return load_config(cfg)


def test_config_defaults_and_refusals():
    cfg = load_config(yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text()))
    nc = cfg["negative_controls"]
    assert (nc["activate"], nc["kinds"], nc["margin"], nc["models"]) == (False, list(KINDS), 0.05, ["radiomics"])
    demo = demo_cfg()
    assert demo["negative_controls"]["activate"]  # the demo shows them
    bad = copy.deepcopy(demo)
    bad["deep"]["autoseg"].update(activate=True, use_for_features=True)
    with pytest.raises(ConfigError, match="use_for_features"):
        check_config(bad)


@pytest.mark.e2e
def test_controls_rules_on_the_tiny_study(tiny_study, tmp_path):
    """The controls rules end to end (tiny study, targets only), run in a copy of the built tiny study (conftest's
    tiny_study: the same 48 cases, no robustness filter, which the demo run covers) so that only the controls jobs
    run: every kind x centre x family has a row, the shuffled control's shape features equal the real ones and its
    first-order mean too, a case without a randomised_roi placement is listed with its reason, and the report
    section renders from the table."""
    import shutil

    from helpers import run_study

    shutil.copytree(tiny_study["workdir"] / "results", tmp_path / "results")  # file times kept: nothing reruns
    cfg = copy.deepcopy(tiny_study["config"])
    cfg["negative_controls"] = {"activate": True}
    target = Path("validation/nodal_metastasis/negative_controls.tsv")
    run_study(cfg, tmp_path, targets=[target])
    root = tmp_path / "results" / cfg["study"]["name"]
    table = pd.read_csv(root / target, sep="\t")
    external = table[(table["stage"] == "external") & (table["centre"] != "pooled")]
    cells = external.groupby(["control", "features"]).size()
    assert set(cells.index) == {(c, f) for c in ("none", *KINDS) for f in ("all", "no_shape", "no_volume")}
    assert (cells == 2).all()  # C2 and C3
    assert set(table["model"]) == {"radiomics"}
    assert table.loc[table["control"] != "none", "near_real"].notna().all()
    # The must-show on the tiny study, whose synthetic risk is mostly texture grain (mcrad/synth.py): the
    # controls' CIs cover 0.5 in most external centre x control cells of every family and pooled, the real model's
    # pooled CI does not (per centre, 16 cases are too few for that).
    covers = (external["lo"] <= 0.5) & (0.5 <= external["hi"])
    by_family = covers[external["control"] != "none"].groupby(external["features"]).mean()
    assert (by_family > 0.5).all(), by_family
    pooled = table[(table["stage"] == "external") & (table["centre"] == "pooled")].set_index(["control", "features"])
    assert (pooled.loc[list(KINDS), "lo"] <= 0.5).all() and (pooled.loc[list(KINDS), "hi"] >= 0.5).all()
    assert (pooled.loc["none", "lo"] > 0.5).all(), pooled.loc["none"]

    real = pd.read_csv(root / "features/raw/C1.tsv", sep="\t").set_index("patient_id")
    shuf = pd.read_csv(root / "controls/shuffled/features/raw/C1.tsv", sep="\t").set_index("patient_id")
    assert list(shuf.index) == list(real.index)  # every case got its shuffled control
    shape = [c for c in real.columns if "_shape_" in c]
    assert np.allclose(shuf[shape], real[shape], equal_nan=True)
    mean = "CT_tumour_original_firstorder_Mean"
    assert np.allclose(shuf[mean], real[mean])
    glcm = [c for c in real.columns if c.startswith("CT_tumour_original_glcm_")]
    assert not np.allclose(shuf[glcm], real[glcm], equal_nan=True)

    ctrl = root / "controls" / "randomised_roi"
    moved = pd.concat([pd.read_csv(f, sep="\t") for f in (ctrl / "qc" / "quarantine").glob("*.tsv")])
    placed = pd.concat([pd.read_csv(f, sep="\t") for f in (ctrl / "features" / "raw").glob("*.tsv")])
    assert len(moved) + len(placed) == 48  # nothing silently dropped
    assert moved["message"].str.contains("no place in the image's non-tumour tissue").all()
    assert len(placed) > 0

    # the report section, from the declared files only
    from mcrad.endpoints import endpoints
    from mcrad.report.controls import controls_section
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.page import Report

    full = load_config({**cfg, "study": {**cfg["study"], "results": str(tmp_path / "results")}})
    declared = [root / target, *(root / "controls" / k / "qc" / "quarantine" / f"C{i}.tsv" for k in KINDS
                                 for i in (1, 2, 3))]
    rep = Report(tmp_path / "figures")
    controls_section(rep, full, ReportInputs(root, declared), endpoints(full))
    (anchor, title, body), = rep.sections
    assert anchor == "negative-controls" and "<img" in body and "covers 0.5" in body
    assert "no place in the image" in body  # the randomised_roi cases without a placement, with the reason
    assert (tmp_path / "figures" / "negative_controls_nodal_metastasis.png").is_file()

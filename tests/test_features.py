import json
import re

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import STUDY, write_pair
from mcrad.errors import McradError
from mcrad.features.extract import TEXTURE_CLASSES, extract, features_shard, gather, make_extractor
from mcrad.features.robustness import PERTURBATIONS, perturbed_rois, robustness_study, robustness_table
from mcrad.paths import Paths
from mcrad.stats import icc_31

PARAMS = "config/radiomics/ct_default.yaml"


@pytest.fixture(scope="module")
def extractor():
    return make_extractor(PARAMS)


def test_names_follow_the_scheme_and_values_match_numpy(tmp_path, extractor):
    ip, mp = write_pair(tmp_path, "a", radius_vox=6)
    image, mask = sitk.ReadImage(str(ip), sitk.sitkFloat32), sitk.ReadImage(str(mp))
    values = extract(extractor, image, mask, "CT_tumour")
    classes = {k.split("_")[3] for k in values}
    assert classes == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    assert all(k.startswith("CT_tumour_original_") for k in values)
    roi = sitk.GetArrayFromImage(image)[sitk.GetArrayFromImage(mask) > 0]
    assert values["CT_tumour_original_firstorder_Mean"] == pytest.approx(roi.mean(), rel=1e-9)
    assert values["CT_tumour_original_firstorder_Maximum"] == pytest.approx(roi.max())
    assert values["CT_tumour_original_shape_VoxelVolume"] == pytest.approx(roi.size * 2.0)


def test_missing_parameter_file_is_a_clear_error():
    with pytest.raises(McradError, match="parameter file nope.yaml not found"):
        make_extractor("nope.yaml")


def _case(tmp_path, pid, radius):
    ip, mp = write_pair(tmp_path / "src", pid, radius_vox=radius)
    case = Paths(tmp_path / "out").case_dir("A", pid)
    (case / "preprocess").mkdir(parents=True)
    (case / "segment").mkdir(parents=True)
    sitk.WriteImage(sitk.ReadImage(str(ip), sitk.sitkFloat32), str(case / "preprocess/image.nii.gz"))
    sitk.WriteImage(sitk.ReadImage(str(mp)), str(case / "segment/roi-tumour.nii.gz"))


def test_shard_gives_nan_and_a_flag_for_a_roi_too_small_or_flat_and_quarantines_an_unreadable_case(tmp_path):
    _case(tmp_path, "good", 5)
    _case(tmp_path, "tiny", 0)  # a one-voxel ROI
    _case(tmp_path, "flat", 5)
    flat = Paths(tmp_path / "out").case_dir("A", "flat") / "preprocess/image.nii.gz"
    image = sitk.ReadImage(str(flat))
    sitk.WriteImage(image * 0 + 40, str(flat))  # one intensity everywhere
    _case(tmp_path, "broken", 5)
    (Paths(tmp_path / "out").case_dir("A", "broken") / "segment/roi-tumour.nii.gz").write_bytes(b"not an image")
    rows = pd.DataFrame({"patient_id": ["good", "tiny", "flat", "broken"], "centre": "A", "status": "ok",
                         "failed_stage": "", "message": ""})
    opts = {"params": PARAMS, "sequence": "CT", "sequence_params": {}}
    out = features_shard(rows, opts, {"peritumoral": {"activate": False}, "min_voxels": 8, "min_extent_voxels": 2},
                       Paths(tmp_path / "out"), False)
    ok, quarantined, flags = gather([out])
    assert list(ok["patient_id"]) == ["good", "tiny", "flat"]
    assert list(quarantined["patient_id"]) == ["broken"]
    assert "patient broken" in quarantined["message"][0] and "roi-tumour" in quarantined["message"][0]
    values = ok.set_index("patient_id").drop(columns="centre")
    assert np.isfinite(values.loc["good"]).all()
    assert values.loc["tiny"].isna().all()
    texture = [c for c in values.columns if c.split("_")[3] in TEXTURE_CLASSES]
    assert values.loc["flat", texture].isna().all()
    assert np.isfinite(values.loc["flat"].drop(texture)).all()  # shape and first order still defined
    assert values.loc["flat", "CT_tumour_original_firstorder_Mean"] == 40
    got = {(r.patient_id, r.roi, r.image_type, r.feature_class) for r in flags.itertuples()}
    assert got == {("tiny", "tumour", "all", "all"), *(("flat", "tumour", "original", c) for c in TEXTURE_CLASSES)}
    # the ROI gate (segment.min_voxels) answers first; without it, pyradiomics' own check does
    assert flags.loc[flags["patient_id"] == "tiny", "problem"].item() == \
        "ROI has 1 voxel(s), fewer than segment.min_voxels = 8"
    ungated = features_shard(rows.iloc[[1]], opts, {"peritumoral": {"activate": False}, "min_voxels": 1,
                                                    "min_extent_voxels": 1}, Paths(tmp_path / "out"), False)
    assert json.loads(ungated.loc[0, "qc_flags"])[0]["problem"].startswith("mask only contains 1 segmented")


def test_extract_cli_writes_one_row_and_flags(tmp_path):
    from mcrad.cli import main

    ip, mp = write_pair(tmp_path, "a", radius_vox=4)
    assert main(["extract", "--image", str(ip), "--mask", str(mp), "--params", PARAMS, "--prefix", "CT_tumour",
                 "--out", str(tmp_path / "f.csv")]) == 0
    df = pd.read_csv(tmp_path / "f.csv")
    assert len(df) == 1 and df["qc_flags"].item() == "[]"
    assert df["CT_tumour_original_shape_VoxelVolume"].item() > 0
    assert main(["extract", "--image", str(tmp_path / "no.nii.gz"), "--mask", str(mp), "--params", PARAMS,
                 "--out", str(tmp_path / "g.csv")]) == 2


@pytest.mark.parametrize("name", ["ct_default", "mr_default", "ibsi"])
def test_shipped_parameter_files_are_valid_pyradiomics(name):
    ex = make_extractor(f"config/radiomics/{name}.yaml")
    assert ex.enabledFeatures


def test_icc_31_reproduces_shrout_fleiss_1979():
    # Shrout & Fleiss (1979) Table 2: 6 targets x 4 judges; published ICC(3,1) = .71, and R psych::ICC's exact
    # F-based interval for it, [.34, .95]
    Y = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)
    icc, low, high = icc_31(Y)
    assert (round(icc, 2), round(low, 2), round(high, 2)) == (0.71, 0.34, 0.95)
    assert icc_31(Y + 100)[0] == pytest.approx(icc)  # consistency ICC: a rater offset changes nothing
    assert np.isnan(icc_31(np.ones((5, 3)))[0])  # no variation: undefined, never "perfectly robust"


def test_perturbations_change_the_roi_as_described_and_are_seeded():
    z, y, x = np.indices((20, 30, 30))
    sphere = ((z - 10) ** 2 + (y - 15) ** 2 + ((x - 15) / 1.5) ** 2 <= 36).astype(np.uint8)
    roi = sitk.GetImageFromArray(sphere)
    roi.SetSpacing((1.0, 1.0, 2.0))
    variants = perturbed_rois(roi, list(PERTURBATIONS), seed=3)
    assert set(variants) == {"erode", "dilate", "translate_x", "translate_y", "rotate_+5", "rotate_-5",
                             "randomise_1", "randomise_2"}
    n = {k: int(sitk.GetArrayViewFromImage(v).sum()) for k, v in variants.items()}
    assert n["erode"] < sphere.sum() < n["dilate"]
    moved = sitk.GetArrayFromImage(variants["translate_x"])
    assert np.array_equal(moved[:, :, :-1], sphere[:, :, 1:])  # one voxel along x
    for k in ("rotate_+5", "rotate_-5", "randomise_1", "randomise_2"):
        v = sitk.GetArrayFromImage(variants[k])
        dice = 2 * (v & sphere).sum() / (v.sum() + sphere.sum())
        assert 0.8 < dice < 1.0, k  # a plausible re-contouring, not the same ROI and not a different one
    again = perturbed_rois(roi, ["randomise"], seed=3)["randomise_1"]
    assert np.array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(variants["randomise_1"]))


def test_robustness_study_keeps_stable_features_and_drops_contour_sensitive_ones(tmp_path):
    pids = [f"p{i}" for i in range(5)]
    for i, pid in enumerate(pids):
        _case(tmp_path, pid, 3 + i)
    features = pd.DataFrame({"patient_id": pids, "centre": "A", "CT_tumour_original_shape_VoxelVolume": 1.0,
                             "CT_tumour_original_firstorder_Minimum": 1.0})
    opts = {"params": PARAMS, "sequence": "CT", "sequence_params": {},
            "robustness": {"perturbations": ["erode", "dilate", "randomise"], "threshold": 0.75, "cases": 4}}
    seg = {"peritumoral": {"activate": False}, "min_voxels": 8, "min_extent_voxels": 2}
    table = robustness_study(features, opts, seg, Paths(tmp_path / "out"), 1)
    assert list(table.columns) == ["feature", "icc", "ci95_low", "ci95_high", "cases", "kept"]
    row = table.set_index("feature")
    # tumour radii 3..7 voxels: volume differs far more between cases than between contours of one case
    assert row.loc["CT_tumour_original_shape_VoxelVolume", "icc"] > 0.8
    assert row.loc["CT_tumour_original_shape_VoxelVolume", "kept"]
    # the minimum of noise inside a grown/shrunk ROI is contour noise, not a property of the case
    assert row.loc["CT_tumour_original_firstorder_Minimum", "icc"] < 0.75
    assert not row.loc["CT_tumour_original_firstorder_Minimum", "kept"]
    assert (row["ci95_low"] <= row["icc"]).all() and (row["icc"] <= row["ci95_high"]).all()
    assert (row["cases"] == 4).all()


def test_harmonise_excludes_features_nan_in_training_and_lists_them():
    from mcrad.harmonise import split_constant

    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, np.nan, 2.0], "c": [5.0, 5.0, 5.0]})
    keep, excluded = split_constant(X)
    assert keep == ["a"]
    reasons = dict(zip(excluded["feature"], excluded["reason"], strict=True))
    assert set(reasons) == {"b", "c"} and reasons["b"].startswith("NaN for 1 training case")


def test_report_robustness_section_counts_kept_and_dropped(tmp_path):
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.page import Report
    from mcrad.report.study import robustness_section

    paths = Paths(tmp_path)
    paths.robustness.parent.mkdir(parents=True)
    pd.DataFrame({"feature": ["CT_tumour_original_glcm_Id", "CT_tumour_original_shape_X", "CT_tumour_original_glcm_Y"],
                  "icc": [0.95, 0.5, np.nan], "ci95_low": 0.0, "ci95_high": 1.0, "kept": [True, False, False]}
                 ).to_csv(paths.robustness, sep="\t", index=False)
    rep = Report(None)
    cfg = {"features": {"robustness": {"activate": True, "threshold": 0.75, "perturbations": ["erode"], "cases": 20}}}
    robustness_section(rep, cfg, ReportInputs(tmp_path, [paths.robustness]))
    html = rep.sections[0][2]
    assert "1 of 3 features have ICC &ge; 0.75 and are kept; 2 are dropped" in html
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in html.split("<tr")[2:]]
    header = re.findall(r"<th>([^<]*)</th>", html)
    assert header == ["class", "&lt; 0.5", "0.5-0.75", "0.75-0.9", "&gt;= 0.9", "undefined", "kept", "dropped"]
    assert cells == [["glcm", "0", "0", "0", "1", "1", "1", "1"], ["shape", "0", "1", "0", "0", "0", "0", "1"]]


def test_robustness_table_leaves_out_cases_a_perturbation_destroyed():
    rng = np.random.default_rng(0)
    per_case = {f"p{i}": pd.DataFrame({"stable": 10.0 * i + rng.normal(0, 0.1, 4), "noisy": rng.normal(0, 1, 4)},
                                      index=["original", "erode", "dilate", "rotate_+5"]) for i in range(5)}
    per_case["p0"].loc["erode"] = np.nan  # erosion emptied p0's ROI
    t = robustness_table(per_case, 0.75).set_index("feature")
    assert t.loc["stable", "cases"] == 4 and t.loc["stable", "kept"] and t.loc["stable", "icc"] > 0.99
    assert not t.loc["noisy", "kept"]
    per_case = {k: v.iloc[:, :1].assign(stable=np.nan) if k != "p4" else v for k, v in per_case.items()}
    assert np.isnan(robustness_table(per_case, 0.75).set_index("feature").loc["stable", "icc"])  # < 3 cases


def test_shard_with_ibsi_options_resegments_bins_and_adds_the_ibsi_class(tmp_path):
    from mcrad.config import load_config

    _case(tmp_path, "good", 5)
    rows = pd.DataFrame({"patient_id": ["good"], "centre": "A", "status": "ok", "failed_stage": "", "message": ""})
    base = load_config({**STUDY, "features": {"params": PARAMS}})["features"]
    ibsi = {**base, "resegment": {"range": [40, 100], "outlier_sd": 3}, "discretisation": "ibsi",
            "ibsi_extra": {"activate": True}}
    seg = {"peritumoral": {"activate": False}, "min_voxels": 8, "min_extent_voxels": 2}
    plain = features_shard(rows, base, seg, Paths(tmp_path / "out"), True).iloc[0]
    out = features_shard(rows, ibsi, seg, Paths(tmp_path / "out"), True).iloc[0]
    assert not any("_ibsi_" in c for c in plain.index)
    extra = [c for c in out.index if c.startswith("CT_tumour_original_ibsi_")]
    assert {"CT_tumour_original_ibsi_stat_cov", "CT_tumour_original_ibsi_loc_peak_glob",
            "CT_tumour_original_ibsi_morph_comp_2"} <= set(extra)
    assert float(plain["CT_tumour_original_firstorder_Minimum"]) < 40
    assert float(out["CT_tumour_original_firstorder_Minimum"]) >= 40  # re-segmented intensity ROI
    assert float(out["CT_tumour_original_firstorder_Maximum"]) <= 100
    # shape keeps the whole ROI (IBSI morphological mask)
    assert out["CT_tumour_original_shape_VoxelVolume"] == plain["CT_tumour_original_shape_VoxelVolume"]

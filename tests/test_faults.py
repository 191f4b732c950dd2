"""One bad case never stops a study: the per-case error boundary, the early checks (ingest decodes and checks
geometry, segment gates ROIs, features turn odd values into flagged NaN, the sheet check compares clinical
levels), a property test over small masks, and a fault-injection run of the whole study."""
from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from faults import FAULTS, inject
from helpers import REPO, STUDY, assert_identical, root, run_killed_and_resumed, training_artefacts, write_pair
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mcrad.cases import failure_line, failure_summary, reason_of, run_stage
from mcrad.cohort import centre_table, predictors_table, validate_sheet
from mcrad.config import load_config
from mcrad.errors import CaseError, CohortError
from mcrad.files import STATUS_COLUMNS
from mcrad.ingest import check_compressed, check_geometry, check_image, ingest_shard
from mcrad.paths import Paths

CFG = load_config({"study": {"name": "t"}, "cohort": {"clinical": []}, "design": {"train": ["A"], "external": ["B"]},
                   "endpoints": [{"name": "y", "column": "y"}]})
PARAMS = str(REPO / "config" / "radiomics" / "ct_default.yaml")


def rows(*ids: str, centre: str = "A") -> pd.DataFrame:
    return pd.DataFrame([{"patient_id": i, "centre": centre, "status": "ok", "failed_stage": "", "message": ""}
                         for i in ids])[STATUS_COLUMNS]


# ---- the error boundary ----

def test_an_unexpected_exception_quarantines_only_its_case(tmp_path, capsys):
    def work(row):
        if row["patient_id"] == "bad":
            return complex(1, 1) + "x"  # a TypeError no check foresaw
        return {"value": 1}

    out = run_stage(rows("a", "bad", "c"), "features", work, lambda r: [], Paths(tmp_path), __file__, {}, False)
    assert list(out["status"]) == ["ok", "quarantined", "ok"]
    message = out.loc[1, "message"]
    assert message.startswith("patient bad") and "features failed unexpectedly (TypeError" in message
    assert "traceback is in the job log" in message and out.loc[1, "failed_stage"] == "features"
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    with pytest.raises(TypeError):  # study.strict: fail fast
        run_stage(rows("bad"), "features", work, lambda r: [], Paths(tmp_path), __file__, {}, True)


def test_a_case_whose_inputs_vanished_is_quarantined_with_its_files(tmp_path):
    def inputs(row):
        return [tmp_path / f"{row['patient_id']}.nii.gz"]

    (tmp_path / "a.nii.gz").write_bytes(b"x")
    out = run_stage(rows("a", "gone"), "segment", lambda r: {"v": 1}, inputs, Paths(tmp_path), __file__, {}, False)
    assert list(out["status"]) == ["ok", "quarantined"]
    assert "FileNotFoundError" in out.loc[1, "message"]


def test_failure_summary_counts_by_centre_stage_and_reason():
    q = pd.DataFrame({"patient_id": ["a", "b", "c"], "centre": ["C2", "C2", "C3"],
                      "failed_stage": ["ingest", "ingest", "segment"],
                      "message": ["patient a (file: /x/a.nii.gz): mask is empty (no voxel > 0). Fix: check it",
                                  "patient b (file: /x/b.nii.gz): mask is empty (no voxel > 0). Fix: check it",
                                  "patient c: tumour ROI is empty after resampling. Fix: check"]})
    assert reason_of(q.loc[0, "message"]) == "mask is empty (no voxel > 0)"
    summary = failure_summary(q)
    assert summary.to_dict("list") == {
        "centre": ["C2", "C3"], "stage": ["ingest", "segment"], "cases": [2, 1],
        "reason": ["mask is empty (no voxel > 0)", "tumour ROI is empty after resampling"]}
    assert failure_line(q) == ("mcrad: 3 case(s) quarantined (C2 ingest 2, C3 segment 1); reasons in "
                               "qc/quarantine.tsv and the report")
    assert failure_line(q.iloc[:0]) == "mcrad: no case was quarantined"


# ---- early checks ----

def test_a_truncated_gzip_is_refused_though_its_header_reads(tmp_path):
    ip, _ = write_pair(tmp_path, "p")
    data = ip.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(cut))
    reader.ReadImageInformation()  # the header alone reads: what let such files through before
    with pytest.raises(CaseError, match=r"patient p \(file: .*cut.nii.gz\): image file is truncated or corrupt"):
        check_compressed(cut, "p", "image")
    check_compressed(ip, "p", "image")  # an intact file passes
    bad_crc = bytearray(gzip.compress(b"x" * 1000))
    bad_crc[-6] ^= 0xFF
    (tmp_path / "crc.nii.gz").write_bytes(bytes(bad_crc))
    with pytest.raises(CaseError, match="truncated or corrupt"):
        check_compressed(tmp_path / "crc.nii.gz", "p", "mask")


def test_geometry_gates_refuse_what_no_scanner_makes_and_warn_on_flipped_axes():
    img = sitk.Image([10, 10, 10], sitk.sitkInt16)
    assert check_geometry(img, "p", Path("i"), 2000) == []
    img.SetSpacing([0.001, 1, 1])
    with pytest.raises(CaseError, match=r"spacing \(0.001, 1.0, 1.0\) mm is outside"):
        check_geometry(img, "p", Path("i"), 2000)
    img.SetSpacing([30, 30, 30])
    with pytest.raises(CaseError, match=r"extent \(300, 300, 300\) mm exceeds ingest.max_extent_mm = 200"):
        check_geometry(img, "p", Path("i"), 200)
    img.SetSpacing([1, 1, 1])
    img.SetDirection([-1, 0, 0, 0, 1, 0, 0, 0, 1])
    assert "left-handed" in check_geometry(img, "p", Path("i"), 2000)[0]
    img.SetDirection([1, 0.5, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(CaseError, match="not orthonormal"):
        check_image(img, "p", Path("i"))


@pytest.mark.parametrize("label, expected", [(None, "label(s) [2, 3]; all non-zero"), (3, "label 3 is the ROI")])
def test_mask_labels_follow_the_documented_rule(tmp_path, label, expected):
    ip, mp = write_pair(tmp_path, "p")
    m = sitk.ReadImage(str(mp))
    arr = sitk.GetArrayFromImage(m) * 2
    mid = arr[arr.shape[0] // 2]
    mid[mid == 2] = 3  # one slice labelled 3
    m2 = sitk.GetImageFromArray(arr.astype(np.uint8))
    m2.CopyInformation(m)
    sitk.WriteImage(m2, str(tmp_path / "m2.nii.gz"))
    sheet = pd.DataFrame([{"patient_id": "p", "centre": "A", "image": str(ip), "mask": str(tmp_path / "m2.nii.gz")}])
    opts = {**CFG["ingest"], "mask_label": label, "qc_png": False}
    out = ingest_shard(sheet, tmp_path / "s.tsv", ["p"], Paths(tmp_path / "out"), False, opts)
    assert out.loc[0, "status"] == "ok" and expected in out.loc[0, "warnings"]
    roi = sitk.GetArrayFromImage(sitk.ReadImage(str(Paths(tmp_path / "out").case("A", "p").ingest_mask)))
    assert roi.sum() == ((arr == 3).sum() if label == 3 else (arr > 0).sum())
    opts["mask_label"] = 5
    out = ingest_shard(sheet, tmp_path / "s.tsv", ["p"], Paths(tmp_path / "out5"), False, opts)
    assert "no voxel labelled 5" in out.loc[0, "message"]


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_each_fault_gets_what_it_is_documented_to_get(tmp_path, kind):
    """The faults of the end-to-end test, one case each, through ingest, preprocess, segment and features."""
    from mcrad.features.extract import features_shard
    from mcrad.preprocess import preprocess_shard
    from mcrad.segment import segment_shard

    ip, mp = write_pair(tmp_path / "src", "p", shape=(20, 40, 40), spacing=(1.0, 1.0, 2.0), radius_vox=6, value=80)
    image, mask = inject(kind, ip, mp, tmp_path / "fault")
    sheet = pd.DataFrame([{"patient_id": "case01", "centre": "A", "image": str(image), "mask": str(mask)}])
    paths = Paths(tmp_path / "out")
    out = ingest_shard(sheet, tmp_path / "s.tsv", ["case01"], paths, False, CFG["ingest"])
    warnings = str(out.loc[0].get("warnings", ""))
    for fn in (lambda r: preprocess_shard(r, CFG["preprocess"], paths, False),
               lambda r: segment_shard(r, CFG["segment"], paths, False),
               lambda r: features_shard(r, {**CFG["features"], "params": PARAMS}, CFG["segment"], paths, False)):
        out = fn(out[STATUS_COLUMNS])
    expected = FAULTS[kind][1]
    row = out.iloc[0]
    if expected.outcome == "quarantined":
        assert row["status"] == "quarantined" and expected.matches(row["failed_stage"], row["message"]), row.to_dict()
        assert row["message"].startswith("patient case01")
        assert "Fix:" in row["message"]
    else:
        assert row["status"] == "ok", row.to_dict()
        assert expected.phrase in warnings
        assert np.isfinite(row["CT_tumour_original_shape_VoxelVolume"])


def test_a_derived_roi_below_the_gate_gives_flagged_nan_not_a_quarantine(tmp_path):
    from mcrad.features.extract import features_case, make_extractors
    from mcrad.segment import segment_case

    ip, mp = write_pair(tmp_path / "src", "p", shape=(20, 30, 30), spacing=(1.0, 1.0, 1.0), radius_vox=4)
    paths = Paths(tmp_path / "out")
    case = paths.case("A", "p")
    case.preprocess_dir.mkdir(parents=True)
    flat = sitk.ReadImage(str(ip))
    air = sitk.Cast(flat * 0 - 1000, flat.GetPixelID())  # all air around the tumour: the ring keeps no voxel
    tumour = sitk.ReadImage(str(mp))
    air = sitk.Mask(air, tumour == 0, outsideValue=60)
    sitk.WriteImage(air, str(case.preprocess_image))
    sitk.WriteImage(tumour, str(case.preprocess_mask))
    row = rows("p").iloc[0]
    result = segment_case(row, CFG["segment"], paths)
    assert result["roi_peritumoral_voxels"] == 0 and result["roi_tumour_voxels"] > 100
    fopts = {**CFG["features"], "params": PARAMS}
    values = features_case(row, make_extractors(fopts, []), fopts, CFG["segment"], paths)
    flags = json.loads(values["qc_flags"])
    assert {"roi": "peritumoral", "prefix": "CT_peritumoral", "image_type": "all", "feature_class": "all",
            "problem": "ROI is empty"} in flags
    assert not any(k.startswith("CT_peritumoral_") for k in values) and "CT_tumour_original_shape_VoxelVolume" in values


def test_complex_and_infinite_values_become_flagged_nan():
    from mcrad.features.extract import _number

    assert np.isnan(_number(np.complex128(1 + 2j))) and np.isnan(_number(np.inf)) and _number(np.float32(2.5)) == 2.5
    assert np.isnan(_number(np.array([1.0, 2.0])))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(voxels=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=50),
       spacing=st.sampled_from([(1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (2.0, 2.0, 1.0)]))
@example(voxels=[(z, y, 9) for z in range(8) for y in range(0, 10, 3)], spacing=(1.0, 1.0, 1.0))  # thin, at the edge
@example(voxels=[(1, 1, 1), (6, 8, 8), (1, 2, 1), (6, 8, 7), (2, 1, 1), (5, 8, 8), (1, 1, 2), (6, 7, 8)],
         spacing=(0.5, 0.5, 3.0))  # two disconnected specks
def test_any_small_mask_gives_values_or_flagged_nan_never_an_exception(tmp_path_factory, voxels, spacing):
    """Random small masks (1-50 voxels: thin, disconnected, at the image edge) through segment and features: the
    case is quarantined by the ROI gate with a message, or comes through with numbers or NaN flagged."""
    from mcrad.features.extract import features_shard
    from mcrad.segment import segment_shard

    tmp = tmp_path_factory.mktemp("mask")
    rng = np.random.default_rng(len(voxels))
    arr = np.zeros((8, 10, 10), np.uint8)
    arr[tuple(np.array(voxels).T)] = 1
    image = sitk.GetImageFromArray(rng.normal(40, 20, arr.shape).astype(np.int16))
    image.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(image)
    paths = Paths(tmp)
    case = paths.case("A", "p")
    case.preprocess_dir.mkdir(parents=True)
    sitk.WriteImage(image, str(case.preprocess_image))
    sitk.WriteImage(mask, str(case.preprocess_mask))
    strict = True  # an exception other than a quarantine would surface here
    seg = segment_shard(rows("p"), CFG["segment"], paths, strict=False)
    if seg.loc[0, "status"] == "quarantined":
        assert "segment.min_" in seg.loc[0, "message"]
        return
    out = features_shard(seg[STATUS_COLUMNS], {**CFG["features"], "params": PARAMS}, CFG["segment"], paths, strict)
    values = out.drop(columns=[*STATUS_COLUMNS, "qc_flags"]).iloc[0].astype(float)
    flags = json.loads(out.loc[0, "qc_flags"])
    nan = values[values.isna()].index
    flagged = {(f["prefix"], f["feature_class"]) for f in flags}
    for name in nan:  # every NaN is explained by a flag on its ROI and class (or on the whole ROI)
        prefix, cls = "_".join(name.split("_")[:2]), name.split("_")[3]
        assert (prefix, cls) in flagged or (prefix, "all") in flagged, name


# ---- the sheet ----

def _sheet(**extra) -> tuple[pd.DataFrame, dict]:
    cfg = load_config({"study": {"name": "t"}, "design": {"train": ["A"], "external": ["B"], "prospective": ["P"]},
                       "cohort": {"clinical": [{"name": "sex", "type": "categorical", **extra},
                                               {"name": "age", "type": "numeric", "missing": ["-99"]}]},
                       "endpoints": [{"name": "y", "column": "y"},
                                     {"name": "os", "type": "survival", "column": "ev", "time": "t"}]})
    df = pd.DataFrame({"patient_id": ["a1", "a2", "b1", "b2", "p1"], "centre": ["A", "A", "B", "B", "P"],
                       "image": "i", "mask": "m", "sex": ["M", "F", "M", "X?", "unknown"],
                       "age": ["60", "-99", "70", "55", "61"], "y": ["0", "1", "1", "0", "1"],
                       "ev": ["0", "1", "1", "0", "0"], "t": ["3", "4", "5", "6", "7"]})
    return df, cfg


def test_an_external_level_never_seen_in_training_is_a_sheet_error_naming_it():
    df, cfg = _sheet()
    with pytest.raises(CohortError) as err:
        validate_sheet(df, cfg, "s.tsv", check_files=False)
    text = str(err.value)
    assert "2 problem(s)" in text
    assert "line 5 (patient b2), column 'sex': level 'X?' never occurs in the training centre(s), whose levels " \
           "are ['F', 'M']" in text
    assert "line 6 (patient p1), column 'sex': level 'unknown'" in text


def test_missing_codes_and_levels_say_how_to_read_a_column():
    df, cfg = _sheet(missing=["X?", "unknown"])
    validate_sheet(df, cfg, "s.tsv", check_files=False)  # the codes are missing values, -99 a missing age
    table = centre_table(df, cfg, "B")
    assert table["sex"].tolist() == ["M", ""] and predictors_table(df, cfg, "A")["age"].tolist() == ["60", ""]
    df, cfg = _sheet(levels=["M", "F"], missing=["unknown"])
    with pytest.raises(CohortError, match=r"patient b2\), column 'sex': level 'X\?' is not one of cohort.clinical "
                                          r"levels \['M', 'F'\]"):
        validate_sheet(df, cfg, "s.tsv", check_files=False)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.assign(t=d["t"].where(d.index != 1, "-2")), r"line 3 \(patient a2\), column 't': follow-up time "
                                                             r"'-2' is not a number >= 0"),
    (lambda d: d.assign(ev=d["ev"].where(d.index != 2, "yes")), r"line 4 \(patient b1\), column 'ev': label 'yes' "
                                                                r"is not 0 or 1"),
    (lambda d: d.assign(patient_id=d["patient_id"].where(d.index != 3, "a1")),
     r"lines 2, 5, column 'patient_id': 'a1' appears more than once"),
    (lambda d: d.assign(age=d["age"].where(d.index != 0, "sixty")), r"line 2 \(patient a1\), column 'age': "
                                                                    r"'sixty' is not a number"),
])
def test_each_sheet_fault_is_reported_with_line_patient_and_column(edit, expected):
    df, cfg = _sheet(missing=["X?", "unknown"])
    with pytest.raises(CohortError, match=expected):
        validate_sheet(edit(df), cfg, "s.tsv", check_files=False)


# ---- the whole study ----

@pytest.mark.e2e
def test_injected_faults_quarantine_their_cases_and_nothing_else_in_a_run_killed_and_resumed(study, tmp_path):
    """Every fault of tests/faults.py in a random external case of the session study, given as a user's sheet (a
    path with spaces) whose external labels are shuffled too, run from an empty folder, killed part-way and resumed:
    the resume redoes only what is missing; the study completes with a report; each injected case is quarantined
    with its patient id (or, for an accepted fault, processed with its warning); every other case's features equal
    the clean run's (to 1e-12); and stage 1 is byte-identical to the session study's: a second run, killed and
    resumed, reproduces it, and neither external faults nor external labels reach training."""
    sheet = pd.read_csv(study / "synth/cohort.tsv", sep="\t", dtype=str, keep_default_na=False)
    for col in ("image", "mask"):
        sheet[col] = [str(study / "synth" / p) for p in sheet[col]]
    rng = np.random.default_rng(14)
    external = sheet.index[sheet["centre"] != "C1"]
    for col in ("nodal_metastasis", "grade", "os_event"):
        sheet.loc[external, col] = rng.permutation(sheet.loc[external, col].to_numpy())
    chosen = dict(zip(sorted(FAULTS), rng.choice(external, len(FAULTS), replace=False), strict=True))
    for kind, i in chosen.items():
        image, mask = inject(kind, Path(sheet.at[i, "image"]), Path(sheet.at[i, "mask"]),
                             tmp_path / "faults" / sheet.at[i, "patient_id"])
        sheet.loc[i, ["image", "mask"]] = [str(image), str(mask)]
    sheet.to_csv(tmp_path / "sheet with space.tsv", sep="\t", index=False)
    cfg = copy.deepcopy(STUDY)
    cfg["cohort"]["sheet"] = str(tmp_path / "sheet with space.tsv")
    proc, left, everything = run_killed_and_resumed(cfg, tmp_path)
    assert 0 < left < everything, "finished jobs are not redone"
    r = root(tmp_path)
    assert (r / "report" / "index.html").is_file()
    quarantine = pd.read_csv(r / "qc/quarantine.tsv", sep="\t", dtype=str).set_index("patient_id")
    qc = pd.read_csv(r / "qc/ingest.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("patient_id")
    raw = {c: pd.read_csv(r / f"features/raw/{c}.tsv", sep="\t", dtype=str, keep_default_na=False)
           .set_index("patient_id") for c in ("C2", "C3")}
    clean = {c: pd.read_csv(study / f"features/raw/{c}.tsv", sep="\t", dtype=str, keep_default_na=False)
             .set_index("patient_id") for c in ("C2", "C3")}
    for kind, i in chosen.items():
        pid, centre, expected = sheet.at[i, "patient_id"], sheet.at[i, "centre"], FAULTS[kind][1]
        if expected.outcome == "quarantined":
            assert pid in quarantine.index, f"{kind}: {pid} not quarantined"
            message = quarantine.at[pid, "message"]
            assert expected.matches(quarantine.at[pid, "failed_stage"], message), (kind, message)
            assert message.startswith(f"patient {pid}")
        else:
            assert pid in raw[centre].index, f"{kind}: accepted fault {pid} has no features"
            assert expected.phrase in qc.at[pid, "warnings"], (kind, qc.at[pid, "warnings"])
    assert set(quarantine.index) == {sheet.at[i, "patient_id"] for k, i in chosen.items()
                                     if FAULTS[k][1].outcome == "quarantined"}, "nothing else is quarantined"
    injected = {sheet.at[i, "patient_id"] for i in chosen.values()}
    for c in ("C2", "C3"):
        others = clean[c].index.difference(list(injected))
        assert set(others) <= set(raw[c].index)
        # equal to the last bits BLAS and SIMD alignment leave: the same case's arithmetic in another shard job
        numbers = [col for col in clean[c].columns if col != "centre"]
        pd.testing.assert_frame_equal(raw[c].loc[others, numbers].astype(float),
                                      clean[c].loc[others, numbers].astype(float), rtol=1e-12, atol=0)
    assert_identical(study, r, training_artefacts(study))
    html = (r / "report/index.html").read_text()
    assert "quarantined (left out of the analysis), per centre, stage and reason" in html
    assert "case(s) quarantined (C2" in proc.stdout + proc.stderr
    assert not list(REPO.glob("PWNED*")) and not list(tmp_path.rglob("PWNED*")), "a file name was executed"


def test_an_image_file_listed_for_two_patients_is_warned_about(tmp_path, capsys):
    from mcrad.files import read_table, write_table
    from mcrad.ingest import qc_ingest_stage

    shard = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "centre": "A", "status": ["ok", "ok", "ok", "error"],
                          "failed_stage": "", "message": "", "warnings": ["", "mask has label(s) [2]", "", ""],
                          "image_sha256": ["h1", "h1", "h2", "h1"]})
    write_table(shard, tmp_path / "s.tsv")
    qc_ingest_stage([tmp_path / "s.tsv"], tmp_path / "qc.tsv")
    qc = read_table(tmp_path / "qc.tsv").set_index("patient_id")
    assert qc.at["a", "warnings"] == "the same image file as patient(s) ['b']"
    assert qc.at["b", "warnings"] == "mask has label(s) [2]; the same image file as patient(s) ['a']"
    assert pd.isna(qc.at["c", "warnings"]) and pd.isna(qc.at["d", "warnings"])
    assert "patient a: the same image file" in capsys.readouterr().out


def test_a_case_the_autoseg_network_cannot_segment_loses_only_its_auto_mask(tmp_path, monkeypatch):
    import mcrad.autoseg as autoseg

    paths = Paths(tmp_path)
    cases = []
    for pid in ("good", "broken"):
        ip, mp = write_pair(tmp_path / "src", pid)
        cases.append((pid, "B", ip, mp if pid == "good" else tmp_path / "missing.nii.gz"))

    # a stand-in for the UNet; the broken case's provided mask is missing, so its Dice cannot be computed
    monkeypatch.setattr(autoseg, "predict_autoseg", lambda net, image, opts, device: sitk.Cast(image > 0,
                                                                                              sitk.sitkUInt8))
    out = autoseg.autoseg_centre(None, cases, {}, paths, None)
    assert list(out["patient_id"]) == ["good", "broken"] and np.isnan(out.loc[1, "dice"])
    assert paths.case("B", "good").roi("tumour", auto=True).is_file()
    assert not paths.case("B", "broken").roi("tumour", auto=True).exists()

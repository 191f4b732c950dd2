import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import STUDY, write_pair
from mcrad.config import load_config
from mcrad.errors import CaseError
from mcrad.ingest import ingest_shard
from mcrad.paths import Paths


def sheet_for(tmp_path, cases):
    rows = [{"patient_id": pid, "centre": "A", "image": str(i), "mask": str(m)} for pid, (i, m) in cases.items()]
    path = tmp_path / "cohort.tsv"
    df = pd.DataFrame(rows)
    df.to_csv(path, sep="\t", index=False)
    return df, path


def run(tmp_path, cases, strict=False, **ingest):
    df, path = sheet_for(tmp_path, cases)
    opts = load_config({**STUDY, "ingest": ingest})["ingest"]
    return ingest_shard(df, path, list(cases), Paths(tmp_path / "out"), strict, opts)


def message(out, pid):
    row = out.set_index("patient_id").loc[pid]
    assert row["status"] == "quarantined", f"{pid} should be quarantined"
    return row["message"]


def test_good_case_is_copied_with_a_qc_row(tmp_path):
    out = run(tmp_path, {"ok": write_pair(tmp_path, "ok")})
    row = out.iloc[0]
    assert row["status"] == "ok" and row["mask_voxels"] > 0
    assert row["spacing_mm"] == "1x1x2"
    assert (tmp_path / "out/cases/A/ok/ingest/mask.nii.gz").is_file()


def test_bad_inputs_are_quarantined_with_patient_file_and_fix(tmp_path):
    good_img, good_mask = write_pair(tmp_path, "good")
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"not an image at all")
    _, empty_mask = write_pair(tmp_path, "empty", radius_vox=0, value=0)
    blank = sitk.ReadImage(str(good_mask)) * 0
    sitk.WriteImage(blank, str(empty_mask))
    off_img, _ = write_pair(tmp_path, "off", shape=(20, 24, 30))
    nan = sitk.GetArrayFromImage(sitk.ReadImage(str(good_img))).astype(np.float32)
    nan[0, 0, 0] = np.nan
    nan_img = sitk.GetImageFromArray(nan)
    nan_img.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(nan_img, str(tmp_path / "nan.nrrd"))  # NRRD keeps NaN; the NIfTI writer zeroes it
    flat = sitk.Image([24, 24], sitk.sitkInt16)
    sitk.WriteImage(flat, str(tmp_path / "flat2d.nii.gz"))
    out = run(tmp_path, {
        "good": (good_img, good_mask),
        "corrupt": (corrupt, good_mask),
        "missing": (tmp_path / "gone.nii.gz", good_mask),
        "empty": (good_img, empty_mask),
        "offgrid": (off_img, good_mask),
        "nan": (tmp_path / "nan.nrrd", good_mask),
        "twod": (tmp_path / "flat2d.nii.gz", good_mask),
    })
    assert out.set_index("patient_id").loc["good", "status"] == "ok"
    assert "patient corrupt" in message(out, "corrupt") and "truncated or corrupt" in message(out, "corrupt")
    assert "corrupt.nii.gz" in message(out, "corrupt") and "Fix:" in message(out, "corrupt")
    assert "gone.nii.gz" in message(out, "missing") and "not found" in message(out, "missing")
    assert "mask is empty" in message(out, "empty")
    assert "not on the image grid" in message(out, "offgrid")
    assert "NaN" in message(out, "nan")
    assert "not a 3D volume" in message(out, "twod")
    assert set(out["failed_stage"]) == {"", "ingest"}
    assert len(out) == 7, "nothing is dropped"


def test_strict_mode_fails_fast(tmp_path):
    with pytest.raises(CaseError, match="patient gone"):
        run(tmp_path, {"gone": (tmp_path / "none.nii.gz", tmp_path / "none2.nii.gz")}, strict=True)


def test_rerun_reuses_finished_cases(tmp_path):
    cases = {"a": write_pair(tmp_path, "a"), "b": write_pair(tmp_path, "b", seed=1)}
    first = run(tmp_path, cases)
    done = tmp_path / "out/cases/A/a/ingest/image.nii.gz"
    stamp = done.stat().st_mtime_ns
    again = run(tmp_path, cases)
    pd.testing.assert_frame_equal(first, again)
    assert done.stat().st_mtime_ns == stamp, "an unchanged case is not redone"
    write_pair(tmp_path, "a", seed=5)  # the input changed: redo
    run(tmp_path, cases)
    assert done.stat().st_mtime_ns != stamp


def test_dicom_series_folder_matches_ibsi_conversion(shared_data, tmp_path):
    """A case whose image is a DICOM folder (real CT, IBSI validation set) ingests on IBSI's own grid."""
    sts = shared_data / "dicom_rtstruct" / "STS_002"
    out = run(tmp_path, {"STS_002": (sts / "CT" / "image", sts / "ibsi_nifti" / "CT_mask.nii.gz")})
    assert out.iloc[0]["status"] == "ok", out.iloc[0]["message"]
    ours = sitk.ReadImage(str(tmp_path / "out/cases/A/STS_002/ingest/image.nii.gz"))
    ref = sitk.ReadImage(str(sts / "ibsi_nifti" / "CT_image.nii.gz"))
    assert ours.GetSize() == ref.GetSize()
    np.testing.assert_allclose(ours.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(ref).astype(np.int16))


def test_a_further_sequence_may_be_a_dicom_folder_with_an_rtstruct(shared_data, tmp_path):
    """Multi-sequence sheet: the reference from NIfTI, a further sequence (here the real MR of STS_002) from its
    DICOM folder with its own RTSTRUCT mask; both land in ingest/ on IBSI's grid of that MR."""
    sts = shared_data / "dicom_rtstruct" / "STS_002"
    ref_img, ref_mask = write_pair(tmp_path, "ref")
    rtstruct = next((sts / "MR_T1" / "mask").glob("*.dcm"))
    df = pd.DataFrame([{"patient_id": "STS_002", "centre": "A", "image": str(ref_img), "mask": str(ref_mask),
                        "image_MR": str(sts / "MR_T1" / "image"), "mask_MR": str(rtstruct)}])
    df.to_csv(tmp_path / "cohort.tsv", sep="\t", index=False)
    opts = load_config({**STUDY, "ingest": {"roi_pattern": ".*"}})["ingest"]
    out = ingest_shard(df, tmp_path / "cohort.tsv", ["STS_002"], Paths(tmp_path / "out"), True, opts, ["T1", "MR"])
    assert out.iloc[0]["status"] == "ok" and out.iloc[0]["sequences"] == "T1,MR"
    d = tmp_path / "out/cases/A/STS_002/ingest"
    ours = sitk.ReadImage(str(d / "image-MR.nii.gz"))
    ref = sitk.ReadImage(str(sts / "ibsi_nifti" / "MR_T1_image.nii.gz"))
    assert ours.GetSize() == ref.GetSize()
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(d / "seqmask-MR.nii.gz"))) > 0
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(sts / "ibsi_nifti" / "MR_T1_mask.nii.gz"))) > 0
    assert 2 * np.count_nonzero(a & b) / (a.sum() + b.sum()) >= 0.95

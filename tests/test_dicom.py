"""DICOM series + RTSTRUCT ingest: IBSI reference conversion, rasteriser geometry, bad inputs, PHI."""
import gzip

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from helpers import ingest_cases
from mcrad import dicom
from mcrad.cli import main
from mcrad.dicomsynth import AXIAL, PHI, square, write_rtstruct, write_series
from mcrad.errors import CaseError
from mcrad.paths import Paths


def dice(a, b):
    a, b = sitk.GetArrayFromImage(a) > 0, sitk.GetArrayFromImage(b) > 0
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("modality", ["CT", "MR_T1"])
def test_sts002_rtstruct_matches_ibsi_conversion(shared_data, tmp_path, modality):
    sts = shared_data / "dicom_rtstruct" / "STS_002"
    out = ingest_cases(tmp_path, {"STS_002": (sts / modality / "image", sts / modality / "mask" / "RS.dcm")})
    row = out.iloc[0]
    assert row["status"] == "ok", row["message"]
    case = tmp_path / "out/cases/A/STS_002/ingest"
    ours = sitk.ReadImage(str(case / "mask.nii.gz"))
    ref = sitk.ReadImage(str(sts / f"ibsi_nifti/{modality}_mask.nii.gz"))
    assert ours.GetSize() == ref.GetSize()
    np.testing.assert_allclose(ours.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(ours.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(ours.GetDirection(), ref.GetDirection(), atol=1e-6)
    assert dice(ours, ref) == 1.0  # also with the on-contour rule (docs/rtstruct_rasterisation.md)
    assert row["modality"] == modality.split("_")[0] and row["manufacturer"] and row["slice_thickness_mm"]
    assert (case / "qc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dicom2nifti_command(shared_data, tmp_path, capsys):
    sts = shared_data / "dicom_rtstruct" / "STS_002"
    img, msk = tmp_path / "ct.nii.gz", tmp_path / "ct_mask.nii.gz"
    assert main(["dicom2nifti", "--series", str(sts / "CT/image"), "--rtstruct", str(sts / "CT/mask/RS.dcm"),
                 "--roi", "gtv_mass.*", "--out-image", str(img), "--out-mask", str(msk)]) == 0
    assert dice(sitk.ReadImage(str(msk)), sitk.ReadImage(str(sts / "ibsi_nifti/CT_mask.nii.gz"))) >= 0.95
    assert main(["dicom2nifti", "--series", str(sts / "CT/image"), "--rtstruct", str(sts / "CT/mask/RS.dcm"),
                 "--roi", "GTVn.*", "--out-image", str(img), "--out-mask", str(msk)]) == 2
    assert "GTV_Mass_CT" in capsys.readouterr().err, "the error lists the ROI names that exist"


@pytest.mark.parametrize("iop", [AXIAL, (0.9541666, -0.2080757, 0.2151061, 0.2785886, 0.880128, -0.3843997)])
def test_rasteriser_holes_multiple_contours_and_oblique_series(tmp_path, iop):
    """Even-odd fill: an inner contour cuts a hole, a separate contour adds; geometry exact on oblique grids."""
    series, frame, ref = write_series(tmp_path / "ct", iop=iop, skip=())
    rt = write_rtstruct(tmp_path / "rt.dcm", series, frame, ref, {
        "GTVp": [(k, square(5, 20)) for k in (3, 4, 5)] + [(4, square(9, 13))],
        "GTVn1": [(7, [(25.5, 3.5), (35.5, 3.5), (35.5, 8.5), (25.5, 8.5)]), (7, square(2, 4))],
        "Body": [(k, square(0, 32)) for k in range(12)],
    })
    s = dicom.read_series(tmp_path / "ct", "p")
    np.testing.assert_allclose(s.image.GetDirection(), ref.GetDirection(), atol=1e-5)
    np.testing.assert_allclose(s.image.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(s.image.GetSpacing(), ref.GetSpacing(), atol=1e-4)
    ds = dicom.read_rtstruct(rt, "p")
    arr = sitk.GetArrayFromImage(dicom.rasterise(ds, dicom.select_rois(ds, "GTV.*", "p", rt), s.image, "p", rt))
    expected = np.zeros((12, 32, 40), np.uint8)
    expected[3:6, 5:20, 5:20] = 1
    expected[4, 9:13, 9:13] = 0  # the hole
    expected[7, 4:9, 26:36] = 1
    expected[7, 2:4, 2:4] = 1
    assert np.array_equal(arr, expected)


def test_rtstruct_extra_rois_are_separate_masks(tmp_path):
    series, frame, ref = write_series(tmp_path / "ct")
    rt = write_rtstruct(tmp_path / "rt.dcm", series, frame, ref, {
        "GTVp": [(4, square(5, 15))], "GTVn_L": [(8, square(20, 24))], "GTVn_R": [(9, square(2, 5))]})
    out = ingest_cases(tmp_path, {"p1": (tmp_path / "ct", rt)}, roi_pattern="GTVp", extra_rois={"nodes": "GTVn.*"})
    row = out.iloc[0]
    assert row["status"] == "ok", row["message"]
    assert row["mask_voxels"] == 100 and row["extra_roi_voxels"] == "nodes=25"
    nodes = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out/cases/A/p1/ingest/mask-nodes.nii.gz")))
    assert nodes[8].sum() == 16 and nodes[9].sum() == 9 and nodes[4].sum() == 0


def test_bad_dicom_inputs_are_quarantined_and_the_study_goes_on(shared_data, tmp_path):
    sts, edge = shared_data / "dicom_rtstruct" / "STS_002", shared_data / "rtstruct_edge_cases"
    good_series, frame, ref = write_series(tmp_path / "good")
    good_rt = write_rtstruct(tmp_path / "good_rt.dcm", good_series, frame, ref, {"GTV": [(4, square(5, 15))]})
    gap_series, gframe, gref = write_series(tmp_path / "gap", skip=(6,))
    gap_rt = write_rtstruct(tmp_path / "gap_rt.dcm", gap_series, gframe, gref, {"GTV": [(4, square(5, 15))]})
    write_series(tmp_path / "mixed")
    write_series(tmp_path / "mixed" / "other")
    corrupt = tmp_path / "corrupt"
    write_series(corrupt)
    (corrupt / "005.dcm").write_bytes(b"\x00" * 50)
    off_rt = write_rtstruct(tmp_path / "off_rt.dcm", good_series, frame, ref, {"GTV": [(15, square(5, 15))]})
    empty_rt = write_rtstruct(tmp_path / "empty_rt.dcm", good_series, frame, ref, {"GTV": []})
    cases = {
        "good": (tmp_path / "good", good_rt),
        "otherseries": (sts / "CT/image", edge / "mock_data/rt.dcm"),  # rt-utils' mock RTSTRUCT, not STS_002's
        "noroi": (sts / "CT/image", sts / "CT/mask/RS.dcm"),
        "gap": (tmp_path / "gap", gap_rt),
        "mixed": (tmp_path / "mixed", good_rt),
        "oneslice": (edge / "one_slice_data", good_rt),
        "corrupt": (corrupt, good_rt),
        "offgrid": (tmp_path / "good", off_rt),
        "emptyroi": (tmp_path / "good", empty_rt),
        "notrt": (tmp_path / "good", edge / "mock_data/ct_1.dcm"),
        "missingrt": (tmp_path / "good", tmp_path / "nothere.dcm"),
        "wrongslices": (edge / "mock_data", edge / "mock_data/invalid_reference_rt.dcm"),
    }
    out = ingest_cases(tmp_path, cases, roi_pattern="GTV|GTVn.*|ROI-1").set_index("patient_id")
    assert len(out) == len(cases) and out.loc["good", "status"] == "ok", out.loc["good", "message"]
    expect = {
        "otherseries": ("rt.dcm", "references another image series"),
        "noroi": ("RS.dcm", "GTV_Mass_CT"),
        "gap": ("gap", "non-uniform slice spacing"),
        "mixed": ("mixed", "mixes 2 image series"),
        "oneslice": ("one_slice_data", "single slice"),
        "corrupt": ("005.dcm", "not a readable DICOM file"),
        "offgrid": ("off_rt.dcm", "outside the image"),
        "emptyroi": ("empty_rt.dcm", "no closed contour"),
        "notrt": ("ct_1.dcm", "not an RTSTRUCT"),
        "missingrt": ("nothere.dcm", "not found"),
        "wrongslices": ("invalid_reference_rt.dcm", "outside the image"),
    }
    for pid, (file, problem) in expect.items():
        row = out.loc[pid]
        assert row["status"] == "quarantined" and row["failed_stage"] == "ingest", pid
        msg = row["message"]
        assert msg.startswith(f"patient {pid} (file: ") and file in msg and problem in msg and "Fix: " in msg, msg


def test_strict_mode_fails_fast_on_a_bad_dicom_case(tmp_path):
    write_series(tmp_path / "gap", skip=(3,))
    with pytest.raises(CaseError, match="patient gap .*non-uniform slice spacing"):
        ingest_cases(tmp_path, {"gap": (tmp_path / "gap", tmp_path / "gap" / "000.dcm")}, strict=True)


def test_no_identifying_tag_reaches_any_output(tmp_path, capsys, caplog):
    series, frame, ref = write_series(tmp_path / "ct")
    rt = write_rtstruct(tmp_path / "rt.dcm", series, frame, ref, {"GTV": [(4, square(5, 15))]})
    bad = write_rtstruct(tmp_path / "bad_rt.dcm", series, frame, ref, {"Brainstem": [(4, square(5, 15))]})
    assert str(pydicom.dcmread(tmp_path / "ct" / "000.dcm").PatientName) == PHI["PatientName"]
    out = ingest_cases(tmp_path, {"anon01": (tmp_path / "ct", rt), "anon02": (tmp_path / "ct", bad)})
    assert list(out["status"]) == ["ok", "quarantined"]
    assert out.iloc[0]["manufacturer"] == "ACME" and out.iloc[0]["kernel"] == "B30f"
    assert set(dicom.SAFE_TAGS.values()) <= set(out.columns)
    out.to_csv(tmp_path / "out" / "ingest.tsv", sep="\t", index=False)
    assert main(["dicom2nifti", "--series", str(tmp_path / "ct"), "--rtstruct", str(rt), "--out-image",
                 str(tmp_path / "out/single.nii.gz"), "--out-mask", str(tmp_path / "out/single_mask.nii.gz")]) == 0
    texts = [capsys.readouterr().err + capsys.readouterr().out, caplog.text]
    files = [f for f in (tmp_path / "out").rglob("*") if f.is_file()]
    assert any(f.name == "qc.png" for f in files) and any(f.name == "single_mask.nii.gz" for f in files)
    blobs = [gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes() for f in files]
    for value in PHI.values():
        for variant in {value, value.replace("^", " "), value.split("^")[0]}:
            assert not any(variant.encode() in b for b in blobs), f"{variant} leaked into an output file"
            assert not any(variant in t for t in texts), f"{variant} leaked into the log"


def test_report_qc_section_shows_scanners_and_pictures(tmp_path):
    from mcrad.ingest import qc_pictures_stage
    from mcrad.report.inputs import ReportInputs
    from mcrad.report.study import qc_pictures, qc_scanners

    series, frame, ref = write_series(tmp_path / "ct")
    rt = write_rtstruct(tmp_path / "rt.dcm", series, frame, ref, {"GTV": [(4, square(5, 15)), (5, square(6, 12))]})
    out = ingest_cases(tmp_path, {"p1": (tmp_path / "ct", rt), "p2": (tmp_path / "ct", rt)})
    out.to_csv(tmp_path / "qc.tsv", sep="\t", index=False)
    qc = pd.read_csv(tmp_path / "qc.tsv", sep="\t", dtype={"patient_id": str, "centre": str}, na_values=[""],
                     keep_default_na=False)
    scanners = qc_scanners(qc)
    assert "ACME" in scanners and "B30f" in scanners and "<td>2</td>" in scanners
    paths = Paths(tmp_path / "out")
    qc_pictures_stage(tmp_path / "qc.tsv", paths)
    pictures = qc_pictures(ReportInputs(paths.root, [paths.qc_pictures]))
    assert pictures.count("data:image/png;base64,") == 2 and "A / p1" in pictures
    assert qc_pictures(ReportInputs(paths.root, [])) == ""  # undeclared: not read

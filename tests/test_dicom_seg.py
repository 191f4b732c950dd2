"""DICOM-SEG masks at ingest (binary and fractional, segments by label regex) and in discovery."""
import numpy as np
import pytest
import SimpleITK as sitk
from helpers import ingest_cases
from mcrad.dicomsynth import write_seg, write_series


@pytest.mark.slow  # highdicom import and SEG encoding: ~10 s here
def test_binary_and_fractional_seg_masks_and_a_seg_of_another_series(tmp_path):
    write_series(tmp_path / "ct")
    write_series(tmp_path / "other")
    gtv = np.zeros((12, 32, 40), bool)
    gtv[3:6, 5:15, 8:20] = True
    node = np.zeros_like(gtv)
    node[8, 20:24, 30:34] = True
    prob = np.where(gtv, 0.8, 0.0)
    prob[4, 5, 8] = 0.3  # below the threshold
    binary = write_seg(tmp_path / "seg.dcm", tmp_path / "ct", {"GTVp": gtv, "Node_L": node})
    fractional = write_seg(tmp_path / "fseg.dcm", tmp_path / "ct", {"GTV prob": prob}, fractional=True)
    out = ingest_cases(tmp_path, {"bin": (tmp_path / "ct", binary), "frac": (tmp_path / "ct", fractional),
                             "wrong": (tmp_path / "other", binary)},
                  roi_pattern="GTV.*", extra_rois={"nodes": "Node.*"}).set_index("patient_id")
    assert out.loc["bin", "status"] == "ok", out.loc["bin", "message"]
    assert out.loc["bin", "mask_voxels"] == gtv.sum() and out.loc["bin", "extra_roi_voxels"] == "nodes=16"
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out/cases/A/bin/ingest/mask.nii.gz")))
    assert np.array_equal(mask > 0, gtv)
    assert out.loc["frac", "status"] == "ok" and out.loc["frac", "mask_voxels"] == gtv.sum() - 1
    assert out.loc["wrong", "status"] == "quarantined"
    assert "references another image series" in out.loc["wrong", "message"]

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import write_pair
from mcrad.config import Paths
from mcrad.errors import McradError
from mcrad.features import extract, features_shard, gather, make_extractor

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


def test_shard_quarantines_a_roi_pyradiomics_cannot_use_and_keeps_the_rest(tmp_path):
    _case(tmp_path, "good", 5)
    _case(tmp_path, "tiny", 0)  # a one-voxel ROI
    rows = pd.DataFrame({"patient_id": ["good", "tiny"], "centre": "A", "status": "ok", "failed_stage": "",
                         "message": ""})
    opts = {"params": PARAMS, "sequence": "CT"}
    out = features_shard(rows, opts, {"peritumoral": {"activate": False}}, Paths(tmp_path / "out"), False)
    ok, quarantined = gather([out])
    assert list(ok["patient_id"]) == ["good"]
    assert list(quarantined["patient_id"]) == ["tiny"]
    assert "patient tiny" in quarantined["message"][0] and "roi-tumour" in quarantined["message"][0]
    assert np.isfinite(ok.drop(columns=["patient_id", "centre"]).to_numpy(float)).all()

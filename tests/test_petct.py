"""PET/CT as two sequences of one case: the PET (in SUV) resampled in physical space onto the CT's preprocessed
grid without registration (preprocess.registration.method none), and its features from its own parameter file."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import REPO
from mcrad.config import load_config
from mcrad.errors import ConfigError
from mcrad.features.extract import features_shard
from mcrad.files import STATUS_COLUMNS
from mcrad.ingest import ingest_shard
from mcrad.paths import Paths
from mcrad.preprocess import preprocess_shard
from mcrad.segment import segment_shard

SUV_TUMOUR, SUV_BACKGROUND = 6.0, 1.0


def sphere(size, spacing, origin, centre_mm, radius_mm, inside, outside, pixel=sitk.sitkFloat32):
    img = sitk.Image(size, pixel)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    z, y, x = np.indices(size[::-1])
    pts = np.stack([x, y, z], -1) * np.array(spacing) + np.array(origin)
    arr = np.where(np.linalg.norm(pts - np.array(centre_mm), axis=-1) <= radius_mm, inside, outside)
    out = sitk.GetImageFromArray(arr.astype(sitk.GetArrayViewFromImage(img).dtype))
    out.CopyInformation(img)
    return out


def config(**pre):
    return load_config({"study": {"name": "petct"}, "cohort": {"sheet": "s.tsv", "sequences": ["CT", "PT"],
                                                               "clinical": []},
                        "design": {"train": ["A"], "external": ["B"]}, "endpoints": [{"name": "y", "column": "y"}],
                        "preprocess": {"modality": "CT", "spacing_mm": [2.0, 2.0, 2.0], "image_interpolator": "linear",
                                       "registration": {"method": "none"}, **pre},
                        "features": {"params": str(REPO / "config/radiomics/ct_default.yaml"),
                                     "sequence_params": {"PT": str(REPO / "config/radiomics/pet_suv.yaml")}}})


def test_pet_ct_needs_the_scanner_alignment_and_known_sequences():
    with pytest.raises(ConfigError, match="registration.method: none"):
        config(registration={"method": "rigid"})
    cfg = config()
    assert cfg["features"]["sequence_params"]["PT"].endswith("pet_suv.yaml")


def test_the_pet_lands_on_the_ct_grid_in_suv_and_gives_its_own_features(tmp_path):
    centre, radius = (0.0, 0.0, 0.0), 12.0
    ct = sphere((64, 64, 40), (0.9, 0.9, 1.5), (-28.8, -28.8, -30.0), centre, radius, 40, -1000, sitk.sitkInt16)
    mask = sitk.Cast(sphere((64, 64, 40), (0.9, 0.9, 1.5), (-28.8, -28.8, -30.0), centre, radius, 1, 0), sitk.sitkUInt8)
    pet = sphere((24, 24, 20), (4.0, 4.0, 3.27), (-46.0, -46.0, -31.0), centre, radius, SUV_TUMOUR, SUV_BACKGROUND)
    for name, img in (("ct", ct), ("mask", mask), ("pet", pet)):
        sitk.WriteImage(img, str(tmp_path / f"{name}.nii.gz"))
    sheet = pd.DataFrame([{"patient_id": "p1", "centre": "A", "image": "ct.nii.gz", "mask": "mask.nii.gz",
                           "image_PT": "pet.nii.gz"}])
    cfg, paths = config(), Paths(tmp_path / "results")
    rows = ingest_shard(sheet, tmp_path / "s.tsv", ["p1"], paths, True, cfg["ingest"], ["CT", "PT"])
    rows = preprocess_shard(rows[STATUS_COLUMNS], cfg["preprocess"], paths, True, ["CT", "PT"])
    case = paths.case("A", "p1")
    ct_pre, pt_pre = (sitk.ReadImage(str(case.preprocess_sequence(s))) for s in ("CT", "PT"))
    assert pt_pre.GetSize() == ct_pre.GetSize() and pt_pre.GetOrigin() == ct_pre.GetOrigin()
    assert pt_pre.GetSpacing() == (2.0, 2.0, 2.0)
    centre_index = pt_pre.TransformPhysicalPointToIndex(centre)
    assert pt_pre[centre_index] == pytest.approx(SUV_TUMOUR)  # no registration moved it; SUV kept (no HU clip)
    assert float(sitk.GetArrayViewFromImage(pt_pre).min()) >= SUV_BACKGROUND - 1e-6
    rows = segment_shard(rows[STATUS_COLUMNS], cfg["segment"], paths, True)
    out = features_shard(rows[STATUS_COLUMNS], cfg["features"], cfg["segment"], paths, True, ["CT", "PT"])
    row = out.iloc[0]
    assert 5.0 < row["PT_tumour_original_firstorder_Median"] <= SUV_TUMOUR
    assert row["CT_tumour_original_firstorder_Median"] == pytest.approx(40.0)
    # SUV bins of 0.25 (pet_suv.yaml), not HU bins of 25, which would put the whole PET tumour in one bin
    assert row["PT_tumour_original_firstorder_Uniformity"] < 0.99

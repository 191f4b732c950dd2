import json

import numpy as np
import pandas as pd
import SimpleITK as sitk
from mcrad import cohort, synth

OPTS = {"centres": 2, "patients_per_centre": 3, "field_of_view_mm": 40}


def test_same_seed_same_bytes(tmp_path):
    synth.make_cohort(OPTS, 11, tmp_path / "a")
    synth.make_cohort(OPTS, 11, tmp_path / "b")
    for name in ("cohort.tsv", "ground_truth.tsv", "ground_truth.json", "images/C2-003_ct.nii.gz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_a_centre_does_not_depend_on_the_others(tmp_path):
    one = synth.make_cohort({**OPTS, "centres": 1}, 11, tmp_path / "one")
    two = synth.make_cohort(OPTS, 11, tmp_path / "two")
    pd.testing.assert_frame_equal(one, two[two["centre"] == "C1"].reset_index(drop=True))
    assert (tmp_path / "one/images/C1-002_ct.nii.gz").read_bytes() == \
        (tmp_path / "two/images/C1-002_ct.nii.gz").read_bytes()


def test_planned_cases_match_what_is_made(tmp_path):
    made = synth.make_cohort(OPTS, 3, tmp_path)
    pd.testing.assert_frame_equal(cohort.planned_cases(OPTS), made[["patient_id", "centre"]])


def test_centres_differ_like_scanners(tmp_path):
    synth.make_cohort(OPTS, 5, tmp_path)
    sp = [sitk.ReadImage(str(tmp_path / f"images/{c}-001_ct.nii.gz")).GetSpacing() for c in ("C1", "C2")]
    assert sp[0] != sp[1]
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert truth["scanners"]["C1"] != truth["scanners"]["C2"]


def test_mask_marks_the_tumour_on_the_image_grid(tmp_path):
    synth.make_cohort(OPTS, 5, tmp_path)
    img = sitk.ReadImage(str(tmp_path / "images/C1-001_ct.nii.gz"))
    mask = sitk.ReadImage(str(tmp_path / "images/C1-001_gtv.nii.gz"))
    assert img.GetSize() == mask.GetSize() and img.GetSpacing() == mask.GetSpacing()
    a, m = sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(mask).astype(bool)
    assert m.sum() > 100
    assert 0 < a[m].mean() < 120, "tumour is soft tissue in HU"


def test_bayes_limits_are_ordered_and_informative():
    aucs = synth.bayes_aucs(1, n=50_000)
    assert 0.5 < aucs["bayes_auc_imaging"] < aucs["bayes_auc"] < 1.0
    assert aucs["bayes_auc"] - synth.bayes_aucs(2, n=50_000)["bayes_auc"] < 0.01, "a population quantity"


def test_labels_follow_the_true_risk():
    rng = np.random.default_rng(0)
    draws = pd.DataFrame([synth.draw_patient(rng) for _ in range(3000)])
    # mean label equals mean true probability (the generator is calibrated)
    assert abs(draws["nodal_metastasis"].mean() - draws["p_nodal"].mean()) < 0.03
    assert set(draws["t_stage"]) <= {1, 2, 3, 4}
    assert draws.groupby("t_stage")["z_size"].mean().is_monotonic_increasing


def test_centre_sizes_one_for_all_or_one_each():
    assert cohort.centre_sizes({"centres": 2, "patients_per_centre": 5}) == {"C1": 5, "C2": 5}
    assert cohort.centre_sizes({"centres": 2, "patients_per_centre": [8, 3]}) == {"C1": 8, "C2": 3}
    import pytest
    from mcrad.errors import ConfigError
    with pytest.raises(ConfigError, match="lists 1 sizes for 2 centres"):
        cohort.centre_sizes({"centres": 2, "patients_per_centre": [8]})


def test_grain_is_spatial_only():
    """The grain latent changes the texture's correlation length but not the tumour's histogram: a control that
    keeps each ROI's histogram cannot see it (README: Negative controls)."""
    latent = {"z_size": 0.5, "z_het": 0.0, "z_nec": -3.0, "z_irr": 0.0}  # no necrotic core: one histogram
    scanner = synth.Scanner(spacing_xy=1.0, slice_mm=1.0, blur_mm=0.8, noise_hu=0.0, hu_offset=0.0)
    stats_of = {}
    for grain in (-1.5, 1.5):
        ct, mask = synth.render_case({**latent, "z_grain": grain}, scanner, 56, np.random.default_rng(3))
        a, m = sitk.GetArrayFromImage(ct).astype(float), sitk.GetArrayFromImage(mask).astype(bool)
        inner = m & np.roll(m, 1, axis=2)  # voxel pairs one step apart along x, both in the tumour
        lag1 = np.corrcoef(a[inner], np.roll(a, 1, axis=2)[inner])[0, 1]
        stats_of[grain] = (a[m].mean(), a[m].std(), lag1)
    (mean_fine, sd_fine, lag_fine), (mean_coarse, sd_coarse, lag_coarse) = stats_of[-1.5], stats_of[1.5]
    assert abs(mean_fine - mean_coarse) < 0.5 and abs(sd_fine / sd_coarse - 1) < 0.01, stats_of
    assert 1 - lag_fine > 3 * (1 - lag_coarse), stats_of  # neighbours decorrelate far faster in fine grain


def test_endpoints_weigh_the_grain_most():
    assert max(synth.NODAL_IMAGING, key=synth.NODAL_IMAGING.get) == "z_grain"
    assert max(synth.GRADE_IMAGING, key=synth.GRADE_IMAGING.get) == "z_grain"

import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import STUDY
from mcrad.config import load_config
from mcrad.paths import Paths
from mcrad.preprocess import (
    aligned_grid,
    body_mask,
    carry_over,
    crop_to_roi,
    n4_correct,
    nyul_apply,
    nyul_fit,
    nyul_fit_study,
    preprocess_shard,
    read_cropped,
    register_rigid,
    resample_pair,
    whole_image_subgrid,
    zscore,
)
from mcrad.segment import peritumoral_ring, roi_names


def sphere(radius_mm=8.0, spacing=(0.8, 0.8, 2.5), size=(60, 60, 24)):
    img = sitk.Image(size, sitk.sitkFloat32)
    img.SetSpacing(spacing)
    img.SetOrigin((-20.0, 10.0, 5.0))
    idx = np.indices(size[::-1]).astype(float)
    centre = [(n - 1) / 2 for n in size[::-1]]
    dist = np.sqrt(sum(((idx[k] - centre[k]) * spacing[::-1][k]) ** 2 for k in range(3)))
    mask = sitk.GetImageFromArray((dist <= radius_mm).astype(np.uint8))
    arr = np.where(dist <= radius_mm, 60.0, -100.0).astype(np.float32)
    image = sitk.GetImageFromArray(arr)
    for im in (image, mask):
        im.CopyInformation(img)
    return image, mask


def centre_of(im):
    return np.array(im.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in im.GetSize()]))


def test_resampled_grid_keeps_the_image_centre():
    image, _ = sphere()
    size, origin = aligned_grid(image, (1.0, 1.0, 1.0))
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing((1.0, 1.0, 1.0))
    ref.SetOrigin(origin)
    np.testing.assert_allclose(centre_of(ref), centre_of(image), atol=1e-9)
    assert size == [48, 48, 60]


def test_resampling_keeps_the_roi_volume():
    image, mask = sphere(radius_mm=8.0)
    img, m = resample_pair(image, mask, (1.0, 1.0, 1.0), "bspline", 0.5)
    volume = np.count_nonzero(sitk.GetArrayFromImage(m)) * 1.0
    assert volume == pytest.approx(4 / 3 * np.pi * 8.0 ** 3, rel=0.08)
    assert m.GetSpacing() == (1.0, 1.0, 1.0) and img.GetSize() == m.GetSize()


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (1.3, 0.7, 2.5), (2.0, 2.0, None)])
def test_grid_image_crop_saves_memory_but_never_moves_the_grid(tmp_path, spacing):
    """preprocess.grid image: resampling the crop gives exactly the voxels of resampling the whole image onto the
    grid centred on it (IBSI), cut to the crop; grid crop centres the grid on the crop instead."""
    from mcrad.config import load_config
    from mcrad.preprocess import preprocess_images, target_spacing

    image, mask = sphere()
    rng = np.random.default_rng(0)
    arr = sitk.GetArrayFromImage(image) + rng.normal(0, 20, sitk.GetArrayFromImage(image).shape)
    noisy = sitk.GetImageFromArray(arr.astype(np.float32))
    noisy.CopyInformation(image)
    sitk.WriteImage(noisy, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    opts = load_config({**STUDY, "preprocess": {"spacing_mm": list(spacing), "grid": "image", "crop_margin_mm": 4.0,
                                                "image_interpolator": "linear", "intensity_clip": None}})["preprocess"]
    img, m, _, _ = preprocess_images(tmp_path / "image.nrrd", tmp_path / "mask.nrrd", opts)
    sp = target_spacing(image, opts["spacing_mm"])
    full = whole_image_subgrid(mask, sp, [0, 0, 0], list(mask.GetSize()))
    whole_img, whole_m = resample_pair(noisy, mask, sp, "linear", 0.5, full)
    assert img.GetSize() < whole_img.GetSize()  # the crop saved memory
    start = whole_img.TransformPhysicalPointToIndex(img.GetOrigin())
    np.testing.assert_allclose(whole_img.TransformIndexToPhysicalPoint(start), img.GetOrigin(), atol=1e-6)
    cut = sitk.RegionOfInterest(whole_img, img.GetSize(), start)
    np.testing.assert_allclose(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(cut), atol=1e-3)
    assert np.array_equal(sitk.GetArrayFromImage(m), sitk.GetArrayFromImage(sitk.RegionOfInterest(whole_m, m.GetSize(),
                                                                                                     start)))
    assert np.count_nonzero(sitk.GetArrayFromImage(m)) == np.count_nonzero(sitk.GetArrayFromImage(whole_m))
    np.testing.assert_allclose(centre_of(full), centre_of(image), atol=1e-9)  # centred on the whole image


def test_no_interpolation_and_rounding(tmp_path):
    from mcrad.config import load_config
    from mcrad.preprocess import preprocess_images

    image, mask = sphere()
    arr = sitk.GetArrayFromImage(image) + 0.5 + np.arange(sitk.GetArrayFromImage(image).size).reshape(
        sitk.GetArrayFromImage(image).shape) % 3 * 0.3
    src = sitk.GetImageFromArray(arr.astype(np.float32))
    src.CopyInformation(image)
    sitk.WriteImage(src, str(tmp_path / "image.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nrrd"))
    opts = load_config({**STUDY, "preprocess": {"spacing_mm": [None, None, None], "grid": "image",
                                                "round_intensities": True, "intensity_clip": None}})["preprocess"]
    img, m, _, _ = preprocess_images(tmp_path / "image.nrrd", tmp_path / "mask.nrrd", opts)
    assert img.GetSpacing() == image.GetSpacing()
    lo = image.TransformPhysicalPointToIndex(img.GetOrigin())
    crop = sitk.GetArrayFromImage(sitk.RegionOfInterest(src, img.GetSize(), lo))
    assert np.array_equal(sitk.GetArrayFromImage(img), np.round(crop))  # voxels kept, only rounded (half to even)
    assert np.count_nonzero(sitk.GetArrayFromImage(m)) == np.count_nonzero(sitk.GetArrayFromImage(mask))


def test_crop_keeps_the_roi_and_the_margin():
    image, mask = sphere()
    img, m = crop_to_roi(image, mask, 4.0)
    assert np.count_nonzero(sitk.GetArrayFromImage(m)) == np.count_nonzero(sitk.GetArrayFromImage(mask))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    box = stats.GetBoundingBox(1)[3:]
    margin = [int(np.ceil(4.0 / s)) for s in image.GetSpacing()]
    assert list(img.GetSize()) == [min(b + 2 * mg, n) for b, mg, n in zip(box, margin, image.GetSize(), strict=True)]
    np.testing.assert_allclose(centre_of(img), centre_of(image), atol=2.5)


def test_ring_is_a_shell_of_the_requested_thickness():
    image, mask = sphere(radius_mm=8.0, spacing=(0.5, 0.5, 0.5), size=(48, 48, 48))
    ring = peritumoral_ring(image, mask, 3.0, None)
    vol = np.count_nonzero(sitk.GetArrayFromImage(ring)) * 0.125
    assert vol == pytest.approx(4 / 3 * np.pi * (11.0 ** 3 - 8.0 ** 3), rel=0.08)
    assert not np.any(sitk.GetArrayFromImage(ring) & sitk.GetArrayFromImage(mask)), "ring excludes the tumour"


def test_ring_leaves_out_air():
    image, mask = sphere(radius_mm=8.0, spacing=(0.5, 0.5, 0.5), size=(48, 48, 48))
    arr = sitk.GetArrayFromImage(image)
    arr[:, :, :24] = np.where(arr[:, :, :24] < 0, -1000.0, arr[:, :, :24])  # air on one side
    air = sitk.GetImageFromArray(arr)
    air.CopyInformation(image)
    full = np.count_nonzero(sitk.GetArrayFromImage(peritumoral_ring(air, mask, 3.0, None)))
    part = np.count_nonzero(sitk.GetArrayFromImage(peritumoral_ring(air, mask, 3.0, -500.0)))
    assert part == pytest.approx(full / 2, rel=0.1)


def test_roi_names_follow_the_switch():
    assert roi_names({"peritumoral": {"activate": True}}) == ["tumour", "peritumoral"]
    assert roi_names({"peritumoral": {"activate": False}}) == ["tumour"]


def test_reading_only_the_roi_region_equals_cropping_the_whole_image(tmp_path):
    image, mask = sphere()
    sitk.WriteImage(image, str(tmp_path / "image.nii.gz"))
    sitk.WriteImage(mask, str(tmp_path / "mask.nii.gz"))
    img, m = read_cropped(tmp_path / "image.nii.gz", tmp_path / "mask.nii.gz", 4.0)
    ref_img, ref_m = crop_to_roi(image, mask, 4.0)
    assert img.GetSize() == ref_img.GetSize() and img.GetSize() != image.GetSize()
    np.testing.assert_allclose(img.GetOrigin(), ref_img.GetOrigin(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref_img))
    assert np.array_equal(sitk.GetArrayFromImage(m), sitk.GetArrayFromImage(ref_m))


def head_phantom(size=(48, 48, 40), spacing=(2.0, 2.0, 2.0), contrast=(100.0, 300.0, 40.0)):
    """Ellipsoid 'head' with an off-centre 'tumour' and a dark 'ventricle' in air; (image, tumour mask)."""
    z, y, x = np.indices(size[::-1]).astype(float)
    c = [(n - 1) / 2 for n in size[::-1]]
    head = ((z - c[0]) / 15) ** 2 + ((y - c[1]) / 20) ** 2 + ((x - c[2]) / 17) ** 2 <= 1
    tumour = (z - c[0] - 3) ** 2 + (y - c[1] + 6) ** 2 + (x - c[2] - 7) ** 2 <= 25
    vent = (z - c[0] + 2) ** 2 / 16 + (y - c[1] - 5) ** 2 / 9 + (x - c[2] + 4) ** 2 / 36 <= 1
    arr = np.where(head, contrast[0], 0.0) + np.where(tumour, contrast[1] - contrast[0], 0.0)
    arr = np.where(vent & ~tumour, contrast[2], arr)
    img, mask = sitk.GetImageFromArray(arr.astype(np.float32)), sitk.GetImageFromArray(tumour.astype(np.uint8))
    for im in (img, mask):
        im.SetSpacing(spacing)
        im.SetOrigin((-40.0, -50.0, 10.0))
    return img, mask


def test_n4_removes_a_smooth_multiplicative_bias():
    image, _ = head_phantom()
    x = np.indices(sitk.GetArrayViewFromImage(image).shape)[2]
    bias = np.exp(0.8 * (x / x.max() - 0.5))
    biased = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * bias.astype(np.float32))
    biased.CopyInformation(image)
    body = body_mask(biased)
    brain = (sitk.GetArrayFromImage(image) == 100.0)  # the homogeneous tissue
    cv = lambda im: np.std(sitk.GetArrayFromImage(im)[brain]) / np.mean(sitk.GetArrayFromImage(im)[brain])  # noqa: E731
    assert cv(biased) > 0.1
    assert cv(n4_correct(biased, body)) < cv(biased) / 10


def test_zscore_within_the_body():
    image, _ = head_phantom()
    body = body_mask(image)
    inside = sitk.GetArrayFromImage(zscore(image, body))[sitk.GetArrayFromImage(body) > 0]
    assert inside.mean() == pytest.approx(0, abs=1e-5) and inside.std() == pytest.approx(1, abs=1e-5)
    assert np.count_nonzero(sitk.GetArrayFromImage(body)) == pytest.approx(
        np.count_nonzero(sitk.GetArrayFromImage(image) > 0), rel=0.02), "body = the head, holes filled"


def test_nyul_maps_scanners_with_different_scales_onto_one_scale():
    rng = np.random.default_rng(3)
    train = [rng.gamma(4.0, 25.0, 5000) for _ in range(3)]
    standard = nyul_fit(train)
    assert standard[0] == 0 and standard[-1] == pytest.approx(100) and np.all(np.diff(standard) > 0)
    image, _ = head_phantom()
    arr = sitk.GetArrayFromImage(image) + rng.normal(0, 5, sitk.GetArrayViewFromImage(image).shape)
    a = sitk.GetImageFromArray(arr.astype(np.float32))
    b = sitk.GetImageFromArray((3.0 * arr + 50).astype(np.float32))  # another centre's scanner: affine change
    body = sitk.GetImageFromArray((arr > 20).astype(np.uint8))
    na, nb = (sitk.GetArrayFromImage(nyul_apply(im, body, standard)) for im in (a, b))
    np.testing.assert_allclose(na, nb, atol=1e-3)
    landmarks = np.percentile(na[sitk.GetArrayFromImage(body) > 0], [1, 50, 99])
    np.testing.assert_allclose(landmarks, [standard[0], standard[5], standard[-1]], atol=1e-3)


def test_rigid_registration_recovers_a_known_shift_across_contrasts():
    fixed, fixed_mask = head_phantom()                       # 'T1'
    moving_src, _ = head_phantom(contrast=(250.0, 80.0, 400.0))  # 'T2': other contrast, inverted ordering
    truth = sitk.Euler3DTransform()
    truth.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    truth.SetRotation(0.0, 0.0, np.deg2rad(4.0))
    truth.SetTranslation((3.4, -2.6, 1.8))
    # the T2 after the patient moved: moving(truth(p)) = T2(p), so the registration must find truth
    moving = sitk.Resample(moving_src, fixed, truth.GetInverse(), sitk.sitkLinear, 0.0)
    found, mi = register_rigid(fixed, moving, seed=7)
    assert mi > 0.1, "final Mattes MI reported as a positive number"
    for idx in ([10, 12, 8], [24, 24, 20], [36, 30, 30], [20, 35, 12]):
        p = fixed.TransformIndexToPhysicalPoint(idx)
        err = np.linalg.norm(np.subtract(found.TransformPoint(p), truth.TransformPoint(p)))
        assert err < 2.0, f"error {err:.2f} mm at {idx}: more than one 2 mm voxel"
    moving_mask = sitk.Resample(fixed_mask, fixed, truth.GetInverse(), sitk.sitkNearestNeighbor, 0)
    _, carried = carry_over(moving, moving_mask, fixed, found)
    a, b = sitk.GetArrayFromImage(carried) > 0, sitk.GetArrayFromImage(fixed_mask) > 0
    assert 2 * np.count_nonzero(a & b) / (a.sum() + b.sum()) > 0.85


def test_mr_preprocess_standardises_with_landmarks_learned_on_training_cases_only(tmp_path):
    paths = Paths(tmp_path)
    rows = []
    for pid, centre, gain in (("t1", "TRAIN", 1.0), ("t2", "TRAIN", 1.1), ("e1", "EXT", 3.0)):
        image, mask = head_phantom()
        image = sitk.Cast(image * gain + 10.0, sitk.sitkFloat32)
        d = paths.case_dir(centre, pid) / "ingest"
        d.mkdir(parents=True)
        sitk.WriteImage(image, str(d / "image.nii.gz"))
        sitk.WriteImage(mask, str(d / "mask.nii.gz"))
        rows.append({"patient_id": pid, "centre": centre, "status": "ok", "failed_stage": "", "message": ""})
    rows = pd.DataFrame(rows)
    opts = load_config({**STUDY, "preprocess": {"modality": "MR", "mr_normalise": "nyul", "mr_n4": False,
                                                "spacing_mm": [2.0, 2.0, 2.0]}})["preprocess"]
    fit = nyul_fit_study(rows[rows["centre"] == "TRAIN"], opts, paths)
    assert fit["cases"] == ["t1", "t2"]
    paths.nyul_standard.parent.mkdir(parents=True, exist_ok=True)
    paths.nyul_standard.write_text(json.dumps(fit))
    out = preprocess_shard(rows, opts, paths, strict=True)
    assert list(out["status"]) == ["ok"] * 3
    arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(paths.case_dir(c, p) / "preprocess" / "image.nii.gz")))
              for p, c in zip(rows["patient_id"], rows["centre"], strict=True)]
    np.testing.assert_allclose(arrays[2], arrays[0], atol=0.05)  # the external scanner's gain and offset are gone
    assert arrays[0].max() < 200, "no HU clip for MR, and intensities are on the Nyul scale"

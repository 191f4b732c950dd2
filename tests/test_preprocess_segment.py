import numpy as np
import pytest
import SimpleITK as sitk
from mcrad.preprocess import aligned_grid, crop_to_roi, resample_pair
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

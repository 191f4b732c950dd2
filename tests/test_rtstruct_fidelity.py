"""RTSTRUCT rasterisation gives back the structure the producer meant: a round trip mask -> RTSTRUCT -> mcrad
returns the source mask for random shapes (blobs, bars one to three voxels wide, holes, islands), whichever way the
producer draws its contours (rt-utils' voxel-centre contours, half-voxel marching squares, voxel borders)."""
import inspect

import numpy as np
import pytest
import SimpleITK as sitk
from mcrad import dicom, dicomsynth

SIZE = (10, 40, 40)
OBLIQUE = (0.9541666, -0.2080757, 0.2151061, 0.2785886, 0.880128, -0.3843997)


def _shapes(n, seed):
    rng = np.random.default_rng(seed)
    return {f"S{i:02d}": dicomsynth.random_shape(rng, SIZE) for i in range(n)}


def _read_back(series_dir, rt, names):
    image = dicom.read_series(series_dir, "p").image
    ds = dicom.read_rtstruct(rt, "p")
    numbers = {name: number for number, name in dicom.roi_names(ds).items()}
    return {n: sitk.GetArrayFromImage(dicom.rasterise(ds, {numbers[n]: n}, image, "p", rt)) > 0 for n in names}


def _assert_faithful(masks, got):
    for name, source in masks.items():
        dice = 2 * np.count_nonzero(got[name] & source) / (np.count_nonzero(got[name]) + np.count_nonzero(source))
        ratio = np.count_nonzero(got[name]) / np.count_nonzero(source)
        assert dice >= 0.99 and abs(ratio - 1) <= 0.01, f"{name}: Dice {dice:.3f}, volume ratio {ratio:.3f}"
    assert sum(np.array_equal(got[n], m) for n, m in masks.items()) == len(masks), "every shape comes back exactly"


def _rtutils_modes():
    """rt-utils' contour modes: voxel-centre always; voxel-edge where the installed rt-utils has it."""
    from rt_utils import RTStruct

    params = inspect.signature(RTStruct.add_roi).parameters
    modes = [{}, {"approximate_contours": False}]
    modes += [{p: "voxel_edge"} for p in params if "mode" in p]  # rt-utils 1.2.7 has none
    return modes


@pytest.mark.parametrize("iop", [dicomsynth.AXIAL, OBLIQUE], ids=["axial", "oblique"])
def test_rtutils_round_trip_returns_the_source_mask(tmp_path, iop):
    masks = _shapes(60 if iop == dicomsynth.AXIAL else 20, seed=1 if iop == dicomsynth.AXIAL else 2)
    dicomsynth.write_series(tmp_path / "ct", n=SIZE[0], rows=SIZE[1], cols=SIZE[2], spacing=(0.8, 0.8, 2.0),
                            iop=iop)
    for i, mode in enumerate(_rtutils_modes()):
        rt = dicomsynth.rtutils_rtstruct(tmp_path / "ct", masks, tmp_path / f"rt{i}.dcm", **mode)
        _assert_faithful(masks, _read_back(tmp_path / "ct", rt, list(masks)))


@pytest.mark.parametrize("upsample", [1, 2], ids=["half-voxel", "voxel-border"])
def test_marching_squares_contours_round_trip(tmp_path, upsample):
    masks = _shapes(20, seed=3)
    series, frame, ref = dicomsynth.write_series(tmp_path / "ct", n=SIZE[0], rows=SIZE[1], cols=SIZE[2])
    contours = {n: dicomsynth.iso_contours(m, upsample=upsample) for n, m in masks.items()}
    rt = dicomsynth.write_rtstruct(tmp_path / "rt.dcm", series, frame, ref, contours)
    _assert_faithful(masks, _read_back(tmp_path / "ct", rt, list(masks)))


def test_the_plain_centre_inside_rule_loses_the_outer_ring(tmp_path):
    """The bias the issue measured: centre-inside only, on rt-utils' contours, shrinks every structure."""
    masks = _shapes(10, seed=4)
    dicomsynth.write_series(tmp_path / "ct", n=SIZE[0], rows=SIZE[1], cols=SIZE[2])
    rt = dicomsynth.rtutils_rtstruct(tmp_path / "ct", masks, tmp_path / "rt.dcm")
    image, ds = dicom.read_series(tmp_path / "ct", "p").image, dicom.read_rtstruct(rt, "p")
    numbers = {name: number for number, name in dicom.roi_names(ds).items()}
    big = [n for n, m in masks.items() if m.sum() > 100]
    for n in big:
        strict = sitk.GetArrayFromImage(dicom.rasterise(ds, {numbers[n]: n}, image, "p", rt, tol=None)) > 0
        assert strict.sum() < 0.95 * masks[n].sum()


def test_on_contour_finds_centres_on_segments_points_and_lines():
    assert dicom.on_contour(np.array([[3.0, 4.0]])).tolist() == [[3, 4]]  # a one-voxel structure
    line = dicom.on_contour(np.array([[2.0, 1.0], [6.0, 1.0]]))  # a one-voxel-wide bar, there and back
    assert line.tolist() == [[x, 1] for x in range(2, 7)]
    diagonal = dicom.on_contour(np.array([[0.0, 0.0], [3.0, 3.0], [3.0, 0.0]]))
    assert {(x, y) for x, y in diagonal} == {(0, 0), (1, 1), (2, 2), (3, 3), (3, 2), (3, 1), (3, 0), (2, 0),
                                             (1, 0)}
    assert dicom.on_contour(np.array([[0.0, 0.0], [0.0, 5.0]]) + 0.02).size == 0  # beyond the tolerance
    assert dicom.on_contour(np.array([[0.0, 0.0], [0.0, 5.0]]) + 0.005).shape == (6, 2)  # within it
    assert dicom.on_contour(np.array([[-0.5, -0.5], [1.5, -0.5], [1.5, 1.5], [-0.5, 1.5]])).size == 0

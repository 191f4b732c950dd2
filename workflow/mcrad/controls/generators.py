"""The control images and ROIs of one case. Intensity controls (shuffled, sampled) change the voxels inside each
ROI and keep the ROI; randomised_roi keeps the image and moves the tumour ROI, unchanged in size and shape, to a
random place in the non-tumour tissue of the whole image as ingested."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, signal


def _like(arr: np.ndarray, ref: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(ref)
    return out


def shuffled(image: sitk.Image, rois: list[sitk.Image], rng: np.random.Generator) -> sitk.Image:
    """The image with the voxel intensities inside each ROI permuted among that ROI's voxels (READII's
    shuffled_roi): each ROI keeps its histogram exactly, its spatial structure is destroyed. ROIs are taken in
    order; a voxel already changed by an earlier ROI is not changed again."""
    arr = sitk.GetArrayFromImage(image)
    done = np.zeros(arr.shape, bool)
    for roi in rois:
        inside = (sitk.GetArrayViewFromImage(roi) > 0) & ~done
        arr[inside] = rng.permutation(arr[inside])
        done |= inside
    return _like(arr, image)


def sampled(image: sitk.Image, rois: list[sitk.Image], rng: np.random.Generator) -> sitk.Image:
    """The image with each ROI's voxels drawn independently (with replacement) from that ROI's own intensity
    histogram (READII's randomized_sampled_roi): the distribution is kept in expectation, the values and their
    arrangement are not."""
    arr = sitk.GetArrayFromImage(image)
    done = np.zeros(arr.shape, bool)
    for roi in rois:
        inside = (sitk.GetArrayViewFromImage(roi) > 0) & ~done
        values = arr[inside]
        arr[inside] = rng.choice(values, size=values.size, replace=True) if values.size else values
        done |= inside
    return _like(arr, image)


def tissue_mask(image: sitk.Image) -> np.ndarray:
    """The patient's tissue (z, y, x): Otsu foreground (not air), its largest connected component, without
    filling holes, so air inside the body (airway, sinuses) is not tissue either."""
    fg = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True) == 1
    return sitk.GetArrayFromImage(largest).astype(bool)


@dataclass(frozen=True)
class Placement:
    """Where a ROI was moved: offset in voxels (z, y, x) and mm (x, y, z), and how it was found."""

    offset_voxels: tuple[int, int, int]
    offset_mm: tuple[float, float, float]
    candidates: int  # random candidate positions tried before one fitted (0: found by the exhaustive search)


def allowed_region(image: sitk.Image, roi: sitk.Image, exclusion_mm: float) -> np.ndarray:
    """Where a moved ROI may lie (z, y, x): tissue, farther than `exclusion_mm` from the tumour ROI."""
    tumour = sitk.Cast(roi > 0, sitk.sitkUInt8)
    distance = sitk.GetArrayFromImage(sitk.SignedMaurerDistanceMap(tumour, insideIsPositive=False,
                                                                   squaredDistance=False, useImageSpacing=True))
    return tissue_mask(image) & (distance > exclusion_mm)


def place_roi(roi: sitk.Image, allowed: np.ndarray, rng: np.random.Generator, tries: int) -> Placement | None:
    """A random whole-voxel translation that puts every ROI voxel in `allowed`, or None when none exists.

    Candidate offsets put the ROI's centre on a random allowed voxel and are tried in random order (rejection
    sampling: the accepted offset is uniform over the fitting ones among the candidates); after `tries` misses an
    exhaustive search (FFT correlation of the ROI with the allowed region) decides, so None means no placement
    fits anywhere in the image, never bad luck. Whole-voxel moves keep the ROI's size and shape exactly."""
    points = np.argwhere(sitk.GetArrayViewFromImage(roi) > 0)
    if points.size == 0:
        return None
    shape = np.array(allowed.shape)
    centre = np.round(points.mean(axis=0)).astype(int)
    anchors = np.argwhere(allowed)
    if anchors.size == 0:
        return None

    def found(offset: np.ndarray, candidates: int) -> Placement:
        dz, dy, dx = (int(v) for v in offset)
        # physical offset of the index step (x, y, z), through the direction cosines
        mm = roi.TransformContinuousIndexToPhysicalPoint((dx, dy, dz))
        origin = roi.TransformContinuousIndexToPhysicalPoint((0.0, 0.0, 0.0))
        return Placement((dz, dy, dx), tuple(round(a - b, 4) for a, b in zip(mm, origin, strict=True)), candidates)

    order = rng.permutation(len(anchors))[:tries]
    for i, k in enumerate(order, start=1):
        moved = points + (anchors[k] - centre)
        if (moved >= 0).all() and (moved < shape).all() and allowed[tuple(moved.T)].all():
            return found(anchors[k] - centre, i)
    # exhaustive: corner c of the ROI's bounding box fits where the correlation counts every ROI voxel allowed
    lo = points.min(axis=0)
    box = np.zeros(points.max(axis=0) - lo + 1, np.float32)
    box[tuple((points - lo).T)] = 1.0
    if (np.array(box.shape) > shape).any():
        return None
    counts = signal.correlate(allowed.astype(np.float32), box, mode="valid", method="fft")
    corners = np.argwhere(counts > len(points) - 0.5)
    if corners.size == 0:
        return None
    return found(corners[rng.integers(len(corners))] - lo, 0)


def moved_roi(roi: sitk.Image, placement: Placement) -> sitk.Image:
    """The ROI translated by the placement's whole-voxel offset on its own grid (nothing leaves the grid)."""
    arr = sitk.GetArrayViewFromImage(roi) > 0
    out = ndimage.shift(arr.astype(np.uint8), placement.offset_voxels, order=0, mode="constant", cval=0)
    return _like(out.astype(np.uint8), roi)

"""The IBSI 1 features pyradiomics lacks but that are cheap and well defined: feature class `ibsi`
(features.ibsi_extra), named by their IBSI tags. Each is a small function of the ROI's intensities, its discretised
grey levels, the mesh volume and area pyradiomics computed, or the voxel sets; tests check them on both IBSI 1
phantoms. Not computed: Moran's I and Geary's C (all voxel pairs: quadratic in the ROI size), the oriented minimum
bounding box and minimum-volume enclosing ellipsoid (no IBSI consensus), and the intensity-volume histogram."""
from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.signal import fftconvolve
from scipy.spatial import ConvexHull
from scipy.special import eval_legendre

from mcrad.features.discretise import discretise

PEAK_RADIUS_MM = 10.0 * (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0)  # a sphere of 1 cm^3 (IBSI: 6.2 mm)


def dispersion(x: np.ndarray, prefix: str) -> dict[str, float]:
    """Coefficient of variation, quartile coefficient of dispersion and median absolute deviation."""
    p25, p75 = np.percentile(x, [25, 75])
    return {f"{prefix}_cov": float(x.std() / x.mean()) if x.mean() != 0 else float("nan"),
            f"{prefix}_qcod": float((p75 - p25) / (p75 + p25)) if p75 + p25 != 0 else float("nan"),
            f"{prefix}_medad": float(np.mean(np.abs(x - np.median(x))))}


def histogram_statistics(levels: np.ndarray) -> dict[str, float]:
    """IBSI intensity-histogram features of the discretised grey levels (1, 2, ...) of the ROI; entropy and
    uniformity are pyradiomics' firstorder Entropy and Uniformity."""
    x = levels.astype(np.float64)
    mean, sd = x.mean(), x.std()
    p10, p25, p75, p90 = np.percentile(x, [10, 25, 75, 90])
    robust = x[(x >= p10) & (x <= p90)]
    counts = np.bincount(levels.astype(int), minlength=int(levels.max()) + 1)[1:]  # grey levels 1..max
    gradient = np.gradient(counts.astype(np.float64)) if counts.size > 1 else np.zeros(1)
    out = {"ih_mean": mean, "ih_var": x.var(),
           "ih_skew": float(np.mean((x - mean) ** 3) / sd ** 3) if sd > 0 else 0.0,
           "ih_kurt": float(np.mean((x - mean) ** 4) / sd ** 4 - 3.0) if sd > 0 else 0.0,
           "ih_median": np.median(x), "ih_min": x.min(), "ih_p10": p10, "ih_p90": p90, "ih_max": x.max(),
           "ih_mode": float(np.argmax(counts) + 1), "ih_iqr": p75 - p25, "ih_range": x.max() - x.min(),
           "ih_mad": np.mean(np.abs(x - mean)), "ih_rmad": np.mean(np.abs(robust - robust.mean())),
           "ih_max_grad": gradient.max(), "ih_max_grad_g": float(np.argmax(gradient) + 1),
           "ih_min_grad": gradient.min(), "ih_min_grad_g": float(np.argmin(gradient) + 1),
           **dispersion(x, "ih")}
    return {k: float(v) for k, v in out.items()}


def intensity_peaks(image: np.ndarray, roi: np.ndarray, spacing_zyx: np.ndarray) -> dict[str, float]:
    """Local and global intensity peak: the mean intensity in a 1 cm^3 sphere (voxel centres within 6.2 mm, image
    voxels outside the ROI included, none outside the image) about the ROI's brightest voxel (the highest such mean
    if several are brightest), and the highest such mean about any ROI voxel."""
    half = np.floor(PEAK_RADIUS_MM / spacing_zyx).astype(int)
    grids = np.meshgrid(*(np.arange(-h, h + 1) * s for h, s in zip(half, spacing_zyx, strict=True)), indexing="ij")
    kernel = (np.sqrt(sum(g ** 2 for g in grids)) <= PEAK_RADIUS_MM).astype(np.float64)
    total = fftconvolve(image.astype(np.float64), kernel, mode="same")
    count = fftconvolve(np.ones(image.shape), kernel, mode="same")
    peak = total[roi] / np.round(count[roi])
    values = image[roi]
    return {"loc_peak_loc": float(peak[values == values.max()].max()), "loc_peak_glob": float(peak.max())}


def mesh_vertices(morph: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """Vertices of the ROI's marching-cubes mesh (pyradiomics' MeshVolume/SurfaceArea mesh): midpoints between each
    ROI voxel centre and its face neighbours outside the ROI, in mm (z, y, x)."""
    padded = np.pad(morph, 1)
    points = []
    for axis in range(3):
        for step in (-1, 1):
            outside = ~np.roll(padded, -step, axis=axis) & padded
            idx = np.argwhere(outside).astype(np.float64) - 1.0
            idx[:, axis] += 0.5 * step
            points.append(idx)
    return np.concatenate(points) * spacing_zyx


def _ellipsoid_area(a: float, b: float, c: float, terms: int = 21) -> float:
    """Surface area of an ellipsoid with semi-axes a >= b >= c: IBSI's Legendre series (20th order)."""
    alpha, beta = np.sqrt(1 - b ** 2 / a ** 2), np.sqrt(1 - c ** 2 / a ** 2)
    if alpha * beta == 0:
        return float(4 * np.pi * a * b)  # a sphere or a prolate limit: the series' first term
    nu = np.arange(terms)
    series = (alpha * beta) ** nu / (1 - 4 * nu ** 2) * eval_legendre(nu, (alpha ** 2 + beta ** 2) / (2 * alpha * beta))
    return float(4 * np.pi * a * b * series.sum())


def morphology(morph: np.ndarray, image: np.ndarray, intensity: np.ndarray, spacing_zyx: np.ndarray,
               volume: float, area: float) -> dict[str, float]:
    """Morphology from pyradiomics' mesh volume and area and the voxel sets: compactness 1 and 2, spherical
    disproportion, asphericity, centre-of-mass shift, integrated intensity, and the volume and area densities of the
    axis-aligned bounding box, the approximate enclosing ellipsoid and the convex hull."""
    centres = np.argwhere(morph) * spacing_zyx
    inside = np.argwhere(intensity) * spacing_zyx
    weights = image[intensity].astype(np.float64)
    shift = np.linalg.norm(centres.mean(axis=0) - (inside * weights[:, None]).sum(axis=0) / weights.sum())
    vertices = mesh_vertices(morph, spacing_zyx)
    box = vertices.max(axis=0) - vertices.min(axis=0)
    hull = ConvexHull(vertices)
    eig = np.sort(np.linalg.eigvalsh(np.cov(centres.T)))[::-1]
    a, b, c = 2 * np.sqrt(np.maximum(eig, 0))
    return {"morph_comp_1": volume / (np.sqrt(np.pi) * area ** 1.5),
            "morph_comp_2": 36 * np.pi * volume ** 2 / area ** 3,
            "morph_sph_dispr": area / (36 * np.pi * volume ** 2) ** (1 / 3),
            "morph_asphericity": (area ** 3 / (36 * np.pi * volume ** 2)) ** (1 / 3) - 1,
            "morph_com": float(shift), "morph_integ_int": volume * float(weights.mean()),
            "morph_vol_dens_aabb": volume / float(np.prod(box)),
            "morph_area_dens_aabb": area / float(2 * (box[0] * box[1] + box[1] * box[2] + box[0] * box[2])),
            "morph_vol_dens_aee": volume / (4 * np.pi / 3 * a * b * c),
            "morph_area_dens_aee": area / _ellipsoid_area(a, b, c),
            "morph_vol_dens_conv_hull": volume / float(hull.volume),
            "morph_area_dens_conv_hull": area / float(hull.area)}


def discretised_levels(values: np.ndarray, settings: dict[str, Any], discretisation: str) -> np.ndarray:
    """The ROI's grey levels as the texture classes bin them (features.discretisation)."""
    if discretisation == "ibsi":
        return discretise(values, settings)
    from radiomics import imageoperations

    return np.digitize(values, imageoperations.getBinEdges(values, **settings))


def ibsi_extra_features(image: sitk.Image, mask: sitk.Image, label: int, settings: dict[str, Any],
                        discretisation: str, pyradiomics_values: dict[str, Any]) -> dict[str, float]:
    """Feature class `ibsi` of one ROI. The intensity ROI is the mask re-segmented by settings' resegmentRange
    (as pyradiomics re-segments it); morphology uses the whole mask and pyradiomics' MeshVolume and SurfaceArea."""
    arr = sitk.GetArrayFromImage(image).astype(np.float64)
    morph = sitk.GetArrayFromImage(mask) == label
    intensity = morph.copy()
    if settings.get("resegmentRange") is not None:
        low, high = sorted(settings["resegmentRange"])
        intensity &= (arr >= low) & (arr <= high)
    spacing = np.array(image.GetSpacing()[::-1], dtype=np.float64)
    values = arr[intensity]
    out = dispersion(values, "stat")
    out.update(histogram_statistics(discretised_levels(values, settings, discretisation)))
    out.update(intensity_peaks(arr, intensity, spacing))
    volume, area = (pyradiomics_values.get(f"original_shape_{k}") for k in ("MeshVolume", "SurfaceArea"))
    if volume is not None and area is not None:
        out.update(morphology(morph, arr, intensity, spacing, float(volume), float(area)))
    return {k: float(v) for k, v in out.items()}

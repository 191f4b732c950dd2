"""IBSI 1 re-segmentation and discretisation, as small functions of the ROI's intensities (no pyradiomics here:
features.extractor plugs them into it)."""
from __future__ import annotations

from typing import Any

import numpy as np


def resegment_thresholds(values: np.ndarray, value_range: list[float] | None, outlier_sd: float | None
                         ) -> tuple[float, float]:
    """Closed interval of intensities IBSI 1's re-segmentation keeps: first the range [low, high], then, among what
    remains, mean +- outlier_sd standard deviations (population SD, as IBSI). Keeping [max(low, m - k sd),
    min(high, m + k sd)] is the same as applying the two filters one after the other."""
    low, high = (-np.inf, np.inf) if value_range is None else (float(value_range[0]), float(value_range[1]))
    if outlier_sd is not None:
        kept = np.asarray(values, dtype=np.float64)
        kept = kept[(kept >= low) & (kept <= high)]
        if kept.size:
            mean, sd = kept.mean(), kept.std()
            low, high = max(low, mean - outlier_sd * sd), min(high, mean + outlier_sd * sd)
    return low, high


def discretise(values: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """IBSI 1 bin numbers (1, 2, ...) of the ROI's intensities with pyradiomics' binCount / binWidth settings.
    Fixed bin number: floor(Ng (x - min) / (max - min)) + 1, the maximum in bin Ng. Fixed bin size:
    floor((x - low) / w) + 1 with `low` the re-segmentation range's lower bound (settings mcradBinLow) or else the
    ROI minimum, where pyradiomics counts from the multiple of w at or below the ROI minimum."""
    x = np.asarray(values, dtype=np.float64)
    count = settings.get("binCount")
    if count is not None:
        lo, hi = x.min(), x.max()
        if hi == lo:
            return np.ones(x.shape, dtype=int)
        return np.minimum(np.floor(count * (x - lo) / (hi - lo)).astype(int) + 1, int(count))
    width = float(settings.get("binWidth", 25))
    low = settings.get("mcradBinLow")
    low = x.min() if low is None else float(low)
    return np.floor((x - low) / width).astype(int) + 1

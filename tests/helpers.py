"""Small test images shared by several test modules."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_pair(directory: Path, name: str, shape=(20, 24, 24), spacing=(1.0, 1.0, 2.0), radius_vox=5,
               value=50.0, seed=0) -> tuple[Path, Path]:
    """A small noisy image with a spherical mask, written as NIfTI; returns (image, mask) paths."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    c = [s // 2 for s in shape]
    sphere = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= radius_vox ** 2
    arr = rng.normal(0, 10, shape) + np.where(sphere, value, -50.0)
    img = sitk.GetImageFromArray(arr.astype(np.int16))
    img.SetSpacing(spacing)
    mask = sitk.GetImageFromArray(sphere.astype(np.uint8))
    mask.CopyInformation(img)
    directory.mkdir(parents=True, exist_ok=True)
    ip, mp = directory / f"{name}_ct.nii.gz", directory / f"{name}_mask.nii.gz"
    sitk.WriteImage(img, str(ip))
    sitk.WriteImage(mask, str(mp))
    return ip, mp

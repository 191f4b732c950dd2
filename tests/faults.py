"""Faults that hospitals really send, injected into one case's image and mask files.

Each fault writes a broken copy of a good case (image, mask) into `out` and says what the study must do with it:
quarantine the case at a stage (with a phrase of the message), or accept it (process it, with a QC warning
phrase where one is due). Used by the fault-injection end-to-end test and the unit tests of the checks.
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class Expected:
    outcome: str  # "quarantined" or "accepted"
    stage: str = ""  # the stage that quarantines it ("a|b": either, by the study's grid)
    phrase: str = ""  # in the quarantine message, or in the ingest warnings of an accepted case ("a|b": either)

    def matches(self, stage: str, text: str) -> bool:
        return stage in self.stage.split("|") and any(p in text for p in self.phrase.split("|"))


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def _write(image: sitk.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=path.suffix == ".gz")
    return path


def _roi_centre(mask: sitk.Image) -> tuple[int, int, int]:
    z, y, x = (int(round(float(c.mean()))) for c in np.nonzero(sitk.GetArrayViewFromImage(mask)))
    return z, y, x


def _mask_from(arr: np.ndarray, like: sitk.Image) -> sitk.Image:
    out = sitk.GetImageFromArray(arr.astype(np.uint8))
    out.CopyInformation(like)
    return out


def truncated(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    data = image.read_bytes()
    (out / "image.nii.gz").write_bytes(data[: len(data) * 2 // 3])  # header reads, the voxels stop short
    return out / "image.nii.gz", mask


def zero_bytes(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    (out / "image.nii.gz").write_bytes(b"")
    return out / "image.nii.gz", mask


def not_an_image(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    (out / "image.nii.gz").write_bytes(gzip.compress(b"Patient report: see attached PDF\n" * 40))
    return out / "image.nii.gz", mask


def nan_voxels(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img = sitk.Cast(_read(image), sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(img)
    arr[0, :4, :4] = np.nan
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(img)
    return _write(bad, out / "image.nrrd"), mask  # NRRD: SimpleITK's NIfTI writer does not keep NaN


def two_d(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img = _read(image)
    z = _roi_centre(_read(mask))[0]
    return _write(img[:, :, z], out / "image.nii.gz"), mask


def four_d(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img = _read(image)
    return _write(sitk.JoinSeries([img, img]), out / "image.nii.gz"), mask


def mask_other_grid(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    m = _read(mask)
    coarse = sitk.Resample(m, [max(2, s // 2) for s in m.GetSize()], sitk.Transform(), sitk.sitkNearestNeighbor,
                           m.GetOrigin(), [2 * s for s in m.GetSpacing()], m.GetDirection(), 0, m.GetPixelID())
    return image, _write(coarse, out / "mask.nii.gz")


def empty_mask(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    m = _read(mask)
    return image, _write(_mask_from(np.zeros(sitk.GetArrayViewFromImage(m).shape), m), out / "mask.nii.gz")


def one_voxel(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    m = _read(mask)
    arr = np.zeros(sitk.GetArrayViewFromImage(m).shape)
    arr[_roi_centre(m)] = 1
    return image, _write(_mask_from(arr, m), out / "mask.nii.gz")


def two_slices(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    """The tumour on two adjacent slices only (a contour drawn on two slices, as a quick delineation is)."""
    m = _read(mask)
    arr = sitk.GetArrayFromImage(m)
    z = _roi_centre(m)[0]
    keep = np.zeros_like(arr)
    keep[z:z + 2] = arr[z:z + 2]
    return image, _write(_mask_from(keep, m), out / "mask.nii.gz")


def label_two(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    m = _read(mask)
    return image, _write(_mask_from(sitk.GetArrayViewFromImage(m) * 2, m), out / "mask.nii.gz")


def flipped(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    """The x axis stored the other way round (det(direction) = -1), the anatomy unchanged in physical space."""
    def flip(img: sitk.Image) -> sitk.Image:
        arr = sitk.GetArrayFromImage(img)[:, :, ::-1]
        out_img = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        d = np.asarray(img.GetDirection()).reshape(3, 3)
        size_x = img.GetSize()[0]
        origin = np.asarray(img.TransformIndexToPhysicalPoint((size_x - 1, 0, 0)))
        d[:, 0] = -d[:, 0]
        out_img.SetSpacing(img.GetSpacing())
        out_img.SetDirection(d.ravel().tolist())
        out_img.SetOrigin(origin.tolist())
        return out_img

    return _write(flip(_read(image)), out / "image.nii.gz"), _write(flip(_read(mask)), out / "mask.nii.gz")


def sheared(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img, m = _read(image), _read(mask)
    d = [1.0, 0.3, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # not orthonormal: a corrupt header
    for x in (img, m):
        x.SetDirection(d)
    # NRRD keeps any direction; the NIfTI writer would make it orthonormal
    return _write(img, out / "image.nrrd"), _write(m, out / "mask.nrrd")


def absurd_spacing(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img, m = _read(image), _read(mask)
    for x in (img, m):
        x.SetSpacing([s * 1000 for s in x.GetSpacing()])  # a header written in micrometres
    return _write(img, out / "image.nii.gz"), _write(m, out / "mask.nii.gz")


def flat_image(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    img = _read(image)
    flat = sitk.GetImageFromArray(np.full(sitk.GetArrayViewFromImage(img).shape, 40, np.int16))
    flat.CopyInformation(img)
    return _write(flat, out / "image.nii.gz"), mask


def shell_metacharacters(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    """A file name that a shell would execute if any command line were built by pasting paths."""
    name = out / "scan $(touch PWNED) `touch PWNED2`; rm -rf x & 'q'.nii.gz"
    name.write_bytes(image.read_bytes())
    return name, mask


def unreadable(image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    path = out / "image.nii.gz"
    path.write_bytes(image.read_bytes())
    path.chmod(0)
    return path, mask


FAULTS: dict[str, tuple[Callable[[Path, Path, Path], tuple[Path, Path]], Expected]] = {
    "truncated gzip": (truncated, Expected("quarantined", "ingest", "truncated or corrupt")),
    "zero-byte file": (zero_bytes, Expected("quarantined", "ingest", "cannot be read")),
    "not an image": (not_an_image, Expected("quarantined", "ingest", "cannot be read")),
    "NaN voxels": (nan_voxels, Expected("quarantined", "ingest", "NaN/inf voxels")),
    "2D image": (two_d, Expected("quarantined", "ingest", "not a 3D volume")),
    "4D image": (four_d, Expected("quarantined", "ingest", "not a 3D volume")),
    "mask on another grid": (mask_other_grid, Expected("quarantined", "ingest", "not on the image grid")),
    "empty mask": (empty_mask, Expected("quarantined", "ingest", "mask is empty")),
    # lost when resampled to a coarser grid (preprocess), or kept and then below the ROI gate (segment)
    "one-voxel ROI": (one_voxel, Expected("quarantined", "preprocess|segment",
                                          "ROI vanishes when resampled|fewer than segment.min_voxels")),
    "two-slice ROI": (two_slices, Expected("accepted")),
    "mask labelled 0/2": (label_two, Expected("accepted", phrase="label(s) [2]")),
    "flipped direction": (flipped, Expected("accepted", phrase="left-handed")),
    "sheared direction": (sheared, Expected("quarantined", "ingest", "not orthonormal")),
    "absurd spacing": (absurd_spacing, Expected("quarantined", "ingest", "no scanner makes it")),
    "flat image": (flat_image, Expected("accepted")),
    "shell metacharacters in the path": (shell_metacharacters, Expected("accepted")),
}
if os.geteuid() != 0:  # root reads any file: the fault cannot be made
    FAULTS["unreadable file"] = (unreadable, Expected("quarantined", "ingest", "cannot be read"))


def inject(kind: str, image: Path, mask: Path, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    return FAULTS[kind][0](image, mask, out)

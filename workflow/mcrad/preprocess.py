"""Preprocess: crop around the ROI, resample image and mask to a common spacing (IBSI-style grid alignment),
clip intensities (CT) or correct and normalise them (MR); register further MR sequences to the reference."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from mcrad.cases import run_stage
from mcrad.errors import CaseError, McradError
from mcrad.files import read_shards, write_json
from mcrad.paths import CaseFiles, Paths
from mcrad.stats import dice

INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


def roi_region(mask: sitk.Image, margin_mm: float) -> tuple[list[int], list[int]]:
    """(index, size) of the mask's bounding box grown by `margin_mm`, clipped to the image."""
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    x, y, z, sx, sy, sz = stats.GetBoundingBox(1)
    margin = [int(np.ceil(margin_mm / s)) for s in mask.GetSpacing()]
    lo = [max(0, v - m) for v, m in zip((x, y, z), margin, strict=True)]
    hi = [min(n, v + s + m) for v, s, m, n in zip((x, y, z), (sx, sy, sz), margin, mask.GetSize(), strict=True)]
    return lo, [h - low for h, low in zip(hi, lo, strict=True)]


def crop_to_roi(image: sitk.Image, mask: sitk.Image, margin_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """Crop both to the mask's bounding box grown by `margin_mm`, clipped to the image."""
    lo, size = roi_region(mask, margin_mm)
    return sitk.RegionOfInterest(image, size, lo), sitk.RegionOfInterest(mask, size, lo)


def read_region(image_path: Path, lo: list[int], size: list[int]) -> sitk.Image:
    """Only the region (index lo, size) of an image file: half the time and a fraction of the memory of reading a
    512x512x150 CT whole."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(image_path))
    reader.SetExtractIndex(lo)
    reader.SetExtractSize(size)
    return reader.Execute()


def read_cropped(image_path: Path, mask_path: Path, margin_mm: float) -> tuple[sitk.Image, sitk.Image]:
    """crop_to_roi without holding the whole image: the mask gives the box, then only that region is read."""
    mask = sitk.ReadImage(str(mask_path))
    lo, size = roi_region(mask, margin_mm)
    return read_region(image_path, lo, size), sitk.RegionOfInterest(mask, size, lo)


def target_spacing(image: sitk.Image, spacing_mm: list[float | None]) -> tuple[float, float, float]:
    """preprocess.spacing_mm with each null replaced by the image's own spacing along that axis."""
    return tuple(float(own if s is None else s) for s, own in zip(spacing_mm, image.GetSpacing(), strict=True))


def aligned_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> tuple[list[int], list[float]]:
    """Size and origin of a grid with `spacing` whose centre coincides with the image's centre (IBSI)."""
    size, offset = _grid_offset(image, spacing)
    origin = np.array(image.GetOrigin()) + np.array(image.GetDirection()).reshape(3, 3) @ offset
    return size, origin.tolist()


def _grid_offset(image: sitk.Image, spacing: tuple[float, float, float]) -> tuple[list[int], np.ndarray]:
    """Size of the centred grid, and its first voxel centre in the image's own axes (mm from the image origin)."""
    old_sp, old_size = np.array(image.GetSpacing()), np.array(image.GetSize())
    new_sp = np.array(spacing, dtype=float)
    new_size = np.maximum(1, np.ceil(old_size * old_sp / new_sp)).astype(int)
    return new_size.tolist(), (old_sp * (old_size - 1) - new_sp * (new_size - 1)) / 2.0


def grid_image(size: list[int], spacing: tuple[float, float, float], origin: list[float],
               direction: tuple[float, ...]) -> sitk.Image:
    ref = sitk.Image([int(n) for n in size], sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetOrigin(tuple(float(o) for o in origin))
    ref.SetDirection(direction)
    return ref


def whole_image_subgrid(whole: sitk.Image, spacing: tuple[float, float, float], lo: list[int], size: list[int]
                        ) -> sitk.Image:
    """The part of the grid centred on the whole image (`whole`: its geometry; the mask serves) that the region
    (lo, size) of the image can interpolate exactly as the whole image would: output voxel centres between the
    region's first and last voxel centres, or up to the grid's end where the region reaches the image border. So
    a crop saves memory without moving the grid (IBSI: the grid is centred on the image, not on the crop)."""
    full_size, offset = _grid_offset(whole, spacing)
    old_sp, new_sp = np.array(whole.GetSpacing()), np.array(spacing, dtype=float)
    first, last = [], []
    for k in range(3):
        hi = lo[k] + size[k] - 1
        a = (lo[k] * old_sp[k] - offset[k]) / new_sp[k]
        b = (hi * old_sp[k] - offset[k]) / new_sp[k]
        first.append(0 if lo[k] == 0 else max(0, int(np.ceil(a - 1e-6))))
        last.append(full_size[k] - 1 if hi == whole.GetSize()[k] - 1
                    else min(full_size[k] - 1, int(np.floor(b + 1e-6))))
    first_mm = offset + np.array(first) * new_sp
    origin = np.array(whole.GetOrigin()) + np.array(whole.GetDirection()).reshape(3, 3) @ first_mm
    return grid_image([b - a + 1 for a, b in zip(first, last, strict=True)], spacing, origin.tolist(),
                      whole.GetDirection())


def crop_centred_grid(image: sitk.Image, spacing: tuple[float, float, float]) -> sitk.Image:
    """The grid centred on `image` itself (after a crop: on the crop; mcrad's default, preprocess.grid crop)."""
    size, origin = aligned_grid(image, spacing)
    return grid_image(size, spacing, origin, image.GetDirection())


def resample_pair(image: sitk.Image, mask: sitk.Image, spacing: tuple[float, float, float], interpolator: str,
                  mask_threshold: float, grid: sitk.Image | None = None) -> tuple[sitk.Image, sitk.Image]:
    """Image (float32, `interpolator`) and mask (linear, kept where >= mask_threshold: IBSI) on `grid`, by default
    the grid with `spacing` centred on `image`."""
    ref = crop_centred_grid(image, spacing) if grid is None else grid
    lowest = float(sitk.GetArrayViewFromImage(image).min())
    img = sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), ref, sitk.Transform(), INTERPOLATORS[interpolator],
                        lowest, sitk.sitkFloat32)
    frac = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                         sitk.sitkFloat32)
    return img, sitk.Cast(frac >= mask_threshold, sitk.sitkUInt8)


def resample_roi(image: sitk.Image, mask: sitk.Image, whole: sitk.Image, lo: list[int], size: list[int], opts: dict
                 ) -> tuple[sitk.Image, sitk.Image]:
    """The cropped image and mask (region lo, size of `whole`'s grid) resampled as preprocess.spacing_mm, grid,
    image_interpolator and mask_threshold say. Spacing equal to the image's on every axis: no interpolation."""
    spacing = target_spacing(whole, opts["spacing_mm"])
    if spacing == tuple(float(s) for s in whole.GetSpacing()) and opts["grid"] == "image":
        return sitk.Cast(image, sitk.sitkFloat32), sitk.Cast(mask > 0, sitk.sitkUInt8)
    grid = whole_image_subgrid(whole, spacing, lo, size) if opts["grid"] == "image" else None
    return resample_pair(image, mask, spacing, opts["image_interpolator"], opts["mask_threshold"], grid)


def ct_intensities(image: sitk.Image, opts: dict) -> sitk.Image:
    """After interpolation: round to whole numbers (preprocess.round_intensities; IBSI: whole HU), then clip to
    preprocess.intensity_clip (null: no clip)."""
    if opts["round_intensities"]:
        arr = np.round(sitk.GetArrayFromImage(image))  # half to even, as numpy (and mirp) round
        rounded = sitk.GetImageFromArray(arr.astype(np.float32))
        rounded.CopyInformation(image)
        image = rounded
    if opts["intensity_clip"] is not None:
        low, high = opts["intensity_clip"]
        image = sitk.Clamp(image, sitk.sitkFloat32, float(low), float(high))
    return image


def preprocess_images(image_file: Path, mask_file: Path, opts: dict, standard: list[float] | None = None
                      ) -> tuple[sitk.Image, sitk.Image, sitk.Image | None, sitk.Image | None]:
    """The preprocessed (image, mask) of one case, as rule preprocess writes them, from its image and mask files;
    plus, for MR, the whole intensity-treated image and mask (multi-sequence registration needs them)."""
    whole_mask = sitk.ReadImage(str(mask_file))
    lo, size = roi_region(whole_mask, opts["crop_margin_mm"])
    whole = None
    if opts["modality"] == "MR":  # body statistics and the bias field need the whole image
        whole = mr_intensities(sitk.ReadImage(str(image_file)), opts, standard)
        image = sitk.RegionOfInterest(whole, size, lo)
    else:
        image = read_region(image_file, lo, size)
    image, mask = resample_roi(image, sitk.RegionOfInterest(whole_mask, size, lo), whole_mask, lo, size, opts)
    if opts["modality"] == "CT":
        image = ct_intensities(image, opts)
    return image, mask, whole, (whole_mask if whole is not None else None)


def mr_intensities(image: sitk.Image, opts: dict, standard: list[float] | None) -> sitk.Image:
    """N4 then z-score or Nyul standardisation, all inside the body, on the whole (uncropped) image."""
    body = body_mask(image)
    if opts["mr_n4"]:
        image = n4_correct(image, body)
    if opts["mr_normalise"] == "zscore":
        return zscore(image, body)
    if opts["mr_normalise"] == "nyul":
        return nyul_apply(image, body, standard)
    return image


def register_sequence(patient_id: str, seq: str, reference: sitk.Image, reference_mask: sitk.Image,
                      grid: sitk.Image, case: CaseFiles, opts: dict, seed: int
                      ) -> tuple[sitk.Image, sitk.Transform, dict[str, float]]:
    """One further sequence (ingest/image-<seq>) with the reference's intensity treatment, rigidly registered to
    the whole reference image and resampled once, straight onto `grid` (the reference's preprocessed grid).
    QC: final Mattes MI; with the sequence's own mask (ingest/seqmask-<seq>), its Dice against the reference mask
    after carrying it over. Raises CaseError when the registration fails or that Dice is under min_dice."""
    source = case.ingest_sequence(seq)
    moving = mr_intensities(sitk.ReadImage(str(source)), opts, None)
    reg = opts["registration"]
    fix = ("check that this sequence is of the same patient and session as the reference and overlaps it "
           "(orientation, origin), or re-export it")
    try:
        transform, mi = register_rigid(reference, moving, seed, reg["sampling_percentage"], reg["max_iterations"])
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "no reason given"
        raise CaseError(patient_id, str(source), f"registration of {seq} to the reference failed ({reason})",
                        fix) from exc
    if not np.isfinite(mi):
        raise CaseError(patient_id, str(source), f"registration of {seq} to the reference gave MI {mi}", fix)
    lowest = float(sitk.GetArrayViewFromImage(moving).min())
    image = sitk.Resample(moving, grid, transform, INTERPOLATORS[opts["image_interpolator"]], lowest,
                          sitk.sitkFloat32)
    qc = {f"reg_{seq}_mi": round(mi, 6)}
    own = case.ingest_sequence_mask(seq)
    if own.is_file():
        carried = sitk.Resample(sitk.ReadImage(str(own)), reference_mask, transform, sitk.sitkNearestNeighbor, 0,
                                sitk.sitkUInt8)
        qc[f"reg_{seq}_dice"] = round(dice(sitk.GetArrayViewFromImage(carried) > 0,
                                           sitk.GetArrayViewFromImage(reference_mask) > 0), 4)
        if qc[f"reg_{seq}_dice"] < reg["min_dice"]:
            raise CaseError(patient_id, str(source), f"registration of {seq} to the reference looks wrong: its own "
                            f"mask carried over has Dice {qc[f'reg_{seq}_dice']:.3f} with the reference mask "
                            f"(< preprocess.registration.min_dice {reg['min_dice']})",
                            f"{fix}; check that both masks outline the same ROI")
    return image, transform, qc


def preprocess_case(row: pd.Series, opts: dict, paths: Paths, standard: list[float] | None = None,
                    sequences: list[str] = (), seed: int = 0) -> dict[str, Any]:
    case = paths.case(row["centre"], row["patient_id"])
    image_file, mask_file = case.ingest_image, case.ingest_mask
    image, mask, whole, whole_mask = preprocess_images(image_file, mask_file, opts, standard)
    n_roi = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
    if n_roi == 0:
        raise CaseError(row["patient_id"], str(mask_file),
                        f"ROI vanishes when resampled to {opts['spacing_mm']} mm (partial-volume threshold "
                        f"{opts['mask_threshold']})", "use a finer preprocess.spacing_mm or check the mask")
    if opts["registration"]["method"] == "none":  # one frame of reference (PET/CT): resampled as it lies
        others = {seq: (aligned_sequence(case.ingest_sequence(seq), image, opts), sitk.Transform(), {})
                  for seq in sequences[1:]}
    else:  # config validation allows registration for MR only (whole and whole_mask are set)
        others = {seq: register_sequence(row["patient_id"], seq, whole, whole_mask, image, case, opts, seed)
                  for seq in sequences[1:]}
    case.preprocess_dir.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(case.preprocess_image), useCompression=True)
    sitk.WriteImage(mask, str(case.preprocess_mask), useCompression=True)
    result = {"pre_size": "x".join(map(str, image.GetSize())), "pre_mask_voxels": n_roi}
    if sequences:  # every sequence as image-<seq>, the reference too, so that features treats them alike
        shutil.copyfile(case.preprocess_image, case.preprocess_sequence(sequences[0]))
    for seq, (registered, transform, qc) in others.items():
        sitk.WriteImage(registered, str(case.preprocess_sequence(seq)), useCompression=True)
        sitk.WriteTransform(transform, str(case.preprocess_transform(seq)))  # reference point -> sequence point
        result.update(qc)
    return result


def aligned_sequence(source: Path, grid: sitk.Image, opts: dict) -> sitk.Image:
    """A further sequence the scanner aligned with the reference (PET of a PET/CT) resampled in physical space onto
    `grid` (the reference's preprocessed grid), float32, with preprocess.image_interpolator; outside the sequence's
    field of view it takes the sequence's lowest value. MR sequences get the reference's intensity treatment."""
    moving = sitk.Cast(sitk.ReadImage(str(source)), sitk.sitkFloat32)
    if opts["modality"] == "MR":
        moving = mr_intensities(moving, opts, None)
    lowest = float(sitk.GetArrayViewFromImage(moving).min())
    return sitk.Resample(moving, grid, sitk.Transform(), INTERPOLATORS[opts["image_interpolator"]], lowest,
                         sitk.sitkFloat32)


def uses_nyul(opts: dict) -> bool:
    return opts["modality"] == "MR" and opts["mr_normalise"] == "nyul"


def preprocess_shard(rows: pd.DataFrame, opts: dict, paths: Paths, strict: bool, sequences: list[str] = (),
                     seed: int = 0, standard_file: Path | None = None) -> pd.DataFrame:
    """`sequences`: cohort.sequences (reference first; [] = one image per case); `seed`: study.seed, for the
    registration's metric sampling; `standard_file`: the Nyul landmarks (default the study's; a site kit's)."""
    standard_file = Path(standard_file) if standard_file else paths.nyul_standard
    standard = json.loads(standard_file.read_text())["standard"] if uses_nyul(opts) else None
    sequences = list(sequences)

    def inputs(r: pd.Series) -> list[Path]:
        case = paths.case(r["centre"], r["patient_id"])
        own = [case.ingest_sequence_mask(s) for s in sequences[1:]]
        return [case.ingest_image, case.ingest_mask, *([standard_file] if standard else []),
                *(case.ingest_sequence(s) for s in sequences[1:]), *(f for f in own if f.is_file())]

    key_opts = {**opts, "sequences": sequences, "seed": seed} if sequences else opts
    return run_stage(rows, "preprocess", lambda r: preprocess_case(r, opts, paths, standard, sequences, seed),
                     inputs, paths, __file__, key_opts, strict)


def nyul_fit_stage(shard_files: list[Path], opts: dict, paths: Paths) -> None:
    """`mcrad nyul-fit`: Nyul standard landmarks from the training centre(s)' ingest shards."""
    write_json(nyul_fit_study(read_shards(shard_files), opts, paths), paths.nyul_standard)


def nyul_fit_study(train_rows: pd.DataFrame, opts: dict, paths: Paths, max_voxels: int = 200_000) -> dict:
    """Nyul standard landmarks from the ingested images of the training centre's 'ok' cases (after N4 when
    configured, as preprocess applies it). Each case contributes at most `max_voxels` body voxels (a fixed
    stride, so the fit is deterministic) to bound memory."""
    ok = train_rows[train_rows["status"] == "ok"]
    if ok.empty:
        raise McradError("Nyul standardisation: no usable training case to learn the landmarks from")
    samples = []
    for _, r in ok.iterrows():
        image = sitk.ReadImage(str(paths.case(r["centre"], r["patient_id"]).ingest_image))
        body = body_mask(image)
        if opts["mr_n4"]:
            image = n4_correct(image, body)
        values = sitk.GetArrayViewFromImage(image)[sitk.GetArrayViewFromImage(body) > 0]
        samples.append(values[:: max(1, values.size // max_voxels)])
    return {"percentiles": list(NYUL_PERCENTILES), "scale": list(NYUL_SCALE), "standard": nyul_fit(samples),
            "cases": sorted(ok["patient_id"])}


# ---- MR intensity harmonisation and multi-sequence registration ---------------------------------------------
NYUL_PERCENTILES = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)
NYUL_SCALE = (0.0, 100.0)


def body_mask(image: sitk.Image) -> sitk.Image:
    """Foreground (the patient, not air): Otsu threshold, largest connected component, holes filled."""
    fg = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(fg), sortByObjectSize=True) == 1
    return sitk.BinaryFillhole(sitk.BinaryMorphologicalClosing(largest, [2, 2, 2]))


def n4_correct(image: sitk.Image, mask: sitk.Image, shrink: int = 4, iterations: int = 50) -> sitk.Image:
    """N4 bias-field correction (Tustison 2010), fitted on a `shrink`-times smaller image for speed and applied
    at full resolution; returns float32."""
    img = sitk.Cast(image, sitk.sitkFloat32)
    small = sitk.Shrink(img, [shrink] * 3)
    small_mask = sitk.Shrink(sitk.Cast(mask, sitk.sitkUInt8), [shrink] * 3)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([iterations] * 4)
    n4.Execute(small, small_mask)
    return sitk.Cast(img / sitk.Exp(n4.GetLogBiasFieldAsImage(img)), sitk.sitkFloat32)


def zscore(image: sitk.Image, mask: sitk.Image) -> sitk.Image:
    """(I - mean) / sd with mean and sd taken inside `mask` (the body), over the whole image."""
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    inside = arr[sitk.GetArrayViewFromImage(mask) > 0]
    out = sitk.GetImageFromArray(((arr - inside.mean()) / inside.std()).astype(np.float32))
    out.CopyInformation(image)
    return out


def nyul_landmarks(values: np.ndarray) -> np.ndarray:
    return np.percentile(values, NYUL_PERCENTILES)


def nyul_fit(samples: list[np.ndarray]) -> list[float]:
    """Standard landmarks (Nyul & Udupa 1999): each sample's percentile landmarks mapped linearly so that its
    1st and 99th percentiles land on NYUL_SCALE, then averaged. Pass foreground voxels of training images only."""
    low, high = NYUL_SCALE
    mapped = []
    for values in samples:
        lm = nyul_landmarks(values)
        mapped.append(low + (lm - lm[0]) / (lm[-1] - lm[0]) * (high - low))
    return np.mean(mapped, axis=0).tolist()


def nyul_apply(image: sitk.Image, mask: sitk.Image, standard: list[float]) -> sitk.Image:
    """Piecewise-linear map of the image's own landmarks (inside `mask`) onto `standard`; linear beyond the ends."""
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64)
    lm = nyul_landmarks(arr[sitk.GetArrayViewFromImage(mask) > 0])
    std = np.asarray(standard, dtype=float)
    out = np.interp(arr, lm, std)
    below, above = arr < lm[0], arr > lm[-1]
    out[below] = std[0] + (arr[below] - lm[0]) * (std[1] - std[0]) / (lm[1] - lm[0])
    out[above] = std[-1] + (arr[above] - lm[-1]) * (std[-1] - std[-2]) / (lm[-1] - lm[-2])
    img = sitk.GetImageFromArray(out.astype(np.float32))
    img.CopyInformation(image)
    return img


def register_rigid(fixed: sitk.Image, moving: sitk.Image, seed: int, sampling: float = 0.1, iterations: int = 200
                   ) -> tuple[sitk.Transform, float]:
    """Rigid (Euler 3D) transform mapping points of `fixed` into `moving` by Mattes mutual information, which
    works across MR contrasts (T1, T2, ADC), and the final MI (nats, at full resolution). Multi-resolution;
    sampling seeded, and run on one thread: measured, SetNumberOfThreads(1) on the method alone still left
    transforms differing in the 14th digit run to run (multi-threaded parts of ITK's metric and pyramid follow
    the global default), so the global default is 1 while it runs, then restored."""
    # Start from the scanner frame (identity), rotating about the fixed image's centre: sequences of one session
    # share that frame, while centring the two fields of view misplaces a slab-like sequence (measured on the
    # T2 slab 14 mm off the T1's centre of tests/test_multisequence.py: largest error in the ROI 1.7 mm from
    # centred fields of view, 0.93 mm from the scanner frame).
    init = sitk.Euler3DTransform()
    init.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in fixed.GetSize()]))
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(sampling, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=iterations,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    reg.SetNumberOfThreads(1)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        transform = reg.Execute(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32))
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    return transform, -reg.GetMetricValue()  # Mattes' metric is the negative MI


def carry_over(moving: sitk.Image, moving_mask: sitk.Image | None, fixed: sitk.Image, transform: sitk.Transform
               ) -> tuple[sitk.Image, sitk.Image | None]:
    """A sequence (linear) and its mask (nearest) resampled onto the reference sequence's grid."""
    image = sitk.Resample(sitk.Cast(moving, sitk.sitkFloat32), fixed, transform, sitk.sitkLinear, 0.0,
                          sitk.sitkFloat32)
    if moving_mask is None:
        return image, None
    return image, sitk.Resample(moving_mask, fixed, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)

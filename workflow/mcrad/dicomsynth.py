"""Synthetic DICOM for tests and benchmarks: image series (CT, MR, PET) with known geometry, RTSTRUCTs from
polygons in voxel index, and the identifying tags a hospital export carries (so tests can prove none leaks).

Nothing here reads real data; every writer takes its UIDs from the caller or makes new ones.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    RTStructureSetStorage,
    generate_uid,
)

PHI = {"PatientName": "Doe^Janet", "PatientID": "MRN884422", "PatientBirthDate": "19450317",
       "InstitutionAddress": "1 Infirmary Road", "ReferringPhysicianName": "House^Gregory"}
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage, "PT": PositronEmissionTomographyImageStorage}


def dataset(**kw) -> Dataset:
    ds = Dataset()
    for k, v in kw.items():
        setattr(ds, k, v)
    return ds


def save(ds: Dataset, sop_class: str, path: Path) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder, n=12, rows=32, cols=40, spacing=(0.8, 0.8, 2.0), origin=(-10.0, 5.0, 30.0), iop=AXIAL,
                 skip=(), phi=PHI, *, modality: str = "CT", study_uid: str | None = None,
                 frame_uid: str | None = None, series_uid: str | None = None, description: str = "",
                 pixels: np.ndarray | None = None, name: str = "{k:03d}.dcm",
                 image_type=("ORIGINAL", "PRIMARY", "AXIAL"), extra: dict | None = None,
                 slice_extra: Callable[[int], dict] | None = None):
    """An image series with known geometry; returns (series uid, frame of reference, sitk reference image).

    `pixels` (z, y, x int16) replaces the default ramp; `name` formats each file's name (no extension is fine);
    `extra` adds tags to every slice (PET dose and timing tags, ProtocolName ...), `slice_extra(k)` to slice k."""
    folder = Path(folder)
    series, frame, study = series_uid or generate_uid(), frame_uid or generate_uid(), study_uid or generate_uid()
    row, col = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row, col)
    ramp = np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) % 200
    for k in range(n):
        if k in skip:
            continue
        pos = np.array(origin) + k * spacing[2] * normal
        plane = (ramp + k) if pixels is None else np.asarray(pixels[k], dtype=np.int16)
        ds = dataset(Modality=modality, SOPInstanceUID=generate_uid(), SeriesInstanceUID=series,
                     StudyInstanceUID=study, FrameOfReferenceUID=frame, Manufacturer="ACME", ConvolutionKernel="B30f",
                     StudyDate="20190402", StudyTime="101500", StudyID="1", SeriesDescription=description,
                     PatientSex="O", SeriesNumber=1,
                     ImageType=list(image_type), SliceThickness=spacing[2],
                     ImagePositionPatient=[f"{v:.6f}" for v in pos], ImageOrientationPatient=list(iop),
                     PixelSpacing=[spacing[1], spacing[0]], Rows=rows, Columns=cols, SamplesPerPixel=1,
                     PhotometricInterpretation="MONOCHROME2", BitsAllocated=16, BitsStored=16, HighBit=15,
                     PixelRepresentation=1, InstanceNumber=n - k, PixelData=plane.tobytes(),
                     **{"AccessionNumber": "", "ReferringPhysicianName": "", "RescaleSlope": 1,
                        "RescaleIntercept": -1000 if modality == "CT" else 0, **phi, **(extra or {}),
                        **(slice_extra(k) if slice_extra else {})})
        save(ds, SOP_CLASS[modality], folder / name.format(k=k))
    ref = sitk.Image([cols, rows, n], sitk.sitkUInt8)
    ref.SetSpacing(spacing)
    ref.SetOrigin(origin)
    ref.SetDirection(np.column_stack([row, col, normal]).ravel().tolist())
    return series, frame, ref


F18_HALF_LIFE_S = 6586.2


def write_pet(folder, activity: float = 5000.0, *, weight_kg: float | None = 70.0, dose_bq: float | None = 370e6,
              half_life_s: float | None = F18_HALF_LIFE_S, injection: str | None = "090000",
              injection_datetime: str | None = None,
              series_time: str | None = "100000", acquisition_times: list[str] | None = None,
              units: str | None = "BQML", decay_correction: str | None = "START",
              corrected: tuple[str, ...] | None = ("ATTN", "DECY"), slopes: list[float] | None = None,
              philips: dict[int, float] | None = None, n: int = 6, **kw):
    """A PET series of uniform `activity` (pixel value after rescaling), with the SUV tags; None omits a tag.
    `slopes`: RescaleSlope per slice (stored pixels are activity / slope, rounded); `philips`: Philips private
    PET group elements (0x1000: SUV scale factor, 0x1009: activity concentration scale factor) added to every
    slice. Other keywords go to write_series. Returns what write_series returns."""
    slopes = slopes or [activity / 1000.0] * n
    stored = np.stack([np.full((kw.get("rows", 32), kw.get("cols", 40)), round(activity / s)) for s in slopes])
    info = {"RadionuclideTotalDose": dose_bq, "RadionuclideHalfLife": half_life_s,
            "RadiopharmaceuticalStartTime": injection, "RadiopharmaceuticalStartDateTime": injection_datetime}
    tags = {"PatientWeight": weight_kg, "SeriesTime": series_time, "Units": units,
            "DecayCorrection": decay_correction, "CorrectedImage": list(corrected) if corrected else None,
            "RadiopharmaceuticalInformationSequence": [dataset(**{k: v for k, v in info.items() if v is not None})]}

    def per_slice(k: int) -> dict:
        when = {"AcquisitionTime": acquisition_times[k]} if acquisition_times else {}
        return {"RescaleSlope": slopes[k], **when}

    out = write_series(folder, n=n, modality="PT", pixels=stored, slice_extra=per_slice,
                       extra={**{k: v for k, v in tags.items() if v is not None}, **kw.pop("extra", {})}, **kw)
    if philips:
        for f in sorted(Path(folder).iterdir()):
            ds = pydicom.dcmread(f)
            ds.add_new((0x7053, 0x0010), "LO", "Philips PET Private Group")
            for element, value in philips.items():
                ds.add_new((0x7053, element), "DS", value)
            ds.save_as(f)
    return out


def write_rtstruct(path, series, frame, ref, contours, phi=PHI, *, study_uid: str | None = None,
                   when: tuple[str, str] = ("20190403", "120000"), reference_series: bool = True):
    """`contours`: ROI name -> list of (slice k, [(i, j), ...] polygon in continuous voxel index). `when`: the
    structure set's (date, time), what tells an up-to-date structure set from an older one. Without
    `reference_series` only the frame of reference links it to its images (as some exporters write)."""
    matrix = np.array(ref.GetDirection()).reshape(3, 3) @ np.diag(ref.GetSpacing())
    roi_seq, contour_seq = [], []
    for number, (name, polys) in enumerate(contours.items(), start=1):
        roi_seq.append(dataset(ROINumber=number, ROIName=name, ReferencedFrameOfReferenceUID=frame))
        items = []
        for k, poly in polys:
            pts = [np.array(ref.GetOrigin()) + matrix @ np.array([i, j, k]) for i, j in poly]
            items.append(dataset(ContourGeometricType="CLOSED_PLANAR", NumberOfContourPoints=len(pts),
                                 ContourData=[f"{v:.6f}" for p in pts for v in p]))
        contour_seq.append(dataset(ReferencedROINumber=number, ContourSequence=items))
    ds = dataset(Modality="RTSTRUCT", SOPInstanceUID=generate_uid(), SeriesInstanceUID=generate_uid(),
                 StudyInstanceUID=study_uid or generate_uid(), StructureSetLabel="RS",
                 StructureSetDate=when[0], StructureSetTime=when[1],
                 StructureSetROISequence=roi_seq, ROIContourSequence=contour_seq,
                 ReferencedFrameOfReferenceSequence=[dataset(FrameOfReferenceUID=frame)], **phi)
    if reference_series:
        ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence = [dataset(
            ReferencedSOPInstanceUID=study_uid or generate_uid(),
            RTReferencedSeriesSequence=[dataset(SeriesInstanceUID=series)])]
    return save(ds, RTStructureSetStorage, path)


def square(lo, hi):
    """Square polygon with corners at half-voxel positions, so that exactly voxels lo..hi-1 are inside."""
    a, b = lo - 0.5, hi - 0.5
    return [(a, a), (b, a), (b, b), (a, b)]


def random_shape(rng: np.random.Generator, size: tuple[int, int, int] = (10, 40, 40)) -> np.ndarray:
    """A random 3D structure (z, y, x bool) of the kinds contours must survive: blobs, bars one to three voxels
    wide (axis-aligned and diagonal), holes, islands, bridges. Kept one voxel off the volume's border."""
    nz, ny, nx = size
    zz, yy, xx = np.mgrid[0:nz, 0:ny, 0:nx]
    m = np.zeros(size, dtype=bool)
    kind = int(rng.integers(4))

    def blob(scale: float = 1.0) -> np.ndarray:
        c = rng.uniform([2, 8, 8], [nz - 3, ny - 9, nx - 9])
        r = rng.uniform([1.0, 2.0, 2.0], [3.0, 9.0, 9.0]) * scale
        return ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1.0

    def bar() -> np.ndarray:
        out = np.zeros(size, dtype=bool)
        width, length = int(rng.integers(1, 4)), int(rng.integers(6, 26))
        dy, dx = [(0, 1), (1, 0), (1, 1), (1, -1)][int(rng.integers(4))]
        z0 = int(rng.integers(1, nz - 2))
        z1 = min(z0 + int(rng.integers(1, 5)), nz - 1)
        y0, x0 = int(rng.integers(1, ny - 4)), int(rng.integers(1, nx - 4))
        for t in range(length):
            y, x = y0 + t * dy, x0 + t * dx
            if 1 <= y < ny - width and 1 <= x < nx - width:
                out[z0:z1, y:y + width, x:x + width] = True
        return out

    if kind in (0, 2, 3):
        for _ in range(int(rng.integers(1, 4))):
            m |= blob()
    if kind in (1, 2):
        for _ in range(int(rng.integers(1, 4))):
            m |= bar()
    if kind == 3:
        inner = np.argwhere(m)
        if len(inner):
            z, y, x = inner[int(rng.integers(len(inner)))]
            hy, hx = int(rng.integers(0, 3)), int(rng.integers(0, 3))
            m &= ~((abs(zz - z) <= 1) & (abs(yy - y) <= hy) & (abs(xx - x) <= hx))
        m |= blob(0.4)
    m[0], m[-1], m[:, 0], m[:, -1], m[:, :, 0], m[:, :, -1] = False, False, False, False, False, False
    if not m.any():
        m[nz // 2, ny // 2, nx // 2] = True
    return m


def rtutils_rtstruct(series_dir: Path, masks: dict[str, np.ndarray], path: Path, **add_roi) -> Path:
    """An RTSTRUCT written by rt-utils (the producer most auto-segmentation pipelines use) from (z, y, x) masks on
    the series in `series_dir`; `add_roi` options go to RTStruct.add_roi (approximate_contours, ...)."""
    from rt_utils import RTStructBuilder

    rt = RTStructBuilder.create_new(dicom_series_path=str(series_dir))
    for name, mask in masks.items():
        rt.add_roi(mask=np.transpose(mask, (1, 2, 0)), name=name, **add_roi)
    rt.save(str(path))
    return Path(path)


def iso_contours(mask: np.ndarray, upsample: int = 1) -> list[tuple[int, list[tuple[float, float]]]]:
    """Closed polygons (slice k, [(i, j), ...] in continuous voxel index) around a (z, y, x) mask by marching
    squares at level 0.5: through points half-way between voxel centres (upsample=1, what scikit-image's
    find_contours and many converters write), or along the voxel borders (upsample=2: stair-step outlines whose
    corners are cut by a quarter voxel: a "voxel edge" producer)."""
    import contourpy

    out = []
    for k, plane in enumerate(mask):
        if not plane.any():
            continue
        big = np.pad(plane, 1).astype(float).repeat(upsample, 0).repeat(upsample, 1)
        gen = contourpy.contour_generator(z=big, line_type="Separate")
        for line in gen.lines(0.5):
            xy = (line[:-1] - (upsample - 1) / 2) / upsample - 1  # back to the unpadded voxel index
            out.append((k, [(float(x), float(y)) for x, y in xy]))
    return out


def write_seg(path, series_dir: Path, masks: dict[str, np.ndarray], fractional: bool = False) -> Path:
    """A DICOM-SEG (highdicom) of (z, y, x) masks (bool, or 0..1 floats when `fractional`) on the series in
    `series_dir`, one segment per label."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    sources = [pydicom.dcmread(p) for p in sorted(Path(series_dir).iterdir()) if p.is_file()]
    sources.sort(key=lambda d: float(np.dot(np.cross(np.array(d.ImageOrientationPatient[:3], float),
                                                     np.array(d.ImageOrientationPatient[3:], float)),
                                            np.array(d.ImagePositionPatient, float))))
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=label, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for i, label in enumerate(masks, start=1)]
    stack = np.stack([np.asarray(m, dtype=float if fractional else bool) for m in masks.values()], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=stack.astype(np.float32) if fractional else stack.astype(np.uint8),
        segmentation_type="FRACTIONAL" if fractional else "BINARY", segment_descriptions=descriptions,
        series_instance_uid=generate_uid(), series_number=99, sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer="ACME", manufacturer_model_name="synth", software_versions="1", device_serial_number="1",
        omit_empty_frames=False)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)
    return Path(path)

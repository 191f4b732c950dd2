"""PET: the body-weight standardised uptake value (SUVbw) from a PET series' DICOM tags, applied at ingest.

SUVbw = activity concentration (Bq/ml, the pixel value after RescaleSlope/Intercept) x body weight (g)
        / injected dose decay-corrected to the time the image is decay-corrected to (Bq).

This follows the QIBA vendor-neutral pseudo-code for SUV calculation (QIBA wiki, "Standardized Uptake Value
(SUV)", https://qibawiki.rsna.org/index.php/Standardized_Uptake_Value_(SUV); the same logic as @cornerstonejs/
calculate-suv and oro.pet's `standardUptakeValue(method = "qiba")`):

- Modality PT, CorrectedImage (0028,0051) holds ATTN and DECY, else no SUV.
- Units (0054,1001) BQML: scale = PatientWeight x 1000 / decayed dose. CNTS (Philips): the private SUV scale factor
  (7053,1000) is the scale itself; failing that, the activity concentration scale factor (7053,1009) turns counts
  into Bq/ml, then as BQML. GML: the image already holds SUVbw (scale 1).
- DecayCorrection (0054,1102) START: decay time = scan start - injection, where the scan start is SeriesDate/
  SeriesTime unless that is after the earliest AcquisitionDate/AcquisitionTime of the series (a series re-processed
  or re-saved later), in which case the earliest acquisition time is used; the injection is
  RadiopharmaceuticalStartDateTime (0018,1078), or RadiopharmaceuticalStartTime (0018,1072) on the series date.
  decayed dose = RadionuclideTotalDose x 2^(-decay time / RadionuclideHalfLife).
  ADMIN: the image is decay-corrected to the injection: decayed dose = RadionuclideTotalDose.
  NONE (each slice at its own time, which needs FrameReferenceTime per slice) is refused, as are other values.
  QIBA's GE private scan time (0009,100D) is not read; the earliest acquisition time stands in for it.

A missing or implausible tag is a CaseError naming the tag. No identifying value (name, id, date, time, weight)
reaches a message; dates and times are used internally only.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk

from mcrad.dicom import DicomSeries
from mcrad.errors import CaseError

TAG = {"PatientWeight": "(0010,1030)", "RadiopharmaceuticalInformationSequence": "(0054,0016)",
       "RadionuclideTotalDose": "(0018,1074)", "RadionuclideHalfLife": "(0018,1075)",
       "RadiopharmaceuticalStartTime": "(0018,1072)", "RadiopharmaceuticalStartDateTime": "(0018,1078)",
       "Units": "(0054,1001)", "DecayCorrection": "(0054,1102)", "CorrectedImage": "(0028,0051)",
       "SeriesTime": "(0008,0031)", "AcquisitionTime": "(0008,0032)"}
PHILIPS_SUV_FACTOR = (0x7053, 0x1000)
PHILIPS_ACTIVITY_FACTOR = (0x7053, 0x1009)
WEIGHT_KG = (1.0, 400.0)
DOSE_BQ = (1e6, 2e10)  # 1 MBq .. 20 GBq: a dose recorded in MBq or mCi falls below
HALF_LIFE_S = (10.0, 1e7)  # O-15 (122 s) .. I-124 (4.2 d), with margin
MAX_HALF_LIVES = 10.0  # a longer decay time is a wrong date or time, not a scan
FIX_HEADER = ("enter it in the DICOM header (from the injection record: the patient's weight in kg, the dose "
              "in Bq) and export the series again, or set ingest.pet_suv: false to keep the image in its units")


@dataclass(frozen=True)
class SuvScale:
    """SUVbw = rescaled pixel value x factor."""
    factor: float
    units: str  # the series' Units: BQML, CNTS or GML
    decay_correction: str  # START, ADMIN ('' for GML)

    def qc(self) -> dict[str, Any]:
        return {"suv_scale": self.factor, "pet_units": self.units, "image_units": "SUVbw"}


def _fail(pid: str, path: Path, problem: str, fix: str = FIX_HEADER) -> CaseError:
    return CaseError(pid, str(path), problem, fix)


def _tag(keyword: str) -> str:
    return f"{keyword} {TAG.get(keyword, '')}".strip()


def _number(ds: pydicom.Dataset, keyword: str, bounds: tuple[float, float], unit: str, pid: str, path: Path,
            show: bool = True) -> float:
    value = ds.get(keyword, None)
    if value is None or str(value).strip() == "":
        raise _fail(pid, path, f"PET series lacks {_tag(keyword)}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise _fail(pid, path, f"PET series has an unreadable {_tag(keyword)}") from exc
    if not (np.isfinite(number) and bounds[0] <= number <= bounds[1]):
        shown = f" ({number:g} {unit})" if show else ""
        raise _fail(pid, path, f"PET series has an implausible {_tag(keyword)}{shown}: expected {bounds[0]:g} to "
                    f"{bounds[1]:g} {unit}", f"correct it in the DICOM header ({FIX_HEADER.split('(', 1)[1]}")
    return number


def _clock(value: str) -> timedelta:
    """DICOM TM (HHMMSS.FFFFFF, shorter forms, or the old HH:MM:SS) as the time since midnight."""
    text = value.strip().replace(":", "")
    if len(text) < 2 or not text[:2].isdigit():
        raise ValueError("TM")
    seconds = float(text[4:]) if len(text) > 4 else 0.0
    return timedelta(hours=int(text[:2]), minutes=int(text[2:4] or 0), seconds=seconds)


def _when(date: str, time: str) -> datetime:
    """DA + TM as a datetime; without a date, an arbitrary fixed day (only differences are used)."""
    day = datetime.strptime(date.strip(), "%Y%m%d") if date.strip() else datetime(2000, 1, 1)
    return day + _clock(time)


def _stamp(value: str) -> datetime:
    """DICOM DT (YYYYMMDDHHMMSS.FFFFFF, optional &ZZXX offset: dropped, the scanner's clock is assumed)."""
    text = value.strip().split("+")[0].split("-")[0]
    return _when(text[:8], text[8:] or "00")


def _scan_start(headers: Sequence[pydicom.Dataset], pid: str, path: Path) -> datetime:
    """SeriesDate/Time, or the earliest AcquisitionDate/Time of the series when the series time is later (QIBA)."""
    first = headers[0]
    try:
        acquired = [_when(str(h.get("AcquisitionDate", "") or first.get("SeriesDate", "")), str(h.AcquisitionTime))
                    for h in headers if str(h.get("AcquisitionTime", "")).strip()]
        series = (_when(str(first.get("SeriesDate", "")), str(first.SeriesTime))
                  if str(first.get("SeriesTime", "")).strip() else None)
    except ValueError as exc:
        raise _fail(pid, path, f"PET series has an unreadable {_tag('SeriesTime')} or {_tag('AcquisitionTime')}"
                    ) from exc
    if series is None and not acquired:
        raise _fail(pid, path, f"PET series lacks {_tag('SeriesTime')} (and {_tag('AcquisitionTime')})")
    if series is None or (acquired and series > min(acquired)):
        return min(acquired)
    return series


def _injection(info: pydicom.Dataset, series_date: str, pid: str, path: Path) -> datetime:
    try:
        if str(info.get("RadiopharmaceuticalStartDateTime", "")).strip():
            return _stamp(str(info.RadiopharmaceuticalStartDateTime))
        if str(info.get("RadiopharmaceuticalStartTime", "")).strip():
            return _when(series_date, str(info.RadiopharmaceuticalStartTime))
    except ValueError as exc:
        raise _fail(pid, path, f"PET series has an unreadable {_tag('RadiopharmaceuticalStartTime')}") from exc
    raise _fail(pid, path, f"PET series lacks {_tag('RadiopharmaceuticalStartTime')} (the injection time; or "
                f"{_tag('RadiopharmaceuticalStartDateTime')})")


def _private(ds: pydicom.Dataset, tag: tuple[int, int]) -> float | None:
    """A Philips private DS/FD value, also when read as raw bytes (implicit VR, UN)."""
    element = ds.get(tag)
    if element is None or element.value in (None, b"", ""):
        return None
    value = element.value
    if isinstance(value, bytes):
        try:
            return float(value.decode("ascii").strip("\x00 "))
        except (UnicodeDecodeError, ValueError):
            return struct.unpack("<d", value[:8])[0] if len(value) >= 8 else None
    return float(value[0] if isinstance(value, (list, pydicom.multival.MultiValue)) else value)


def _values(value) -> list[str]:
    """A CS value, single or multiple, as a list of upper-case strings."""
    items = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip().upper() for v in items if str(v).strip()]


def _same(headers: Sequence[pydicom.Dataset], read, what: str, pid: str, path: Path):
    values = {read(h) for h in headers}
    if len(values) > 1:
        raise _fail(pid, path, f"PET slices disagree on {what}", "export the series again as one reconstruction")
    return values.pop()


def decayed_dose(info: pydicom.Dataset, scan: datetime, injection: datetime | None, pid: str, path: Path) -> float:
    """The injected dose decay-corrected to the scan start (injection None: ADMIN, no correction)."""
    dose = _number(info, "RadionuclideTotalDose", DOSE_BQ, "Bq", pid, path)
    if injection is None:
        return dose
    half_life = _number(info, "RadionuclideHalfLife", HALF_LIFE_S, "s", pid, path)
    decay_s = (scan - injection).total_seconds()
    if decay_s < 0:
        raise _fail(pid, path, f"PET injection time {TAG['RadiopharmaceuticalStartTime']} is after the scan start "
                    "(series/acquisition time): a wrong time, or an injection before midnight recorded without a "
                    "date", f"add {_tag('RadiopharmaceuticalStartDateTime')} with the date, or {FIX_HEADER}")
    if decay_s > MAX_HALF_LIVES * half_life:
        raise _fail(pid, path, f"PET decay time from injection to scan is more than {MAX_HALF_LIVES:g} half-lives "
                    f"of the radionuclide ({half_life:g} s): a wrong injection or series date/time, or half-life",
                    "correct the injection and series times in the DICOM header")
    return dose * 2.0 ** (-decay_s / half_life)


def suv_scale(headers: Sequence[pydicom.Dataset], patient_id: str, path: Path) -> SuvScale:
    """The SUVbw factor of a PET series from its slices' headers (QIBA vendor-neutral pseudo-code, see above)."""
    pid = patient_id
    if not headers:
        raise _fail(pid, path, "PET series has no slice headers", "point the sheet at the PET series folder")
    first = headers[0]
    units = _same(headers, lambda h: str(h.get("Units", "")).strip().upper(), _tag("Units"), pid, path)
    if not units:
        raise _fail(pid, path, f"PET series lacks {_tag('Units')}")
    if units == "GML":
        return SuvScale(1.0, units, "")
    corrected = _same(headers, lambda h: frozenset(_values(h.get("CorrectedImage", ""))), _tag("CorrectedImage"),
                      pid, path)
    if not corrected:
        raise _fail(pid, path, f"PET series lacks {_tag('CorrectedImage')} (must list ATTN and DECY)")
    for flag, what in (("ATTN", "attenuation"), ("DECY", "decay")):
        if flag not in corrected:
            raise _fail(pid, path, f"PET series is not {what}-corrected ({_tag('CorrectedImage')} lacks {flag}): "
                        "no SUV can be computed", f"export the {what}-corrected reconstruction")
    if units == "CNTS":
        suv = _same(headers, lambda h: _private(h, PHILIPS_SUV_FACTOR), "the Philips SUV scale factor", pid, path)
        if suv is not None and suv > 0:
            return SuvScale(suv, units, str(first.get("DecayCorrection", "")).strip().upper())
        activity = _same(headers, lambda h: _private(h, PHILIPS_ACTIVITY_FACTOR),
                         "the Philips activity concentration scale factor", pid, path)
        if activity is None or not activity > 0:
            raise _fail(pid, path, "PET series in Units CNTS lacks the Philips SUV scale factor (7053,1000) and the "
                        "activity concentration scale factor (7053,1009)", "export the series in BQML (Bq/ml), or "
                        "with Philips' private PET group; or set ingest.pet_suv: false")
    elif units == "BQML":
        activity = 1.0
    else:
        raise _fail(pid, path, f"PET series has {_tag('Units')} {units!r}: SUVbw needs BQML, CNTS (Philips) or GML",
                    "export the series in Bq/ml (BQML), or set ingest.pet_suv: false")
    decay = _same(headers, lambda h: str(h.get("DecayCorrection", "")).strip().upper(), _tag("DecayCorrection"),
                  pid, path)
    if decay not in ("START", "ADMIN"):
        raise _fail(pid, path, f"PET series lacks {_tag('DecayCorrection')}" if not decay else
                    f"PET series has {_tag('DecayCorrection')} {decay!r}: only START and ADMIN are supported "
                    "(NONE needs per-slice decay correction, not done)",
                    "export the series decay-corrected to the scan start (START), or set ingest.pet_suv: false")
    _same(headers, lambda h: str(h.get("PatientWeight", "")), _tag("PatientWeight"), pid, path)
    weight_kg = _number(first, "PatientWeight", WEIGHT_KG, "kg", pid, path, show=False)
    sequence = first.get("RadiopharmaceuticalInformationSequence", None)
    if not sequence:
        raise _fail(pid, path, f"PET series lacks {_tag('RadiopharmaceuticalInformationSequence')} (dose, "
                    "half-life, injection time)")
    info = sequence[0]
    scan = _scan_start(headers, pid, path)
    series_date = str(first.get("SeriesDate", "") or first.get("AcquisitionDate", ""))
    injection = _injection(info, series_date, pid, path) if decay == "START" else None
    return SuvScale(activity * weight_kg * 1000.0 / decayed_dose(info, scan, injection, pid, path), units, decay)


def to_suv(image: sitk.Image, scale: SuvScale) -> sitk.Image:
    """The rescaled image x the SUVbw factor, as float32 (geometry kept)."""
    arr = sitk.GetArrayViewFromImage(image).astype(np.float64) * scale.factor
    out = sitk.GetImageFromArray(arr.astype(np.float32))
    out.CopyInformation(image)
    return out


def canonical_image(image: sitk.Image, series: DicomSeries | None, patient_id: str, path: Path, suv: bool
                    ) -> tuple[sitk.Image, dict[str, Any]]:
    """The image ingest writes and its PET QC columns: a DICOM PET series (Modality PT) in SUVbw (float32) when
    `suv` (ingest.pet_suv); anything else as read."""
    if series is None or series.tags.get("modality") != "PT":
        return image, {}
    headers = series.headers
    if not suv:
        units = str(headers[0].get("Units", "")).strip().upper() if headers else ""
        return image, {"suv_scale": None, "pet_units": units, "image_units": units}
    scale = suv_scale(headers, patient_id, path)
    return to_suv(image, scale), scale.qc()

"""PET SUVbw from the DICOM tags (QIBA vendor-neutral pseudo-code) and its use at ingest."""
import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from helpers import ingest_cases
from mcrad import dicom, pet
from mcrad.dicomsynth import F18_HALF_LIFE_S, PHI, square, write_pet, write_rtstruct
from mcrad.errors import CaseError
from mcrad.paths import Paths

ACTIVITY, WEIGHT_G, DOSE = 5000.0, 70000.0, 370e6
SUV_60_MIN = ACTIVITY * WEIGHT_G / (DOSE * 2 ** (-3600 / F18_HALF_LIFE_S))  # injected 60 min before the scan


def scale(folder, **kw) -> pet.SuvScale:
    write_pet(folder, ACTIVITY, **kw)
    series = dicom.read_series(folder, "pt01")
    return pet.suv_scale(series.headers, "pt01", folder)


def test_suv_bw_with_start_decay_correction_matches_the_hand_computation(tmp_path):
    s = scale(tmp_path / "pt")
    assert (s.units, s.decay_correction) == ("BQML", "START")
    assert ACTIVITY * s.factor == pytest.approx(SUV_60_MIN, rel=1e-6)
    assert 1.38 < SUV_60_MIN < 1.39  # the hand computation itself: 0.946 / 0.685


def test_per_slice_rescale_slopes_are_applied_slice_by_slice(tmp_path):
    slopes = [1.0, 1.5, 0.7, 2.0, 3.0, 0.9]  # the first slice's slope 1 would make ITK read integers
    write_pet(tmp_path / "pt", ACTIVITY, slopes=slopes)
    series = dicom.read_series(tmp_path / "pt", "pt01")
    suv = sitk.GetArrayFromImage(pet.to_suv(series.image, pet.suv_scale(series.headers, "pt01", tmp_path)))
    expected = np.array([round(ACTIVITY / s) * s for s in slopes]) * SUV_60_MIN / ACTIVITY
    np.testing.assert_allclose(suv[:, 0, 0], expected, rtol=1e-6)


def test_scan_start_is_the_earliest_acquisition_when_the_series_time_is_later(tmp_path):
    late = scale(tmp_path / "late", series_time="113000",  # a series saved again after the scan
                 acquisition_times=["100400", "100000", "100200", "100600", "100800", "101000"])
    early = scale(tmp_path / "early", series_time="100000", acquisition_times=["100500"] * 6)
    assert ACTIVITY * late.factor == pytest.approx(SUV_60_MIN, rel=1e-6)
    assert ACTIVITY * early.factor == pytest.approx(SUV_60_MIN, rel=1e-6)


def test_injection_date_time_across_midnight(tmp_path):
    s = scale(tmp_path / "pt", injection=None, injection_datetime="20190402233000", series_time="003000",
              extra={"SeriesDate": "20190403"})
    assert ACTIVITY * s.factor == pytest.approx(SUV_60_MIN, rel=1e-6)
    with pytest.raises(CaseError, match=r"injection time .* is after the scan start"):
        scale(tmp_path / "no_date", injection="233000", series_time="003000")


def test_admin_decay_correction_uses_the_injected_dose(tmp_path):
    s = scale(tmp_path / "pt", decay_correction="ADMIN", injection=None)
    assert ACTIVITY * s.factor == pytest.approx(ACTIVITY * WEIGHT_G / DOSE, rel=1e-6)


def test_philips_counts_with_the_private_scale_factors(tmp_path):
    suv = scale(tmp_path / "suv", units="CNTS", philips={0x1000: 0.00125})
    assert (suv.units, suv.factor) == ("CNTS", pytest.approx(0.00125, rel=1e-9))
    bqml = scale(tmp_path / "act", units="CNTS", philips={0x1009: 2.0})  # counts x 2 = Bq/ml
    assert ACTIVITY * bqml.factor == pytest.approx(2.0 * SUV_60_MIN, rel=1e-6)
    gml = scale(tmp_path / "gml", units="GML", weight_kg=None)  # already SUVbw
    assert gml.factor == 1.0


@pytest.mark.parametrize(("change", "named"), [
    ({"weight_kg": None}, r"lacks PatientWeight \(0010,1030\)"),
    ({"weight_kg": 0.0}, r"implausible PatientWeight \(0010,1030\)"),
    ({"dose_bq": None}, r"lacks RadionuclideTotalDose \(0018,1074\)"),
    ({"dose_bq": 370.0}, r"implausible RadionuclideTotalDose \(0018,1074\) \(370 Bq\)"),
    ({"half_life_s": None}, r"lacks RadionuclideHalfLife \(0018,1075\)"),
    ({"injection": None}, r"lacks RadiopharmaceuticalStartTime \(0018,1072\)"),
    ({"series_time": None}, r"lacks SeriesTime \(0008,0031\)"),
    ({"units": None}, r"lacks Units \(0054,1001\)"),
    ({"units": "PROPCNTS"}, r"Units \(0054,1001\) 'PROPCNTS'"),
    ({"units": "CNTS"}, r"lacks the Philips SUV scale factor \(7053,1000\)"),
    ({"decay_correction": None}, r"lacks DecayCorrection \(0054,1102\)"),
    ({"decay_correction": "NONE"}, r"DecayCorrection \(0054,1102\) 'NONE'"),
    ({"corrected": None}, r"lacks CorrectedImage \(0028,0051\)"),
    ({"corrected": ("ATTN",)}, r"not decay-corrected .*lacks DECY"),
    ({"corrected": ("DECY",)}, r"not attenuation-corrected"),
    ({"injection_datetime": "20190401090000"}, r"more than 10 half-lives"),
])
def test_a_missing_or_implausible_tag_is_a_case_error_naming_it(tmp_path, change, named):
    with pytest.raises(CaseError, match=named) as info:
        scale(tmp_path / "pt", **{"extra": {"SeriesDate": "20190402"}, **change})
    assert info.value.patient_id == "pt01" and info.value.fix
    for secret in ("70 kg", "70.0", "090000", "100000", "20190402", *PHI.values()):  # weight, times, date, PHI
        assert secret not in info.value.problem


def test_sequence_without_radiopharmaceutical_information_is_refused(tmp_path):
    write_pet(tmp_path / "pt", ACTIVITY)
    headers = dicom.read_series(tmp_path / "pt", "pt01").headers
    for h in headers:
        del h.RadiopharmaceuticalInformationSequence
    with pytest.raises(CaseError, match=r"lacks RadiopharmaceuticalInformationSequence \(0054,0016\)"):
        pet.suv_scale(headers, "pt01", tmp_path)



@pytest.mark.parametrize("suv", [True, False])
def test_ingest_writes_a_pet_series_in_suv_and_records_the_scale(tmp_path, suv):
    rts = {}
    for pid, kw in {"pt01": {"slopes": [1.0, 2.5, 2.0, 4.0, 0.5, 8.0]}, "pt02": {"weight_kg": None}}.items():
        series, frame, ref = write_pet(tmp_path / pid, ACTIVITY, **kw)
        rts[pid] = (tmp_path / pid, write_rtstruct(tmp_path / f"{pid}.dcm", series, frame, ref,
                                                   {"GTV": [(2, square(5, 15))]}))
    out = ingest_cases(tmp_path, rts, pet_suv=suv)
    ok = out.iloc[0]
    assert ok["status"] == "ok" and ok["modality"] == "PT" and ok["pet_units"] == "BQML"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(Paths(tmp_path / "out").case("A", "pt01").ingest_image)))
    if suv:
        assert ok["image_units"] == "SUVbw" and ok["suv_scale"] == pytest.approx(SUV_60_MIN / ACTIVITY, rel=1e-9)
        assert arr.dtype == np.float32 and ok["pixel_type"] == "32-bit float"
        np.testing.assert_allclose(arr, SUV_60_MIN, rtol=1e-6)
        assert out.iloc[1]["status"] == "quarantined"
        assert "PatientWeight (0010,1030)" in out.iloc[1]["message"]
    else:
        assert ok["image_units"] == "BQML" and pd.isna(ok["suv_scale"])
        np.testing.assert_allclose(arr, ACTIVITY, rtol=1e-6)
        assert out.iloc[1]["status"] == "ok"
    text = out.to_csv(sep="\t")
    for value in (*PHI.values(), "20190402", "090000", "100000"):
        assert value not in text, f"{value} reached the QC table"

"""Body-weight SUV from DICOM facts: units, decay correction, dates, overrides and clear errors."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_time import parse_dicom_datetime, parse_dicom_time, parse_user_time
from MTLRadiomicsLib.pet_input.suv import (PHILIPS_SUV_SCALE_TAG, SuvOverrides, suv_conversion_from_dicom,
                                           suv_conversion_from_values)

HALF_LIFE = 6586.2


def header(units="BQML", decay="START", weight="80", dose="370000000", start_time="100000",
           start_datetime=None, series_date="20240305", series_time="110000", half_life=HALF_LIFE):
    ds = Dataset()
    ds.Modality = "PT"
    if units is not None:
        ds.Units = units
    if decay is not None:
        ds.DecayCorrection = decay
    if weight is not None:
        ds.PatientWeight = weight
    if series_date is not None:
        ds.SeriesDate = series_date
    if series_time is not None:
        ds.SeriesTime = series_time
    rp = Dataset()
    if dose is not None:
        rp.RadionuclideTotalDose = dose
    if half_life is not None:
        rp.RadionuclideHalfLife = str(half_life)
    if start_time is not None:
        rp.RadiopharmaceuticalStartTime = start_time
    if start_datetime is not None:
        rp.RadiopharmaceuticalStartDateTime = start_datetime
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    return ds


def expected_factor(weight_kg, dose_bq, elapsed_s, half_life=HALF_LIFE):
    return weight_kg * 1000.0 / (dose_bq * 2 ** (-elapsed_s / half_life))


def test_bqml_start_decays_dose_to_series_start():
    conv = suv_conversion_from_dicom(header())
    assert conv.elapsed_s == 3600.0
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600), rel=1e-9)
    assert conv.decay_factor == pytest.approx(2 ** (-3600 / HALF_LIFE))
    assert conv.sources["reference_time"].startswith("SeriesDate/SeriesTime")


def test_admin_uses_dose_without_decay():
    conv = suv_conversion_from_dicom(header(decay="ADMIN"))
    assert conv.factor == pytest.approx(80 * 1000 / 3.7e8)
    assert conv.decay_factor == 1.0


def test_gml_is_already_suv():
    conv = suv_conversion_from_dicom(header(units="GML", weight=None, dose=None))
    assert conv.factor == 1.0 and conv.units_in_file == "GML"


def test_scan_crossing_midnight_with_times_only():
    # Injection 23:30 the evening before; the series starts 00:40 the next day.
    conv = suv_conversion_from_dicom(header(start_time="233000", series_time="004000"))
    assert conv.elapsed_s == 70 * 60
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 4200))
    assert "midnight" in conv.sources["injection_time"]
    assert conv.injection_datetime == "2024-03-04T23:30:00"


def test_start_datetime_is_preferred_over_time():
    ds = header(start_time="090000", start_datetime="20240305100000.00")
    conv = suv_conversion_from_dicom(ds)
    assert conv.elapsed_s == 3600.0
    assert "StartDateTime" in conv.sources["injection_time"]


def test_start_datetime_on_previous_day():
    ds = header(start_time=None, start_datetime="20240304233000", series_time="003000")
    assert suv_conversion_from_dicom(ds).elapsed_s == 3600.0


def test_series_time_after_acquisition_uses_earliest_acquisition():
    ds = header(series_time="130000")                 # series re-created at 13:00
    acquisitions = [dt.datetime(2024, 3, 5, 11, 0), dt.datetime(2024, 3, 5, 11, 20)]
    conv = suv_conversion_from_dicom(ds, acquisition_datetimes=acquisitions)
    assert conv.elapsed_s == 3600.0
    assert "Acquisition" in conv.sources["reference_time"]


def test_half_life_from_the_tag_is_used():
    conv = suv_conversion_from_dicom(header(half_life=3600.0))   # not F-18
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600, 3600.0))


@pytest.mark.parametrize("field, tag, option", [
    ("weight", "PatientWeight (0010,1030)", "--weight"),
    ("dose", "RadionuclideTotalDose (0018,1074)", "--dose"),
    ("start_time", "RadiopharmaceuticalStartTime (0018,1072)", "--injection-time"),
    ("half_life", "RadionuclideHalfLife (0018,1075)", "--half-life"),
])
def test_missing_fact_names_tag_and_option(field, tag, option):
    with pytest.raises(PetInputError) as info:
        suv_conversion_from_dicom(header(**{field: None}))
    message = str(info.value)
    assert tag in message and option in message and "\n" not in message


def test_missing_series_and_acquisition_time():
    with pytest.raises(PetInputError, match="--scan-time"):
        suv_conversion_from_dicom(header(series_time=None))


def test_overrides_win_over_tags():
    overrides = SuvOverrides(weight_kg=60.0, dose_mbq=300.0, injection_time=dt.time(10, 30))
    conv = suv_conversion_from_dicom(header(weight=None), overrides)
    assert conv.factor == pytest.approx(expected_factor(60, 3e8, 1800))
    assert conv.sources["weight"] == "--weight" and conv.sources["dose"] == "--dose"
    assert conv.sources["injection_time"] == "--injection-time"


def test_cnts_without_philips_factor_is_refused():
    with pytest.raises(PetInputError, match="CNTS"):
        suv_conversion_from_dicom(header(units="CNTS"))


def test_cnts_with_philips_suv_scale_factor():
    ds = header(units="CNTS")
    ds.add_new(PHILIPS_SUV_SCALE_TAG, "DS", "0.000123")
    conv = suv_conversion_from_dicom(ds)
    assert conv.factor == pytest.approx(0.000123)
    assert "Philips" in conv.method


@pytest.mark.parametrize("decay", ["NONE", "XYZ"])
def test_unsupported_decay_correction(decay):
    with pytest.raises(PetInputError, match="DecayCorrection"):
        suv_conversion_from_dicom(header(decay=decay))


def test_other_units_are_refused():
    with pytest.raises(PetInputError, match="Units"):
        suv_conversion_from_dicom(header(units="MGMINML"))


def test_implausible_weight_is_refused():
    with pytest.raises(PetInputError, match="--weight"):
        suv_conversion_from_dicom(header(weight="7100"))       # grams typed as kg


def test_missing_units_needs_overrides():
    with pytest.raises(PetInputError, match="Units"):
        suv_conversion_from_dicom(header(units=None))


def test_bqml_file_values_with_manual_facts():
    conv = suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350,
                                                           injection_time=dt.time(9, 0),
                                                           scan_time=dt.time(10, 0), decay_corrected_to="scan"))
    assert conv.factor == pytest.approx(expected_factor(70, 3.5e8, 3600))
    admin = suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350,
                                                            decay_corrected_to="injection"))
    assert admin.factor == pytest.approx(70 * 1000 / 3.5e8)
    with pytest.raises(PetInputError, match="--dose"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, decay_corrected_to="injection"))
    with pytest.raises(PetInputError, match="--scan-time"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350, decay_corrected_to="scan",
                                                        injection_time=dt.time(9, 0)))


def test_bqml_file_values_need_their_decay_reference():
    with pytest.raises(PetInputError) as error:
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350))
    message = str(error.value)
    assert "--decay-corrected-to scan" in message and "--decay-corrected-to injection" in message
    assert "\n" not in message
    with pytest.raises(PetInputError, match="--injection-time and --scan-time"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350, decay_corrected_to="scan"))
    with pytest.raises(PetInputError, match="no decay"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350, decay_corrected_to="injection",
                                                        injection_time=dt.time(9, 0), scan_time=dt.time(10, 0)))
    with pytest.raises(PetInputError, match="DecayCorrection"):          # a DICOM series says it itself
        suv_conversion_from_dicom(header(), SuvOverrides(decay_corrected_to="scan"))


def test_bqml_file_sources_are_the_options_given():
    scan = suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350, decay_corrected_to="scan",
                                                           injection_time=dt.time(9, 0), scan_time=dt.time(10, 0)))
    assert scan.injection_datetime == "09:00:00" and scan.reference_datetime == "10:00:00"   # no made-up date
    assert scan.sources["decay"] == "--decay-corrected-to scan"
    admin = suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350, decay_corrected_to="injection"))
    assert admin.sources["decay"] == "--decay-corrected-to injection"
    for conv in (scan, admin):
        assert not any("(00" in where or "Decay" in where for where in conv.sources.values()), conv.sources
    dated = suv_conversion_from_values("bqml", SuvOverrides(
        weight_kg=70, dose_mbq=350, decay_corrected_to="scan",
        injection_time=dt.datetime(2024, 3, 5, 9, 0), scan_time=dt.datetime(2024, 3, 5, 10, 0)))
    assert dated.injection_datetime == "2024-03-05T09:00:00"


def test_parsers():
    assert parse_dicom_time("103500.00") == dt.time(10, 35, 0)
    assert parse_dicom_time("0905") == dt.time(9, 5)
    assert parse_dicom_time("10:35:00.5") == dt.time(10, 35, 0, 500000)
    assert parse_dicom_time("") is None and parse_dicom_time("99") is None
    assert parse_dicom_datetime("20050702090500.00+0100") == dt.datetime(2005, 7, 2, 9, 5)
    assert parse_user_time("10:35") == dt.time(10, 35)
    assert parse_user_time("2024-03-05T10:35:00") == dt.datetime(2024, 3, 5, 10, 35)
    assert parse_user_time("103500") == dt.time(10, 35)
    with pytest.raises(ValueError):
        parse_user_time("half past ten")


# ------------------------------------------------------------------ corrections the images carry
def test_corrected_image_without_attn_is_not_quantitative():
    ds = header()
    ds.CorrectedImage = ["DECY", "SCAT"]
    with pytest.raises(PetInputError) as info:
        suv_conversion_from_dicom(ds)
    message = str(info.value)
    assert "CorrectedImage (0028,0051)" in message and "ATTN" in message
    assert "not attenuation corrected" in message and "\n" not in message


def test_corrected_image_without_attn_is_refused_even_as_gml():
    ds = header(units="GML")
    ds.CorrectedImage = "DECY"
    with pytest.raises(PetInputError, match="not attenuation corrected"):
        suv_conversion_from_dicom(ds)


@pytest.mark.parametrize("decay", ["START", "ADMIN"])
def test_corrected_image_without_decy_contradicts_decay_correction(decay):
    ds = header(decay=decay)
    ds.CorrectedImage = ["ATTN", "SCAT"]
    with pytest.raises(PetInputError) as info:
        suv_conversion_from_dicom(ds)
    message = str(info.value)
    assert "DECY" in message and f"DecayCorrection (0054,1102) is {decay}" in message


def test_corrected_image_without_decy_and_no_decay_correction_tag():
    ds = header(decay=None)
    ds.CorrectedImage = ["ATTN"]
    with pytest.raises(PetInputError, match="not decay corrected"):
        suv_conversion_from_dicom(ds)


def test_full_corrected_image_and_absent_corrected_image_both_work():
    ds = header()
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    assert suv_conversion_from_dicom(ds).factor == pytest.approx(expected_factor(80, 3.7e8, 3600))
    assert "CorrectedImage" not in header()
    assert suv_conversion_from_dicom(header()).factor == pytest.approx(expected_factor(80, 3.7e8, 3600))


# ------------------------------------------------------------------ injection after the scan start
def test_full_injection_datetime_after_the_scan_start_is_refused():
    # The injection date-time is stated in full, so it is not a midnight crossing.
    ds = header(start_time=None, start_datetime="20240305120000", series_time="110000")
    with pytest.raises(PetInputError) as info:
        suv_conversion_from_dicom(ds)
    message = str(info.value)
    assert "injection after the scan start" in message
    assert "2024-03-05 12:00:00" in message and "2024-03-05 11:00:00" in message
    assert "RadiopharmaceuticalStartDateTime" in message and "\n" not in message


def test_full_injection_datetime_option_after_the_scan_start_is_refused():
    overrides = SuvOverrides(injection_time=dt.datetime(2024, 3, 5, 11, 30))
    with pytest.raises(PetInputError, match="injection after the scan start"):
        suv_conversion_from_dicom(header(), overrides)


def test_time_of_day_option_after_the_scan_crosses_midnight():
    overrides = SuvOverrides(injection_time=dt.time(23, 50))
    conv = suv_conversion_from_dicom(header(series_time="003000"), overrides)
    assert conv.elapsed_s == 40 * 60 and "midnight" in conv.sources["injection_time"]


def test_time_of_day_just_after_the_scan_is_not_a_midnight_crossing():
    # 11:30 injection, 11:00 series: a day shift would mean 23.5 h of uptake.
    with pytest.raises(PetInputError, match="injection after the scan start"):
        suv_conversion_from_dicom(header(start_time="113000", series_time="110000"))


# ------------------------------------------------------------------ Philips counts
PHILIPS_ACTIVITY_TAG = (0x7053, 0x1009)


def test_cnts_with_activity_concentration_scale_factor_only():
    ds = header(units="CNTS")
    ds.add_new(PHILIPS_ACTIVITY_TAG, "DS", "2.5")         # counts x 2.5 = Bq/ml
    conv = suv_conversion_from_dicom(ds)
    assert conv.factor == pytest.approx(2.5 * expected_factor(80, 3.7e8, 3600), rel=1e-12)
    assert "(7053,1009)" in conv.method and conv.units_in_file == "CNTS"
    assert conv.elapsed_s == 3600.0


def test_cnts_activity_factor_takes_the_overrides():
    ds = header(units="CNTS", weight=None)
    ds.add_new(PHILIPS_SUV_SCALE_TAG, "DS", "0.000123")
    ds.add_new(PHILIPS_ACTIVITY_TAG, "DS", "2.5")
    conv = suv_conversion_from_dicom(ds, SuvOverrides(weight_kg=60.0))
    assert conv.factor == pytest.approx(2.5 * expected_factor(60, 3.7e8, 3600))
    assert conv.sources["weight"] == "--weight"


def test_cnts_with_zero_suv_scale_factor_says_it_is_zero():
    ds = header(units="CNTS")
    ds.add_new(PHILIPS_SUV_SCALE_TAG, "DS", "0")
    with pytest.raises(PetInputError) as info:
        suv_conversion_from_dicom(ds)
    message = str(info.value)
    assert "(7053,1000) is 0" in message and "not present" not in message.split("(7053,1009)")[0]
    assert "(7053,1009) is not present" in message


def test_cnts_zero_suv_factor_falls_back_to_the_activity_factor():
    ds = header(units="CNTS")
    ds.add_new(PHILIPS_SUV_SCALE_TAG, "DS", "0")
    ds.add_new(PHILIPS_ACTIVITY_TAG, "DS", "2.5")
    assert suv_conversion_from_dicom(ds).factor == pytest.approx(2.5 * expected_factor(80, 3.7e8, 3600))


# ------------------------------------------------------------------ ADMIN (PS3.3 C.8.9.4) stays
def test_admin_needs_no_times_and_no_half_life():
    # Images decay corrected to the administration: the dose is used as is, whatever the times say.
    ds = header(decay="ADMIN", start_time=None, half_life=None, series_time="080000")
    ds.CorrectedImage = ["DECY", "ATTN"]
    conv = suv_conversion_from_dicom(ds)
    assert conv.factor == pytest.approx(80 * 1000 / 3.7e8, rel=1e-12)
    assert conv.decay_factor == 1.0 and conv.elapsed_s is None
    assert conv.sources["decay"] == "DecayCorrection (0054,1102) ADMIN"


# --------------------------------------------------------------------------- fallbacks of missing tags
# The injection carries its full date-time (the day before, 23:30); only the scan's date tells that
# the series (00:30) starts one hour later and not 23 hours earlier.
def dated_header(**changes) -> Dataset:
    return header(start_time=None, start_datetime="20240304233000", series_time="003000", **changes)


def test_missing_series_date_falls_back_to_the_acquisition_date():
    ds = dated_header(series_date=None)
    ds.AcquisitionDate = "20240305"
    ds.StudyDate = "20240301"                          # older: the acquisition date comes first
    conv = suv_conversion_from_dicom(ds)
    assert conv.elapsed_s == 3600.0
    assert conv.reference_datetime == "2024-03-05T00:30:00"
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600), rel=1e-9)


def test_missing_series_and_acquisition_dates_fall_back_to_the_study_date():
    ds = dated_header(series_date=None)
    ds.StudyDate = "20240305"
    conv = suv_conversion_from_dicom(ds)
    assert conv.elapsed_s == 3600.0 and conv.reference_datetime == "2024-03-05T00:30:00"
    # With no date at all the full injection date-time cannot be placed: refused, not guessed.
    with pytest.raises(PetInputError):
        suv_conversion_from_dicom(dated_header(series_date=None))


def test_missing_series_time_falls_back_to_the_acquisition_time():
    ds = header(series_time=None)                      # injection 10:00, SeriesDate 2024-03-05
    ds.AcquisitionTime = "111500"
    conv = suv_conversion_from_dicom(ds)
    assert conv.elapsed_s == 4500.0
    assert conv.reference_datetime == "2024-03-05T11:15:00"
    assert conv.sources["reference_time"] == "AcquisitionDate/Time (0008,0022/0032)"
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 4500), rel=1e-9)
    # The slices' own acquisition date-times, when the reader has them, come before the header's.
    conv = suv_conversion_from_dicom(ds, acquisition_datetimes=[dt.datetime(2024, 3, 5, 11, 30),
                                                                dt.datetime(2024, 3, 5, 11, 5)])
    assert conv.elapsed_s == 3900.0
    assert conv.sources["reference_time"].startswith("earliest AcquisitionDate/Time")


def test_missing_decay_correction_is_taken_as_start_and_said_so():
    conv = suv_conversion_from_dicom(header(decay=None))
    start = suv_conversion_from_dicom(header(decay="START"))
    assert conv.factor == pytest.approx(start.factor, rel=1e-12)
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600), rel=1e-9)
    assert conv.decay_correction == "START" and conv.decay_factor == pytest.approx(2 ** (-3600 / HALF_LIFE))
    assert conv.sources["decay"] == "DecayCorrection missing: START assumed"
    assert start.sources["decay"] == "DecayCorrection (0054,1102) START"


def test_fallbacks_through_a_dicom_series(tmp_path):
    """The same on a written series: without SeriesDate, SeriesTime and DecayCorrection, the SUVs
    come from AcquisitionDate/Time (set on every slice 30 min after the stated series start)."""
    import numpy as np
    from synthetic_dicom import edit_headers, small_pet, write_series

    from MTLRadiomicsLib import load_pet

    files = write_series(tmp_path / "pet")

    def strip(ds, _index):
        for keyword in ("SeriesDate", "SeriesTime", "DecayCorrection"):
            delattr(ds, keyword)
        ds.AcquisitionDate, ds.AcquisitionTime = "20240305", "113000"

    edit_headers(files, strip)
    pet = load_pet(tmp_path / "pet")
    conv = pet.suv_conversion
    assert conv.elapsed_s == 5400.0 and conv.reference_datetime == "2024-03-05T11:30:00"
    assert conv.sources["decay"] == "DecayCorrection missing: START assumed"
    # The files hold Bq/ml written for 11:00; taken as corrected to 11:30, the dose has decayed 30 min
    # more, so every SUV is larger by the decay over those 30 min.
    ratio = 2 ** (1800 / HALF_LIFE)
    np.testing.assert_allclose(pet.suv, small_pet().suv * ratio, rtol=2e-4)

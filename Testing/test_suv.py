"""Body-weight SUV from DICOM facts: units, decay correction, dates, overrides and clear errors."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.suv import (PHILIPS_SUV_SCALE_TAG, SuvOverrides, parse_dicom_datetime,
                                 parse_dicom_time, parse_user_time, suv_conversion_from_dicom,
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
                                                           scan_time=dt.time(10, 0)))
    assert conv.factor == pytest.approx(expected_factor(70, 3.5e8, 3600))
    admin = suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350))
    assert admin.factor == pytest.approx(70 * 1000 / 3.5e8)
    with pytest.raises(PetInputError, match="--dose"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70))
    with pytest.raises(PetInputError, match="--scan-time"):
        suv_conversion_from_values("bqml", SuvOverrides(weight_kg=70, dose_mbq=350,
                                                        injection_time=dt.time(9, 0)))


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

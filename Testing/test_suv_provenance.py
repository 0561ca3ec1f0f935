"""SUV provenance and refusals word for word.

The conversion records where each fact came from (``sources``, ``method``: written to result.json
and the report, the audit trail of every SUV) and refuses unusable input with a message naming the
tag and the option that supplies it. These tests pin both exactly, and the arithmetic of the paths
the numeric tests in test_suv.py leave out (Philips activity scale with overrides, the Bq/ml file
path with a half-life given, midnight crossings stated by hand), each against a value computed here.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pydicom.dataset import Dataset

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_time import parse_user_time
from MTLRadiomicsLib.pet_input.suv import (PHILIPS_ACTIVITY_SCALE_TAG, PHILIPS_SUV_SCALE_TAG, SuvOverrides,
                                           private_number, suv_conversion_from_dicom, suv_conversion_from_values)
from test_suv import HALF_LIFE, expected_factor, header


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(PetInputError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------ user times
@pytest.mark.parametrize("text", ["12345", "1234567", "25:00", "half past ten"])
def test_unreadable_user_times_name_the_accepted_forms(text):
    with pytest.raises(ValueError) as info:
        parse_user_time(text)
    assert str(info.value) == f"cannot read time {text!r}; use HH:MM[:SS] or YYYY-MM-DDTHH:MM:SS"


def test_user_times_in_every_accepted_form():
    assert parse_user_time(" 2024-03-05 09:15 ") == dt.datetime(2024, 3, 5, 9, 15)
    assert parse_user_time("0915") == dt.time(9, 15)
    assert parse_user_time("091530") == dt.time(9, 15, 30)
    assert parse_user_time("09:15:30") == dt.time(9, 15, 30)


# ------------------------------------------------------------------ private numeric tags
def test_private_number_reads_each_storage_form():
    ds = Dataset()
    assert private_number(ds, PHILIPS_SUV_SCALE_TAG) == (False, None, "")
    assert private_number(object(), PHILIPS_SUV_SCALE_TAG) == (False, None, "")   # not a dataset
    ds.add_new(PHILIPS_SUV_SCALE_TAG, "UN", b"0.000123\0")                          # implicit VR bytes
    assert private_number(ds, PHILIPS_SUV_SCALE_TAG) == (True, 0.000123, "0.000123")
    ds[PHILIPS_SUV_SCALE_TAG].value = b" 2.5 "
    assert private_number(ds, PHILIPS_SUV_SCALE_TAG) == (True, 2.5, "2.5")
    multi = Dataset()
    multi.add_new(PHILIPS_ACTIVITY_SCALE_TAG, "DS", ["3.5", "7"])
    assert private_number(multi, PHILIPS_ACTIVITY_SCALE_TAG) == (True, 3.5, "3.5")
    for stored, text in (("abc", "abc"), ("inf", "inf"), ("nan", "nan")):
        other = Dataset()
        other.add_new(PHILIPS_SUV_SCALE_TAG, "LO", stored)
        assert private_number(other, PHILIPS_SUV_SCALE_TAG) == (True, None, text)


# ------------------------------------------------------------------ Philips counts
def _cnts(suv=None, activity=None, **kw) -> Dataset:
    ds = header(units="CNTS", **kw)
    if suv is not None:
        ds.add_new(PHILIPS_SUV_SCALE_TAG, "LO", suv)
    if activity is not None:
        ds.add_new(PHILIPS_ACTIVITY_SCALE_TAG, "LO", activity)
    return ds


CNTS_END = ", so counts cannot be turned into SUV; export the series in Bq/ml (BQML) or SUV"


@pytest.mark.parametrize("suv, activity, said", [
    (None, None, "the Philips SUV scale factor (7053,1000) is not present and the activity concentration "
                 "scale factor (7053,1009) is not present"),
    ("abc", None, "the Philips SUV scale factor (7053,1000) is 'abc', not a number and the activity "
                  "concentration scale factor (7053,1009) is not present"),
    ("-2", "0", "the Philips SUV scale factor (7053,1000) is -2 (not positive) and the activity "
                "concentration scale factor (7053,1009) is 0"),
])
def test_counts_refusals_say_what_each_factor_is(suv, activity, said):
    message = refusal(suv_conversion_from_dicom, _cnts(suv, activity))
    assert message == f"Units (0054,1001) is CNTS (raw counts): {said}{CNTS_END}"


def test_counts_with_facts_by_hand_and_only_the_suv_factor_are_refused():
    message = refusal(suv_conversion_from_dicom, _cnts("0.0002"), SuvOverrides(weight_kg=70))
    assert message == ("Units (0054,1001) is CNTS (raw counts): the Philips SUV scale factor (7053,1000) is "
                       "0.0002, but it already holds the header's weight, dose and times, so facts given by hand "
                       "cannot be applied to it and the activity concentration scale factor (7053,1009) is not "
                       "present" + CNTS_END)


def test_counts_suv_factor_provenance():
    conv = suv_conversion_from_dicom(_cnts("0.0002"))
    assert (conv.factor, conv.units_in_file, conv.decay_correction) == (0.0002, "CNTS", "START")
    assert conv.method == "Philips SUV scale factor (7053,1000)"
    assert conv.sources == {"factor": "SUVScaleFactor (7053,1000), Philips private"}


def test_counts_activity_factor_provenance_and_value():
    conv = suv_conversion_from_dicom(_cnts(activity="4"), SuvOverrides(weight_kg=60.0, dose_mbq=300.0))
    assert conv.factor == pytest.approx(4 * expected_factor(60, 3.0e8, 3600), rel=1e-12)
    assert conv.method == ("counts x Philips activity concentration scale factor (7053,1009) 4 = Bq/ml, then "
                           "SUVbw from Bq/ml, dose decayed from injection to series start")
    assert conv.sources["units"] == "Units CNTS x (7053,1009), Philips private: Bq/ml"
    assert conv.sources["weight"] == "--weight" and conv.sources["dose"] == "--dose"


# ------------------------------------------------------------------ DICOM provenance
def test_dicom_bqml_provenance_names_every_tag():
    conv = suv_conversion_from_dicom(header())
    assert conv.method == "SUVbw from Bq/ml, dose decayed from injection to series start"
    assert conv.sources == {
        "units": "Units (0054,1001)", "weight": "PatientWeight (0010,1030)",
        "dose": "RadionuclideTotalDose (0018,1074)", "decay": "DecayCorrection (0054,1102) START",
        "half_life": "RadionuclideHalfLife (0018,1075)",
        "reference_time": "SeriesDate/SeriesTime (0008,0021/0031)",
        "injection_time": "RadiopharmaceuticalStartTime (0018,1072) on the series date"}
    assert (conv.injection_datetime, conv.reference_datetime) == ("2024-03-05T10:00:00", "2024-03-05T11:00:00")
    assert (conv.weight_kg, conv.injected_dose_bq, conv.half_life_s) == (80.0, 3.7e8, HALF_LIFE)


def test_dicom_admin_provenance():
    conv = suv_conversion_from_dicom(header(decay="ADMIN"))
    assert conv.method == "SUVbw from Bq/ml, decay corrected to administration"
    assert conv.sources["decay"] == "DecayCorrection (0054,1102) ADMIN"
    assert (conv.decay_factor, conv.decay_correction, conv.units_in_file) == (1.0, "ADMIN", "BQML")


def test_missing_units_are_taken_as_bqml_and_said_so():
    conv = suv_conversion_from_dicom(header(units=None), SuvOverrides(weight_kg=80))
    assert conv.sources["units"] == "assumed Bq/ml" and conv.units_in_file == "unknown"
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600))


def test_start_datetime_and_injection_option_provenance():
    dated = suv_conversion_from_dicom(header(start_time=None, start_datetime="20240305093000"))
    assert dated.sources["injection_time"] == "RadiopharmaceuticalStartDateTime (0018,1078)"
    assert dated.elapsed_s == 5400.0
    by_hand = suv_conversion_from_dicom(header(), SuvOverrides(injection_time=dt.time(10, 30)))
    assert by_hand.sources["injection_time"] == "--injection-time"
    assert by_hand.injection_datetime == "2024-03-05T10:30:00" and by_hand.elapsed_s == 1800.0


def test_scan_time_option_as_a_time_takes_the_series_date():
    conv = suv_conversion_from_dicom(header(), SuvOverrides(scan_time=dt.time(10, 45)))
    assert conv.sources["reference_time"] == "--scan-time"
    assert conv.reference_datetime == "2024-03-05T10:45:00" and conv.elapsed_s == 2700.0
    dated = suv_conversion_from_dicom(header(), SuvOverrides(scan_time=dt.datetime(2024, 3, 5, 12, 0)))
    assert dated.reference_datetime == "2024-03-05T12:00:00" and dated.elapsed_s == 7200.0


def test_series_time_missing_uses_the_earliest_acquisition_of_the_slices():
    ds = header(series_time=None)
    slices = [dt.datetime(2024, 3, 5, 11, 5), dt.datetime(2024, 3, 5, 10, 50), dt.datetime(2024, 3, 5, 11, 20)]
    conv = suv_conversion_from_dicom(ds, acquisition_datetimes=slices)
    assert conv.sources["reference_time"] == "earliest AcquisitionDate/Time (0008,0022/0032)"
    assert conv.elapsed_s == 3000.0


def test_series_time_after_the_acquisitions_is_replaced_and_said_so():
    conv = suv_conversion_from_dicom(header(series_time="120000"),
                                     acquisition_datetimes=[dt.datetime(2024, 3, 5, 11, 30),
                                                            dt.datetime(2024, 3, 5, 11, 10)])
    assert conv.sources["reference_time"] == "earliest AcquisitionDate/Time (series time lies after it)"
    assert conv.elapsed_s == 4200.0
    before = suv_conversion_from_dicom(header(series_time="110000"),
                                       acquisition_datetimes=[dt.datetime(2024, 3, 5, 11, 0)])
    assert before.sources["reference_time"] == "SeriesDate/SeriesTime (0008,0021/0031)"


# ------------------------------------------------------------------ refusals word for word
def test_dicom_refusals_word_for_word():
    assert refusal(suv_conversion_from_dicom, header(units="PROPCNTS")) == (
        "Units (0054,1001) is 'PROPCNTS'; only BQML (Bq/ml) and GML (SUVbw) PET can be used; re-export the "
        "series in Bq/ml or SUV")
    assert refusal(suv_conversion_from_dicom, header(units=None)) == (
        "Units (0054,1001) is missing, so it is unknown whether values are Bq/ml or SUV; pass --weight, --dose "
        "and --injection-time to convert Bq/ml to SUV")
    assert refusal(suv_conversion_from_dicom, header(weight="0")) == (
        "PatientWeight (0010,1030) is missing or zero; pass the weight with --weight KG")
    assert refusal(suv_conversion_from_dicom, header(weight="600")) == (
        "patient weight 600 kg is implausible; pass --weight KG")
    assert refusal(suv_conversion_from_dicom, header(dose=None)) == (
        "RadionuclideTotalDose (0018,1074) is missing; pass the injected activity with --dose MBQ")
    assert refusal(suv_conversion_from_dicom, header(dose="370")) == (
        "injected dose 370 Bq is implausibly small; pass --dose MBQ")
    assert refusal(suv_conversion_from_dicom, header(decay="NONE")) == (
        "DecayCorrection (0054,1102) is 'NONE'; only START and ADMIN decay-corrected series can be converted to SUV")
    assert refusal(suv_conversion_from_dicom, header(half_life=None)) == (
        "RadionuclideHalfLife (0018,1075) is missing; pass --half-life SECONDS (6586 for F-18)")
    assert refusal(suv_conversion_from_dicom, header(start_time=None)) == (
        "RadiopharmaceuticalStartTime (0018,1072) and RadiopharmaceuticalStartDateTime (0018,1078) are missing; "
        "pass the injection time with --injection-time HH:MM:SS")
    assert refusal(suv_conversion_from_dicom, header(series_time=None)) == (
        "SeriesTime (0008,0031) and AcquisitionTime (0008,0032) are missing; pass the scan start with "
        "--scan-time HH:MM:SS")
    assert refusal(suv_conversion_from_dicom, header(start_time=None, start_datetime="20240303100000")) == (
        "injection 2024-03-03T10:00:00 is 49.0 h before the scan 2024-03-05T11:00:00; check the dates or pass "
        "--injection-time")


def test_injection_after_the_scan_is_refused_word_for_word():
    dated = refusal(suv_conversion_from_dicom, header(start_time=None, start_datetime="20240305113000"))
    assert dated == ("injection after the scan start: injection 2024-03-05 11:30:00 "
                     "[RadiopharmaceuticalStartDateTime (0018,1078)] is 30 min after the scan start "
                     "2024-03-05 11:00:00 [SeriesDate/SeriesTime (0008,0021/0031)]; check the dates and times or "
                     "pass --injection-time")
    late = refusal(suv_conversion_from_dicom, header(start_time="113000"))
    assert late == ("injection after the scan start: injection 2024-03-05 11:30:00 "
                    "[RadiopharmaceuticalStartTime (0018,1072) on the series date] is 30 min after the scan start "
                    "2024-03-05 11:00:00 [SeriesDate/SeriesTime (0008,0021/0031)]; on the previous day it would "
                    "mean 23.5 h of uptake, so it is no midnight crossing; check the times or pass "
                    "--injection-time YYYY-MM-DDTHH:MM:SS")


def test_midnight_crossing_moves_the_injection_to_the_previous_day():
    conv = suv_conversion_from_dicom(header(start_time="233000", series_time="003000", series_date="20240306"))
    assert conv.elapsed_s == 3600.0
    assert conv.injection_datetime == "2024-03-05T23:30:00" and conv.reference_datetime == "2024-03-06T00:30:00"
    assert conv.sources["injection_time"] == ("RadiopharmaceuticalStartTime (0018,1072) on the series date "
                                              "(previous day: scan crossed midnight)")
    assert conv.factor == pytest.approx(expected_factor(80, 3.7e8, 3600))
    # 12 h of uptake is the most a crossing may mean; 12 h 1 min is refused
    edge = suv_conversion_from_dicom(header(start_time="120000", series_time="000000", series_date="20240306"))
    assert edge.elapsed_s == 12 * 3600.0
    with pytest.raises(PetInputError, match=re.escape("12.0 h of uptake")):
        suv_conversion_from_dicom(header(start_time="115900", series_time="000000", series_date="20240306"))


# ------------------------------------------------------------------ Bq/ml image files
FACTS = dict(weight_kg=70.0, dose_mbq=350.0)


def test_values_in_suv_need_nothing_and_say_who_said_so():
    for units in ("suv", "SUV", "Suv"):
        conv = suv_conversion_from_values(units, SuvOverrides())
        assert (conv.factor, conv.units_in_file) == (1.0, "SUV")
        assert conv.method == "values are SUV (stated with --input-units suv)"
        assert conv.sources == {"units": "--input-units"}


def test_bqml_file_provenance_exactly():
    scan = suv_conversion_from_values("BQML", SuvOverrides(**FACTS, decay_corrected_to="scan",
                                                           injection_time=dt.time(9, 0), scan_time=dt.time(10, 30)))
    assert scan.factor == pytest.approx(expected_factor(70, 3.5e8, 5400), rel=1e-12)
    assert scan.sources == {"units": "--input-units bqml", "weight": "--weight", "dose": "--dose",
                            "decay": "--decay-corrected-to scan",
                            "half_life": "F-18 half-life (no --half-life given)",
                            "reference_time": "--scan-time", "injection_time": "--injection-time"}
    given = suv_conversion_from_values("bqml", SuvOverrides(**FACTS, decay_corrected_to="scan", half_life_s=4000.0,
                                                            injection_time=dt.time(9, 0), scan_time=dt.time(10, 0)))
    assert given.factor == pytest.approx(expected_factor(70, 3.5e8, 3600, half_life=4000.0), rel=1e-12)
    assert given.sources["half_life"] == "--half-life" and given.half_life_s == 4000.0
    admin = suv_conversion_from_values("bqml", SuvOverrides(**FACTS, decay_corrected_to="injection"))
    assert admin.sources == {"units": "--input-units bqml", "weight": "--weight", "dose": "--dose",
                             "decay": "--decay-corrected-to injection"}
    assert admin.factor == pytest.approx(70 * 1000 / 3.5e8) and admin.decay_correction == "ADMIN"


@pytest.mark.parametrize("overrides, message", [
    (SuvOverrides(), "a Bq/ml file carries no patient facts; pass --weight and --dose to convert to SUV"),
    (SuvOverrides(weight_kg=70), "a Bq/ml file carries no patient facts; pass --dose to convert to SUV"),
    (SuvOverrides(dose_mbq=350), "a Bq/ml file carries no patient facts; pass --weight to convert to SUV"),
    (SuvOverrides(**FACTS, decay_corrected_to="midnight"),
     "--decay-corrected-to must be 'scan' or 'injection', not 'midnight'"),
    (SuvOverrides(**FACTS, decay_corrected_to="scan", scan_time=dt.time(10, 0)),
     "--decay-corrected-to scan decays the dose from injection to the scan start: pass both --injection-time "
     "and --scan-time"),
    (SuvOverrides(**FACTS, decay_corrected_to="scan", injection_time=dt.datetime(2024, 3, 5, 9, 0),
                  scan_time=dt.time(10, 0)),
     "give --injection-time and --scan-time in the same form: both as times of day (HH:MM[:SS]) or both with "
     "their date (YYYY-MM-DDTHH:MM:SS)"),
    (SuvOverrides(**FACTS, decay_corrected_to="injection", scan_time=dt.time(10, 0)),
     "--decay-corrected-to injection means no decay, so --scan-time would be unused; drop them, or use "
     "--decay-corrected-to scan"),
    (SuvOverrides(**FACTS, decay_corrected_to="injection", injection_time=dt.time(9, 0), scan_time=dt.time(10, 0)),
     "--decay-corrected-to injection means no decay, so --injection-time and --scan-time would be unused; drop "
     "them, or use --decay-corrected-to scan"),
])
def test_bqml_file_refusals_word_for_word(overrides, message):
    assert refusal(suv_conversion_from_values, "bqml", overrides) == message


def test_other_stated_units_are_refused_word_for_word():
    assert refusal(suv_conversion_from_values, "cnts", SuvOverrides(**FACTS)) == (
        "--input-units must be 'suv' or 'bqml', not 'cnts'")


def test_bqml_file_injection_by_hand_after_the_scan_crosses_midnight():
    conv = suv_conversion_from_values("bqml", SuvOverrides(**FACTS, decay_corrected_to="scan",
                                                           injection_time=dt.time(23, 0), scan_time=dt.time(0, 15)))
    assert conv.elapsed_s == 4500.0
    assert conv.factor == pytest.approx(expected_factor(70, 3.5e8, 4500), rel=1e-12)
    assert conv.sources["injection_time"] == "--injection-time (previous day: scan crossed midnight)"
    # times of day only: no made-up date in what is recorded
    assert (conv.injection_datetime, conv.reference_datetime) == ("23:00:00", "00:15:00")
    dated = refusal(suv_conversion_from_values, "bqml", SuvOverrides(
        **FACTS, decay_corrected_to="scan", injection_time=dt.datetime(2024, 3, 6, 0, 30),
        scan_time=dt.datetime(2024, 3, 6, 0, 15)))
    assert dated == ("injection after the scan start: injection 2024-03-06 00:30:00 [--injection-time] is 15 min "
                     "after the scan start 2024-03-06 00:15:00 [--scan-time]; check the dates and times or pass "
                     "--injection-time")


def test_gml_and_assumed_suv_provenance():
    from MTLRadiomicsLib.pet_input.suv import SuvConversion

    gml = suv_conversion_from_dicom(header(units="GML", decay="START"))
    assert (gml.factor, gml.method, gml.units_in_file, gml.decay_correction) == (
        1.0, "Units GML: values are already SUVbw", "GML", "START")
    assert gml.sources == {"units": "Units (0054,1001)"}
    assumed = SuvConversion.assumed_suv()
    assert (assumed.factor, assumed.method, assumed.units_in_file) == (
        1.0, "assumed SUV (file carries no units)", "unknown")


def test_weights_at_the_plausible_bounds_are_accepted():
    for weight in ("1", "500"):
        assert suv_conversion_from_dicom(header(weight=weight)).weight_kg == float(weight)
    assert refusal(suv_conversion_from_dicom, header(weight="0.9")) == (
        "patient weight 0.9 kg is implausible; pass --weight KG")


def _corrected(value, **kw):
    ds = header(**kw)
    ds.CorrectedImage = value
    return ds


def test_corrected_image_refusals_word_for_word():
    assert refusal(suv_conversion_from_dicom, _corrected(["DECY", "SCAT"])) == (
        "CorrectedImage (0028,0051) is DECY\\SCAT, without ATTN: the images are not attenuation corrected, so their "
        "values are not quantitative and SUV cannot be computed; use the attenuation-corrected series (--series UID)")
    assert refusal(suv_conversion_from_dicom, _corrected("")).startswith("CorrectedImage (0028,0051) is empty, without ATTN")
    assert refusal(suv_conversion_from_dicom, _corrected(["attn", " scat "])) == (
        "CorrectedImage (0028,0051) is ATTN\\SCAT, without DECY, but DecayCorrection (0054,1102) is START: the header "
        "contradicts itself on decay correction, so SUV cannot be computed")
    assert refusal(suv_conversion_from_dicom, _corrected(["ATTN"], decay=None)) == (
        "CorrectedImage (0028,0051) is ATTN, without DECY: the images are not decay corrected, so SUV cannot be computed")
    # values already in SUV need no decay correction flag
    assert suv_conversion_from_dicom(_corrected(["ATTN"], units="GML", decay=None)).factor == 1.0


def test_a_dicom_series_refuses_the_bqml_file_option_word_for_word():
    assert refusal(suv_conversion_from_dicom, header(), SuvOverrides(decay_corrected_to="injection")) == (
        "--decay-corrected-to is for Bq/ml image files (--input-units bqml); a DICOM series states its decay "
        "reference in DecayCorrection (0054,1102)")

"""Series-level SUV and tracer facts across slices, on headers built here: what counts as the same
value, what a fact stated by hand exempts (and only that), private Philips factors, and the message."""

from __future__ import annotations

import datetime as dt

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.series_consistency import check_series_consistency
from MTLRadiomicsLib.pet_input.suv import PHILIPS_ACTIVITY_SCALE_TAG, PHILIPS_SUV_SCALE_TAG, SuvOverrides


def slice_header(**changes) -> Dataset:
    ds = Dataset()
    ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["ATTN", "DECY"]
    ds.PatientWeight, ds.SeriesDate, ds.SeriesTime = "70", "20240305", "110000"
    rp = Dataset()
    rp.RadionuclideTotalDose, rp.RadionuclideHalfLife = "370000000", "6586.2"
    rp.RadiopharmaceuticalStartTime, rp.Radiopharmaceutical = "100000", "Fluorodeoxyglucose"
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    for keyword, value in changes.items():
        target = rp if keyword.startswith("Radio") and keyword != "RadiopharmaceuticalInformationSequence" else ds
        if value is None:
            delattr(target, keyword)
        else:
            setattr(target, keyword, value)
    return ds


def refused(headers, overrides=None) -> str:
    with pytest.raises(PetInputError) as info:
        check_series_consistency(headers, overrides)
    return str(info.value)


def test_the_message_names_the_tag_each_value_and_its_slices_and_the_option():
    headers = [slice_header() for _ in range(3)] + [slice_header(PatientWeight="76")]
    assert refused(headers) == (
        "PatientWeight (0010,1030) differs between the slices of the series: 70 (3 slices), 76 (1 slice); the SUV "
        "would depend on which slice is read, so the series is refused; pass --weight KG to state it by hand")
    radio = refused([slice_header(), slice_header(Radiopharmaceutical="Fluciclovine")])
    assert radio.startswith("Radiopharmaceutical (0018,0031) differs") and radio.endswith("series is refused")


@pytest.mark.parametrize("changes", [
    dict(Units="bqml"),                                   # text: case does not matter
    dict(CorrectedImage=["decy", " attn "]),               # a set: neither order nor case
    dict(SeriesTime="110000.000"),                         # one time written two ways
    dict(SeriesDate="2024.03.05"),
    dict(PatientWeight="70.0"),
    dict(RadionuclideHalfLife="6.5862E3"),
])
def test_one_value_written_differently_is_consistent(changes):
    check_series_consistency([slice_header(), slice_header(**changes)])


def test_empty_and_absent_are_both_missing_but_missing_differs_from_present():
    check_series_consistency([slice_header(Radiopharmaceutical=""), slice_header(Radiopharmaceutical=None)])
    no_sequence = slice_header()
    no_sequence.RadiopharmaceuticalInformationSequence = Sequence([])
    message = refused([slice_header(), no_sequence])
    assert message.startswith("RadionuclideTotalDose (0018,1074) differs between the slices of the series: "
                              "370000000 (1 slice), missing (1 slice)")


def test_unreadable_times_are_compared_as_written():
    check_series_consistency([slice_header(SeriesTime="late"), slice_header(SeriesTime="late")])
    assert "late (1 slice), later (1 slice)" in refused([slice_header(SeriesTime="late"),
                                                         slice_header(SeriesTime="later")])


def test_corrected_image_values_are_shown_as_stored():
    message = refused([slice_header(), slice_header(CorrectedImage=["ATTN", "DECY", "SCAT"])])
    assert "ATTN\\DECY (1 slice), ATTN\\DECY\\SCAT (1 slice)" in message


def test_philips_private_factors_must_agree_too():
    def philips(value):
        ds = slice_header(Units="CNTS")
        if value is not None:
            ds.add_new(PHILIPS_SUV_SCALE_TAG, "LO", value)
        return ds

    check_series_consistency([philips("0.000123"), philips("1.23e-4")])
    assert "Philips SUV scale factor (7053,1000) differs between the slices of the series: 0.000123 (1 slice), " \
           "0.000124 (1 slice)" in refused([philips("0.000123"), philips("0.000124")])
    assert "0.000123 (1 slice), missing (1 slice)" in refused([philips("0.000123"), philips(None)])
    activity = [slice_header(Units="CNTS"), slice_header(Units="CNTS")]
    activity[0].add_new(PHILIPS_ACTIVITY_SCALE_TAG, "LO", "2.5")
    activity[1].add_new(PHILIPS_ACTIVITY_SCALE_TAG, "LO", "")
    assert refused(activity).startswith("Philips activity concentration scale factor (7053,1009) differs")


@pytest.mark.parametrize("overrides, exempt, still_checked", [
    (SuvOverrides(weight_kg=70), dict(PatientWeight="80"), dict(RadionuclideTotalDose="1")),
    (SuvOverrides(dose_mbq=370), dict(RadionuclideTotalDose="1"), dict(RadionuclideHalfLife="1")),
    (SuvOverrides(half_life_s=6586.2), dict(RadionuclideHalfLife="1"), dict(PatientWeight="80")),
    (SuvOverrides(injection_time=dt.time(10, 0)),
     dict(RadiopharmaceuticalStartTime="090000", RadiopharmaceuticalStartDateTime="20240305090000"),
     dict(SeriesTime="120000")),
    (SuvOverrides(scan_time=dt.time(11, 0)), dict(SeriesTime="120000"), dict(SeriesDate="20240306")),
    (SuvOverrides(scan_time=dt.datetime(2024, 3, 5, 11, 0)), dict(SeriesTime="120000", SeriesDate="20240306"),
     dict(Units="GML")),
])
def test_a_fact_stated_by_hand_exempts_its_own_tags_only(overrides, exempt, still_checked):
    check_series_consistency([slice_header(), slice_header(**exempt)], overrides)
    with pytest.raises(PetInputError, match="differs between the slices"):
        check_series_consistency([slice_header(), slice_header(**exempt, **still_checked)], overrides)


def test_a_single_slice_is_never_inconsistent():
    check_series_consistency([slice_header(PatientWeight="1")])
    check_series_consistency([])

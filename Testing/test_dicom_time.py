"""DICOM TM, DA and DT values as the standard writes them (PS3.5 6.2), each against the value a
reader of the standard expects."""

from __future__ import annotations

import datetime as dt

import pytest

from MTLRadiomicsLib.pet_input.dicom_time import parse_dicom_date, parse_dicom_datetime, parse_dicom_time


@pytest.mark.parametrize("text, expected", [
    ("10", dt.time(10, 0)),                              # HH
    ("1035", dt.time(10, 35)),                           # HHMM
    ("103517", dt.time(10, 35, 17)),
    ("10:35:17", dt.time(10, 35, 17)),                   # ACR-NEMA colons
    ("103517.25", dt.time(10, 35, 17, 250000)),
    ("103517.999999", dt.time(10, 35, 17, 999999)),
    ("103520.9999996", dt.time(10, 35, 21)),             # rounds up into the next second
    ("103560", dt.time(10, 35, 59)),                     # a leap second is held at 59
    ("000000", dt.time(0, 0)),
    ("235959", dt.time(23, 59, 59)),
    (" 1035 ", dt.time(10, 35)),
])
def test_dicom_times(text, expected):
    assert parse_dicom_time(text) == expected


@pytest.mark.parametrize("text", ["", None, "2400", "1060", "103561", "ab", "10a5", "-1"])
def test_dicom_times_that_are_not_times(text):
    assert parse_dicom_time(text) is None


@pytest.mark.parametrize("text, expected", [
    ("20241231", dt.date(2024, 12, 31)),
    ("2024.12.31", dt.date(2024, 12, 31)),              # ACR-NEMA dots
    ("2024-12-31", dt.date(2024, 12, 31)),
    ("19991001", dt.date(1999, 10, 1)),
])
def test_dicom_dates(text, expected):
    assert parse_dicom_date(text) == expected


@pytest.mark.parametrize("text", ["", None, "2024123", "202412311", "20241301", "20240230", "2024xx31"])
def test_dicom_dates_that_are_not_dates(text):
    assert parse_dicom_date(text) is None


@pytest.mark.parametrize("text, expected", [
    ("20240305103517", dt.datetime(2024, 3, 5, 10, 35, 17)),
    ("20240305103517.5", dt.datetime(2024, 3, 5, 10, 35, 17, 500000)),
    ("20240305", dt.datetime(2024, 3, 5)),                              # a date alone: midnight
    ("2024030510", dt.datetime(2024, 3, 5, 10)),
    ("2024030510+0100", dt.datetime(2024, 3, 5, 10)),                   # the UTC offset is ignored
    ("20240305103517-0500", dt.datetime(2024, 3, 5, 10, 35, 17)),
    ("20240305-0500", dt.datetime(2024, 3, 5)),                         # an offset straight after the date
])
def test_dicom_datetimes(text, expected):
    assert parse_dicom_datetime(text) == expected


@pytest.mark.parametrize("text", ["", None, "2024", "20241305103517", "2024030525"])
def test_dicom_datetimes_that_are_not_datetimes(text):
    assert parse_dicom_datetime(text) is None

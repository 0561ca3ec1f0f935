"""DICOM date and time values (DA, TM, DT) and the date-times users type on the command line."""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional


def parse_dicom_time(value: Any) -> Optional[dt.time]:
    """Parse a DICOM TM value (HHMMSS.FFFFFF, HHMM, HH, or with colons) into a time."""
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    try:
        hours = int(text[0:2])
        minutes = int(text[2:4]) if len(text) >= 4 else 0
        seconds_text = text[4:] if len(text) > 4 else "0"
        seconds = float(seconds_text)
    except ValueError:
        return None
    whole = int(seconds)
    micro = int(round((seconds - whole) * 1e6))
    if micro >= 1_000_000:
        whole, micro = whole + 1, 0
    if not (0 <= hours < 24 and 0 <= minutes < 60 and 0 <= whole < 61):
        return None
    return dt.time(hours, minutes, min(whole, 59), micro)


def parse_dicom_date(value: Any) -> Optional[dt.date]:
    """Parse a DICOM DA value (YYYYMMDD, or YYYY.MM.DD) into a date."""
    text = str(value or "").strip().replace(".", "").replace("-", "")
    if len(text) != 8:
        return None
    try:
        return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None


def parse_dicom_datetime(value: Any) -> Optional[dt.datetime]:
    """Parse a DICOM DT value (YYYYMMDDHHMMSS.FFFFFF with an optional &ZZXX offset, ignored)."""
    text = str(value or "").strip()
    if not text:
        return None
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    day = parse_dicom_date(text[:8])
    if day is None:
        return None
    time = parse_dicom_time(text[8:]) if len(text) > 8 else dt.time(0, 0)
    if time is None:
        return None
    return dt.datetime.combine(day, time)


def parse_user_time(text: str) -> dt.datetime | dt.time:
    """Parse a user's date-time: 'YYYY-MM-DD HH:MM[:SS]', ISO 'YYYY-MM-DDTHH:MM:SS', 'HH:MM[:SS]'
    or DICOM 'HHMMSS'. Raises ValueError with the accepted forms."""
    raw = text.strip()
    try:
        return dt.datetime.fromisoformat(raw)
    except ValueError:
        pass
    try:
        return dt.time.fromisoformat(raw)
    except ValueError:
        pass
    as_dicom = parse_dicom_time(raw) if raw.isdigit() and len(raw) in (4, 6) else None
    if as_dicom is not None:
        return as_dicom
    raise ValueError(f"cannot read time {text!r}; use HH:MM[:SS] or YYYY-MM-DDTHH:MM:SS")

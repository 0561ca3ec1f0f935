"""Series-level SUV and tracer facts must be the same on every slice of a PET series.

The SUV conversion reads these facts from one slice; when slices disagree (one slice at 76 kg among
67 kg ones) the result would depend on which slice is read, so such a series is refused, naming the
tag and the values found. A fact the user states by hand (--weight, --dose, ...) is not checked.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional, Sequence

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_time import parse_dicom_date, parse_dicom_datetime, parse_dicom_time
from MTLRadiomicsLib.pet_input.suv import (PHILIPS_ACTIVITY_SCALE_TAG, PHILIPS_SUV_SCALE_TAG, SuvOverrides,
                                           private_number)

MISSING = "missing"


@dataclass(frozen=True)
class SeriesFact:
    """One tag that must not vary between slices."""

    name: str
    tag: str
    kind: str                           # number, text, set, time, date, datetime
    option: Optional[str] = None        # the option that states it by hand
    in_radiopharmaceutical: bool = False
    private: Optional[tuple[int, int]] = None


SERIES_FACTS: tuple[SeriesFact, ...] = (
    SeriesFact("Units", "(0054,1001)", "text"),
    SeriesFact("DecayCorrection", "(0054,1102)", "text"),
    SeriesFact("CorrectedImage", "(0028,0051)", "set"),
    SeriesFact("PatientWeight", "(0010,1030)", "number", "--weight KG"),
    SeriesFact("SeriesDate", "(0008,0021)", "date", "--scan-time"),
    SeriesFact("SeriesTime", "(0008,0031)", "time", "--scan-time"),
    SeriesFact("RadionuclideTotalDose", "(0018,1074)", "number", "--dose MBQ", True),
    SeriesFact("RadionuclideHalfLife", "(0018,1075)", "number", "--half-life S", True),
    SeriesFact("RadiopharmaceuticalStartTime", "(0018,1072)", "time", "--injection-time", True),
    SeriesFact("RadiopharmaceuticalStartDateTime", "(0018,1078)", "datetime", "--injection-time", True),
    SeriesFact("Radiopharmaceutical", "(0018,0031)", "text", None, True),
    SeriesFact("Philips SUV scale factor", "(7053,1000)", "number", private=PHILIPS_SUV_SCALE_TAG),
    SeriesFact("Philips activity concentration scale factor", "(7053,1009)", "number",
               private=PHILIPS_ACTIVITY_SCALE_TAG),
)

_PARSERS: dict[str, Callable[[str], Any]] = {
    "date": parse_dicom_date, "time": parse_dicom_time, "datetime": parse_dicom_datetime,
}


def _raw(ds: Any, fact: SeriesFact) -> Optional[Any]:
    """The stored value of ``fact`` on one slice, or None when absent or empty."""
    if fact.private is not None:
        present, _, text = private_number(ds, fact.private)
        return text if present and text else None
    source = ds
    if fact.in_radiopharmaceutical:
        sequence = ds.get("RadiopharmaceuticalInformationSequence", None)
        source = sequence[0] if sequence else None
    value = source.get(fact.name, None) if source is not None else None
    if value is None or str(value).strip() == "":
        return None
    return value


def _key(value: Any, kind: str) -> Hashable:
    """A comparable form: '67' and '67.0' are one weight, '110000' and '110000.00' one time."""
    if kind == "set":
        items = [value] if isinstance(value, str) else list(value)
        return frozenset(str(v).strip().upper() for v in items)
    text = str(value).strip()
    if kind == "number":
        try:
            return float(f"{float(text):.9g}")
        except ValueError:
            return text
    if kind in _PARSERS:
        parsed = _PARSERS[kind](text)
        return parsed if parsed is not None else text
    return text.upper()


def _shown(value: Any, kind: str) -> str:
    if kind == "set":
        items = [value] if isinstance(value, str) else list(value)
        return "\\".join(str(v).strip() for v in items)
    return str(value).strip()


def _skipped(fact: SeriesFact, overrides: SuvOverrides) -> bool:
    if fact.name == "SeriesDate":           # a scan time of day still takes the series date
        return isinstance(overrides.scan_time, dt.datetime)
    stated = {"--weight KG": overrides.weight_kg, "--dose MBQ": overrides.dose_mbq,
              "--half-life S": overrides.half_life_s, "--injection-time": overrides.injection_time,
              "--scan-time": overrides.scan_time}
    return fact.option is not None and stated.get(fact.option) is not None


def check_series_consistency(headers: Sequence[Any], overrides: Optional[SuvOverrides] = None) -> None:
    """Refuse a series whose slices disagree on a series-level SUV or tracer fact.

    Raises:
        PetInputError: naming the tag and each value found with its number of slices.
    """
    overrides = overrides or SuvOverrides()
    if len(headers) < 2:
        return
    for fact in SERIES_FACTS:
        if _skipped(fact, overrides):
            continue
        counts: Counter = Counter()
        shown: dict[Hashable, str] = {}
        for ds in headers:
            raw = _raw(ds, fact)
            key = MISSING if raw is None else _key(raw, fact.kind)
            counts[key] += 1
            shown.setdefault(key, MISSING if raw is None else _shown(raw, fact.kind))
        if len(counts) < 2:
            continue
        found = ", ".join(f"{shown[key]} ({n} slice{'s' if n > 1 else ''})" for key, n in counts.most_common())
        hint = f"; pass {fact.option} to state it by hand" if fact.option else ""
        raise PetInputError(
            f"{fact.name} {fact.tag} differs between the slices of the series: {found}; the SUV would "
            f"depend on which slice is read, so the series is refused{hint}")

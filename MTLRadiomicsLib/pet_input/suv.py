"""Body-weight SUV (SUVbw, g/ml) from DICOM PET header facts, with manual overrides.

SUVbw = activity concentration (Bq/ml) x body weight (g) / decay-corrected injected dose (Bq).
The decay correction depends on DecayCorrection (0054,1102):
  START: images are decay corrected to the series start, so the dose is decayed from injection
         to the series (or earliest acquisition) date-time;
  ADMIN: images are decay corrected to the administration time, so the dose is used as is.
Units (0054,1001) GML means the values are already SUV; CNTS (Philips counts) is used through the
private SUV scale factor (7053,1000), or through the activity concentration scale factor (7053,1009)
that turns rescaled counts into Bq/ml, after which the series is treated as BQML.
CorrectedImage (0028,0051), when present, must list ATTN (else the values are not quantitative) and
DECY (else it contradicts DecayCorrection). An injection after the scan start is refused unless only
its time of day is known and the scan crossed midnight.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_time import parse_dicom_date, parse_dicom_datetime, parse_dicom_time

PHILIPS_SUV_SCALE_TAG = (0x7053, 0x1000)          # SUVbw per rescaled count
PHILIPS_ACTIVITY_SCALE_TAG = (0x7053, 0x1009)     # Bq/ml per rescaled count
F18_HALF_LIFE_S = 6586.2  # seconds (109.77 min)
MAX_MIDNIGHT_UPTAKE_S = 12 * 3600   # a day shift giving more uptake than this is no midnight crossing


@dataclass
class SuvOverrides:
    """Facts a user supplies by hand; each replaces the DICOM tag of the same meaning.

    weight_kg: patient weight in kg (--weight).
    dose_mbq: injected activity in MBq at injection time (--dose).
    injection_time: injection date-time, or a time of day on the scan date (--injection-time).
    half_life_s: radionuclide half-life in seconds (--half-life).
    scan_time: reference date-time the images are decay corrected to (--scan-time); used for
        non-DICOM input in Bq/ml or when the series time is missing.
    decay_corrected_to: for a Bq/ml image file, the time its values refer to (--decay-corrected-to):
        'scan' (the scan start: the dose is decayed from injection to it) or 'injection' (no decay).
    """

    weight_kg: Optional[float] = None
    dose_mbq: Optional[float] = None
    injection_time: Optional[dt.datetime | dt.time] = None
    half_life_s: Optional[float] = None
    scan_time: Optional[dt.datetime | dt.time] = None
    decay_corrected_to: Optional[str] = None

    def any(self) -> bool:
        return any(v is not None for v in (self.weight_kg, self.dose_mbq, self.injection_time,
                                           self.half_life_s, self.scan_time, self.decay_corrected_to))


@dataclass
class SuvConversion:
    """How stored voxel values (after DICOM rescale) were turned into SUVbw: SUV = value x factor."""

    factor: float = 1.0
    method: str = "assumed SUV"
    units_in_file: str = "unknown"
    decay_correction: Optional[str] = None
    weight_kg: Optional[float] = None
    injected_dose_bq: Optional[float] = None
    half_life_s: Optional[float] = None
    injection_datetime: Optional[str] = None
    reference_datetime: Optional[str] = None
    elapsed_s: Optional[float] = None
    decay_factor: Optional[float] = None
    sources: dict[str, str] = field(default_factory=dict)

    @classmethod
    def assumed_suv(cls) -> "SuvConversion":
        return cls(method="assumed SUV (file carries no units)", units_in_file="unknown")


# --------------------------------------------------------------------------- tag helpers
def _tag_text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, None) if ds is not None else None
    return "" if value is None else str(value).strip()


def _positive_float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def private_number(ds: Any, tag: tuple[int, int]) -> tuple[bool, Optional[float], str]:
    """(present, value if a finite number, text as stored) of a private numeric tag such as
    (7053,1000); values stored as UN bytes are decoded."""
    element = ds.get(tag, None) if hasattr(ds, "dir") else None
    if element is None:
        return False, None, ""
    value = element.value
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace").strip("\0 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else ""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return True, None, text
    return True, (number if math.isfinite(number) else None), text


def _radiopharmaceutical(ds: Any) -> Any:
    seq = ds.get("RadiopharmaceuticalInformationSequence", None)
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


UNKNOWN_DAY = dt.date(1900, 1, 1)   # stands for a date nobody gave; never shown


def _combine(day: Optional[dt.date], time: Optional[dt.time]) -> Optional[dt.datetime]:
    if time is None:
        return None
    return dt.datetime.combine(day or UNKNOWN_DAY, time)


def _when(moment: dt.datetime, day_known: bool, sep: str = "T") -> str:
    """ISO date-time, or only the time of day when no date was known."""
    return moment.isoformat(sep=sep) if day_known else moment.time().isoformat()


# --------------------------------------------------------------------------- main entry
def suv_conversion_from_dicom(
    ds: Any,
    overrides: Optional[SuvOverrides] = None,
    acquisition_datetimes: Iterable[dt.datetime] = (),
) -> SuvConversion:
    """Derive the SUVbw factor for a PET series from one representative header.

    Args:
        ds: a pydicom Dataset of the series (pixel data not needed).
        overrides: facts supplied by hand; they win over the tags.
        acquisition_datetimes: AcquisitionDate/Time of every slice; the earliest is used as the
            reference when the series time lies after it (a re-reconstructed series).
    Raises:
        PetInputError: naming the missing or unusable tag and the option that supplies it.
    """
    ov = overrides or SuvOverrides()
    if ov.decay_corrected_to is not None:
        raise PetInputError(
            "--decay-corrected-to is for Bq/ml image files (--input-units bqml); a DICOM series states its "
            "decay reference in DecayCorrection (0054,1102)")
    units = _tag_text(ds, "Units").upper() or "unknown"
    decay = _tag_text(ds, "DecayCorrection").upper() or None
    check_corrected_image(ds, units, decay)

    if units == "GML":
        return SuvConversion(factor=1.0, method="Units GML: values are already SUVbw",
                             units_in_file="GML", decay_correction=decay,
                             sources={"units": "Units (0054,1001)"})
    if units == "CNTS":
        return _philips_counts_to_suv(ds, ov, decay, acquisition_datetimes)
    if units not in ("BQML", "unknown"):
        raise PetInputError(
            f"Units (0054,1001) is {units!r}; only BQML (Bq/ml) and GML (SUVbw) PET can be used; "
            "re-export the series in Bq/ml or SUV")
    if units == "unknown" and not ov.any():
        raise PetInputError(
            "Units (0054,1001) is missing, so it is unknown whether values are Bq/ml or SUV; "
            "pass --weight, --dose and --injection-time to convert Bq/ml to SUV")
    return _bqml_to_suv(ds, ov, units, decay, acquisition_datetimes)


def check_corrected_image(ds: Any, units: str, decay: Optional[str]) -> None:
    """Refuse images whose CorrectedImage (0028,0051) lacks ATTN (not quantitative) or lacks DECY
    (not decay corrected, contradicting DecayCorrection). An absent CorrectedImage is accepted."""
    value = ds.get("CorrectedImage", None) if ds is not None else None
    if value is None:
        return
    items = [value] if isinstance(value, str) else list(value)
    corrections = [str(v).strip().upper() for v in items if str(v).strip()]
    listed = "\\".join(corrections) or "empty"
    if "ATTN" not in corrections:
        raise PetInputError(
            f"CorrectedImage (0028,0051) is {listed}, without ATTN: the images are not attenuation "
            "corrected, so their values are not quantitative and SUV cannot be computed; use the "
            "attenuation-corrected series (--series UID)")
    if "DECY" in corrections:
        return
    if decay in ("START", "ADMIN"):
        raise PetInputError(
            f"CorrectedImage (0028,0051) is {listed}, without DECY, but DecayCorrection (0054,1102) "
            f"is {decay}: the header contradicts itself on decay correction, so SUV cannot be computed")
    if decay is None and units != "GML":
        raise PetInputError(
            f"CorrectedImage (0028,0051) is {listed}, without DECY: the images are not decay "
            "corrected, so SUV cannot be computed")


def _describe_factor(tag: tuple[int, int], present: bool, value: Optional[float], text: str) -> str:
    where = f"({tag[0]:04X},{tag[1]:04X})"
    if not present:
        return f"{where} is not present"
    if value is None:
        return f"{where} is {text!r}, not a number"
    return f"{where} is {value:g}" + (" (not positive)" if value < 0 else "")


def _philips_counts_to_suv(ds: Any, ov: SuvOverrides, decay: Optional[str],
                           acquisition_datetimes: Iterable[dt.datetime]) -> SuvConversion:
    """Units CNTS: the Philips SUV scale factor (7053,1000) gives SUVbw per rescaled count; without it
    (or with facts stated by hand) the activity concentration scale factor (7053,1009) turns rescaled
    counts into Bq/ml, which are then converted like BQML."""
    suv_present, suv_scale, suv_text = private_number(ds, PHILIPS_SUV_SCALE_TAG)
    act_present, act_scale, act_text = private_number(ds, PHILIPS_ACTIVITY_SCALE_TAG)
    if suv_scale is not None and suv_scale > 0 and not ov.any():
        return SuvConversion(factor=suv_scale, method="Philips SUV scale factor (7053,1000)",
                             units_in_file="CNTS", decay_correction=decay,
                             sources={"factor": "SUVScaleFactor (7053,1000), Philips private"})
    if act_scale is not None and act_scale > 0:
        conversion = _bqml_to_suv(ds, ov, "CNTS", decay, acquisition_datetimes)
        conversion.factor *= act_scale
        conversion.method = (f"counts x Philips activity concentration scale factor (7053,1009) "
                             f"{act_scale:g} = Bq/ml, then {conversion.method}")
        conversion.sources["units"] = "Units CNTS x (7053,1009), Philips private: Bq/ml"
        return conversion
    suv_part = _describe_factor(PHILIPS_SUV_SCALE_TAG, suv_present, suv_scale, suv_text)
    if suv_scale is not None and suv_scale > 0:
        suv_part += (", but it already holds the header's weight, dose and times, so facts given by "
                     "hand cannot be applied to it")
    act_part = _describe_factor(PHILIPS_ACTIVITY_SCALE_TAG, act_present, act_scale, act_text)
    raise PetInputError(
        f"Units (0054,1001) is CNTS (raw counts): the Philips SUV scale factor {suv_part} and the "
        f"activity concentration scale factor {act_part}, so counts cannot be turned into SUV; "
        "export the series in Bq/ml (BQML) or SUV")


def _bqml_to_suv(ds: Any, ov: SuvOverrides, units: str, decay: Optional[str],
                 acquisition_datetimes: Iterable[dt.datetime]) -> SuvConversion:
    sources: dict[str, str] = {"units": "Units (0054,1001)" if units == "BQML" else "assumed Bq/ml"}
    rp = _radiopharmaceutical(ds)

    # -- weight
    if ov.weight_kg is not None:
        weight, sources["weight"] = float(ov.weight_kg), "--weight"
    else:
        weight = _positive_float(ds.get("PatientWeight", None))
        if weight is None:
            raise PetInputError(
                "PatientWeight (0010,1030) is missing or zero; pass the weight with --weight KG")
        sources["weight"] = "PatientWeight (0010,1030)"
    if not (1.0 <= weight <= 500.0):
        raise PetInputError(f"patient weight {weight:g} kg is implausible; pass --weight KG")

    # -- dose
    if ov.dose_mbq is not None:
        dose, sources["dose"] = float(ov.dose_mbq) * 1e6, "--dose"
    else:
        dose = _positive_float(rp.get("RadionuclideTotalDose", None)) if rp is not None else None
        if dose is None:
            raise PetInputError(
                "RadionuclideTotalDose (0018,1074) is missing; pass the injected activity with "
                "--dose MBQ")
        sources["dose"] = "RadionuclideTotalDose (0018,1074)"
    if dose < 1e6:  # below 1 MBq: almost certainly given in MBq instead of Bq
        raise PetInputError(f"injected dose {dose:g} Bq is implausibly small; pass --dose MBQ")

    if decay == "ADMIN":
        return SuvConversion(
            factor=weight * 1000.0 / dose, method="SUVbw from Bq/ml, decay corrected to administration",
            units_in_file=units, decay_correction=decay, weight_kg=weight, injected_dose_bq=dose,
            decay_factor=1.0, sources=sources | {"decay": "DecayCorrection (0054,1102) ADMIN"})
    if decay not in ("START", None):
        raise PetInputError(
            f"DecayCorrection (0054,1102) is {decay!r}; only START and ADMIN decay-corrected "
            "series can be converted to SUV")
    sources["decay"] = ("DecayCorrection (0054,1102) START" if decay == "START"
                        else "DecayCorrection missing: START assumed")

    # -- half-life
    if ov.half_life_s is not None:
        half_life, sources["half_life"] = float(ov.half_life_s), "--half-life"
    else:
        half_life = _positive_float(rp.get("RadionuclideHalfLife", None)) if rp is not None else None
        if half_life is None:
            raise PetInputError(
                "RadionuclideHalfLife (0018,1075) is missing; pass --half-life SECONDS "
                "(6586 for F-18)")
        sources["half_life"] = "RadionuclideHalfLife (0018,1075)"

    reference, sources["reference_time"] = _reference_datetime(ds, ov, acquisition_datetimes)
    injection, sources["injection_time"], day_assumed = _injection_datetime(ds, rp, ov, reference)

    day_known = reference.date() != UNKNOWN_DAY
    elapsed = (reference - injection).total_seconds()
    if elapsed < 0:
        injection, elapsed = _midnight_crossing(injection, reference, elapsed, day_assumed, sources, day_known)
    if elapsed > 24 * 3600:
        raise PetInputError(
            f"injection {injection.isoformat()} is {elapsed / 3600:.1f} h before the scan "
            f"{reference.isoformat()}; check the dates or pass --injection-time")
    decay_factor = 2.0 ** (-elapsed / half_life)
    return SuvConversion(
        factor=weight * 1000.0 / (dose * decay_factor),
        method="SUVbw from Bq/ml, dose decayed from injection to series start",
        units_in_file=units, decay_correction=decay or "START", weight_kg=weight,
        injected_dose_bq=dose, half_life_s=half_life,
        injection_datetime=_when(injection, day_known), reference_datetime=_when(reference, day_known),
        elapsed_s=elapsed, decay_factor=decay_factor, sources=sources)


def _reference_datetime(ds: Any, ov: SuvOverrides,
                        acquisition_datetimes: Iterable[dt.datetime]) -> tuple[dt.datetime, str]:
    """The date-time the images are decay corrected to (series start)."""
    series_date = parse_dicom_date(_tag_text(ds, "SeriesDate")) or parse_dicom_date(
        _tag_text(ds, "AcquisitionDate")) or parse_dicom_date(_tag_text(ds, "StudyDate"))
    if ov.scan_time is not None:
        if isinstance(ov.scan_time, dt.datetime):
            return ov.scan_time, "--scan-time"
        return _combine(series_date, ov.scan_time), "--scan-time"  # type: ignore[return-value]
    series = _combine(series_date, parse_dicom_time(_tag_text(ds, "SeriesTime")))
    acquisitions = sorted(acquisition_datetimes)
    if series is None:
        if acquisitions:
            return acquisitions[0], "earliest AcquisitionDate/Time (0008,0022/0032)"
        acquisition = _combine(series_date, parse_dicom_time(_tag_text(ds, "AcquisitionTime")))
        if acquisition is None:
            raise PetInputError(
                "SeriesTime (0008,0031) and AcquisitionTime (0008,0032) are missing; pass the scan "
                "start with --scan-time HH:MM:SS")
        return acquisition, "AcquisitionDate/Time (0008,0022/0032)"
    if acquisitions and series > acquisitions[0] and series_date is not None:
        # The series was re-created after the scan; the acquisition start is the true reference.
        return acquisitions[0], "earliest AcquisitionDate/Time (series time lies after it)"
    return series, "SeriesDate/SeriesTime (0008,0021/0031)"


def _injection_datetime(ds: Any, rp: Any, ov: SuvOverrides,
                        reference: dt.datetime) -> tuple[dt.datetime, str, bool]:
    """(injection date-time, where it came from, whether its date was taken from the scan date)."""
    if ov.injection_time is not None:
        if isinstance(ov.injection_time, dt.datetime):
            return ov.injection_time, "--injection-time", False
        return dt.datetime.combine(reference.date(), ov.injection_time), "--injection-time", True
    if rp is not None:
        start_dt = parse_dicom_datetime(_tag_text(rp, "RadiopharmaceuticalStartDateTime"))
        if start_dt is not None:
            return start_dt, "RadiopharmaceuticalStartDateTime (0018,1078)", False
        start_time = parse_dicom_time(_tag_text(rp, "RadiopharmaceuticalStartTime"))
        if start_time is not None:
            return (dt.datetime.combine(reference.date(), start_time),
                    "RadiopharmaceuticalStartTime (0018,1072) on the series date", True)
    raise PetInputError(
        "RadiopharmaceuticalStartTime (0018,1072) and RadiopharmaceuticalStartDateTime (0018,1078) "
        "are missing; pass the injection time with --injection-time HH:MM:SS")


def _midnight_crossing(injection: dt.datetime, reference: dt.datetime, elapsed: float,
                       day_assumed: bool, sources: dict[str, str],
                       day_known: bool = True) -> tuple[dt.datetime, float]:
    """An injection that lies after the scan start: the previous day when only its time of day was
    known and the scan crossed midnight; otherwise refused."""
    where = f"injection {_when(injection, day_known, ' ')} [{sources['injection_time']}] is " \
            f"{-elapsed / 60:.0f} min after the scan start {_when(reference, day_known, ' ')} " \
            f"[{sources['reference_time']}]"
    if not day_assumed:
        raise PetInputError(f"injection after the scan start: {where}; check the dates and times "
                            "or pass --injection-time")
    shifted = elapsed + 86400.0
    if shifted > MAX_MIDNIGHT_UPTAKE_S:
        raise PetInputError(
            f"injection after the scan start: {where}; on the previous day it would mean "
            f"{shifted / 3600:.1f} h of uptake, so it is no midnight crossing; check the times or "
            "pass --injection-time YYYY-MM-DDTHH:MM:SS")
    sources["injection_time"] += " (previous day: scan crossed midnight)"
    return injection - dt.timedelta(days=1), shifted


DECAY_REFERENCES = ("scan", "injection")


def suv_conversion_from_values(units: str, overrides: SuvOverrides) -> SuvConversion:
    """SUV conversion for a non-DICOM file whose units the user states ('suv' or 'bqml').

    A Bq/ml file carries no decay reference, so the user states it (``decay_corrected_to``): 'scan'
    (values decay corrected to the scan start; the dose is decayed from --injection-time to
    --scan-time) or 'injection' (values refer to the injection time; the dose is used as is).
    """
    if units.lower() == "suv":
        return SuvConversion(factor=1.0, method="values are SUV (stated with --input-units suv)",
                             units_in_file="SUV", sources={"units": "--input-units"})
    if units.lower() != "bqml":
        raise PetInputError(f"--input-units must be 'suv' or 'bqml', not {units!r}")
    missing = [opt for opt, val in (("--weight", overrides.weight_kg), ("--dose", overrides.dose_mbq))
               if val is None]
    if missing:
        raise PetInputError(
            f"a Bq/ml file carries no patient facts; pass {' and '.join(missing)} to convert to SUV")
    reference = _decay_reference(overrides)
    decay = "START" if reference == "scan" else "ADMIN"
    header = {"Units": "BQML", "DecayCorrection": decay}
    half_life = overrides.half_life_s or F18_HALF_LIFE_S
    conversion = suv_conversion_from_dicom(
        header, SuvOverrides(overrides.weight_kg, overrides.dose_mbq, overrides.injection_time,
                             half_life, overrides.scan_time))
    if overrides.half_life_s is None and decay == "START":
        conversion.sources["half_life"] = "F-18 half-life (no --half-life given)"
    conversion.sources["units"] = "--input-units bqml"
    conversion.sources["decay"] = f"--decay-corrected-to {reference}"
    return conversion


def _decay_reference(overrides: SuvOverrides) -> str:
    """'scan' or 'injection' as stated, with the times each needs (and only those)."""
    reference = overrides.decay_corrected_to
    if reference is None:
        raise PetInputError(
            "a Bq/ml file does not say when its values were decay corrected: pass --decay-corrected-to scan "
            "(to the scan start, as PET scanners usually export; needs --injection-time and --scan-time) or "
            "--decay-corrected-to injection (values already refer to the injection time)")
    if reference not in DECAY_REFERENCES:
        raise PetInputError(f"--decay-corrected-to must be 'scan' or 'injection', not {reference!r}")
    given = [opt for opt, val in (("--injection-time", overrides.injection_time),
                                  ("--scan-time", overrides.scan_time)) if val is not None]
    if reference == "scan" and len(given) < 2:
        raise PetInputError(
            "--decay-corrected-to scan decays the dose from injection to the scan start: pass both "
            "--injection-time and --scan-time")
    if reference == "scan" and isinstance(overrides.injection_time, dt.datetime) != isinstance(
            overrides.scan_time, dt.datetime):
        raise PetInputError(
            "give --injection-time and --scan-time in the same form: both as times of day (HH:MM[:SS]) or "
            "both with their date (YYYY-MM-DDTHH:MM:SS)")
    if reference == "injection" and given:
        raise PetInputError(
            f"--decay-corrected-to injection means no decay, so {' and '.join(given)} would be unused; "
            "drop them, or use --decay-corrected-to scan")
    return reference

"""Write a PET volume as a DICOM PET Image Storage series (one file per axial slice) with SUV tags.

Stored values (after each slice's RescaleSlope) are Bq/ml decay corrected to the series start
(Units BQML, DecayCorrection START), to the injection (ADMIN), or SUVbw (Units GML).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Optional

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian,
                         PositronEmissionTomographyImageStorage, generate_uid)
from pydicom.valuerep import DSfloat

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

INT16_MAX = 32767
FRAME_DURATION_MS = 120000


def _da(value: dt.datetime) -> str:
    return value.strftime("%Y%m%d")


def _tm(value: dt.datetime) -> str:
    return value.strftime("%H%M%S.%f")


def _ds(value: float) -> DSfloat:
    return DSfloat(float(value), auto_format=True)


def suv_to_stored_factor(units: str, decay_correction: str, weight_kg: float,
                         injected_dose_bq: float, elapsed_s: float, half_life_s: float) -> float:
    """Stored value per SUV: Bq/ml = SUV x factor (factor 1 for GML)."""
    if units == "GML":
        return 1.0
    if decay_correction == "ADMIN":
        return injected_dose_bq / (weight_kg * 1000.0)
    return injected_dose_bq * 2.0 ** (-elapsed_s / half_life_s) / (weight_kg * 1000.0)


def _radiopharmaceutical(injection: dt.datetime, dose_bq: float, half_life_s: float) -> Dataset:
    item = Dataset()
    item.Radiopharmaceutical = "Fluorodeoxyglucose"
    item.RadiopharmaceuticalStartTime = _tm(injection)
    item.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S.%f")
    item.RadionuclideTotalDose = _ds(dose_bq)
    item.RadionuclideHalfLife = _ds(half_life_s)
    item.RadionuclidePositronFraction = _ds(0.9673)
    code = Dataset()
    code.CodeValue = "C-111A1"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "^18^Fluorine"
    item.RadionuclideCodeSequence = [code]
    return item


def _check(pet: PetVolume, units: str, decay_correction: str, weight_kg: float,
           injected_dose_bq: float, half_life_s: float, elapsed_s: float) -> None:
    if units not in ("BQML", "GML"):
        raise MTLRadiomicsError(f"units must be 'BQML' or 'GML', not {units!r}")
    if decay_correction not in ("START", "ADMIN"):
        raise MTLRadiomicsError(
            f"decay_correction must be 'START' or 'ADMIN', not {decay_correction!r}")
    if not (weight_kg > 0 and injected_dose_bq > 0 and half_life_s > 0):
        raise MTLRadiomicsError("weight, injected dose and half-life must be positive")
    if elapsed_s < 0:
        raise MTLRadiomicsError("the series date-time lies before the injection date-time")
    if pet.suv.ndim != 3 or not np.all(np.isfinite(pet.suv)):
        raise MTLRadiomicsError("the PET must be a 3-D volume of finite values to be written as DICOM")


def write_pet_dicom(pet: PetVolume, out_dir: str | Path, *, units: str = "BQML",
                    decay_correction: str = "START", weight_kg: float = 75.0,
                    injected_dose_bq: float = 3.7e8, injection_datetime: dt.datetime,
                    series_datetime: dt.datetime, half_life_s: float = 6586.2,
                    patient_id: str = "SYNTH", patient_name: str = "Synthetic^Phantom",
                    study_uid: Optional[str] = None, series_uid: Optional[str] = None
                    ) -> list[Path]:
    """Write ``pet`` (SUV) as one DICOM PET file per axial slice in ``out_dir``.

    Args:
        pet: the volume in SUV; its origin, spacing and direction become the DICOM geometry.
        units: "BQML" (values stored in Bq/ml) or "GML" (stored as SUVbw).
        decay_correction: "START" (Bq/ml decay corrected to the series start) or "ADMIN"
            (decay corrected to the injection).
        weight_kg, injected_dose_bq, half_life_s: the SUV facts written to the header.
        injection_datetime, series_datetime: injection and series start (may cross midnight).
        study_uid, series_uid: UIDs to use (new ones when None); instance UIDs derive from the
            series UID, so fixed UIDs give byte-identical files.
    Returns:
        The written file paths, slice 0 (the first z index) first.
    """
    units, decay_correction = units.upper(), decay_correction.upper()
    elapsed = (series_datetime - injection_datetime).total_seconds()
    _check(pet, units, decay_correction, weight_kg, injected_dose_bq, half_life_s, elapsed)
    factor = suv_to_stored_factor(units, decay_correction, weight_kg, injected_dose_bq, elapsed,
                                  half_life_s)
    stored = pet.suv.astype(np.float64) * factor
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = generate_uid(entropy_srcs=[series_uid, "frame-of-reference"])
    direction = np.asarray(pet.direction, float).reshape(3, 3)
    row_dir, col_dir, slice_dir = direction[:, 0], direction[:, 1], direction[:, 2]
    nz, ny, nx = pet.suv.shape
    sx, sy, sz = pet.spacing
    top = float(np.max(np.abs(stored)))
    default_slope = top / INT16_MAX if top > 0 else 1.0
    decay_factor = 2.0 ** (elapsed / half_life_s) if decay_correction == "ADMIN" else 1.0

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for k in range(nz):
        plane = stored[k]
        peak = float(np.max(np.abs(plane)))
        slope_ds = _ds(peak / INT16_MAX if peak > 0 else default_slope)
        pixels = np.clip(np.round(plane / float(slope_ds)), -INT16_MAX, INT16_MAX).astype("<i2")
        position = np.asarray(pet.origin, float) + k * sz * slice_dir
        sop_uid = generate_uid(entropy_srcs=[series_uid, "instance", str(k)])

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = PositronEmissionTomographyImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        path = out / f"PT{k + 1:04d}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.SOPClassUID = PositronEmissionTomographyImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = _da(series_datetime)
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = _tm(series_datetime)
        ds.AccessionNumber = ""
        ds.Modality = "PT"
        ds.Manufacturer = "MTLRadiomics"
        ds.ManufacturerModelName = "synthetic FDG-PET phantom"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "Synthetic FDG PET/CT"
        ds.SeriesDescription = "PET synthetic phantom"
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.PatientWeight = _ds(weight_kg)
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        # PET series and isotope modules
        ds.Units = units
        ds.CountsSource = "EMISSION"
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.CorrectedImage = ["DECY", "ATTN"]
        ds.DecayCorrection = decay_correction
        ds.RandomsCorrectionMethod = "DLYD"
        ds.ReconstructionMethod = "OSEM"
        ds.NumberOfSlices = nz
        ds.RadiopharmaceuticalInformationSequence = [
            _radiopharmaceutical(injection_datetime, injected_dose_bq, half_life_s)]
        # image plane and pixels
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [_ds(sy), _ds(sx)]
        ds.SliceThickness = _ds(sz)
        ds.SpacingBetweenSlices = _ds(sz)
        ds.SliceLocation = _ds(float(np.dot(position, slice_dir)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = _ds(0.0)
        ds.RescaleSlope = slope_ds
        ds.RescaleType = units
        # PET image module
        ds.FrameReferenceTime = _ds(0.0)
        ds.ActualFrameDuration = FRAME_DURATION_MS
        ds.DecayFactor = _ds(decay_factor)
        ds.ImageIndex = k + 1
        ds.PixelData = pixels.tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def default_datetimes(day: dt.date, injection_clock_s: float, uptake_s: float
                      ) -> tuple[dt.datetime, dt.datetime]:
    """Injection and series start date-times from a clock time (s after midnight) and uptake (s)."""
    injection = dt.datetime.combine(day, dt.time(0, 0)) + dt.timedelta(seconds=float(injection_clock_s))
    return injection, injection + dt.timedelta(seconds=float(uptake_s))


def series_uids(*parts: object) -> tuple[str, str]:
    """Deterministic (study UID, series UID) derived from ``parts``."""
    key = [str(p) for p in parts]
    return (generate_uid(entropy_srcs=key + ["study"]), generate_uid(entropy_srcs=key + ["series"]))


__all__ = ["write_pet_dicom", "suv_to_stored_factor", "default_datetimes", "series_uids"]

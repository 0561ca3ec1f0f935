"""Find the DICOM series in a folder and pick the PET series among them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_time import parse_dicom_date, parse_dicom_time

SLICE_GAP_TOLERANCE = 0.25   # a gap this fraction above the usual slice distance means missing slices


@dataclass
class DicomSeries:
    """The files of one series with a representative header (no pixel data)."""

    uid: str
    modality: str
    description: str
    headers: list[Any] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def first(self) -> Any:
        return self.headers[0]

    def describe(self) -> str:
        text = f"{self.modality} '{self.description}'" if self.description else self.modality
        return f"{text} ({len(self.files)} files)"


def _is_dicom_candidate(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in (
        ".txt", ".json", ".md", ".csv", ".xml", ".png", ".jpg", ".nii", ".gz", ".nrrd", ".mha", ".py")


def scan_folder(folder: Path) -> list[DicomSeries]:
    """Read the headers of every DICOM file below ``folder`` and group them by series UID."""
    groups: dict[str, DicomSeries] = {}
    for path in sorted(p for p in folder.rglob("*") if _is_dicom_candidate(p)):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
            continue
        uid = str(ds.get("SeriesInstanceUID", "")) or f"no-series-uid:{path.parent}"
        series = groups.get(uid)
        if series is None:
            series = groups[uid] = DicomSeries(uid=uid, modality=str(ds.get("Modality", "?")),
                                               description=str(ds.get("SeriesDescription", "")))
        series.headers.append(ds)
        series.files.append(str(path))
    return list(groups.values())


def select_pet_series(all_series: list[DicomSeries], folder: Path,
                      series_uid: Optional[str] = None) -> DicomSeries:
    """Pick the PET series: the one asked for, else the attenuation-corrected PT series with the
    most images. Raises PetInputError when there is none."""
    if not all_series:
        raise PetInputError(f"no DICOM files found in {folder}; point to the folder of a PET series")
    if series_uid:
        chosen = [s for s in all_series if s.uid == series_uid]
        if not chosen:
            raise PetInputError(f"series {series_uid} is not in {folder}; run 'mtl-radiomics info "
                                f"{folder}' without --series to see the series found")
        if chosen[0].modality != "PT":
            raise PetInputError(f"series {series_uid} has Modality {chosen[0].modality}, not PT (PET)")
        return chosen[0]
    pet = [s for s in all_series if s.modality == "PT"]
    if not pet:
        found = ", ".join(s.describe() for s in all_series)
        raise PetInputError(f"no PET series (Modality PT) in {folder}; found {found}")

    def rank(series: DicomSeries) -> tuple[int, int]:
        corrected = [str(v).upper() for v in (series.first.get("CorrectedImage", None) or [])]
        return ("ATTN" in corrected, len(series.files))

    return max(pet, key=rank)


def slice_normal(ds: Any) -> np.ndarray:
    """Unit normal of the slice plane from ImageOrientationPatient (LPS)."""
    iop = ds.get("ImageOrientationPatient", None)
    if iop is None or len(iop) != 6:
        raise PetInputError("ImageOrientationPatient (0020,0037) is missing; the slice geometry is unknown")
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    return np.cross(row, col)


def sort_slices(series: DicomSeries) -> DicomSeries:
    """Sort the slices along the slice normal; refuse dynamic (4-D), multi-frame, mixed-size or
    gapped series with a one-line reason."""
    first = series.first
    frames = int(first.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise PetInputError(
            f"the PET series is a multi-frame file ({frames} frames); export it as single-frame slices")
    time_slices = int(first.get("NumberOfTimeSlices", 1) or 1)
    series_type = [str(v).upper() for v in (first.get("SeriesType", None) or [])]
    if time_slices > 1 and series_type[:1] in (["DYNAMIC"], ["GATED"]):
        raise PetInputError(
            f"the PET series is dynamic ({time_slices} time frames, 4-D); export one static frame")
    if len(series.files) < 2:
        raise PetInputError("the PET series has a single slice: a 2-D image, not a 3-D volume")
    shapes = {(int(h.Rows), int(h.Columns)) for h in series.headers}
    if len(shapes) > 1:
        raise PetInputError(f"the PET series mixes slice sizes {sorted(shapes)}; it is not one volume")
    normal = slice_normal(first)
    try:
        positions = [float(np.dot(normal, np.asarray(h.ImagePositionPatient, float)))
                     for h in series.headers]
    except AttributeError:
        raise PetInputError("ImagePositionPatient (0020,0032) is missing on some slices") from None
    order = np.argsort(positions)
    sorted_pos = np.asarray(positions)[order]
    steps = np.diff(sorted_pos)
    if np.any(steps < 1e-3):
        raise PetInputError(
            "several PET slices share one position: a dynamic (4-D) or duplicated series; export one "
            "static frame")
    typical = float(np.median(steps))
    if np.any(steps > typical * (1 + SLICE_GAP_TOLERANCE)):
        raise PetInputError(
            f"the PET series has missing slices (a gap of {steps.max():.1f} mm where slices are "
            f"{typical:.2f} mm apart); re-export the complete series")
    series.headers = [series.headers[i] for i in order]
    series.files = [series.files[i] for i in order]
    return series


def acquisition_datetimes(series: DicomSeries) -> list[dt.datetime]:
    """AcquisitionDate/Time of every slice that has both."""
    out = []
    for h in series.headers:
        day = parse_dicom_date(h.get("AcquisitionDate", None))
        time = parse_dicom_time(h.get("AcquisitionTime", None))
        if day is not None and time is not None:
            out.append(dt.datetime.combine(day, time))
    return out


def series_facts(series: DicomSeries, others: list[DicomSeries]) -> dict[str, Any]:
    """Descriptive facts for reports and `info` (strings, JSON-serialisable)."""
    ds = series.first
    keys = ["PatientID", "PatientName", "PatientSex", "PatientAge", "StudyDate", "StudyDescription",
            "SeriesDate", "SeriesTime", "SeriesDescription", "Manufacturer", "ManufacturerModelName",
            "InstitutionName", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"]
    facts: dict[str, Any] = {k: str(ds.get(k, "")) for k in keys if ds.get(k, None) not in (None, "")}
    facts["Modality"] = series.modality
    facts["NumberOfSlices"] = len(series.files)
    rp = ds.get("RadiopharmaceuticalInformationSequence", None)
    if rp:
        name = rp[0].get("Radiopharmaceutical", None)
        if name:
            facts["Radiopharmaceutical"] = str(name)
    ignored = [s.describe() for s in others if s.uid != series.uid]
    if ignored:
        facts["OtherSeriesInFolder"] = ignored
    return facts

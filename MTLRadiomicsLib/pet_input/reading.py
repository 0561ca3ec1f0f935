"""Read a PET volume from NIfTI, NRRD, MHA or a DICOM series into a :class:`PetVolume` in SUV."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from MTLRadiomicsLib.pet_input.dicom_series import (acquisition_datetimes, scan_folder, select_pet_series,
                                          series_facts, sort_slices)
from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.series_consistency import check_series_consistency
from MTLRadiomicsLib.pet_input.suv import (SuvConversion, SuvOverrides, suv_conversion_from_dicom,
                                 suv_conversion_from_values)
from MTLRadiomicsLib.pet_input.tracer import TracerCheck, check_tracer
from MTLRadiomicsLib.pet_input.validation import check_dimensions, check_spacing, check_suv_values

IMAGE_SUFFIXES = {".nii": "nifti", ".nii.gz": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd",
                  ".mha": "mha", ".mhd": "mha"}

sitk.ProcessObject_SetGlobalWarningDisplay(False)


def image_format(path: Path) -> Optional[str]:
    """'nifti', 'nrrd' or 'mha' from the file name, else None."""
    name = path.name.lower()
    for suffix, kind in IMAGE_SUFFIXES.items():
        if name.endswith(suffix):
            return kind
    return None


def load_pet(path: str | Path, overrides: Optional[SuvOverrides] = None,
             input_units: Optional[str] = None, series_uid: Optional[str] = None) -> PetVolume:
    """Read a PET volume and convert it to body-weight SUV.

    Args:
        path: a NIfTI/NRRD/MHA file, a DICOM folder, or one file of a DICOM series.
        overrides: patient facts given by hand (weight, dose, injection time, ...).
        input_units: for image files without units: 'suv' (default) or 'bqml'.
        series_uid: the SeriesInstanceUID to read when a DICOM folder holds several PET series.
    Raises:
        PetInputError: one line saying what is wrong and what to do.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise PetInputError(f"{path} does not exist")
    if path.is_dir():
        return _load_dicom(path, overrides, series_uid)
    kind = image_format(path)
    if kind is None:
        if _is_dicom_file(path):
            uid = series_uid or str(pydicom.dcmread(str(path), stop_before_pixels=True)
                                    .get("SeriesInstanceUID", "")) or None
            return _load_dicom(path.parent, overrides, uid)
        raise PetInputError(
            f"{path.name}: unknown file type; give a NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) "
            "file or a DICOM folder")
    if input_units is None:
        conversion = SuvConversion.assumed_suv()
        if overrides is not None and overrides.any():
            raise PetInputError(
                "--weight/--dose/--injection-time apply to Bq/ml images: add --input-units bqml")
    else:
        conversion = suv_conversion_from_values(input_units, overrides or SuvOverrides())
    return _load_image_file(path, kind, conversion, check_tracer(None, overrides))


def _is_dicom_file(path: Path) -> bool:
    try:
        pydicom.dcmread(str(path), stop_before_pixels=True)
        return True
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        return False


def _read_image(path: Path, kind: str) -> sitk.Image:
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise PetInputError(f"{path.name}: cannot be read as {kind.upper()}; the file is corrupt or "
                            "not an image") from None
    size = tuple(reader.GetSize())
    check_dimensions(size, path.name)
    if reader.GetNumberOfComponents() != 1:
        raise PetInputError(f"{path.name} has {reader.GetNumberOfComponents()} components per voxel "
                            "(a colour or vector image); a scalar PET volume is needed")
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        return reader.Execute()
    except RuntimeError:
        raise PetInputError(f"{path.name}: the image data cannot be read; the file is truncated or "
                            "corrupt") from None


def _load_image_file(path: Path, kind: str, conversion: SuvConversion, tracer: TracerCheck) -> PetVolume:
    image = _read_image(path, kind)
    check_spacing(image.GetSpacing(), path.name)
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    if conversion.factor != 1.0:
        values *= np.float32(conversion.factor)
    if conversion.units_in_file == "unknown" and float(np.nanmax(values)) > 500:
        conversion.method = "values read as SUV"
    check_suv_values(values, path.name)
    conversion.units_in_file = conversion.units_in_file if conversion.units_in_file != "unknown" \
        else "unknown (read as SUV)"
    series = {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()
              if k.lower() in ("descrip", "description", "patientid", "modality")}
    return PetVolume(suv=values, spacing=image.GetSpacing(), origin=image.GetOrigin(),
                     direction=image.GetDirection(), source=str(path), source_format=kind,
                     suv_conversion=conversion, series=series, tracer=tracer)


@contextmanager
def _tracer_first(tracer: TracerCheck) -> Iterator[None]:
    """A scan that is not F-18 FDG PET says so before any SUV problem it also has."""
    try:
        yield
    except PetInputError as error:
        if tracer.accepted:
            raise
        raise PetInputError(f"{tracer.refusal}; SUV cannot be computed either: {error}") from None


def _load_dicom(folder: Path, overrides: Optional[SuvOverrides],
                series_uid: Optional[str]) -> PetVolume:
    all_series = scan_folder(folder)
    series = sort_slices(select_pet_series(all_series, folder, series_uid))
    check_series_consistency(series.headers, overrides)
    tracer = check_tracer(series.first, overrides)
    with _tracer_first(tracer):
        conversion = suv_conversion_from_dicom(series.first, overrides, acquisition_datetimes(series))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(series.files)
    reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError:
        raise PetInputError(f"the PET series in {folder} has unreadable pixel data (corrupt or "
                            "unsupported transfer syntax)") from None
    check_dimensions(tuple(image.GetSize()), f"the PET series in {folder}")
    check_spacing(image.GetSpacing(), f"the PET series in {folder}")
    suv = sitk.GetArrayFromImage(image).astype(np.float32) * np.float32(conversion.factor)
    with _tracer_first(tracer):
        check_suv_values(suv, f"the PET series in {folder}")
    return PetVolume(suv=suv, spacing=image.GetSpacing(), origin=image.GetOrigin(),
                     direction=image.GetDirection(), source=str(folder), source_format="dicom",
                     suv_conversion=conversion, series=series_facts(series, all_series),
                     dicom_files=list(series.files), tracer=tracer, dicom_headers=list(series.headers))

"""Reading a PET (pet_input/reading.py) from what a user points at: an image file with its geometry and
units, one file of a DICOM series (the series it belongs to is read), and everything else refused word
for word; each volume read is compared with the array that was written."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from synthetic_dicom import small_pet, write_series

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.suv import SuvOverrides


def refusal(path, **options) -> str:
    with pytest.raises(PetInputError) as refused:
        load_pet(path, **options)
    return str(refused.value)


def oblique_image(values: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((2.5, 3.0, 4.0))
    image.SetOrigin((-11.0, 7.5, 30.0))
    image.SetDirection(sitk.VersorTransform((0.3, -0.2, 1.0), 0.4).GetMatrix())
    return image


def test_an_image_file_keeps_its_voxels_geometry_and_description(tmp_path):
    values = (np.arange(6 * 7 * 8, dtype=np.float64).reshape(6, 7, 8) % 13) / 2.0
    image = oblique_image(values)
    image.SetMetaData("descrip", "FDG PET, SUVbw")
    path = tmp_path / "pet.nrrd"
    sitk.WriteImage(image, str(path))
    pet = load_pet(path)
    assert pet.suv.dtype == np.float32 and np.array_equal(pet.suv, values.astype(np.float32))
    assert pet.spacing == pytest.approx(image.GetSpacing(), abs=1e-9)
    assert pet.origin == pytest.approx(image.GetOrigin(), abs=1e-9)
    assert pet.direction == pytest.approx(image.GetDirection(), abs=1e-9)
    assert pet.source == str(path) and pet.source_format == "nrrd"
    assert pet.series.get("descrip") == "FDG PET, SUVbw"
    assert pet.suv_conversion.units_in_file == "unknown (read as SUV)"


def test_bqml_images_are_scaled_to_suv_by_the_given_facts(tmp_path):
    values = np.full((4, 5, 6), 5000.0, np.float32)
    values[1, 2, 3] = 25000.0
    path = tmp_path / "bqml.nii.gz"
    sitk.WriteImage(oblique_image(values), str(path))
    facts = SuvOverrides(weight_kg=70.0, dose_mbq=350.0, decay_corrected_to="injection")
    pet = load_pet(path, overrides=facts, input_units="bqml")
    factor = 70.0 * 1000.0 / 350e6                       # g / Bq: SUV = Bq/ml x weight / dose
    np.testing.assert_allclose(pet.suv, values * factor, rtol=1e-6)
    assert pet.suv_conversion.factor == pytest.approx(factor)
    assert refusal(path, overrides=SuvOverrides(weight_kg=70.0)) == (
        "--weight/--dose/--injection-time apply to Bq/ml images: add --input-units bqml")


def test_one_file_of_a_series_reads_its_own_series(tmp_path):
    first = write_series(tmp_path / "scan" / "a")
    other = write_series(tmp_path / "scan" / "b", weight_kg=90.0)      # a second PET series beside it
    pet = load_pet(other[3])
    folder = load_pet(tmp_path / "scan" / "b")
    assert pet.series["SeriesInstanceUID"] == str(pydicom.dcmread(other[0]).SeriesInstanceUID)
    assert pet.source == folder.source and pet.dicom_files == folder.dicom_files
    assert np.array_equal(pet.suv, folder.suv)
    assert load_pet(first[0]).series["SeriesInstanceUID"] == str(pydicom.dcmread(first[0]).SeriesInstanceUID)
    assert np.allclose(pet.suv, small_pet().suv, rtol=1e-3)          # the SUVs the series was written from


def test_what_is_not_a_pet_is_refused_word_for_word(tmp_path):
    assert refusal(tmp_path / "missing.nii.gz") == f"{tmp_path / 'missing.nii.gz'} does not exist"
    notes = tmp_path / "scan.txt"
    notes.write_text("a PET scan")
    assert refusal(notes) == ("scan.txt: unknown file type; give a NIfTI (.nii, .nii.gz), NRRD (.nrrd), MHA (.mha) "
                              "file or a DICOM folder")
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not really gzip")
    assert refusal(broken) == "broken.nii.gz: cannot be read as NIFTI; the file is corrupt or not an image"
    colour = tmp_path / "colour.mha"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), str(colour))
    assert refusal(colour) == ("colour.mha has 3 components per voxel (a colour or vector image); a scalar PET "
                               "volume is needed")
    whole = tmp_path / "whole.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((8, 8, 8), np.float32)), str(whole))
    truncated = tmp_path / "truncated.nrrd"
    truncated.write_bytes(whole.read_bytes()[:-600])
    assert refusal(truncated) == "truncated.nrrd: the image data cannot be read; the file is truncated or corrupt"


def test_one_file_reads_its_own_series_even_where_the_folder_would_choose_another(tmp_path):
    """A file of a 5-slice series in a folder that also holds (below it) a 6-slice series: the folder
    alone reads the larger series, the file reads its own, with the facts given by hand applied."""
    mine = write_series(tmp_path / "scan")
    mine[-1].unlink()                                   # the top slice: 5 slices, no gap
    larger = write_series(tmp_path / "scan" / "sub")
    uid = str(pydicom.dcmread(mine[0]).SeriesInstanceUID)
    assert load_pet(tmp_path / "scan").series["SeriesInstanceUID"] == str(pydicom.dcmread(larger[0]).SeriesInstanceUID)
    pet = load_pet(mine[2])
    assert pet.series["SeriesInstanceUID"] == uid and pet.shape[0] == 5
    assert pet.source == str(tmp_path / "scan") and pet.source_format == "dicom"
    assert pet.suv.dtype == np.float32 and len(pet.dicom_headers) == len(pet.dicom_files) == 5
    heavier = load_pet(mine[2], overrides=SuvOverrides(weight_kg=91.0))
    np.testing.assert_allclose(heavier.suv, pet.suv * 91.0 / 70.0, rtol=1e-5)
    assert pet.tracer.accepted and load_pet(tmp_path / "scan").tracer.accepted


def test_image_files_carry_their_tracer_check_and_their_named_tags(tmp_path):
    values = np.full((4, 5, 6), 2.0, np.float32)
    image = oblique_image(values)
    for key, value in (("PatientID", "STS_007"), ("Modality", "PT"), ("Description", "static FDG"),
                       ("Manufacturer", "left out")):
        image.SetMetaData(key, value)
    path = tmp_path / "tags.nrrd"
    sitk.WriteImage(image, str(path))
    pet = load_pet(path)
    assert pet.tracer is not None and pet.tracer.accepted
    assert {k.lower(): v for k, v in pet.series.items()} == {"patientid": "STS_007", "modality": "PT",
                                                             "description": "static FDG"}


def test_unusable_images_and_series_are_refused_naming_them(tmp_path):
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((6, 7), np.float32)), str(flat))
    assert refusal(flat) == "flat.nrrd is 2-D; a 3-D PET volume is needed"
    coarse = tmp_path / "coarse.nrrd"
    image = sitk.GetImageFromArray(np.ones((6, 7, 8), np.float32))
    image.SetSpacing((2.0, 2.0, 90.0))
    sitk.WriteImage(image, str(coarse))
    assert refusal(coarse).startswith("coarse.nrrd has voxel spacing (2.0, 2.0, 90.0) mm")
    holes = tmp_path / "holes.nrrd"
    values = np.ones((6, 7, 8), np.float32)
    values[2, 3, 4] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(values), str(holes))
    assert refusal(holes) == "holes.nrrd has 1 NaN or infinite voxels; fix or re-export the image"
    files = write_series(tmp_path / "pet")
    for path in files:
        path.write_bytes(path.read_bytes()[:-200])         # every slice's pixel data cut short
    assert refusal(tmp_path / "pet") == (f"the PET series in {tmp_path / 'pet'} has unreadable pixel data (corrupt "
                                         "or unsupported transfer syntax)")

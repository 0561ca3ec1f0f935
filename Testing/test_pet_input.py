"""PET files: formats, exact geometry, and refusal of what is not a usable PET volume."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib import PetVolume, load_pet
from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.suv import SuvOverrides


def pet_like(shape=(20, 24, 28), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    suv = rng.gamma(4.0, 0.2, size=shape).astype(np.float32)
    suv[8:12, 10:14, 12:16] += 8.0
    return suv


def write(path: Path, array: np.ndarray, spacing=(2.0, 2.5, 3.0), origin=(-10.0, 20.0, 5.5),
          direction=(0, 1, 0, -1, 0, 0, 0, 0, 1)) -> Path:
    image = sitk.GetImageFromArray(array)
    if image.GetDimension() == 3:
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize("suffix, kind", [(".nii.gz", "nifti"), (".nrrd", "nrrd"), (".mha", "mha")])
def test_image_formats_keep_values_and_geometry(tmp_path, suffix, kind):
    array = pet_like()
    pet = load_pet(write(tmp_path / f"pet{suffix}", array))
    assert pet.source_format == kind
    assert pet.spacing == pytest.approx((2.0, 2.5, 3.0))
    assert pet.origin == pytest.approx((-10.0, 20.0, 5.5))
    assert pet.direction == pytest.approx((0, 1, 0, -1, 0, 0, 0, 0, 1))
    np.testing.assert_array_equal(pet.suv, array)
    assert pet.suv_conversion.factor == 1.0


def test_round_trip_through_sitk_is_exact(tmp_path):
    pet = load_pet(write(tmp_path / "pet.nrrd", pet_like()))
    again = PetVolume.from_sitk(pet.to_sitk())
    assert again.origin == pet.origin and again.spacing == pet.spacing
    assert again.direction == pet.direction
    np.testing.assert_array_equal(again.suv, pet.suv)


def test_index_and_physical_points_agree_with_sitk(tmp_path):
    pet = load_pet(write(tmp_path / "pet.nii.gz", pet_like()))
    image = pet.to_sitk()
    for index in [(0, 0, 0), (3, 7, 11), (27, 23, 19)]:
        physical = pet.index_to_physical(index)
        assert physical == pytest.approx(image.TransformIndexToPhysicalPoint(index))
        assert pet.physical_to_index(physical) == index


def test_bqml_nifti_with_manual_facts(tmp_path):
    array = pet_like() * 5000.0                                   # Bq/ml
    path = write(tmp_path / "bqml.nii.gz", array)
    pet = load_pet(path, SuvOverrides(weight_kg=75, dose_mbq=300, decay_corrected_to="injection"),
                   input_units="bqml")
    np.testing.assert_allclose(pet.suv, array * 75e3 / 3e8, rtol=1e-6)
    with pytest.raises(PetInputError, match="Bq/ml"):
        load_pet(path)                                            # read as SUV: implausible values


def test_overrides_without_units_on_a_file_are_refused(tmp_path):
    path = write(tmp_path / "pet.nii.gz", pet_like())
    with pytest.raises(PetInputError, match="--input-units bqml"):
        load_pet(path, SuvOverrides(weight_kg=70))


@pytest.mark.parametrize("array, message", [
    (np.ones((1, 32, 32), np.float32), "2-D"),
    (np.ones((20, 32, 2), np.float32), "2-D"),
    (np.zeros((10, 12, 14), np.float32), "no positive uptake"),
    (np.full((10, 12, 14), -1000.0, np.float32), "CT"),
])
def test_unusable_volumes_are_refused(tmp_path, array, message):
    with pytest.raises(PetInputError, match=message):
        load_pet(write(tmp_path / "bad.nii.gz", array))


def test_nan_is_refused(tmp_path):
    array = pet_like()
    array[3, 4, 5] = np.nan
    with pytest.raises(PetInputError, match="NaN"):
        load_pet(write(tmp_path / "nan.nrrd", array))


def test_strongly_negative_values_are_refused(tmp_path):
    array = pet_like()
    array[:, :, :5] = -3.0
    with pytest.raises(PetInputError, match="below"):
        load_pet(write(tmp_path / "neg.nii.gz", array))


def test_small_negative_noise_is_accepted(tmp_path):
    array = pet_like()
    array[0, 0, :10] = -0.3                                       # FBP-like undershoot
    assert load_pet(write(tmp_path / "ok.nii.gz", array)).suv.min() == pytest.approx(-0.3)


def test_four_d_is_refused(tmp_path):
    image = sitk.JoinSeries([sitk.GetImageFromArray(pet_like()) for _ in range(3)])
    sitk.WriteImage(image, str(tmp_path / "dyn.nii.gz"))
    with pytest.raises(PetInputError, match="4-D"):
        load_pet(tmp_path / "dyn.nii.gz")


def test_vector_image_is_refused(tmp_path):
    image = sitk.Compose([sitk.GetImageFromArray(pet_like())] * 3)
    sitk.WriteImage(image, str(tmp_path / "rgb.nrrd"))
    with pytest.raises(PetInputError, match="components"):
        load_pet(tmp_path / "rgb.nrrd")


@pytest.mark.parametrize("name, content, message", [
    ("corrupt.nii.gz", b"this is not an image", "cannot be read"),
    ("notes.txt", b"hello", "unknown file type"),
])
def test_unreadable_files_are_refused(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(PetInputError, match=message):
        load_pet(tmp_path / name)


def test_truncated_image_is_refused(tmp_path):
    path = write(tmp_path / "pet.nrrd", pet_like())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(PetInputError):
        load_pet(path)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(PetInputError, match="does not exist"):
        load_pet(tmp_path / "nothing.nii.gz")


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "readme.md").write_text("no images")
    with pytest.raises(PetInputError, match="no DICOM files"):
        load_pet(tmp_path)


# ----------------------------------------------------------------- DICOM series edits on copies
def copy_slices(source: Path, target: Path, count: int = 12, start: int = 100) -> list[Path]:
    target.mkdir()
    files = sorted(source.glob("*.dcm"))[start:start + count]
    return [Path(shutil.copy(f, target / f.name)) for f in files]


def edit(files: list[Path], **values) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        for key, value in values.items():
            if value is None:
                delattr(ds, key)
            else:
                setattr(ds, key, value)
        ds.save_as(f)


def test_ct_series_is_refused(tmp_path, sts001_dir):
    files = copy_slices(sts001_dir / "dicom", tmp_path / "ct")
    edit(files, Modality="CT")
    with pytest.raises(PetInputError, match=r"no PET series \(Modality PT\).*CT"):
        load_pet(tmp_path / "ct")


def test_pet_is_picked_among_other_series(tmp_path, sts001_dir):
    root = tmp_path / "study"
    root.mkdir()
    pet_files = copy_slices(sts001_dir / "dicom", root / "pet")
    ct_files = copy_slices(sts001_dir / "dicom", root / "ct", start=20)
    edit(ct_files, Modality="CT", SeriesInstanceUID="1.2.3.4.5", SeriesDescription="CT")
    pet = load_pet(root)
    assert pet.series["Modality"] == "PT" and pet.size[2] == len(pet_files)
    assert any("CT" in s for s in pet.series["OtherSeriesInFolder"])


def test_missing_weight_in_dicom_names_tag_and_option(tmp_path, sts001_dir):
    files = copy_slices(sts001_dir / "dicom", tmp_path / "pet")
    edit(files, PatientWeight=None)
    with pytest.raises(PetInputError, match=r"PatientWeight \(0010,1030\).*--weight"):
        load_pet(tmp_path / "pet")
    pet = load_pet(tmp_path / "pet", SuvOverrides(weight_kg=71.0))
    assert pet.suv_conversion.factor == pytest.approx(0.000242903, rel=5e-3)


def test_missing_slice_is_refused(tmp_path, sts001_dir):
    files = copy_slices(sts001_dir / "dicom", tmp_path / "pet")
    files[5].unlink()
    with pytest.raises(PetInputError, match="missing slices"):
        load_pet(tmp_path / "pet")


def test_duplicated_positions_are_refused_as_dynamic(tmp_path, sts001_dir):
    files = copy_slices(sts001_dir / "dicom", tmp_path / "pet", count=6)
    for i, f in enumerate(files):
        ds = pydicom.dcmread(f)
        twin = tmp_path / "pet" / f"frame2_{i}.dcm"
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(twin)
    with pytest.raises(PetInputError, match="4-D"):
        load_pet(tmp_path / "pet")


def test_corrupt_pixel_data_is_refused(tmp_path, sts001_dir):
    files = copy_slices(sts001_dir / "dicom", tmp_path / "pet")
    data = files[3].read_bytes()
    files[3].write_bytes(data[: len(data) - 20000])
    with pytest.raises(PetInputError):
        load_pet(tmp_path / "pet")


# ----------------------------------------------------------------- series-level facts across slices
def _weights(files, weight_of):
    from synthetic_dicom import edit_headers

    def change(ds, index):
        ds.PatientWeight = weight_of(index)
    edit_headers(files, change)


def test_consistent_synthetic_series_is_read(tmp_path):
    from synthetic_dicom import write_series

    write_series(tmp_path / "pet")
    pet = load_pet(tmp_path / "pet")
    assert pet.suv_conversion.weight_kg == 70.0 and pet.suv.max() == pytest.approx(9.0, rel=1e-3)


def test_one_slice_with_another_weight_is_refused(tmp_path):
    from synthetic_dicom import write_series

    files = write_series(tmp_path / "pet")
    _weights(files, lambda index: "76" if index == 3 else "67")
    with pytest.raises(PetInputError) as info:
        load_pet(tmp_path / "pet")
    message = str(info.value)
    assert "PatientWeight (0010,1030)" in message and "differs between the slices" in message
    assert "67 (5 slices)" in message and "76 (1 slice)" in message and "--weight" in message
    assert "\n" not in message
    pet = load_pet(tmp_path / "pet", SuvOverrides(weight_kg=70.0))   # a stated weight ends the doubt
    assert pet.suv_conversion.weight_kg == 70.0


def test_same_value_written_differently_is_consistent(tmp_path):
    from synthetic_dicom import write_series

    files = write_series(tmp_path / "pet", weight_kg=67.0)
    _weights(files, lambda index: "67.0" if index % 2 else "67")
    assert load_pet(tmp_path / "pet").suv_conversion.weight_kg == 67.0


@pytest.mark.parametrize("keyword, value, fragment", [
    ("RadionuclideTotalDose", "400000000", "RadionuclideTotalDose (0018,1074)"),
    ("RadionuclideHalfLife", "6000", "RadionuclideHalfLife (0018,1075)"),
    ("RadiopharmaceuticalStartTime", "093000", "RadiopharmaceuticalStartTime (0018,1072)"),
    ("Units", "CNTS", "Units (0054,1001)"),
    ("DecayCorrection", "ADMIN", "DecayCorrection (0054,1102)"),
    ("SeriesTime", "120000", "SeriesTime (0008,0031)"),
    ("CorrectedImage", ["ATTN"], "CorrectedImage (0028,0051)"),
])
def test_series_facts_that_differ_between_slices_are_refused(tmp_path, keyword, value, fragment):
    from synthetic_dicom import edit_headers, radiopharmaceutical, write_series

    files = write_series(tmp_path / "pet")

    def change(ds, index):
        if index == 0:
            target = radiopharmaceutical(ds) if keyword.startswith("Radio") else ds
            setattr(target, keyword, value)
    edit_headers(files, change)
    with pytest.raises(PetInputError, match=r"differs between the slices") as info:
        load_pet(tmp_path / "pet")
    assert fragment in str(info.value)


def test_a_tag_missing_on_some_slices_is_inconsistent(tmp_path):
    from synthetic_dicom import edit_headers, write_series

    files = write_series(tmp_path / "pet")

    def change(ds, index):
        if index >= 4:
            del ds.PatientWeight
    edit_headers(files, change)
    with pytest.raises(PetInputError, match=r"PatientWeight .*missing \(2 slices\)"):
        load_pet(tmp_path / "pet")

"""Masks given by the user (edited MTVs): DICOM SEG over part of a series, segment choice, and refusal
of images that are not masks."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.masks import load_mask

SHORT_LINE = 240     # characters: an error a terminal shows on one line


def _one_short_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and len(message) <= SHORT_LINE, message
    return message


@pytest.fixture()
def dicom_pet(tmp_path):
    from synthetic_dicom import write_series

    write_series(tmp_path / "pet")
    return load_pet(tmp_path / "pet")


def _hot_square(slices: int) -> np.ndarray:
    part = np.zeros((slices, 12, 12), np.uint8)
    part[:, 5:8, 5:8] = 1
    return part


# ----------------------------------------------------------------- DICOM SEG over part of the series
def test_a_dicom_seg_covering_some_slices_is_read(dicom_pet, tmp_path):
    from synthetic_dicom import write_seg

    seg = write_seg(tmp_path / "part.dcm", dicom_pet.dicom_files[2:4], {"GTV": _hot_square(2)})
    mask = load_mask(seg, dicom_pet)
    expected = np.zeros(dicom_pet.shape, np.uint8)
    expected[2:4, 5:8, 5:8] = 1                   # the slices it covers; the others are background
    assert np.array_equal(mask, expected)
    assert dicom_pet.suv[mask > 0] == pytest.approx(9.0, rel=1e-3)     # on the hot spot


def test_a_seg_referencing_instances_outside_the_series_is_refused_in_one_short_line(dicom_pet, tmp_path):
    from synthetic_dicom import edit_headers, write_seg

    seg = write_seg(tmp_path / "all.dcm", dicom_pet.dicom_files, {"GTV": _hot_square(6)})

    def new_uid(ds, _index):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    edit_headers(dicom_pet.dicom_files[:3], new_uid)          # three slices re-created since the SEG
    pet = load_pet(tmp_path / "pet")
    with pytest.raises(MaskInputError) as error:
        load_mask(seg, pet)
    message = _one_short_line(error)
    assert "3 referenced instances are not in this PET series (first: " in message

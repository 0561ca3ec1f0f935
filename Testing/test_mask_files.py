"""Reading an edited MTV from the files a user hands over (pet_input/masks.py): Slicer .seg.nrrd files
with overlapping segments, chosen by name or by id, on the PET grid or another one; a folder with one
RTSTRUCT or SEG; and every file that is not a mask refused word for word. Each mask read is compared
with the array it was written from."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from synthetic_dicom import small_pet, write_seg, write_series

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.analysis.outputs import write_segments_nrrd
from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def refusal(path, pet, segment=None) -> str:
    with pytest.raises(MaskInputError) as refused:
        load_mask(path, pet, segment)
    return str(refused.value)


def parts(shape) -> dict[str, np.ndarray]:
    """Three segments of different sizes; "node" overlaps "GTV" (so the file needs two layers)."""
    gtv, node, far = (np.zeros(shape, np.uint8) for _ in range(3))
    gtv[1:4, 3:8, 2:9] = 1                        # 105 voxels
    node[3:5, 6:9, 7:10] = 1                      # 18, of which 2 inside the GTV
    far[5, 0:2, 10:12] = 1                        # 4
    return {"GTV": gtv, "node": node, "far": far}


@pytest.fixture()
def pet() -> PetVolume:
    return small_pet()                            # (6, 12, 12) at 4 mm


def test_overlapping_segments_are_read_each_from_its_own_layer(pet, tmp_path):
    masks = parts(pet.shape)
    path = write_segments_nrrd(masks, pet, tmp_path / "three.seg.nrrd")
    import slicerio

    stored = slicerio.read_segmentation(str(path))
    assert stored["voxels"].ndim == 4 and {s["layer"] for s in stored["segments"]} == {0, 1}
    for name, mask in masks.items():
        read = load_mask(path, pet, name)
        assert read.dtype == np.uint8 and np.array_equal(read, mask), name


def test_a_segment_is_chosen_by_its_id_as_well_as_its_name(pet, tmp_path):
    masks = parts(pet.shape)
    path = write_segments_nrrd(masks, pet, tmp_path / "three.seg.nrrd")
    assert np.array_equal(load_mask(path, pet, "segment_2"), masks["node"])      # the ids the writer gives
    assert np.array_equal(load_mask(path, pet, "segment_3"), masks["far"])
    message = refusal(path, pet)
    assert message.startswith("three.seg.nrrd holds 3 segments: GTV (105 voxels), node (18 voxels), far (4 voxels)")


def test_a_segmentation_on_another_grid_is_put_on_the_pet_grid(pet, tmp_path):
    """A segmentation drawn on a grid of half the voxel size, shifted by one fine voxel: each PET voxel
    takes the fine voxel nearest its centre."""
    fine = PetVolume(suv=np.zeros((12, 24, 24), np.float32), spacing=(2.0, 2.0, 2.0),
                     origin=tuple(o - 1.0 for o in pet.origin), direction=pet.direction)
    drawn = np.zeros(fine.shape, np.uint8)
    drawn[2:8, 6:16, 4:18] = 1
    path = write_segments_nrrd({"MTV": drawn}, fine, tmp_path / "fine.seg.nrrd")
    expected = np.zeros(pet.shape, np.uint8)
    for k, j, i in np.ndindex(pet.shape):
        # PET voxel centre at origin + 4 * index; fine index of it: (4 * index + 1) / 2, rounded half up
        fk, fj, fi = (int(np.floor((4 * n + 1) / 2 + 0.5)) for n in (k, j, i))
        expected[k, j, i] = drawn[fk, fj, fi] if fk < 12 and fj < 24 and fi < 24 else 0
    assert np.array_equal(load_mask(path, pet, "MTV"), expected)
    empty = np.zeros(fine.shape, np.uint8)
    empty[10, 22, 22] = 1                          # between PET voxel centres: nothing on the PET grid
    path = write_segments_nrrd({"speck": empty}, fine, tmp_path / "speck.seg.nrrd")
    assert refusal(path, pet) == "speck.seg.nrrd: segment 'speck' is empty on the PET grid"


def test_files_that_are_not_masks_are_refused_word_for_word(pet, tmp_path):
    assert refusal(tmp_path / "nothing.nrrd", pet) == f"mask {tmp_path / 'nothing.nrrd'} does not exist"
    broken = tmp_path / "broken.seg.nrrd"
    broken.write_bytes(b"NRRD0004\nthis is not a header\n")
    assert refusal(broken, pet).startswith("broken.seg.nrrd: not a readable Slicer segmentation (")
    notes = tmp_path / "notes.txt"
    notes.write_text("GTV drawn by hand")
    assert refusal(notes, pet) == "notes.txt: not a mask image (NIfTI, NRRD, MHA) nor a DICOM file"


def test_dicom_files_other_than_rtstruct_or_seg_are_refused(tmp_path):
    files = write_series(tmp_path / "pet")
    pet = load_pet(tmp_path / "pet")
    assert refusal(files[0], pet) == f"{files[0].name} is DICOM PT, not RTSTRUCT or SEG"
    ds = pydicom.dcmread(files[1])
    del ds.Modality
    nameless = tmp_path / "nameless.dcm"
    ds.save_as(nameless)
    assert refusal(nameless, pet) == "nameless.dcm is DICOM without Modality, not RTSTRUCT or SEG"


def test_a_folder_with_one_seg_is_read_and_other_folders_are_refused(tmp_path):
    files = write_series(tmp_path / "pet")
    pet = load_pet(tmp_path / "pet")
    square = np.zeros((2, 12, 12), np.uint8)
    square[:, 5:8, 5:8] = 1
    (tmp_path / "one" / "deeper").mkdir(parents=True)
    write_seg(tmp_path / "one" / "deeper" / "mtv.dcm", files[2:4], {"GTV": square})
    (tmp_path / "one" / "readme.txt").write_text("the MTV as drawn")
    sitk.WriteImage(sitk.Image(3, 3, 3, sitk.sitkUInt8), str(tmp_path / "one" / "other.nrrd"))
    expected = np.zeros(pet.shape, np.uint8)
    expected[2:4, 5:8, 5:8] = 1
    assert np.array_equal(load_mask(tmp_path / "one", pet), expected)
    (tmp_path / "none").mkdir()
    assert refusal(tmp_path / "none", pet) == f"{tmp_path / 'none'} holds 0 RTSTRUCT/SEG files; give one file"
    write_seg(tmp_path / "one" / "second.dcm", files[2:4], {"GTV": square})
    assert refusal(tmp_path / "one", pet) == f"{tmp_path / 'one'} holds 2 RTSTRUCT/SEG files; give one file"
    assert refusal(tmp_path / "pet", pet) == f"{tmp_path / 'pet'} holds 0 RTSTRUCT/SEG files; give one file"


def test_a_mask_over_most_of_the_scan_is_refused_with_the_files_name(pet, tmp_path):
    body = np.zeros(pet.shape, np.uint8)
    body[:4] = 1
    path = write_segments_nrrd({"body": body}, pet, tmp_path / "body.seg.nrrd")
    assert refusal(path, pet).startswith("body.seg.nrrd: ")

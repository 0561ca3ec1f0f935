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


# ---------------------------------------------------------------- mask images on other grids
def _image(array: np.ndarray, spacing, origin, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def _drawn(shape) -> np.ndarray:
    rng = np.random.default_rng(4)
    return (rng.random(shape) < 0.3).astype(np.uint8)


def test_a_mask_with_the_pets_size_but_coarser_voxels_is_resampled(pet, tmp_path):
    drawn = _drawn(pet.shape)
    path = tmp_path / "coarse.nrrd"
    sitk.WriteImage(_image(drawn, tuple(3 * s for s in pet.spacing), pet.origin, pet.direction), str(path))
    expected = np.zeros(pet.shape, np.uint8)
    for k, j, i in np.ndindex(pet.shape):              # PET index n lies at mask index n / 3
        expected[k, j, i] = drawn[round(k / 3), round(j / 3), round(i / 3)]
    read = load_mask(path, pet)
    assert read.dtype == np.uint8 and np.array_equal(read, expected)


def test_a_mask_over_part_of_the_pet_is_background_elsewhere(pet, tmp_path):
    drawn = _drawn(pet.shape)
    path = tmp_path / "fine.nrrd"
    sitk.WriteImage(_image(drawn, tuple(s / 2 for s in pet.spacing), pet.origin, pet.direction), str(path))
    expected = np.zeros(pet.shape, np.uint8)
    for k, j, i in np.ndindex(pet.shape):              # PET index n lies at mask index 2 n
        if 2 * k < pet.shape[0] and 2 * j < pet.shape[1] and 2 * i < pet.shape[2]:
            expected[k, j, i] = drawn[2 * k, 2 * j, 2 * i]
    assert np.array_equal(load_mask(path, pet), expected)


def test_a_mask_on_a_turned_grid_with_the_pets_size_spacing_and_origin_is_resampled(pet, tmp_path):
    """Mirrored in x about the PET's origin: only the PET's first column is inside the mask's grid."""
    drawn = _drawn(pet.shape)
    drawn[:, :, 0] = 1
    path = tmp_path / "mirrored.nrrd"
    sitk.WriteImage(_image(drawn, pet.spacing, pet.origin, (-1, 0, 0, 0, 1, 0, 0, 0, 1)), str(path))
    expected = np.zeros(pet.shape, np.uint8)
    expected[:, :, 0] = drawn[:, :, 0]
    assert np.array_equal(load_mask(path, pet), expected)
    segments = tmp_path / "mirrored.seg.nrrd"
    mirrored = PetVolume(suv=np.zeros(pet.shape, np.float32), spacing=pet.spacing, origin=pet.origin,
                         direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_segments_nrrd({"MTV": drawn}, mirrored, segments)
    assert np.array_equal(load_mask(segments, pet, "MTV"), expected)
    shifted = PetVolume(suv=np.zeros(pet.shape, np.float32), spacing=pet.spacing,
                        origin=(pet.origin[0] + 2 * pet.spacing[0], *pet.origin[1:]), direction=pet.direction)
    write_segments_nrrd({"MTV": drawn}, shifted, segments)
    expected = np.zeros(pet.shape, np.uint8)
    expected[:, :, 2:] = drawn[:, :, :-2]               # two columns on: the rest of the PET is background
    assert np.array_equal(load_mask(segments, pet, "MTV"), expected)


def test_float_masks_are_read_as_uint8_and_refusals_name_the_file(pet, tmp_path):
    drawn = _drawn(pet.shape)
    path = tmp_path / "float.nrrd"
    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(drawn.astype(np.float32))), str(path))
    read = load_mask(path, pet)
    assert read.dtype == np.uint8 and np.array_equal(read, drawn)
    soft = tmp_path / "soft.nrrd"
    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(drawn * np.float32(0.5))), str(soft))
    assert refusal(soft, pet).startswith("soft.nrrd: ")
    many = tmp_path / "many.nrrd"
    labels = (np.arange(np.prod(pet.shape)).reshape(pet.shape) % 25 + 1).astype(np.uint8)
    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(labels)), str(many))
    assert refusal(many, pet).startswith("many.nrrd: ")
    two = tmp_path / "two.nrrd"
    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(drawn * np.uint8(2) + (drawn == 0))), str(two))
    message = refusal(two, pet)
    assert message.startswith("two.nrrd holds 2 labels: ") and "--segment" in message
    nowhere = tmp_path / "nowhere.nrrd"
    sitk.WriteImage(_image(drawn, pet.spacing, tuple(o + 1000.0 for o in pet.origin)), str(nowhere))
    assert refusal(nowhere, pet) == "nowhere.nrrd: the mask is empty on the PET grid (does it belong to this scan?)"


# ---------------------------------------------------------------- DICOM SEG
def test_capped_keeps_one_line_of_at_most_the_limit():
    from MTLRadiomicsLib.pet_input.seg_input import capped

    assert capped("a  b\n\tc") == "a b c"
    assert capped("x" * 10, 10) == "x" * 10
    assert capped("x" * 11, 10) == "x" * 9 + "…"
    assert len(capped("y " * 200)) == 120 and capped("y " * 200).endswith("…")


def test_dicom_seg_segments_of_one_label_get_their_numbers(tmp_path):
    files = write_series(tmp_path / "pet")
    pet = load_pet(tmp_path / "pet")
    masks = parts(pet.shape)
    seg = write_seg(tmp_path / "twice.dcm", files, {"GTV": masks["GTV"], "GTV ": masks["far"]})
    import highdicom as hd

    edited = hd.seg.segread(str(seg))                  # both segments labelled "GTV"
    edited.SegmentSequence[1].SegmentLabel = "GTV"
    edited.save_as(str(seg))
    message = refusal(seg, pet)
    assert "GTV#1 (105 voxels)" in message and "GTV#2 (4 voxels)" in message
    assert np.array_equal(load_mask(seg, pet, "GTV#2"), masks["far"])
    assert np.array_equal(load_mask(seg, pet, "2"), masks["far"])
    bare = PetVolume(**{f: getattr(pet, f) for f in ("suv", "spacing", "origin", "direction", "source",
                                                     "source_format", "series", "dicom_files", "tracer")})
    assert not bare.dicom_headers and np.array_equal(load_mask(seg, bare, "GTV#1"), masks["GTV"])


def test_dicom_segs_that_cannot_be_placed_are_refused_word_for_word(pet, tmp_path):
    files = write_series(tmp_path / "pet")
    series = load_pet(tmp_path / "pet")
    other = write_series(tmp_path / "other")                # the same scan, written again: other UIDs
    square = np.zeros((6, 12, 12), np.uint8)
    square[:, 5:8, 5:8] = 1
    seg = write_seg(tmp_path / "other.dcm", other, {"GTV": square})
    assert refusal(seg, series) == ("other.dcm segments another series, not this PET (6 referenced instances, "
                                    "none in this series)")
    assert refusal(seg, pet) == ("other.dcm: a DICOM SEG can only be read onto the PET DICOM series it references; "
                                 "load the PET from that DICOM folder")
    ds = pydicom.dcmread(files[0])
    ds.Modality = "SEG"
    fake = tmp_path / "fake.dcm"
    ds.save_as(fake)
    assert refusal(fake, series).startswith("fake.dcm: not a readable DICOM SEG (")

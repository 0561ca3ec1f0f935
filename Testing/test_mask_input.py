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
    assert mask.dtype == np.uint8
    expected = np.zeros(dicom_pet.shape, np.uint8)
    expected[2:4, 5:8, 5:8] = 1                   # the slices it covers; the others are background
    assert np.array_equal(mask, expected)
    assert dicom_pet.suv[mask > 0] == pytest.approx(9.0, rel=1e-3)     # on the hot spot


def test_a_seg_referencing_instances_outside_the_series_is_refused_in_one_short_line(dicom_pet, tmp_path):
    from synthetic_dicom import edit_headers, write_seg

    seg = write_seg(tmp_path / "all.dcm", dicom_pet.dicom_files, {"GTV": _hot_square(6)})
    import pydicom

    replaced = sorted(str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                      for f in dicom_pet.dicom_files[:3])

    def new_uid(ds, _index):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    edit_headers(dicom_pet.dicom_files[:3], new_uid)          # three slices re-created since the SEG
    pet = load_pet(tmp_path / "pet")
    with pytest.raises(MaskInputError) as error:
        load_mask(seg, pet)
    message = _one_short_line(error)
    assert message == (f"all.dcm: 3 referenced instances are not in this PET series (first: {replaced[0]}); "
                       "read the PET series the SEG was made on")


# ----------------------------------------------------------------- several segments or labels
@pytest.fixture()
def small():
    from synthetic_dicom import small_pet

    return small_pet()


def _two_parts(shape) -> tuple[np.ndarray, np.ndarray]:
    tumour, node = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    tumour[2:4, 5:8, 5:8] = 1           # 18 voxels
    node[0:2, 0:2, 0:2] = 1             # 8 voxels
    return tumour, node


def _write_image(array: np.ndarray, pet, path):
    import SimpleITK as sitk

    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(array)), str(path))
    return path


def test_a_label_map_with_several_labels_is_refused_listing_them(small, tmp_path):
    tumour, node = _two_parts(small.shape)
    path = _write_image(tumour + 2 * node, small, tmp_path / "labels.nii.gz")
    with pytest.raises(MaskInputError) as error:
        load_mask(path, small)
    message = _one_short_line(error)
    assert "1 (18 voxels)" in message and "2 (8 voxels)" in message and "--segment" in message


def test_segment_chooses_one_label_of_a_label_map(small, tmp_path):
    tumour, node = _two_parts(small.shape)
    path = _write_image(tumour + 2 * node, small, tmp_path / "labels.nii.gz")
    assert np.array_equal(load_mask(path, small, segment="2"), node)
    assert np.array_equal(load_mask(path, small, segment="1"), tumour)
    for wrong in ("3", "GTV"):
        with pytest.raises(MaskInputError) as error:
            load_mask(path, small, segment=wrong)
        assert "1 (18 voxels), 2 (8 voxels)" in _one_short_line(error)


def test_a_seg_nrrd_with_two_segments_asks_for_segment(small, tmp_path):
    from MTLRadiomicsLib.analysis.outputs import write_segments_nrrd

    tumour, node = _two_parts(small.shape)
    path = write_segments_nrrd({"GTV": tumour, "node": node}, small, tmp_path / "two.seg.nrrd")
    with pytest.raises(MaskInputError) as error:
        load_mask(path, small)
    message = _one_short_line(error)
    assert "GTV (18 voxels)" in message and "node (8 voxels)" in message
    assert "--segment" in message and "--roi" not in message
    assert np.array_equal(load_mask(path, small, segment="node"), node)
    assert np.array_equal(load_mask(path, small, segment="GTV"), tumour)


def test_a_dicom_seg_with_two_segments_asks_for_segment(dicom_pet, tmp_path):
    from synthetic_dicom import write_seg

    tumour, node = _two_parts(dicom_pet.shape)
    seg = write_seg(tmp_path / "two.dcm", dicom_pet.dicom_files, {"GTV": tumour, "node": node})
    with pytest.raises(MaskInputError) as error:
        load_mask(seg, dicom_pet)
    message = _one_short_line(error)
    assert "GTV (18 voxels)" in message and "node (8 voxels)" in message and "--segment" in message
    assert np.array_equal(load_mask(seg, dicom_pet, segment="node"), node)
    assert np.array_equal(load_mask(seg, dicom_pet, segment="1"), tumour)        # by segment number


@pytest.fixture(scope="module")
def wholebody_pet(tmp_path_factory):
    """A synthetic whole-body PET (NIfTI) and its tumour mask."""
    import SimpleITK as sitk

    from MTLRadiomicsLib.synth import wholebody_case

    case = wholebody_case(5)
    path = tmp_path_factory.mktemp("pet") / "wb.nii.gz"
    sitk.WriteImage(case.pet.to_sitk(), str(path))
    return path, case


def test_rescore_segment_option(wholebody_pet, tiny_model, tmp_path):
    import json

    from cli_runner import assert_one_line_error, run_cli_here

    path, case = wholebody_pet
    tumour = case.mask > 0
    stray = np.zeros_like(tumour)
    stray[tuple(s // 2 for s in tumour.shape)] = True
    labels = _write_image(tumour.astype(np.uint8) + 2 * (stray & ~tumour), case.pet, tmp_path / "labels.nii.gz")
    common = ["--model", tiny_model, "--samples", "2", "--no-report", "--progress", "none"]
    refused = run_cli_here("rescore", path, "--mask", labels, "--out", tmp_path / "a", *common)
    assert_one_line_error(refused, f"1 ({int(tumour.sum())} voxels), 2 (1 voxel)", "--segment")
    done = run_cli_here("rescore", path, "--mask", labels, "--segment", "1", "--out", tmp_path / "b", *common)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "b" / "result.json").read_text())["metrics"]
    assert metrics["mtv_ml"] == pytest.approx(tumour.sum() * np.prod(case.pet.spacing) / 1000.0, rel=1e-4)


# ----------------------------------------------------------------- images that are not masks
def _refused(path, pet, *fragments) -> str:
    with pytest.raises(MaskInputError) as error:
        load_mask(path, pet)
    message = _one_short_line(error)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_the_pet_itself_is_not_a_mask(small, tmp_path):
    noisy = small.suv * np.random.default_rng(0).gamma(20.0, 0.05, small.shape).astype(np.float32)
    path = _write_image(noisy, small, tmp_path / "pet_as_mask.nii.gz")
    _refused(path, small, "non-integer values", "not a mask")


def test_a_fractional_map_is_not_binarised_silently(small, tmp_path):
    tumour, _ = _two_parts(small.shape)
    path = _write_image((0.3 * tumour).astype(np.float32), small, tmp_path / "probability.nii.gz")
    _refused(path, small, "non-integer values", "0.3")


def test_a_ct_like_volume_is_not_a_mask(small, tmp_path):
    ct = np.full(small.shape, -1000, np.int16)
    ct[1:5, 2:10, 2:10] = 40
    path = _write_image(ct, small, tmp_path / "ct.nii.gz")
    _refused(path, small, "negative values", "-1000")


def test_an_image_with_many_values_is_not_a_label_map(small, tmp_path):
    counts = np.arange(np.prod(small.shape), dtype=np.int16).reshape(small.shape) % 50
    path = _write_image(counts, small, tmp_path / "counts.nii.gz")
    _refused(path, small, "49 distinct values", "not a binary mask or a label map")


def test_a_mask_over_most_of_the_image_is_refused(small, tmp_path):
    body = np.zeros(small.shape, np.uint8)
    body[:4] = 1                                     # two thirds of the voxels
    _refused(_write_image(body, small, tmp_path / "body.nii.gz"), small, "67% of the PET volume")
    from MTLRadiomicsLib.analysis.outputs import write_seg_nrrd

    _refused(write_seg_nrrd(body, small, tmp_path / "body.seg.nrrd"), small, "67% of the PET volume")


def test_a_mask_of_more_than_five_litres_is_refused(tmp_path):
    from MTLRadiomicsLib import PetVolume

    pet = PetVolume(suv=np.ones((20, 40, 40), np.float32), spacing=(10.0, 10.0, 10.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    block = np.zeros(pet.shape, np.uint8)
    block[:6, :, :25] = 1                            # 6000 ml, 19% of the voxels
    _refused(_write_image(block, pet, tmp_path / "block.nii.gz"), pet, "6000 ml")


def test_binary_and_label_values_in_any_pixel_type_are_masks(small, tmp_path):
    tumour, node = _two_parts(small.shape)
    as_float = _write_image(tumour.astype(np.float32), small, tmp_path / "float.nii.gz")
    assert np.array_equal(load_mask(as_float, small), tumour)
    as_255 = _write_image((255 * tumour).astype(np.uint8), small, tmp_path / "255.nii.gz")
    assert np.array_equal(load_mask(as_255, small), tumour)


def test_rescore_refuses_the_pet_as_mask(wholebody_pet, tiny_model, tmp_path):
    from cli_runner import assert_one_line_error, run_cli_here

    path, _ = wholebody_pet
    process = run_cli_here("rescore", path, "--mask", path, "--out", tmp_path / "r", "--model", tiny_model,
                           "--no-report", "--progress", "none")
    assert_one_line_error(process, "non-integer values", "not a mask")
    assert not (tmp_path / "r").exists()


def test_a_mask_on_another_grid_is_resampled_nearest_onto_the_pet(tmp_path):
    """A mask stored at 3 mm over a 2 mm PET, placed here voxel by voxel: each PET voxel takes the
    value of the mask voxel whose centre is nearest (the mask index of its physical centre, rounded)."""
    import SimpleITK as sitk

    from MTLRadiomicsLib import PetVolume

    pet = PetVolume(suv=np.ones((12, 15, 18), np.float32), spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    coarse = np.zeros((8, 10, 12), np.uint8)
    coarse[2:5, 3:7, 4:9] = 1
    image = sitk.GetImageFromArray(coarse)
    image.SetSpacing((3.0, 3.0, 3.0))
    image.SetOrigin((0.25, 0.25, 0.25))                   # no PET centre lies halfway between two
    path = tmp_path / "coarse.nii.gz"
    sitk.WriteImage(image, str(path))
    mask = load_mask(path, pet)
    expected = np.zeros(pet.shape, np.uint8)
    for z, y, x in np.ndindex(pet.shape):
        i, j, k = (int(np.floor((2.0 * c - 0.25) / 3.0 + 0.5)) for c in (x, y, z))
        if 0 <= k < 8 and 0 <= j < 10 and 0 <= i < 12:
            expected[z, y, x] = coarse[k, j, i]
    assert mask.shape == pet.shape and expected.sum() > 50
    np.testing.assert_array_equal(mask, expected)


def test_unusable_mask_images_are_refused_word_for_word(small, tmp_path):
    import SimpleITK as sitk

    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(MaskInputError) as info:
        load_mask(broken, small)
    assert str(info.value) == "broken.nii.gz: cannot be read as a mask image (corrupt or not an image)"
    flat = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((5, 5), np.uint8)), str(flat))
    with pytest.raises(MaskInputError) as info:
        load_mask(flat, small)
    assert str(info.value) == "flat.nii.gz: a 3-D single-component mask is needed"
    empty = tmp_path / "empty.nii.gz"
    sitk.WriteImage(small.copy_geometry_to(sitk.GetImageFromArray(np.zeros(small.shape, np.uint8))), str(empty))
    with pytest.raises(MaskInputError) as info:
        load_mask(empty, small)
    assert str(info.value) == "empty.nii.gz: the mask is empty (every voxel is 0)"

"""Crop-grid arrays go back onto the PET grid exactly as a full resampling would put them."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib import PetVolume
from MTLRadiomicsLib.analysis.pet_grid import crop_box_on_pet, crop_to_pet, largest_component_near, probability_to_mask
from MTLRadiomicsLib.model.preprocessing import crop_reference


@pytest.mark.parametrize("direction, center", [
    ((1, 0, 0, 0, 1, 0, 0, 0, 1), (0.0, 0.0, 0.0)),
    ((-1, 0, 0, 0, -1, 0, 0, 0, 1), (-70.0, -150.0, 0.0)),      # RAS-ordered PET, crop over its edge
    ((0, 1, 0, -1, 0, 0, 0, 0, 1), (20.0, 30.0, -40.0)),
])
def test_crop_to_pet_equals_full_resampling(direction, center):
    pet = PetVolume(suv=np.ones((60, 50, 40), np.float32), spacing=(4.0, 4.0, 3.0), origin=(-80.0, -100.0, -90.0),
                    direction=direction)
    reference = crop_reference(center, (3.0, 3.0, 3.0), (32, 32, 32))
    values = np.random.default_rng(1).random((32, 32, 32)).astype(np.float32)
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(reference)
    full = sitk.GetArrayFromImage(sitk.Resample(image, pet.to_sitk(), sitk.Transform(), sitk.sitkLinear, 0.0,
                                                sitk.sitkFloat32))
    placed = crop_to_pet(values.astype(np.float64), reference, pet)          # any float input
    assert placed.dtype == np.float32 and placed.shape == pet.shape
    np.testing.assert_allclose(placed, full, atol=1e-6)


def test_crop_outside_the_pet_gives_zeros():
    pet = PetVolume(suv=np.ones((10, 10, 10), np.float32), spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    reference = crop_reference((1000.0, 0.0, 0.0), (3.0, 3.0, 3.0), (32, 32, 32))
    outside = crop_to_pet(np.ones((32, 32, 32), np.float32), reference, pet)
    assert outside.dtype == np.float32 and outside.shape == pet.shape and not outside.any()


def test_largest_component_near_keeps_the_seeded_lesion():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:5, 2:5, 2:5] = 1
    mask[10:18, 10:18, 10:18] = 1
    assert largest_component_near(mask, (3, 3, 3)).sum() == 27
    assert largest_component_near(mask, None).sum() == 512
    background = largest_component_near(mask, (0, 0, 0))          # a seed outside both: the largest
    assert background.sum() == 512 and background[12, 12, 12] == 1 and background.dtype == np.uint8
    single = largest_component_near(mask * (np.arange(20)[:, None, None] < 8), (0, 0, 0))
    assert single.dtype == np.uint8 and single.sum() == 27            # one component: kept as it is


def test_probability_to_mask_keeps_the_threshold_itself():
    probability = np.array([[[0.2, 0.5, 0.5000001, 0.49999]]], np.float32)
    assert probability_to_mask(probability).tolist() == [[[0, 1, 1, 0]]]
    assert probability_to_mask(probability, 0.2).tolist() == [[[1, 1, 1, 1]]]
    assert probability_to_mask(probability).dtype == np.uint8


def test_crop_box_covers_the_crop_plus_one_voxel_and_stays_in_the_pet():
    """On an axis-aligned PET of 2 mm voxels from the origin, a crop of ten 2 mm voxels centred at
    (20, 21, 29) mm spans x 10-30, y 11-31, z 19-39 mm: continuous PET indices 5-15, 5.5-15.5,
    9.5-19.5; the box adds one voxel below the floor and two above the ceiling."""
    pet = PetVolume(suv=np.ones((30, 30, 30), np.float32), spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    box = crop_box_on_pet(crop_reference((20.0, 21.0, 29.0), (2.0, 2.0, 2.0), (10, 10, 10)), pet)
    assert [(b.start, b.stop) for b in box] == [(8, 22), (4, 18), (4, 17)]          # (z, y, x)
    edge = crop_box_on_pet(crop_reference((0.0, 0.0, 58.0), (2.0, 2.0, 2.0), (10, 10, 10)), pet)
    assert edge[2].start == 0 and edge[1].start == 0 and edge[0].stop == 30     # cut at the PET's faces

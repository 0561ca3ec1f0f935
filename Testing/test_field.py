"""Where the network's field goes (analysis/field.py): on the bounding box of the MTV's largest
26-connected part, worked out in the box that holds the mask and checked here against the same
rule on the whole grid (scipy's labels, SimpleITK's index to LPS), on oblique grids and with ties."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MTLRadiomicsLib.analysis.field import place_field
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def whole_grid_centre(mask: np.ndarray, pet: PetVolume) -> tuple[int, tuple[float, float, float]]:
    labels, parts = ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    where = np.argwhere(labels == int(np.argmax(sizes)) + 1)          # the first of equal sizes
    centre_zyx = (where.min(axis=0) + where.max(axis=0)) / 2.0
    image = pet.to_sitk()
    return parts, image.TransformContinuousIndexToPhysicalPoint([float(c) for c in centre_zyx[::-1]])


def oblique_pet(shape, seed) -> PetVolume:
    rng = np.random.default_rng(seed)
    rotation = sitk.VersorTransform(tuple(rng.normal(size=3)), float(rng.uniform(0.1, 1.0))).GetMatrix()
    return PetVolume(suv=np.zeros(shape, np.float32), spacing=tuple(rng.uniform(0.7, 5.0, 3)),
                     origin=tuple(rng.uniform(-300, 300, 3)), direction=rotation)


@pytest.mark.parametrize("seed", range(12))
def test_the_field_is_the_whole_grid_rule_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(8, 28, 3))
    mask = (rng.random(shape) < rng.uniform(0.01, 0.15)).astype(np.uint8)
    pet = oblique_pet(shape, seed)
    placed = place_field(mask, pet)
    parts, centre = whole_grid_centre(mask, pet)
    assert placed.parts == parts
    assert placed.center_lps == pytest.approx(centre, abs=1e-9)
    voxel_ml = float(np.prod(pet.spacing)) / 1000.0
    sizes = np.bincount(ndimage.label(mask, structure=np.ones((3, 3, 3)))[0].ravel())[1:]
    assert placed.bulk_ml == pytest.approx(round(sizes.max() * voxel_ml, 3))
    assert placed.other_ml == pytest.approx(round((sizes.sum() - sizes.max()) * voxel_ml, 3))
    assert (placed.note != "") == (parts > 1)


def test_of_two_parts_of_one_size_the_first_in_z_y_x_order_places_the_field():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[12:15, 2:5, 2:5] = 1                       # later in z: second
    mask[3:6, 14:17, 10:13] = 1                     # earlier in z: first, though further in y and x
    pet = oblique_pet(mask.shape, 99)
    placed = place_field(mask, pet)
    assert placed.parts == 2
    assert placed.center_lps == pytest.approx(pet.to_sitk().TransformContinuousIndexToPhysicalPoint((11.0, 15.0, 4.0)))
    assert placed.note == ("the network's field is centred on the MTV's largest part ({:.1f} ml); 1 other part(s) "
                           "({:.2f} ml) did not move it and count in the scores only where the field covers them"
                           ).format(placed.bulk_ml, placed.other_ml)


def test_a_single_part_at_the_grid_corner_and_an_empty_mask():
    mask = np.zeros((6, 7, 8), np.uint8)
    mask[5, 6, 7] = 1
    pet = oblique_pet(mask.shape, 3)
    placed = place_field(mask, pet)
    assert placed.center_lps == pytest.approx(pet.index_to_physical((7.0, 6.0, 5.0)), abs=1e-9)
    assert placed.parts == 1 and placed.other_ml == 0 and placed.note == ""
    with pytest.raises(ValueError, match="^the mask is empty$"):
        place_field(np.zeros_like(mask), pet)

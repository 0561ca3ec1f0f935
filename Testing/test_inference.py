"""Inference on the crop: Monte-Carlo dropout and test-time augmentation, calibration temperatures,
and the random state, each against a computation made here (numpy flips and rolls, sigmoid and
softmax by hand, fresh forward passes)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MTLRadiomicsLib.analysis.inference import (CropInput, _augment, _class_probabilities, mask_to_crop, predict,
                                                temperatures)
from MTLRadiomicsLib.model import MultiTaskNet, named_config
from MTLRadiomicsLib.model.model_card import ModelCard
from MTLRadiomicsLib.model.preprocessing import crop_reference

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def crop() -> CropInput:
    rng = np.random.default_rng(11)
    image = (rng.random((1, 32, 32, 32)) * 0.3).astype(np.float32)
    image[:, 10:22, 8:20, 12:24] += 1.0
    return CropInput(image=image, reference=crop_reference((0.0, 0.0, 0.0), (3.0, 3.0, 3.0), (32, 32, 32)),
                     center_lps=(0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def network() -> MultiTaskNet:
    torch.manual_seed(5)
    return MultiTaskNet(named_config("tiny", dropout=0.5)).eval()


def dropout_modules(net: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in net.modules() if isinstance(m, (torch.nn.Dropout, torch.nn.Dropout3d))]


def test_mc_dropout_samples_differ_are_reproducible_and_leave_no_trace(network, crop):
    assert dropout_modules(network)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = predict(network, crop, CPU, samples=10, seed=42)
    after = torch.rand(3)
    assert torch.equal(after, expected_next)                  # the global random state is untouched
    assert first.outcome_samples.shape == (10,) and first.class_samples.shape == (10, 2)
    assert len(np.unique(np.round(first.outcome_samples, 7))) == 10       # dropout was on: every sample differs
    again = predict(network, crop, CPU, samples=10, seed=42)
    np.testing.assert_array_equal(again.outcome_samples, first.outcome_samples)
    other = predict(network, crop, CPU, samples=10, seed=43)
    assert not np.allclose(other.outcome_samples, first.outcome_samples)
    assert not network.training and not any(m.training for m in dropout_modules(network))   # switched off again
    # the segmentation and the features are those of the deterministic pass (dropout off)
    with torch.no_grad():
        plain = network(crop.tensor(CPU))
    np.testing.assert_allclose(first.segmentation, torch.sigmoid(plain["segmentation"])[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(first.features, plain["outcome_features"][0].numpy(), atol=1e-6)


def test_sample_counts_that_are_not_a_multiple_of_the_batch(network, crop):
    for samples in (1, 3, 5, 9):
        assert predict(network, crop, CPU, samples=samples, seed=1).outcome_samples.shape == (samples,)


def test_augment_against_numpy_flips_and_rolls():
    x = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 1, 2, 3, 4)
    a = x.numpy()
    np.testing.assert_array_equal(_augment(x, False, 0).numpy(), a)
    np.testing.assert_array_equal(_augment(x, True, 0).numpy(), a[..., ::-1])
    np.testing.assert_array_equal(_augment(x, False, 1).numpy(), np.roll(a, 1, axis=-1))
    np.testing.assert_array_equal(_augment(x, True, -1).numpy(), np.roll(a[..., ::-1], -1, axis=-1))


def test_tta_samples_are_the_network_on_flipped_and_shifted_crops(network, crop):
    prediction = predict(network, crop, CPU, samples=6, method="tta")
    x = crop.image[None]
    expected = []
    with torch.no_grad():
        for flip, shift in ((False, -1), (True, -1), (False, 0), (True, 0), (False, 1), (True, 1)):
            xs = np.roll(x[..., ::-1] if flip else x, shift, axis=-1).copy()
            expected.append(float(torch.sigmoid(network(torch.from_numpy(xs))["outcome"])[0]))
    np.testing.assert_allclose(prediction.outcome_samples, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="uncertainty method must be one of"):
        predict(network, crop, CPU, samples=2, method="bootstrap")


def test_temperatures_scale_the_logits_before_sigmoid_and_softmax(network, crop):
    card = ModelCard(name="t", architecture={}, calibration={"outcome_temperature": 2.0, "class_temperature": 4.0})
    assert temperatures(card) == (2.0, 4.0)
    assert temperatures(None) == (1.0, 1.0)
    assert temperatures(ModelCard(name="u", architecture={}, calibration={"outcome_temperature": None})) == (1.0, 1.0)
    plain = predict(network, crop, CPU, samples=4, seed=9)
    scaled = predict(network, crop, CPU, samples=4, seed=9, card=card)
    logit = np.log(plain.outcome_samples / (1 - plain.outcome_samples))
    np.testing.assert_allclose(scaled.outcome_samples, 1 / (1 + np.exp(-logit / 2.0)), rtol=1e-4)
    logits = torch.tensor([[1.0, 3.0, -2.0]])
    by_hand = np.exp(logits.numpy() / 4.0) / np.exp(logits.numpy() / 4.0).sum()
    np.testing.assert_allclose(_class_probabilities(logits, 4.0).numpy(), by_hand, rtol=1e-6)
    one = _class_probabilities(torch.tensor([[0.5]]), 0.5).numpy()
    np.testing.assert_allclose(one, [[1 - 1 / (1 + np.exp(-1.0)), 1 / (1 + np.exp(-1.0))]], rtol=1e-6)


def test_a_survival_head_gives_log_hazards_without_temperature(crop):
    torch.manual_seed(6)
    cox = MultiTaskNet(named_config("tiny", outcome_kind="survival", dropout=0.0)).eval()
    card = ModelCard(name="c", architecture={}, calibration={"outcome_temperature": 3.0})
    prediction = predict(cox, crop, CPU, samples=2, seed=1, card=card)
    with torch.no_grad():
        raw = float(cox(crop.tensor(CPU))["outcome"][0])
    np.testing.assert_allclose(prediction.outcome_samples, [raw, raw], rtol=1e-5)     # no dropout: equal


def test_mask_to_crop_is_a_soft_mask_on_the_crop_grid(crop):
    from MTLRadiomicsLib import PetVolume

    pet = PetVolume(suv=np.ones((40, 40, 40), np.float32), spacing=(3.0, 3.0, 3.0), origin=(-60.0, -60.0, -60.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    mask = np.zeros(pet.shape, np.uint8)
    mask[:, :, 20:] = 1                                     # x >= 0 mm (voxel centres)
    soft = mask_to_crop(mask, pet, crop)
    assert soft.shape == (32, 32, 32) and soft.dtype == np.float32
    assert soft.min() >= 0.0 and soft.max() <= 1.0
    centres_x = np.array([crop.reference.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(32)])
    assert np.all(soft[:, :, centres_x >= 1.5] == 1.0) and np.all(soft[:, :, centres_x <= -4.5] == 0.0)
    image = pet.copy_geometry_to(sitk.GetImageFromArray(mask.astype(np.float32)))
    assert image.GetSize() == (40, 40, 40)


# ---------------------------------------------------------------- the crop the network sees
def _linear_pet():
    """A PET whose SUV is a linear function of the LPS position (linear interpolation is exact on it),
    on an oblique grid with anisotropic voxels; the function and the PET."""
    from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

    direction = sitk.VersorTransform((0.2, -0.4, 1.0), 0.35).GetMatrix()
    pet = PetVolume(suv=np.zeros((40, 36, 44), np.float32), spacing=(2.5, 3.0, 3.5), origin=(-60.0, -40.0, -70.0),
                    direction=direction)
    k, j, i = np.indices(pet.shape).astype(float)
    d = np.asarray(direction).reshape(3, 3) * np.asarray(pet.spacing)
    lps = [pet.origin[a] + d[a, 0] * i + d[a, 1] * j + d[a, 2] * k for a in range(3)]

    def suv_at(x, y, z):
        return 20.0 + 0.04 * x - 0.03 * y + 0.05 * z

    pet.suv[:] = suv_at(*lps)
    return pet, suv_at


def test_the_crop_is_the_pet_on_the_cards_grid_clipped_and_scaled_as_the_card_says():
    from MTLRadiomicsLib.analysis.inference import prepare_input
    from MTLRadiomicsLib.model.model_card import Preprocessing

    pet, suv_at = _linear_pet()
    centre = pet.index_to_physical((22.0, 18.0, 20.0))
    card = ModelCard(name="t", architecture={}, preprocessing=Preprocessing(
        spacing_mm=(2.0, 1.5, 2.5), crop_size=(6, 8, 10), suv_clip=18.5, suv_scale=8.0))
    crop = prepare_input(pet, [np.float64(c) for c in centre], card)
    assert crop.image.shape == (1, 6, 8, 10) and crop.image.dtype == np.float32
    assert crop.center_lps == centre and all(type(c) is float for c in crop.center_lps)
    reference = crop.reference
    assert reference.GetSize() == (10, 8, 6) and reference.GetSpacing() == (2.0, 1.5, 2.5)
    assert reference.GetDirection() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(reference.GetOrigin(), np.asarray(centre) - np.array([4.5 * 2.0, 3.5 * 1.5, 2.5 * 2.5]))
    k, j, i = np.indices((6, 8, 10)).astype(float)
    x, y, z = (reference.GetOrigin()[0] + 2.0 * i, reference.GetOrigin()[1] + 1.5 * j,
               reference.GetOrigin()[2] + 2.5 * k)
    expected = np.clip(suv_at(x, y, z), 0.0, 18.5) / 8.0
    assert expected.max() == 18.5 / 8.0 and (expected < 18.5 / 8.0).mean() > 0.2      # values below and at the clip
    np.testing.assert_allclose(crop.image[0], expected, atol=2e-5)
    assert crop.tensor(CPU).dtype == torch.float32 and tuple(crop.tensor(CPU).shape) == (1, 1, 6, 8, 10)


def test_a_crop_past_the_edge_of_the_pet_is_zero_there():
    from MTLRadiomicsLib.analysis.inference import prepare_input
    from MTLRadiomicsLib.model.model_card import Preprocessing

    pet, _ = _linear_pet()
    corner = pet.index_to_physical((0.0, 0.0, 0.0))
    card = ModelCard(name="t", architecture={}, preprocessing=Preprocessing(spacing_mm=(3.0, 3.0, 3.0),
                                                                            crop_size=(16, 16, 16)))
    image = prepare_input(pet, corner, card).image[0]
    outside = image == 0.0
    assert 0.2 < outside.mean() < 0.95                # the part beyond the PET is background
    assert (image[~outside] > 0).all()


def test_the_mask_on_the_crop_grid_is_its_linear_interpolation():
    """A mask that holds the half of the PET with x (LPS) below a plane: on the crop grid it is 1 well
    inside, 0 well outside, and in between only within one PET voxel of the plane."""
    from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

    pet = PetVolume(suv=np.ones((20, 20, 20), np.float32), spacing=(4.0, 4.0, 4.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    mask = np.zeros(pet.shape, np.uint8)
    mask[:, :, :10] = 1                               # x index 0..9: x <= 36 mm
    crop = CropInput(image=np.zeros((1, 8, 8, 24), np.float32),
                     reference=crop_reference((38.0, 38.0, 38.0), (1.0, 1.0, 1.0), (8, 8, 24)), center_lps=(38.0,) * 3)
    soft = mask_to_crop(mask, pet, crop)
    assert soft.shape == (8, 8, 24) and soft.dtype == np.float32
    x = 38.0 - 11.5 + np.arange(24)
    expected = np.clip((40.0 - x) / 4.0, 0.0, 1.0)     # 1 at 36 mm, 0 at 40 mm, linear between
    np.testing.assert_allclose(soft, np.broadcast_to(expected, soft.shape), atol=1e-6)

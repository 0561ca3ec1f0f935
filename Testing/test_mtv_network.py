"""The network MTV by sliding windows over a growing region: stitching exact on the PET grid, whole
lesions larger than the network's field of view, the scan's end, the size limit, and a real
2.3 l sarcoma segmented whole."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import MTLRadiomicsLib.mtv.network_mtv as network_mtv
from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet
from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config
from MTLRadiomicsLib.model.preprocessing import normalise_suv
from MTLRadiomicsLib.mtv.plausibility import check_mtv
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

CPU = torch.device("cpu")
PRE = Preprocessing(spacing_mm=(3.0, 3.0, 3.0), crop_size=(16, 16, 16), suv_clip=30.0, suv_scale=10.0)
FOV_ML = (16 * 3.0) ** 3 / 1000.0          # the network's field of view: 110.6 ml


def pointwise(x: torch.Tensor) -> torch.Tensor:
    """A stand-in for the segmentation path that depends on each voxel alone: 0.5 at SUV 3."""
    return torch.sigmoid(20.0 * (x - 0.3))


@pytest.fixture()
def fake_network(monkeypatch):
    """A real (tiny) network object whose segmentation path is the pointwise function above."""
    monkeypatch.setattr(network_mtv, "segmentation_predictor", lambda network: pointwise)
    return MultiTaskNet(named_config("tiny")), ModelCard(name="fake", architecture={}, preprocessing=PRE)


def oblique_pet(shape_zyx=(70, 60, 64), spacing=(4.1, 3.7, 3.3), tumour_semi_mm=(70.0, 45.0, 40.0),
                centre_index=None, angle=0.3) -> tuple[PetVolume, np.ndarray]:
    """An ellipsoid tumour (SUV 8) in SUV-1 tissue, on an anisotropic grid rotated about z. Returns
    the PET and the tumour's voxels (bool)."""
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    image = sitk.Image([shape_zyx[2], shape_zyx[1], shape_zyx[0]], sitk.sitkFloat32)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin((-40.0, 25.0, -300.0))
    centre_index = centre_index or tuple(n / 2.0 for n in reversed(shape_zyx))
    centre = np.asarray(image.TransformContinuousIndexToPhysicalPoint([float(v) for v in centre_index]))
    k, j, i = np.indices(shape_zyx)
    d = np.asarray(direction).reshape(3, 3) * np.asarray(spacing)
    points = [image.GetOrigin()[a] + d[a, 0] * i + d[a, 1] * j + d[a, 2] * k for a in range(3)]
    q = sum(((p - c0) / r) ** 2 for p, c0, r in zip(points, centre, tumour_semi_mm))
    tumour = q <= 1.0
    suv = np.where(tumour, 8.0, 1.0).astype(np.float32)
    image = sitk.GetImageFromArray(suv)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin((-40.0, 25.0, -300.0))
    return PetVolume.from_sitk(image), tumour


def test_stitched_windows_equal_one_pass_over_the_region_on_the_pet_grid(fake_network):
    network, card = fake_network
    pet, tumour = oblique_pet()
    seed = pet.index_to_physical((32.0, 30.0, 35.0))
    result = network_mtv.segment_network_mtv(network, card, pet, seed, CPU)
    assert result.windows > 8                                   # really several overlapping windows
    # An independent single pass over the final region: resample, normalise, the pointwise function.
    suv = sitk.GetArrayFromImage(sitk.Resample(pet.to_sitk(), result.region, sitk.Transform(), sitk.sitkLinear,
                                               0.0, sitk.sitkFloat32))
    one_pass = pointwise(torch.as_tensor(normalise_suv(suv, PRE))).numpy()
    np.testing.assert_allclose(result.region_probability, one_pass, atol=2e-6)
    np.testing.assert_allclose(result.probability, np.clip(crop_to_pet(one_pass, result.region, pet), 0, 1),
                               atol=2e-6)
    # Every output lies on the PET grid and the MTV is the tumour, far larger than one field of view.
    assert result.mask.shape == pet.shape
    volume = result.mask.sum() * pet.voxel_volume_ml
    assert volume > 3 * FOV_ML
    dice = 2 * (result.mask.astype(bool) & tumour).sum() / (result.mask.sum() + tumour.sum())
    assert dice > 0.97
    assert result.cut_at_scan_end == [] and result.reached_limit == []


def test_region_grows_until_the_lesion_is_enclosed_not_to_the_field_of_view(fake_network):
    network, card = fake_network
    pet, tumour = oblique_pet(tumour_semi_mm=(30.0, 30.0, 90.0))     # 18 cm long, 3.75 fields of view
    result = network_mtv.segment_network_mtv(network, card, pet, pet.index_to_physical((32.0, 30.0, 35.0)), CPU)
    assert result.iterations >= 3
    assert result.region_size_mm[2] >= 180.0
    k = np.flatnonzero(result.mask.any(axis=(1, 2)))
    kt = np.flatnonzero(tumour.any(axis=(1, 2)))
    assert (k.min(), k.max()) == (kt.min(), kt.max())                # every tumour slice is in the MTV


def test_a_lesion_at_the_end_of_the_scan_is_reported_cut_there(fake_network):
    network, card = fake_network
    # The tumour's centre on the last slice: the scan ends in the middle of it, at its superior side.
    pet, tumour = oblique_pet(shape_zyx=(40, 60, 64), tumour_semi_mm=(30.0, 30.0, 40.0),
                              centre_index=(32.0, 30.0, 39.0))
    seed = pet.index_to_physical((32.0, 30.0, 37.0))
    result = network_mtv.segment_network_mtv(network, card, pet, seed, CPU)
    assert result.cut_at_scan_end == ["superior"]
    assert result.reached_limit == []
    check = check_mtv(result.mask, pet.suv, pet.spacing, (37, 30, 32), "network", result.cut_at_scan_end)
    assert check.valid and "cut_at_scan_end" in check.flags
    assert any("superior end of the scan" in w for w in check.warnings)


def test_a_segmentation_that_leaks_everywhere_stops_and_is_not_scored(monkeypatch):
    monkeypatch.setattr(network_mtv, "segmentation_predictor", lambda network: (lambda x: torch.ones_like(x)))
    card = ModelCard(name="fake", architecture={}, preprocessing=PRE)
    pet, _ = oblique_pet(shape_zyx=(150, 130, 130), spacing=(4.0, 4.0, 4.0), tumour_semi_mm=(20.0, 20.0, 20.0))
    seed = pet.index_to_physical((65.0, 65.0, 75.0))
    result = network_mtv.segment_network_mtv(MultiTaskNet(named_config("tiny")), card, pet, seed, CPU)
    assert result.reached_limit
    assert result.mask.sum() * pet.voxel_volume_ml > network_mtv.MAX_LESION_ML
    check = check_mtv(result.mask, pet.suv, pet.spacing, (75, 65, 65), "network", result.cut_at_scan_end,
                      result.reached_limit)
    assert not check.valid and "reached_limit" in check.flags


def test_nothing_at_the_seed_gives_an_empty_mtv_and_withheld_scores(fake_network):
    network, card = fake_network
    pet, _ = oblique_pet()
    corner = pet.index_to_physical((2.0, 2.0, 2.0))             # background, far from the tumour
    result = network_mtv.segment_network_mtv(network, card, pet, corner, CPU)
    assert not result.mask.any()
    check = check_mtv(result.mask, pet.suv, pet.spacing, (2, 2, 2), "network")
    assert not check.valid and check.flags == ["empty"]
    assert "withheld" in check.withheld_reason


def test_real_2_3_litre_sarcoma_is_segmented_whole(fake_network, sts_crops_dir):
    """STS_020 (GTV 2.3 l, 27 x 20 x 13 cm, 5.5 x 5.5 x 3.3 mm voxels): with the GTV's voxels raised
    by 5 SUV, the pointwise stand-in (SUV >= 3) must return the whole GTV, not a field of view's worth."""
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask

    network, card = fake_network
    real = load_pet(sts_crops_dir / "STS_020" / "PET_image.nii.gz")
    gtv = load_mask(sts_crops_dir / "STS_020" / "PET_mask.nii.gz", real) > 0
    image = real.copy_geometry_to(sitk.GetImageFromArray(np.where(gtv, real.suv + 5.0, np.minimum(real.suv, 2.9))
                                                          .astype(np.float32)))
    pet = PetVolume.from_sitk(image)
    k, j, i = np.argwhere(gtv)[0]
    result = network_mtv.segment_network_mtv(network, card, pet, pet.index_to_physical((float(i), float(j), float(k))),
                                             CPU)
    gtv_ml = gtv.sum() * pet.voxel_volume_ml
    assert gtv_ml > 20 * FOV_ML
    assert result.mask.sum() * pet.voxel_volume_ml == pytest.approx(gtv_ml, rel=0.05)
    dice = 2 * (result.mask.astype(bool) & gtv).sum() / (result.mask.sum() + gtv.sum())
    assert dice > 0.95

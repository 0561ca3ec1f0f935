"""Automatic lesion localisation: synthetic whole-body cases (hits, physiological uptake left
out, a cropped scan, a flipped direction matrix), the real STS_001 whole-body PET, and the
coordinate helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MTLRadiomicsLib import PetVolume
from MTLRadiomicsLib.errors import LocalisationError, MTLRadiomicsError
from MTLRadiomicsLib.localisation import (box_center_and_size, find_candidates, lps_to_ras,
                                          point_in_volume, ras_to_lps)
from MTLRadiomicsLib.synth import ORGAN_LABELS, organ_labels, wholebody_case

ACCURACY_SEEDS = range(1000, 1012)    # both pathologies; seed 1008 is a faint 1 ml lung nodule
HIT_MARGIN_MM = 10.0
PHYSIOLOGICAL = ("brain", "bladder", "myocardium", "kidney")


@pytest.fixture(scope="module")
def cases():
    return {seed: wholebody_case(seed) for seed in ACCURACY_SEEDS}


@pytest.fixture(scope="module")
def searches(cases):
    return {seed: find_candidates(case.pet) for seed, case in cases.items()}


def lesion_box(pet: PetVolume, mask: np.ndarray, margin_mm: float = HIT_MARGIN_MM):
    """The lesion's bounding box (voxel centres, LPS mm) grown by ``margin_mm``."""
    idx = np.argwhere(mask > 0)
    lo = np.asarray(pet.index_to_physical(tuple(idx.min(axis=0)[::-1].astype(float))))
    hi = np.asarray(pet.index_to_physical(tuple(idx.max(axis=0)[::-1].astype(float))))
    return np.minimum(lo, hi) - margin_mm, np.maximum(lo, hi) + margin_mm


def inside(point, box) -> bool:
    return bool(np.all((np.asarray(point) >= box[0]) & (np.asarray(point) <= box[1])))


def label_at(labels: np.ndarray, pet: PetVolume, point) -> str:
    i, j, k = pet.physical_to_index(point)
    names = {v: n for n, v in ORGAN_LABELS.items()}
    return names[int(labels[k, j, i])]


def test_synthetic_top_candidate_is_the_lesion(cases, searches):
    hits, table = 0, []
    for seed, case in cases.items():
        top = searches[seed].candidates[0]
        hit = inside(top.center_lps, lesion_box(case.pet, case.mask))
        hits += hit
        table.append(f"{seed} {case.pathology:12s} {'hit ' if hit else 'MISS'} "
                     f"SUVmax {top.suv_max:5.2f} {top.volume_ml:6.1f} ml")
    print("\n".join(table))
    assert hits >= 11, "\n".join(table)


def test_physiological_uptake_is_never_ranked_first(cases, searches):
    for seed, case in cases.items():
        labels = organ_labels(seed, case.pet)
        top = searches[seed].candidates[0]
        assert label_at(labels, case.pet, top.peak_lps) not in PHYSIOLOGICAL, seed


def test_brain_bladder_kidneys_heart_recognised_where_they_are(cases, searches):
    seed = 1000
    case = cases[seed]
    labels = organ_labels(seed, case.pet)
    search = searches[seed]
    organs = [e.organ for e in search.excluded]
    assert {"brain", "bladder"} <= set(organs)
    assert organs.count("kidney") == 2 and organs.count("brain") == 1
    truth = {"brain": "brain", "bladder": "bladder", "kidney": "kidney", "heart": "myocardium"}
    for region in search.excluded:
        # inside the bounding box of one piece of that organ (a kidney, the heart's myocardium)
        pieces, _ = ndimage.label(labels == ORGAN_LABELS[truth[region.organ]])
        boxes = [lesion_box(case.pet, pieces == n) for n in range(1, pieces.max() + 1)
                 if (pieces == n).sum() * case.pet.voxel_volume_ml > 5.0]
        assert any(inside(region.center_lps, box) for box in boxes), region
    kidney_x = sorted(e.center_lps[0] for e in search.excluded if e.organ == "kidney")
    assert kidney_x[0] < 0 < kidney_x[1]      # one on the right (-x), one on the left (+x)


def test_result_is_json_and_ras_is_lps_mirrored(cases):
    search = find_candidates(cases[1000].pet, max_candidates=3)
    data = json.loads(json.dumps(search.to_dict()))
    assert len(data["candidates"]) <= 3 and data["threshold_suv"] >= 2.5
    first = data["candidates"][0]
    assert first["rank"] == 1
    assert first["center_ras"] == pytest.approx([-first["center_lps"][0], -first["center_lps"][1],
                                                 first["center_lps"][2]])
    lo, hi = first["bbox_lps"]
    assert all(a <= c <= b for a, c, b in zip(lo, first["center_lps"], hi))
    assert all(a <= c <= b for a, c, b in zip(lo, first["peak_lps"], hi))
    scores = [c.score for c in search.candidates]
    assert scores == sorted(scores, reverse=True)
    assert {"organ", "center_lps", "center_ras", "suv_max", "volume_ml"} <= set(data["excluded"][0])
    assert isinstance(search.method, str) and search.method.endswith(".")


def test_exclude_only_the_brain_lets_the_bladder_compete(cases):
    search = find_candidates(cases[1000].pet, exclude=("brain",))
    assert {e.organ for e in search.excluded} == {"brain"}
    assert any(c.suv_max > 7.0 and c.volume_ml > 50 for c in search.candidates)  # the bladder
    with pytest.raises(ValueError):
        find_candidates(cases[1000].pet, exclude=("liver",))


def test_chest_only_scan_still_finds_the_lung_lesion(cases):
    case = cases[1000]
    assert case.pathology == "lung"
    k = int(np.argwhere(case.mask)[:, 0].mean())
    k0, k1 = k - 50, k + 50                   # 300 mm of chest: no head, kidneys nor bladder
    pet = PetVolume(suv=case.pet.suv[k0:k1], spacing=case.pet.spacing,
                    origin=case.pet.index_to_physical((0, 0, k0)), direction=case.pet.direction)
    search = find_candidates(pet)
    assert inside(search.candidates[0].center_lps, lesion_box(pet, case.mask[k0:k1]))
    assert not {"brain", "bladder", "kidney"} & {e.organ for e in search.excluded}


def test_flipped_direction_matrix_gives_the_same_physical_result(cases):
    pet = cases[1003].pet
    flipped_direction = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    far_corner = pet.index_to_physical((pet.size[0] - 1, pet.size[1] - 1, 0))
    flipped = PetVolume(suv=pet.suv[:, ::-1, ::-1], spacing=pet.spacing, origin=far_corner,
                        direction=flipped_direction)
    assert flipped.orientation == "RAS"
    a, b = find_candidates(pet), find_candidates(flipped)
    assert len(a.candidates) == len(b.candidates)
    for x, y in zip(a.candidates, b.candidates):
        np.testing.assert_allclose(x.center_lps, y.center_lps, atol=1e-3)
        np.testing.assert_allclose(x.peak_lps, y.peak_lps, atol=1e-3)
        np.testing.assert_allclose(x.bbox_lps, y.bbox_lps, atol=1e-3)
        assert x.suv_max == pytest.approx(y.suv_max)
    assert [e.organ for e in a.excluded] == [e.organ for e in b.excluded]


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_cold_volume_raises_a_one_line_error(value):
    pet = PetVolume(suv=np.full((40, 50, 50), value, np.float32), spacing=(4.0, 4.0, 3.0),
                    origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    with pytest.raises(LocalisationError) as error:
        find_candidates(pet)
    message = str(error.value)
    assert isinstance(error.value, MTLRadiomicsError)
    assert "\n" not in message and "--point" in message and "--box" in message


def test_sts001_top_candidate_lies_in_the_thigh_sarcoma(sts001_dir, sts001_pet):
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(sts001_dir / "GTV_Mass_mask.nii.gz"))) > 0
    search = find_candidates(sts001_pet)
    top = search.candidates[0]
    for point in (top.center_lps, top.peak_lps):
        i, j, k = sts001_pet.physical_to_index(point)
        assert gtv[k, j, i], point
    assert top.suv_max == pytest.approx(7.91, abs=0.05)      # the GTV's SUVmax
    organs = {e.organ for e in search.excluded}
    assert {"bladder", "heart", "kidney"} <= organs
    bladder = next(e for e in search.excluded if e.organ == "bladder")
    assert bladder.suv_max == pytest.approx(66.5, abs=0.1)   # the whole-volume SUVmax


def test_ras_lps_conversions():
    assert ras_to_lps((10.0, -20.0, 30.0)) == (-10.0, 20.0, 30.0)
    assert lps_to_ras((-10.0, 20.0, 30.0)) == (10.0, -20.0, 30.0)
    point = (12.5, -3.25, -800.0)
    assert lps_to_ras(ras_to_lps(point)) == point
    with pytest.raises(ValueError):
        ras_to_lps((1.0, 2.0))


def test_box_center_and_size():
    centre, size = box_center_and_size((10.0, 20.0, -30.0), (-10.0, 60.0, -10.0))
    assert centre == (0.0, 40.0, -20.0)
    assert size == (20.0, 40.0, 20.0)


def test_point_in_volume_follows_the_direction_matrix():
    suv = np.zeros((10, 20, 30), np.float32)
    pet = PetVolume(suv=suv, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert point_in_volume(pet, (0.0, 0.0, 0.0))
    assert point_in_volume(pet, (58.9, 38.9, 27.9))
    assert not point_in_volume(pet, (-1.5, 10.0, 10.0))
    assert not point_in_volume(pet, (10.0, 10.0, 29.0))
    flipped = PetVolume(suv=suv, spacing=(2.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0),
                        direction=(-1, 0, 0, 0, -1, 0, 0, 0, 1))
    assert point_in_volume(flipped, (-50.0, -30.0, 10.0))
    assert not point_in_volume(flipped, (50.0, 30.0, 10.0))


@pytest.mark.parametrize("case_id", ["STS_006", "STS_014", "STS_016", "STS_034", "STS_038"])
def test_a_limb_crop_has_no_brain_and_its_sarcoma_is_found(sts_crops_dir, case_id):
    """Crops of a limb or of the pelvis and thighs have a narrow body part at their top too; a hot
    tumour there was left out as "brain" (or "heart"). Without a trunk below it, it is no organ."""
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask

    pet = load_pet(sts_crops_dir / case_id / "PET_image.nii.gz")
    gtv = load_mask(sts_crops_dir / case_id / "PET_mask.nii.gz", pet) > 0
    search = find_candidates(pet)
    assert not [e.organ for e in search.excluded if e.organ in ("brain", "heart", "kidney")]
    from MTLRadiomicsLib.mtv.plausibility import distance_to_mask_mm

    index = pet.physical_to_index(tuple(search.candidates[0].peak_lps))
    k, j, i = (int(np.clip(round(v), 0, n - 1)) for v, n in zip(reversed(index), gtv.shape))
    distance = distance_to_mask_mm(gtv, (k, j, i), np.asarray(pet.spacing)[::-1])
    assert distance <= 5.0, f"{case_id}: the top candidate's peak lies {distance:.0f} mm from the GTV"

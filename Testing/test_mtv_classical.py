"""Classical MTV methods (fractions of SUVmax, SUV 2.5, PERCIST) and the liver reference, against
regions computed independently in the tests, synthetic organ labels and real PET."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MTLRadiomicsLib.mtv.classical import CLASSICAL_METHODS, segment_all, segment_classical
from MTLRadiomicsLib.mtv.liver import LiverReference, find_liver_reference
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS
from MTLRadiomicsLib.synth.cases import organ_labels, wholebody_case

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FRACTIONS = {"suvmax40": 0.40, "suvmax41": 0.41, "suvmax50": 0.50}
ISO = (1.0, 1.0, 1.0)                     # spacing (x, y, z) mm of the lesion phantom
CENTRE_A, CENTRE_B = (32, 32, 22), (32, 32, 56)
CORE_MM, PLATEAU_MM, EDGE_MM = 6.0, 8.0, 16.0


def radius_mm(shape: tuple[int, int, int], centre: tuple[int, int, int],
              spacing_zyx: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    return np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_zyx)))


def necrotic_phantom() -> np.ndarray:
    """Background SUV 1; lesion A: necrotic core (SUV 1, r < 6 mm), plateau SUV 10 to 8 mm, edge
    falling linearly to SUV 1 at 16 mm; lesion B: a separate, hotter sphere (SUV 15, r 6 mm)."""
    shape = (64, 64, 80)
    r = radius_mm(shape, CENTRE_A)
    suv = np.ones(shape, np.float32)
    edge = (r > PLATEAU_MM) & (r < EDGE_MM)
    suv[edge] = (10.0 - 9.0 * (r[edge] - PLATEAU_MM) / (EDGE_MM - PLATEAU_MM)).astype(np.float32)
    suv[(r >= CORE_MM) & (r <= PLATEAU_MM)] = 10.0
    suv[radius_mm(shape, CENTRE_B) <= 6.0] = 15.0
    return suv


def component(above: np.ndarray, index: tuple[int, int, int]) -> np.ndarray:
    labels, _ = ndimage.label(above, structure=np.ones((3, 3, 3)))
    assert labels[index] > 0
    return labels == labels[index]


RIM = (32, 32, 22 + 7)                    # on lesion A's plateau (7 mm from its centre)


@pytest.mark.parametrize("method", list(FRACTIONS))
def test_fraction_is_the_connected_region_of_f_times_suvmax(method):
    suv = necrotic_phantom()
    result = segment_classical(suv, ISO, RIM, method)
    expected = component(suv >= FRACTIONS[method] * 10.0, RIM)
    assert result.available and result.reason == ""
    assert result.reference_suvmax == pytest.approx(10.0)
    assert result.threshold_suv == pytest.approx(FRACTIONS[method] * 10.0)
    assert result.mask.dtype == np.uint8 and result.mask.shape == suv.shape
    assert np.array_equal(result.mask > 0, expected)
    assert not result.mask[radius_mm(suv.shape, CENTRE_B) <= 6.0].any()     # hotter B left out
    assert not result.mask[radius_mm(suv.shape, CENTRE_A) < CORE_MM].any()  # core not filled
    assert result.filled_voxels == 0


def test_fractions_differ_as_the_threshold_does():
    suv = necrotic_phantom()
    sizes = [int(segment_classical(suv, ISO, RIM, m).mask.sum()) for m in FRACTIONS]
    assert sizes[0] > sizes[1] > sizes[2]


@pytest.mark.parametrize("method", ["suvmax40", "suvmax50", "suv2.5"])
def test_fill_holes_adds_exactly_the_necrotic_core(method):
    suv = necrotic_phantom()
    plain = segment_classical(suv, ISO, RIM, method)
    filled = segment_classical(suv, ISO, RIM, method, fill_holes=True)
    core = radius_mm(suv.shape, CENTRE_A) < CORE_MM
    assert filled.filled_voxels == int(core.sum()) > 100
    assert np.array_equal(filled.mask > 0, (plain.mask > 0) | core)


def test_suv25_is_the_connected_region_above_2p5():
    suv = necrotic_phantom()
    result = segment_classical(suv, ISO, RIM, "suv2.5")
    assert result.threshold_suv == 2.5 and result.reference_suvmax is None
    assert np.array_equal(result.mask > 0, component(suv >= 2.5, RIM))
    assert result.seed_zyx == RIM


def test_open_core_is_filled_in_the_axial_slices():
    """A channel from the core out through the top of the lesion: nothing to fill in 3-D, but
    every axial slice whose ring is closed has its hole filled."""
    suv = necrotic_phantom()
    z, y, x = CENTRE_A
    suv[z:, y - 2:y + 3, x - 2:x + 3] = np.minimum(suv[z:, y - 2:y + 3, x - 2:x + 3], 1.0)
    plain = segment_classical(suv, ISO, RIM, "suvmax40")
    region = plain.mask > 0
    holes = np.zeros_like(region)
    for k in range(suv.shape[0]):
        labels, _ = ndimage.label(~region[k])
        border = np.unique(np.r_[labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        holes[k] = ~region[k] & ~np.isin(labels, border)
    assert not ndimage.binary_fill_holes(region)[~region].any()   # open in 3-D
    filled = segment_classical(suv, ISO, RIM, "suvmax40", fill_holes=True)
    assert filled.filled_voxels == int(holes.sum()) > 0
    assert np.array_equal(filled.mask > 0, region | holes)


def test_seed_in_the_necrotic_core_moves_to_the_rim():
    suv = necrotic_phantom()
    for method in ("suvmax40", "suv2.5"):
        result = segment_classical(suv, ISO, CENTRE_A, method)
        moved = np.asarray(result.seed_zyx)
        assert suv[tuple(moved)] == pytest.approx(10.0)
        assert np.linalg.norm(moved - np.asarray(CENTRE_A)) == pytest.approx(CORE_MM)  # nearest
        assert np.array_equal(result.mask, segment_classical(suv, ISO, RIM, method).mask)


def test_seed_in_empty_background_gives_an_empty_mask_with_a_reason():
    suv = necrotic_phantom()
    liver = LiverReference(2.0, 0.25, (0.0, 0.0, 0.0), 15.0, 100, "given")
    for method, result in segment_all(suv, ISO, (10, 10, 40), liver=liver).items():
        assert result.available, method
        assert not result.mask.any(), method
        assert "within 10 mm" in result.reason, method
    assert "2.50 SUV" in segment_classical(suv, ISO, (10, 10, 40), "suv2.5").reason


def test_suvmax_is_a_fixed_point_beyond_the_search_sphere():
    """Seed on a lower lobe (SUV 6); the real maximum (SUV 10) lies 30 mm further, joined by a
    bridge of SUV 4.5: 40 % of the lobe takes in the hot lobe, whose SUVmax then rules."""
    shape = (40, 40, 80)
    suv = np.ones(shape, np.float32)
    low, hot = (20, 20, 25), (20, 20, 55)
    suv[20, 19:22, 25:56] = 4.5
    suv[radius_mm(shape, low) <= 6.0] = 6.0
    suv[radius_mm(shape, hot) <= 6.0] = 10.0
    for method, fraction in FRACTIONS.items():
        result = segment_classical(suv, ISO, low, method)
        assert result.reference_suvmax == pytest.approx(10.0), method
        assert suv[result.seed_zyx] == pytest.approx(10.0)
        assert np.array_equal(result.mask > 0, component(suv >= fraction * 10.0, hot)), method
    assert segment_classical(suv, ISO, low, "suvmax40").mask[low]        # bridge 4.5 >= 4
    assert not segment_classical(suv, ISO, low, "suvmax50").mask[low]    # bridge 4.5 < 5


def test_search_sphere_is_in_mm_with_anisotropic_spacing():
    """Spacing 4 x 4 x 2 mm (x, y, z): 4 slices away is 8 mm (inside 10 mm), 3 columns away is
    12 mm (outside) although fewer voxels; swapped axes would pick the hotter column voxel."""
    suv = np.ones((30, 20, 20), np.float32)
    seed = (15, 10, 10)
    suv[19, 10, 10] = 5.0        # 4 slices x 2 mm = 8 mm
    suv[15, 10, 13] = 9.0        # 3 columns x 4 mm = 12 mm
    suv[19, 12, 10] = 8.0        # 8 mm down, 8 mm across: 11.3 mm, in the box, not the sphere
    result = segment_classical(suv, (4.0, 4.0, 2.0), seed, "suv2.5")
    assert result.seed_zyx == (19, 10, 10) and int(result.mask.sum()) == 1
    suv[19, 10, 10] = suv[19, 12, 10] = 1.0
    suv[15, 13, 10] = 5.0        # 3 rows x 4 mm = 12 mm: out of reach too
    assert not segment_classical(suv, (4.0, 4.0, 2.0), seed, "suv2.5").mask.any()
    suv[21, 10, 10] = 5.0        # 6 slices x 2 mm = 12 mm
    assert not segment_classical(suv, (4.0, 4.0, 2.0), seed, "suv2.5").mask.any()
    suv[20, 10, 10] = 5.0        # 5 slices x 2 mm = 10 mm: on the sphere, inside
    assert segment_classical(suv, (4.0, 4.0, 2.0), seed, "suv2.5").seed_zyx == (20, 10, 10)


def test_regions_are_26_connected():
    suv = np.ones((10, 10, 10), np.float32)
    for k in range(2, 7):
        suv[k, k, k] = 3.0       # a diagonal chain: voxels touch at their corners only
    result = segment_classical(suv, ISO, (2, 2, 2), "suv2.5")
    assert int(result.mask.sum()) == 5


def test_nan_voxels_never_join_a_region():
    suv = np.full((12, 12, 12), np.nan, np.float32)
    suv[5, 5, 5] = 3.0
    for result in segment_all(suv, ISO, (6, 6, 6)).values():
        assert int(result.mask.sum()) in (0, 1)
    assert segment_classical(suv, ISO, (6, 6, 6), "suv2.5").seed_zyx == (5, 5, 5)


def test_percist_uses_the_liver_reference_and_is_unavailable_without_one():
    suv = necrotic_phantom()
    liver = LiverReference(mean=2.2, sd=0.3, center_lps=(0.0, 0.0, 0.0), radius_mm=15.0,
                           voxels=200, note="given")
    assert liver.percist_threshold == pytest.approx(1.5 * 2.2 + 2 * 0.3)
    result = segment_classical(suv, ISO, RIM, "percist", liver=liver)
    assert result.available and result.threshold_suv == pytest.approx(3.9)
    assert np.array_equal(result.mask > 0, component(suv >= 1.5 * 2.2 + 2 * 0.3, RIM))
    missing = segment_classical(suv, ISO, RIM, "percist")
    assert not missing.available and not missing.mask.any() and "liver" in missing.reason
    assert missing.to_dict()["available"] is False and "mask" not in missing.to_dict()


def test_within_restricts_the_region():
    suv = necrotic_phantom()
    within = np.zeros(suv.shape, bool)
    within[:, :, 24:] = True
    result = segment_classical(suv, ISO, RIM, "suvmax40", within=within)
    assert np.array_equal(result.mask > 0, component((suv >= 4.0) & within, RIM))


def test_unknown_method_and_bad_seed_are_refused():
    suv = necrotic_phantom()
    with pytest.raises(ValueError, match="suvmax41.*percist"):
        segment_classical(suv, ISO, RIM, "suvmax42")
    with pytest.raises(ValueError, match="outside"):
        segment_classical(suv, ISO, (64, 0, 0), "suv2.5")
    assert list(segment_all(suv, ISO, RIM)) == list(CLASSICAL_METHODS)


# --- the liver reference ---------------------------------------------------------------------

def _sphere_labels(pet: PetVolume, labels: np.ndarray, reference: LiverReference) -> np.ndarray:
    """Organ labels of the voxels (identity-direction grid) whose centres lie in the sphere."""
    index = np.asarray(pet.physical_to_index(reference.center_lps))[::-1]
    spacing_zyx = tuple(pet.spacing[::-1])
    inside = radius_mm(labels.shape, tuple(index), spacing_zyx) <= reference.radius_mm
    assert int(inside.sum()) == reference.voxels
    return labels[inside]


@pytest.mark.parametrize("seed", [3, 8])
def test_liver_sphere_lies_inside_the_synthetic_liver(seed):
    case = wholebody_case(seed)
    labels = organ_labels(seed, case.pet)
    reference, reason = find_liver_reference(case.pet)
    assert reference is not None, reason
    assert reference.radius_mm == 15.0
    assert np.all(_sphere_labels(case.pet, labels, reference) == ORGAN_LABELS["liver"])
    liver_suv = case.pet.suv[labels == ORGAN_LABELS["liver"]]
    assert reference.mean == pytest.approx(float(liver_suv.mean()), rel=0.1)
    assert reference.percist_threshold == pytest.approx(1.5 * reference.mean + 2 * reference.sd)
    assert reference.to_dict()["center_lps"] == list(reference.center_lps)


def test_liver_reference_follows_the_direction_matrix():
    pet = wholebody_case(3).pet
    far_corner = pet.index_to_physical((pet.size[0] - 1, 0, pet.size[2] - 1))
    flipped = PetVolume(suv=pet.suv[::-1, :, ::-1], spacing=pet.spacing, origin=far_corner,
                        direction=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    a, _ = find_liver_reference(pet)
    b, reason = find_liver_reference(flipped)
    assert a is not None and b is not None, reason
    np.testing.assert_allclose(a.center_lps, b.center_lps, atol=1e-3)
    assert a.mean == pytest.approx(b.mean) and a.sd == pytest.approx(b.sd)


def _real(path: str) -> Path:
    full = REAL / path
    if not full.exists():
        pytest.skip(f"real PET data not found at {full} "
                    "(the shared data folder sits beside the project)")
    return full


def test_no_liver_in_a_real_thigh_crop():
    image = sitk.ReadImage(str(_real("sts_crops/STS_001/PET_image.nii.gz")))
    reference, reason = find_liver_reference(PetVolume.from_sitk(image))
    assert reference is None
    assert reason.startswith("no liver in the field of view")


def test_real_whole_body_liver_and_classical_speed(sts001_pet):
    reference, reason = find_liver_reference(sts001_pet)
    assert reference is not None, reason
    assert 1.2 <= reference.mean <= 3.5 and 0.0 < reference.sd < 0.5 * reference.mean
    assert reference.center_lps[0] < 0.0                 # patient's right (LPS -x)
    gtv_path = _real("STS_001_wholebody/GTV_Mass_mask.nii.gz")
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(gtv_path)))
    seed = np.unravel_index(int(np.argmax(np.where(gtv > 0, sts001_pet.suv, -1.0))), gtv.shape)
    start = time.perf_counter()
    results = segment_all(sts001_pet.suv, sts001_pet.spacing, seed, fill_holes=True,
                          liver=reference)
    assert time.perf_counter() - start < 1.0
    for method in FRACTIONS:
        result = results[method]
        hottest = float(sts001_pet.suv[result.mask > 0].max())
        assert result.reference_suvmax == pytest.approx(hottest)
    assert results["percist"].threshold_suv == pytest.approx(reference.percist_threshold)
    assert all(r.mask[seed] for r in results.values())

"""PET metrics: SUVmax, SUVpeak (1 cm^3 sphere), SUVmean, MTV and TLG on known volumes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics, sphere_kernel


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (4.0, 4.0, 3.0), (4.6875, 4.6875, 3.27)])
def test_sphere_kernel_holds_one_millilitre(spacing):
    raw = sphere_kernel(spacing, normalise=False)
    volume_ml = raw.sum() * np.prod(spacing) / 1000.0
    assert volume_ml == pytest.approx(1.0, rel=0.02)
    assert sphere_kernel(spacing).sum() == pytest.approx(1.0)


def test_uniform_lesion_metrics():
    suv = np.full((30, 30, 30), 1.0, np.float32)
    mask = np.zeros_like(suv, dtype=np.uint8)
    suv[10:20, 10:20, 10:20] = 4.0
    mask[10:20, 10:20, 10:20] = 1
    m = compute_metrics(suv, mask, (2.0, 2.0, 2.0))
    assert m.suv_max == 4.0 and m.suv_mean == 4.0
    assert m.suv_peak == pytest.approx(4.0)                   # a 1 ml sphere fits inside the 8 ml cube
    assert m.mtv_ml == pytest.approx(8.0) and m.tlg == pytest.approx(32.0) and m.voxels == 1000


def test_peak_of_a_single_hot_voxel_is_diluted_by_the_sphere():
    spacing = (2.0, 2.0, 2.0)
    suv = np.ones((21, 21, 21), np.float32)
    suv[10, 10, 10] = 101.0
    mask = (suv > 50).astype(np.uint8)
    kernel = sphere_kernel(spacing)
    centre = tuple(s // 2 for s in kernel.shape)
    m = compute_metrics(suv, mask, spacing)
    assert m.suv_max == 101.0
    assert m.suv_peak == pytest.approx(1.0 + 100.0 * kernel[centre], rel=1e-6)
    assert m.suv_peak < 20.0


def test_empty_mask_gives_zeros():
    m = compute_metrics(np.ones((5, 5, 5), np.float32), np.zeros((5, 5, 5), np.uint8), (2.0, 2.0, 2.0))
    assert m.voxels == 0 and m.mtv_ml == 0.0 and m.suv_peak == 0.0


def test_lesion_hottest_voxel_counts_the_voxels_touching_the_mtv():
    """A hot voxel just outside the contour (partial volume, a contour a voxel off) is the lesion's
    SUVmax; a hotter one two voxels away is not the lesion's."""
    from MTLRadiomicsLib.mtv.pet_metrics import lesion_hottest_voxel

    suv = np.ones((20, 20, 20), np.float32)
    mask = np.zeros(suv.shape, np.uint8)
    mask[8:12, 8:12, 8:12] = 1
    suv[10, 10, 10] = 5.0                      # the MTV's SUVmax
    suv[11, 12, 12] = 9.0                      # diagonal neighbour of the MTV's corner region
    suv[10, 10, 14] = 20.0                     # three voxels beyond the MTV
    assert compute_metrics(suv, mask, (2.0, 2.0, 2.0)).suv_max == 5.0
    assert lesion_hottest_voxel(suv, mask) == ((11, 12, 12), 9.0)
    assert lesion_hottest_voxel(suv, np.zeros_like(mask)) is None


def test_lesion_hottest_voxel_against_a_whole_volume_dilation_at_the_edges():
    """The box the search is cut to must not change the answer: random masks touching the volume's
    faces, compared with a dilation of the whole volume (26-neighbours) and a plain argmax."""
    from MTLRadiomicsLib.mtv.pet_metrics import lesion_hottest_voxel

    rng = np.random.default_rng(7)
    shape = (9, 11, 13)
    for trial in range(40):
        suv = rng.random(shape).astype(np.float32) * 10
        mask = np.zeros(shape, np.uint8)
        lo = [int(rng.integers(0, n - 2)) for n in shape]
        if trial % 2:                                    # against the low faces
            lo = [0, 0, 0]
        elif trial % 3 == 0:                             # against the high faces
            lo = [n - 3 for n in shape]
        mask[lo[0]:lo[0] + 3, lo[1]:lo[1] + 3, lo[2]:lo[2] + 3] = rng.random((3, 3, 3)) > 0.4
        if not mask.any():
            mask[lo[0], lo[1], lo[2]] = 1
        grown = ndimage.binary_dilation(mask > 0, structure=np.ones((3, 3, 3), bool))
        expected = np.unravel_index(int(np.argmax(np.where(grown, suv, -np.inf))), shape)
        zyx, value = lesion_hottest_voxel(suv, mask)
        assert zyx == tuple(int(v) for v in expected), trial
        assert value == float(suv[expected]) and isinstance(value, float)


def test_metrics_as_a_dict_for_result_json():
    suv = np.full((4, 4, 4), 2.0, np.float32)
    mask = np.zeros(suv.shape, np.uint8)
    mask[1:3, 1:3, 1:3] = 1
    d = compute_metrics(suv, mask, (2.0, 2.0, 2.0)).to_dict()
    assert set(d) == {"suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "voxels"}
    assert d["voxels"] == 8 and d["mtv_ml"] == pytest.approx(0.064) and d["tlg"] == pytest.approx(0.128)


@pytest.mark.parametrize("spacing", [(2.0, 2.0, 2.0), (4.0, 3.0, 2.5), (1.5, 5.0, 3.0)])
def test_sphere_kernel_holds_one_ml_symmetric_and_whole(spacing):
    sx, sy, sz = spacing
    raw = sphere_kernel(spacing, normalise=False)
    radius = (3.0 * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)                  # 6.20 mm
    assert raw.shape == tuple(2 * int(np.ceil(radius / s + 0.5)) + 1 for s in (sz, sy, sx))
    assert raw.sum() * sx * sy * sz / 1000.0 == pytest.approx(1.0, rel=0.02)   # 1 ml of voxel fractions
    for axis in range(3):
        np.testing.assert_allclose(raw, np.flip(raw, axis=axis), atol=1e-12)   # centred on its voxel
    for face in (raw[0], raw[-1], raw[:, 0], raw[:, -1], raw[:, :, 0], raw[:, :, -1]):
        assert not face.any()                                                  # nothing of the sphere is cut
    centre = tuple(n // 2 for n in raw.shape)
    assert raw[centre] == 1.0
    assert sphere_kernel(spacing).sum() == pytest.approx(1.0)


def test_suv_peak_equals_a_whole_volume_correlation_at_the_edges():
    """SUVpeak is cut to a box around the mask for speed; the box must not change it: masks at the
    volume's faces and hot spots just outside them, against a correlation of the whole volume."""
    from MTLRadiomicsLib.mtv.pet_metrics import suv_peak

    rng = np.random.default_rng(12)
    spacing = (4.0, 4.0, 3.0)
    kernel = sphere_kernel(spacing)
    for trial in range(12):
        suv = rng.gamma(2.0, 1.0, (14, 15, 16))
        mask = np.zeros(suv.shape, bool)
        z, y, x = (0, 0, 0) if trial % 3 == 0 else ((11, 12, 13) if trial % 3 == 1 else (5, 6, 7))
        mask[z:z + 3, y:y + 3, x:x + 3] = True
        hot = (z + 3, y + 1, x + 1) if z + 3 < suv.shape[0] else (z - 1, y + 1, x + 1)
        suv[hot] = 40.0                                   # one voxel (3 mm) beyond the mask: inside the sphere's reach
        whole = ndimage.correlate(suv, kernel, mode="nearest")
        assert suv_peak(suv, mask, spacing) == pytest.approx(float(whole[mask].max()), rel=1e-12), trial


def test_an_empty_mask_gives_exact_zeros():
    m = compute_metrics(np.full((4, 4, 4), 3.0, np.float32), np.zeros((4, 4, 4), np.uint8), (2.0, 2.0, 2.0))
    assert m.to_dict() == {"suv_max": 0.0, "suv_peak": 0.0, "suv_mean": 0.0, "mtv_ml": 0.0, "tlg": 0.0, "voxels": 0}

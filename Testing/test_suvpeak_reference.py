"""SUVpeak against a brute-force reference: the highest mean SUV of a 1 cm^3 sphere centred on a
voxel of the mask (the sphere may reach outside it), on a shape whose hottest 1 ml sphere anywhere
lies outside the mask. The reference builds its own sphere from a fine uniform grid of points in
millimetres (not the engine's per-voxel sub-sampling), on anisotropic voxels."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics, suv_peak

SPACING = (2.0, 2.5, 3.0)             # x, y, z mm
RADIUS_MM = (3.0 * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)      # 1 ml sphere: 6.20 mm
# The engine weighs each voxel by 5 x 5 x 5 sub-samples: on this shape's sharp SUV 5 -> 25 edge that
# is about 1 % from the fine reference; a sphere centred outside the mask is off by a factor of 3.
TOLERANCE = 0.02


@lru_cache(maxsize=None)
def reference_weights(spacing_xyz, step_mm: float = 0.1) -> dict[tuple[int, int, int], float]:
    """Voxel offset (dz, dy, dx) -> the share of the sphere's volume in that voxel, from points on a
    uniform grid of ``step_mm`` inside the sphere, each assigned to the voxel whose centre is nearest."""
    axis = np.arange(-RADIUS_MM, RADIUS_MM + step_mm, step_mm)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    inside = x ** 2 + y ** 2 + z ** 2 <= RADIUS_MM ** 2
    sx, sy, sz = spacing_xyz
    offsets = np.column_stack([np.rint(z[inside] / sz), np.rint(y[inside] / sy), np.rint(x[inside] / sx)]).astype(int)
    keys, counts = np.unique(offsets, axis=0, return_counts=True)
    return {tuple(int(v) for v in key): count / counts.sum() for key, count in zip(keys, counts)}


def sphere_mean(suv: np.ndarray, centre, weights) -> float:
    return float(sum(w * suv[centre[0] + dz, centre[1] + dy, centre[2] + dx] for (dz, dy, dx), w in weights.items()))


def reference_peak(suv: np.ndarray, centres, weights) -> float:
    return max(sphere_mean(suv, tuple(c), weights) for c in centres)


@pytest.fixture(scope="module")
def hot_beside_the_mask():
    """A lesion mask of SUV about 5 with a hotter block (SUV about 25) one voxel beside it, outside
    the mask; textured so that the best centre is unique. Everything at least 5 voxels from the edges."""
    rng = np.random.default_rng(11)
    suv = (1.0 + 0.3 * rng.random((20, 24, 30))).astype(np.float32)
    mask = np.zeros(suv.shape, np.uint8)
    mask[6:13, 6:15, 6:14] = 1
    suv[6:13, 6:15, 6:14] = 5.0 + rng.random((7, 9, 8))
    suv[7:12, 7:13, 15:21] = 25.0 + rng.random((5, 6, 6))             # outside the mask, x 15..20
    return suv, mask


def test_reference_sphere_holds_one_millilitre_and_is_anisotropic():
    weights = reference_weights(SPACING)
    assert sum(weights.values()) == pytest.approx(1.0)
    reach = {axis: max(abs(k[axis]) for k in weights) for axis in range(3)}
    assert reach == {0: 2, 1: 2, 2: 3}                   # 6.2 mm: 2 slices of 3 mm, 3 columns of 2 mm


def test_suv_peak_is_centred_in_the_mask_not_anywhere_near_it(hot_beside_the_mask):
    suv, mask = hot_beside_the_mask
    weights = reference_weights(SPACING)
    in_mask = reference_peak(suv, np.argwhere(mask > 0), weights)
    # Anywhere in the mask's box grown by the sphere's reach: the hot block's own centres win.
    anywhere = reference_peak(suv, np.argwhere(np.ones((7, 13, 22), bool)) + (6, 4, 2), weights)
    assert anywhere > 20.0 and in_mask < 12.0                 # the shape is as designed
    assert suv_peak(suv, mask, SPACING) == pytest.approx(in_mask, rel=TOLERANCE)
    metrics = compute_metrics(suv, mask, SPACING)
    assert metrics.suv_peak == pytest.approx(in_mask, rel=TOLERANCE)
    # The best sphere of the mask reaches into the hot block: above the mask's own mean, below its max.
    assert metrics.suv_mean < metrics.suv_peak < metrics.suv_max + 20.0
    assert metrics.suv_peak > float(suv[mask > 0].max())


def test_suv_peak_follows_the_spacing_axes(hot_beside_the_mask):
    """The same arrays with the x and z spacings exchanged give another peak, each matching its own
    reference: the sphere is built on the right axes."""
    suv, mask = hot_beside_the_mask
    swapped = (SPACING[2], SPACING[1], SPACING[0])
    centres = np.argwhere(mask > 0)
    a = reference_peak(suv, centres, reference_weights(SPACING))
    b = reference_peak(suv, centres, reference_weights(swapped))
    assert abs(a - b) > 0.05 * a
    assert suv_peak(suv, mask, SPACING) == pytest.approx(a, rel=TOLERANCE)
    assert suv_peak(suv, mask, swapped) == pytest.approx(b, rel=TOLERANCE)

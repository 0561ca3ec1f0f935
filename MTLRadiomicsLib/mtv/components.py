"""Connected components of a mask around a seed: one lesion per MTV."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)      # 26-connected, as the synthetic ground truth


def voxels_within(shape: tuple[int, ...], seed_zyx: tuple[int, int, int], spacing_zyx: np.ndarray,
                  radius_mm: float) -> tuple[tuple[slice, ...], np.ndarray]:
    """The box around the seed holding a sphere of ``radius_mm`` and the sphere inside it (bool)."""
    spacing_zyx = np.asarray(spacing_zyx, dtype=float)
    half = np.ceil(radius_mm / spacing_zyx).astype(int)
    lo = np.maximum(np.asarray(seed_zyx) - half, 0)
    hi = np.minimum(np.asarray(seed_zyx) + half + 1, shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grids = np.meshgrid(*[(np.arange(a, b) - s) * d for a, b, s, d in zip(lo, hi, seed_zyx, spacing_zyx)],
                        indexing="ij")
    sphere = sum(g ** 2 for g in grids) <= radius_mm ** 2
    return box, sphere


def component_at(mask: np.ndarray, seed_zyx: tuple[int, int, int], spacing_zyx: np.ndarray,
                 radius_mm: float) -> np.ndarray:
    """The 26-connected component of ``mask`` holding the seed voxel; when the seed lies outside the
    mask, the component with the voxel nearest to the seed within ``radius_mm``. Empty (all False)
    when no component comes that close. Returns bool (z, y, x)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    labels, _ = ndimage.label(mask, structure=CONNECTIVITY)
    keep = int(labels[tuple(seed_zyx)])
    if keep == 0:
        box, sphere = voxels_within(mask.shape, seed_zyx, spacing_zyx, radius_mm)
        near = labels[box] * sphere
        if not near.any():
            return np.zeros(mask.shape, dtype=bool)
        where = np.argwhere(near > 0)
        offsets = (where + np.array([b.start for b in box]) - np.asarray(seed_zyx)) * np.asarray(spacing_zyx)
        nearest = where[int(np.argmin(np.linalg.norm(offsets, axis=1)))]
        keep = int(near[tuple(nearest)])
    return labels == keep

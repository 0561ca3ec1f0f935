"""PET metrics of a tumour mask: SUVmax, SUVpeak, SUVmean, MTV (ml) and TLG, and the lesion's
hottest voxel (the MTV and the voxels touching it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

PEAK_VOLUME_ML = 1.0          # SUVpeak: highest mean SUV in a 1 cm^3 sphere
SUPERSAMPLING = 5             # sub-voxel samples per axis for the sphere's partial-volume weights
LESION_RIM_VOXELS = 1         # the lesion's SUVmax also counts the voxels this close to the MTV (26-neighbours)
LESION_SUV_MAX_DEFINITION = "hottest voxel of the MTV and the voxels touching it"


@dataclass
class PetMetrics:
    """Metrics of one mask. SUVs in g/ml, MTV in ml, TLG in g (SUVmean x MTV)."""

    suv_max: float
    suv_peak: float
    suv_mean: float
    mtv_ml: float
    tlg: float
    voxels: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def sphere_kernel(spacing_xyz: tuple[float, float, float], volume_ml: float = PEAK_VOLUME_ML,
                  normalise: bool = True) -> np.ndarray:
    """Weights (z, y, x) of a sphere of ``volume_ml`` on a grid with this spacing.

    Each voxel's weight is the fraction of its volume inside the sphere (sub-voxel sampling);
    normalised to sum to 1 unless ``normalise`` is False."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)   # mm
    sx, sy, sz = spacing_xyz
    half = [int(np.ceil(radius / s + 0.5)) for s in (sz, sy, sx)]
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING - 0.5
    weights = np.zeros([2 * h + 1 for h in half])
    for k in range(-half[0], half[0] + 1):
        for j in range(-half[1], half[1] + 1):
            for i in range(-half[2], half[2] + 1):
                zz, yy, xx = np.meshgrid((k + offsets) * sz, (j + offsets) * sy, (i + offsets) * sx,
                                         indexing="ij")
                inside = (zz ** 2 + yy ** 2 + xx ** 2) <= radius ** 2
                weights[k + half[0], j + half[1], i + half[2]] = inside.mean()
    return weights / weights.sum() if normalise else weights


def suv_peak(suv: np.ndarray, mask: np.ndarray, spacing_xyz: tuple[float, float, float]) -> float:
    """Highest mean SUV in a 1 cm^3 sphere centred on a voxel of the mask (sphere may leave it)."""
    kernel = sphere_kernel(spacing_xyz)
    pad = [s // 2 for s in kernel.shape]
    where = np.argwhere(mask)
    lo = np.maximum(where.min(axis=0) - pad, 0)
    hi = np.minimum(where.max(axis=0) + np.asarray(pad) + 1, suv.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    means = ndimage.correlate(suv[box].astype(np.float64), kernel, mode="nearest")
    return float(means[mask[box] > 0].max())


def compute_metrics(suv: np.ndarray, mask: np.ndarray, spacing_xyz: tuple[float, float, float]) -> PetMetrics:
    """Metrics of ``mask`` (same shape as ``suv``, (z, y, x)); an empty mask gives zeros."""
    inside = np.asarray(mask) > 0
    voxels = int(inside.sum())
    if voxels == 0:
        return PetMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    values = suv[inside]
    mtv = voxels * float(np.prod(spacing_xyz)) / 1000.0
    mean = float(values.mean())
    return PetMetrics(suv_max=float(values.max()), suv_peak=suv_peak(suv, inside, spacing_xyz),
                      suv_mean=mean, mtv_ml=mtv, tlg=mean * mtv, voxels=voxels)


def lesion_hottest_voxel(suv: np.ndarray, mask: np.ndarray) -> Optional[tuple[tuple[int, int, int], float]]:
    """The lesion's hottest voxel (z, y, x) and its SUV: the hottest voxel of the MTV grown by
    ``LESION_RIM_VOXELS`` voxel in every direction (its 26 neighbours), so that a hot voxel just
    outside the contour (partial volume, a contour drawn a voxel off) still counts as the lesion's
    SUVmax. None for an empty mask."""
    inside = np.asarray(mask) > 0
    if not inside.any():
        return None
    where = np.argwhere(inside)
    lo = np.maximum(where.min(axis=0) - LESION_RIM_VOXELS, 0)
    hi = np.minimum(where.max(axis=0) + LESION_RIM_VOXELS + 1, inside.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grown = ndimage.binary_dilation(inside[box], structure=np.ones((3, 3, 3), bool), iterations=LESION_RIM_VOXELS)
    local = np.unravel_index(int(np.argmax(np.where(grown, suv[box], -np.inf))), grown.shape)
    zyx = tuple(int(v + a) for v, a in zip(local, lo))
    return zyx, float(suv[zyx])  # type: ignore[return-value]

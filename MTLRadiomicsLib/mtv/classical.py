"""Classical metabolic tumour volumes: the connected threshold region of a seed voxel.

Fraction methods (40, 41 and 50 % of SUVmax) refer to the lesion's SUVmax as a fixed point: start
at the hottest voxel within 10 mm of the seed, take the 26-connected region of SUV >= f x peak
containing the peak, and while that region holds a hotter voxel, move the peak there and repeat.
Absolute methods (SUV >= 2.5, PERCIST 1.5 x liver mean + 2 x liver SD) grow from the seed, or
from the hottest voxel within 10 mm when the seed is below the threshold. With nothing near at
or above the threshold (or, for the fractions, a peak below 2 SUV) the mask is empty with a
reason. The region is grown in a sub-box around the seed that widens only while the region
touches its faces, so a whole-body scan costs no more than a crop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.localisation.body import fill_holes_per_slice
from MTLRadiomicsLib.mtv.liver import LiverReference
from MTLRadiomicsLib.mtv.components import CONNECTIVITY
from MTLRadiomicsLib.mtv.methods import CLASSICAL_METHODS

FRACTIONS = {"suvmax40": 0.40, "suvmax41": 0.41, "suvmax50": 0.50}
ABSOLUTE_SUV = 2.5
SEARCH_RADIUS_MM = 10.0        # the peak, or a voxel above the threshold, is looked for this close
MIN_PEAK_SUV = 2.0             # a fraction of SUVmax needs a lesion at least this hot
START_HALF_BOX = 8             # the sub-box starts this many voxels either side of the seed
MAX_ROUNDS = 100               # fixed-point rounds (each moves the peak strictly higher)

Index = tuple[int, int, int]
Box = tuple[slice, slice, slice]


@dataclass
class ClassicalMtv:
    """One classical MTV of a seed.

    Attributes:
        method, label: key in ``CLASSICAL_METHODS`` and its human label.
        mask: uint8 (z, y, x), same shape as the SUV.
        available: False when the method cannot apply (no liver for PERCIST); mask all zero.
        reason: why unavailable or empty, else "".
        threshold_suv: the SUV threshold used (None when unavailable or no peak).
        reference_suvmax: fraction methods: the lesion SUVmax the fraction refers to.
        seed_zyx: the voxel the final region grew from (the peak for fraction methods).
        filled_voxels: voxels added by hole filling.
    """

    method: str
    label: str
    mask: np.ndarray
    available: bool
    reason: str
    threshold_suv: float | None
    reference_suvmax: float | None
    seed_zyx: Index
    filled_voxels: int = 0

    def to_dict(self) -> dict:
        """JSON-friendly description, without the mask (its voxel count instead)."""
        return {"method": self.method, "label": self.label, "available": self.available,
                "reason": self.reason, "threshold_suv": self.threshold_suv,
                "reference_suvmax": self.reference_suvmax,
                "seed_zyx": [int(v) for v in self.seed_zyx],
                "filled_voxels": int(self.filled_voxels),
                "voxels": int(np.count_nonzero(self.mask))}


def segment_classical(suv: np.ndarray, spacing_xyz: tuple[float, float, float], seed_zyx: Index,
                      method: str, fill_holes: bool = False,
                      liver: LiverReference | None = None,
                      within: np.ndarray | None = None) -> ClassicalMtv:
    """The ``method`` region of ``seed_zyx`` in ``suv`` (SUV, (z, y, x); spacing (x, y, z) mm).

    ``within``: optional bool mask (same shape) the region is kept inside. ``fill_holes``: fill
    3-D holes, then holes in every axial slice. ``liver``: the reference PERCIST needs.
    Raises ValueError for an unknown method, a seed outside the volume or a mismatched mask."""
    if method not in CLASSICAL_METHODS:
        known = ", ".join(CLASSICAL_METHODS)
        raise ValueError(f"unknown classical method {method!r}; known: {known}")
    suv = np.asarray(suv)
    seed = _check_seed(seed_zyx, suv.shape)
    if within is not None:
        within = np.asarray(within, bool)
        if within.shape != suv.shape:
            raise ValueError(f"within has shape {within.shape}, the SUV {suv.shape}")
    spacing_zyx = np.asarray(spacing_xyz, float)[::-1]
    empty = np.zeros(suv.shape, np.uint8)
    result = ClassicalMtv(method=method, label=CLASSICAL_METHODS[method], mask=empty,
                          available=True, reason="", threshold_suv=None, reference_suvmax=None,
                          seed_zyx=seed)
    if method in FRACTIONS:
        found = _fraction_region(suv, spacing_zyx, seed, FRACTIONS[method], within, result)
    else:
        if method == "percist":
            if liver is None:
                result.available = False
                result.reason = "PERCIST needs a liver reference; no liver was found or given"
                return result
            threshold = float(liver.percist_threshold)
        else:
            threshold = ABSOLUTE_SUV
        found = _absolute_region(suv, spacing_zyx, seed, threshold, within, result)
    if found is None:
        return result
    box, region = found
    if fill_holes:
        filled = fill_enclosed(region)
        if within is not None:
            filled &= within[box]
        result.filled_voxels = int(filled.sum() - region.sum())
        region = filled
    result.mask[box] = region
    return result


def segment_all(suv: np.ndarray, spacing_xyz: tuple[float, float, float], seed_zyx: Index,
                fill_holes: bool = False, liver: LiverReference | None = None,
                within: np.ndarray | None = None) -> dict[str, ClassicalMtv]:
    """Every classical method of one seed, in ``CLASSICAL_METHODS`` order."""
    return {m: segment_classical(suv, spacing_xyz, seed_zyx, m, fill_holes, liver, within)
            for m in CLASSICAL_METHODS}


def _check_seed(seed_zyx: Index, shape: tuple[int, ...]) -> Index:
    seed = tuple(int(v) for v in seed_zyx)
    if len(seed) != 3 or not all(0 <= v < n for v, n in zip(seed, shape)):
        raise ValueError(f"seed {tuple(seed_zyx)} lies outside the volume of shape {shape}")
    return seed  # type: ignore[return-value]


def _fraction_region(suv: np.ndarray, spacing_zyx: np.ndarray, seed: Index, fraction: float,
                     within: np.ndarray | None, result: ClassicalMtv
                     ) -> tuple[Box, np.ndarray] | None:
    """The fixed-point region of ``fraction`` x SUVmax; None (reason set) without a lesion."""
    peak = _hottest_near(suv, spacing_zyx, seed, within)
    if peak is None or float(suv[peak]) < MIN_PEAK_SUV:
        value = "no voxel" if peak is None else f"SUVmax {float(suv[peak]):.2f}"
        result.reason = (f"no lesion within {SEARCH_RADIUS_MM:g} mm of the point ({value}; a "
                         f"fraction of SUVmax needs at least {MIN_PEAK_SUV:g} SUV)")
        return None
    for _ in range(MAX_ROUNDS):
        threshold = fraction * float(suv[peak])
        box, region = _grow(suv, threshold, peak, within)
        local = np.where(region, suv[box], -np.inf)
        hottest = np.unravel_index(int(np.argmax(local)), local.shape)
        if local[hottest] <= suv[peak]:
            break
        peak = tuple(int(h + s.start) for h, s in zip(hottest, box))  # type: ignore[assignment]
    else:       # not reached in practice: the peak rises strictly every round
        threshold = fraction * float(suv[peak])
        box, region = _grow(suv, threshold, peak, within)
    result.threshold_suv, result.reference_suvmax = threshold, float(suv[peak])
    result.seed_zyx = peak
    return box, region


def _absolute_region(suv: np.ndarray, spacing_zyx: np.ndarray, seed: Index, threshold: float,
                     within: np.ndarray | None, result: ClassicalMtv
                     ) -> tuple[Box, np.ndarray] | None:
    """The region of SUV >= ``threshold``; None (reason set) when nothing near reaches it."""
    result.threshold_suv = threshold
    start: Index | None = seed
    if not suv[seed] >= threshold or (within is not None and not within[seed]):
        start = _hottest_near(suv, spacing_zyx, seed, within)
        if start is None or not suv[start] >= threshold:
            result.reason = (f"no voxel >= {threshold:.2f} SUV within {SEARCH_RADIUS_MM:g} mm "
                             "of the point")
            return None
    result.seed_zyx = start  # type: ignore[assignment]
    return _grow(suv, threshold, start, within)  # type: ignore[arg-type]


def _hottest_near(suv: np.ndarray, spacing_zyx: np.ndarray, seed: Index,
                  within: np.ndarray | None) -> Index | None:
    """The hottest voxel whose centre lies within ``SEARCH_RADIUS_MM`` of the seed (and inside
    ``within``); among equals the nearest. None when no voxel qualifies."""
    half = np.floor(SEARCH_RADIUS_MM / spacing_zyx + 1e-9).astype(int)
    lo = np.maximum(np.asarray(seed) - half, 0)
    hi = np.minimum(np.asarray(seed) + half + 1, suv.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grids = np.ogrid[box]
    distance2 = sum(((g - s) * d) ** 2 for g, s, d in zip(grids, seed, spacing_zyx))
    near = (distance2 <= SEARCH_RADIUS_MM ** 2 + 1e-6) & np.isfinite(suv[box])
    if within is not None:
        near &= within[box]
    if not near.any():
        return None
    values = np.where(near, suv[box], -np.inf)
    best = values == values.max()
    local = np.unravel_index(int(np.argmin(np.where(best, distance2, np.inf))), best.shape)
    return tuple(int(v + a) for v, a in zip(local, lo))  # type: ignore[return-value]


def _grow(suv: np.ndarray, threshold: float, start: Index, within: np.ndarray | None
          ) -> tuple[Box, np.ndarray]:
    """The 26-connected region of SUV >= ``threshold`` (inside ``within``) holding ``start``:
    its bounding sub-box and bool mask there. The sub-box doubles towards every face the region
    touches until the region touches none (or the volume's edge)."""
    shape = np.asarray(suv.shape)
    lo = np.maximum(np.asarray(start) - START_HALF_BOX, 0)
    hi = np.minimum(np.asarray(start) + START_HALF_BOX + 1, shape)
    while True:
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        above = suv[box] >= threshold
        if within is not None:
            above &= within[box]
        labels, _ = ndimage.label(above, structure=CONNECTIVITY)
        region = labels == labels[tuple(np.asarray(start) - lo)]
        grown = False
        for axis in range(3):
            size = hi[axis] - lo[axis]
            if lo[axis] > 0 and np.take(region, 0, axis=axis).any():
                lo[axis], grown = max(lo[axis] - size, 0), True
            if hi[axis] < shape[axis] and np.take(region, -1, axis=axis).any():
                hi[axis], grown = min(hi[axis] + size, shape[axis]), True
        if not grown:
            return _crop(box, region)


def _crop(box: Box, region: np.ndarray) -> tuple[Box, np.ndarray]:
    """The region's own bounding box (within ``box``) and its mask there."""
    found = ndimage.find_objects(region.astype(np.uint8))[0]
    inner = tuple(slice(b.start + f.start, b.start + f.stop) for b, f in zip(box, found))
    return inner, region[found]  # type: ignore[return-value]


def fill_enclosed(region: np.ndarray) -> np.ndarray:
    """3-D hole filling, then a 2-D fill in every axial slice (a necrotic core open at one end
    in 3-D is still closed in its slices; the 2-D pass alone would also close every 3-D hole).
    Bool, same shape."""
    padded = np.pad(region, 1)
    filled = ndimage.binary_fill_holes(padded)
    filled = fill_holes_per_slice(filled)
    return filled[1:-1, 1:-1, 1:-1]

"""FDG-avid regions: connected components above the uptake threshold, their measures, and the
splitting of very large merged regions."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np
from scipy import ndimage

MIN_REGION_ML = 0.1           # smaller components are noise
SPLIT_ABOVE_ML = 350.0        # a region this large (not the brain) is re-thresholded higher
SPLIT_STEP = 1.25             # threshold factor per splitting round
SPLIT_ROUNDS = 4
HOTTER_PART_LEVELS = (1.25, 1.5, 1.75)   # threshold factors tried to free a hotter blob
HOTTER_PART_MIN_ML = 2.0
HOTTER_PART_RATIO = 1.3       # the blob's SUVmax is this much above the organ's
SHELL_MM = (6.0, 16.0)        # the background shell around a region: this far from its border


@dataclass(eq=False)
class Region:
    """One connected FDG-avid region.

    Attributes:
        box: index slices (z, y, x) of its bounding box in the oriented array.
        mask: bool, its voxels inside ``box``.
        threshold: the SUV threshold it was cut at.
        spacing_zyx: voxel size (z, y, x) in mm.
        values: the smoothed SUV inside ``box``.
        peak_index: array index (z, y, x) of its smoothed SUVmax.
        organ: the physiological uptake it was recognised as, or None.
        organ_part_of: the main region of that organ (itself, or the organ it is a piece of).
    The mask is fixed once made; the measures below are computed once.
    """

    box: tuple[slice, slice, slice]
    mask: np.ndarray
    threshold: float
    spacing_zyx: np.ndarray
    values: np.ndarray = field(repr=False)
    peak_index: tuple[int, int, int] = field(init=False)
    organ: Optional[str] = None
    organ_part_of: Optional["Region"] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        local = np.unravel_index(int(np.argmax(np.where(self.mask, self.values, -np.inf))),
                                 self.mask.shape)
        self.peak_index = tuple(int(l + s.start) for l, s in zip(local, self.box))  # type: ignore

    @cached_property
    def voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def volume_ml(self) -> float:
        return self.voxels * float(np.prod(self.spacing_zyx)) / 1000.0

    @cached_property
    def suv_max(self) -> float:
        return float(self.values[self.mask].max())

    @cached_property
    def suv_mean(self) -> float:
        return float(self.values[self.mask].mean())

    @cached_property
    def lo_index(self) -> np.ndarray:
        idx = np.nonzero(self.mask)
        return np.array([i.min() + s.start for i, s in zip(idx, self.box)])

    @cached_property
    def hi_index(self) -> np.ndarray:
        idx = np.nonzero(self.mask)
        return np.array([i.max() + s.start for i, s in zip(idx, self.box)])

    @cached_property
    def centroid_index(self) -> np.ndarray:
        idx = np.nonzero(self.mask)
        return np.array([i.mean() + s.start for i, s in zip(idx, self.box)])

    @property
    def centroid_mm(self) -> np.ndarray:
        """Centroid in frame mm (z, y, x)."""
        return self.centroid_index * self.spacing_zyx

    @property
    def extent_mm(self) -> np.ndarray:
        """Bounding-box edge lengths (z, y, x) in mm."""
        return (self.hi_index - self.lo_index + 1) * self.spacing_zyx


def _pad_box(box: tuple[slice, ...], pad: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - int(p), 0), min(s.stop + int(p), n))
                 for s, p, n in zip(box, pad, shape))


def find_regions(smoothed: np.ndarray, inside: np.ndarray, threshold: float,
                 spacing_zyx: np.ndarray, within: Optional[tuple[slice, ...]] = None
                 ) -> list[Region]:
    """Connected components (6-connected) of ``smoothed > threshold`` inside ``inside``."""
    if within is None:
        within = tuple(slice(0, n) for n in smoothed.shape)
    hot = (smoothed[within] > threshold) & inside[within]
    labels, n = ndimage.label(hot)
    min_voxels = max(2, int(np.ceil(MIN_REGION_ML * 1000.0 / float(np.prod(spacing_zyx)))))
    regions = []
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == number
        if mask.sum() < min_voxels:
            continue
        full = tuple(slice(b.start + w.start, b.stop + w.start) for b, w in zip(box, within))
        regions.append(Region(box=full, mask=mask, threshold=threshold, spacing_zyx=spacing_zyx,
                              values=smoothed[full]))
    return regions


def split_large(region: Region, smoothed: np.ndarray, inside: np.ndarray) -> list[Region]:
    """Re-threshold a very large region at rising levels until its pieces are small enough; a
    merged region (a tumour touching an organ, or organs touching each other) falls apart."""
    pending, done = [region], []
    for _ in range(SPLIT_ROUNDS):
        next_round = []
        for piece in pending:
            if piece.volume_ml <= SPLIT_ABOVE_ML:
                done.append(piece)
                continue
            limit = np.zeros(smoothed.shape, bool)
            limit[piece.box] = piece.mask
            next_round.extend(find_regions(smoothed, limit & inside, piece.threshold * SPLIT_STEP,
                                           region.spacing_zyx, within=piece.box))
        pending = next_round
        if not pending:
            break
    return done + pending


def separate_hotter_part(region: Region, smoothed: np.ndarray, inside: np.ndarray
                         ) -> tuple[Region, list[Region]]:
    """An organ region with a distinctly hotter blob attached (a tumour touching the heart):
    re-thresholded at rising levels, the blob comes apart from the organ before the organ breaks
    up. Returns the organ without the blob, and the blobs (none when nothing comes apart)."""
    limit = np.zeros(smoothed.shape, bool)
    limit[region.box] = region.mask
    limit &= inside
    for factor in HOTTER_PART_LEVELS:
        pieces = find_regions(smoothed, limit, region.threshold * factor, region.spacing_zyx,
                              within=region.box)
        if len(pieces) < 2:
            continue
        main = max(pieces, key=lambda p: p.volume_ml)
        hotter = [p for p in pieces if p is not main and p.volume_ml >= HOTTER_PART_MIN_ML
                  and p.suv_max > HOTTER_PART_RATIO * main.suv_max]
        if not hotter:
            continue
        mask = region.mask.copy()
        for part in hotter:
            mask[tuple(slice(p.start - r.start, p.stop - r.start)
                       for p, r in zip(part.box, region.box))] &= ~part.mask
        rest = Region(box=region.box, mask=mask, threshold=region.threshold,
                      spacing_zyx=region.spacing_zyx, values=region.values)
        return rest, hotter
    return region, []


def shell_background(region: Region, smoothed: np.ndarray, body: np.ndarray) -> float:
    """Median smoothed SUV in a shell 6-16 mm outside the region, inside the body."""
    spacing = region.spacing_zyx
    outer = np.ceil(SHELL_MM[1] / spacing).astype(int)
    box = _pad_box(region.box, outer + 1, smoothed.shape)
    local = np.zeros(tuple(s.stop - s.start for s in box), bool)
    inner_slices = tuple(slice(r.start - b.start, r.stop - b.start)
                         for r, b in zip(region.box, box))
    local[inner_slices] = region.mask
    distance = ndimage.distance_transform_edt(~local, sampling=spacing)
    shell = (distance >= SHELL_MM[0]) & (distance <= SHELL_MM[1]) & body[box]
    values = smoothed[box][shell]
    return float(np.median(values)) if values.size else 0.0

"""The rules that recognise each kind of physiological uptake, by position in the body (and
relative to the organs already found), size and shape.

Positions are frame mm (z up, y posterior, x left); ``Body.relative_position`` gives x_rel, the
offset from the midline in body half-widths (+ = Left), and y_rel, the depth from the anterior
(0) to the posterior (1) surface. Each rule returns the regions it recognised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from MTLRadiomicsLib.localisation.body import Body
from MTLRadiomicsLib.localisation.regions import Region

HEAD_WIDTH_MM = 240.0          # the head is narrower than this; the trunk is wider
BRAIN_TOP_MM = 40.0            # the brain reaches to within this of the top of the body
BRAIN_MIN_ML = 10.0
BRAIN_MIDLINE_REL = 0.35       # the brain lies on the body's midline (within this many half-widths)
TRUNK_WIDTH_MM = 300.0         # shoulders or trunk: a body at least this wide ...
TRUNK_BELOW_MM = 350.0         # ... within this distance below the brain (a head sits on a trunk)
KIDNEY_ML = (4.0, 450.0)
KIDNEY_PAIR_DZ_MM = 70.0       # the two kidneys lie at about the same height
HEART_MIN_ML = 25.0
HEART_MIN_EXTENT_MM = 35.0     # the heart is at least this big along every axis
HEART_MEDIAL_REL = 0.08        # its medial edge reaches the midline (within this many half-widths)
HEART_FRAGMENT_GAP_MM = 15.0   # pieces of a faint myocardium lie this close to each other
BLADDER_MIN_ML = 12.0
URINE_MIN_PEAK = 2.0           # urine in the ureters is at least this many times the threshold


@dataclass
class Placed:
    """A region's position in the body."""

    region: Region
    z: float          # centroid height (frame mm)
    x_rel: float
    y_rel: float
    top: float        # highest and lowest voxel centre (frame mm)
    bottom: float
    volume: float
    peak: float

    @property
    def lo_mm(self) -> np.ndarray:
        return self.region.lo_index * self.region.spacing_zyx

    @property
    def hi_mm(self) -> np.ndarray:
        return self.region.hi_index * self.region.spacing_zyx

    @classmethod
    def of(cls, region: Region, body: Body) -> "Placed":
        c = region.centroid_mm
        x_rel, y_rel = body.relative_position(c)
        sz = float(region.spacing_zyx[0])
        return cls(region=region, z=float(c[0]), x_rel=x_rel, y_rel=y_rel,
                   top=float(region.hi_index[0]) * sz, bottom=float(region.lo_index[0]) * sz,
                   volume=region.volume_ml, peak=region.suv_max)


@dataclass
class Landmarks:
    """Heights (frame mm) of the organs found, for the next organ's rules."""

    brain_bottom: Optional[float] = None
    kidneys: list[Placed] = field(default_factory=list)
    bladder: Optional[Placed] = None

    @property
    def kidney_z(self) -> Optional[float]:
        return float(np.mean([k.z for k in self.kidneys])) if self.kidneys else None


def free(placed: Sequence[Placed]) -> list[Placed]:
    """The regions not yet recognised as any organ."""
    return [p for p in placed if p.region.organ is None]


def brain(placed: Sequence[Placed], body: Body) -> list[Placed]:
    """Hot regions reaching the cranial end of the body, inside a head-sized body part on the
    midline, with shoulders or a trunk below it. A crop of a limb or of the pelvis and thighs has
    a narrow body part at its top too; without a trunk below, its hot top is no brain."""
    top = body.top * body.spacing[2]
    found = []
    for p in placed:
        if p.volume < BRAIN_MIN_ML or top - p.top > BRAIN_TOP_MM or abs(p.x_rel) > BRAIN_MIDLINE_REL:
            continue
        if body.part_width(p.region.peak_index) > HEAD_WIDTH_MM:
            continue
        if not _trunk_below(body, p.bottom):
            continue
        found.append(p)
    return found


def _in_trunk(body: Body, z_mm: float) -> bool:
    """Whether the body is wider than a head or a limb (``HEAD_WIDTH_MM``) at this height (frame mm)."""
    return bool(2.0 * body.half_width[body.slice_at(z_mm)] > HEAD_WIDTH_MM)


def _legs_below(body: Body, z_mm: float, within_mm: float = 200.0, min_width_mm: float = 60.0) -> bool:
    """Whether the body splits into two legs (two parts at least ``min_width_mm`` wide in one axial
    slice) within ``within_mm`` below ``z_mm``."""
    from scipy import ndimage

    sz = body.spacing[2]
    low = max(body.bottom, int(np.floor((z_mm - within_mm) / sz)))
    high = min(body.top, int(np.ceil(z_mm / sz)))
    for k in range(low, high + 1):
        labels, n = ndimage.label(body.mask[k])
        if n < 2:
            continue
        widths = [np.ptp(np.flatnonzero((labels == label).any(axis=0))) + 1 for label in range(1, n + 1)]
        if sum(w * body.spacing[0] >= min_width_mm for w in widths) >= 2:
            return True
    return False


def _trunk_below(body: Body, z_mm: float) -> bool:
    """Whether the body is at least ``TRUNK_WIDTH_MM`` wide somewhere within ``TRUNK_BELOW_MM``
    below ``z_mm`` (frame mm)."""
    sz = body.spacing[2]
    low = max(body.bottom, int(np.floor((z_mm - TRUNK_BELOW_MM) / sz)))
    high = min(body.top, int(np.ceil(z_mm / sz)))
    if high < low:
        return False
    return bool(np.any(2.0 * body.half_width[low:high + 1] >= TRUNK_WIDTH_MM))


def _below_brain(p: Placed, marks: Landmarks, distance_mm: float) -> bool:
    return marks.brain_bottom is None or marks.brain_bottom - p.z >= distance_mm


def kidney_pair(placed: Sequence[Placed], marks: Landmarks, body: Body) -> list[Placed]:
    """The best left/right pair of posterior, lateral regions at the same height."""
    options = [p for p in free(placed)
               if KIDNEY_ML[0] <= p.volume <= KIDNEY_ML[1] and p.y_rel >= 0.45
               and 0.08 <= abs(p.x_rel) <= 0.75 and _below_brain(p, marks, 300.0)
               and body.part_width(p.region.peak_index) > HEAD_WIDTH_MM]
    best, best_score = [], 0.0
    for a in options:
        if a.x_rel <= 0:
            continue
        for b in options:
            if b.x_rel >= 0:
                continue
            dz = abs(a.z - b.z)
            mirrored = abs(a.x_rel + b.x_rel) <= 0.3 and abs(a.y_rel - b.y_rel) <= 0.25
            if dz > KIDNEY_PAIR_DZ_MM or not mirrored:
                continue
            balance = min(a.volume, b.volume) / max(a.volume, b.volume)
            score = (a.volume + b.volume) * (0.3 + balance) * (1.0 - dz / (2 * KIDNEY_PAIR_DZ_MM))
            if score > best_score:
                best, best_score = [a, b], score
    return best


def bladder(placed: Sequence[Placed], marks: Landmarks, body: Body,
            threshold: float) -> list[Placed]:
    """The hottest large, roundish, midline region low in the trunk, below the other organs."""
    height = (body.top - body.bottom) * body.spacing[2]
    floor = body.bottom * body.spacing[2]
    kidney_z = marks.kidney_z
    options = []
    for p in free(placed):
        if p.volume < BLADDER_MIN_ML or abs(p.x_rel) > 0.15 or p.y_rel > 0.7:
            continue
        if p.peak < 1.6 * threshold:
            continue
        extent = p.region.extent_mm
        if extent[0] > 1.8 * max(extent[1], extent[2]):
            continue          # long along the body axis: not a bladder
        if kidney_z is not None and kidney_z - p.z < 50.0:
            continue
        if not _below_brain(p, marks, 450.0):
            continue
        if kidney_z is None and marks.brain_bottom is None:
            # Without other organs, a short scan (a crop of the pelvis and thighs) shows the bladder
            # as a hot midline region of the trunk with the two legs below it.
            if height < 400.0:
                if body.part_width(p.region.peak_index) <= HEAD_WIDTH_MM or not _legs_below(body, p.bottom):
                    continue
            elif p.z - floor > 0.4 * height:
                continue
        options.append(p)
    return [max(options, key=lambda p: p.peak * p.volume ** 0.5)] if options else []


def single_kidney(placed: Sequence[Placed], marks: Landmarks) -> list[Placed]:
    """When no pair shows: one posterior lateral kidney-sized region at kidney height, which needs
    the bladder or the brain to tell that height."""
    if marks.bladder is None and marks.brain_bottom is None:
        return []
    options = []
    for p in free(placed):
        if not (15.0 <= p.volume <= 300.0 and p.y_rel >= 0.5 and 0.12 <= abs(p.x_rel) <= 0.65):
            continue
        extent = p.region.extent_mm
        if extent[0] < 0.9 * max(extent[1], extent[2]):
            continue          # kidneys are longer along the body axis than across
        if marks.bladder is not None and not 80.0 <= p.z - marks.bladder.z <= 350.0:
            continue
        if not _below_brain(p, marks, 380.0):
            continue
        options.append(p)
    return [max(options, key=lambda p: p.volume)] if options else []


def ureters(placed: Sequence[Placed], marks: Landmarks, threshold: float) -> list[Placed]:
    """Urinary activity in the ureters: small hot regions, long along the body axis, between the
    kidneys and the bladder and no further from the midline than the kidneys."""
    if marks.bladder is None or not marks.kidneys:
        return []
    lowest_kidney = min(k.bottom for k in marks.kidneys)
    lateral = max(abs(k.x_rel) for k in marks.kidneys) + 0.05
    found = []
    for p in free(placed):
        if p.volume > 15.0 or abs(p.x_rel) > lateral or p.peak < URINE_MIN_PEAK * threshold:
            continue
        if not marks.bladder.top < p.z < lowest_kidney + 20.0:
            continue
        extent = p.region.extent_mm
        if extent[0] < 1.5 * min(extent[1], extent[2]):
            continue
        found.append(p)
    return found


def heart(placed: Sequence[Placed], marks: Landmarks, body: Body) -> list[Placed]:
    """The largest, hottest roundish region left of the midline in the anterior chest, its
    medial edge near the midline: above the kidneys, well above the bladder, below the brain.
    A faint myocardium shows as a few pieces instead; these are taken together when other organs
    tell the height of the chest."""
    options = [p for p in free(placed)
               if p.volume >= HEART_MIN_ML and _heart_place(p.z, p.x_rel, p.y_rel, p.lo_mm[2],
                                                            p.region.extent_mm, marks, body)]
    if options:
        return [max(options, key=lambda p: p.volume * p.peak)]
    if marks.bladder is None and not marks.kidneys and marks.brain_bottom is None:
        return []
    best: list[Placed] = []
    for group in _clusters([p for p in free(placed) if p.volume >= 0.5 and p.y_rel <= 0.6],
                           HEART_FRAGMENT_GAP_MM):
        peaks = [p.peak for p in group]
        volume = sum(p.volume for p in group)
        lo = np.min([p.lo_mm for p in group], axis=0)
        hi = np.max([p.hi_mm for p in group], axis=0)
        extent = hi - lo + group[0].region.spacing_zyx
        if len(group) < 2 or max(peaks) > 1.5 * min(peaks) or volume < 5.0:
            continue
        if np.sort(extent)[1] < 30.0:
            continue          # not spread over a heart-sized volume
        centre = np.sum([p.region.centroid_mm * p.volume for p in group], axis=0) / volume
        x_rel, y_rel = body.relative_position(centre)
        if not _heart_place(float(centre[0]), x_rel, y_rel, float(lo[2]), extent, marks, body):
            continue
        if sum(p.volume for p in best) < volume:
            best = group
    return best


def _heart_place(z: float, x_rel: float, y_rel: float, medial_x: float, extent: np.ndarray,
                 marks: Landmarks, body: Body) -> bool:
    """Whether something at this place, of this extent, can be the heart: left of the midline
    but reaching it, in the anterior half, about as tall as it is wide and deep."""
    if not (0.06 <= x_rel <= 0.6) or y_rel > 0.45 or extent[0] > 1.6 * max(extent[1], extent[2]):
        return False
    if not _in_trunk(body, z):
        return False
    if np.min(extent) < HEART_MIN_EXTENT_MM:
        return False
    k = body.slice_at(z)
    if medial_x > body.mid_x[k] + HEART_MEDIAL_REL * body.half_width[k]:
        return False
    kidney_z = marks.kidney_z
    if kidney_z is not None and z - kidney_z < 110.0:
        return False
    if marks.bladder is not None and z - marks.bladder.z < 280.0:
        return False
    if marks.brain_bottom is not None:
        below = marks.brain_bottom - z
        if not 150.0 <= below <= 450.0:
            return False
        if marks.bladder is not None and below > 0.58 * (marks.brain_bottom - marks.bladder.z):
            return False
    return True


def _clusters(placed: Sequence[Placed], gap_mm: float) -> list[list[Placed]]:
    """Groups of regions whose bounding boxes come within ``gap_mm`` of each other."""
    parent = list(range(len(placed)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(placed):
        for j in range(i + 1, len(placed)):
            b = placed[j]
            gap = np.maximum(a.lo_mm - b.hi_mm, b.lo_mm - a.hi_mm)
            if np.all(gap <= gap_mm):
                parent[root(i)] = root(j)
    groups: dict[int, list[Placed]] = {}
    for i, p in enumerate(placed):
        groups.setdefault(root(i), []).append(p)
    return list(groups.values())

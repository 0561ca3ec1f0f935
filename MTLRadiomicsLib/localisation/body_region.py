"""The body region of a point in a PET: head and neck, thorax, abdomen and pelvis, or a limb.

Each axial slice of the body outline (``body.find_body``, PET re-oriented to LPS so that slices
run towards Superior whatever the image direction) is cut into parts: its connected pieces, split
again where the body's thickness along y falls into a deep valley between two humps (thighs
pressed together, an arm against the trunk). A slice whose largest part, seen whole, is at least
HEAD_WIDTH_MM wide is trunk; the longest run of such slices is the trunk. Above it lie the head
and neck (with raised arms beside them), below it the legs (with the hands beside them when the
arms hang down). In the trunk a narrow part beside the main one is an arm, and the diaphragm,
between thorax and abdomen, is the top of the liver: the highest slice below which liver-like
uptake fills much of the trunk's right half over LIVER_RUN_MM. Without a liver, it is the bottom
of the lung fields, the trunk's cold interior. Without a trunk (a crop), two parts of similar
size side by side are the legs, and a narrow part under the brain's uptake at the cranial end is
the head; anything else is "unknown", and a slice whose body touches both x edges of the field of
view is said to be cut by it. Lengths are mm, uptake SUV.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.localisation import organ_rules as rules
from MTLRadiomicsLib.localisation.body import Body, find_body, smooth
from MTLRadiomicsLib.localisation.geometry import OrientedPet, _point
from MTLRadiomicsLib.localisation.organ_rules import HEAD_WIDTH_MM, Placed
from MTLRadiomicsLib.localisation.regions import find_regions
from MTLRadiomicsLib.localisation.search import uptake_threshold
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

BODY_REGIONS = ("head_neck", "thorax", "abdomen_pelvis", "upper_limb", "lower_limb")

MIN_PART_CM2 = 8.0            # smaller pieces of a slice's body are not a body part
VALLEY_RATIO = 0.55           # a part splits where its thickness falls below this x the lower hump
MIN_HUMP_MM = 35.0            # ... each side of the valley at least this wide
NEAR_MM = 15.0                # a point this close outside the body outline goes with the nearest part
LEG_AREA_RATIO = 0.35         # the smaller of two legs has at least this share of the larger's area
LEG_MIN_CM2 = 60.0            # a leg's cross-section, without a trunk in view to tell (a hand is less)
ARM_AREA_RATIO = 0.6          # a part beside the trunk smaller than this x the trunk is an arm
SHOULDER_MARGIN_MM = 25.0     # trunk voxels this far beyond the trunk's usual half-width: an arm
INTERIOR_MM = 20.0            # the trunk's interior: this deep inside the body outline
PROFILE_SIGMA_MM = 6.0        # in-plane smoothing for the liver and lung profiles
LIVER_LEVEL = 1.8             # liver-like uptake: above this x the trunk interior's median SUV
LIVER_FRACTION = 0.3          # ... in at least this share of the right half of the interior
LIVER_RUN_MM = 30.0           # ... over this height, below the top of the liver
LUNG_LEVEL = 0.8              # lung-like: below this x the trunk interior's median SUV
LUNG_FRACTION = 0.35          # ... in at least this share of the interior
PELVIS_HEIGHT_MM = 200.0      # without a diaphragm, trunk this close above the legs is pelvis
BRAIN_SLAB_MM = 60.0          # the brain is looked for in this much of the body's cranial end


@dataclass
class BodyRegion:
    """Where a point lies in the body.

    Attributes:
        name: one of BODY_REGIONS, or "unknown".
        reason: one sentence: how it was decided, or why it cannot be.
    """

    name: str
    reason: str

    def to_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


@dataclass
class _Part:
    """A body part in one axial slice: x extent and centre (frame mm), area (mm^2), and whether it
    reaches the field of view's low or high x edge."""

    x_lo: float
    x_hi: float
    area: float
    cx: float
    cut_lo: bool
    cut_hi: bool
    label: int
    col_lo: int
    col_hi: int

    @property
    def width(self) -> float:
        return self.x_hi - self.x_lo

    @property
    def cut(self) -> bool:
        return self.cut_lo or self.cut_hi


def body_region(pet: PetVolume, point_lps: Sequence[float],
                body: Optional[Body] = None) -> BodyRegion:
    """Body region of an LPS point (mm) in a whole-body or cropped PET (SUV, any direction).

    Args:
        pet: the PET.
        point_lps: the point (lesion centre), mm.
        body: the body outline of this PET (``find_body`` on ``smooth`` of the LPS-oriented SUV),
            reused when given.
    """
    oriented = OrientedPet.from_pet(pet)
    suv = np.nan_to_num(oriented.suv, nan=0.0, posinf=0.0, neginf=0.0)
    if body is None:
        body = find_body(smooth(suv, oriented.spacing), oriented.spacing)
    elif body.mask.shape != suv.shape:
        raise ValueError(f"the body outline's shape {body.mask.shape} is not the PET's {suv.shape}")
    index = _index(oriented, _point(point_lps))
    if index is None:
        return BodyRegion("unknown", "The point lies outside the PET's field of view.")
    return _Plan(body, suv).region(index)


def _index(oriented: OrientedPet, point: tuple[float, float, float]
           ) -> Optional[tuple[int, int, int]]:
    """Nearest array index (z, y, x) of the oriented PET, or None outside it."""
    ijk = oriented.direction.T @ (np.asarray(point) - np.asarray(oriented.origin))
    ijk = ijk / np.asarray(oriented.spacing)
    zyx = np.rint(ijk[::-1]).astype(int)
    if np.any(zyx < 0) or np.any(zyx >= np.asarray(oriented.suv.shape)):
        return None
    return int(zyx[0]), int(zyx[1]), int(zyx[2])


def _split_columns(profile: np.ndarray, min_cols: int) -> list[tuple[int, int]]:
    """Column ranges [lo, hi) of a thickness profile split at deep valleys between humps."""
    n = len(profile)
    if n < 2 * min_cols + 1:
        return [(0, n)]
    left = np.maximum.accumulate(profile)
    right = np.maximum.accumulate(profile[::-1])[::-1]
    v = np.arange(min_cols, n - min_cols)
    ratio = profile[v] / np.maximum(np.minimum(left[v], right[v]), 1)
    best = int(np.argmin(ratio))
    if ratio[best] >= VALLEY_RATIO:
        return [(0, n)]
    cut = int(v[best])
    return ([(a, b) for a, b in _split_columns(profile[:cut], min_cols)]
            + [(a + cut, b + cut) for a, b in _split_columns(profile[cut:], min_cols)])


class _Plan:
    """The body's parts slice by slice, the trunk, its midline and the diaphragm."""

    def __init__(self, body: Body, suv: np.ndarray) -> None:
        self.body, self.suv = body, suv
        sx, sy, sz = body.spacing
        self.sx, self.sz = sx, sz
        in_plane = np.zeros((3, 3, 3), bool)
        in_plane[1] = ndimage.generate_binary_structure(2, 1)
        self.labels, _ = ndimage.label(body.mask, structure=in_plane)
        nx = body.mask.shape[2]
        self.parts: list[list[_Part]] = [[] for _ in range(body.mask.shape[0])]
        min_cols = max(2, int(round(MIN_HUMP_MM / sx)))
        for label, box in enumerate(ndimage.find_objects(self.labels), start=1):
            if box is None:
                continue
            profile = (self.labels[box] == label).sum(axis=(0, 1))
            c0 = box[2].start
            for a, b in _split_columns(profile, min_cols):
                area = float(profile[a:b].sum()) * sx * sy
                if area < MIN_PART_CM2 * 100.0:
                    continue
                cols = np.arange(a, b)
                cx = float((profile[a:b] * cols).sum() / max(profile[a:b].sum(), 1) + c0) * sx
                self.parts[box[0].start].append(_Part(
                    x_lo=(a + c0 - 0.5) * sx, x_hi=(b + c0 - 0.5) * sx, area=area, cx=cx,
                    cut_lo=a + c0 == 0, cut_hi=b + c0 == nx, label=label, col_lo=a + c0,
                    col_hi=b + c0))
        for parts in self.parts:
            parts.sort(key=lambda p: -p.area)
        self.trunk = self._trunk()
        self.mid_x = self.half = None
        self.diaphragm: Optional[float] = None
        self.diaphragm_by = ""
        if self.trunk is not None:
            lo, hi = self.trunk
            mains = [self.parts[k][0] for k in range(lo, hi + 1) if self.parts[k]]
            self.mid_x = float(np.median([p.cx for p in mains]))
            self.half = float(np.median([p.width / 2.0 for p in mains]))
            self._find_diaphragm()

    # -- the trunk ---------------------------------------------------------------------------
    def _is_trunk(self, k: int) -> bool:
        parts = self.parts[k]
        if not parts or (parts[0].cut_lo and parts[0].cut_hi):
            return False
        return parts[0].width >= HEAD_WIDTH_MM and self._legs(parts) is None

    def _legs(self, parts: list[_Part], min_cm2: float = 0.0) -> Optional[tuple[_Part, _Part]]:
        """The two largest parts when they are legs: similar in size, side by side, nothing
        between them."""
        if len(parts) < 2:
            return None
        a, b = sorted(parts[:2], key=lambda p: p.cx)
        if min(a.area, b.area) < max(LEG_AREA_RATIO * max(a.area, b.area), min_cm2 * 100.0):
            return None
        if any(a.cx < p.cx < b.cx for p in parts[2:]):
            return None
        return a, b

    def _trunk(self) -> Optional[tuple[int, int]]:
        """The longest run of trunk slices (one-slice gaps bridged), or None."""
        flags = np.array([self._is_trunk(k) for k in range(len(self.parts))])
        flags[1:-1] |= flags[:-2] & flags[2:]
        runs = self._runs(flags)
        return max(runs, key=lambda r: r[1] - r[0]) if runs else None

    def _find_diaphragm(self) -> None:
        """The top of the liver, else the bottom of the lung fields (frame mm)."""
        lo, hi = self.trunk  # type: ignore[misc]
        sx, sy, _ = self.body.spacing
        slab = self.body.mask[lo:hi + 1]
        interior = ndimage.binary_erosion(slab, structure=self._in_plane(),
                                          iterations=max(1, int(round(INTERIOR_MM / sx))))
        cols = np.arange(slab.shape[2])
        for i, k in enumerate(range(lo, hi + 1)):     # the trunk part only
            main = self.parts[k][0] if self.parts[k] else None
            keep = ((cols >= main.col_lo) & (cols < main.col_hi)) if main else np.zeros_like(cols, bool)
            interior[i] &= keep[None, :]
        if interior.sum() < 100:
            return
        values = ndimage.gaussian_filter(self.suv[lo:hi + 1],
                                         (0, PROFILE_SIGMA_MM / sy, PROFILE_SIGMA_MM / sx))
        median = float(np.median(values[interior]))
        right = interior & (cols[None, None, :] * sx < self.mid_x - 0.25 * self.half)
        n_right = np.maximum(right.sum(axis=(1, 2)), 1)
        liver = ((values > LIVER_LEVEL * median) & right).sum(axis=(1, 2)) / n_right
        n_inner = np.maximum(interior.sum(axis=(1, 2)), 1)
        lung = ((values < LUNG_LEVEL * median) & interior).sum(axis=(1, 2)) / n_inner
        run = max(1, int(round(LIVER_RUN_MM / self.sz)))
        for i in range(len(liver) - 1, run - 2, -1):   # from the top of the trunk down
            if np.all(liver[i - run + 1:i + 1] >= LIVER_FRACTION):
                self.diaphragm = (lo + i + 0.5) * self.sz
                self.diaphragm_by = "the top of the liver"
                return
        lungs = lung >= LUNG_FRACTION
        runs = [(a, b) for a, b in self._runs(lungs) if (b - a + 1) * self.sz >= 60.0]
        if runs:
            a, _ = max(runs, key=lambda r: r[1] - r[0])
            self.diaphragm = (lo + a - 0.5) * self.sz
            self.diaphragm_by = "the bottom of the lung fields"

    @staticmethod
    def _in_plane() -> np.ndarray:
        s = np.zeros((3, 3, 3), bool)
        s[1] = ndimage.generate_binary_structure(2, 1)
        return s

    @staticmethod
    def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
        out, start = [], None
        for k, f in enumerate(np.append(flags, False)):
            if f and start is None:
                start = k
            elif not f and start is not None:
                out.append((start, k - 1))
                start = None
        return out

    # -- one point ---------------------------------------------------------------------------
    def _part_of(self, index: tuple[int, int, int]) -> Optional[_Part]:
        k, j, i = index
        label = int(self.labels[k, j, i])
        if label == 0:
            outside = self.labels[k] == 0
            distance, (jj, ii) = ndimage.distance_transform_edt(
                outside, sampling=self.body.spacing[1::-1], return_indices=True)
            if distance[j, i] > NEAR_MM:
                return None
            j, i = int(jj[j, i]), int(ii[j, i])
            label = int(self.labels[k, j, i])
        for part in self.parts[k]:
            if part.label == label and part.col_lo <= i < part.col_hi:
                return part
        return None

    def region(self, index: tuple[int, int, int]) -> BodyRegion:
        k, _, i = index
        part = self._part_of(index)
        if part is None:
            return BodyRegion("unknown", "The point lies outside the body outline.")
        parts = self.parts[k]
        if self.trunk is None:
            return self._without_trunk(k, part, parts)
        lo, hi = self.trunk
        assert self.mid_x is not None and self.half is not None
        if k > hi:
            if part.x_lo - 10.0 <= self.mid_x <= part.x_hi + 10.0:
                return BodyRegion("head_neck", "The point lies above the trunk (towards the head) "
                                               "in the part on the body's midline.")
            return BodyRegion("upper_limb", "The point lies above the trunk in a part beside the "
                                            "head (a raised arm).")
        if k < lo:
            legs = self._legs(parts) or (parts[0],)
            if part in legs or part.area >= 0.5 * parts[0].area:
                return BodyRegion("lower_limb", "The point lies below the trunk (towards the feet) "
                                                "in one of the legs.")
            return BodyRegion("upper_limb", "The point lies below the trunk in a small part beside "
                                            "the legs (a hand or forearm).")
        main = parts[0]
        if part is not main and part.area < ARM_AREA_RATIO * main.area:
            return BodyRegion("upper_limb", "The point lies in a narrow part beside the trunk "
                                            "(an arm).")
        x = i * self.sx
        if abs(x - self.mid_x) > self.half + SHOULDER_MARGIN_MM:
            return BodyRegion("upper_limb", "The point lies in the trunk's slice but beyond the "
                                            "trunk's usual width (a shoulder or an arm against it).")
        z = k * self.sz
        if self.diaphragm is not None:
            if z > self.diaphragm:
                return BodyRegion("thorax", f"The point lies in the trunk above the diaphragm "
                                            f"({self.diaphragm_by}).")
            return BodyRegion("abdomen_pelvis", f"The point lies in the trunk below the diaphragm "
                                                f"({self.diaphragm_by}).")
        if lo > self.body.bottom and (z - lo * self.sz) <= PELVIS_HEIGHT_MM:
            return BodyRegion("abdomen_pelvis", "The point lies in the trunk just above where the "
                                                "legs part; no liver or lungs show the diaphragm.")
        return BodyRegion("unknown", "The point lies in the trunk, but neither the liver nor the "
                                     "lungs show where the diaphragm is.")

    def _without_trunk(self, k: int, part: _Part, parts: list[_Part]) -> BodyRegion:
        legs = self._legs(parts, LEG_MIN_CM2)
        if legs is not None and part in legs:
            return BodyRegion("lower_limb", "Two body parts of similar size lie side by side "
                                            "and no trunk is in the field of view: the legs.")
        if part.width < HEAD_WIDTH_MM and self._under_brain(part):
            return BodyRegion("head_neck", "The point lies in a narrow part below the brain's "
                                           "uptake at the cranial end of the body.")
        if any(p.cut_lo for p in parts) and any(p.cut_hi for p in parts):
            return BodyRegion("unknown", "The field of view cuts the body at the point's level.")
        return BodyRegion("unknown", "No trunk, legs or brain in the field of view to place the "
                                     "body part the point lies in.")

    def _under_brain(self, part: _Part) -> bool:
        body = self.body
        slab_lo = max(body.bottom, body.top - int(round(BRAIN_SLAB_MM / self.sz)))
        within = (slice(slab_lo, body.top + 1), slice(None), slice(None))
        smoothed = np.zeros(self.suv.shape, np.float32)
        smoothed[within] = smooth(self.suv[within], body.spacing)
        regions = find_regions(smoothed, body.mask, uptake_threshold(body.background_suv),
                               np.asarray(body.spacing[::-1], float), within=within)
        found = rules.brain([Placed.of(r, body) for r in regions], body)
        return any(part.x_lo <= p.region.centroid_mm[2] <= part.x_hi for p in found)

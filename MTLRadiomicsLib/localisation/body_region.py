"""The body region of a point in a PET: head and neck, thorax, abdomen and pelvis, or a limb.

The PET is re-oriented to LPS (``geometry.OrientedPet``), so that slices run towards Superior
whatever the image direction. Each axial slice of the body outline (``body.find_body``) is cut
into parts: its connected pieces, split again where the body's thickness along y falls into a
deep valley between two humps (thighs pressed together, an arm against the trunk). A slice whose
largest part is at least HEAD_WIDTH_MM wide is trunk; the longest run of such slices is the
trunk. Above it lie the head and neck (raised arms beside them), below it the legs (the hands
beside them when the arms hang down). In the trunk, a narrow part beside the main one, or the main
part beyond the trunk's usual half-width, is an arm. The diaphragm is the top of the liver (the
highest slice below which liver-like uptake fills much of the trunk's right half), else the
bottom of the lung fields (the trunk's cold interior); near its level, where the dome makes one
height wrong, the heart's uptake (``organ_rules.heart``) or the lung or liver around the point
decide. Thighs that join the trunk's outline (legs pressed together, genitals between them) are
told by lying off the midline well below the bladder (``organ_rules.bladder``). Without a trunk
(a crop), two parts of similar size side by side are the legs and a narrow part under the brain's
uptake at the body's cranial end (``organ_rules.brain``) is the head; anything else is
"unknown", with the reason (the field of view cuts the body, or nothing tells). Lengths are mm,
uptake SUV.
"""

from __future__ import annotations

import dataclasses
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.localisation import organ_rules as rules
from MTLRadiomicsLib.localisation.body import Body, find_body, smooth
from MTLRadiomicsLib.localisation.geometry import OrientedPet, _point
from MTLRadiomicsLib.localisation.organ_rules import HEAD_WIDTH_MM, Landmarks, Placed
from MTLRadiomicsLib.localisation.regions import find_regions
from MTLRadiomicsLib.localisation.search import uptake_threshold
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

BODY_REGIONS = ("head_neck", "thorax", "abdomen_pelvis", "upper_limb", "lower_limb")

MIN_PART_CM2 = 8.0            # smaller pieces of a slice's body are not a body part
VALLEY_RATIO = 0.55           # a part splits where its thickness falls below this x the lower hump
MIN_HUMP_MM = 35.0            # ... each side of the valley at least this wide
NEAR_MM = 15.0                # a point this close outside the outline goes with the nearest part
LEG_AREA_RATIO = 0.35         # the smaller of two legs has at least this share of the larger's area
LEG_MIN_CM2 = 60.0            # a leg's cross-section when no trunk is in view (a hand's is less)
ARM_AREA_RATIO = 0.6          # a part beside the trunk smaller than this x the trunk is an arm
SHOULDER_MARGIN_MM = 25.0     # trunk voxels this far beyond the trunk's usual half-width: an arm
INTERIOR_MM = 20.0            # the trunk's interior: this deep inside the body outline
PROFILE_SIGMA_MM = 6.0        # in-plane smoothing for the liver and lung profiles
LIVER_LEVEL = 1.8             # liver-like uptake: above this x the trunk interior's median SUV
LIVER_FRACTION = 0.3          # ... in at least this share of the right half of the interior
LIVER_RUN_MM = 30.0           # ... over this height, below the top of the liver
LUNG_LEVEL = 0.8              # lung-like: below this x the trunk interior's median SUV
LUNG_FRACTION = 0.35          # ... in at least this share of the interior
BAND_MM = (60.0, 20.0)        # below / above the diaphragm's level, the point's surroundings decide
RING_MM = (10.0, 40.0)        # ... those this far from it in its slice
HEART_DEPTH_MM = 25.0         # the heart lies at least this deep inside the body outline
RING_FRACTION = 0.35          # ... lung or liver in at least this share of the ring
PELVIS_HEIGHT_MM = 150.0      # no diaphragm: trunk up to this far above the bladder floor is pelvis
LOW_TRUNK_MM = 200.0          # the bladder is looked for in this much of the trunk's lower end
PERINEUM_MM = 40.0            # trunk this far below the bladder's floor, off the midline, is thigh
MIDLINE_MM = 35.0             # ... further than this from the midline (genitals, anus lie on it)
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
        """JSON-serialisable: {"name", "reason"}."""
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
    if body is None:
        oriented, plan = _last_plan(pet)
    else:
        oriented = OrientedPet.from_pet(pet)
        suv = np.nan_to_num(oriented.suv, nan=0.0, posinf=0.0, neginf=0.0)
        if body.mask.shape != suv.shape:
            raise ValueError(f"the body outline's shape {body.mask.shape} is not the PET's {suv.shape}")
        plan = None
    index = _index(oriented, _point(point_lps))
    if index is None:
        return BodyRegion("unknown", "The point lies outside the PET's field of view.")
    return (plan or _Plan(body, suv)).region(index)


_LAST_PLAN: list = []        # [(weak reference to a PetVolume, its OrientedPet, its lazily made _Plan)]


class _LazyPlan:
    """The body outline and plan of one PET, made on the first question about a point inside it."""

    def __init__(self, oriented: OrientedPet) -> None:
        self.oriented = oriented
        self._plan: Optional[_Plan] = None

    def region(self, index: tuple[int, int, int]) -> BodyRegion:
        if self._plan is None:
            suv = np.nan_to_num(self.oriented.suv, nan=0.0, posinf=0.0, neginf=0.0)
            self._plan = _Plan(find_body(smooth(suv, self.oriented.spacing), self.oriented.spacing), suv)
        return self._plan.region(index)


def _forget(reference: weakref.ref) -> None:
    """The PET of ``reference`` is gone: its plan goes too (unless another PET's replaced it)."""
    if _LAST_PLAN and _LAST_PLAN[0][0] is reference:
        _LAST_PLAN.clear()


def _last_plan(pet: PetVolume) -> tuple[OrientedPet, _LazyPlan]:
    """The oriented PET and its body plan, kept for the last PET asked about (a warm engine asks
    again about the scan it keeps, whose voxels never change after reading): the outline, its
    parts and the diaphragm are worked out once per scan, not once per analysis."""
    if _LAST_PLAN and _LAST_PLAN[0][0]() is pet:
        return _LAST_PLAN[0][1], _LAST_PLAN[0][2]
    oriented = OrientedPet.from_pet(pet)
    lazy = _LazyPlan(oriented)
    _LAST_PLAN[:] = [(weakref.ref(pet, _forget), oriented, lazy)]
    return oriented, lazy


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
        self.labels, _ = ndimage.label(body.mask, structure=self._in_plane())
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
        self.mid_x: Optional[float] = None      # the trunk's midline and usual half-width (mm)
        self.half: Optional[float] = None
        self.diaphragm: Optional[float] = None
        self.diaphragm_by = ""
        self.median = 0.0
        if self.trunk is not None:
            lo, hi = self.trunk
            mains = [self.parts[k][0] for k in range(lo, hi + 1)
                     if self.parts[k] and not self.parts[k][0].cut]
            mains = mains or [self.parts[k][0] for k in range(lo, hi + 1) if self.parts[k]]
            self.mid_x = float(np.median([p.cx for p in mains]))
            self.half = float(np.median([p.width / 2.0 for p in mains]))
            self._find_diaphragm()

    # -- the trunk ---------------------------------------------------------------------------
    def _trunk_kind(self, k: int) -> int:
        """1: a trunk slice; 0: not one; -1: cannot tell (its wide part touches both x edges)."""
        parts = self.parts[k]
        if not parts or parts[0].width < HEAD_WIDTH_MM or self._legs(parts) is not None:
            return 0
        return -1 if parts[0].cut_lo and parts[0].cut_hi else 1

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
        """The longest run of trunk slices, slices that cannot tell bridged; None without one
        (a run of cut slices alone is no trunk)."""
        kinds = np.array([self._trunk_kind(k) for k in range(len(self.parts))])
        runs = [(a, b) for a, b in self._runs(kinds != 0) if np.any(kinds[a:b + 1] == 1)]
        if not runs:
            return None
        a, b = max(runs, key=lambda r: int(np.sum(kinds[r[0]:r[1] + 1] == 1)))
        genuine = np.flatnonzero(kinds[a:b + 1] == 1) + a
        return int(genuine[0]), int(genuine[-1])

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
            if main is None:
                interior[i] = False
            else:
                interior[i, :, :main.col_lo] = False
                interior[i, :, main.col_hi:] = False
        if interior.sum() < 100:
            return
        values = ndimage.gaussian_filter(self.suv[lo:hi + 1],
                                         (0, PROFILE_SIGMA_MM / sy, PROFILE_SIGMA_MM / sx))
        median = float(np.median(values[interior]))
        self.median = median
        assert self.mid_x is not None and self.half is not None
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
        """4-connectivity within an axial slice, none across slices."""
        s = np.zeros((3, 3, 3), bool)
        s[1] = ndimage.generate_binary_structure(2, 1)
        return s

    @staticmethod
    def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
        """First and last index of each run of True."""
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
        """The body part holding the voxel, or the nearest one within NEAR_MM in its slice."""
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
        """The body region of the voxel ``index`` (z, y, x) of the oriented PET."""
        k, _, i = index
        part = self._part_of(index)
        if part is None:
            if self.labels[index]:
                return BodyRegion("unknown", "The point lies in a small detached piece of the "
                                             "body outline.")
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
            return BodyRegion("upper_limb", "The point lies in the trunk's slice but beyond its "
                                            "usual width (a shoulder or an arm against it).")
        z = k * self.sz
        if z < (lo * self.sz + LOW_TRUNK_MM) and abs(x - self.mid_x) > MIDLINE_MM:
            floor = self._bladder_floor()
            if floor is not None and z < floor - PERINEUM_MM:
                return BodyRegion("lower_limb", "The point lies off the midline well below the "
                                                "bladder, where the thighs join the trunk.")
        if self.diaphragm is not None:
            near = self._near_diaphragm(index) if (
                self.diaphragm - BAND_MM[0] <= z <= self.diaphragm + BAND_MM[1]) else None
            if near is not None:
                return near
            if z > self.diaphragm:
                return BodyRegion("thorax", f"The point lies in the trunk above the diaphragm "
                                            f"({self.diaphragm_by}).")
            return BodyRegion("abdomen_pelvis", f"The point lies in the trunk below the diaphragm "
                                                f"({self.diaphragm_by}).")
        floor = self._bladder_floor() if z < (lo * self.sz + LOW_TRUNK_MM) else None
        if floor is not None and z <= floor + PELVIS_HEIGHT_MM:
            return BodyRegion("abdomen_pelvis", "The point lies in the trunk at the bladder's "
                                                "level (no liver or lungs show the diaphragm).")
        return BodyRegion("unknown", "The point lies in the trunk, but neither the liver nor the "
                                     "lungs show where the diaphragm is.")

    def _near_diaphragm(self, index: tuple[int, int, int]) -> Optional[BodyRegion]:
        """Close to the diaphragm's level (it is a dome, lower on the left and at the back): in
        the heart's uptake is thorax; otherwise the ring around the point decides: mostly lung
        is thorax, mostly liver is abdomen. None when neither shows."""
        k, j, i = index
        sx, sy, _ = self.body.spacing
        depth = ndimage.distance_transform_edt(self.body.mask[k], sampling=(sy, sx))[j, i]
        heart = self._heart() if depth >= HEART_DEPTH_MM else None
        if heart is not None and heart[k, j, i]:
            return BodyRegion("thorax", "The point lies near the diaphragm's level, in the "
                                        "heart's uptake.")
        values = ndimage.gaussian_filter(self.suv[k],
                                         (PROFILE_SIGMA_MM / sy, PROFILE_SIGMA_MM / sx))
        yy, xx = np.ogrid[:values.shape[0], :values.shape[1]]
        distance = np.hypot((yy - j) * sy, (xx - i) * sx)
        ring = (distance >= RING_MM[0]) & (distance <= RING_MM[1]) & self.body.mask[k]
        if not ring.any():
            return None
        lung = float(np.mean(values[ring] < LUNG_LEVEL * self.median))
        liver = float(np.mean(values[ring] > LIVER_LEVEL * self.median))
        if lung >= RING_FRACTION and lung > liver:
            return BodyRegion("thorax", "The point lies near the diaphragm's level, surrounded "
                                        "mostly by lung.")
        if liver >= RING_FRACTION and liver > lung:
            return BodyRegion("abdomen_pelvis", "The point lies near the diaphragm's level, "
                                                "surrounded mostly by liver-like uptake.")
        return None

    def _placed(self, lo: int, hi: int, body: Optional[Body] = None) -> list[Placed]:
        """FDG-avid regions (``find_regions`` at the search's threshold, 2 mm smoothing) in
        slices lo..hi-1, placed in ``body`` (default: the body outline)."""
        body = body or self.body
        lo, hi = max(0, lo), min(self.suv.shape[0], hi)
        within = (slice(lo, hi), slice(0, self.suv.shape[1]), slice(0, self.suv.shape[2]))
        smoothed = np.zeros(self.suv.shape, np.float32)
        smoothed[within] = smooth(self.suv[within], body.spacing)
        regions = find_regions(smoothed, body.mask, uptake_threshold(body.background_suv),
                               np.asarray(body.spacing[::-1], float), within=within)
        return [Placed.of(r, body) for r in regions]

    def _heart(self) -> Optional[np.ndarray]:
        """Mask (z, y, x) of the heart's uptake near the diaphragm (``organ_rules.heart``), or
        None."""
        if not hasattr(self, "_heart_mask"):
            d = self.diaphragm or 0.0
            placed = self._placed(int((d - BAND_MM[0]) / self.sz), int((d + 150.0) / self.sz) + 1)
            found = rules.heart(placed, Landmarks(), self.body)
            mask = None
            if found:
                mask = np.zeros(self.suv.shape, bool)
                for p in found:
                    mask[p.region.box] |= p.region.mask
            self._heart_mask = mask
        return self._heart_mask

    def _bladder_floor(self) -> Optional[float]:
        """Height (frame mm) of the bladder's lowest voxel (``organ_rules.bladder``, the body
        taken from the trunk's lower end up), or None."""
        if not hasattr(self, "_floor"):
            lo = self.trunk[0]  # type: ignore[index]
            # rules.bladder without other organs looks in the lowest 40 % of the body's height:
            # make that the trunk's lowest LOW_TRUNK_MM
            trunk_up = dataclasses.replace(self.body, bottom=lo,
                                           top=lo + int(round(LOW_TRUNK_MM / 0.4 / self.sz)))
            placed = self._placed(lo, lo + int(LOW_TRUNK_MM / self.sz) + 1, trunk_up)
            found = rules.bladder(placed, Landmarks(), trunk_up,
                                  uptake_threshold(self.body.background_suv))
            self._floor = found[0].bottom if found else None
        return self._floor

    def _without_trunk(self, k: int, part: _Part, parts: list[_Part]) -> BodyRegion:
        """No trunk in the field of view: the legs, the head, or unknown and why."""
        legs = self._legs(parts, LEG_MIN_CM2)
        if legs is not None and part in legs:
            return BodyRegion("lower_limb", "Two body parts of similar size lie side by side "
                                            "and no trunk is in the field of view: the legs.")
        if part.width < HEAD_WIDTH_MM and self._under_brain(part):
            return BodyRegion("head_neck", "The point lies in a narrow part below the brain's "
                                           "uptake at the cranial end of the body.")
        if any(p.cut_lo for p in parts) and any(p.cut_hi for p in parts):
            return BodyRegion("unknown", "The field of view cuts the body at the point's level "
                                         "(it reaches both sides of the field of view).")
        own = self.labels[k] == part.label
        if own[0].any() or own[-1].any() or own[:, 0].any() or own[:, -1].any():
            return BodyRegion("unknown", "The field of view cuts the body part holding the point "
                                         "at its level, and shows no trunk, legs or brain.")
        return BodyRegion("unknown", "A single body part with no trunk, legs or brain in the "
                                     "field of view to tell which it is.")

    def _under_brain(self, part: _Part) -> bool:
        """Whether the brain's uptake (``organ_rules.brain``) lies at the body's cranial end, above
        this part; only when the body ends inside the field of view."""
        body = self.body
        if body.top >= body.mask.shape[0] - 2:
            return False          # the body goes on beyond the field of view: no vertex in it
        placed = self._placed(body.top - int(round(BRAIN_SLAB_MM / self.sz)), body.top + 1)
        found = rules.brain(placed, body)
        return any(part.x_lo <= p.region.centroid_mm[2] <= part.x_hi for p in found)

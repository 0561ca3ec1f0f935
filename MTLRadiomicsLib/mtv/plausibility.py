"""Is this MTV a lesion the scores can rest on? Checks that turn silent failures into warnings.

An MTV is *invalid* for scoring when it is empty, below the scanner's resolution, hardly FDG-avid,
when it had to stop growing at the size limit (it leaked beyond one lesion), or when it lies away
from the point it was grown from: there is then no plausible lesion and the outcome scores are
withheld. It earns a *caution* (scores shown with the warning) when it reaches the end of the scan,
is huge, or is much hotter than the tissue at the point. A point that does not lie in FDG-avid
tissue gets its own warning (a coordinate in the wrong system often lands in such tissue).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

FAR_FROM_SEED_MM = 10.0       # farther than this from the point: the MTV is not the point's lesion
OFF_SEED_NOTE_MM = 3.0        # closer than FAR, but not on the point: a note
TINY_ML = 0.5                 # below the scanner's resolution (about 8 mm FWHM)
HUGE_ML = 3000.0              # beyond any lesion in the real cohorts (largest 2.3 l)
LOW_SUVMAX = 2.0              # hardly FDG-avid
HOTTER_FACTOR = 4.0           # an MTV whose SUVmax exceeds the lesion at the point this many times
                              # may have joined another, hotter structure (bladder, heart, another
                              # lesion) - or the point lies in a cold necrotic core: a caution
POINT_RADIUS_MM = 10.0        # "the lesion at the point": its hottest voxel within this distance
AVID_POINT_SUV = 2.5          # a point whose neighbourhood stays below this is not in FDG-avid tissue


@dataclass
class MtvCheck:
    """Outcome of the checks. ``valid``: the scores may rest on this MTV; ``flags``: short codes
    (empty, far_from_point, joined_hotter, reached_limit, cut_at_scan_end, tiny, huge, low_uptake); ``warnings``:
    one sentence each for the physician."""

    valid: bool
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)      # the warnings that withhold the scores

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def withheld_reason(self) -> str:
        """Why the scores are withheld ('' when they are not)."""
        return "" if self.valid else self.reasons[0]


def distance_to_mask_mm(mask: np.ndarray, seed_zyx: tuple[int, int, int], spacing_zyx: np.ndarray) -> float:
    """Distance (mm) from the seed voxel's centre to the nearest voxel centre of a non-empty mask."""
    if mask[tuple(seed_zyx)]:
        return 0.0
    where = np.argwhere(mask)
    return float(np.min(np.linalg.norm((where - np.asarray(seed_zyx)) * np.asarray(spacing_zyx), axis=1)))


def check_mtv(mask: np.ndarray, suv: np.ndarray, spacing_xyz: tuple[float, float, float],
              seed_zyx: tuple[int, int, int], method_label: str, cut_at_scan_end: Optional[list[str]] = None,
              reached_limit: Optional[list[str]] = None) -> MtvCheck:
    """Check the MTV (uint8/bool (z, y, x) on the PET grid) grown from ``seed_zyx`` by ``method_label``."""
    check = MtvCheck(valid=True)

    def flag(code: str, text: str, invalid: bool) -> None:
        check.flags.append(code)
        check.warnings.append(text)
        if invalid:
            check.valid = False
            check.reasons.append(text)

    inside = np.asarray(mask) > 0
    if not inside.any():
        flag("empty", f"the MTV ({method_label}) is empty: no tumour was found at this location, so the outcome "
                      "scores are withheld; check the location, choose another MTV method, or draw the MTV and "
                      "use rescore", True)
        return check
    spacing_zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    distance = distance_to_mask_mm(inside, seed_zyx, spacing_zyx)
    if distance > FAR_FROM_SEED_MM:
        flag("far_from_point", f"the MTV ({method_label}) lies {distance:.0f} mm from the point it was grown from: "
                               "it is not the lesion at the point, so the outcome scores are withheld", True)
    elif distance > OFF_SEED_NOTE_MM:
        check.warnings.append(f"the point lies {distance:.0f} mm outside the MTV; the nearest lesion was taken")
    local_peak = _hottest_near(suv, seed_zyx, spacing_zyx)
    suv_max = float(suv[inside].max())
    if distance <= FAR_FROM_SEED_MM and local_peak > 0 and suv_max > HOTTER_FACTOR * local_peak:
        flag("joined_hotter", f"the MTV ({method_label}) reaches SUV {suv_max:.1f}, far hotter than the tissue at the "
                              f"point (SUV {local_peak:.1f} within {POINT_RADIUS_MM:g} mm): check that it holds one "
                              "lesion only and not a neighbouring hot organ; a box around the lesion keeps it apart",
             False)
    if reached_limit:
        flag("reached_limit", f"the MTV ({method_label}) kept growing to the size limit on the "
                              f"{', '.join(reached_limit)} side: it has leaked beyond a single lesion, so the "
                              "outcome scores are withheld; give a box around the lesion or draw the MTV", True)
    if cut_at_scan_end:
        flag("cut_at_scan_end", f"the MTV reaches the {', '.join(cut_at_scan_end)} end of the scan: the tumour may "
                                "continue beyond it, so MTV and TLG are lower bounds", False)
    volume_ml = float(inside.sum()) * float(np.prod(spacing_xyz)) / 1000.0
    if volume_ml < TINY_ML:
        flag("tiny", f"the MTV ({method_label}) is very small ({volume_ml:.2f} ml, below the scanner's "
                     "resolution): no lesion the scores can rest on, so they are withheld; check the location", True)
    elif volume_ml > HUGE_ML:
        flag("huge", f"the MTV is very large ({volume_ml:.0f} ml): check that it holds one lesion only", False)
    if suv_max < LOW_SUVMAX:
        flag("low_uptake", f"the MTV ({method_label}) is hardly FDG-avid (SUVmax {suv_max:.2f}): no lesion the "
                           "scores can rest on, so they are withheld; check that the point lies in the lesion", True)
    return check


def _hottest_near(suv: np.ndarray, seed_zyx: tuple[int, int, int], spacing_zyx: np.ndarray) -> float:
    """The highest SUV within ``POINT_RADIUS_MM`` of the seed voxel."""
    from MTLRadiomicsLib.mtv.components import voxels_within

    box, sphere = voxels_within(suv.shape, seed_zyx, spacing_zyx, POINT_RADIUS_MM)
    return float(np.max(np.where(sphere, suv[box], -np.inf)))


def point_avidity_warning(suv: np.ndarray, seed_zyx: tuple[int, int, int], spacing_xyz: tuple[float, float, float],
                          system: str = "RAS") -> str:
    """A warning ('' if none) when the given point does not lie in FDG-avid tissue: every voxel within
    ``POINT_RADIUS_MM`` stays below ``AVID_POINT_SUV``."""
    spacing_zyx = np.asarray(spacing_xyz, dtype=float)[::-1]
    peak = _hottest_near(np.asarray(suv), tuple(int(v) for v in seed_zyx), spacing_zyx)
    if peak >= AVID_POINT_SUV:
        return ""
    other = "LPS (add --lps)" if system.upper() == "RAS" else "RAS (drop --lps)"
    return (f"the point does not lie in FDG-avid tissue (SUV {float(suv[tuple(seed_zyx)]):.2f} at the point, at most "
            f"{peak:.2f} within {POINT_RADIUS_MM:g} mm): check the coordinates; they were read as "
            f"{system.upper()}, and a point given in {other} lands elsewhere")

"""find_candidates: the whole search, from a PET volume to ranked lesion candidates."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from MTLRadiomicsLib.errors import LocalisationError
from MTLRadiomicsLib.localisation.body import SMOOTHING_SIGMA_MM, find_body, smooth
from MTLRadiomicsLib.localisation.geometry import OrientedPet, Point
from MTLRadiomicsLib.localisation.physiology import ORGANS, recognise
from MTLRadiomicsLib.localisation.ranking import features, score
from MTLRadiomicsLib.localisation.regions import Region, find_regions
from MTLRadiomicsLib.localisation.results import CandidateSearch, ExcludedRegion, LesionCandidate
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MIN_THRESHOLD_SUV = 2.5        # the uptake threshold is never below this
BACKGROUND_FACTOR = 3.5        # ... nor below this multiple of the body's median SUV


def uptake_threshold(background_suv: float) -> float:
    return max(MIN_THRESHOLD_SUV, BACKGROUND_FACTOR * background_suv)


def find_candidates(pet: PetVolume, exclude: Sequence[str] = ORGANS,
                    max_candidates: int = 10) -> CandidateSearch:
    """Ranked FDG-avid lesion candidates in a (whole-body or cropped) PET.

    Args:
        pet: the PET in SUV; any direction matrix.
        exclude: physiological uptake to recognise and leave out: any of 'brain', 'bladder',
            'heart', 'kidney'.
        max_candidates: at most this many candidates are returned.
    Raises:
        LocalisationError: no FDG-avid candidate was found.
    """
    if isinstance(exclude, str):
        exclude = (exclude,)
    unknown = sorted(set(exclude) - set(ORGANS))
    if unknown:
        raise ValueError(f"exclude may name {', '.join(ORGANS)}; not {', '.join(unknown)}")
    if max_candidates < 1:
        raise ValueError("max_candidates must be at least 1")
    oriented = OrientedPet.from_pet(pet)
    suv = np.nan_to_num(oriented.suv, nan=0.0, posinf=0.0, neginf=0.0)
    smoothed = smooth(suv, oriented.spacing)
    body = find_body(smoothed, oriented.spacing)
    threshold = uptake_threshold(body.background_suv)
    regions = find_regions(smoothed, body.mask, threshold, oriented.spacing_zyx)
    regions = recognise(regions, body, threshold, smoothed)

    left_out = set(exclude) | ({"ureter"} if "kidney" in exclude else set())
    kept = [r for r in regions if r.organ is None or r.organ not in left_out]
    scored = sorted(((score(features(r, smoothed, body), threshold), r) for r in kept),
                    key=lambda item: -item[0])
    candidates = [_candidate(rank, s, r, suv, oriented)
                  for rank, (s, r) in enumerate(scored[:max_candidates], start=1)]
    excluded = _excluded([r for r in regions if r.organ in left_out], suv, oriented)
    organs = [o for o in ORGANS if o in exclude]
    left = (f"with {', '.join(organs)} uptake recognised by position and size and left out"
            if organs else "with no physiological uptake left out")
    method = (f"Regions above SUV {threshold:.2f} (the larger of {MIN_THRESHOLD_SUV} and "
              f"{BACKGROUND_FACTOR:g} x the body's median SUV {body.background_suv:.2f}) after "
              f"{SMOOTHING_SIGMA_MM:g} mm Gaussian smoothing, {left}, ranked by contrast to the "
              f"surrounding tissue, SUVmax and size.")
    if not candidates:
        raise LocalisationError(
            f"no FDG-avid lesion candidate found (uptake threshold SUV {threshold:.2f}); "
            f"give the lesion with --point or --box")
    return CandidateSearch(candidates=candidates, excluded=excluded, threshold_suv=threshold,
                           method=method)


def _box_lps(lo_zyx: np.ndarray, hi_zyx: np.ndarray, oriented: OrientedPet) -> tuple[Point, Point]:
    """Physical box (voxel edges) of an index box, min and max corner in LPS."""
    corners = [oriented.to_physical((z, y, x))
               for z in (lo_zyx[0] - 0.5, hi_zyx[0] + 0.5)
               for y in (lo_zyx[1] - 0.5, hi_zyx[1] + 0.5)
               for x in (lo_zyx[2] - 0.5, hi_zyx[2] + 0.5)]
    array = np.asarray(corners)
    lo = tuple(float(v) for v in array.min(axis=0))
    hi = tuple(float(v) for v in array.max(axis=0))
    return lo, hi  # type: ignore[return-value]


def _centre(box: tuple[Point, Point]) -> Point:
    return tuple((a + b) / 2.0 for a, b in zip(*box))  # type: ignore[return-value]


def _peak(region: Region, suv: np.ndarray) -> tuple[float, tuple[int, int, int]]:
    """Unsmoothed SUVmax in the region and its array index."""
    values = np.where(region.mask, suv[region.box], -np.inf)
    local = np.unravel_index(int(np.argmax(values)), values.shape)
    index = tuple(int(l + s.start) for l, s in zip(local, region.box))
    return float(values[local]), index  # type: ignore[return-value]


def _candidate(rank: int, value: float, region: Region, suv: np.ndarray,
               oriented: OrientedPet) -> LesionCandidate:
    box = _box_lps(region.lo_index, region.hi_index, oriented)
    suv_max, peak = _peak(region, suv)
    return LesionCandidate(rank=rank, center_lps=_centre(box), peak_lps=oriented.to_physical(peak),
                           suv_max=suv_max, volume_ml=region.volume_ml, bbox_lps=box,
                           score=float(value))


def _excluded(regions: list[Region], suv: np.ndarray, oriented: OrientedPet
              ) -> list[ExcludedRegion]:
    """One entry per recognised organ region, its fragments included."""
    groups: dict[int, list[Region]] = {}
    for region in regions:
        main = region.organ_part_of or region
        groups.setdefault(id(main), []).append(region)
    out = []
    for members in groups.values():
        lo = np.min([m.lo_index for m in members], axis=0)
        hi = np.max([m.hi_index for m in members], axis=0)
        out.append(ExcludedRegion(organ=str(members[0].organ),
                                  center_lps=_centre(_box_lps(lo, hi, oriented)),
                                  suv_max=max(_peak(m, suv)[0] for m in members),
                                  volume_ml=sum(m.volume_ml for m in members)))
    order = {organ: i for i, organ in enumerate(("brain", "heart", "kidney", "ureter", "bladder"))}
    return sorted(out, key=lambda e: (order.get(e.organ, 9), -e.center_lps[2]))

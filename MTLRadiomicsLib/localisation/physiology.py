"""Recognise physiological FDG uptake (brain, kidneys, heart, bladder) among the avid regions.

The organs are looked for in this order, each using those already found (``organ_rules``): the
brain (cranial end), the kidneys (a posterior left/right pair), the bladder (hot midline region
low in the trunk, below the kidneys), a single kidney when no pair shows, urinary activity in the
ureters (between the kidneys and the bladder), and the heart (left anterior chest, above the
kidneys and the bladder). Smaller pieces next to a recognised organ go with it; a distinctly
hotter blob attached to the heart (a tumour touching it) is freed from it first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from MTLRadiomicsLib.localisation import organ_rules as rules
from MTLRadiomicsLib.localisation.body import Body
from MTLRadiomicsLib.localisation.organ_rules import Landmarks, Placed, free
from MTLRadiomicsLib.localisation.regions import (SPLIT_ABOVE_ML, Region, separate_hotter_part,
                                                  split_large)

ORGANS = ("brain", "bladder", "heart", "kidney")
# Urinary activity in a ureter is recognised too ("ureter"), and left out with the kidneys.
FRAGMENT_MARGIN_MM = 15.0      # smaller pieces this close to a recognised organ belong to it


def recognise(regions: Sequence[Region], body: Body, threshold: float,
              smoothed: np.ndarray) -> list[Region]:
    """Set ``region.organ`` on the regions recognised as physiological uptake. Very large regions
    other than the brain are split first (``split_large``); returns the final list of regions."""
    placed = [Placed.of(r, body) for r in regions]
    marks = Landmarks()
    found = rules.brain(placed, body)
    if found:
        marks.brain_bottom = min(p.bottom for p in found)
        _mark(found, placed, "brain", peak_limit=True, single=True)
    pieces: list[Region] = []
    for p in placed:
        if p.region.organ is None and p.volume > SPLIT_ABOVE_ML:
            pieces.extend(split_large(p.region, smoothed, body.mask))
        else:
            pieces.append(p.region)
    placed = [Placed.of(r, body) for r in pieces]
    marks.kidneys = rules.kidney_pair(placed, marks, body)
    found = rules.bladder(placed, marks, body, threshold)
    if found:
        marks.bladder = found[0]
        _mark(found, placed, "bladder", peak_limit=False)
    if not marks.kidneys:
        marks.kidneys = rules.single_kidney(placed, marks)
    if marks.kidneys:
        _mark(marks.kidneys, placed, "kidney", peak_limit=False)
        _mark(rules.ureters(placed, marks, threshold), placed, "ureter", peak_limit=True)
    found = rules.heart(placed, marks, body)
    if len(found) == 1:
        heart, hotter = separate_hotter_part(found[0].region, smoothed, body.mask)
        if hotter:          # the heart without the blob; the blob stays a candidate
            old = found[0]
            pieces = [r for r in pieces if r is not old.region] + [heart] + hotter
            found = [Placed.of(heart, body)]
            placed = ([p for p in placed if p is not old] + found
                      + [Placed.of(r, body) for r in hotter])
    _mark(found, placed, "heart", peak_limit=True, single=True)
    return pieces


def _mark(found: list[Placed], placed: Sequence[Placed], organ: str, peak_limit: bool,
          single: bool = False) -> None:
    """Label the organ's regions, and the smaller pieces inside its box (plus a margin) that are
    not hotter than it (``peak_limit``) as fragments of the same organ. ``single``: the regions
    are parts of one organ (reported as one), not several (the two kidneys)."""
    if not found:
        return
    if single:
        main = max(found, key=lambda p: p.volume)
        found = [main] + [p for p in found if p is not main]
    spacing = found[0].region.spacing_zyx
    lo = np.min([p.region.lo_index for p in found], axis=0) * spacing - FRAGMENT_MARGIN_MM
    hi = np.max([p.region.hi_index for p in found], axis=0) * spacing + FRAGMENT_MARGIN_MM
    peak = max(p.peak for p in found)
    largest = max(p.volume for p in found)
    for p in found:
        p.region.organ = organ
        p.region.organ_part_of = found[0].region if single else p.region
    for p in free(placed):
        c = p.region.centroid_mm
        inside = (np.all(p.region.lo_index * spacing >= lo)
                  and np.all(p.region.hi_index * spacing <= hi))
        if inside and p.volume <= 0.5 * largest and (not peak_limit or p.peak <= peak):
            p.region.organ = organ
            nearest = min(found, key=lambda f: float(np.linalg.norm(f.region.centroid_mm - c)))
            p.region.organ_part_of = nearest.region.organ_part_of



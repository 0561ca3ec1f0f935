"""Every MTV of one lesion side by side, the chosen one, and its plausibility.

From a seed point each classical MTV (fractions of SUVmax, SUV 2.5, the liver-referenced PERCIST
threshold) and the network's MTV (sliding windows over a growing region) are grown; the chosen
method's MTV is the one the scores use, the others are references for the physician. The network's
windows start from the lesion's own anchor, its hottest voxel (the hottest of the SUV >= 2.5 region
of the click within ``ANCHOR_RADIUS_MM``), not from the click: every click inside a lesion then gives
the same MTV, and so the same scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.mtv.classical import CLASSICAL_METHODS, fill_enclosed, segment_all
from MTLRadiomicsLib.mtv.liver import LiverReference, find_liver_reference
from MTLRadiomicsLib.mtv.methods import MTV_METHODS, NETWORK  # noqa: F401  (re-exported)
from MTLRadiomicsLib.mtv.network_mtv import AXIS_NAMES, NetworkMtv, segment_network_mtv
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
from MTLRadiomicsLib.mtv.plausibility import MtvCheck, check_mtv
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

ANCHOR_RADIUS_MM = 60.0       # the lesion's anchor is looked for this far from the click


@dataclass
class LesionMtvs:
    """The lesion's MTVs. ``masks``: method -> uint8 (z, y, x) on the PET grid for every method that
    could run; ``table``: method -> JSON-friendly facts and metrics; ``chosen``: the scored method."""

    chosen: str
    seed_zyx: tuple[int, int, int]
    masks: dict[str, np.ndarray]
    table: dict[str, dict]
    check: MtvCheck
    network: Optional[NetworkMtv] = None
    liver: Optional[LiverReference] = None
    liver_reason: str = ""
    fill_holes: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def mask(self) -> np.ndarray:
        return self.masks[self.chosen]


def seed_voxel(pet: PetVolume, seed_lps: Sequence[float]) -> tuple[int, int, int]:
    """The PET voxel (z, y, x) nearest to ``seed_lps`` (mm), clipped into the volume."""
    index = pet.physical_to_index(tuple(float(v) for v in seed_lps))
    return tuple(int(np.clip(i, 0, n - 1)) for i, n in zip(reversed(index), pet.shape))  # type: ignore[return-value]


def segment_lesion(pet: PetVolume, seed_lps: Sequence[float], method: str, network=None, card=None,
                   device: torch.device = torch.device("cpu"), fill_holes: bool = False,
                   within: Optional[np.ndarray] = None, threshold: float = 0.5,
                   progress: Optional[Callable[[str], None]] = None) -> LesionMtvs:
    """All MTVs of the lesion at ``seed_lps`` and the check of the one chosen by ``method``.

    ``network``/``card``: the loaded model (the network MTV needs a segmentation head); ``within``:
    bool (z, y, x), a region the MTVs must stay inside (a box the user drew)."""
    if method not in MTV_METHODS:
        raise MTLRadiomicsError(f"unknown MTV method {method!r}; choose from {', '.join(MTV_METHODS)}")
    has_network = network is not None and network.segmentation is not None
    if method == NETWORK and not has_network:
        raise MTLRadiomicsError("this model has no segmentation head: choose a classical --mtv-method "
                                f"({', '.join(CLASSICAL_METHODS)}) or give an MTV with 'rescore --mask'")
    seed = seed_voxel(pet, seed_lps)
    masks: dict[str, np.ndarray] = {}
    table: dict[str, dict] = {}
    spacing = tuple(float(s) for s in pet.spacing)

    if progress is not None:
        progress("classical MTVs (fractions of SUVmax, SUV 2.5, liver-referenced)")
    liver, liver_reason = find_liver_reference(pet)
    for name, result in segment_all(pet.suv, spacing, seed, fill_holes=fill_holes, liver=liver,
                                    within=within).items():
        table[name] = result.to_dict()
        if name == "percist" and liver is None:
            table[name]["reason"] = liver_reason or table[name]["reason"]
        if result.available:
            masks[name] = result.mask.astype(np.uint8)
    network_mtv = None
    if has_network:
        anchor = lesion_anchor(pet, seed, masks.get("suv2.5"))
        anchor_lps = seed_lps if anchor == seed else pet.index_to_physical(tuple(float(v) for v in anchor[::-1]))
        network_mtv = segment_network_mtv(network, card, pet, anchor_lps, device, threshold, progress)
        mask = network_mtv.mask > 0
        filled = 0
        if fill_holes:
            before = int(mask.sum())
            mask = fill_enclosed(mask)
            filled = int(mask.sum()) - before
        if within is not None:
            mask &= within
        masks[NETWORK] = mask.astype(np.uint8)
        table[NETWORK] = {"label": MTV_METHODS[NETWORK], "available": True, "reason": "",
                          "filled_voxels": filled, "anchor_voxel_zyx": list(anchor), **network_mtv.summary()}
    else:
        table[NETWORK] = {"label": MTV_METHODS[NETWORK], "available": False,
                          "reason": "the model has no segmentation head"}

    if method not in masks:
        raise MTLRadiomicsError(f"the MTV method {method!r} cannot be used on this scan: {table[method]['reason']}")

    for name, mask in masks.items():
        table[name]["metrics"] = compute_metrics(pet.suv, mask, spacing).to_dict()
    cut = network_mtv.cut_at_scan_end if method == NETWORK and network_mtv else _cut_faces(pet, masks[method])
    limit = network_mtv.reached_limit if method == NETWORK and network_mtv else []
    check = check_mtv(masks[method], pet.suv, spacing, seed, MTV_METHODS[method], cut, limit)
    reference = masks[method] > 0
    for name, mask in masks.items():
        table[name]["dice_with_chosen"] = _dice(mask > 0, reference)
    table = {name: table[name] for name in MTV_METHODS if name in table}
    masks = {name: masks[name] for name in MTV_METHODS if name in masks}
    return LesionMtvs(chosen=method, seed_zyx=seed, masks=masks, table=table, check=check, network=network_mtv,
                      liver=liver, liver_reason=liver_reason, fill_holes=fill_holes)


def lesion_anchor(pet: PetVolume, seed: tuple[int, int, int], region: Optional[np.ndarray]) -> tuple[int, int, int]:
    """The lesion's hottest voxel (z, y, x): the hottest of ``region`` (the SUV >= 2.5 region of the
    click) within ``ANCHOR_RADIUS_MM`` of ``seed``; the seed itself without a region."""
    if region is None or not np.asarray(region).any():
        return seed
    from MTLRadiomicsLib.mtv.components import voxels_within

    spacing_zyx = np.asarray(pet.spacing, dtype=float)[::-1]
    box, sphere = voxels_within(pet.shape, seed, spacing_zyx, ANCHOR_RADIUS_MM)
    near = sphere & (np.asarray(region)[box] > 0)
    if not near.any():
        return seed
    local = np.unravel_index(int(np.argmax(np.where(near, pet.suv[box], -np.inf))), near.shape)
    return tuple(int(v + b.start) for v, b in zip(local, box))  # type: ignore[return-value]


def face_name(pet: PetVolume, array_axis: int, high: bool) -> str:
    """Anatomical name of a face of the PET array: axis 0, 1, 2 = z, y, x; ``high``: the last index."""
    column = np.asarray(pet.direction, dtype=float).reshape(3, 3)[:, 2 - array_axis]
    lps = int(np.argmax(np.abs(column)))
    increasing = column[lps] > 0
    return AXIS_NAMES[lps][1 if increasing == high else 0]


def _cut_faces(pet: PetVolume, mask: np.ndarray) -> list[str]:
    """Anatomical faces of the scan that an MTV touches: the scan ends there."""
    faces = []
    for axis in range(3):
        if np.take(mask, 0, axis=axis).any():
            faces.append(face_name(pet, axis, False))
        if np.take(mask, mask.shape[axis] - 1, axis=axis).any():
            faces.append(face_name(pet, axis, True))
    return faces


def _dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    total = int(a.sum()) + int(b.sum())
    return None if total == 0 else round(2.0 * float((a & b).sum()) / total, 4)

"""The engine's whole-lesion MTV on held-out cases, measured against their reference masks.

For each case the seed is the hottest voxel of the reference mask (a physician clicking on the
tumour's hottest point); the network MTV comes from the engine's own path (sliding windows over a
growing region, put back on the PET grid) and is compared on the PET grid: Dice, volumes, and
whether it was empty or cut.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.model.model_file import LoadedModel
from MTLRadiomicsLib.mtv.network_mtv import segment_network_mtv
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from training.manifest import CaseRecord


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two bool masks; 1 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float((a & b).sum()) / total


def hottest_seed(pet: PetVolume, reference: np.ndarray) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """The hottest voxel of the reference mask: (z, y, x) index and LPS position (mm)."""
    flat = int(np.argmax(np.where(reference > 0, pet.suv, -np.inf)))
    k, j, i = (int(v) for v in np.unravel_index(flat, pet.shape))
    return (k, j, i), pet.index_to_physical((float(i), float(j), float(k)))


def load_case(record: CaseRecord) -> tuple[PetVolume, np.ndarray]:
    pet = load_pet(record.pet)
    return pet, load_mask(record.mask, pet) > 0


def evaluate_network_mtv(model: LoadedModel, records: Sequence[CaseRecord], device: torch.device = torch.device("cpu"),
                         log: Optional[Callable[[str], None]] = None) -> list[dict]:
    """One row per case with a mask: case_id, dice, mtv_ml, reference_ml, empty, cut, iterations."""
    rows = []
    for record in records:
        if not record.mask:
            continue
        pet, reference = load_case(record)
        _, seed_lps = hottest_seed(pet, reference)
        result = segment_network_mtv(model.network, model.card, pet, seed_lps, device)
        mask = result.mask > 0
        row = {"case_id": record.case_id, "dice": dice(mask, reference),
               "mtv_ml": float(mask.sum()) * pet.voxel_volume_ml,
               "reference_ml": float(reference.sum()) * pet.voxel_volume_ml,
               "empty": not mask.any(), "cut_at_scan_end": ",".join(result.cut_at_scan_end),
               "reached_limit": ",".join(result.reached_limit), "iterations": result.iterations}
        rows.append(row)
        if log is not None:
            log(f"  {record.case_id}: Dice {row['dice']:.3f}, MTV {row['mtv_ml']:.0f} ml "
                f"(reference {row['reference_ml']:.0f} ml)")
    return rows

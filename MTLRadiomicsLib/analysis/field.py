"""Where the network's fixed field goes: on the MTV's bulk, not on the click or a stray voxel.

The outcome and pathology heads see a fixed field (the model card's crop) around the lesion. It is
centred on the bounding box of the MTV's largest 26-connected part, so that every click inside one
lesion gives the same field, and a stray voxel or a small extra label far away cannot drag it
(the bounding box of the whole mask would move half the stray's distance). The other parts stay in
the mask the heads see where the field covers them; how much lay elsewhere is said in a note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.model.preprocessing import mask_center_lps
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


@dataclass
class FieldPlacement:
    """``center_lps``: the field's centre (mm); ``parts``: connected parts of the mask; ``other_ml``:
    the volume of every part but the largest; ``note``: one sentence when other parts exist."""

    center_lps: tuple[float, float, float]
    parts: int
    bulk_ml: float
    other_ml: float
    note: str = ""


def place_field(mask: np.ndarray, pet: PetVolume) -> FieldPlacement:
    """The field for a non-empty mask (z, y, x) on the PET grid (raises ValueError when empty)."""
    inside = np.asarray(mask) > 0
    labels, parts = ndimage.label(inside, structure=CONNECTIVITY)
    if parts == 0:
        raise ValueError("the mask is empty")
    sizes = np.bincount(labels.ravel())[1:]
    bulk = labels == int(np.argmax(sizes)) + 1
    voxel_ml = float(np.prod(pet.spacing)) / 1000.0
    bulk_ml = float(sizes.max()) * voxel_ml
    other_ml = float(sizes.sum() - sizes.max()) * voxel_ml
    center = tuple(float(v) for v in mask_center_lps(bulk, pet.to_sitk()))
    note = ""
    if parts > 1:
        note = (f"the network's field is centred on the MTV's largest part ({bulk_ml:.1f} ml); {parts - 1} other "
                f"part(s) ({other_ml:.2f} ml) did not move it and count in the scores only where the field "
                "covers them")
    return FieldPlacement(center_lps=center, parts=int(parts), bulk_ml=round(bulk_ml, 3),
                          other_ml=round(other_ml, 3), note=note)

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
import SimpleITK as sitk
from scipy import ndimage

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
    """The field for a non-empty mask (z, y, x) on the PET grid (raises ValueError when empty). The
    parts are found in the box that holds the mask (their order, and so the choice between parts of
    one size, is the whole grid's: both scan z, then y, then x)."""
    inside = np.asarray(mask) > 0
    spans = [np.flatnonzero(inside.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    if any(span.size == 0 for span in spans):
        raise ValueError("the mask is empty")
    offset = np.array([span[0] for span in spans])
    box = inside[tuple(slice(span[0], span[-1] + 1) for span in spans)]
    labels, parts = ndimage.label(box, structure=CONNECTIVITY)
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    voxel_ml = float(np.prod(pet.spacing)) / 1000.0
    bulk_ml = float(sizes.max()) * voxel_ml
    other_ml = float(sizes.sum() - sizes.max()) * voxel_ml
    (bulk_box,) = ndimage.find_objects((labels == largest).astype(np.int8))
    center_zyx = offset + np.array([(b.start + b.stop - 1) / 2.0 for b in bulk_box])
    center = _physical(pet, center_zyx)
    note = ""
    if parts > 1:
        note = (f"the network's field is centred on the MTV's largest part ({bulk_ml:.1f} ml); {parts - 1} other "
                f"part(s) ({other_ml:.2f} ml) did not move it and count in the scores only where the field "
                "covers them")
    return FieldPlacement(center_lps=center, parts=int(parts), bulk_ml=round(bulk_ml, 3),
                          other_ml=round(other_ml, 3), note=note)


def _physical(pet: PetVolume, index_zyx: np.ndarray) -> tuple[float, float, float]:
    """LPS mm of a (fractional) voxel index (z, y, x), as SimpleITK maps it on the PET's grid."""
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetSpacing(pet.spacing)
    grid.SetOrigin(pet.origin)
    grid.SetDirection(pet.direction)
    return tuple(float(v) for v in grid.TransformContinuousIndexToPhysicalPoint(
        [float(c) for c in index_zyx[::-1]]))  # type: ignore[return-value]

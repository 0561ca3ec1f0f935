"""Read a DICOM SEG onto the PET DICOM series it references, also when it covers only some slices."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.mask_choice import choose_segment
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MAX_DETAIL = 120     # characters of a library's error message kept in ours


def capped(text: object, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line, cut to ``limit`` characters (libraries may list thousands of UIDs)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def read_seg(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """One segment of the SEG as a uint8 mask on the PET grid: ``segment`` (its label or number), or
    the only non-empty one; several are refused, listing them with their voxel counts.

    Slices of the PET series the SEG does not reference are background. A SEG that references
    instances outside this series is refused, naming how many and the first one.
    """
    import highdicom as hd

    if not pet.dicom_files:
        raise MaskInputError(f"{path.name}: a DICOM SEG can only be read onto the PET DICOM series "
                             "it references; load the PET from that DICOM folder")
    try:
        seg = hd.seg.segread(str(path))
    except Exception as error:  # highdicom raises several types for malformed objects
        raise MaskInputError(f"{path.name}: not a readable DICOM SEG ({capped(error)})") from None
    numbers = list(seg.get_segment_numbers())
    if not numbers:
        raise MaskInputError(f"{path.name} holds no segments")
    headers = (pet.dicom_headers if len(pet.dicom_headers) == len(pet.dicom_files)
               else [pydicom.dcmread(f, stop_before_pixels=True) for f in pet.dicom_files])
    uids = [str(h.SOPInstanceUID) for h in headers]
    covered = _covered_slices(path, seg, uids)
    try:
        pixels = seg.get_pixels_by_source_instance([uids[k] for k in covered], segment_numbers=numbers)
    except (ValueError, KeyError, RuntimeError, IndexError) as error:
        raise MaskInputError(f"{path.name}: cannot be placed on this PET series ({capped(error)})") from None
    pixels = np.asarray(pixels)
    if pixels.shape[1:3] != pet.shape[1:]:
        raise MaskInputError(f"{path.name}: SEG frames of {pixels.shape[2]} x {pixels.shape[1]} pixels do not "
                             f"match the PET slices of {pet.shape[2]} x {pet.shape[1]}")
    keys = _segment_keys(seg, numbers)
    found = {key: int(np.count_nonzero(pixels[..., i])) for i, key in enumerate(keys)}
    aliases = {str(number): key for number, key in zip(numbers, keys)}
    chosen = keys.index(choose_segment(found, segment, path.name, aliases=aliases))
    mask = np.zeros(pet.shape, np.uint8)
    mask[covered] = pixels[..., chosen] > 0
    return mask


def _segment_keys(seg, numbers: list[int]) -> list[str]:
    """Segment labels; a label that several segments share gets its number (``GTV#2``)."""
    labels = [str(seg.get_segment_description(n).segment_label) for n in numbers]
    return [label if labels.count(label) == 1 else f"{label}#{n}" for label, n in zip(labels, numbers)]


def _covered_slices(path: Path, seg, uids: list[str]) -> list[int]:
    """Indices of the PET slices the SEG references; refused when it references others too."""
    referenced = sorted({str(u[2]) for u in seg.get_source_image_uids()})
    if not referenced:
        raise MaskInputError(f"{path.name} references no source images, so it cannot be placed on the PET")
    in_series = set(uids)
    outside = [u for u in referenced if u not in in_series]
    if len(outside) == len(referenced):
        raise MaskInputError(f"{path.name} segments another series, not this PET "
                             f"({len(outside)} referenced instances, none in this series)")
    if outside:
        raise MaskInputError(f"{path.name}: {len(outside)} referenced instances are not in this PET series "
                             f"(first: {capped(outside[0], 64)}); read the PET series the SEG was made on")
    wanted = set(referenced)
    return [k for k, uid in enumerate(uids) if uid in wanted]

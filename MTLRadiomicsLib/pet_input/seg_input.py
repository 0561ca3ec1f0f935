"""Read a DICOM SEG onto the PET DICOM series it references, also when it covers only some slices."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MAX_DETAIL = 120     # characters of a library's error message kept in ours


def capped(text: object, limit: int = MAX_DETAIL) -> str:
    """``text`` on one line, cut to ``limit`` characters (libraries may list thousands of UIDs)."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def read_seg(path: Path, pet: PetVolume, label: Optional[str]) -> np.ndarray:
    """Union of the SEG's segments (or the one labelled ``label``) as a uint8 mask on the PET grid.

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
    numbers = seg.get_segment_numbers(segment_label=label) if label else seg.get_segment_numbers()
    if not numbers:
        labels = [str(d.SegmentLabel) for d in seg.SegmentSequence]
        raise MaskInputError(f"{path.name}: no segment labelled {label!r}; it holds {', '.join(labels)}")
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in pet.dicom_files]
    covered = _covered_slices(path, seg, uids)
    try:
        pixels = seg.get_pixels_by_source_instance([uids[k] for k in covered], segment_numbers=numbers,
                                                   combine_segments=True, relabel=True)
    except (ValueError, KeyError, RuntimeError, IndexError) as error:
        raise MaskInputError(f"{path.name}: cannot be placed on this PET series ({capped(error)})") from None
    pixels = np.asarray(pixels)
    if pixels.shape[1:] != pet.shape[1:]:
        raise MaskInputError(f"{path.name}: SEG frames of {pixels.shape[2]} x {pixels.shape[1]} pixels do not "
                             f"match the PET slices of {pet.shape[2]} x {pet.shape[1]}")
    mask = np.zeros(pet.shape, np.uint8)
    mask[covered] = pixels > 0
    return mask


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

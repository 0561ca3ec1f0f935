"""Refuse what is not a tumour mask: a PET, CT or probability image given as a mask, a label map with
too many labels, or a "mask" covering an implausible part of the scan."""

from __future__ import annotations

import numpy as np

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MAX_LABELS = 20              # distinct non-zero values of a label map
MAX_MASK_FRACTION = 0.5      # of the PET's voxels
MAX_MASK_ML = 5000.0         # no tumour volume is larger


def check_mask_values(values: np.ndarray, where: str) -> None:
    """Values of a mask image: finite, not negative, integers (0/1 or label values)."""
    finite = np.isfinite(values)
    if not finite.all():
        raise MaskInputError(f"{where}: holds NaN or infinite values: not a mask")
    low, high = float(values.min()), float(values.max())
    if low < 0:
        raise MaskInputError(f"{where}: holds negative values (minimum {low:g}, maximum {high:g}): not a mask "
                             "(a CT or PET image?); a mask holds 0/1 or label values")
    if np.issubdtype(values.dtype, np.floating):
        fractional = values != np.round(values)
        if fractional.any():
            example = float(values[fractional].flat[0])
            raise MaskInputError(
                f"{where}: holds non-integer values (e.g. {example:.4g}; {fractional.mean():.0%} of the voxels, "
                f"from {low:.4g} to {high:.4g}): not a mask (a PET or probability map?); a mask holds 0/1 "
                "or label values: threshold it first")


def check_label_count(labels: np.ndarray, where: str) -> None:
    """At most MAX_LABELS distinct non-zero values."""
    if labels.size > MAX_LABELS:
        raise MaskInputError(f"{where}: holds {labels.size} distinct values besides 0 (from {float(labels.min()):g} "
                             f"to {float(labels.max()):g}): not a binary mask or a label map "
                             f"(at most {MAX_LABELS} labels)")


def check_mask_extent(mask: np.ndarray, pet: PetVolume, where: str) -> None:
    """A tumour mask on the PET grid covers at most half the scan and at most MAX_MASK_ML."""
    voxels = int(np.count_nonzero(mask))
    fraction = voxels / mask.size
    volume_ml = voxels * float(np.prod(pet.spacing)) / 1000.0
    if fraction > MAX_MASK_FRACTION or volume_ml > MAX_MASK_ML:
        raise MaskInputError(
            f"{where}: the mask covers {fraction:.0%} of the PET volume ({volume_ml:.0f} ml): not a tumour mask "
            f"(a body outline or an image?); at most {MAX_MASK_FRACTION:.0%} and {MAX_MASK_ML:.0f} ml are accepted")

"""Ground-truth metabolic tumour volume: the 40 % SUVmax threshold region of the primary tumour."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MTV_FRACTION = 0.4
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected components


def threshold_mtv(suv: np.ndarray, primary_signal: np.ndarray, lesion_signal: np.ndarray,
                  fraction: float = MTV_FRACTION) -> tuple[np.ndarray, float]:
    """The 40 % SUVmax region of a tumour, restricted to the tumour's own signal.

    All arrays share one shape (z, y, x), a sub-volume around the lesion.

    Args:
        suv: the final PET image (SUV).
        primary_signal: the blurred, noise-free image of the primary tumour alone (SUV).
        lesion_signal: the same for the primary with its satellites and nodes.
        fraction: threshold as a fraction of the lesion SUVmax.
    Returns:
        (mask, suvmax): the voxels >= fraction x SUVmax that belong to connected components
        touching the primary tumour's core, and the SUVmax of the primary (max SUV in its core,
        where its own signal is at least half its maximum). Voxels count only where the lesion's
        own signal reaches half the threshold, so neighbouring hot organs (heart, blood pool) are
        not swallowed by a low threshold.
    """
    core = primary_signal >= 0.5 * float(primary_signal.max())
    suvmax = float(suv[core].max())
    threshold = fraction * suvmax
    candidate = (suv >= threshold) & (lesion_signal >= 0.5 * threshold)
    labels, _ = ndimage.label(candidate, structure=CONNECTIVITY)
    keep = np.unique(labels[core & candidate])
    keep = keep[keep > 0]
    return np.isin(labels, keep), suvmax

"""The body in a PET: light smoothing, the body outline and its per-slice frame, the background.

All lengths are mm in the frame of the LPS-oriented array: x = column * spacing towards the
patient's Left, y = row * spacing towards Posterior, z = slice * spacing towards Superior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SMOOTHING_SIGMA_MM = 2.0      # light Gaussian smoothing before any threshold
BODY_FRACTION = 0.25          # body = smoothed SUV above this fraction of the typical tissue SUV
MIN_BODY_PART_ML = 20.0       # smaller disconnected pieces (noise, bed) are not body


def smooth(suv: np.ndarray, spacing_xyz: tuple[float, float, float],
           sigma_mm: float = SMOOTHING_SIGMA_MM) -> np.ndarray:
    """Gaussian smoothing with ``sigma_mm`` along each physical axis; float32 (z, y, x)."""
    sigma = [sigma_mm / s for s in spacing_xyz[::-1]]
    return ndimage.gaussian_filter(suv.astype(np.float32, copy=False), sigma, mode="nearest",
                                   truncate=3.0)


@dataclass
class Body:
    """The body outline and a per-axial-slice frame.

    Attributes:
        mask: bool (z, y, x), holes (lungs, bowel gas) filled slice by slice.
        background_suv: median smoothed SUV inside the body (mostly fat and muscle).
        mid_x, half_width: centre and half extent of the body along x, per slice (mm).
        front_y, back_y: anterior and posterior body surface, per slice (mm).
        top, bottom: the highest and lowest slice with body (indices).
    """

    mask: np.ndarray
    background_suv: float
    mid_x: np.ndarray
    half_width: np.ndarray
    front_y: np.ndarray
    back_y: np.ndarray
    top: int
    bottom: int
    spacing: tuple[float, float, float]

    def slice_at(self, z_mm: float) -> int:
        k = int(round(z_mm / self.spacing[2]))
        return int(np.clip(k, self.bottom, self.top))

    def relative_position(self, point_mm: np.ndarray) -> tuple[float, float]:
        """(x_rel, y_rel) of a frame point: x_rel is the offset from the body midline in body
        half-widths (+ = Left); y_rel runs from 0 at the anterior to 1 at the posterior surface."""
        k = self.slice_at(float(point_mm[0]))
        x_rel = (float(point_mm[2]) - self.mid_x[k]) / max(self.half_width[k], 1.0)
        depth = max(self.back_y[k] - self.front_y[k], 1.0)
        return x_rel, (float(point_mm[1]) - self.front_y[k]) / depth

    def part_width(self, index_zyx: tuple[int, int, int]) -> float:
        """Width (mm, along x) of the connected body part of one axial slice holding this voxel;
        the head, a limb or the trunk."""
        k, j, i = index_zyx
        labels, _ = ndimage.label(self.mask[k])
        label = labels[j, i]
        if label == 0:
            return 0.0
        columns = np.flatnonzero((labels == label).any(axis=0))
        return float(columns[-1] - columns[0] + 1) * self.spacing[0]


def fill_holes_per_slice(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every axial slice: the outside is what connects to the slice's edge."""
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    labels, _ = ndimage.label(~mask, structure=in_plane)
    edge = np.unique(np.concatenate([labels[:, 0].ravel(), labels[:, -1].ravel(),
                                     labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    outside = np.zeros(int(labels.max()) + 1, bool)
    outside[edge[edge > 0]] = True
    return ~outside[labels]


def find_body(smoothed: np.ndarray, spacing_xyz: tuple[float, float, float]) -> Body:
    """Body outline and frame from the smoothed SUV (z, y, x, LPS-oriented)."""
    positive = smoothed[smoothed > 0.02 * max(float(np.percentile(smoothed, 99.9)), 1e-6)]
    tissue = float(np.median(positive)) if positive.size else 0.0
    mask = smoothed > BODY_FRACTION * tissue
    labels, n = ndimage.label(mask)
    if n:
        voxel_ml = float(np.prod(spacing_xyz)) / 1000.0
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1)) * voxel_ml
        keep = np.zeros(n + 1, bool)
        keep[1:] = sizes >= min(MIN_BODY_PART_ML, 0.5 * sizes.max())
        mask = keep[labels]
    mask = fill_holes_per_slice(mask)

    sx, sy, _ = spacing_xyz
    nz = mask.shape[0]
    counts = mask.sum(axis=(1, 2)).astype(float)
    columns = mask.any(axis=1)          # (z, x): slice k has body in column i
    rows = mask.any(axis=2)             # (z, y)
    mid_x = (mask.sum(axis=1) * (np.arange(mask.shape[2]) * sx)).sum(axis=1) / np.maximum(counts, 1)
    half_width, front, back = np.zeros(nz), np.zeros(nz), np.zeros(nz)
    for k in np.flatnonzero(counts):
        c, r = np.flatnonzero(columns[k]), np.flatnonzero(rows[k])
        half_width[k] = (c[-1] - c[0] + 1) * sx / 2.0
        front[k], back[k] = r[0] * sy, r[-1] * sy
    present = np.flatnonzero(counts)
    top, bottom = (int(present[-1]), int(present[0])) if present.size else (nz - 1, 0)
    inside = smoothed[mask]
    background = float(np.median(inside)) if inside.size else tissue
    return Body(mask=mask, background_suv=background, mid_x=mid_x, half_width=half_width,
                front_y=front, back_y=back, top=top, bottom=bottom,
                spacing=tuple(float(s) for s in spacing_xyz))  # type: ignore[arg-type]

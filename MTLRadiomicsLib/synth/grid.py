"""Sampling grids: where the analytic phantom is evaluated (axis-aligned, LPS, identity direction)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]  # (z, y, x) index slices into a grid-shaped array

IDENTITY_DIRECTION = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Grid:
    """A regular voxel grid with identity direction.

    Attributes:
        shape: array shape (z, y, x) in voxels.
        spacing: voxel size (x, y, z) in mm.
        origin: LPS position in mm of the centre of voxel (0, 0, 0).
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]

    @classmethod
    def centred(cls, centre_lps: tuple[float, float, float] | np.ndarray,
                size_xyz: tuple[int, int, int], spacing_xyz: tuple[float, float, float]) -> "Grid":
        """A grid of ``size_xyz`` voxels whose geometric centre is ``centre_lps`` (mm)."""
        origin = tuple(float(c) - (n - 1) / 2.0 * float(s)
                       for c, n, s in zip(centre_lps, size_xyz, spacing_xyz))
        spacing = tuple(float(s) for s in spacing_xyz)
        shape = (int(size_xyz[2]), int(size_xyz[1]), int(size_xyz[0]))
        return cls(shape=shape, spacing=spacing, origin=origin)  # type: ignore[arg-type]

    @classmethod
    def covering(cls, lo_lps: np.ndarray, hi_lps: np.ndarray,
                 spacing_xyz: tuple[float, float, float]) -> "Grid":
        """The smallest grid with this spacing whose voxel centres span [lo, hi] (mm), centred."""
        size = [max(1, int(math.ceil((high - low) / step)) + 1)
                for low, high, step in zip(lo_lps, hi_lps, spacing_xyz)]
        centre = (np.asarray(lo_lps, float) + np.asarray(hi_lps, float)) / 2.0
        return cls.centred(centre, tuple(size), spacing_xyz)  # type: ignore[arg-type]

    @property
    def size_xyz(self) -> tuple[int, int, int]:
        return (self.shape[2], self.shape[1], self.shape[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def edge_mm(self) -> float:
        """Width of the soft edge that stands in for averaging over one voxel (mean spacing, mm)."""
        return float(np.mean(self.spacing))

    def axis(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Physical coordinates (mm, float32) of voxel centres along axis i (0 = x, 1 = y, 2 = z)."""
        n = self.size_xyz[i]
        idx = np.arange(start, n if stop is None else stop, dtype=np.float64)
        return (self.origin[i] + self.spacing[i] * idx).astype(np.float32)

    def index_box(self, lo_lps: np.ndarray, hi_lps: np.ndarray) -> Box | None:
        """Index slices (z, y, x) of the voxels whose centres lie in the physical box [lo, hi]."""
        bounds = []
        for i in range(3):
            start = int(math.ceil((float(lo_lps[i]) - self.origin[i]) / self.spacing[i] - 1e-9))
            stop = int(math.floor((float(hi_lps[i]) - self.origin[i]) / self.spacing[i] + 1e-9)) + 1
            start, stop = max(start, 0), min(stop, self.size_xyz[i])
            if start >= stop:
                return None
            bounds.append(slice(start, stop))
        return (bounds[2], bounds[1], bounds[0])

    def coords(self, box: Box | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Broadcastable physical coordinates (x (1,1,nx), y (1,ny,1), z (nz,1,1)) in mm."""
        box = box or (slice(0, self.shape[0]), slice(0, self.shape[1]), slice(0, self.shape[2]))
        x = self.axis(0, box[2].start, box[2].stop).reshape(1, 1, -1)
        y = self.axis(1, box[1].start, box[1].stop).reshape(1, -1, 1)
        z = self.axis(2, box[0].start, box[0].stop).reshape(-1, 1, 1)
        return x, y, z

    def sub_grid(self, box: Box) -> "Grid":
        """The grid of the voxels selected by ``box``."""
        start_xyz = (box[2].start, box[1].start, box[0].start)
        origin = tuple(o + s * i for o, s, i in zip(self.origin, self.spacing, start_xyz))
        shape = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
        return Grid(shape=shape, spacing=self.spacing, origin=origin)  # type: ignore[arg-type]

    def padded(self, pad_xyz: tuple[int, int, int]) -> tuple["Grid", Box]:
        """This grid grown by ``pad_xyz`` voxels on each side, and the box that gives back this grid."""
        origin = tuple(o - p * s for o, p, s in zip(self.origin, pad_xyz, self.spacing))
        shape = (self.shape[0] + 2 * pad_xyz[2], self.shape[1] + 2 * pad_xyz[1],
                 self.shape[2] + 2 * pad_xyz[0])
        inner = (slice(pad_xyz[2], pad_xyz[2] + self.shape[0]),
                 slice(pad_xyz[1], pad_xyz[1] + self.shape[1]),
                 slice(pad_xyz[0], pad_xyz[0] + self.shape[2]))
        return Grid(shape=shape, spacing=self.spacing, origin=origin), inner  # type: ignore[arg-type]

    def nearest_index(self, point_lps: np.ndarray) -> tuple[int, int, int]:
        """Array index (z, y, x) of the voxel nearest to a physical point (clipped to the grid)."""
        ijk = [int(np.clip(round((float(p) - o) / s), 0, n - 1))
               for p, o, s, n in zip(point_lps, self.origin, self.spacing, self.size_xyz)]
        return (ijk[2], ijk[1], ijk[0])

"""Analytic solids described by an (approximate) signed distance in mm, evaluated on any grid.

Every shape answers two questions: its physical bounding box, and the signed distance of points to
its surface (negative inside). Painting turns the distance into a fractional occupancy with a soft
edge one voxel wide, which stands in for the partial-volume averaging inside a voxel.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from MTLRadiomicsLib.synth.grid import Box, Grid

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
Uptake = float | Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


class Shape(ABC):
    """A solid in LPS mm."""

    @abstractmethod
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """Physical bounding box (lo, hi), each (x, y, z) in mm."""

    @abstractmethod
    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) at broadcastable coordinates (mm)."""

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Boolean (n,) for points (n, 3) in mm."""
        p = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        return self.signed_distance(p[:, 0], p[:, 1], p[:, 2]) <= 0.0


def axis_rotation(axis: Sequence[float]) -> np.ndarray:
    """3x3 rotation whose third column (the shape's local z axis) points along ``axis``."""
    target = np.asarray(axis, dtype=float)
    target = target / np.linalg.norm(target)
    rotation, _ = Rotation.align_vectors([target], [[0.0, 0.0, 1.0]])
    return rotation.as_matrix()


def _radial_distance(n: np.ndarray, q: np.ndarray, min_radius: float | np.ndarray) -> np.ndarray:
    """Distance to the surface along the ray from the centre: |p| - |p| / sqrt(q)."""
    safe = np.maximum(q, np.float32(1e-12))
    return n - np.where(q > 1e-12, n / np.sqrt(safe), min_radius)


@dataclass
class Ellipsoid(Shape):
    """Ellipsoid with centre (mm), semi-axes (mm) along its local axes, optional rotation (3x3,
    columns = local axes in LPS)."""

    centre: Sequence[float]
    semi_axes: Sequence[float]
    rotation: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.centre = tuple(float(c) for c in self.centre)
        self.semi_axes = tuple(float(a) for a in self.semi_axes)
        if self.rotation is not None:
            self.rotation = np.asarray(self.rotation, dtype=float).reshape(3, 3)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        axes = np.asarray(self.semi_axes)
        if self.rotation is None:
            half = axes
        else:
            half = np.sqrt(((self.rotation * axes[None, :]) ** 2).sum(axis=1))
        c = np.asarray(self.centre)
        return c - half, c + half

    def local(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> Coords:
        """Coordinates (mm) along the ellipsoid's own axes, relative to its centre."""
        dx, dy, dz = x - self.centre[0], y - self.centre[1], z - self.centre[2]
        if self.rotation is None:
            return dx, dy, dz
        r = [[float(v) for v in row] for row in self.rotation]
        return (r[0][0] * dx + r[1][0] * dy + r[2][0] * dz,
                r[0][1] * dx + r[1][1] * dy + r[2][1] * dz,
                r[0][2] * dx + r[1][2] * dy + r[2][2] * dz)

    def normalised_radius2(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """q = sum (u_i / a_i)^2: 0 at the centre, 1 on the surface."""
        u, v, w = self.local(x, y, z)
        a, b, c = self.semi_axes
        return (u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        u, v, w = self.local(x, y, z)
        a, b, c = self.semi_axes
        q = (u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2
        return _radial_distance(np.sqrt(u * u + v * v + w * w), q, min(a, b, c))

    @property
    def volume_ml(self) -> float:
        a, b, c = self.semi_axes
        return 4.0 / 3.0 * np.pi * a * b * c / 1000.0


@dataclass
class Capsule(Shape):
    """All points within ``radius`` mm of the segment p0-p1 (mm): vessels, airways, tubes."""

    p0: Sequence[float]
    p1: Sequence[float]
    radius: float

    def __post_init__(self) -> None:
        self.p0 = tuple(float(v) for v in self.p0)
        self.p1 = tuple(float(v) for v in self.p1)
        self.radius = float(self.radius)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        ends = np.array([self.p0, self.p1])
        return ends.min(axis=0) - self.radius, ends.max(axis=0) + self.radius

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        d = [b - a for a, b in zip(self.p0, self.p1)]
        length2 = max(d[0] ** 2 + d[1] ** 2 + d[2] ** 2, 1e-9)
        dx, dy, dz = x - self.p0[0], y - self.p0[1], z - self.p0[2]
        t = np.clip((dx * d[0] + dy * d[1] + dz * d[2]) * (1.0 / length2), 0.0, 1.0)
        ex, ey, ez = dx - t * d[0], dy - t * d[1], dz - t * d[2]
        return np.sqrt(ex * ex + ey * ey + ez * ez) - self.radius


@dataclass
class VerticalTube(Shape):
    """A body segment along z: elliptical cross-sections whose centre (cx, cy) and semi-axes (a, b)
    are interpolated between z knots (mm, increasing); flat ends at the first and last knot."""

    z: Sequence[float]
    cx: Sequence[float]
    cy: Sequence[float]
    a: Sequence[float]
    b: Sequence[float]

    def __post_init__(self) -> None:
        order = np.argsort(np.asarray(self.z, dtype=float))
        for name in ("z", "cx", "cy", "a", "b"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=float)[order])

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        z, cx, cy, a, b = (np.asarray(v) for v in (self.z, self.cx, self.cy, self.a, self.b))
        lo = np.array([(cx - a).min(), (cy - b).min(), z[0]])
        hi = np.array([(cx + a).max(), (cy + b).max(), z[-1]])
        return lo, hi

    def _at(self, z: np.ndarray, values: Sequence[float]) -> np.ndarray:
        zf = np.asarray(z, dtype=np.float32)
        return np.interp(zf.ravel(), self.z, values).astype(np.float32).reshape(zf.shape)

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        a, b = self._at(z, self.a), self._at(z, self.b)
        dx, dy = x - self._at(z, self.cx), y - self._at(z, self.cy)
        q = (dx / a) ** 2 + (dy / b) ** 2
        in_plane = _radial_distance(np.sqrt(dx * dx + dy * dy), q, np.minimum(a, b))
        along = np.maximum(float(self.z[0]) - z, z - float(self.z[-1]))
        return np.maximum(in_plane, along)


@dataclass
class Union(Shape):
    """The union of several shapes (signed distance = minimum)."""

    parts: Sequence[Shape]

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        boxes = [p.bbox() for p in self.parts]
        return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        result = self.parts[0].signed_distance(x, y, z)
        for part in self.parts[1:]:
            result = np.minimum(result, part.signed_distance(x, y, z))
        return result


def occupancy(shape: Shape, grid: Grid, edge_mm: float, margin_mm: float = 0.0
              ) -> tuple[Box, np.ndarray, Coords] | None:
    """Fractional occupancy (float32 in [0, 1]) of ``shape`` inflated by ``margin_mm`` on ``grid``.

    Returns the index box it covers, the occupancy over that box (shape of the box) and the
    box's broadcastable coordinates; None when the shape misses the grid.
    """
    lo, hi = shape.bbox()
    pad = 0.5 * edge_mm + margin_mm
    box = grid.index_box(lo - pad, hi + pad)
    if box is None:
        return None
    x, y, z = grid.coords(box)
    sd = shape.signed_distance(x, y, z) - np.float32(margin_mm)
    frac = np.clip(np.float32(0.5) - sd * np.float32(1.0 / edge_mm), 0.0, 1.0).astype(np.float32)
    full = (box[0].stop - box[0].start, box[1].stop - box[1].start, box[2].stop - box[2].start)
    return box, np.broadcast_to(frac, full), (x, y, z)


def paint(activity: np.ndarray, grid: Grid, shape: Shape, uptake: Uptake, edge_mm: float,
          labels: Optional[np.ndarray] = None, label: int = 0) -> None:
    """Blend ``uptake`` (SUV, a number or a function of coordinates) into ``activity`` (z, y, x)
    where the shape lies: value = old * (1 - f) + uptake * f; labels set where f >= 0.5."""
    hit = occupancy(shape, grid, edge_mm)
    if hit is None:
        return
    box, frac, (x, y, z) = hit
    value = uptake(x, y, z) if callable(uptake) else np.float32(uptake)
    region = activity[box]
    region += frac * (value - region)
    if labels is not None:
        labels[box][frac >= 0.5] = label


@dataclass
class Inflated(Shape):
    """A shape grown by ``margin_mm`` (signed distance minus the margin; negative shrinks)."""

    base: Shape
    margin_mm: float

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.base.bbox()
        pad = max(float(self.margin_mm), 0.0)
        return lo - pad, hi + pad

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self.base.signed_distance(x, y, z) - np.float32(self.margin_mm)


@dataclass
class Difference(Shape):
    """The points of ``base`` outside every shape of ``holes`` (signed distance max(d, -d_hole))."""

    base: Shape
    holes: Sequence[Shape]

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        return self.base.bbox()

    def signed_distance(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        result = self.base.signed_distance(x, y, z)
        lo_b, hi_b = self.base.bbox()
        for hole in self.holes:
            lo, hi = hole.bbox()
            if np.any(hi < lo_b) or np.any(lo > hi_b):
                continue  # the hole cannot touch the base
            result = np.maximum(result, -hole.signed_distance(x, y, z))
        return result

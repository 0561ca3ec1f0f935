"""Shared helpers to build and place GTV-style tumours: lobulated shapes in a local frame, volume
scaling, fit checks against the anatomy, hot foci and the uptake field. LPS mm, SUV."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS, Anatomy
from MTLRadiomicsLib.synth.gtv_lesion import HotFocus
from MTLRadiomicsLib.synth.shapes import Ellipsoid, Shape, Union

TISSUE_LABELS = frozenset(ORGAN_LABELS[n] for n in ("background", "fat", "muscle"))
CHECK_DIRECTIONS = np.array([[sx, sy, sz] for sx in (-1, 0, 1) for sy in (-1, 0, 1)
                             for sz in (-1, 0, 1) if (sx, sy, sz) != (0, 0, 0)], dtype=float)
CHECK_DIRECTIONS /= np.linalg.norm(CHECK_DIRECTIONS, axis=1, keepdims=True)
_LATTICE = np.stack(np.meshgrid(*[np.linspace(-0.9, 0.9, 7)] * 3, indexing="ij"), -1).reshape(-1, 3)
BALL_LATTICE = _LATTICE[np.linalg.norm(_LATTICE, axis=1) <= 0.95]  # points of the unit ball


def frame(axis: Sequence[float], radial: Sequence[float]) -> np.ndarray:
    """3x3 rotation, columns (radial, tangential, axis); ``radial`` is made perpendicular to
    ``axis``."""
    w = np.asarray(axis, float) / np.linalg.norm(axis)
    u = np.asarray(radial, float) - np.dot(radial, w) * w
    u /= np.linalg.norm(u)
    return np.column_stack([u, np.cross(w, u), w])


def local_lobes(rng: np.random.Generator, semi: np.ndarray, n: int, away_from_bone: bool = True
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` lobes in the main ellipsoid's frame: (offset (3,), semi-axes (3,)) in mm; with
    ``away_from_bone`` they avoid the -radial side."""
    lobes = []
    for _ in range(n):
        d = rng.normal(size=3)
        if away_from_bone:
            d[0] = max(d[0], -0.3 * abs(d[0]))
        d /= np.linalg.norm(d)
        offset = d * semi * rng.uniform(0.45, 0.75)
        lobes.append((offset, semi * rng.uniform(0.4, 0.65, size=3)))
    return lobes


def union_volume_ml(semi: np.ndarray, lobes: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Volume (ml) of the main ellipsoid (at the origin, axis-aligned) with its lobes."""
    parts = [Ellipsoid((0, 0, 0), semi)] + [Ellipsoid(o, s) for o, s in lobes]
    shape = Union(parts)
    lo, hi = shape.bbox()
    n = 28
    axes = [np.linspace(a, b, n, dtype=np.float32) for a, b in zip(lo, hi)]
    x, y, z = axes[0][None, None, :], axes[1][None, :, None], axes[2][:, None, None]
    cell = float(np.prod((hi - lo) / (n - 1)))
    return float((shape.signed_distance(x, y, z) <= 0).sum()) * cell / 1000.0


def build_shape(centre: np.ndarray, rotation: np.ndarray, semi: np.ndarray,
                lobes: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Ellipsoid, list[Ellipsoid]]:
    """Main ellipsoid and lobes in LPS from the local description."""
    main = Ellipsoid(centre, semi, rotation)
    return main, [Ellipsoid(centre + rotation @ o, s, rotation) for o, s in lobes]


def check_points(centre: np.ndarray, rotation: np.ndarray, semi: np.ndarray,
                 lobes: list[tuple[np.ndarray, np.ndarray]],
                 scales: Sequence[float] = (0.5, 0.95)) -> np.ndarray:
    """Points (n, 3) mm inside the tumour: on shells at ``scales`` of each ellipsoid (26
    directions), a lattice through the main ellipsoid, and its centre."""
    pts = [centre[None, :], centre + (rotation @ (semi * BALL_LATTICE).T).T]
    for offset, s in [(np.zeros(3), semi)] + list(lobes):
        c = centre + rotation @ offset
        for scale in scales:
            pts.append(c + (rotation @ (scale * s * CHECK_DIRECTIONS).T).T)
    return np.vstack(pts)


def fits(anatomy: Anatomy, points: np.ndarray, forbidden: Iterable[Shape],
         allowed_labels: frozenset[int] = TISSUE_LABELS) -> bool:
    """True when no point falls in an organ other than ``allowed_labels`` or in a forbidden
    solid."""
    if not np.all(np.isin(anatomy.labels_at(points), list(allowed_labels))):
        return False
    return not any(np.any(shape.contains(points)) for shape in forbidden)


def hot_foci(rng: np.random.Generator, main: Ellipsoid, n: int, peak_suv: float, viable_suv: float,
             radius_range: tuple[float, float], sigma_range: tuple[float, float]) -> list[HotFocus]:
    """``n`` Gaussian foci inside the main ellipsoid at normalised radius in ``radius_range``;
    the first reaches ``peak_suv`` over the viable uptake, the others part of it."""
    foci = []
    rotation = np.eye(3) if main.rotation is None else main.rotation
    for k in range(n):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        local = d * np.asarray(main.semi_axes) * rng.uniform(*radius_range)
        centre = np.asarray(main.centre) + rotation @ local
        amplitude = max(peak_suv - viable_suv, 0.0) * (1.0 if k == 0 else rng.uniform(0.3, 0.9))
        foci.append(HotFocus(tuple(float(c) for c in centre), float(rng.uniform(*sigma_range)),
                             float(amplitude)))
    return foci

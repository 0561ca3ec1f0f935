"""Tumours whose ground truth is their whole extent, as a clinician draws a GTV (sarcoma, head and
neck): viable tumour plus necrotic core, not the 40 % SUVmax region.

Uptake inside the GTV (SUV), at a point at depth d (mm) below the GTV surface:

    viable(x) = viable_suv * ramp(d) * exp(h T'(x) - h^2 / 2) + hot foci (Gaussians)

with h the heterogeneity and T' = T clipped to [-2.5, 1.5] (the foci, not the texture, make the
hottest spots), capped at ``ceiling``; then

    uptake(x) = viable(x) * (1 - n(x)) + core_suv * (1 + 0.25 T(x)) * n(x)

``ramp`` rises from ``edge_level`` at the border to 1 at ``edge_mm`` deep (an infiltrative,
less avid margin), T is a smooth random texture, and n(x) in [0, 1] is the necrotic weight: ~1
deeper than the viable rim (``rim_mm``, with an irregular boundary), ~0 in the rim. An optional
peritumoral halo (reactive oedema, outside the GTV) fades from ``level`` at the GTV surface to the
surrounding muscle's uptake ``thickness_mm`` away. Positions are LPS mm in the anatomy's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np

from MTLRadiomicsLib.synth.grid import Grid
from MTLRadiomicsLib.synth.lesions import CosineTexture, Finding
from MTLRadiomicsLib.synth.shapes import Ellipsoid, Inflated, Shape, Union, paint

NECROSIS_EDGE_MM = 4.0   # width of the viable-to-necrotic transition


@dataclass
class HotFocus:
    """A focal, more avid (higher-grade) part of the viable tumour: a Gaussian bump (mm, SUV)."""

    centre: tuple[float, float, float]
    sigma_mm: float
    amplitude: float

    def to_dict(self) -> dict[str, Any]:
        return {"center_lps_mm": [round(float(c), 2) for c in self.centre],
                "sigma_mm": round(self.sigma_mm, 2), "amplitude_suv": round(self.amplitude, 3)}


@dataclass
class TumourUptake:
    """The uptake field (SUV) of a GTV ``shape``; a callable of broadcastable coordinates (mm)."""

    shape: Shape
    viable_suv: float
    heterogeneity: float
    texture: CosineTexture
    boundary: CosineTexture          # irregularity of the necrotic boundary
    rim_mm: float                    # viable rim thickness (inf: no necrosis)
    core_suv: float
    edge_mm: float
    edge_level: float
    foci: list[HotFocus] = field(default_factory=list)
    ceiling: float = float("inf")     # highest viable uptake (SUV)

    def depth(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Depth below the GTV surface (mm, negative outside)."""
        return -self.shape.signed_distance(x, y, z)

    def necrotic_weight(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                        depth: Optional[np.ndarray] = None) -> np.ndarray:
        """n(x) in [0, 1]: 1 in the necrotic core, 0 in the viable rim."""
        if not np.isfinite(self.rim_mm):
            return np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), np.float32)
        d = self.depth(x, y, z) if depth is None else depth
        level = np.float32(self.rim_mm) * (1.0 + np.float32(0.35) * self.boundary(x, y, z))
        arg = np.clip((d - level) * np.float32(1.0 / NECROSIS_EDGE_MM), -30.0, 30.0)
        return (1.0 / (1.0 + np.exp(-arg))).astype(np.float32)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        d = self.depth(x, y, z)
        t = self.texture(x, y, z)
        ramp = self.edge_level + (1.0 - self.edge_level) * np.clip(d / self.edge_mm, 0.0, 1.0)
        h = np.float32(self.heterogeneity)
        contrast = np.exp(h * np.clip(t, -2.5, 1.5) - 0.5 * h * h)
        viable = np.float32(self.viable_suv) * ramp * contrast
        for focus in self.foci:
            r2 = sum((c - float(fc)) ** 2 for c, fc in zip((x, y, z), focus.centre))
            viable = viable + np.float32(focus.amplitude) * np.exp(
                r2 * np.float32(-0.5 / focus.sigma_mm ** 2))
        viable = np.minimum(viable, np.float32(self.ceiling))
        n = self.necrotic_weight(x, y, z, d)
        core = np.float32(self.core_suv) * np.maximum(1.0 + 0.25 * t, 0.3)
        return (viable * (1.0 - n) + core * n).astype(np.float32)


@dataclass
class Halo:
    """Mildly avid reactive tissue around the GTV (not part of it): SUV, mm."""

    shape: Shape                # the GTV
    thickness_mm: float
    level: float                # uptake at the GTV surface (SUV)
    base: float                 # uptake it fades to (the muscle's, SUV)
    texture: CosineTexture

    @property
    def region(self) -> Shape:
        return Inflated(self.shape, self.thickness_mm)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        outside = np.maximum(self.shape.signed_distance(x, y, z), 0.0)
        w = np.clip(1.0 - outside * np.float32(1.0 / self.thickness_mm), 0.0, 1.0)
        t = np.maximum(1.0 + 0.6 * self.texture(x, y, z), 0.0)
        return (self.base + (self.level - self.base) * w * t).astype(np.float32)


@dataclass
class GtvLesion:
    """A primary tumour (lobulated union of ellipsoids) whose ground truth is its whole extent,
    with its findings (lymph nodes). Same interface as ``lesions.Lesion`` (SUV, mm).

    Attributes:
        site: anatomical site ("thigh", "buttock", ..., "oropharynx", ...).
        main, lobes: the ellipsoids whose union is the GTV.
        uptake: the uptake field.
        findings: FDG-avid nodes (outside the GTV, not in the ground truth).
    """

    GROUND_TRUTH: ClassVar[str] = "gtv"
    pathology: str
    site: str
    main: Ellipsoid
    lobes: list[Ellipsoid]
    uptake: TumourUptake
    findings: list[Finding]
    latent: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    halo: Optional[Halo] = None

    @property
    def primary(self) -> Union:
        return Union([self.main, *self.lobes])

    @property
    def suv(self) -> float:
        return float(self.uptake.viable_suv)

    @property
    def peak_suv(self) -> float:
        """Viable uptake plus the hottest focus (SUV, before blur): the tumour's grade."""
        return float(self.uptake.viable_suv + max([f.amplitude for f in self.uptake.foci] + [0.0]))

    @property
    def heterogeneity(self) -> float:
        return float(self.uptake.heterogeneity)

    @property
    def necrosis(self) -> Optional[Shape]:
        """The region deeper than the viable rim (None without necrosis)."""
        rim = self.uptake.rim_mm
        return None if not np.isfinite(rim) else Inflated(self.primary, -rim)

    @property
    def necrosis_level(self) -> float:
        return 0.0 if self.necrosis is None else self.uptake.core_suv / self.uptake.viable_suv

    @property
    def satellites(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "satellite"]

    @property
    def nodes(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "node"]

    def paint(self, activity: np.ndarray, grid: Grid, primary: bool = True,
              findings: bool = True) -> None:
        """Blend the tumour (and/or its findings) into ``activity`` (SUV, (z, y, x)) on ``grid``."""
        edge = grid.edge_mm
        if primary:
            if self.halo is not None:
                paint(activity, grid, self.halo.region, self.halo, edge)
            paint(activity, grid, self.primary, self.uptake, edge)
        if findings:
            for finding in self.findings:
                paint(activity, grid, finding.shape, finding.uptake, edge)

    def bbox(self, findings: bool = True, halo: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Box (lo, hi) in mm of the GTV, optionally its halo and the findings."""
        shapes = [self.primary if self.halo is None or not halo else self.halo.region]
        return Union(shapes + ([f.shape for f in self.findings] if findings else [])).bbox()

    def truth_mask(self, grid: Grid) -> np.ndarray:
        """Ground truth on ``grid``: bool (z, y, x), voxels whose centre lies in the GTV (the
        voxels the painting fills at least half)."""
        mask = np.zeros(grid.shape, dtype=bool)
        lo, hi = self.primary.bbox()
        box = grid.index_box(lo, hi)
        if box is not None:
            x, y, z = grid.coords(box)
            mask[box] = self.primary.signed_distance(x, y, z) <= 0.0
        return mask

    def true_measures(self) -> dict[str, Any]:
        """Grid-free measures of the GTV: volume (ml), centroid (mm), extents (mm), necrosis."""
        lo, hi = self.primary.bbox()
        step = float(np.clip(min(self.main.semi_axes) / 8.0, 0.5, 2.5))
        grid = Grid.covering(lo - step, hi + step, (step, step, step))
        x, y, z = grid.coords()
        sd = self.primary.signed_distance(x, y, z)
        occ = np.clip(0.5 - sd / step, 0.0, 1.0)
        volume = float(occ.sum()) * step ** 3 / 1000.0
        weights = occ / max(float(occ.sum()), 1e-9)
        centroid = [float((weights * c).sum()) for c in np.broadcast_arrays(x, y, z)]
        inside = occ >= 0.5
        extents = []
        for c in (x, y, z):
            values = np.broadcast_to(c, inside.shape)[inside]
            extents.append(float(values.max() - values.min() + step) if values.size else 0.0)
        weight = self.uptake.necrotic_weight(x, y, z, -sd)
        necrotic = float((occ * weight).sum()) * step ** 3 / 1000.0
        in_plane = max(extents[0], extents[1])
        return {"volume_ml": volume, "centroid": centroid, "extent_x_mm": extents[0],
                "extent_y_mm": extents[1], "extent_z_mm": extents[2],
                "elongation": extents[2] / max(in_plane, 1e-6),
                "equivalent_radius_mm": (3.0 * volume * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0),
                "main_radius_mm": (3.0 * self.main.volume_ml * 1000.0 / (4.0 * np.pi)) ** (1 / 3),
                "necrosis_fraction": necrotic / max(volume, 1e-9),
                "lobulation": volume / max(self.main.volume_ml, 1e-9) - 1.0}

    def facts(self) -> dict[str, Any]:
        """Extra JSON-serialisable facts of this kind of lesion."""
        u = self.uptake
        return {"ground_truth": "gtv_whole_tumour", "site": self.site,
                "viable_suv": round(u.viable_suv, 4), "core_suv": round(u.core_suv, 4),
                "rim_mm": None if not np.isfinite(u.rim_mm) else round(u.rim_mm, 2),
                "edge_level": round(u.edge_level, 4), "edge_mm": round(u.edge_mm, 2),
                "hot_foci": [f.to_dict() for f in u.foci],
                "halo": None if self.halo is None else {
                    "thickness_mm": round(self.halo.thickness_mm, 2),
                    "suv": round(self.halo.level, 4)},
                **self.details}

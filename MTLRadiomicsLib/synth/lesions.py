"""Primary tumours (lung, oesophageal) and their peritumoral findings, as analytic shapes.

A lesion is a lobulated union of ellipsoids with a base uptake (SUV), a radial profile, a smooth
random texture (heterogeneity), an optional necrotic core, and 0-3 satellite nodules plus 0-3
FDG-avid lymph nodes within 3 cm of its border. Positions are LPS mm in the anatomy's frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
from scipy.special import ndtr

from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS, Anatomy
from MTLRadiomicsLib.synth.grid import Grid
from MTLRadiomicsLib.synth.shapes import Ellipsoid, Union, axis_rotation, paint

PATHOLOGIES = ("lung", "oesophageal")
MAX_FINDING_OFFSET_MM = 46.0   # findings stay inside a 64^3 crop at 2 mm around the lesion
# Latent tumour traits (SUV, size, heterogeneity, necrosis, spread) and their correlations.
LATENT_NAMES = ("suv", "size", "heterogeneity", "necrosis", "spread")
LATENT_CORRELATION = np.array([
    [1.00, 0.30, 0.25, 0.10, 0.20],
    [0.30, 1.00, 0.20, 0.50, 0.30],
    [0.25, 0.20, 1.00, 0.20, 0.10],
    [0.10, 0.50, 0.20, 1.00, 0.10],
    [0.20, 0.30, 0.10, 0.10, 1.00],
])


@dataclass
class CosineTexture:
    """Smooth zero-mean, unit-variance random field: sum of K plane waves (mm, rad/mm)."""

    origin: np.ndarray
    wavevectors: np.ndarray  # (K, 3)
    phases: np.ndarray       # (K,)

    @classmethod
    def sample(cls, rng: np.random.Generator, origin: np.ndarray, n_waves: int = 12,
               wavelength_mm: tuple[float, float] = (7.0, 18.0)) -> "CosineTexture":
        directions = rng.normal(size=(n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        k = 2.0 * np.pi / rng.uniform(*wavelength_mm, size=n_waves)
        phases = rng.uniform(0, 2 * np.pi, n_waves)
        return cls(np.asarray(origin, float), directions * k[:, None], phases)

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        dx, dy, dz = x - float(self.origin[0]), y - float(self.origin[1]), z - float(self.origin[2])
        total = np.float32(0.0)
        for (kx, ky, kz), phase in zip(self.wavevectors.tolist(), self.phases.tolist()):
            total = total + np.cos(kx * dx + ky * dy + kz * dz + phase)
        return total * np.float32(np.sqrt(2.0 / len(self.phases)))


@dataclass
class Finding:
    """A satellite nodule or an FDG-avid lymph node near the tumour."""

    kind: str           # "satellite" or "node"
    shape: Ellipsoid
    uptake: float       # SUV
    gap_mm: float       # distance from the tumour border to the finding's border

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "center_lps_mm": [round(float(c), 2) for c in self.shape.centre],
                "radius_mm": round(float(np.mean(self.shape.semi_axes)), 2),
                "suv": round(self.uptake, 3), "gap_mm": round(self.gap_mm, 2)}


@dataclass
class Lesion:
    """A primary tumour with its peritumoral findings (all SUV, mm); ground truth: its 40 % SUVmax
    region (``mtv.threshold_mtv``)."""

    GROUND_TRUTH: ClassVar[str] = "mtv40"
    pathology: str
    main: Ellipsoid
    lobes: list[Ellipsoid]
    suv: float                      # base uptake of viable tumour (SUV)
    heterogeneity: float            # texture amplitude (relative)
    texture: CosineTexture
    necrosis: Optional[Ellipsoid]
    necrosis_level: float           # necrotic-core uptake relative to the base uptake
    findings: list[Finding]
    latent: dict[str, float] = field(default_factory=dict)

    @property
    def primary(self) -> Union:
        return Union([self.main, *self.lobes])

    @property
    def satellites(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "satellite"]

    @property
    def nodes(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "node"]

    def _primary_uptake(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        q = np.minimum(self.main.normalised_radius2(x, y, z), 1.0)
        texture = np.maximum(1.0 + self.heterogeneity * self.texture(x, y, z), 0.3)
        return np.float32(self.suv) * (1.0 - 0.2 * q) * texture

    def _necrosis_uptake(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        texture = np.maximum(1.0 + 0.5 * self.heterogeneity * self.texture(x, y, z), 0.3)
        return np.float32(self.suv * self.necrosis_level) * texture

    def paint(self, activity: np.ndarray, grid: Grid, primary: bool = True,
              findings: bool = True) -> None:
        """Blend the tumour (and/or its findings) into ``activity`` (SUV, (z, y, x)) on ``grid``."""
        edge = grid.edge_mm
        if primary:
            paint(activity, grid, self.primary, self._primary_uptake, edge)
            if self.necrosis is not None:
                paint(activity, grid, self.necrosis, self._necrosis_uptake, edge)
        if findings:
            for finding in self.findings:
                paint(activity, grid, finding.shape, finding.uptake, edge)

    def bbox(self, findings: bool = True) -> tuple[np.ndarray, np.ndarray]:
        shapes = [self.primary] + ([f.shape for f in self.findings] if findings else [])
        return Union(shapes).bbox()

    def true_measures(self) -> dict[str, float]:
        """Grid-free measures of the primary: volume (ml), centroid (mm), extents (mm), necrosis."""
        lo, hi = self.primary.bbox()
        r_eq = (3.0 * self.main.volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        step = float(np.clip(min(self.main.semi_axes) / 8.0, 0.4, 2.0))
        grid = Grid.covering(lo - step, hi + step, (step, step, step))
        x, y, z = grid.coords()
        occ = np.clip(0.5 - self.primary.signed_distance(x, y, z) / step, 0.0, 1.0)
        volume = float(occ.sum()) * step ** 3 / 1000.0
        weights = occ / max(float(occ.sum()), 1e-9)
        centroid = [float((weights * c).sum()) for c in np.broadcast_arrays(x, y, z)]
        inside = occ >= 0.5
        extents = []
        for c in (x, y, z):
            values = np.broadcast_to(c, inside.shape)[inside]
            extents.append(float(values.max() - values.min() + step) if values.size else 0.0)
        necrotic = 0.0
        if self.necrosis is not None:
            occ_n = np.clip(0.5 - self.necrosis.signed_distance(x, y, z) / step, 0.0, 1.0)
            necrotic = float(np.minimum(occ_n, occ).sum()) * step ** 3 / 1000.0
        in_plane = max(extents[0], extents[1])
        return {"volume_ml": volume, "centroid": centroid, "extent_x_mm": extents[0],
                "extent_y_mm": extents[1], "extent_z_mm": extents[2],
                "elongation": extents[2] / max(in_plane, 1e-6),
                "equivalent_radius_mm": (3.0 * volume * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0),
                "main_radius_mm": r_eq,
                "necrosis_fraction": necrotic / max(volume, 1e-9),
                "lobulation": volume / max(self.main.volume_ml, 1e-9) - 1.0}


# --------------------------------------------------------------------------- sampling
def _unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


_CHECK_DIRECTIONS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]
                             + [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                             dtype=float)
_CHECK_DIRECTIONS /= np.linalg.norm(_CHECK_DIRECTIONS, axis=1, keepdims=True)


def _surface_distance(shape: Union, centre: np.ndarray, direction: np.ndarray) -> float:
    """Distance (mm) from ``centre`` to the surface of ``shape`` along ``direction``."""
    t = np.linspace(0.0, 150.0, 601)
    pts = centre[None, :] + t[:, None] * direction[None, :]
    outside = shape.signed_distance(pts[:, 0], pts[:, 1], pts[:, 2]) > 0
    return float(t[np.argmax(outside)]) if outside.any() else 150.0


def _lobes(rng: np.random.Generator, centre: np.ndarray, semi: np.ndarray, n: int,
           in_plane: bool) -> list[Ellipsoid]:
    lobes = []
    for _ in range(n):
        d = rng.normal(size=3)
        if in_plane:
            d[2] = 0.0
        d /= np.linalg.norm(d)
        scale = rng.uniform(0.45, 0.7)
        offset = d * semi * rng.uniform(0.5, 0.8)
        lobe_semi = semi * scale
        if in_plane:
            lobe_semi[2] = semi[2] * rng.uniform(0.5, 0.8)
        lobes.append(Ellipsoid(centre + offset, lobe_semi))
    return lobes


def _lung_primary(rng: np.random.Generator, anatomy: Anatomy, size: float
                  ) -> tuple[Ellipsoid, list[Ellipsoid]]:
    """A round/lobulated tumour inside a lung; ``size`` is the latent size trait."""
    radius = float(np.clip(np.exp(np.log(13.0) + 0.45 * size), 5.0, 30.0))
    side = 0 if rng.uniform() < 0.55 else 1
    lung = anatomy.lungs[side]
    semi = radius * rng.uniform(0.85, 1.15, size=3)
    rotation = axis_rotation(rng.normal(size=3))
    n_lobes = int(rng.integers(0, 5)) if radius >= 8.0 else 0
    lobe_offsets = _lobes(rng, np.zeros(3), semi.copy(), n_lobes, in_plane=False)
    lung_label = ORGAN_LABELS["lung"]
    for attempt in range(600):
        if attempt and attempt % 150 == 0:
            semi *= 0.85
            for lobe in lobe_offsets:
                lobe.centre = tuple(np.asarray(lobe.centre) * 0.85)
                lobe.semi_axes = tuple(np.asarray(lobe.semi_axes) * 0.85)
        u = _unit_vectors(rng, 1)[0] * rng.uniform() ** (1.0 / 3.0)
        centre = np.asarray(lung.centre) + u * 0.8 * np.asarray(lung.semi_axes)
        reach = max([float(np.max(semi))] + [float(np.linalg.norm(lobe.centre) + max(lobe.semi_axes))
                                             for lobe in lobe_offsets])
        points = np.vstack([centre, centre + 0.85 * reach * _CHECK_DIRECTIONS])
        if np.all(anatomy.labels_at(points) == lung_label):
            break
    else:  # no room found: a small tumour in the middle of the lung
        centre = np.asarray(lung.centre, float)
        semi = np.full(3, 5.0)
        lobe_offsets = []
    main = Ellipsoid(centre, semi, rotation)
    lobes = [Ellipsoid(centre + np.asarray(lobe.centre), lobe.semi_axes) for lobe in lobe_offsets]
    return main, lobes


def _oesophagus_point(anatomy: Anatomy, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Centreline point (mm) and unit direction of the oesophagus at height z."""
    line = anatomy.oesophagus[::-1]  # increasing z
    point = np.array([np.interp(z, line[:, 2], line[:, i]) for i in range(3)])
    k = int(np.clip(np.searchsorted(line[:, 2], z), 1, len(line) - 1))
    direction = line[k] - line[k - 1]
    return point, direction / np.linalg.norm(direction)


def _oesophageal_primary(rng: np.random.Generator, anatomy: Anatomy, size: float
                         ) -> tuple[Ellipsoid, list[Ellipsoid]]:
    """An elongated wall thickening along the mid/distal oesophagus (3-8 cm long)."""
    length = float(np.clip(np.exp(np.log(50.0) + 0.3 * size), 30.0, 80.0))
    radius = float(np.clip(np.exp(np.log(12.5) + 0.2 * size) * rng.uniform(0.9, 1.1), 9.0, 18.0))
    radius = min(radius, length / 2.0 / 1.4)
    height = anatomy.body["height_scale"]
    z = rng.uniform(-510.0, -385.0) * height
    point, direction = _oesophagus_point(anatomy, z)
    eccentric = np.array([*rng.uniform(-3.0, 3.0, size=2), 0.0])
    semi = np.array([radius * rng.uniform(0.85, 1.15), radius * rng.uniform(0.85, 1.15), length / 2])
    rotation = axis_rotation(direction if direction[2] > 0 else -direction)
    main = Ellipsoid(point + eccentric, semi, rotation)
    local_lobes = _lobes(rng, np.zeros(3), semi.copy(), int(rng.integers(0, 3)), in_plane=True)
    lobes = [Ellipsoid(main.centre + rotation @ np.asarray(lobe.centre), lobe.semi_axes, rotation)
             for lobe in local_lobes]
    return main, lobes


def _place_findings(rng: np.random.Generator, anatomy: Anatomy, primary: Union, centre: np.ndarray,
                    pathology: str, suv: float, n_satellites: int, n_nodes: int) -> list[Finding]:
    """Satellites and nodes 3-25 mm from the tumour border, kept within the crop around it."""
    allowed = {
        ("lung", "satellite"): {"lung"},
        ("lung", "node"): {"lung", "muscle", "oesophagus"},
        ("oesophageal", "satellite"): {"oesophagus", "muscle", "lung"},
        ("oesophageal", "node"): {"muscle", "lung", "oesophagus", "fat"},
    }
    findings: list[Finding] = []
    for kind, count in (("satellite", n_satellites), ("node", n_nodes)):
        labels_ok = {ORGAN_LABELS[name] for name in allowed[(pathology, kind)]}
        for _ in range(count):
            for _attempt in range(40):
                direction = _unit_vectors(rng, 1)[0]
                if pathology == "oesophageal" and kind == "node":
                    direction[2] *= 0.4
                    direction /= np.linalg.norm(direction)
                radius = rng.uniform(3.0, 7.0) if kind == "satellite" else rng.uniform(5.0, 11.0)
                gap = rng.uniform(3.0, 25.0)
                distance = _surface_distance(primary, centre, direction) + gap + radius
                position = centre + direction * distance
                if np.any(np.abs(position - centre) > MAX_FINDING_OFFSET_MM):
                    continue
                if int(anatomy.labels_at(position[None, :])[0]) not in labels_ok:
                    continue
                if any(np.linalg.norm(position - np.asarray(f.shape.centre))
                       < radius + max(f.shape.semi_axes) + 3.0 for f in findings):
                    continue
                if kind == "satellite":
                    uptake = min(max(suv * rng.uniform(0.4, 0.85), 2.0), 0.95 * suv)
                else:
                    uptake = min(max(suv * rng.uniform(0.35, 0.8), rng.uniform(2.5, 4.0)), 0.95 * suv)
                shape = Ellipsoid(position, radius * rng.uniform(0.85, 1.15, size=3))
                findings.append(Finding(kind, shape, float(uptake), float(gap)))
                break
    return findings


def sample_lesion(rng: np.random.Generator, anatomy: Anatomy, pathology: str) -> Lesion:
    """Draw one primary tumour of ``pathology`` ("lung" or "oesophageal") with its findings."""
    if pathology not in PATHOLOGIES:
        raise ValueError(f"pathology must be one of {PATHOLOGIES}, not {pathology!r}")
    latent_values = np.linalg.cholesky(LATENT_CORRELATION) @ rng.normal(size=len(LATENT_NAMES))
    latent = dict(zip(LATENT_NAMES, (float(v) for v in latent_values)))
    suv = float(np.clip(np.exp(np.log(7.5) + 0.5 * latent["suv"]), 3.5, 26.0))
    heterogeneity = float(0.04 + 0.30 * ndtr(latent["heterogeneity"]))
    if pathology == "lung":
        main, lobes = _lung_primary(rng, anatomy, latent["size"])
    else:
        main, lobes = _oesophageal_primary(rng, anatomy, latent["size"])
    centre = np.asarray(main.centre)
    texture = CosineTexture.sample(rng, centre)

    necrosis, level = None, 0.0
    radius = float(min(main.semi_axes[:2])) if pathology == "oesophageal" else \
        float(np.prod(main.semi_axes) ** (1.0 / 3.0))
    if radius >= 11.0 and latent["necrosis"] > 0.2:
        fraction = 0.08 + 0.30 * float(ndtr(latent["necrosis"] - 1.0 + rng.normal(0.0, 0.3)))
        core_semi = np.asarray(main.semi_axes) * fraction ** (1.0 / 3.0)
        shift = main.rotation @ (rng.uniform(-0.1, 0.1, size=3) * core_semi)
        necrosis = Ellipsoid(centre + shift, core_semi, main.rotation)
        level = float(rng.uniform(0.1, 0.3))

    spread = float(np.exp(-0.3 + 0.75 * latent["spread"]))
    n_satellites = min(int(rng.poisson(0.45 * spread)), 3)
    n_nodes = min(int(rng.poisson(0.55 * spread)), 3)
    findings = _place_findings(rng, anatomy, Union([main, *lobes]), centre, pathology, suv,
                               n_satellites, n_nodes)
    return Lesion(pathology=pathology, main=main, lobes=lobes, suv=suv, heterogeneity=heterogeneity,
                  texture=texture, necrosis=necrosis, necrosis_level=level, findings=findings,
                  latent=latent)

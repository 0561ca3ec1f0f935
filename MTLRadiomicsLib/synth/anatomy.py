"""The FDG whole-body phantom: organ geometry (LPS mm) and organ uptakes (SUV), varied per patient.

Coordinates: x to the patient's left, y posterior, z superior; z = 0 is the vertex, the body runs
down to mid-thigh (about -1000 mm). Organs are layers painted in order, later ones on top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from MTLRadiomicsLib.synth.grid import Grid
from MTLRadiomicsLib.synth.shapes import (Capsule, Ellipsoid, Shape, VerticalTube, axis_rotation,
                                          paint)

ORGAN_LABELS: dict[str, int] = {
    "background": 0, "fat": 1, "muscle": 2, "brain": 3, "lung": 4, "liver": 5, "myocardium": 6,
    "blood_pool": 7, "kidney": 8, "bladder": 9, "spine": 10, "oesophagus": 11, "spleen": 12,
    "stomach": 13, "bowel": 14, "airway": 15, "gland": 16, "marrow": 17,
}
OESOPHAGUS_RADIUS_MM = 7.0


@dataclass
class Layer:
    """One organ part: a shape filled with a uniform uptake (SUV) and an organ label."""

    name: str
    shape: Shape
    uptake: float
    organ: str


@dataclass
class Anatomy:
    """A patient's phantom: painted layers, body measures and the landmarks lesions are placed by.

    Attributes:
        layers: painted in order (later on top).
        uptakes: organ uptake in SUV by name (JSON-serialisable).
        body: height/width scales, fat thickness (mm), weight (kg).
        z_range: (inferior, superior) extent of the body in mm.
        lungs: the two lung ellipsoids (right, left).
        oesophagus: centreline points (n, 3) in mm, superior to inferior.
        limbs: the body-outline solids lesions in the limbs and trunk wall are placed by, by name
            ("trunk", "neck", "right_thigh", "left_upper_arm", "right_femur", ...; "right" is the
            patient's right, x < 0); the muscle cores, without their fat.
    """

    layers: list[Layer]
    uptakes: dict[str, float]
    body: dict[str, float]
    z_range: tuple[float, float]
    lungs: tuple[Ellipsoid, Ellipsoid]
    oesophagus: np.ndarray
    oesophagus_radius: float
    limbs: dict[str, Shape] = field(default_factory=dict)

    def paint(self, grid: Grid, with_labels: bool = False
              ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """Noise-free activity (SUV, float32 (z, y, x)) and optionally the organ label map (uint8)."""
        activity = np.zeros(grid.shape, dtype=np.float32)
        labels = np.zeros(grid.shape, dtype=np.uint8) if with_labels else None
        edge = grid.edge_mm
        for layer in self.layers:
            paint(activity, grid, layer.shape, layer.uptake, edge, labels, ORGAN_LABELS[layer.organ])
        return activity, labels

    def labels_at(self, points: np.ndarray) -> np.ndarray:
        """Organ label (uint8) at each point (n, 3) in mm: the last layer that contains it."""
        pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
        labels = np.zeros(len(pts), dtype=np.uint8)
        for layer in self.layers:
            lo, hi = layer.shape.bbox()
            near = np.all((pts >= lo) & (pts <= hi), axis=1)
            if near.any():
                inside = layer.shape.contains(pts[near])
                idx = np.flatnonzero(near)[inside]
                labels[idx] = ORGAN_LABELS[layer.organ]
        return labels


def _uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def sample_uptakes(rng: np.random.Generator) -> dict[str, float]:
    """Organ uptakes in SUV for one patient (typical clinical FDG ranges)."""
    u: dict[str, float] = {
        "fat": _uniform(rng, 0.25, 0.4),
        "muscle": _uniform(rng, 0.6, 0.9),
        "lung": _uniform(rng, 0.3, 0.6),
        "liver": _uniform(rng, 2.0, 2.8),
        "blood_pool": _uniform(rng, 1.5, 2.0),
        "myocardium": _log_uniform(rng, 1.5, 8.0),
        "grey_matter": _uniform(rng, 7.0, 10.0),
        "kidney_cortex": _uniform(rng, 2.0, 4.0),
        "kidney_medulla": _uniform(rng, 1.2, 2.0),
        "renal_pelvis": _log_uniform(rng, 3.0, 15.0),
        "bladder": _log_uniform(rng, 5.0, 40.0),
        "spine": _uniform(rng, 1.5, 2.2),
        "oesophagus": _uniform(rng, 1.5, 2.0),
        "stomach": _uniform(rng, 1.3, 3.0),
        "salivary": _uniform(rng, 1.5, 2.5),
        "tonsils": _uniform(rng, 2.0, 3.5),
        "pelvic_marrow": _uniform(rng, 1.0, 1.6),
        "femoral_marrow": _uniform(rng, 0.4, 0.7),
        "skull": _uniform(rng, 0.3, 0.5),
        "airway": 0.05,
    }
    u["white_matter"] = u["grey_matter"] * _uniform(rng, 0.35, 0.45)
    u["cerebellum"] = u["grey_matter"] * _uniform(rng, 0.72, 0.85)
    u["spleen"] = u["liver"] * _uniform(rng, 0.75, 0.95)
    return u


class _Builder:
    """Collects layers; scales nominal adult positions and sizes (mm) to the patient."""

    def __init__(self, organ_scale: float, height_scale: float, uptakes: dict[str, float]) -> None:
        self.organ, self.height, self.u = organ_scale, height_scale, uptakes
        self.layers: list[Layer] = []
        self.limbs: dict[str, Shape] = {}

    def p(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        return (x * self.organ, y * self.organ, z * self.height)

    def ellipsoid(self, centre: tuple, semi: tuple, axis: Optional[tuple] = None) -> Ellipsoid:
        rotation = None if axis is None else axis_rotation(axis)
        a, b, c = semi
        return Ellipsoid(self.p(*centre), (a * self.organ, b * self.organ, c * self.height), rotation)

    def capsule(self, a: tuple, b: tuple, radius: float) -> Capsule:
        return Capsule(self.p(*a), self.p(*b), radius)

    def add(self, name: str, shape: Shape, uptake: str | float, organ: str) -> None:
        value = self.u[uptake] if isinstance(uptake, str) else uptake
        self.layers.append(Layer(name, shape, float(value), organ))


def _body_outline(b: _Builder, fat: float) -> None:
    """Trunk, neck, head, arms and legs: subcutaneous fat first, then the muscle core inside."""
    organ, height = b.organ, b.height
    tz = np.array([-265, -285, -320, -400, -500, -600, -700, -800, -880], float) * height
    ta = np.array([55, 120, 165, 160, 150, 140, 150, 155, 140], float) * organ
    tb = np.array([50, 80, 95, 100, 105, 100, 95, 95, 85], float) * organ
    zeros = np.zeros_like(tz)
    neck_z = np.array([-295, -190], float) * height
    leg_z = np.array([-1060, -860], float) * height
    shoulder = 165 * organ + fat
    fat_shapes: list[Shape] = [VerticalTube(tz, zeros, zeros, ta + fat, tb + fat),
                               VerticalTube(neck_z, [0, 0], [8, 8], [45 + 0.5 * fat] * 2,
                                            [45 + 0.5 * fat] * 2)]
    core_shapes: list[Shape] = [VerticalTube(tz, zeros, zeros, ta, tb),
                                VerticalTube(neck_z, [0, 0], [8, 8], [45, 45], [45, 45])]
    femurs = []
    b.limbs.update(trunk=core_shapes[0], neck=core_shapes[1])
    for side in (-1.0, 1.0):
        name = "right" if side < 0 else "left"
        # Arms hang beside the trunk: upper arm and forearm as capsules (rounded at the shoulder).
        top = (side * (shoulder + 0.5 * fat + 20.0), 0.0, -310.0 * height)
        elbow = (side * (shoulder + 0.5 * fat + 32.0), 5.0, -560.0 * height)
        wrist = (side * (shoulder + 0.5 * fat + 36.0), -5.0, -800.0 * height)
        for part, a, c, r in (("upper_arm", top, elbow, 36.0 * organ),
                              ("forearm", elbow, wrist, 29.0 * organ)):
            core_shapes.append(Capsule(a, c, r))
            b.limbs[f"{name}_{part}"] = core_shapes[-1]
            fat_shapes.append(Capsule(a, c, r + 0.5 * fat))
        leg_x = [side * 85.0 * organ] * 2
        semi_a, semi_b = np.array([58.0, 72.0]) * organ, np.array([62.0, 76.0]) * organ
        core_shapes.append(VerticalTube(leg_z, leg_x, [5, 5], semi_a, semi_b))
        b.limbs[f"{name}_thigh"] = core_shapes[-1]
        fat_shapes.append(VerticalTube(leg_z, leg_x, [5, 5], semi_a + fat, semi_b + fat))
        femurs.append(b.capsule((side * 90, 5, -880), (side * 95, 5, -1060), 12))
        b.limbs[f"{name}_femur"] = femurs[-1]
    for shape in fat_shapes:
        b.add("subcutaneous fat", shape, "fat", "fat")
    b.add("skull and scalp", b.ellipsoid((0, 0, -110), (72 / organ, 92 / organ, 110)), "skull", "fat")
    for shape in core_shapes:
        b.add("muscle", shape, "muscle", "muscle")
    for femur in femurs:
        b.add("femoral marrow", femur, "femoral_marrow", "marrow")


def _head_and_neck(b: _Builder) -> None:
    """Brain (grey matter brighter than white), cerebellum, salivary glands, tonsils."""
    k = 1.0 / b.organ  # head size does not follow the body habitus
    b.add("grey matter", b.ellipsoid((0, 5, -80), (65 * k, 82 * k, 62)), "grey_matter", "brain")
    b.add("white matter", b.ellipsoid((0, 5, -78), (46 * k, 60 * k, 42)), "white_matter", "brain")
    for side in (-1.0, 1.0):
        b.add("deep grey nuclei", b.ellipsoid((side * 19, 2, -85), (11 * k, 19 * k, 12)),
              b.u["grey_matter"] * 1.05, "brain")
        b.add("parotid gland", b.ellipsoid((side * 48, 12, -165), (14, 18, 22)), "salivary", "gland")
    b.add("cerebellum", b.ellipsoid((0, 50, -150), (50 * k, 30 * k, 24)), "cerebellum", "brain")
    b.add("tonsils", b.ellipsoid((0, -8, -172), (18, 10, 12)), "tonsils", "gland")


def _spine_and_pelvis(b: _Builder) -> None:
    """Vertebral bodies (marrow) along a curved column, discs as gaps; iliac marrow."""
    spine_z = np.array([-200, -300, -450, -600, -700, -790], float)
    spine_y = np.array([25, 62, 75, 62, 48, 70], float)
    spine_r = np.array([10, 14, 16, 19, 21, 24], float)
    z = -195.0
    while z > -800.0:
        r = float(np.interp(-z, -spine_z, spine_r))
        pitch = 16.0 + 0.9 * r
        y = float(np.interp(-z, -spine_z, spine_y))
        b.add("vertebral body", b.ellipsoid((0, y, z - pitch / 2), (r, 0.85 * r, 0.4 * pitch)),
              "spine", "spine")
        z -= pitch
    for side in (-1.0, 1.0):
        b.add("iliac marrow",
              b.ellipsoid((side * 100, 45, -790), (45, 16, 55), (side * 0.25, 0.3, 1.0)),
              "pelvic_marrow", "marrow")


def _thorax(b: _Builder) -> tuple[tuple[Ellipsoid, Ellipsoid], np.ndarray]:
    """Lungs, airways, oesophagus and great vessels; returns the lungs and the oesophagus line."""
    lungs = (b.ellipsoid((-78, 5, -425), (62, 88, 125)), b.ellipsoid((80, 8, -420), (58, 85, 120)))
    for lung in lungs:
        b.add("lung", lung, "lung", "lung")
    for start, end, r in [((0, -15, -230), (0, 0, -400), 9), ((0, 0, -400), (-38, 5, -432), 6),
                          ((0, 0, -400), (36, 8, -440), 6)]:
        b.add("airway", b.capsule(start, end, r), "airway", "airway")
    oesophagus = np.array([b.p(0, 6, -240), b.p(2, 18, -330), b.p(6, 26, -420), b.p(10, 28, -500),
                           b.p(22, 20, -560), b.p(45, 0, -590)])
    for start, end in zip(oesophagus[:-1], oesophagus[1:]):
        b.add("oesophagus", Capsule(start, end, OESOPHAGUS_RADIUS_MM), "oesophagus", "oesophagus")
    vessels = [((0, -25, -480), (-5, -30, -392), 14), ((-5, -30, -392), (12, 8, -362), 13),
               ((12, 8, -362), (24, 42, -385), 12), ((24, 42, -385), (16, 44, -700), 11),
               ((16, 44, -700), (6, 35, -770), 10), ((-30, -15, -330), (-28, -15, -452), 10),
               ((-24, 32, -545), (-20, 36, -760), 11)]
    for start, end, r in vessels:
        b.add("great vessels", b.capsule(start, end, r), "blood_pool", "blood_pool")
    return lungs, oesophagus


def _abdomen(b: _Builder, rng: np.random.Generator) -> None:
    """Liver, stomach, spleen, kidneys (cortex, medulla, pelvis), bowel loops, bladder."""
    b.add("liver", b.ellipsoid((-55, 0, -590), (88, 90, 80)), "liver", "liver")
    b.add("inferior vena cava", b.capsule((-24, 32, -520), (-20, 36, -700), 11), "blood_pool",
          "blood_pool")
    b.add("stomach", b.ellipsoid((62, -25, -600), (48, 38, 45), (0.3, -0.4, 1.0)), "stomach",
          "stomach")
    b.add("spleen", b.ellipsoid((100, 42, -588), (30, 52, 55), (0.2, 0.3, 1.0)), "spleen", "spleen")
    for side, zc in ((-1.0, -672.0), (1.0, -658.0)):
        axis = (-side * 0.25, 0.2, 1.0)
        b.add("kidney cortex", b.ellipsoid((side * 72, 52, zc), (30, 26, 55), axis),
              "kidney_cortex", "kidney")
        b.add("kidney medulla", b.ellipsoid((side * 72, 52, zc), (19, 16, 38), axis),
              "kidney_medulla", "kidney")
        b.add("renal pelvis", b.ellipsoid((side * 62, 50, zc), (8, 8, 14), axis), "renal_pelvis",
              "kidney")
    for _ in range(int(rng.integers(4, 9))):
        centre = (rng.uniform(-105, 105), rng.uniform(-70, 20), rng.uniform(-790, -665))
        semi = tuple(rng.uniform(9, 18, size=3))
        axis = tuple(rng.normal(size=3))
        b.add("bowel", b.ellipsoid(centre, semi, axis), _uniform(rng, 1.0, 2.5), "bowel")
    fill = _uniform(rng, 0.7, 1.2)
    b.add("bladder", b.ellipsoid((0, -35, -835), (48 * fill, 38 * fill, 36 * fill)), "bladder",
          "bladder")


def _heart(b: _Builder) -> None:
    """Chambers (blood pool), left-ventricular myocardium and its cavity, on top of the rest."""
    axis = (0.55, -0.45, -0.7)
    b.add("heart chambers", b.ellipsoid((20, -30, -485), (52, 44, 62), axis), "blood_pool",
          "blood_pool")
    b.add("left ventricular myocardium", b.ellipsoid((38, -38, -505), (38, 34, 50), axis),
          "myocardium", "myocardium")
    b.add("left ventricular cavity", b.ellipsoid((36, -36, -500), (25, 21, 36), axis),
          "blood_pool", "blood_pool")


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's body habitus, organ positions and uptakes."""
    height = _uniform(rng, 0.92, 1.08)          # scales z
    width = _uniform(rng, 0.88, 1.22)           # body habitus
    organ = 1.0 + 0.4 * (width - 1.0)           # organs grow less than the body outline
    fat = float(np.clip(12.0 + 70.0 * (width - 0.95) + rng.normal(0.0, 3.0), 6.0, 40.0))
    weight = float(np.clip(72.0 * width ** 2 * height * rng.uniform(0.93, 1.07), 45.0, 140.0))
    builder = _Builder(organ, height, sample_uptakes(rng))
    _body_outline(builder, fat)
    _head_and_neck(builder)
    _spine_and_pelvis(builder)
    lungs, oesophagus = _thorax(builder)
    _abdomen(builder, rng)
    _heart(builder)
    body = {"height_scale": height, "width_scale": width, "organ_scale": organ,
            "fat_mm": fat, "weight_kg": weight}
    return Anatomy(layers=builder.layers, uptakes=builder.u, body=body,
                   z_range=(-1000.0 * height, 0.0), lungs=lungs, oesophagus=oesophagus,
                   oesophagus_radius=OESOPHAGUS_RADIUS_MM, limbs=builder.limbs)

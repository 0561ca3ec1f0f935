"""Where a sarcoma goes: placement in the thigh, calf, upper arm, buttock or trunk wall.

Each placer gets the tumour's semi-axes (radial, tangential, axial; mm) and returns its centre
(LPS mm), its frame (3x3 rotation, columns radial / tangential / axial) and the solids it must not
enter (the other limbs, the trunk for an arm, its own bone). Limb tumours lie beside the bone,
inside the limb or bulging out of it; buttock and trunk-wall tumours sit at the body outline.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from MTLRadiomicsLib.synth.anatomy import Anatomy
from MTLRadiomicsLib.synth.placement import frame
from MTLRadiomicsLib.synth.shapes import Capsule, Inflated, Shape, VerticalTube

Placement = tuple[np.ndarray, np.ndarray, list[Shape]]  # centre, rotation, forbidden solids


def _other(name: str) -> str:
    return "left" if name == "right" else "right"


def _tube_radius(tube: VerticalTube, z: float, direction: np.ndarray) -> tuple[np.ndarray, float]:
    """Centre (x, y) of the tube's cross-section at z and its radius (mm) along ``direction``."""
    at = lambda v: float(np.interp(z, tube.z, v))  # noqa: E731
    a, b = at(tube.a), at(tube.b)
    return np.array([at(tube.cx), at(tube.cy)]), 1.0 / float(np.hypot(direction[0] / a,
                                                                      direction[1] / b))


def _in_plane(theta: float, side: float) -> np.ndarray:
    """Unit vector at ``theta`` (rad) from lateral towards anterior (-y)."""
    return np.array([side * np.cos(theta), -np.sin(theta), 0.0])


def _limb_place(rng: np.random.Generator, anatomy: Anatomy, tube: VerticalTube, bone: Capsule,
                z: float, theta: float, side: float, semi: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Centre beside the bone, inside the limb or bulging out of it; frame radial from the axis."""
    u = _in_plane(theta, side)
    centre_xy, radius = _tube_radius(tube, z, u)
    bone_xy = np.array([np.interp(z, [bone.p1[2], bone.p0[2]], [bone.p1[0], bone.p0[0]]),
                        np.interp(z, [bone.p1[2], bone.p0[2]], [bone.p1[1], bone.p0[1]])])
    bone_offset = float(np.dot(bone_xy - centre_xy, u[:2]))
    d_min = max(bone_offset, 0.0) + bone.radius + 4.0 + semi[0]
    d_max = max(d_min, radius - 0.6 * semi[0])
    d = rng.uniform(d_min, d_max)
    centre = np.array([centre_xy[0] + d * u[0], centre_xy[1] + d * u[1], z])
    return centre, frame((0, 0, 1), u)


def _thigh(rng: np.random.Generator, anatomy: Anatomy, name: str, semi: np.ndarray) -> Placement:
    side, h, limbs = (-1.0 if name == "right" else 1.0), anatomy.body["height_scale"], anatomy.limbs
    z = rng.uniform(-1270.0, -900.0) * h
    tube = limbs[f"{name}_thigh"] if z > -1050.0 * h else limbs[f"{name}_lower_thigh"]
    bone = limbs[f"{name}_femur"] if z > -1050.0 * h else limbs[f"{name}_femur_lower"]
    centre, rotation = _limb_place(rng, anatomy, tube, bone, z, rng.uniform(-np.pi, np.pi), side,
                                   semi)
    other = _other(name)
    forbidden = [limbs[f"{other}_thigh"], limbs[f"{other}_lower_thigh"], Inflated(bone, 2.0)]
    return centre, rotation, forbidden + _arms(limbs)


def _calf(rng: np.random.Generator, anatomy: Anatomy, name: str, semi: np.ndarray) -> Placement:
    side, h, limbs = (-1.0 if name == "right" else 1.0), anatomy.body["height_scale"], anatomy.limbs
    z = rng.uniform(-1600.0, -1370.0) * h
    theta = -np.pi / 2 + rng.uniform(-1.9, 1.9)  # around posterior (the calf muscles)
    centre, rotation = _limb_place(rng, anatomy, limbs[f"{name}_calf"], limbs[f"{name}_tibia"], z,
                                   theta, side, semi)
    forbidden = [limbs[f"{_other(name)}_calf"], Inflated(limbs[f"{name}_tibia"], 2.0)]
    return centre, rotation, forbidden


def _upper_arm(rng: np.random.Generator, anatomy: Anatomy, name: str, semi: np.ndarray
               ) -> Placement:
    side, limbs = (-1.0 if name == "right" else 1.0), anatomy.limbs
    arm, humerus = limbs[f"{name}_upper_arm"], limbs[f"{name}_humerus"]
    p0, p1 = np.asarray(arm.p0), np.asarray(arm.p1)
    axis = (p0 - p1) / np.linalg.norm(p0 - p1)
    t = rng.uniform(0.25, 0.8)
    point = p0 + t * (p1 - p0)
    u = frame(axis, _in_plane(rng.uniform(-2.0, 2.0), side))[:, 0]
    d_min = humerus.radius + 4.0 + semi[0]
    d = rng.uniform(d_min, max(d_min, arm.radius - 0.6 * semi[0]))
    forbidden = [limbs["trunk"], limbs[f"{_other(name)}_upper_arm"], Inflated(humerus, 2.0)]
    return point + d * u, frame(axis, u), forbidden


def _trunk_outline_point(tube: VerticalTube, z: float, psi: float, side: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Point (mm) on the trunk outline at height z and angle psi (rad, from lateral towards
    posterior), and the outward direction."""
    direction = np.array([side * np.cos(psi), np.sin(psi), 0.0])
    centre_xy, radius = _tube_radius(tube, z, direction)
    return np.array([centre_xy[0] + radius * direction[0], centre_xy[1] + radius * direction[1],
                     z]), direction


def _buttock(rng: np.random.Generator, anatomy: Anatomy, name: str, semi: np.ndarray
             ) -> Placement:
    side, h, limbs = (-1.0 if name == "right" else 1.0), anatomy.body["height_scale"], anatomy.limbs
    z = rng.uniform(-875.0, -815.0) * h
    point, u = _trunk_outline_point(limbs["trunk"], z, rng.uniform(0.6, 1.3), side)
    centre = point + u * semi[0] * rng.uniform(-0.7, 0.1)
    return centre, frame((0, 0, 1), u), _arms(limbs) + [limbs[f"{_other(name)}_thigh"]]


def _trunk_wall(rng: np.random.Generator, anatomy: Anatomy, name: str, semi: np.ndarray
                ) -> Placement:
    side, h = (-1.0 if name == "right" else 1.0), anatomy.body["height_scale"]
    z = rng.uniform(-720.0, -430.0) * h
    point, u = _trunk_outline_point(anatomy.limbs["trunk"], z, rng.uniform(-np.pi, np.pi), side)
    centre = point + u * semi[0] * rng.uniform(-0.6, 0.2)
    return centre, frame((0, 0, 1), u), _arms(anatomy.limbs)


def _arms(limbs: dict[str, Shape]) -> list[Shape]:
    return [limbs[f"{n}_{p}"] for n in ("right", "left") for p in ("upper_arm", "forearm")]


PLACERS: dict[str, Callable[[np.random.Generator, Anatomy, str, np.ndarray], Placement]] = {
    "thigh": _thigh, "calf": _calf, "upper_arm": _upper_arm, "buttock": _buttock,
    "trunk_wall": _trunk_wall}

"""Anatomy additions for tumours of the limbs and trunk wall (sarcoma patients only).

The base phantom ends at mid-thigh and its arms have no bone. For these patients the legs go on
to the ankle (knee, calf, femur, tibia), the upper arms get a humerus, and a large tumour expands
the body outline (a subcutaneous fat cover over the part of the tumour outside the muscle) instead
of poking into air. Layers are appended to a copy of the anatomy, so lung and oesophageal
patients are unchanged. Coordinates LPS mm, uptakes SUV.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from MTLRadiomicsLib.synth.anatomy import Anatomy, Layer
from MTLRadiomicsLib.synth.shapes import Capsule, Difference, Inflated, Shape, VerticalTube

KNEE_Z_MM = -1330.0      # nominal, times the height scale
ANKLE_Z_MM = -1720.0
EXTENSION_TOP_Z_MM = -1040.0


def _side(name: str) -> float:
    return -1.0 if name.startswith("right") else 1.0


def extend_limbs(anatomy: Anatomy) -> Anatomy:
    """A copy with lower thighs, knees, calves (muscle in fat), femur and tibia marrow down to the
    ankle, and a humerus in each upper arm; ``limbs`` gains "<side>_lower_thigh", "<side>_calf",
    "<side>_tibia", "<side>_humerus"."""
    h = anatomy.body["height_scale"]
    organ, fat = anatomy.body["organ_scale"], anatomy.body["fat_mm"]
    u = anatomy.uptakes
    fat_layers, core_layers, bone_layers = [], [], []
    limbs = dict(anatomy.limbs)
    for name in ("right", "left"):
        side = _side(name)
        cx = side * 85.0 * organ
        thigh = VerticalTube(np.array([KNEE_Z_MM, EXTENSION_TOP_Z_MM]) * h, [cx, cx], [5, 5],
                             np.array([47.0, 59.0]) * organ, np.array([50.0, 63.0]) * organ)
        calf = VerticalTube(np.array([ANKLE_Z_MM, -1600.0, -1450.0, KNEE_Z_MM + 10.0]) * h,
                            [cx] * 4, [0.0, 12.0, 16.0, 8.0],
                            np.array([27.0, 36.0, 48.0, 45.0]) * organ,
                            np.array([28.0, 40.0, 55.0, 49.0]) * organ)
        for key, tube in ((f"{name}_lower_thigh", thigh), (f"{name}_calf", calf)):
            limbs[key] = tube
            fat_tube = VerticalTube(tube.z, tube.cx, tube.cy, np.asarray(tube.a) + fat,
                                    np.asarray(tube.b) + fat)
            fat_layers.append(Layer("subcutaneous fat", fat_tube, u["fat"], "fat"))
            core_layers.append(Layer("muscle", tube, u["muscle"], "muscle"))
        femur = Capsule((side * 95.0 * organ, 5.0 * organ, EXTENSION_TOP_Z_MM * h),
                        (side * 100.0 * organ, 5.0 * organ, (KNEE_Z_MM + 20.0) * h), 12.0)
        tibia = Capsule((side * 92.0 * organ, -10.0 * organ, (KNEE_Z_MM - 25.0) * h),
                        (side * 90.0 * organ, -5.0 * organ, (ANKLE_Z_MM + 30.0) * h), 11.0)
        arm = anatomy.limbs[f"{name}_upper_arm"]
        assert isinstance(arm, Capsule)
        top, elbow = np.asarray(arm.p0), np.asarray(arm.p1)
        humerus = Capsule(top + 0.1 * (elbow - top), elbow, 9.0)
        limbs.update({f"{name}_femur_lower": femur, f"{name}_tibia": tibia,
                      f"{name}_humerus": humerus})
        for bone in (femur, tibia, humerus):
            bone_layers.append(Layer("long-bone marrow", bone, u["femoral_marrow"], "marrow"))
    layers = anatomy.layers + fat_layers + core_layers + bone_layers
    return dataclasses.replace(anatomy, layers=layers, limbs=limbs)


def muscle_cores(anatomy: Anatomy) -> list[Shape]:
    """The body's muscle cores (trunk, neck, limbs): inside them lies tissue, not skin and air."""
    return [layer.shape for layer in anatomy.layers if layer.name == "muscle"]


def with_tumour_bed(anatomy: Anatomy, gtv: Shape, lowest_z_mm: float) -> Anatomy:
    """A copy whose outline covers ``gtv``: subcutaneous fat over the part of the tumour outside
    the muscle (the muscle and what lies in it are untouched); the body's z range reaches 60 mm
    below ``lowest_z_mm``."""
    fat = anatomy.body["fat_mm"]
    cover = Difference(Inflated(gtv, fat + 3.0), muscle_cores(anatomy))
    layers = anatomy.layers + [Layer("subcutaneous fat over the tumour", cover,
                                     anatomy.uptakes["fat"], "fat")]
    z_lo = min(anatomy.z_range[0], float(lowest_z_mm) - 60.0)
    return dataclasses.replace(anatomy, layers=layers, z_range=(z_lo, anatomy.z_range[1]))

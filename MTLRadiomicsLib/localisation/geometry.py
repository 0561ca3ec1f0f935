"""Coordinates for localisation: RAS/LPS points, boxes, and the PET re-oriented to LPS axes.

RAS (as Slicer shows) and LPS (as DICOM and SimpleITK use) differ by the sign of x and y. The
search works on the PET re-oriented so that array axes (z, y, x) run towards Superior, Posterior
and Left; positions are reported through the re-oriented image's own geometry, so they are exact
physical LPS points whatever direction matrix the input had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

Point = tuple[float, float, float]


def _point(point: Sequence[float]) -> Point:
    values = tuple(float(v) for v in point)
    if len(values) != 3 or not all(np.isfinite(values)):
        raise ValueError(f"a point needs three finite coordinates, not {point!r}")
    return values  # type: ignore[return-value]


def ras_to_lps(point: Sequence[float]) -> Point:
    """RAS point (mm) to LPS: x and y change sign."""
    x, y, z = _point(point)
    return (-x, -y, z)


def lps_to_ras(point: Sequence[float]) -> Point:
    """LPS point (mm) to RAS: x and y change sign."""
    x, y, z = _point(point)
    return (-x, -y, z)


def point_in_volume(pet: PetVolume, point_lps: Sequence[float]) -> bool:
    """Whether an LPS point (mm) lies within the PET's voxels (half a voxel beyond the outer
    voxel centres counts as inside)."""
    image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    image.SetSpacing(pet.spacing)
    image.SetOrigin(pet.origin)
    image.SetDirection(pet.direction)
    index = image.TransformPhysicalPointToContinuousIndex(list(_point(point_lps)))
    return all(-0.5 <= i <= n - 0.5 for i, n in zip(index, pet.size))


def box_center_and_size(corner_a_lps: Sequence[float], corner_b_lps: Sequence[float]
                        ) -> tuple[Point, Point]:
    """Centre (LPS mm) and edge lengths (mm, x y z) of the box with these two opposite corners."""
    a, b = np.asarray(_point(corner_a_lps)), np.asarray(_point(corner_b_lps))
    centre = tuple(float(v) for v in (a + b) / 2.0)
    size = tuple(float(v) for v in np.abs(b - a))
    return centre, size  # type: ignore[return-value]


@dataclass
class OrientedPet:
    """The PET with array axes (z, y, x) towards Superior, Posterior, Left.

    Attributes:
        suv: float32 (z, y, x).
        spacing: voxel size (x, y, z) in mm along those axes.
        origin, direction: geometry of the re-oriented image (LPS).
    """

    suv: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray

    @classmethod
    def from_pet(cls, pet: PetVolume) -> "OrientedPet":
        image = pet.to_sitk()
        if pet.orientation != "LPS":
            image = sitk.DICOMOrient(image, "LPS")
        return cls(suv=sitk.GetArrayFromImage(image).astype(np.float32, copy=False),
                   spacing=tuple(float(s) for s in image.GetSpacing()),  # type: ignore[arg-type]
                   origin=tuple(float(o) for o in image.GetOrigin()),  # type: ignore[arg-type]
                   direction=np.asarray(image.GetDirection(), float).reshape(3, 3))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def spacing_zyx(self) -> np.ndarray:
        return np.asarray(self.spacing[::-1], float)

    def to_physical(self, index_zyx: Sequence[float]) -> Point:
        """LPS point (mm) of a (possibly fractional) array index (z, y, x)."""
        ijk = np.asarray(index_zyx, float)[::-1] * np.asarray(self.spacing)
        p = np.asarray(self.origin) + self.direction @ ijk
        return tuple(float(v) for v in p)  # type: ignore[return-value]

"""The engine's in-memory PET volume: an SUV array with its exact physical geometry."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.pet_input.suv import SuvConversion
from MTLRadiomicsLib.pet_input.tracer import TracerCheck


@dataclass
class PetVolume:
    """A 3-D PET volume in body-weight SUV (g/ml).

    Attributes:
        suv: float32 array, shape (z, y, x) as SimpleITK's ``GetArrayFromImage`` gives it.
        spacing: voxel size in mm, (x, y, z) order as SimpleITK.
        origin: physical position of voxel (0, 0, 0) in mm, LPS.
        direction: 3x3 direction cosines, row-major, 9 floats (LPS, as SimpleITK).
        source: the path the volume was read from.
        source_format: "dicom", "nifti", "nrrd", "mha" or "array".
        suv_conversion: how stored values became SUV and which facts were used.
        series: descriptive facts (patient, study, series, scanner) where the input has them.
        dicom_files: the slice files, sorted along the slice normal, when read from DICOM.
        tracer: whether the header speaks for F-18 FDG PET; analysis refuses anything else.
        dicom_headers: the slices' headers (no pixel data) in the order of ``dicom_files``, as read
            (a DICOM SEG of the result references them without reading the files again).
    """

    suv: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    source: str = ""
    source_format: str = "array"
    suv_conversion: SuvConversion = field(default_factory=SuvConversion.assumed_suv)
    series: dict[str, Any] = field(default_factory=dict)
    dicom_files: list[str] = field(default_factory=list)
    tracer: TracerCheck = field(default_factory=TracerCheck)
    dicom_headers: list[Any] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.suv = np.ascontiguousarray(self.suv, dtype=np.float32)
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = tuple(float(d) for d in self.direction)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x)."""
        return tuple(self.suv.shape)  # type: ignore[return-value]

    @property
    def size(self) -> tuple[int, int, int]:
        """Image size in voxels, (x, y, z) as SimpleITK."""
        return tuple(reversed(self.suv.shape))  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in ml (cm^3)."""
        return float(np.prod(self.spacing)) / 1000.0

    @property
    def orientation(self) -> str:
        """Three-letter orientation code of the axes (x, y, z), e.g. 'LPS' for axial DICOM."""
        return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(self.direction)

    def to_sitk(self) -> sitk.Image:
        """The SUV volume as a SimpleITK float32 image with this geometry."""
        image = sitk.GetImageFromArray(self.suv)
        self.copy_geometry_to(image)
        return image

    def copy_geometry_to(self, image: sitk.Image) -> sitk.Image:
        """Give ``image`` (same size) this volume's spacing, origin and direction; returns it."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"image size {image.GetSize()} differs from PET size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def physical_to_index(self, point_lps: tuple[float, float, float]) -> tuple[int, int, int]:
        """Nearest voxel index (x, y, z) of a physical LPS point in mm."""
        image = sitk.Image([1, 1, 1], sitk.sitkUInt8)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        continuous = image.TransformPhysicalPointToContinuousIndex([float(p) for p in point_lps])
        return tuple(int(round(c)) for c in continuous)  # type: ignore[return-value]

    def index_to_physical(self, index_xyz: tuple[float, float, float]) -> tuple[float, float, float]:
        """Physical LPS point in mm of a (possibly fractional) voxel index (x, y, z)."""
        d = np.asarray(self.direction).reshape(3, 3)
        p = np.asarray(self.origin) + d @ (np.asarray(index_xyz, dtype=float) * np.asarray(self.spacing))
        return tuple(float(v) for v in p)  # type: ignore[return-value]

    @classmethod
    def from_sitk(cls, image: sitk.Image, **kwargs: Any) -> "PetVolume":
        """Wrap a 3-D SimpleITK image whose values are already SUV."""
        return cls(
            suv=sitk.GetArrayFromImage(image).astype(np.float32),
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=image.GetDirection(),
            **kwargs,
        )

    def statistics(self) -> dict[str, float]:
        """SUVmax, SUVmean over the whole volume and over the body (SUV > 0.1), in g/ml."""
        body = self.suv > 0.1
        return {
            "suv_max": float(self.suv.max()),
            "suv_mean": float(self.suv.mean()),
            "suv_mean_body": float(self.suv[body].mean()) if body.any() else 0.0,
            "suv_min": float(self.suv.min()),
        }

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable description: geometry, SUV derivation, statistics, series facts."""
        extent = [n * s for n, s in zip(self.size, self.spacing)]
        return {
            "source": self.source,
            "format": self.source_format,
            "size_xyz": list(self.size),
            "spacing_mm": list(self.spacing),
            "extent_mm": [round(e, 2) for e in extent],
            "origin_lps_mm": list(self.origin),
            "direction": list(self.direction),
            "orientation": self.orientation,
            "voxel_volume_ml": self.voxel_volume_ml,
            "suv_conversion": asdict(self.suv_conversion),
            "statistics": self.statistics(),
            "series": dict(self.series),
            "tracer": self.tracer.to_dict(),
        }

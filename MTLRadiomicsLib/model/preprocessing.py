"""From a PET volume to network input: a crop around the lesion, resampled and normalised.

The crop grid has the LPS axes (identity direction) whatever the input orientation, so the network
always sees the same anatomical orientation. Training and analysis use these same functions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.model.model_card import Preprocessing


def crop_reference(center_lps: Sequence[float], spacing_mm: Sequence[float],
                   crop_size_zyx: Sequence[int]) -> sitk.Image:
    """An empty image whose voxel centres form the crop grid: size (x, y, z), identity direction,
    centred on ``center_lps`` (mm)."""
    size_xyz = [int(s) for s in reversed(crop_size_zyx)]
    spacing = [float(s) for s in spacing_mm]
    reference = sitk.Image(size_xyz, sitk.sitkUInt8)
    reference.SetSpacing(spacing)
    origin = [float(c) - (n - 1) / 2.0 * s for c, n, s in zip(center_lps, size_xyz, spacing)]
    reference.SetOrigin(origin)
    return reference


def resample_to(image: sitk.Image, reference: sitk.Image, nearest: bool = False,
                default: float = 0.0) -> np.ndarray:
    """``image`` resampled onto ``reference``'s grid: array (z, y, x); float32, or uint8 when
    ``nearest`` (masks)."""
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    pixel = sitk.sitkUInt8 if nearest else sitk.sitkFloat32
    out = sitk.Resample(image, reference, sitk.Transform(), interpolator, default, pixel)
    return sitk.GetArrayFromImage(out)


def extract_crop(image: sitk.Image, center_lps: Sequence[float], spacing_mm: Sequence[float],
                 crop_size_zyx: Sequence[int], nearest: bool = False) -> np.ndarray:
    """A crop of ``image`` of ``crop_size_zyx`` voxels at ``spacing_mm`` centred on ``center_lps``;
    outside the image is 0."""
    return resample_to(image, crop_reference(center_lps, spacing_mm, crop_size_zyx), nearest)


def normalise_suv(suv: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """Network input from SUV: clip(SUV, 0, suv_clip) / suv_scale, float32."""
    return (np.clip(suv, 0.0, preprocessing.suv_clip) / preprocessing.suv_scale).astype(np.float32)


def mask_center_lps(mask: np.ndarray, image: sitk.Image) -> tuple[float, float, float]:
    """Physical centre (LPS mm) of the bounding box of a non-empty mask (z, y, x) on ``image``'s grid."""
    where = np.argwhere(mask > 0)
    if where.size == 0:
        raise ValueError("the mask is empty")
    center_zyx = (where.min(axis=0) + where.max(axis=0)) / 2.0
    return tuple(image.TransformContinuousIndexToPhysicalPoint([float(c) for c in center_zyx[::-1]]))


def hottest_point_lps(suv: np.ndarray, image: sitk.Image) -> tuple[float, float, float]:
    """Physical position (LPS mm) of the SUVmax voxel."""
    k, j, i = np.unravel_index(int(np.argmax(suv)), suv.shape)
    return tuple(image.TransformIndexToPhysicalPoint([int(i), int(j), int(k)]))

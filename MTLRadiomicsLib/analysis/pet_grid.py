"""Put arrays from the network's crop grid back onto the original PET grid, exactly.

The PET image itself is the resampling reference, so every output has the input's origin, spacing
and direction; voxels outside the crop are 0."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.pet_volume import PetVolume


def crop_to_pet(array: np.ndarray, crop_reference: sitk.Image, pet: PetVolume) -> np.ndarray:
    """Linear resampling of a (D, H, W) crop-grid array onto the PET grid: float32 (z, y, x)."""
    image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    image.CopyInformation(crop_reference)
    reference = pet.copy_geometry_to(sitk.Image(list(pet.size), sitk.sitkUInt8))
    out = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def probability_to_mask(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary uint8 mask of ``probability >= threshold``."""
    return (probability >= threshold).astype(np.uint8)


def largest_component_near(mask: np.ndarray, seed_zyx: tuple[int, int, int] | None = None) -> np.ndarray:
    """Keep the connected component containing ``seed_zyx`` (or the largest): one lesion per MTV."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(np.uint8)
    if seed_zyx is not None and labels[seed_zyx] > 0:
        keep = labels[seed_zyx]
    else:
        sizes = ndimage.sum(mask, labels, index=range(1, n + 1))
        keep = int(np.argmax(sizes)) + 1
    return (labels == keep).astype(np.uint8)

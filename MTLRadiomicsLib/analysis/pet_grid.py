"""Put arrays from the network's crop grid back onto the original PET grid, exactly.

The PET image itself is the resampling reference, so every output has the input's origin, spacing
and direction; voxels outside the crop are 0."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def crop_box_on_pet(crop_reference: sitk.Image, pet: PetVolume) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of the PET grid that cover the crop (its eight corners, plus one voxel)."""
    size = crop_reference.GetSize()
    corners = [crop_reference.TransformContinuousIndexToPhysicalPoint(
        [(-0.5 if c == 0 else n - 0.5) for c, n in zip(corner, size)])
        for corner in np.ndindex(2, 2, 2)]
    pet_image = pet.copy_geometry_to(sitk.Image(list(pet.size), sitk.sitkUInt8))
    indices = np.array([pet_image.TransformPhysicalPointToContinuousIndex(c) for c in corners])
    lo = np.maximum(np.floor(indices.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(indices.max(axis=0)).astype(int) + 2, np.asarray(pet.size))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))  # type: ignore[return-value]


def crop_to_pet(array: np.ndarray, crop_reference: sitk.Image, pet: PetVolume) -> np.ndarray:
    """Linear resampling of a (D, H, W) crop-grid array onto the PET grid: float32 (z, y, x), zero
    outside the crop. Only the PET voxels that the crop covers are resampled."""
    image = sitk.GetImageFromArray(np.asarray(array, dtype=np.float32))
    image.CopyInformation(crop_reference)
    out = np.zeros(pet.shape, dtype=np.float32)
    box = crop_box_on_pet(crop_reference, pet)
    if any(b.stop <= b.start for b in box):
        return out
    reference = sitk.Image([b.stop - b.start for b in reversed(box)], sitk.sitkUInt8)
    reference.SetSpacing(pet.spacing)
    reference.SetDirection(pet.direction)
    reference.SetOrigin(pet.index_to_physical((box[2].start, box[1].start, box[0].start)))
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    out[box] = sitk.GetArrayFromImage(resampled)
    return out


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

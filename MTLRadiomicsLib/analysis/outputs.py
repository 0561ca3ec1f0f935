"""Files the analysis writes, all on the original PET grid: the MTV as a Slicer segmentation
(.seg.nrrd, via slicerio) and as NIfTI, Grad-CAM heatmaps as NRRD, and a DICOM SEG for DICOM input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MTV_COLOR = (0.95, 0.3, 0.2)
NEOPLASM_TERMINOLOGY = {
    "contextName": "Segmentation category and type - 3D Slicer General Anatomy list",
    "category": ["SCT", "49755003", "Morphologically Altered Structure"],
    "type": ["SCT", "108369006", "Neoplasm"],
}


def ijk_to_lps(pet: PetVolume) -> np.ndarray:
    """4x4 matrix from voxel index (i, j, k) = (x, y, z) to LPS mm."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(pet.direction).reshape(3, 3) * np.asarray(pet.spacing)
    matrix[:3, 3] = pet.origin
    return matrix


def segmentation_of(masks: list[tuple[np.ndarray, dict]], pet: PetVolume) -> dict:
    """A slicerio segmentation on the PET grid holding ``masks`` ((z, y, x) mask, segment fields) in
    order. The layers, label values and extents are slicerio's (``add_segment``), worked out on the
    box that holds every masked voxel and then placed on the whole grid: the same segmentation as
    adding each mask to the whole grid, without scanning the whole grid once per mask and layer."""
    import slicerio

    segmentation = slicerio.create_segmentation(pet.size, ijk_to_lps(pet))
    union = np.zeros(pet.shape, dtype=bool)
    for mask, _ in masks:
        union |= np.asarray(mask) > 0
    if not union.any():
        for mask, segment in masks:
            slicerio.add_segment(segmentation, np.transpose(np.asarray(mask) > 0, (2, 1, 0)), segment)
        return segmentation
    where = np.argwhere(union)
    (z0, y0, x0), (z1, y1, x1) = where.min(axis=0), where.max(axis=0) + 1
    box = slicerio.create_segmentation((x1 - x0, y1 - y0, z1 - z0), ijk_to_lps(pet))
    for mask, segment in masks:
        part = np.asarray(mask)[z0:z1, y0:y1, x0:x1] > 0
        slicerio.add_segment(box, np.ascontiguousarray(np.transpose(part, (2, 1, 0))), segment)
    layers = box["voxels"] if box["voxels"].ndim == 4 else box["voxels"][np.newaxis]
    voxels = np.zeros((layers.shape[0], *pet.size), dtype=layers.dtype)
    voxels[:, x0:x1, y0:y1, z0:z1] = layers
    segmentation["voxels"] = voxels if voxels.shape[0] > 1 else voxels[0]
    offsets = (int(x0), int(x0), int(y0), int(y0), int(z0), int(z0))
    for segment in box["segments"]:
        extent = segment["extent"]
        if extent[1] >= extent[0]:                     # [0, -1, ...] marks an empty segment
            segment["extent"] = [int(v) + o for v, o in zip(extent, offsets)]
    segmentation["segments"] = box["segments"]
    return segmentation


def write_seg_nrrd(mask: np.ndarray, pet: PetVolume, path: str | Path, name: str = "MTV") -> Path:
    """A Slicer segmentation file with one segment ``name`` (neoplasm terminology) on the PET grid."""
    import slicerio

    segmentation = segmentation_of([(mask, {"id": name, "name": name, "color": list(MTV_COLOR),
                                            "terminology": NEOPLASM_TERMINOLOGY})], pet)
    slicerio.write_segmentation(str(path), segmentation)
    return Path(path)


METHOD_COLORS = ((0.95, 0.3, 0.2), (0.2, 0.6, 0.95), (0.3, 0.8, 0.3), (0.95, 0.75, 0.1), (0.7, 0.3, 0.9),
                 (0.1, 0.8, 0.8), (0.9, 0.5, 0.7))


def write_segments_nrrd(masks: dict[str, np.ndarray], pet: PetVolume, path: str | Path) -> Path:
    """A Slicer segmentation with one segment per named mask (overlapping segments in separate layers)."""
    import slicerio

    segmentation = segmentation_of(
        [(mask, {"id": f"segment_{index + 1}", "name": name, "color": list(METHOD_COLORS[index % len(METHOD_COLORS)]),
                 "terminology": NEOPLASM_TERMINOLOGY}) for index, (name, mask) in enumerate(masks.items())], pet)
    slicerio.write_segmentation(str(path), segmentation)
    return Path(path)


def read_seg_nrrd(path: str | Path, name: str = "MTV") -> tuple[np.ndarray, np.ndarray]:
    """The segment ``name`` of a .seg.nrrd as a uint8 (z, y, x) mask and the 4x4 ijk-to-LPS matrix."""
    import slicerio

    segmentation = slicerio.read_segmentation(str(path))
    segment = slicerio.segment_from_name(segmentation, name)
    voxels = segmentation["voxels"]
    layer = voxels[segment["layer"]] if voxels.ndim == 4 else voxels
    mask = (layer == segment["labelValue"]).astype(np.uint8)
    return np.ascontiguousarray(np.transpose(mask, (2, 1, 0))), np.asarray(segmentation["ijkToLPS"])


def write_image_like(array: np.ndarray, pet: PetVolume, path: str | Path, compress: bool = True) -> Path:
    """Write a (z, y, x) array with the PET's geometry (NIfTI, NRRD, MHA by extension)."""
    image = pet.copy_geometry_to(sitk.GetImageFromArray(np.ascontiguousarray(array)))
    sitk.WriteImage(image, str(path), useCompression=compress)
    return Path(path)

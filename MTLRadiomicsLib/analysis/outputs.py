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


def write_seg_nrrd(mask: np.ndarray, pet: PetVolume, path: str | Path, name: str = "MTV") -> Path:
    """A Slicer segmentation file with one segment ``name`` (neoplasm terminology) on the PET grid."""
    import slicerio

    segmentation = slicerio.create_segmentation(pet.size, ijk_to_lps(pet))
    slicerio.add_segment(segmentation, np.transpose(mask > 0, (2, 1, 0)),
                         {"id": name, "name": name, "color": list(MTV_COLOR),
                          "terminology": NEOPLASM_TERMINOLOGY})
    slicerio.write_segmentation(str(path), segmentation)
    return Path(path)


METHOD_COLORS = ((0.95, 0.3, 0.2), (0.2, 0.6, 0.95), (0.3, 0.8, 0.3), (0.95, 0.75, 0.1), (0.7, 0.3, 0.9),
                 (0.1, 0.8, 0.8), (0.9, 0.5, 0.7))


def write_segments_nrrd(masks: dict[str, np.ndarray], pet: PetVolume, path: str | Path) -> Path:
    """A Slicer segmentation with one segment per named mask (overlapping segments in separate layers)."""
    import slicerio

    segmentation = slicerio.create_segmentation(pet.size, ijk_to_lps(pet))
    for index, (name, mask) in enumerate(masks.items()):
        slicerio.add_segment(segmentation, np.transpose(mask > 0, (2, 1, 0)),
                             {"id": f"segment_{index + 1}", "name": name,
                              "color": list(METHOD_COLORS[index % len(METHOD_COLORS)]),
                              "terminology": NEOPLASM_TERMINOLOGY})
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

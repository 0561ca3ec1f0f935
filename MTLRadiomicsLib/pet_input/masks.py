"""Read a mask (image file, RTSTRUCT or DICOM SEG) onto the voxel grid of a PET volume."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.reading import image_format
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.rtstruct import rasterise_rtstruct
from MTLRadiomicsLib.pet_input.seg_input import read_seg

GEOMETRY_TOLERANCE_MM = 1e-3


def load_mask(path: str | Path, pet: PetVolume, roi: Optional[str] = None) -> np.ndarray:
    """A binary mask on the PET grid: uint8 array, shape (z, y, x) as ``pet.suv``.

    Args:
        path: a mask image (NIfTI, NRRD, MHA; any non-zero voxel is inside), an RTSTRUCT file or a
            DICOM SEG file (or a folder holding exactly one of those).
        pet: the PET volume whose grid the mask is put on.
        roi: the ROI (RTSTRUCT) or segment label (SEG) to read; by default the only one, or for
            RTSTRUCT the first whose name starts with GTV.
    Image masks on another grid are resampled (nearest neighbour) onto the PET grid.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MaskInputError(f"mask {path} does not exist")
    if path.is_dir():
        path = _single_dicom_object(path)
    if path.name.lower().endswith(".seg.nrrd"):
        return _segmentation_file_mask(path, pet, roi)
    if image_format(path) is not None:
        return _image_mask(path, pet)
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        raise MaskInputError(f"{path.name}: not a mask image (NIfTI, NRRD, MHA) nor a DICOM file") from None
    modality = str(header.get("Modality", ""))
    if modality == "RTSTRUCT":
        return rasterise_rtstruct(path, pet, roi)
    if modality == "SEG":
        return _seg_mask(path, pet, roi)
    raise MaskInputError(f"{path.name} is DICOM {modality or 'without Modality'}, not RTSTRUCT or SEG")


def _segmentation_file_mask(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """One segment of a Slicer .seg.nrrd (by name; default MTV, else the only one) on the PET grid."""
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as error:  # slicerio/pynrrd raise several types for malformed files
        raise MaskInputError(f"{path.name}: not a readable Slicer segmentation ({error})") from None
    names = [s.get("name", s.get("id", "")) for s in segmentation.get("segments", [])]
    if not names:
        raise MaskInputError(f"{path.name} holds no segments")
    name = segment or ("MTV" if "MTV" in names else (names[0] if len(names) == 1 else None))
    if name not in names:
        raise MaskInputError(f"{path.name}: choose a segment with --roi; it holds {', '.join(names)}")
    info = slicerio.segment_from_name(segmentation, name)
    voxels = segmentation["voxels"]
    layer = voxels[info.get("layer", 0)] if voxels.ndim == 4 else voxels
    mask_ijk = (layer == info["labelValue"]).astype(np.uint8)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(mask_ijk, (2, 1, 0))))
    ijk = np.asarray(segmentation["ijkToLPS"], dtype=float)
    spacing = np.linalg.norm(ijk[:3, :3], axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in ijk[:3, 3]])
    image.SetDirection([float(d) for d in (ijk[:3, :3] / spacing).ravel()])
    if not _same_grid(image, pet):
        image = sitk.Resample(image, pet.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(image).astype(np.uint8)
    if not mask.any():
        raise MaskInputError(f"{path.name}: segment {name!r} is empty on the PET grid")
    return mask


def _single_dicom_object(folder: Path) -> Path:
    found = []
    for candidate in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(str(candidate), stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
            continue
        if str(ds.get("Modality", "")) in ("RTSTRUCT", "SEG"):
            found.append(candidate)
    if len(found) != 1:
        raise MaskInputError(f"{folder} holds {len(found)} RTSTRUCT/SEG files; give one file")
    return found[0]


def _same_grid(image: sitk.Image, pet: PetVolume) -> bool:
    return (tuple(image.GetSize()) == pet.size
            and np.allclose(image.GetSpacing(), pet.spacing, atol=GEOMETRY_TOLERANCE_MM)
            and np.allclose(image.GetOrigin(), pet.origin, atol=GEOMETRY_TOLERANCE_MM)
            and np.allclose(image.GetDirection(), pet.direction, atol=1e-5))


def _image_mask(path: Path, pet: PetVolume) -> np.ndarray:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise MaskInputError(f"{path.name}: cannot be read as a mask image (corrupt or not an image)") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MaskInputError(f"{path.name}: a 3-D single-component mask is needed")
    binary = sitk.Cast(sitk.NotEqual(image, 0), sitk.sitkUInt8)
    if not _same_grid(binary, pet):
        binary = sitk.Resample(binary, pet.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                               sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(binary).astype(np.uint8)
    if not mask.any():
        raise MaskInputError(f"{path.name}: the mask is empty on the PET grid (does it belong to this scan?)")
    return mask


def _seg_mask(path: Path, pet: PetVolume, label: Optional[str]) -> np.ndarray:
    """Union of the SEG's segments (or the one labelled ``label``) on the PET slices it references."""
    mask = read_seg(path, pet, label)
    if not mask.any():
        raise MaskInputError(f"{path.name}: the segment is empty on the PET grid")
    return mask

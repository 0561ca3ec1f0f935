"""Read a mask (image file, RTSTRUCT or DICOM SEG) onto the voxel grid of a PET volume."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.mask_checks import check_label_count, check_mask_extent, check_mask_values
from MTLRadiomicsLib.pet_input.mask_choice import choose_segment
from MTLRadiomicsLib.pet_input.reading import image_format
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.rtstruct import rasterise_rtstruct
from MTLRadiomicsLib.pet_input.seg_input import capped, read_seg

GEOMETRY_TOLERANCE_MM = 1e-3


def load_mask(path: str | Path, pet: PetVolume, segment: Optional[str] = None) -> np.ndarray:
    """A binary mask on the PET grid: uint8 array, shape (z, y, x) as ``pet.suv``.

    Args:
        path: a mask image (NIfTI, NRRD, MHA: a binary mask or a label map), a Slicer .seg.nrrd, an
            RTSTRUCT file or a DICOM SEG file (or a folder holding exactly one of those).
        pet: the PET volume whose grid the mask is put on.
        segment: what to read when the file holds several (``--segment``): the label value of a
            label map, the segment name of a .seg.nrrd, the ROI name of an RTSTRUCT (default: the
            first whose name starts with GTV), the segment label or number of a DICOM SEG. Without
            it a file with several non-empty segments or labels is refused, listing them.
    Image masks on another grid are resampled (nearest neighbour) onto the PET grid. What is not a
    tumour mask is refused: negative or non-integer values, more than 20 labels, more than half the
    scan or more than 5 l.
    """
    path = Path(path).expanduser()
    mask = _read_mask(path, pet, segment)
    check_mask_extent(mask, pet, path.name)
    return mask


def _read_mask(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """The mask file (or the one RTSTRUCT/SEG in a folder) on the PET grid."""
    if not path.exists():
        raise MaskInputError(f"mask {path} does not exist")
    if path.is_dir():
        path = _single_dicom_object(path)
    if path.name.lower().endswith(".seg.nrrd"):
        return _segmentation_file_mask(path, pet, segment)
    if image_format(path) is not None:
        return _image_mask(path, pet, segment)
    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError, EOFError):
        raise MaskInputError(f"{path.name}: not a mask image (NIfTI, NRRD, MHA) nor a DICOM file") from None
    modality = str(header.get("Modality", ""))
    if modality == "RTSTRUCT":
        return rasterise_rtstruct(path, pet, segment)
    if modality == "SEG":
        return _seg_mask(path, pet, segment)
    raise MaskInputError(f"{path.name} is DICOM {modality or 'without Modality'}, not RTSTRUCT or SEG")


def _segmentation_file_mask(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """One segment of a Slicer .seg.nrrd (``segment`` by name or id, else the only non-empty one) on the
    PET grid."""
    import slicerio

    try:
        segmentation = slicerio.read_segmentation(str(path))
    except Exception as error:  # slicerio/pynrrd raise several types for malformed files
        raise MaskInputError(f"{path.name}: not a readable Slicer segmentation ({capped(error)})") from None
    segments = {str(s.get("name", s.get("id", ""))): s for s in segmentation.get("segments", [])}
    if not segments:
        raise MaskInputError(f"{path.name} holds no segments")
    voxels = segmentation["voxels"]

    def voxels_of(info: dict) -> np.ndarray:
        layer = voxels[info.get("layer", 0)] if voxels.ndim == 4 else voxels
        return layer == info["labelValue"]

    found = {name: int(np.count_nonzero(voxels_of(info))) for name, info in segments.items()}
    aliases = {str(info["id"]): name for name, info in segments.items() if "id" in info}
    name = choose_segment(found, segment, path.name, aliases=aliases)
    mask_ijk = voxels_of(segments[name]).astype(np.uint8)
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


def _image_mask(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """A binary mask or one label of a label map (``segment``, else the only label) on the PET grid."""
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError:
        raise MaskInputError(f"{path.name}: cannot be read as a mask image (corrupt or not an image)") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MaskInputError(f"{path.name}: a 3-D single-component mask is needed")
    values = sitk.GetArrayViewFromImage(image)
    check_mask_values(values, path.name)
    labels, counts = np.unique(values[values != 0], return_counts=True)
    check_label_count(labels, path.name)
    if not labels.size:
        raise MaskInputError(f"{path.name}: the mask is empty (every voxel is 0)")
    found = {_label_text(v): int(c) for v, c in zip(labels, counts)}
    label = labels[list(found).index(choose_segment(found, _label_key(segment), path.name, "label"))]
    binary = sitk.Cast(sitk.Equal(image, float(label)), sitk.sitkUInt8)
    if not _same_grid(binary, pet):
        binary = sitk.Resample(binary, pet.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                               sitk.sitkUInt8)
    mask = sitk.GetArrayFromImage(binary).astype(np.uint8)
    if not mask.any():
        raise MaskInputError(f"{path.name}: the mask is empty on the PET grid (does it belong to this scan?)")
    return mask


def _label_text(value: float) -> str:
    return f"{float(value):g}"


def _label_key(segment: Optional[str]) -> Optional[str]:
    """--segment as a label value ('2', '2.0' -> '2'); a name stays as given (and is not found)."""
    if segment is None:
        return None
    try:
        return _label_text(float(segment))
    except ValueError:
        return segment


def _seg_mask(path: Path, pet: PetVolume, segment: Optional[str]) -> np.ndarray:
    """One segment of a DICOM SEG on the PET slices it references."""
    mask = read_seg(path, pet, segment)
    if not mask.any():
        raise MaskInputError(f"{path.name}: the segment is empty on the PET grid")
    return mask

"""Rasterise RTSTRUCT contours onto a PET voxel grid.

A voxel is inside when its centre lies inside the contour polygon of its slice (even-odd rule, so
contours nested on one slice make holes). The polygon test is matplotlib's ``Path``. Contours are
placed by their physical LPS coordinates, so the PET may be the referenced DICOM series, a crop of
it, or a NIfTI of the same frame of reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pydicom

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.mask_choice import names_listing
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

SLICE_TOLERANCE = 0.5   # a contour farther than this (in slices) from any slice centre is ignored


def roi_names(ds: Any) -> dict[int, str]:
    """ROINumber -> ROIName of an RTSTRUCT dataset."""
    return {int(r.ROINumber): str(r.ROIName) for r in ds.get("StructureSetROISequence", [])}


def choose_roi(names: list[str], roi: Optional[str], where: str) -> str:
    """The ROI asked for; else the only one; else the first whose name starts with GTV."""
    if not names:
        raise MaskInputError(f"{where} holds no ROIs (its StructureSetROISequence is empty or missing)")
    if roi is not None:
        if roi not in names:
            raise MaskInputError(f"{where}: no ROI named {roi!r}; it holds {names_listing(names)}")
        return roi
    if len(names) == 1:
        return names[0]
    gtv = [n for n in names if n.upper().startswith("GTV")]
    if gtv:
        return gtv[0]
    raise MaskInputError(f"{where} holds several ROIs ({names_listing(names)}); choose one with --segment NAME")


def rasterise_rtstruct(path: Path, pet: PetVolume, roi: Optional[str] = None) -> np.ndarray:
    """The ROI as a uint8 mask of shape (z, y, x) on the PET grid."""
    ds = pydicom.dcmread(str(path))
    numbers = roi_names(ds)
    name = choose_roi(list(numbers.values()), roi, path.name)
    number = next(n for n, v in numbers.items() if v == name)
    contours = next((c for c in ds.get("ROIContourSequence", [])
                     if int(c.ReferencedROINumber) == number), None)
    if contours is None or not contours.get("ContourSequence", None):
        raise MaskInputError(f"{path.name}: ROI {name!r} has no contours")
    pet_frame = pet.series.get("FrameOfReferenceUID")
    roi_frame = next((str(r.ReferencedFrameOfReferenceUID) for r in ds.get("StructureSetROISequence", [])
                      if int(r.ROINumber) == number and "ReferencedFrameOfReferenceUID" in r), None)
    if pet_frame and roi_frame and pet_frame != roi_frame:
        raise MaskInputError(f"{path.name}: ROI {name!r} is drawn in another frame of reference "
                             "than this PET (a different scan or registration)")

    mask = np.zeros(pet.shape, dtype=bool)
    to_index = np.linalg.inv(np.asarray(pet.direction).reshape(3, 3) * np.asarray(pet.spacing))
    origin = np.asarray(pet.origin)
    nz, ny, nx = pet.shape
    for contour in contours.ContourSequence:
        if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) not in ("CLOSED_PLANAR",):
            continue
        points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
        index = (points - origin) @ to_index.T      # continuous (x, y, z) voxel indices
        k = int(round(float(np.mean(index[:, 2]))))
        if abs(float(np.mean(index[:, 2])) - k) > SLICE_TOLERANCE or not 0 <= k < nz:
            continue
        _xor_polygon(mask[k], index[:, :2], nx, ny)
    if not mask.any():
        raise MaskInputError(f"{path.name}: ROI {name!r} does not overlap the PET volume")
    return mask.astype(np.uint8)


def _xor_polygon(plane: np.ndarray, polygon_xy: np.ndarray, nx: int, ny: int) -> None:
    """Toggle the voxels of ``plane`` (y, x) whose centres lie inside the polygon (x, y indices)."""
    from matplotlib.path import Path as PolygonPath      # only for RTSTRUCT masks

    x0, y0 = np.floor(polygon_xy.min(axis=0)).astype(int)
    x1, y1 = np.ceil(polygon_xy.max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, nx - 1), min(y1, ny - 1)
    if x1 < x0 or y1 < y0:
        return
    ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1]
    inside = PolygonPath(polygon_xy).contains_points(np.column_stack([xs.ravel(), ys.ravel()]))
    plane[y0:y1 + 1, x0:x1 + 1] ^= inside.reshape(xs.shape)

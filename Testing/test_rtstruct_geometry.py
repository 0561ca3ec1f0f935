"""RTSTRUCT rasterisation on non-square pixels and an oblique (rotated) direction, against an
independent reference: every voxel centre is placed in physical space (LPS mm), projected onto the
contour's slice plane, and tested against the polygon in millimetres with matplotlib's Path. The
rasteriser works in voxel indices instead, so a swapped spacing or a transposed direction shows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
SPACING = (2.0, 3.5, 4.0)                       # x, y, z mm: no two alike
SHAPE = (8, 30, 34)                             # z, y, x
ORIGIN = (-40.0, -55.0, 12.0)
FRAME = generate_uid()


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """A rotation about x, then y, then z (degrees): every direction cosine is off the axes."""
    a, b, c = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


DIRECTIONS = {"identity": np.eye(3), "oblique": rotation(12.0, -9.0, 27.0)}

# Polygons in millimetres in the slice plane: (a along the rows' direction, b along the columns').
# An L shape (not symmetric under swapping a and b) and, on another slice, a square with a square
# hole (two contours on one slice: even-odd rule).
L_SHAPE = [(4.3, 5.1), (41.7, 5.1), (41.7, 21.9), (19.3, 21.9), (19.3, 68.2), (4.3, 68.2)]
OUTER = [(6.1, 8.3), (50.2, 8.3), (50.2, 61.7), (6.1, 61.7)]
HOLE = [(18.4, 22.6), (37.9, 22.6), (37.9, 44.2), (18.4, 44.2)]
CONTOURS = {2: [L_SHAPE], 5: [OUTER, HOLE]}     # slice index -> polygons


def plane_axes(origin, direction: np.ndarray, spacing, k: int):
    """The slice plane k: its corner (voxel (0, 0, k)) and in-plane unit vectors, LPS."""
    corner = np.asarray(origin, float) + direction[:, 2] * spacing[2] * k
    return corner, direction[:, 0], direction[:, 1]


def contour_points(origin, direction, spacing, k: int, polygon_mm) -> np.ndarray:
    corner, u, v = plane_axes(origin, direction, spacing, k)
    return np.array([corner + a * u + b * v for a, b in polygon_mm])


def reference_mask(centres: np.ndarray, origin, direction, spacing) -> np.ndarray:
    """``centres``: voxel centres (z, y, x, 3) in LPS mm. The voxels inside the contours of their
    slice (even-odd), decided in millimetres in the slice plane."""
    mask = np.zeros(centres.shape[:3], bool)
    for k, polygons in CONTOURS.items():
        corner, u, v = plane_axes(origin, direction, spacing, k)
        rel = centres[k].reshape(-1, 3) - corner
        assert np.abs(rel @ direction[:, 2]).max() < 1e-6         # the centres lie in the contour's plane
        ab = np.column_stack([rel @ u, rel @ v])
        for polygon in polygons:
            mask[k] ^= PolygonPath(np.asarray(polygon)).contains_points(ab).reshape(centres.shape[1:3])
    return mask


def voxel_centres(origin, direction, spacing, shape) -> np.ndarray:
    """Centres (z, y, x, 3) in LPS mm: origin + i sx d_x + j sy d_y + k sz d_z."""
    k, j, i = np.indices(shape)
    steps = direction * np.asarray(spacing)                # column n: the step of index n in mm
    return (np.asarray(origin) + i[..., None] * steps[:, 0] + j[..., None] * steps[:, 1]
            + k[..., None] * steps[:, 2])


def write_rtstruct(path: Path, origin, direction, spacing, frame: str = FRAME) -> Path:
    """A minimal RTSTRUCT by hand: two ROIs (a decoy first), the contours of ``CONTOURS`` in LPS mm."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = RTSTRUCT_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    ds.StructureSetLabel = "test"
    ds.StructureSetDate = dt.date(2024, 3, 5).strftime("%Y%m%d")
    rois, roi_contours = [], []
    for number, name in ((1, "Decoy"), (2, "GTV_test")):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame
        rois.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        item.ROIDisplayColor = [255, 0, 0]
        contours = []
        for k, polygons in (CONTOURS.items() if name == "GTV_test" else [(1, [[(0.5, 0.5), (9.5, 0.5), (0.5, 9.5)]])]):
            for polygon in polygons:
                points = contour_points(origin, direction, spacing, k, polygon)
                contour = Dataset()
                contour.ContourGeometricType = "CLOSED_PLANAR"
                contour.NumberOfContourPoints = len(points)
                contour.ContourData = [f"{v:.6f}" for v in points.ravel()]
                contours.append(contour)
        item.ContourSequence = contours
        roi_contours.append(item)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = roi_contours
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_rasterised_roi_matches_the_physical_reference(name, tmp_path):
    direction = DIRECTIONS[name]
    pet = PetVolume(suv=np.ones(SHAPE, np.float32), spacing=SPACING, origin=ORIGIN,
                    direction=tuple(direction.ravel()), series={"FrameOfReferenceUID": FRAME})
    path = write_rtstruct(tmp_path / "rs.dcm", ORIGIN, direction, SPACING)
    mask = load_mask(path, pet, "GTV_test")
    centres = voxel_centres(ORIGIN, direction, SPACING, SHAPE)
    expected = reference_mask(centres, ORIGIN, direction, SPACING)
    # The L is 37.4 x 63.1 mm (area 1464 mm^2 = ~209 pixels of 7 mm^2); the ring 1939 mm^2.
    assert 180 < expected[2].sum() < 240 and 240 < expected[5].sum() < 310
    assert mask.dtype == np.uint8 and mask.shape == SHAPE
    assert np.array_equal(mask.astype(bool), expected), f"{int((mask.astype(bool) ^ expected).sum())} voxels differ"
    # The hole is empty (even-odd rule); the ring around it is not.
    assert not mask[5][centre_of(HOLE, centres, 5, direction)]
    assert mask[5][centre_of([(8.0, 10.0), (16.0, 10.0), (16.0, 20.0), (8.0, 20.0)], centres, 5, direction)]


def centre_of(polygon, centres, k, direction):
    """(y, x) of the voxel of slice k nearest to the middle of ``polygon``."""
    a, b = np.mean(np.asarray(polygon), axis=0)
    corner, u, v = plane_axes(ORIGIN, direction, SPACING, k)
    target = corner + a * u + b * v
    distance = np.linalg.norm(centres[k] - target, axis=-1)
    return np.unravel_index(int(np.argmin(distance)), distance.shape)


def test_rtstruct_on_a_dicom_pet_with_non_square_pixels_and_an_oblique_direction(tmp_path):
    """The same through a PET DICOM series read from disk: the reference places each pixel from the
    slice's own ImagePositionPatient, ImageOrientationPatient and PixelSpacing ([row spacing,
    column spacing], as DICOM defines it)."""
    from synthetic_dicom import INJECTION, SERIES_START

    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.synth.dicom_writer import write_pet_dicom

    direction = DIRECTIONS["oblique"]
    source = PetVolume(suv=np.ones(SHAPE, np.float32), spacing=SPACING, origin=ORIGIN,
                       direction=tuple(direction.ravel()))
    write_pet_dicom(source, tmp_path / "pet", weight_kg=70.0, injected_dose_bq=3.7e8,
                    injection_datetime=INJECTION, series_datetime=SERIES_START)
    pet = load_pet(tmp_path / "pet")
    first = pydicom.dcmread(pet.dicom_files[0], stop_before_pixels=True)
    frame = str(first.FrameOfReferenceUID)
    assert pet.series.get("FrameOfReferenceUID") == frame
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    assert (row_spacing, column_spacing) == (SPACING[1], SPACING[0])
    iop = np.asarray(first.ImageOrientationPatient, float)
    along_row, along_column = iop[:3], iop[3:]                 # direction of increasing column / row index
    centres = np.zeros((*SHAPE, 3))
    r, c = np.indices(SHAPE[1:])
    for k, name in enumerate(pet.dicom_files):
        ipp = np.asarray(pydicom.dcmread(name, stop_before_pixels=True).ImagePositionPatient, float)
        centres[k] = ipp + c[..., None] * column_spacing * along_row + r[..., None] * row_spacing * along_column
    # The contours are drawn in the frame the headers define (first slice's position, their axes).
    header_direction = np.column_stack([along_row, along_column, np.cross(along_row, along_column)])
    header_origin = centres[0, 0, 0]
    slice_step = float(np.linalg.norm(centres[1, 0, 0] - centres[0, 0, 0]))
    header_spacing = (column_spacing, row_spacing, slice_step)
    path = write_rtstruct(tmp_path / "rs.dcm", header_origin, header_direction, header_spacing, frame=frame)
    mask = load_mask(path, pet)                                # default ROI: the one named GTV_*
    expected = reference_mask(centres, header_origin, header_direction, header_spacing)
    assert expected.sum() > 400
    assert np.array_equal(mask.astype(bool), expected), f"{int((mask.astype(bool) ^ expected).sum())} voxels differ"


def test_an_roi_in_another_frame_of_reference_or_without_contours_is_refused(tmp_path):
    from MTLRadiomicsLib.errors import MaskInputError

    pet = PetVolume(suv=np.ones(SHAPE, np.float32), spacing=SPACING, origin=ORIGIN,
                    direction=tuple(np.eye(3).ravel()), series={"FrameOfReferenceUID": FRAME})
    other = write_rtstruct(tmp_path / "other.dcm", ORIGIN, np.eye(3), SPACING, frame=generate_uid())
    with pytest.raises(MaskInputError) as info:
        load_mask(other, pet, "GTV_test")
    assert str(info.value) == ("other.dcm: ROI 'GTV_test' is drawn in another frame of reference than this PET "
                               "(a different scan or registration)")
    # a PET without a frame of reference (an image file) cannot be compared: the ROI is used
    bare = PetVolume(suv=np.ones(SHAPE, np.float32), spacing=SPACING, origin=ORIGIN, direction=tuple(np.eye(3).ravel()))
    assert load_mask(other, bare, "GTV_test").any()
    empty = write_rtstruct(tmp_path / "empty.dcm", ORIGIN, np.eye(3), SPACING)
    ds = pydicom.dcmread(str(empty))
    ds.ROIContourSequence[1].ContourSequence = []
    ds.save_as(str(empty))
    with pytest.raises(MaskInputError) as info:
        load_mask(empty, pet, "GTV_test")
    assert str(info.value) == "empty.dcm: ROI 'GTV_test' has no contours"
    assert load_mask(empty, pet, "Decoy").any()                      # the other ROI still reads

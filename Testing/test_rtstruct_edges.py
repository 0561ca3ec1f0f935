"""RTSTRUCT rasterisation at the edges of the PET and of the standard: contours on the first and last
slices and past the volume's sides, contours that must be skipped (not CLOSED_PLANAR, off the volume)
before ones that count, each ROI checked against its own frame of reference, and the choice of ROI,
with every refusal word for word. The reference is each voxel centre tested against the polygon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from matplotlib.path import Path as PolygonPath
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

SPACING = (2.0, 3.0, 4.0)                     # x, y, z mm
SHAPE = (6, 10, 12)                           # z, y, x
ORIGIN = (-10.0, 20.0, -30.0)
FRAME = generate_uid()
SQUARE = [(-2.5, -2.5), (3.3, -2.5), (3.3, 3.3), (-2.5, 3.3)]            # past x = 0 and y = 0
FAR_SQUARE = [(8.6, 6.4), (14.0, 6.4), (14.0, 12.0), (8.6, 12.0)]       # past the last column and row
TRIANGLE = [(2.2, 2.1), (9.7, 4.4), (4.1, 8.8)]


def pet(frame: str = FRAME) -> PetVolume:
    return PetVolume(suv=np.ones(SHAPE, np.float32), spacing=SPACING, origin=ORIGIN,
                     direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), series={"FrameOfReferenceUID": frame})


def mm(k: float, polygon) -> list[float]:
    """ContourData (LPS mm) of a polygon given in voxel indices (x, y) on slice ``k``."""
    return [v for x, y in polygon for v in (ORIGIN[0] + SPACING[0] * x, ORIGIN[1] + SPACING[1] * y,
                                              ORIGIN[2] + SPACING[2] * k)]


def inside(polygon) -> np.ndarray:
    """(y, x) voxels of one slice whose centres lie inside the polygon (every centre tested)."""
    ys, xs = np.mgrid[0:SHAPE[1], 0:SHAPE[2]]
    centres = np.column_stack([xs.ravel(), ys.ravel()])
    return PolygonPath(np.asarray(polygon)).contains_points(centres).reshape(SHAPE[1:])


def write(path: Path, rois: list[tuple[int, str, str, list[tuple[str, list[float]]]]]) -> Path:
    """An RTSTRUCT of ``rois``: (number, name, frame of reference, [(geometric type, ContourData)])."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "RTSTRUCT"
    structures, contours = [], []
    for number, name, frame, items in rois:
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = number, name, frame
        structures.append(roi)
        item = Dataset()
        item.ReferencedROINumber = number
        sequence = []
        for kind, data in items:
            contour = Dataset()
            contour.ContourGeometricType = kind
            contour.NumberOfContourPoints = len(data) // 3
            contour.ContourData = [f"{v:.4f}" for v in data]
            sequence.append(contour)
        item.ContourSequence = sequence
        contours.append(item)
    ds.StructureSetROISequence = structures
    ds.ROIContourSequence = contours
    ds.save_as(path, enforce_file_format=True)
    return path


def refusal(path, volume, roi=None) -> str:
    with pytest.raises(MaskInputError) as refused:
        load_mask(path, volume, roi)
    return str(refused.value)


def test_contours_on_the_first_and_last_slices_and_past_the_sides_are_clipped_to_the_pet(tmp_path):
    last = SHAPE[0] - 1
    path = write(tmp_path / "edges.dcm", [(1, "GTV", FRAME, [("CLOSED_PLANAR", mm(0, SQUARE)),
                                                             ("CLOSED_PLANAR", mm(last, FAR_SQUARE)),
                                                             ("CLOSED_PLANAR", mm(2, TRIANGLE))])])
    expected = np.zeros(SHAPE, np.uint8)
    expected[0], expected[last], expected[2] = inside(SQUARE), inside(FAR_SQUARE), inside(TRIANGLE)
    assert expected[0, 0, 0] and expected[last, -1, -1] and expected[0].sum() == 16 and expected[last].sum() == 9
    np.testing.assert_array_equal(load_mask(path, pet()), expected)


def test_contours_that_do_not_count_are_skipped_not_the_ones_after_them(tmp_path):
    path = write(tmp_path / "skips.dcm", [(1, "GTV", FRAME, [
        ("POINT", mm(1, [(5.0, 5.0)])),                     # not a closed polygon
        ("OPEN_PLANAR", mm(1, TRIANGLE)),
        ("CLOSED_PLANAR", mm(-3, TRIANGLE)),                # below the first slice
        ("CLOSED_PLANAR", mm(SHAPE[0], TRIANGLE)),          # just past the last slice
        ("CLOSED_PLANAR", mm(3, TRIANGLE)),
    ])])
    expected = np.zeros(SHAPE, np.uint8)
    expected[3] = inside(TRIANGLE)
    np.testing.assert_array_equal(load_mask(path, pet()), expected)


def test_each_roi_is_checked_against_its_own_frame_of_reference(tmp_path):
    other = generate_uid()
    path = write(tmp_path / "frames.dcm", [(1, "Registered CT body", other, [("CLOSED_PLANAR", mm(1, SQUARE))]),
                                           (2, "GTV", FRAME, [("CLOSED_PLANAR", mm(3, TRIANGLE))])])
    expected = np.zeros(SHAPE, np.uint8)
    expected[3] = inside(TRIANGLE)
    np.testing.assert_array_equal(load_mask(path, pet()), expected)
    assert refusal(path, pet(), "Registered CT body") == (
        "frames.dcm: ROI 'Registered CT body' is drawn in another frame of reference than this PET "
        "(a different scan or registration)")


def test_the_roi_chosen_and_the_refusals_word_for_word(tmp_path):
    tumour = [("CLOSED_PLANAR", mm(3, TRIANGLE))]
    single = write(tmp_path / "single.dcm", [(7, "Tumour", FRAME, tumour)])
    assert load_mask(single, pet()).sum() == inside(TRIANGLE).sum()         # the only ROI, whatever its name
    several = write(tmp_path / "several.dcm", [(1, "Body", FRAME, [("CLOSED_PLANAR", mm(1, SQUARE))]),
                                               (2, "Lung", FRAME, tumour)])
    assert refusal(several, pet()) == "several.dcm holds several ROIs (Body, Lung); choose one with --segment NAME"
    assert refusal(several, pet(), "GTV") == "several.dcm: no ROI named 'GTV'; it holds Body, Lung"
    gtvs = write(tmp_path / "gtvs.dcm", [(1, "Body", FRAME, [("CLOSED_PLANAR", mm(1, SQUARE))]),
                                         (2, "gtv_primary", FRAME, tumour),
                                         (3, "GTV_node", FRAME, [("CLOSED_PLANAR", mm(0, SQUARE))])])
    assert load_mask(gtvs, pet())[3].any() and not load_mask(gtvs, pet())[0].any()     # the first GTV
    away = write(tmp_path / "away.dcm", [(1, "GTV", FRAME, [("CLOSED_PLANAR", mm(40, TRIANGLE))])])
    assert refusal(away, pet()) == "away.dcm: ROI 'GTV' does not overlap the PET volume"
    ds = pydicom.dcmread(single)
    del ds.StructureSetROISequence
    ds.save_as(tmp_path / "no_rois.dcm")
    assert refusal(tmp_path / "no_rois.dcm", pet()) == (
        "no_rois.dcm holds no ROIs (its StructureSetROISequence is empty or missing)")
    ds = pydicom.dcmread(single)
    del ds.ROIContourSequence
    ds.save_as(tmp_path / "no_contours.dcm")
    assert refusal(tmp_path / "no_contours.dcm", pet()) == "no_contours.dcm: ROI 'Tumour' has no contours"

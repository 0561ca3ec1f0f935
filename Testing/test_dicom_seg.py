"""The DICOM SEG the engine writes for DICOM input (pet_input/dicom_seg.py), read back with pydicom
and decided by the mask it was given: one frame per PET slice the MTV touches, each frame the MTV's
voxels of that slice at that slice's position, and the attributes a PACS and Slicer show."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
from synthetic_dicom import edit_headers, small_pet, write_series

from MTLRadiomicsLib import __version__, load_pet
from MTLRadiomicsLib.errors import MaskInputError
from MTLRadiomicsLib.pet_input.dicom_seg import write_dicom_seg
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

pytest.importorskip("highdicom")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seg_series") / "pet"
    files = write_series(folder)
    return folder, files


@pytest.fixture(scope="module")
def pet(series):
    return load_pet(series[0])


def mtv(pet: PetVolume) -> np.ndarray:
    """An MTV over three slices, different in each (a hole in the middle one); slices 0, 4, 5 empty."""
    mask = np.zeros(pet.shape, np.uint8)
    mask[1, 4:7, 3:9] = 1
    mask[2, 2:10, 2:10] = 1
    mask[2, 5:7, 5:7] = 0
    mask[3, 8, 1] = 1
    return mask


def frames_on_the_pet(seg, pet: PetVolume) -> dict[int, np.ndarray]:
    """PET slice index -> the frame's pixels, placed by each frame's ImagePositionPatient."""
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns))
    placed = {}
    for frame, group in zip(pixels, seg.PerFrameFunctionalGroupsSequence):
        position = tuple(float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient)
        i, j, k = pet.physical_to_index(position)
        assert (i, j) == (0, 0)                          # each frame is a whole slice of the PET
        placed[int(k)] = np.asarray(frame)
    return placed


def test_each_frame_is_the_mtv_of_its_slice_and_empty_slices_are_left_out(pet, tmp_path):
    mask = mtv(pet)
    seg = pydicom.dcmread(write_dicom_seg(mask, pet, tmp_path / "mtv.dcm"))
    placed = frames_on_the_pet(seg, pet)
    assert sorted(placed) == [1, 2, 3] and int(seg.NumberOfFrames) == 3
    for k, frame in placed.items():
        assert frame.shape == pet.shape[1:]
        assert np.array_equal(frame, mask[k]), k
    assert seg.SegmentationType == "BINARY"


def test_any_non_zero_value_is_in_the_mtv(pet, tmp_path):
    labels = mtv(pet) * 7                            # a label map with value 7 in the MTV
    seg = pydicom.dcmread(write_dicom_seg(labels, pet, tmp_path / "labels.dcm"))
    placed = frames_on_the_pet(seg, pet)
    for k, frame in placed.items():
        assert np.array_equal(frame, (labels[k] > 0).astype(np.uint8))


def test_the_seg_names_the_mtv_its_maker_and_references_the_pet_series(pet, series, tmp_path):
    seg = pydicom.dcmread(write_dicom_seg(mtv(pet), pet, tmp_path / "mtv.dcm"))
    source = pydicom.dcmread(series[1][0], stop_before_pixels=True)
    (segment,) = seg.SegmentSequence
    assert segment.SegmentNumber == 1 and segment.SegmentLabel == "MTV"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.TrackingID == "Metabolic tumour volume"
    assert pydicom.uid.UID(segment.TrackingUID).is_valid
    (algorithm,) = segment.SegmentationAlgorithmIdentificationSequence
    assert algorithm.AlgorithmName == "MTLRadiomics" and algorithm.AlgorithmVersion == __version__
    assert algorithm.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    category = segment.SegmentedPropertyCategoryCodeSequence[0]
    kind = segment.SegmentedPropertyTypeCodeSequence[0]
    assert (category.CodingSchemeDesignator, category.CodeValue) == ("SCT", "49755003")
    assert (kind.CodingSchemeDesignator, kind.CodeValue) == ("SCT", "108369006")
    assert seg.Manufacturer == "MTLRadiomics" and seg.ManufacturerModelName == "mtl-radiomics"
    assert seg.SoftwareVersions == __version__ and seg.DeviceSerialNumber == "0"
    assert seg.SeriesDescription == "MTV (MTLRadiomics)"
    assert int(seg.SeriesNumber) == int(source.SeriesNumber) + 1000 and int(seg.InstanceNumber) == 1
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID and pydicom.uid.UID(seg.SeriesInstanceUID).is_valid
    assert seg.SOPInstanceUID != source.SOPInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == pet.series["SeriesInstanceUID"]
    referenced_uids = {item.ReferencedSOPInstanceUID for item in referenced.ReferencedInstanceSequence}
    assert referenced_uids == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in series[1]}


def test_a_label_and_description_of_ones_own(pet, tmp_path):
    seg = pydicom.dcmread(write_dicom_seg(mtv(pet), pet, tmp_path / "gtv.dcm", label="GTV", description="edited"))
    assert seg.SegmentSequence[0].SegmentLabel == "GTV" and seg.SegmentSequence[0].TrackingID == "edited"
    assert seg.SeriesDescription == "GTV (MTLRadiomics)"


def test_a_series_without_a_series_number_gets_number_1000_and_no_name_warning(tmp_path):
    folder = tmp_path / "pet"
    files = write_series(folder)

    def anonymise(ds, _index):
        del ds.SeriesNumber
        ds.PatientName = "STS_001"                  # valid, but highdicom warns about its style

    edit_headers(files, anonymise)
    pet = load_pet(folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        seg = pydicom.dcmread(write_dicom_seg(mtv(pet), pet, tmp_path / "mtv.dcm"))
    assert int(seg.SeriesNumber) == 1000
    assert not [w for w in caught if "person name" in str(w.message).lower()], [str(w.message) for w in caught]


def test_headers_read_again_from_the_files_give_the_same_seg(pet, tmp_path):
    """A PET without the headers kept at reading (built by hand from its files) reads them again."""
    bare = PetVolume(**{f: getattr(pet, f) for f in ("suv", "spacing", "origin", "direction", "source",
                                                     "source_format", "suv_conversion", "series", "dicom_files",
                                                     "tracer")})
    assert not bare.dicom_headers
    ours = pydicom.dcmread(write_dicom_seg(mtv(pet), pet, tmp_path / "kept.dcm"))
    again = pydicom.dcmread(write_dicom_seg(mtv(pet), bare, tmp_path / "again.dcm"))
    assert np.array_equal(ours.pixel_array, again.pixel_array)
    for name in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "NumberOfFrames", "SeriesNumber"):
        assert ours.get(name) == again.get(name), name


def test_refusals_say_why_word_for_word(pet, tmp_path):
    with pytest.raises(MaskInputError) as refused:
        write_dicom_seg(np.zeros((6, 12, 12), np.uint8), small_pet(), tmp_path / "a.dcm")
    assert str(refused.value) == "a DICOM SEG can only be written for a PET read from a DICOM series"
    with pytest.raises(MaskInputError) as refused:
        write_dicom_seg(np.zeros((5, 12, 12), np.uint8), pet, tmp_path / "b.dcm")
    assert str(refused.value) == "mask shape (5, 12, 12) differs from the PET (6, 12, 12)"
    assert not list(tmp_path.iterdir())

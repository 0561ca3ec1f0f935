"""Reading a DICOM folder into one PET series (pet_input/dicom_series.py), on headers built here: which
files are read at all, the slices sorted along the slice normal, dynamic, multi-frame, single-slice and
mixed-size series refused word for word, the acquisition times, and the facts every report shows."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from synthetic_dicom import write_series

from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.dicom_series import (DicomSeries, acquisition_datetimes, scan_folder, series_facts,
                                                     slice_normal, sort_slices)

OBLIQUE = [0.8, 0.6, 0.0, 0.0, 0.0, -1.0]          # rows along (0.8, 0.6, 0), columns along -z
NORMAL = np.cross(OBLIQUE[:3], OBLIQUE[3:])          # (-0.6, 0.8, 0)


def header(position_along_normal: float, **tags) -> Dataset:
    ds = Dataset()
    ds.ImageOrientationPatient = OBLIQUE
    ds.ImagePositionPatient = list(10.0 + NORMAL * position_along_normal)
    ds.Rows, ds.Columns = 4, 5
    for name, value in tags.items():
        setattr(ds, name, value)
    return ds


def series_of(headers: list[Dataset]) -> DicomSeries:
    return DicomSeries(uid="1.2.3", modality="PT", description="PET AC", headers=list(headers),
                       files=[f"slice{n}.dcm" for n in range(len(headers))])


def refusal(series: DicomSeries) -> str:
    with pytest.raises(PetInputError) as refused:
        sort_slices(series)
    return str(refused.value)


def test_slices_are_sorted_along_the_normal_of_an_oblique_plane():
    along = [6.0, -3.0, 0.0, 9.0, 3.0]
    series = sort_slices(series_of([header(p, InstanceNumber=n) for n, p in enumerate(along)]))
    assert [int(h.InstanceNumber) for h in series.headers] == [1, 2, 4, 0, 3]
    assert series.files == ["slice1.dcm", "slice2.dcm", "slice4.dcm", "slice0.dcm", "slice3.dcm"]
    np.testing.assert_allclose(slice_normal(series.first), NORMAL)


def test_series_that_are_not_one_static_volume_are_refused_word_for_word():
    assert refusal(series_of([header(p, NumberOfFrames=3) for p in (0, 3)])) == (
        "the PET series is a multi-frame file (3 frames); export it as single-frame slices")
    for kind in ("DYNAMIC", "GATED", "dynamic"):
        assert refusal(series_of([header(p, NumberOfTimeSlices=2, SeriesType=[kind, "IMAGE"]) for p in (0, 3)])) == (
            "the PET series is dynamic (2 time frames, 4-D); export one static frame")
    assert refusal(series_of([header(0)])) == "the PET series has a single slice: a 2-D image, not a 3-D volume"
    mixed = [header(0), header(3), header(6)]
    mixed[1].Columns = 7
    assert refusal(series_of(mixed)) == "the PET series mixes slice sizes [(4, 5), (4, 7)]; it is not one volume"
    bare = [header(0), header(3)]
    del bare[0].ImageOrientationPatient
    assert refusal(series_of(bare)) == ("ImageOrientationPatient (0020,0037) is missing; the slice geometry is "
                                        "unknown")


def test_static_and_single_frame_series_with_those_tags_are_read():
    """NumberOfTimeSlices above 1 on a STATIC series, NumberOfFrames 1 or empty, two slices: one volume."""
    for tags in ({"NumberOfTimeSlices": 2, "SeriesType": ["STATIC", "IMAGE"]}, {"NumberOfFrames": 1},
                 {"NumberOfFrames": None, "NumberOfTimeSlices": None}, {"NumberOfTimeSlices": 3}):
        series = sort_slices(series_of([header(p, **tags) for p in (3.0, 0.0)]))
        assert series.files == ["slice1.dcm", "slice0.dcm"], tags


def test_acquisition_times_of_the_slices_that_have_both():
    headers = [header(0, AcquisitionDate="20240305", AcquisitionTime="110512.25"),
               header(3, AcquisitionDate="20240305"),                       # no time: left out
               header(6, AcquisitionTime="110000"),                         # no date: left out
               header(9, AcquisitionDate="20240306", AcquisitionTime="000001")]
    assert acquisition_datetimes(series_of(headers)) == [dt.datetime(2024, 3, 5, 11, 5, 12, 250000),
                                                         dt.datetime(2024, 3, 6, 0, 0, 1)]


def test_the_facts_of_a_series_are_its_first_headers_tags():
    values = {"PatientID": "STS_001", "PatientName": "Anon^One", "PatientSex": "F", "PatientAge": "061Y",
              "StudyDate": "20240305", "StudyDescription": "PET-CT", "SeriesDate": "20240305",
              "SeriesTime": "110000", "SeriesDescription": "PET AC", "Manufacturer": "GE MEDICAL SYSTEMS",
              "ManufacturerModelName": "Discovery", "InstitutionName": "Somewhere",
              "StudyInstanceUID": "1.2.3.4", "SeriesInstanceUID": "1.2.3.4.5", "FrameOfReferenceUID": "1.2.3.4.6"}
    first = header(0, **values)
    drug = Dataset()
    drug.Radiopharmaceutical = "Fluorodeoxyglucose"
    first.RadiopharmaceuticalInformationSequence = Sequence([drug])
    series = series_of([first, header(3, PatientID="someone else")])
    ct = DicomSeries(uid="9.9", modality="CT", description="CT", files=["a", "b", "c"])
    assert series_facts(series, [series, ct]) == {**values, "Modality": "PT", "NumberOfSlices": 2,
                                                  "Radiopharmaceutical": "Fluorodeoxyglucose",
                                                  "OtherSeriesInFolder": ["CT 'CT' (3 files)"]}
    first.PatientAge = ""                                                   # empty: left out
    del first.RadiopharmaceuticalInformationSequence[0].Radiopharmaceutical
    facts = series_facts(series, [series])
    assert "PatientAge" not in facts and "Radiopharmaceutical" not in facts and "OtherSeriesInFolder" not in facts
    assert DicomSeries(uid="1", modality="PT", description="", files=["x"]).describe() == "PT (1 files)"


def test_files_named_as_something_else_or_hidden_are_never_read_as_slices(tmp_path):
    files = write_series(tmp_path / "pet")
    for name in ("copy.txt", "copy.JSON", "copy.md", "copy.csv", "copy.xml", "copy.png", "copy.jpg", "copy.nii",
                 "copy.nii.gz", "copy.nrrd", "copy.MHA", "copy.py", ".hidden.dcm", ".DS_Store"):
        shutil.copy(files[0], tmp_path / "pet" / name)                # a valid slice under each name
    (tmp_path / "pet" / "sub").mkdir()
    shutil.copy(files[1], tmp_path / "pet" / "sub" / "noextension")  # a slice without a suffix: read
    (series,) = scan_folder(tmp_path / "pet")
    names = sorted(p.rsplit("/", 1)[-1] for p in series.files)
    assert names == sorted([f.name for f in files] + ["noextension"])


def test_duplicated_missing_and_unplaced_slices_are_refused_word_for_word():
    assert refusal(series_of([header(p) for p in (0, 3, 3, 6)])) == (
        "several PET slices share one position: a dynamic (4-D) or duplicated series; export one static frame")
    assert refusal(series_of([header(p) for p in (0, 3, 6, 15, 18)])) == (
        "the PET series has missing slices (a gap of 9.0 mm where slices are 3.00 mm apart); re-export the "
        "complete series")
    unplaced = [header(0), header(3)]
    del unplaced[1].ImagePositionPatient
    assert refusal(series_of(unplaced)) == "ImagePositionPatient (0020,0032) is missing on some slices"
    uneven = sort_slices(series_of([header(p) for p in (0, 3.0, 6.1, 9.0)]))     # within the gap tolerance
    assert len(uneven.files) == 4

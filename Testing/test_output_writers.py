"""The output writers' shortcuts write the same files as the plain way: segments placed from the box
that holds every mask, the DICOM SEG from the headers read with the PET."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from MTLRadiomicsLib.analysis.outputs import (METHOD_COLORS, NEOPLASM_TERMINOLOGY, ijk_to_lps, segmentation_of,
                                              write_segments_nrrd)
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def plain(masks: dict[str, np.ndarray], pet: PetVolume, path: Path) -> Path:
    """Every mask added to the whole grid, as slicerio does it."""
    import slicerio

    segmentation = slicerio.create_segmentation(pet.size, ijk_to_lps(pet))
    for index, (name, mask) in enumerate(masks.items()):
        slicerio.add_segment(segmentation, np.transpose(mask > 0, (2, 1, 0)),
                             {"id": f"segment_{index + 1}", "name": name,
                              "color": list(METHOD_COLORS[index % len(METHOD_COLORS)]),
                              "terminology": NEOPLASM_TERMINOLOGY})
    slicerio.write_segmentation(str(path), segmentation)
    return path


@pytest.mark.parametrize("layout", ["overlapping", "apart", "empty"])
def test_segments_from_the_box_write_the_same_file(tmp_path, layout):
    rng = np.random.default_rng(4)
    pet = PetVolume(suv=rng.random((30, 26, 22)), spacing=(2.0, 2.5, 3.0), origin=(5.0, -7.0, 11.0),
                    direction=(-1.0, 0, 0, 0, 1.0, 0, 0, 0, -1.0))
    masks: dict[str, np.ndarray] = {}
    for n in range(5):
        mask = np.zeros(pet.shape, np.uint8)
        if layout == "overlapping":
            mask[8 + n:18, 6:15 - n, 5 + n:12] = 1
        elif layout == "apart":
            mask[2 + 5 * n:4 + 5 * n, 3 + 4 * n:5 + 4 * n, 1:3] = 1
        masks[f"method {n}"] = mask
    masks["empty"] = np.zeros(pet.shape, np.uint8)
    ours = write_segments_nrrd(masks, pet, tmp_path / "ours.seg.nrrd")
    theirs = plain(masks, pet, tmp_path / "plain.seg.nrrd")
    assert ours.read_bytes() == theirs.read_bytes()
    layers = segmentation_of([(m, {"id": k}) for k, m in masks.items()], pet)["voxels"]
    assert layers.shape[-3:] == pet.size and (layers.ndim == 4) == (layout == "overlapping")


def test_dicom_seg_from_the_headers_read_with_the_pet(sts001_pet, tmp_path):
    pytest.importorskip("highdicom")
    import pydicom

    from MTLRadiomicsLib.pet_input.dicom_seg import write_dicom_seg

    pet = sts001_pet
    assert len(pet.dicom_headers) == len(pet.dicom_files)
    mask = np.zeros(pet.shape, np.uint8)
    mask[100:104, 60:64, 60:66] = 1
    ours = pydicom.dcmread(write_dicom_seg(mask, pet, tmp_path / "ours.dcm"))
    reread = PetVolume(**{**{f: getattr(pet, f) for f in ("suv", "spacing", "origin", "direction", "source",
                                                          "source_format", "suv_conversion", "series",
                                                          "dicom_files", "tracer")}})
    theirs = pydicom.dcmread(write_dicom_seg(mask, reread, tmp_path / "theirs.dcm"))
    assert np.array_equal(ours.pixel_array, theirs.pixel_array)
    refs = lambda ds: [r.ReferencedSOPInstanceUID for r in ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence]  # noqa: E731
    assert refs(ours) == refs(theirs)
    for name in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "NumberOfFrames"):
        assert ours.get(name) == theirs.get(name), name


def test_report_views_of_an_lps_volume_skip_reorienting_and_are_the_same(monkeypatch):
    from MTLRadiomicsLib.analysis import report_figures as rf

    rng = np.random.default_rng(2)
    pet = PetVolume(suv=rng.random((12, 10, 9)) * 5, spacing=(2.0, 2.0, 3.0), origin=(1.0, 2.0, 3.0),
                    direction=(1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    mask = np.zeros(pet.shape, np.uint8)
    mask[4:7, 3:6, 2:5] = 1
    heat = {"enc1": rng.random(pet.shape).astype(np.float32), "dec1": np.full(pet.shape, np.nan, np.float32)}
    fast = rf.prepare_views(pet, mask, heat, center_lps=(5.0, 6.0, 9.0))
    monkeypatch.setattr(rf, "_is_lps", lambda _: False)
    plain = rf.prepare_views(pet, mask, heat, center_lps=(5.0, 6.0, 9.0))
    assert np.array_equal(fast.suv, plain.suv) and np.array_equal(fast.mask, plain.mask)
    assert all(np.array_equal(fast.heatmaps[k], plain.heatmaps[k]) for k in heat)
    assert (fast.peak, fast.lesion_suv_max, fast.mask_box, fast.spacing) == \
        (plain.peak, plain.lesion_suv_max, plain.mask_box, plain.spacing)
    assert not np.shares_memory(fast.heatmaps["enc1"], heat["enc1"])      # the caller's maps untouched

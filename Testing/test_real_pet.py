"""Real DICOM PET (TCIA soft-tissue sarcoma): SUV, geometry and masks against independent values."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

TOLERANCE = 0.005


def close(value: float, expected: float) -> bool:
    return abs(value - expected) <= TOLERANCE * abs(expected)


def test_sts001_suv_factor_from_raw_bqml(sts001_pet, sts001_expected):
    conv = sts001_pet.suv_conversion
    assert conv.units_in_file == "BQML" and conv.decay_correction == "START"
    assert close(conv.factor, sts001_expected["suvbw_factor_g_per_bq"])
    assert conv.weight_kg == sts001_expected["patient_weight_kg"]
    assert conv.injected_dose_bq == sts001_expected["injected_dose_bq"]
    assert conv.half_life_s == sts001_expected["half_life_s"]
    assert conv.elapsed_s == pytest.approx(45 * 60 + 11)     # 10:35:00 -> 11:20:11
    assert "PatientWeight (0010,1030)" in conv.sources["weight"]


def test_sts001_geometry_and_whole_volume_suv(sts001_pet, sts001_expected):
    assert sts001_pet.size == (128, 128, 267)
    assert sts001_pet.spacing[0] == pytest.approx(4.6875)
    assert sts001_pet.spacing[2] == pytest.approx(3.27, abs=1e-3)
    assert sts001_pet.orientation == "LPS"
    assert close(float(sts001_pet.suv.max()), sts001_expected["whole_volume_suvmax"])
    assert sts001_pet.suv.dtype == np.float32
    assert len(sts001_pet.dicom_files) == 267


def test_sts001_values_equal_rescaled_pixels_times_factor(sts001_pet):
    """Each slice has its own RescaleSlope; check one slice by hand with pydicom."""
    path = sts001_pet.dicom_files[150]
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(sts001_pet.suv[150], expected * sts001_pet.suv_conversion.factor,
                               rtol=1e-5, atol=1e-6)


def test_sts001_gtv_from_rtstruct_matches_expected(sts001_dir, sts001_pet, sts001_expected):
    mask = load_mask(sts001_dir / "rtstruct" / "1-1.dcm", sts001_pet, segment="GTV_Mass")
    metrics = compute_metrics(sts001_pet.suv, mask, sts001_pet.spacing)
    gtv = sts001_expected["gtv_mass"]
    assert close(metrics.suv_max, gtv["suvmax"])
    assert close(metrics.suv_mean, gtv["suvmean"])
    assert close(metrics.mtv_ml, gtv["volume_ml"])
    reference = sitk.GetArrayFromImage(sitk.ReadImage(str(sts001_dir / gtv["mask"]))) > 0
    assert np.array_equal(mask > 0, reference)


def test_sts001_rtstruct_default_roi_and_edema(sts001_dir, sts001_pet):
    gtv = load_mask(sts001_dir / "rtstruct", sts001_pet)            # folder, default GTV_*
    edema = load_mask(sts001_dir / "rtstruct" / "1-1.dcm", sts001_pet, segment="GTV_Edema")
    assert gtv.sum() == 5095
    assert edema.sum() > gtv.sum()                               # edema surrounds the mass


def test_sts001_reference_nifti_mask_loads_on_grid(sts001_dir, sts001_pet):
    mask = load_mask(sts001_dir / "GTV_Mass_mask.nii.gz", sts001_pet)
    assert mask.shape == sts001_pet.shape and mask.sum() == 5095


def test_sts001_dicom_seg_round_trip(tmp_path, sts001_dir, sts001_pet):
    from MTLRadiomicsLib.pet_input.dicom_seg import write_dicom_seg

    mask = load_mask(sts001_dir / "rtstruct" / "1-1.dcm", sts001_pet)
    seg_path = write_dicom_seg(mask, sts001_pet, tmp_path / "mtv.seg.dcm")
    ds = pydicom.dcmread(seg_path)
    assert ds.Modality == "SEG"
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == sts001_pet.series["SeriesInstanceUID"]
    assert ds.FrameOfReferenceUID == sts001_pet.series["FrameOfReferenceUID"]
    assert np.array_equal(load_mask(seg_path, sts001_pet), mask)


def test_single_dicom_file_reads_its_series(sts001_dir, sts001_pet):
    pet = load_pet(sts001_dir / "dicom" / "1-100.dcm")
    assert pet.size == sts001_pet.size
    assert np.array_equal(pet.suv, sts001_pet.suv)


def test_sts005_gml_admin_is_read_as_suv(sts005_dir):
    pet = load_pet(sts005_dir / "image")
    conv = pet.suv_conversion
    assert conv.units_in_file == "GML" and conv.factor == 1.0 and conv.decay_correction == "ADMIN"
    ds = pydicom.dcmread(pet.dicom_files[40])
    np.testing.assert_allclose(pet.suv[40], ds.pixel_array * float(ds.RescaleSlope), rtol=1e-5, atol=1e-6)
    assert 3.0 < pet.suv.max() < 20.0                             # a plausible tumour SUVmax


def test_sts005_folder_with_rtstruct_picks_pet_and_rasterises_roi(sts005_dir):
    pet = load_pet(sts005_dir)                                    # image/ and mask/ below it
    assert pet.series["Modality"] == "PT"
    assert any("RTSTRUCT" in s for s in pet.series["OtherSeriesInFolder"])
    mask = load_mask(sts005_dir / "mask" / "RS.dcm", pet)
    assert mask.any()
    # The contour encloses the tumour: its SUVmax is the crop's SUVmax and its mean is well above
    # the surrounding tissue.
    assert pet.suv[mask > 0].max() == pytest.approx(pet.suv.max())
    assert pet.suv[mask > 0].mean() > 2 * pet.suv[mask == 0].mean()


def test_mask_from_another_frame_of_reference_is_refused(sts001_dir, sts005_dir):
    from MTLRadiomicsLib.errors import MaskInputError

    pet = load_pet(sts005_dir / "image")
    with pytest.raises(MaskInputError, match="frame of reference"):
        load_mask(sts001_dir / "rtstruct" / "1-1.dcm", pet)


def test_sts001_as_a_bqml_nifti_gives_the_dicom_suvs(tmp_path, sts001_pet):
    """The scan's Bq/ml written to NIfTI: with the facts of its header and the decay reference of
    its DICOM (START: corrected to the scan start) the SUVs are those of the DICOM series."""
    import datetime as dt

    import SimpleITK as sitk

    from MTLRadiomicsLib.errors import PetInputError
    from MTLRadiomicsLib.pet_input.suv import SuvOverrides

    bqml = sts001_pet.suv / np.float32(sts001_pet.suv_conversion.factor)
    path = tmp_path / "sts001_bqml.nii.gz"
    sitk.WriteImage(sts001_pet.copy_geometry_to(sitk.GetImageFromArray(bqml)), str(path))
    facts = dict(weight_kg=71.0, dose_mbq=388.777472, half_life_s=6588.0)
    pet = load_pet(path, SuvOverrides(**facts, injection_time=dt.time(10, 35), scan_time=dt.time(11, 20, 11),
                                      decay_corrected_to="scan"), input_units="bqml")
    np.testing.assert_allclose(pet.suv, sts001_pet.suv, rtol=1e-4, atol=1e-4)
    with pytest.raises(PetInputError, match="--decay-corrected-to"):
        load_pet(path, SuvOverrides(**facts), input_units="bqml")      # once read 25 % low without a word

"""`mtl-radiomics info`: what the engine read, for people and for programs; bad input refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runner import assert_one_line_error, run_cli


def test_info_text_on_real_dicom(sts001_dir):
    process = run_cli("info", sts001_dir / "dicom")
    assert process.returncode == 0, process.stderr
    out = process.stdout
    assert "128 x 128 x 267 voxels" in out
    assert "BQML -> SUVbw" in out
    assert "0.000242903" in out
    assert "PatientWeight (0010,1030)" in out and "RadionuclideTotalDose (0018,1074)" in out
    assert "max 66.52" in out
    assert "Discovery ST" in out


def test_info_json_on_real_dicom(sts001_dir, sts001_expected):
    process = run_cli("info", sts001_dir / "dicom", "--json")
    assert process.returncode == 0, process.stderr
    info = json.loads(process.stdout)
    assert info["suv_conversion"]["factor"] == pytest.approx(sts001_expected["suvbw_factor_g_per_bq"], rel=5e-3)
    assert info["size_xyz"] == [128, 128, 267]
    assert info["orientation"] == "LPS"
    assert info["series"]["Modality"] == "PT"


def test_info_weight_override_changes_factor(sts001_dir, sts001_expected):
    process = run_cli("info", sts001_dir / "dicom", "--json", "--weight", "142")
    factor = json.loads(process.stdout)["suv_conversion"]["factor"]
    assert factor == pytest.approx(2 * sts001_expected["suvbw_factor_g_per_bq"], rel=5e-3)


def test_info_gml_series(sts005_dir):
    process = run_cli("info", sts005_dir / "image")
    assert process.returncode == 0 and "GML -> SUVbw" in process.stdout


def test_missing_file_is_one_line(tmp_path):
    assert_one_line_error(run_cli("info", tmp_path / "absent.nii.gz"), "does not exist")


def test_ct_like_volume_is_one_line(tmp_path):
    array = np.full((20, 30, 30), -1000.0, np.float32)
    array[5:15, 10:20, 10:20] = 40.0
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "ct.nii.gz"))
    assert_one_line_error(run_cli("info", tmp_path / "ct.nii.gz"), "CT")


def test_bad_option_values_are_one_line(tmp_path, sts001_dir):
    assert_one_line_error(run_cli("info", sts001_dir / "dicom", "--weight", "-3"), "--weight")
    assert_one_line_error(run_cli("info", sts001_dir / "dicom", "--injection-time", "noon"),
                          "--injection-time")


def test_usage_errors_and_help():
    assert run_cli().returncode == 2
    process = run_cli("info", "--help")
    assert process.returncode == 0
    for option in ("--weight", "--dose", "--injection-time", "--input-units", "--json", "--series"):
        assert option in process.stdout


@pytest.fixture()
def bqml_nifti(tmp_path):
    """A Bq/ml NIfTI: no units, no patient facts, no times in the file."""
    array = np.random.default_rng(0).gamma(4.0, 0.2, (20, 30, 30)).astype(np.float32) * 6000.0
    path = tmp_path / "bqml.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))
    return path


def test_bqml_nifti_without_decay_reference_is_one_line(bqml_nifti):
    process = run_cli("info", bqml_nifti, "--input-units", "bqml", "--weight", "71", "--dose", "388.8")
    assert_one_line_error(process, "--decay-corrected-to scan", "--decay-corrected-to injection")


def test_info_on_a_bqml_nifti_shows_only_the_sources_given(bqml_nifti, sts001_expected):
    facts = ["--input-units", "bqml", "--weight", "71", "--dose", "388.777472", "--half-life", "6588"]
    process = run_cli("info", bqml_nifti, *facts, "--injection-time", "10:35", "--scan-time", "11:20:11",
                      "--decay-corrected-to", "scan")
    assert process.returncode == 0, process.stderr
    out = process.stdout
    assert "10:35:00  [--injection-time]" in out and "11:20:11  [--scan-time]" in out
    assert "[--decay-corrected-to scan]" in out
    assert "1900" not in out and "DecayCorrection" not in out and "(00" not in out
    as_json = run_cli("info", bqml_nifti, *facts, "--injection-time", "10:35", "--scan-time", "11:20:11",
                      "--decay-corrected-to", "scan", "--json")
    factor = json.loads(as_json.stdout)["suv_conversion"]["factor"]
    assert factor == pytest.approx(sts001_expected["suvbw_factor_g_per_bq"], rel=1e-4)   # STS_001's facts
    admin = run_cli("info", bqml_nifti, *facts, "--decay-corrected-to", "injection")
    assert admin.returncode == 0, admin.stderr
    assert "[--decay-corrected-to injection]" in admin.stdout and "DecayCorrection" not in admin.stdout

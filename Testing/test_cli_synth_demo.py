"""`mtl-radiomics synth` and `mtl-radiomics demo` as a user runs them."""

from __future__ import annotations

import csv
import json

import SimpleITK as sitk
from cli_runner import assert_one_line_error, run_cli

from MTLRadiomicsLib import load_pet


def test_synth_writes_a_cohort_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "cohort"
    process = run_cli("synth", out, "--cases", "6", "--seed", "3", "--folds", "2", "--no-progress")
    assert process.returncode == 0, process.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 6
    assert list(rows[0]) == ["case_id", "pet", "mask", "pathology", "response", "time", "event",
                             "oracle_risk", "fold"]
    assert {r["fold"] for r in rows} <= {"0", "1", "test"}
    pet = load_pet(out / rows[0]["pet"])
    assert pet.spacing == (2.0, 2.0, 2.0) and pet.size == (64, 64, 64)
    assert json.loads((out / "cohort.json").read_text())["seed"] == 3
    before = (out / "manifest.csv").read_bytes()
    assert_one_line_error(run_cli("synth", out, "--cases", "2"), "--overwrite")
    assert (out / "manifest.csv").read_bytes() == before


def test_synth_same_seed_same_images(tmp_path):
    for name in ("a", "b"):
        assert run_cli("synth", tmp_path / name, "--cases", "2", "--seed", "9", "--no-progress").returncode == 0
    for image in ("images", "masks"):
        for path in sorted((tmp_path / "a" / image).iterdir()):
            a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
            b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "b" / image / path.name)))
            assert (a == b).all()


def test_synth_dicom_series_read_back_as_the_same_suv(tmp_path):
    out = tmp_path / "wb"
    process = run_cli("synth", out, "--cases", "1", "--kind", "wholebody", "--dicom", "--no-progress")
    assert process.returncode == 0, process.stderr
    row = next(csv.DictReader(open(out / "manifest.csv")))
    from_nifti = load_pet(out / row["pet"])
    from_dicom = load_pet(out / row["dicom"])
    assert from_dicom.suv_conversion.units_in_file == "BQML"
    assert from_dicom.size == from_nifti.size
    hot = from_nifti.suv > 0.5
    relative = abs(from_dicom.suv[hot] - from_nifti.suv[hot]) / from_nifti.suv[hot]
    assert float(relative.max()) < 0.005


def test_synth_bad_options(tmp_path):
    assert_one_line_error(run_cli("synth", tmp_path / "x", "--cases", "0"), "--cases")
    assert_one_line_error(run_cli("synth", tmp_path / "x", "--test-fraction", "1.5"), "--test-fraction")
    assert not (tmp_path / "x").exists()


def test_demo_analyses_the_sample_and_replaces_only_its_own_output(tmp_path):
    out = tmp_path / "demo"
    process = run_cli("demo", "--out", out, "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert "report.pdf" in process.stdout
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["dice_predicted_vs_truth"] > 0.5
    assert summary["metrics_truth"]["mtv_ml"] > 0
    result = json.loads((out / "analysis" / "result.json").read_text())
    assert result["location"]["method"] == "automatic"
    metrics = result["metrics"]
    assert metrics["suv_max"] >= metrics["suv_peak"] >= metrics["suv_mean"] > 0
    assert abs(metrics["tlg"] - metrics["suv_mean"] * metrics["mtv_ml"]) < 1e-6 * metrics["tlg"] + 1e-9
    assert (out / "analysis" / "report.pdf").stat().st_size > 20_000
    first = (out / "sample" / "sample_pet.nii.gz").read_bytes()
    assert run_cli("demo", "--out", out, "--progress", "none").returncode == 0   # its own output: replaced
    assert (out / "sample" / "sample_pet.nii.gz").read_bytes() == first         # deterministic
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert_one_line_error(run_cli("demo", "--out", foreign), "not a demo output")
    assert (foreign / "notes.txt").read_text() == "keep me"

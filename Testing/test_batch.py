"""`batch` with the engine: case folders only inside --out, the SUV options of `analyze` (and
per-row columns), library warnings in the case's warnings, and a documented exit status. A small
random model keeps this fast. (Cases redone when their manifest row or the options change:
test_batch_parts.py, in this process; each row analysed at its own point: test_regressions_batch.py.)"""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runner import assert_one_line_error, run_cli, run_cli_here

from MTLRadiomicsLib.commands.batch import read_cases
from MTLRadiomicsLib.errors import MTLRadiomicsError

LONG_DESCRIPTION = "x" * 100          # SeriesDescription is LO: at most 64 characters


@pytest.fixture(scope="module")
def lesion(tmp_path_factory) -> dict:
    """A synthetic whole-body PET as NIfTI, the lesion's centre in RAS, and the case."""
    from MTLRadiomicsLib.synth import wholebody_case

    case = wholebody_case(5)
    path = tmp_path_factory.mktemp("pet") / "wb.nii.gz"
    sitk.WriteImage(case.pet.to_sitk(), str(path))
    x, y, z = case.lesion_center_lps
    return {"path": path, "case": case, "ras": (-x, -y, z)}


@pytest.fixture(scope="module")
def lesion_dicom(lesion, tmp_path_factory) -> Path:
    """The lesion's 50 slices as a Bq/ml DICOM series without PatientWeight (weight 70 kg) and with a
    SeriesDescription longer than DICOM allows, so that pydicom warns while reading it."""
    from pydicom import config
    from synthetic_dicom import INJECTION, SERIES_START, edit_headers

    from MTLRadiomicsLib.synth.dicom_writer import write_pet_dicom

    pet = lesion["case"].pet
    k = int(round((lesion["case"].lesion_center_lps[2] - pet.origin[2]) / pet.spacing[2])) - 25
    crop = dataclasses.replace(pet, suv=np.ascontiguousarray(pet.suv[k:k + 50]),
                               origin=(pet.origin[0], pet.origin[1], pet.origin[2] + k * pet.spacing[2]))
    folder = tmp_path_factory.mktemp("dicom") / "pet"
    files = write_pet_dicom(crop, folder, weight_kg=70.0, injected_dose_bq=3.7e8, injection_datetime=INJECTION,
                            series_datetime=SERIES_START)

    def change(ds, _index):
        del ds.PatientWeight
        ds.SeriesDescription = LONG_DESCRIPTION

    previous = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():             # pydicom's warning on reading the edited files back
            warnings.simplefilter("ignore")
            edit_headers(files, change)
    finally:
        config.settings.writing_validation_mode = previous
    return folder


def write_manifest(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def summary(out: Path) -> dict[str, dict]:
    with open(out / "summary.csv", newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def batch_args(manifest: Path, out: Path, model: Path, *more) -> list:
    return ["batch", manifest, "--out", out, "--model", model, "--samples", "2", "--no-report",
            "--progress", "none", "--mtv-method", "suv2.5", *more]


@pytest.mark.parametrize("case_id", ["../escape", "a/b", "/tmp/abs", "", ".", "..", ".hidden", "a\\b", "x y"])
def test_case_ids_that_are_not_plain_names_are_refused(tmp_path, case_id):
    manifest = write_manifest(tmp_path / "cases.csv", ["case_id", "pet"],
                              [["fine", "a.nii.gz"], [case_id, "b.nii.gz"]])
    with pytest.raises(MTLRadiomicsError, match=r"row 2 \(line 3\)") as error:
        read_cases(manifest)
    assert repr(case_id) in str(error.value) and "\n" not in str(error.value)


def test_plain_case_ids_are_accepted_and_default_without_the_column(tmp_path):
    manifest = write_manifest(tmp_path / "cases.csv", ["case_id", "pet"],
                              [["STS_001", "a.nii.gz"], ["p-2.v1", "b.nii.gz"]])
    assert [c["case_id"] for c in read_cases(manifest)] == ["STS_001", "p-2.v1"]
    manifest = write_manifest(tmp_path / "plain.csv", ["pet"], [["a.nii.gz"], ["b.nii.gz"]])
    assert [c["case_id"] for c in read_cases(manifest)] == ["case0001", "case0002"]


def test_a_case_id_that_escapes_out_stops_the_batch_before_anything_is_written(lesion, tiny_model, tmp_path):
    manifest = write_manifest(tmp_path / "cases.csv", ["case_id", "pet"],
                              [["good", lesion["path"]], ["../escape", lesion["path"]]])
    out = tmp_path / "runs" / "batch"
    assert_one_line_error(run_cli_here(*batch_args(manifest, out, tiny_model)), "row 2", "'../escape'")
    assert not (tmp_path / "runs" / "escape").exists() and not out.exists()


def test_suv_options_and_per_row_columns(lesion_dicom, lesion, tiny_model, tmp_path):
    x, y, z = lesion["ras"]
    manifest = write_manifest(tmp_path / "cases.csv", ["case_id", "pet", "point_x", "point_y", "point_z", "weight"],
                              [["stated", lesion_dicom, x, y, z, ""], ["own", lesion_dicom, x, y, z, "80"]])
    out = tmp_path / "batch"
    process = run_cli(*batch_args(manifest, out, tiny_model, "--weight", "70"))
    assert process.returncode == 0, process.stdout + process.stderr
    rows = summary(out)
    assert rows["stated"]["status"] == "done" and rows["own"]["status"] == "done"
    weights = {case: json.loads((out / case / "result.json").read_text())["pet"]["suv_conversion"]["weight_kg"]
               for case in ("stated", "own")}
    assert weights == {"stated": 70.0, "own": 80.0}
    # The SUVs scale with the weight: the row's own weight was used for its SUVs.
    assert float(rows["own"]["suv_max"]) == pytest.approx(float(rows["stated"]["suv_max"]) * 80 / 70, rel=1e-3)
    # pydicom's warning is the case's, in one line without a path, not the terminal's.
    assert "site-packages" not in process.stderr and "UserWarning" not in process.stderr
    assert "maximum length" not in process.stderr + process.stdout
    assert "maximum length of 64 allowed for VR LO" in rows["own"]["warnings"]


def test_a_bad_per_row_value_fails_that_case_only(lesion_dicom, lesion, tiny_model, tmp_path):
    x, y, z = lesion["ras"]
    manifest = write_manifest(tmp_path / "cases.csv", ["case_id", "pet", "point_x", "point_y", "point_z", "weight"],
                              [["bad", lesion_dicom, x, y, z, "heavy"], ["negative", lesion_dicom, x, y, z, "-3"]])
    process = run_cli_here(*batch_args(manifest, tmp_path / "batch", tiny_model))
    assert process.returncode == 1, process.stderr
    rows = summary(tmp_path / "batch")
    assert rows["bad"]["status"] == "failed" and "column weight" in rows["bad"]["error"]
    assert "'heavy'" in rows["bad"]["error"]
    assert rows["negative"]["status"] == "failed" and "column weight" in rows["negative"]["error"]


def test_analyze_puts_library_warnings_into_the_result(lesion_dicom, lesion, tiny_model, tmp_path):
    x, y, z = lesion["ras"]
    process = run_cli("analyze", lesion_dicom, "--out", tmp_path / "a", "--model", tiny_model, "--point", x, y, z,
                      "--weight", "70", "--samples", "2", "--no-report", "--progress", "none",
                      "--mtv-method", "suv2.5")
    assert process.returncode == 0, process.stderr
    assert "site-packages" not in process.stderr and "UserWarning" not in process.stderr
    assert "maximum length" not in process.stderr
    notes = json.loads((tmp_path / "a" / "result.json").read_text())["warnings"]
    found = [w for w in notes if "maximum length of 64 allowed for VR LO" in w]
    assert len(found) == 1, notes                   # one line, however many slices warned
    assert found[0].startswith("pydicom: ") and "/" not in found[0] and "\n" not in found[0]
    assert f"note: {found[0]}" in process.stdout


def test_warning_lines_lose_their_paths():
    from MTLRadiomicsLib.analysis.library_warnings import one_line

    text = ("cannot read /home/me/data/pet/IM0001.dcm\n  (see https://dicom.nema.org/medical/dicom/current/"
            "output/html/part05.html) or C:\\scans\\pet\\IM0002.dcm")
    line = one_line(text)
    assert line == ("cannot read IM0001.dcm (see https://dicom.nema.org/medical/dicom/current/output/html/"
                    "part05.html) or IM0002.dcm")


def test_exit_status_is_documented(tmp_path):
    process = run_cli_here("batch", "--help")
    assert process.returncode == 0
    text = " ".join(process.stdout.split())
    for fragment in ("Exit status", "0 every case done", "1 some cases failed", "2 the batch did not start"):
        assert fragment in text, text

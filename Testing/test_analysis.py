"""`analyze`, `rescore` and `batch`: outputs on the PET grid, result contents, edited masks,
progress lines, safe output folders and one-line errors. A small random model keeps this fast;
the bundled model's accuracy is tested in test_bundled_model.py."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from cli_runner import assert_one_line_error, run_cli_here

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.analysis import engine as analysis_engine
from MTLRadiomicsLib.analysis.engine import analyze
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.analysis.outputs import read_seg_nrrd
from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
from MTLRadiomicsLib.pet_input.masks import load_mask

SCALES = ["enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1"]


@pytest.fixture(scope="session")
def wholebody(tmp_path_factory):
    """A synthetic whole-body PET stored in RAS order (a non-identity direction), and its truth."""
    from MTLRadiomicsLib.synth import wholebody_case

    case = wholebody_case(5)
    path = tmp_path_factory.mktemp("pet") / "wb.nii.gz"
    sitk.WriteImage(sitk.DICOMOrient(case.pet.to_sitk(), "RAS"), str(path))
    x, y, z = case.lesion_center_lps
    return {"path": path, "case": case, "ras": (-x, -y, z)}


@pytest.fixture(scope="session")
def analysed(wholebody, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "out"
    options = AnalysisOptions(point=wholebody["ras"], model=tiny_model, samples=6, mtv_method="suv2.5")
    result = analyze(wholebody["path"], out, options)
    return out, result


def same_geometry(image: sitk.Image, reference: sitk.Image) -> bool:
    return (image.GetSize() == reference.GetSize()
            and np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
            and np.allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-6)
            and np.allclose(image.GetDirection(), reference.GetDirection(), atol=1e-9))


def test_every_output_volume_has_the_input_geometry(analysed, wholebody):
    out, result = analysed
    reference = sitk.ReadImage(str(wholebody["path"]))
    assert reference.GetDirection()[0] == -1.0                       # the input really is RAS-ordered
    for name in ["mtv.nii.gz"] + [f"gradcam_{s}.nrrd" for s in SCALES]:
        assert same_geometry(sitk.ReadImage(str(out / name)), reference), name
    mask, ijk_to_lps = read_seg_nrrd(out / "segmentation.seg.nrrd", "MTV")
    expected = np.eye(4)
    expected[:3, :3] = np.asarray(reference.GetDirection()).reshape(3, 3) * np.asarray(reference.GetSpacing())
    expected[:3, 3] = reference.GetOrigin()
    np.testing.assert_allclose(ijk_to_lps, expected, atol=1e-4)
    assert np.array_equal(mask, sitk.GetArrayFromImage(sitk.ReadImage(str(out / "mtv.nii.gz"))))


def test_heatmaps_are_normalised_and_one_per_scale(analysed, wholebody):
    """Each heatmap lies in [0, 1]; a map that is not all zero peaks near 1 (maps are scaled to their
    maximum) and lives in the network's field around the lesion: nothing outside the crop."""
    out, result = analysed
    assert result.explanation["scales"] == SCALES
    pet = load_pet(wholebody["path"])
    centre = np.asarray(result.location.field_center_lps)
    half = np.asarray(result.location.crop_size_mm) / 2.0 + np.asarray(pet.spacing)    # plus one voxel
    assert np.linalg.norm(centre - np.asarray(wholebody["case"].lesion_center_lps)) < 10.0
    shown = 0
    for scale in SCALES:
        heatmap = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"gradcam_{scale}.nrrd")))
        assert heatmap.min() >= 0.0 and heatmap.max() <= 1.0
        if not heatmap.any():
            continue
        shown += 1
        assert heatmap.max() > 0.9, scale
        k, j, i = np.nonzero(heatmap)
        points = np.asarray(pet.origin)[:, None] + (np.asarray(pet.direction).reshape(3, 3) * np.asarray(pet.spacing)) \
            @ np.vstack([i, j, k])
        assert np.all(np.abs(points.T - centre) <= half), scale
    assert shown >= len(SCALES) // 2, shown                 # not a set of empty maps


def test_result_json_holds_scores_metrics_location_model_and_fingerprint(analysed, wholebody):
    out, _ = analysed
    result = json.loads((out / "result.json").read_text())
    scores = result["scores"]
    assert scores["outcome"]["samples"] == 6 and scores["outcome"]["sd"] > 0      # dropout 0.5: samples differ
    assert 0.0 <= scores["outcome"]["mean"] <= 1.0
    assert sum(p["mean"] for p in scores["pathology"].values()) == pytest.approx(1.0, abs=1e-3)
    assert scores["mask_source"] == "predicted"
    assert result["location"]["method"] == "point"
    np.testing.assert_allclose(result["location"]["center_ras"], wholebody["ras"], atol=1e-6)
    pet = load_pet(wholebody["path"])
    mtv = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "mtv.nii.gz")))
    metrics = compute_metrics(pet.suv, mtv, pet.spacing).to_dict()
    for key, value in metrics.items():
        assert result["metrics"][key] == pytest.approx(value, rel=1e-6), key
    assert result["input"]["sha256"] == hashlib.sha256(wholebody["path"].read_bytes()).hexdigest()
    assert result["model"]["intended_use"] == "Test model with random weights."
    assert result["engine_version"] and set(result["timings_s"]) >= {"load", "inference", "gradcam", "report"}
    for name in result["outputs"].values():
        assert (out / name).exists(), name
    assert (out / "report.pdf").read_bytes().count(b"/Type /Page\n") + \
        (out / "report.pdf").read_bytes().count(b"/Type /Page ") >= 1


def test_rescore_uses_the_edited_mask(analysed, wholebody, tiny_model, tmp_path, monkeypatch):
    out, first = analysed
    pet = load_pet(wholebody["path"])
    truth = wholebody["case"]
    edited = sitk.DICOMOrient(truth.pet.copy_geometry_to(sitk.GetImageFromArray(truth.mask)), "RAS")
    sitk.WriteImage(edited, str(tmp_path / "edited.nii.gz"))
    edited_array = sitk.GetArrayFromImage(edited)
    options = AnalysisOptions(model=tiny_model, samples=6)
    result = analyze(wholebody["path"], tmp_path / "rescored", options, edited_mask=tmp_path / "edited.nii.gz")
    assert result.scores.mask_source == "edited" and result.command == "rescore"
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "rescored" / "mtv.nii.gz")))
    assert np.array_equal(saved, edited_array)
    expected = compute_metrics(pet.suv, edited_array, pet.spacing)
    assert result.metrics["mtv_ml"] == pytest.approx(expected.mtv_ml)
    # Another mask with the same bounding box (the tumour's rim only): the same field, the same
    # dropout seed, and the outcome head is given exactly the edited mask, resampled to the field.
    from scipy import ndimage

    from MTLRadiomicsLib.analysis import engine
    from MTLRadiomicsLib.analysis.inference import mask_to_crop

    rim = (edited_array > 0) & ~ndimage.binary_erosion(edited_array > 0)
    moved = sitk.GetImageFromArray(rim.astype(np.uint8))
    moved.CopyInformation(edited)
    sitk.WriteImage(moved, str(tmp_path / "rim.nii.gz"))
    seen = []
    original = engine.predict

    def spy(network, crop, device, samples, method, mask_crop, *rest):
        seen.append((crop, mask_crop))
        return original(network, crop, device, samples, method, mask_crop, *rest)

    explained = []
    original_cam = engine.gradcam_all_scales

    def cam_spy(network, image, target, mask=None, *rest):
        explained.append(None if mask is None else mask.detach().cpu().numpy()[0, 0])
        return original_cam(network, image, target, mask, *rest)

    monkeypatch.setattr(engine, "predict", spy)
    monkeypatch.setattr(engine, "gradcam_all_scales", cam_spy)
    other = analyze(wholebody["path"], tmp_path / "other", options, edited_mask=tmp_path / "rim.nii.gz")
    assert other.location.field_center_lps == pytest.approx(result.location.field_center_lps)
    assert other.scores.seed == result.scores.seed
    crop, given = seen[0]
    rim_on_pet = load_mask(tmp_path / "rim.nii.gz", pet)
    assert given is not None and np.allclose(given, mask_to_crop(rim_on_pet, pet, crop))
    assert not np.allclose(given, mask_to_crop(load_mask(tmp_path / "edited.nii.gz", pet), pet, crop))
    # Grad-CAM explains the score of that same mask: the heatmaps are those of the edited MTV.
    assert len(explained) == 1 and explained[0] is not None
    assert np.allclose(explained[0], mask_to_crop(rim_on_pet, pet, crop))


def test_rescore_command_with_the_written_segmentation(analysed, wholebody, tiny_model, tmp_path):
    out, _ = analysed
    process = run_cli_here("rescore", wholebody["path"], "--mask", out / "segmentation.seg.nrrd", "--out",
                           tmp_path / "r", "--model", tiny_model, "--samples", "3", "--no-report", "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert "[edited MTV]" in process.stdout
    assert json.loads((tmp_path / "r" / "result.json").read_text())["scores"]["mask_source"] == "edited"


def test_rescore_records_the_mask_it_used(analysed, wholebody, tiny_model, tmp_path):
    out, _ = analysed
    mask = out / "segmentation.seg.nrrd"
    process = run_cli_here("rescore", wholebody["path"], "--mask", mask, "--out", tmp_path / "r", "--model", tiny_model,
                           "--samples", "2", "--progress", "none")
    assert process.returncode == 0, process.stderr
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    sha = hashlib.sha256(mask.read_bytes()).hexdigest()
    assert saved["input"]["edited_mask"] == str(mask)                 # as before: the path
    assert saved["input"]["edited_mask_name"] == "segmentation.seg.nrrd"
    assert saved["input"]["edited_mask_sha256"] == sha
    html = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "segmentation.seg.nrrd" in html and sha in html


def test_progress_json_lines_for_front_ends(wholebody, tiny_model, tmp_path):
    x, y, z = wholebody["ras"]
    process = run_cli_here("analyze", wholebody["path"], "--out", tmp_path / "p", "--model", tiny_model, "--point",
                           x, y, z, "--samples", "2", "--no-report", "--progress", "json", "--mtv-method", "suv2.5")
    assert process.returncode == 0, process.stderr
    lines = [json.loads(line) for line in process.stdout.splitlines()]
    fractions = [line["fraction"] for line in lines]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [line["stage"] for line in lines][:4] == ["load", "model", "localisation", "mtv"]
    assert lines[-1]["stage"] == "done" and lines[-1]["out"].endswith("p")


def test_existing_output_folder_is_kept_without_overwrite(wholebody, tiny_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    x, y, z = wholebody["ras"]
    args = ["analyze", wholebody["path"], "--out", out, "--model", tiny_model, "--point", x, y, z,
            "--samples", "2", "--no-report", "--progress", "none"]
    assert_one_line_error(run_cli_here(*args), "--overwrite")
    assert (out / "mine.txt").read_text() == "keep"
    assert run_cli_here(*args, "--overwrite").returncode == 0
    assert not (out / "mine.txt").exists() and (out / "result.json").exists()


def test_outputs_have_the_permissions_of_the_users_umask(wholebody, tiny_model, tmp_path):
    import os
    import stat

    x, y, z = wholebody["ras"]
    previous = os.umask(0o027)                 # group may read, others nothing
    try:
        process = run_cli_here("analyze", wholebody["path"], "--out", tmp_path / "shared", "--model", tiny_model,
                               "--point", x, y, z, "--samples", "2", "--progress", "none", "--mtv-method", "suv2.5")
    finally:
        os.umask(previous)
    assert process.returncode == 0, process.stderr
    out = tmp_path / "shared"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*")}
    assert {"result.json", "report.pdf", "report.html", "mtv.nii.gz"} <= set(files)
    assert set(files.values()) == {0o640}, files


def test_a_failed_analysis_writes_nothing(wholebody, tiny_model, tmp_path):
    out = tmp_path / "never"
    process = run_cli_here("analyze", wholebody["path"], "--out", out, "--model", tiny_model,
                           "--point", "5000", "0", "0", "--progress", "none")
    assert_one_line_error(process, "outside the PET volume")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


@pytest.mark.parametrize("extra, fragment", [
    (["--samples", "1"], "--samples"),
    (["--point", "0", "0", "0", "--box", "0", "0", "0", "10", "10", "10"], "not both"),
    (["--model", "/nonexistent/model"], "no model"),
])
def test_bad_options_are_one_line_errors(wholebody, tiny_model, tmp_path, extra, fragment):
    args = ["analyze", wholebody["path"], "--out", tmp_path / "o", "--progress", "none"]
    if "--model" not in extra:
        args += ["--model", tiny_model]
    assert_one_line_error(run_cli_here(*args, *extra), fragment)


def test_damaged_model_is_a_one_line_error(wholebody, tiny_model, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    assert_one_line_error(run_cli_here("analyze", wholebody["path"], "--out", tmp_path / "o", "--model", broken,
                                       "--progress", "none"), "checksum")


def test_box_cuda_fallback_and_tta(wholebody, tiny_model, tmp_path):
    x, y, z = wholebody["ras"]
    options = AnalysisOptions(box=((x - 20, y - 20, z - 20), (x + 20, y + 20, z + 20)), model=tiny_model,
                              samples=4, uncertainty="tta", device="cuda", report=False, mtv_method="suv2.5")
    result = analyze(wholebody["path"], tmp_path / "box", options)
    assert result.location.method == "box"
    # The MTV grows from the box's hottest voxel and stays inside the box (2 mm voxels: one of slack).
    pet = load_pet(wholebody["path"])
    seed = np.asarray(result.location.center_ras)
    assert np.all(np.abs(seed - np.asarray(wholebody["ras"])) <= 20.0)
    hottest = pet.suv[tuple(result.mtv["seed_voxel_zyx"])]
    box_lps = [(-x - 20, -y - 20, z - 20), (-x + 20, -y + 20, z + 20)]
    inside = analysis_engine.box_voxels(pet, *box_lps)
    assert hottest == pytest.approx(pet.suv[inside].max())
    mtv = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "box" / "mtv.nii.gz"))) > 0
    assert mtv.any() and not (mtv & ~inside).any()
    if not torch.cuda.is_available():
        assert any("CUDA" in w for w in result.warnings) and result.device == "cpu"
    assert "test-time augmentation" in result.scores.uncertainty


def test_automatic_localisation_in_the_engine(wholebody, tiny_model, tmp_path):
    result = analyze(wholebody["path"], tmp_path / "auto", AnalysisOptions(model=tiny_model, samples=2, report=False))
    assert result.location.method == "automatic"
    assert result.location.candidates and result.location.candidates[0]["rank"] == 1
    centre_lps = np.array(wholebody["case"].lesion_center_lps)
    found = np.array(result.location.center_lps)
    assert np.linalg.norm(found - centre_lps) < 30.0


def test_real_dicom_gives_a_dicom_seg_on_the_series(sts001_dir, tiny_model, tmp_path):
    import pydicom

    pet = load_pet(sts001_dir / "dicom")
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(sts001_dir / "GTV_Mass_mask.nii.gz")))
    k, j, i = np.argwhere(gtv > 0).mean(axis=0)
    x, y, z = pet.index_to_physical((i, j, k))
    out = tmp_path / "sts"
    result = analyze(sts001_dir / "dicom", out, AnalysisOptions(point=(-x, -y, z), model=tiny_model, samples=2,
                                                                mtv_method="suv2.5"))
    reference = pet.to_sitk()
    assert same_geometry(sitk.ReadImage(str(out / "mtv.nii.gz")), reference)
    assert result.metrics["voxels"] > 0
    seg = pydicom.dcmread(out / "mtv_seg.dcm")
    assert seg.Modality == "SEG"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == pet.series["SeriesInstanceUID"]
    assert result.input["files"] == 267


def test_batch_reports_bad_cases_and_skips_finished_ones(wholebody, tiny_model, tmp_path):
    manifest = tmp_path / "cases.csv"
    x, y, z = wholebody["ras"]
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "pet", "point_x", "point_y", "point_z"])
        writer.writerow(["good", wholebody["path"], x, y, z])
        writer.writerow(["missing", tmp_path / "nothing.nii.gz", "", "", ""])
    args = ["batch", manifest, "--out", tmp_path / "batch", "--model", tiny_model, "--samples", "2",
            "--no-report", "--progress", "none", "--mtv-method", "suv2.5"]
    first = run_cli_here(*args)
    assert first.returncode == 1, first.stderr
    rows = {r["case_id"]: r for r in csv.DictReader(open(tmp_path / "batch" / "summary.csv"))}
    assert rows["good"]["status"] == "done" and float(rows["good"]["mtv_ml"]) > 0
    assert rows["good"]["mtv_method"] == "suv2.5" and rows["good"]["scores_withheld"] == ""
    assert rows["missing"]["status"] == "failed" and "does not exist" in rows["missing"]["error"]
    second = run_cli_here(*args)
    rows = {r["case_id"]: r for r in csv.DictReader(open(tmp_path / "batch" / "summary.csv"))}
    assert rows["good"]["status"].startswith("skipped")
    assert second.returncode == 1


def test_lesion_suv_max_and_its_position_when_the_mtv_misses_the_hottest_voxel(wholebody, tiny_model, tmp_path):
    """An edited MTV without the lesion's hottest voxel: the MTV's SUVmax is lower, result.json holds
    the lesion's SUVmax (the MTV and the voxels touching it) and where it is, in RAS mm."""
    case = wholebody["case"]
    mask = case.mask > 0
    hottest = np.unravel_index(int(np.argmax(np.where(mask, case.pet.suv, -np.inf))), mask.shape)
    edited = mask.copy()
    edited[hottest] = False
    image = case.pet.copy_geometry_to(sitk.GetImageFromArray(edited.astype(np.uint8)))
    sitk.WriteImage(image, str(tmp_path / "edited.nii.gz"))
    result = analyze(wholebody["path"], tmp_path / "r", AnalysisOptions(model=tiny_model, samples=2, report=False),
                     edited_mask=tmp_path / "edited.nii.gz")
    saved = json.loads((tmp_path / "r" / "result.json").read_text())["metrics"]
    assert saved["suv_max"] < case.pet.suv[hottest]
    assert saved["lesion_suv_max"] == pytest.approx(float(case.pet.suv[hottest]))
    x, y, z = case.pet.index_to_physical(tuple(float(v) for v in hottest[::-1]))
    np.testing.assert_allclose(saved["lesion_suv_max_ras"], (-x, -y, z), atol=1e-3)
    assert result.metrics["lesion_suv_max"] == saved["lesion_suv_max"]
    assert set(saved) >= {"suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "voxels"}


def _without_report(analysed_out: Path, folder: Path) -> Path:
    """A copy of an analysis folder as --no-report leaves it: no report files, none in result.json."""
    import shutil

    shutil.copytree(analysed_out, folder)
    for name in ("report.pdf", "report.html"):
        (folder / name).unlink()
    record = json.loads((folder / "result.json").read_text())
    for key in ("report_pdf", "report_html"):
        record["outputs"].pop(key)
    (folder / "result.json").write_text(json.dumps(record, indent=2))
    return folder


def test_a_report_written_later_is_the_report_the_analysis_wrote(analysed, wholebody, tmp_path):
    """`mtl-radiomics report` (the Slicer module's export) draws from the folder's files and the PET
    the same report the analysis drew from memory: the HTML, with its figures, byte for byte."""
    from MTLRadiomicsLib.analysis.folder_report import report_folder

    out, result = analysed
    folder = _without_report(out, tmp_path / "later")
    later = report_folder(wholebody["path"], folder, AnalysisOptions())
    assert (folder / "report.html").read_text() == (out / "report.html").read_text()
    assert (folder / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert later.outputs == result.outputs
    record = json.loads((folder / "result.json").read_text())
    assert record["outputs"] == result.outputs
    assert record["scores"] == json.loads((out / "result.json").read_text())["scores"]
    assert record["timings_s"]["report"] > 0
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]     # no partial folder left


def test_a_report_is_refused_for_another_pet_a_missing_heatmap_or_a_folder_with_a_report(analysed, wholebody,
                                                                                       tmp_path):
    from MTLRadiomicsLib.analysis.folder_report import report_folder

    out, _ = analysed
    with pytest.raises(MTLRadiomicsError, match="has a report already \\(report.pdf, report.html\\); pass "
                                                "--overwrite"):
        report_folder(wholebody["path"], out)
    folder = _without_report(out, tmp_path / "f")
    other = tmp_path / "other.nii.gz"
    image = sitk.ReadImage(str(wholebody["path"]))
    sitk.WriteImage(image * 1.01, str(other))
    with pytest.raises(MTLRadiomicsError, match="other.nii.gz is not the PET this analysis was computed from"):
        report_folder(other, folder)
    (folder / "gradcam_dec2.nrrd").unlink()
    with pytest.raises(MTLRadiomicsError, match="has no gradcam_dec2.nrrd \\(the dec2 heatmap\\)"):
        report_folder(wholebody["path"], folder)
    assert not (folder / "report.pdf").exists()
    assert "report_pdf" not in json.loads((folder / "result.json").read_text())["outputs"]
    with pytest.raises(MTLRadiomicsError, match="holds no result.json"):
        report_folder(wholebody["path"], tmp_path)


def test_a_report_of_a_mask_on_another_grid_is_refused(analysed, wholebody, tmp_path):
    from MTLRadiomicsLib.analysis.folder_report import report_folder

    out, _ = analysed
    folder = _without_report(out, tmp_path / "g")
    mtv = sitk.ReadImage(str(folder / "mtv.nii.gz"))
    mtv.SetOrigin(tuple(v + 4.0 for v in mtv.GetOrigin()))
    sitk.WriteImage(mtv, str(folder / "mtv.nii.gz"))
    with pytest.raises(MTLRadiomicsError, match="mtv.nii.gz \\(the scored MTV\\) is not on the grid of this PET"):
        report_folder(wholebody["path"], folder)

"""Export from the Slicer module's logic: after an analysis that made its report, the PDF and HTML
report, result.json and the CSV land in the export folder under the PET's name, the copies are the
run's own files, and no note says a report is missing; after a run made without one, Export has the
engine write it first. A small synthetic PET (not DICOM, so no DICOM SEG) keeps the engine run short."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT / "MTLRadiomics") not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT / "MTLRadiomics"))

from MTLRadiomicsModuleLogic import AnalysisRequest, ProcessState, results, scene_io  # noqa: E402

from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402
from test_slicer_logic import make_logic, new_scene, run_to_end  # noqa: E402


@pytest.fixture(scope="module")
def reported(tiny_model, tmp_path_factory):
    """A 40^3 PET (3 mm) with one lesion of SUV 8, analysed from the logic with its report."""
    suv = np.ones((40, 40, 40), np.float32)
    k, j, i = np.indices(suv.shape)
    suv[(k - 20) ** 2 + (j - 18) ** 2 + (i - 22) ** 2 <= 16] = 8.0
    pet = PetVolume(suv=suv, spacing=(3.0, 3.0, 3.0), origin=(-60.0, -60.0, -60.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, pet, "Synthetic PET")
    x, y, z = pet.index_to_physical((22.0, 18.0, 20.0))
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
    point.AddControlPoint(-x, -y, z)
    tmp = tmp_path_factory.mktemp("export_report")
    logic = make_logic(scene, tmp, tiny_model)
    job = logic.start_analysis(AnalysisRequest(node, point, device="cpu", samples=2, report=True,
                                               mtv_method="suv2.5"))
    run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    return {"logic": logic, "result": logic.finish(job), "tmp": tmp}


def test_export_copies_the_report_result_and_csv(reported, tmp_path):
    logic, result = reported["logic"], reported["result"]
    source = result.result_folder
    assert (source / "report.pdf").is_file() and (source / "report.html").is_file()
    summary = logic.export(result, tmp_path / "export")
    base = "Synthetic_PET_MTLRadiomics"
    names = sorted(f.name for f in summary.files)
    assert names == sorted([f"{base}_report.pdf", f"{base}_report.html", f"{base}.json",
                            f"{base}_metrics_scores.csv"]), names
    assert all(f.parent == tmp_path / "export" and f.is_file() for f in summary.files)
    folder = tmp_path / "export"
    assert (folder / f"{base}_report.pdf").read_bytes() == (source / "report.pdf").read_bytes()
    assert (folder / f"{base}_report.pdf").read_bytes().startswith(b"%PDF")
    assert (folder / f"{base}_report.html").read_text() == (source / "report.html").read_text()
    exported = json.loads((folder / f"{base}.json").read_text())
    assert exported == result.result_json
    assert exported["outputs"]["report_pdf"] == "report.pdf" and exported["outputs"]["report_html"] == "report.html"
    assert not any("report" in note for note in summary.notes), summary.notes
    assert not any("DICOM SEG" in note for note in summary.notes)       # not a DICOM input: nothing to say
    rows = list(csv.DictReader(open(folder / f"{base}_metrics_scores.csv", encoding="utf-8")))
    metrics = {r["name"]: float(r["value"]) for r in rows if r["section"] == "metric"}
    assert metrics["MTV"] == pytest.approx(exported["metrics"]["mtv_ml"], rel=1e-5)
    assert metrics["SUVmax"] == pytest.approx(8.0, rel=1e-5)
    scores = [r for r in rows if r["section"] == "score"]
    assert scores and all(r["value"] != "" and int(r["samples"]) == 2 for r in scores)
    # The HTML report is this run's: it shows the lesion's MTV as result.json has it.
    assert f"{exported['metrics']['mtv_ml']:.1f}" in (folder / f"{base}_report.html").read_text()
    # Exporting again into the same folder replaces the files, it does not add to them.
    again = logic.export(result, folder)
    assert sorted(f.name for f in again.files) == names and len(list(folder.iterdir())) == len(names)
    assert results.scores_withheld(result) == ""


def test_export_writes_the_report_of_a_run_made_without_one(reported, tmp_path):
    """The module scores without a report (the physician reads the scores in the module); Export
    asks the engine for the report of the run's folder, and when it cannot be written the rest is
    still exported, with a note that says why."""
    logic, result = reported["logic"], reported["result"]
    job = logic.start_rescore(result, AnalysisRequest(result.pet, device="cpu", samples=2, report=False))
    run_to_end(logic, job)
    rescored = logic.finish(job)
    source = rescored.result_folder
    assert source.name.startswith("rescore-") and not (source / "report.pdf").exists()
    heatmap = source / "gradcam_dec1.nrrd"
    heatmap.rename(source / "aside.nrrd")
    summary = logic.export(rescored, tmp_path / "without")
    base = "Synthetic_PET_MTLRadiomics"
    assert sorted(f.name for f in summary.files) == sorted([f"{base}.json", f"{base}_metrics_scores.csv"])
    (note,) = [n for n in summary.notes if "report" in n]
    assert note.startswith("No PDF/HTML report: it could not be written (") and "has no gradcam_dec1.nrrd" in note
    (source / "aside.nrrd").rename(heatmap)
    summary = logic.export(rescored, tmp_path / "with")
    folder = tmp_path / "with"
    assert sorted(f.name for f in summary.files) == sorted([f"{base}_report.pdf", f"{base}_report.html",
                                                            f"{base}.json", f"{base}_metrics_scores.csv"])
    assert not any("report" in n for n in summary.notes), summary.notes
    assert (source / "report.pdf").is_file()                       # the run's folder holds it now
    html = (folder / f"{base}_report.html").read_text()
    assert html == (source / "report.html").read_text() and "re-scored" in html
    exported = json.loads((folder / f"{base}.json").read_text())
    assert exported["outputs"]["report_pdf"] == "report.pdf" and exported["command"] == "rescore"
    assert f"{exported['metrics']['mtv_ml']:.1f}" in html

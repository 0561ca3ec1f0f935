"""The Slicer module's logic against real MRML (the slicer-core wheel), headless.

The engine runs as a real background process (a tiny random model, 2 uncertainty samples, no
report) on the real whole-body scan STS_001 handed over as DICOM, with a point inside the GTV and the
classical MTV "SUV >= 2.5" with holes filled (the tiny model's own network MTV is empty, which would
withhold the scores: see test_slicer_mtv.py); the outputs become nodes whose geometry, display and
tables are checked, every method's MTV included; an edit of the MTV by array
updates the live metrics; rescoring uses the edited mask; cancel kills the process and leaves the
scene as it was. A synthetic whole-body case is used where the real scan is not needed.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import (AnalysisError, AnalysisLogic, AnalysisRequest, EngineProcess,  # noqa: E402
                               ProcessState, ResultNodes, dependencies, pet_input, results, sample_data,
                               scene_io)
from MTLRadiomicsModuleLogic.engine_process import (engine_command, process_alive,  # noqa: E402
                                              process_group_alive)

from MTLRadiomicsLib import load_pet  # noqa: E402
from MTLRadiomicsLib.analysis.outputs import read_seg_nrrd  # noqa: E402
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics  # noqa: E402

ENGINE_TIMEOUT_S = 300


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> sample_data.SamplePet:
    return sample_data.ensure_sample_pet(tmp_path_factory.mktemp("sample_cache"))


def new_scene():
    """A scene as Slicer's views give it: three slice composite nodes."""
    scene = slicer.vtkMRMLScene()
    for name in ("Red", "Green", "Yellow"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(name)
        scene.AddNode(composite)
    return scene


def node_ids(scene) -> list[str]:
    return [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]


def make_logic(scene, tmp_path, model, lookup=None) -> AnalysisLogic:
    return AnalysisLogic(scene, sys.executable, PROJECT_ROOT, dicom_lookup=lookup,
                         temp_root=tmp_path / "runs", bundled_model=model,
                         device_status=lambda: dependencies.DeviceStatus(False, "no GPU in tests"))


def run_to_end(logic, job):
    """Poll like the module's timer does; returns the progress events."""
    events = []
    deadline = time.monotonic() + ENGINE_TIMEOUT_S
    while True:
        update = logic.poll(job)
        events += update.events
        if update.state.finished:
            return events
        if time.monotonic() > deadline:
            logic.cancel(job)
            pytest.fail("the engine did not finish in time")
        time.sleep(0.1)


def ijk_to_ras(node) -> np.ndarray:
    return scene_io.get_ijk_to_ras(node)


def gtv_point_ras(sts001_dir: Path, suv: np.ndarray) -> tuple[float, float, float]:
    """A voxel centre inside the GTV, RAS: its hottest voxel, where a physician would click. (Near the
    voxel nearest the GTV centroid, in the sarcoma's cold core, the SUV is only about 2.5; the MTV
    grown from there reaches the tumour's rim, SUVmax 7.9, which the engine's plausibility check
    takes for a joined hotter structure, and the scores would be withheld.)"""
    image = sitk.ReadImage(str(sts001_dir / "GTV_Mass_mask.nii.gz"))
    mask = sitk.GetArrayFromImage(image) > 0
    assert mask.shape == suv.shape
    z, y, x = np.unravel_index(int(np.argmax(np.where(mask, suv, -np.inf))), mask.shape)
    lps = image.TransformIndexToPhysicalPoint([int(x), int(y), int(z)])
    return (-lps[0], -lps[1], lps[2])


# --------------------------------------------------------------------------- real scan, as DICOM
@pytest.fixture(scope="module")
def sts_analysis(sts001_dir, sts001_pet, tiny_model, tmp_path_factory):
    """STS_001 in a scene as Slicer's DICOM loader gives it (Bq/ml voxels, instance UIDs, under its
    patient and study), analysed with a point in the GTV, the MTV "SUV >= 2.5", holes filled."""
    import pydicom

    pet = sts001_pet
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, pet, "STS_001 PET", values=pet.suv / pet.suv_conversion.factor)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in pet.dicom_files]
    lookup = dict(zip(uids, pet.dicom_files))
    node.SetAttribute(pet_input.INSTANCE_UIDS_ATTRIBUTE, " ".join(uids))
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), "STS_001")
    study = sh.CreateStudyItem(patient, "PET study")
    sh.CreateItem(study, node)
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
    point.AddControlPoint(*gtv_point_ras(sts001_dir, pet.suv))

    tmp = tmp_path_factory.mktemp("sts_analysis")
    logic = make_logic(scene, tmp, tiny_model, lookup.get)
    before = node_ids(scene)
    job = logic.start_analysis(AnalysisRequest(node, point, device="cpu", samples=2, report=False,
                                               mtv_method="suv2.5", fill_holes=True))
    assert node_ids(scene) == before                       # starting a run adds nothing
    events = run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    result = logic.finish(job)
    return {"scene": scene, "logic": logic, "pet_node": node, "pet": pet, "result": result, "job": job,
            "events": events, "study": study, "sh": sh, "before": before, "tmp": tmp}


def test_progress_lines_reach_the_logic(sts_analysis):
    stages = [e.stage for e in sts_analysis["events"]]
    assert stages[0] == "load" and stages[-1] == "done"
    fractions = [e.fraction for e in sts_analysis["events"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(e.message for e in sts_analysis["events"])


def test_dicom_volume_is_handed_to_the_engine_as_dicom(sts_analysis):
    logic, node, result = sts_analysis["logic"], sts_analysis["pet_node"], sts_analysis["result"]
    check = logic.check_pet(node)
    assert check.usable and check.kind == "dicom" and "BQML" in check.message
    assert result.from_dicom and result.input_path.is_dir()
    assert len(list(result.input_path.iterdir())) == len(sts_analysis["pet"].dicom_files)
    data = result.result_json
    assert data["pet"]["suv_conversion"]["units_in_file"].upper().startswith("BQML")
    assert (result.result_folder / "mtv_seg.dcm").is_file()


def test_results_sit_in_a_folder_under_the_pet_study(sts_analysis):
    sh, result, study = sts_analysis["sh"], sts_analysis["result"], sts_analysis["study"]
    folder = result.folder_item
    assert sh.GetItemParent(folder) == study
    for node_id in result.node_ids():
        item = sh.GetItemByDataNode(sts_analysis["scene"].GetNodeByID(node_id))
        assert sh.GetItemParent(item) == folder, node_id
    assert sh.GetItemAncestorAtLevel(sh.GetItemByDataNode(result.segmentation), "Study") == study


def test_result_nodes_are_found_again_from_the_segmentation(sts_analysis):
    result = sts_analysis["result"]
    again = ResultNodes.from_segmentation(result.segmentation)
    assert again is not None and again.node_ids() == result.node_ids()
    assert again.pet.GetID() == sts_analysis["pet_node"].GetID()
    assert again.input_path == result.input_path and again.from_dicom
    assert ResultNodes.from_segmentation(None) is None


def test_labelmap_and_heatmaps_have_the_pet_geometry(sts_analysis):
    pet_node, result = sts_analysis["pet_node"], sts_analysis["result"]
    assert set(result.heatmaps) == set(results.SCALES)
    for node in [result.labelmap, *result.heatmaps.values()]:
        assert node.GetImageData().GetDimensions() == pet_node.GetImageData().GetDimensions()
        np.testing.assert_allclose(ijk_to_ras(node), ijk_to_ras(pet_node), atol=1e-4)
    # the PET node itself sits where the DICOM says: voxel (0,0,0) at the LPS origin, flipped to RAS
    pet = sts_analysis["pet"]
    np.testing.assert_allclose(ijk_to_ras(pet_node)[:3, 3], [-pet.origin[0], -pet.origin[1], pet.origin[2]], atol=1e-4)


def test_labelmap_equals_the_engine_mtv_and_the_segment(sts_analysis):
    result = sts_analysis["result"]
    mtv = sitk.GetArrayFromImage(sitk.ReadImage(str(result.result_folder / "mtv.nii.gz")))
    assert mtv.any(), "the tiny model segmented nothing: the geometry checks would be empty"
    np.testing.assert_array_equal(scene_io.array_from_volume(result.labelmap), mtv)
    np.testing.assert_array_equal(scene_io.segment_array(result.segmentation, result.segment_id,
                                                         sts_analysis["pet_node"]), mtv)


def test_segmentation_lies_where_the_engine_put_the_mtv(sts_analysis):
    """Physical position: the segmentation's RAS bounds are the bounds of the MTV voxels computed
    from mtv.nii.gz's own LPS geometry, and its reference geometry is the PET."""
    result = sts_analysis["result"]
    image = sitk.ReadImage(str(result.result_folder / "mtv.nii.gz"))
    inside = np.argwhere(sitk.GetArrayFromImage(image) > 0)
    corners = []
    for k in (inside[:, 0].min() - 0.5, inside[:, 0].max() + 0.5):
        for j in (inside[:, 1].min() - 0.5, inside[:, 1].max() + 0.5):
            for i in (inside[:, 2].min() - 0.5, inside[:, 2].max() + 0.5):
                x, y, z = image.TransformContinuousIndexToPhysicalPoint([float(i), float(j), float(k)])
                corners.append((-x, -y, z))
    corners = np.array(corners)
    expected = np.ravel(np.column_stack([corners.min(axis=0), corners.max(axis=0)]))
    bounds = [0.0] * 6
    result.segmentation.GetRASBounds(bounds)
    np.testing.assert_allclose(bounds, expected, atol=1e-3)
    import vtk

    geometry = result.segmentation.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    assert geometry, "the segmentation has no reference geometry"
    reference = slicer.vtkOrientedImageData()
    slicer.vtkSegmentationConverter.DeserializeImageGeometry(geometry, reference)
    matrix = vtk.vtkMatrix4x4()
    reference.GetImageToWorldMatrix(matrix)
    np.testing.assert_allclose(scene_io.numpy_matrix(matrix), ijk_to_ras(sts_analysis["pet_node"]), atol=1e-4)
    assert result.segmentation.GetNodeReference(
        slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()).GetID() == \
        sts_analysis["pet_node"].GetID()


def test_heatmaps_are_shown_over_the_pet_in_colour(sts_analysis):
    scene, logic, result = sts_analysis["scene"], sts_analysis["logic"], sts_analysis["result"]
    color = scene.GetSingletonNode(results.HEATMAP_COLOR_TAG, "vtkMRMLProceduralColorNode")
    assert color is not None
    location = result.result_json["location"]
    x, y, z = location["field_center_lps"]
    field_ras = np.array([-x, -y, z])                 # the network's field, centred on the lesion
    half = np.asarray(location["crop_size_mm"]) / 2.0 + max(sts_analysis["pet"].spacing)   # plus one voxel
    assert np.linalg.norm(field_ras - np.asarray(location["center_ras"])) < 60.0
    shown = 0
    for scale, node in result.heatmaps.items():
        display = node.GetDisplayNode()
        assert display.GetColorNodeID() == color.GetID(), scale
        assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(results.HEATMAP_THRESHOLD)
        assert display.GetWindow() == pytest.approx(1.0) and display.GetLevel() == pytest.approx(0.5)
        values = scene_io.array_from_volume(node)
        assert values.min() >= 0.0 and values.max() <= 1.0
        if not values.any():
            continue
        # A map that is not all zero peaks well above 0 (scaled to 1 on the crop; resampling onto the
        # coarser PET grid lowers the peak a little) and lies in the network's field in the scene.
        shown += 1
        assert values.max() > 0.5, scale
        k, j, i = np.nonzero(values)
        matrix = ijk_to_ras(node)
        ras = matrix[:3, :3] @ np.vstack([i, j, k]) + matrix[:3, 3:]
        assert np.all(np.abs(ras.T - field_ras) <= half), scale
    assert shown >= len(result.heatmaps) // 2, shown
    logic.show_heatmap(result, "enc3", 0.35)
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    assert composites.GetNumberOfItems() == 3
    for i in range(3):
        composite = composites.GetItemAsObject(i)
        assert composite.GetBackgroundVolumeID() == sts_analysis["pet_node"].GetID()
        assert composite.GetForegroundVolumeID() == result.heatmaps["enc3"].GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.35)
    logic.set_heatmap_opacity(0.8)
    assert composites.GetItemAsObject(0).GetForegroundOpacity() == pytest.approx(0.8)
    with pytest.raises(ValueError):
        logic.show_heatmap(result, "enc9")


def test_tables_hold_scores_with_uncertainty_and_metrics(sts_analysis):
    result = sts_analysis["result"]
    data = result.result_json
    rows = results.scores_from_table(result.scores_table)
    assert len(rows) == 1 + len(data["scores"]["pathology"])
    assert rows[0]["mean"] == pytest.approx(data["scores"]["outcome"]["mean"])
    assert rows[0]["sd"] == pytest.approx(data["scores"]["outcome"]["sd"])
    assert rows[0]["samples"] == 2 and all(r["mtv"] == "predicted" for r in rows)
    values = result.scores_table.GetTable().GetColumnByName("Value")
    assert all("±" in values.GetValue(i) for i in range(values.GetNumberOfValues()))
    metrics = results.metrics_from_table(result.metrics_table)
    assert set(metrics) == {"suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg"}
    for key, value in metrics.items():
        assert value == pytest.approx(data["metrics"][key], rel=1e-9), key
    units = result.metrics_table.GetTable().GetColumnByName("Unit")
    assert [units.GetValue(i) for i in range(5)] == ["g/ml", "g/ml", "g/ml", "ml", "g"]


def test_mtv_method_and_hole_filling_reach_the_engine(sts_analysis):
    command = sts_analysis["job"].process.command
    assert command[command.index("--mtv-method") + 1] == "suv2.5" and "--fill-holes" in command
    result, logic = sts_analysis["result"], sts_analysis["logic"]
    mtv = result.result_json["mtv"]
    assert mtv["method"] == "suv2.5" and mtv["label"] == "SUV >= 2.5" and mtv["fill_holes"] is True
    assert mtv["check"]["valid"] and logic.scores_withheld(result) == ""
    assert result.scores_table.GetAttribute(results.ATTR_SCORES_WITHHELD) == ""
    assert logic.mtv_summary(result)["method"] == "suv2.5"
    assert logic.warnings(result) == result.result_json["warnings"]


def test_every_method_mtv_is_a_hidden_segmentation_on_the_pet_geometry(sts_analysis):
    result, pet_node, sh = sts_analysis["result"], sts_analysis["pet_node"], sts_analysis["sh"]
    data = result.result_json["mtv"]
    available = {name: entry for name, entry in data["methods"].items() if entry["available"]}
    assert len(available) >= 5
    node = result.methods_segmentation
    assert node is not None and node.GetName().endswith(" MTV by method")
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == [entry["label"] for entry in available.values()]
    assert not node.GetDisplayNode().GetVisibility()                 # hidden until asked for
    assert node.GetAttribute(results.ROLE_ATTRIBUTE) == results.ROLE_MTV_METHODS
    assert ResultNodes.from_segmentation(node) is None               # not a result of its own
    assert node.GetID() not in [r.segmentation.GetID() for r in sts_analysis["logic"].results_for(pet_node)]
    assert node.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()).GetID() \
        == pet_node.GetID()
    masks = results.method_masks(result)
    mtv = sitk.GetArrayFromImage(sitk.ReadImage(str(result.result_folder / "mtv.nii.gz")))
    for name, entry in available.items():
        mask = masks[entry["label"]]
        assert mask.shape == tuple(reversed(pet_node.GetImageData().GetDimensions()))
        assert int(mask.sum()) == entry["metrics"]["voxels"], name
    np.testing.assert_array_equal(masks["SUV >= 2.5"], mtv)          # the scored one is the MTV segment
    assert sh.GetItemParent(sh.GetItemByDataNode(node)) == result.folder_item
    assert sh.GetItemParent(sh.GetItemByDataNode(result.methods_table)) == result.folder_item


def test_methods_table_equals_result_json(sts_analysis):
    result = sts_analysis["result"]
    data = result.result_json["mtv"]
    table = result.methods_table
    assert table is not None and table.GetName().endswith(" MTV methods")
    rows = results.methods_from_table(table)
    masks = results.method_masks(result)
    assert masks["SUV >= 2.5"].any()
    assert len(rows) == len(data["methods"]) == 6
    for row, (name, entry) in zip(rows, data["methods"].items()):
        assert row["method"] == entry["label"] and row["available"] == entry["available"], name
        assert row["scored"] == (name == "suv2.5") and row["reason"] == (entry.get("reason") or "")
        if entry["available"]:
            assert row["mtv_ml"] == pytest.approx(entry["metrics"]["mtv_ml"], rel=1e-9)
            assert row["suv_mean"] == pytest.approx(entry["metrics"]["suv_mean"], rel=1e-9)
            assert row["suv_max"] == pytest.approx(entry["metrics"]["suv_max"], rel=1e-9)
            # The scored MTV is not empty, so every method has a Dice with it (0 for an empty method).
            assert entry["dice_with_chosen"] is not None, name
            assert row["dice"] == pytest.approx(entry["dice_with_chosen"], abs=1e-9)
            mask, chosen = masks[entry["label"]] > 0, masks["SUV >= 2.5"] > 0
            assert row["dice"] == pytest.approx(2.0 * (mask & chosen).sum() / (mask.sum() + chosen.sum()), abs=1e-4)
        else:
            assert np.isnan(row["mtv_ml"]) and row["reason"]
    scored = next(r for r in rows if r["scored"])
    assert scored["dice"] == pytest.approx(1.0)
    assert scored["mtv_ml"] == pytest.approx(results.metrics_from_table(result.metrics_table)["mtv_ml"], rel=1e-9)
    assert table.GetAttribute(results.ATTR_SCORED_MTV) == "suv2.5"


def test_live_metrics_equal_the_engine_before_any_edit(sts_analysis):
    logic, result = sts_analysis["logic"], sts_analysis["result"]
    live = logic.live_metrics.compute(result)
    engine = result.result_json["metrics"]
    # The live table holds the MTV's PET metrics; the lesion SUVmax (MTV grown by a voxel) is the engine's only.
    assert set(engine) - set(live) == {"lesion_suv_max", "lesion_suv_max_ras"}
    for key, value in live.items():
        assert value == pytest.approx(engine[key], rel=1e-6), key


@pytest.fixture(scope="module")
def edited(sts_analysis, sts001_dir):
    """The MTV edited by array: the predicted MTV plus the GTV (as a physician might draw it)."""
    result, pet_node = sts_analysis["result"], sts_analysis["pet_node"]
    predicted = scene_io.segment_array(result.segmentation, result.segment_id, pet_node)
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(sts001_dir / "GTV_Mass_mask.nii.gz"))) > 0
    mask = (predicted.astype(bool) | gtv).astype(np.uint8)
    assert mask.sum() > predicted.sum()
    scene_io.update_segment_from_array(mask, result.segmentation, result.segment_id, pet_node)
    return mask


def test_an_edit_by_array_changes_the_segment_and_the_live_metrics(sts_analysis, edited):
    logic, result, pet = sts_analysis["logic"], sts_analysis["result"], sts_analysis["pet"]
    np.testing.assert_array_equal(scene_io.segment_array(result.segmentation, result.segment_id,
                                                         sts_analysis["pet_node"]), edited)
    assert results.edited_since_scoring(result)
    metrics = logic.update_live_metrics(result)
    expected = compute_metrics(pet.suv, edited, pet.spacing).to_dict()
    table = results.metrics_from_table(result.metrics_table)
    for key in ("suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg"):
        assert metrics[key] == pytest.approx(expected[key], rel=1e-9)
        assert table[key] == pytest.approx(expected[key], rel=1e-9)
    assert result.metrics_table.GetAttribute(results.ATTR_METRICS_SOURCE) == "live"
    assert table["mtv_ml"] == pytest.approx(edited.sum() * np.prod(pet.spacing) / 1000.0)


def test_rescore_scores_the_edited_mask(sts_analysis, edited):
    logic, result, pet = sts_analysis["logic"], sts_analysis["result"], sts_analysis["pet"]
    ids_before = node_ids(sts_analysis["scene"])
    job = logic.start_rescore(result, AnalysisRequest(sts_analysis["pet_node"], device="cpu", samples=2,
                                                      report=False))
    assert "--mtv-method" not in job.process.command and "--fill-holes" not in job.process.command
    mask_file = next(result.run_folder.glob("edited-mtv-*.nrrd"))
    written = sitk.ReadImage(str(mask_file))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), edited)
    np.testing.assert_allclose(written.GetOrigin(), pet.origin, atol=1e-4)
    run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    updated = logic.finish(job)
    data = updated.result_json
    assert data["command"] == "rescore" and data["scores"]["mask_source"] == "edited"
    assert data["metrics"]["mtv_ml"] == pytest.approx(edited.sum() * np.prod(pet.spacing) / 1000.0, rel=1e-9)
    assert all(r["mtv"] == "edited" for r in results.scores_from_table(updated.scores_table))
    assert results.metrics_from_table(updated.metrics_table)["mtv_ml"] == pytest.approx(data["metrics"]["mtv_ml"])
    np.testing.assert_array_equal(scene_io.array_from_volume(updated.labelmap), edited)
    np.testing.assert_array_equal(scene_io.segment_array(updated.segmentation, updated.segment_id,
                                                         sts_analysis["pet_node"]), edited)
    assert not results.edited_since_scoring(updated)
    assert data["scores"]["withheld"] == "" and set(updated.heatmaps) == set(results.SCALES), data["warnings"]
    assert node_ids(sts_analysis["scene"]) == ids_before          # rescoring updates, never adds
    # the methods table now compares every method with the edited MTV; no method is "the scored one"
    rows = results.methods_from_table(updated.methods_table)
    masks = results.method_masks(updated)
    for row in rows:
        if row["available"]:
            mask = masks[row["method"]].astype(bool)
            expected = 2.0 * (mask & (edited > 0)).sum() / (mask.sum() + edited.sum())
            assert row["dice"] == pytest.approx(expected, abs=1e-9), row["method"]
    assert not any(r["scored"] for r in rows)
    assert updated.methods_table.GetAttribute(results.ATTR_SCORED_MTV) == "edited"
    assert updated.analysis_folder == sts_analysis["job"].out_dir
    assert sts_analysis["logic"].mtv_summary(updated)["method"] == "suv2.5"   # the analysis's, not "edited"


def test_reanalysis_makes_new_nodes_and_keeps_the_edited_segmentation(sts_analysis, edited):
    scene, result = sts_analysis["scene"], sts_analysis["result"]
    second = results.import_results(scene, sts_analysis["job"].out_dir, sts_analysis["pet_node"],
                                    result.run_folder, result.input_path)
    assert not set(second.node_ids()) & set(result.node_ids())
    assert second.segmentation.GetName() != result.segmentation.GetName()
    np.testing.assert_array_equal(scene_io.segment_array(result.segmentation, result.segment_id,
                                                         sts_analysis["pet_node"]), edited)
    assert len(results.results_for_pet(scene, sts_analysis["pet_node"])) == 2
    sh = sts_analysis["sh"]
    assert sh.GetItemParent(second.folder_item) == sts_analysis["study"]
    assert second.folder_item != result.folder_item


def test_export_writes_json_csv_and_dicom_seg(sts_analysis, edited, tmp_path):
    logic, result = sts_analysis["logic"], sts_analysis["result"]
    summary = logic.export(result, tmp_path / "export")
    names = sorted(f.name for f in summary.files)
    assert any(n.endswith(".json") for n in names) and any(n.endswith("_MTV_SEG.dcm") for n in names)
    csv_file = next(f for f in summary.files if f.suffix == ".csv")
    rows = list(csv.DictReader(open(csv_file, encoding="utf-8")))
    metric_rows = {r["name"]: r for r in rows if r["section"] == "metric"}
    assert set(metric_rows) == {"SUVmax", "SUVpeak", "SUVmean", "MTV", "TLG"}
    assert float(metric_rows["MTV"]["value"]) == pytest.approx(results.metrics_from_table(result.metrics_table)["mtv_ml"],
                                                               rel=1e-5)
    score_rows = [r for r in rows if r["section"] == "score"]
    assert score_rows and all(r["sd"] != "" for r in score_rows)
    # analysed without a report, as the module analyses: Export had the engine write it first
    assert any(n.endswith("_report.pdf") for n in names) and any(n.endswith("_report.html") for n in names)
    assert (result.result_folder / "report.pdf").is_file()
    assert not any("report" in n.lower() for n in summary.notes), summary.notes
    import pydicom

    seg = pydicom.dcmread(next(f for f in summary.files if f.suffix == ".dcm"))
    assert seg.Modality == "SEG"
    # an edit after the last scoring is reported
    mask = scene_io.segment_array(result.segmentation, result.segment_id, sts_analysis["pet_node"])
    mask[tuple(np.argwhere(mask)[0])] = 0
    scene_io.update_segment_from_array(mask, result.segmentation, result.segment_id, sts_analysis["pet_node"])
    later = logic.export(result, tmp_path / "export2")
    assert any("edited after the last scoring" in n for n in later.notes)


def test_a_saved_scene_finds_its_result_again_without_the_run_folder(sts_analysis, tmp_path):
    """Saved with the scene and reopened (the temporary run folder gone): the result is found from
    its segmentation, and the live metrics write the PET out again to read its SUV."""
    scene = new_scene()
    pet_node = scene_io.add_pet_volume_node(scene, sts_analysis["pet"], "STS_001 PET")
    result = results.import_results(scene, sts_analysis["job"].out_dir, pet_node, tmp_path / "gone",
                                    tmp_path / "gone" / "input" / "pet.nrrd")
    storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
    storage.SetFileName(str(tmp_path / "mtv.seg.nrrd"))
    result.segmentation.SetAndObserveStorageNodeID(storage.GetID())
    assert storage.WriteData(result.segmentation)
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    reopened = new_scene()
    reopened.SetURL(str(tmp_path / "scene.mrml"))
    assert reopened.Connect()
    segmentation = reopened.GetFirstNodeByName(result.segmentation.GetName())
    found = ResultNodes.from_segmentation(segmentation)
    assert found is not None and found.pet.GetName() == "STS_001 PET"
    assert set(found.heatmaps) == set(results.SCALES) and found.metrics_table is not None
    assert found.methods_segmentation.GetName() == result.methods_segmentation.GetName()
    assert found.methods_table.GetName() == result.methods_table.GetName()
    assert found.analysis_folder == sts_analysis["job"].out_dir
    assert found.result_folder == sts_analysis["job"].out_dir and not found.input_path.exists()
    # the reopened nodes have no voxels here (no volume files were saved): use the first scene's
    logic = make_logic(scene, tmp_path, None)
    metrics = logic.update_live_metrics(result)
    assert result.input_path.is_file() and result.input_path.parent.parent == tmp_path / "gone"
    engine = json.loads((sts_analysis["job"].out_dir / "result.json").read_text())["metrics"]
    for key in ("suv_max", "suv_mean", "mtv_ml", "tlg"):
        assert metrics[key] == pytest.approx(engine[key], rel=1e-6), key


# --------------------------------------------------------------------------- cancel
def test_cancel_kills_the_engine_and_leaves_the_scene_unchanged(sample, tiny_model, tmp_path):
    scene = new_scene()
    pet = load_pet(sample.path)
    node = scene_io.add_pet_volume_node(scene, pet, "Sample")
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
    point.AddControlPoint(*sample.lesion_ras)
    logic = make_logic(scene, tmp_path, tiny_model)
    before = node_ids(scene)
    job = logic.start_analysis(AnalysisRequest(node, point, device="cpu", samples=2, report=False))
    pid = job.process.pid
    deadline = time.monotonic() + 120
    while not logic.poll(job).events:              # wait until the engine is really working
        assert time.monotonic() < deadline and job.state == ProcessState.RUNNING, job.process.error_message()
        time.sleep(0.05)
    assert job.run_folder.exists()
    logic.cancel(job)
    assert job.state == ProcessState.CANCELLED
    update = logic.poll(job)
    assert update.state == ProcessState.CANCELLED
    assert update.returncode is not None and update.returncode != 0 and update.returncode == job.process.returncode
    assert not process_alive(pid) and not process_group_alive(pid)
    assert not job.run_folder.exists()
    assert node_ids(scene) == before


def test_cancel_kills_children_of_a_launcher(tmp_path):
    """PythonSlicer is a launcher that runs the real Python as a child: both must go."""
    script = textwrap.dedent("""
        import json, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        print(json.dumps({"stage": "load", "fraction": 0.1, "message": str(child.pid)}), flush=True)
        time.sleep(120)
    """)
    process = EngineProcess([sys.executable, "-c", script]).start()
    deadline = time.monotonic() + 30
    events = []
    while not events:
        events = process.poll().events
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(events[0].message)
    assert process_alive(child)
    started = time.monotonic()
    process.cancel()
    assert time.monotonic() - started < 10
    assert process.state == ProcessState.CANCELLED and process.returncode is not None
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child)
    assert not process_group_alive(process.pid)


def test_engine_errors_come_back_as_one_line(tmp_path):
    command = engine_command(sys.executable, PROJECT_ROOT,
                             ["analyze", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "out"),
                              "--progress", "json"])
    process = EngineProcess(command).start()
    assert process.wait(ENGINE_TIMEOUT_S) == ProcessState.FAILED
    assert process.returncode == 2
    assert process.error_message() == f"{tmp_path / 'missing.nii.gz'} does not exist"
    assert not (tmp_path / "out").exists()


def test_progress_parser_ignores_other_output(tmp_path):
    script = textwrap.dedent("""
        import json, sys
        print("a warning on stdout")
        print(json.dumps({"stage": "model", "fraction": 0.5, "message": "loading"}), flush=True)
        print("mtl-radiomics: error: the model folder is empty", file=sys.stderr)
        sys.exit(2)
    """)
    process = EngineProcess([sys.executable, "-c", script]).start()
    assert process.wait(30) == ProcessState.FAILED
    update = process.poll()
    assert [e.stage for e in update.events] == ["model"] and update.events[0].fraction == 0.5
    assert "a warning on stdout" in update.log_lines
    assert process.error_message() == "the model folder is empty"


def test_failed_analysis_raises_and_adds_nothing(sample, tmp_path):
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, load_pet(sample.path), "Sample")
    model = tmp_path / "broken_model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    logic = make_logic(scene, tmp_path, model)
    before = node_ids(scene)
    job = logic.start_analysis(AnalysisRequest(node, None, device="cpu", samples=2, report=False))
    run_to_end(logic, job)
    assert job.state == ProcessState.FAILED
    with pytest.raises(AnalysisError) as error:
        logic.finish(job)
    assert "\n" not in str(error.value) and str(error.value)
    assert node_ids(scene) == before and not job.run_folder.exists()


# --------------------------------------------------------------------------- inputs
def test_suv_check_tells_suv_from_bq_per_ml(sample, sts001_dir):
    scene = new_scene()
    pet = load_pet(sample.path)
    suv_node = scene_io.add_pet_volume_node(scene, pet, "SUV")
    check = pet_input.check_suv(suv_node)
    assert check.usable and check.kind == "assumed"
    bqml = scene_io.add_pet_volume_node(scene, pet, "Bq/ml", values=pet.suv * 5000.0)
    check = pet_input.check_suv(bqml)
    assert not check.usable and "Bq/ml" in check.message and "DICOM" in check.message
    entry = slicer.vtkCodedEntry()
    entry.SetValueSchemeMeaning("{SUVbw}g/ml", "UCUM", "Standardized Uptake Value body weight")
    bqml.SetVoxelValueUnits(entry)
    assert pet_input.check_suv(bqml).kind == "suv"
    ct = scene_io.add_pet_volume_node(scene, pet, "CT", values=np.full(pet.suv.shape, -1000.0, np.float32))
    assert not pet_input.check_suv(ct).usable
    files = sorted(str(p) for p in (sts001_dir / "dicom").iterdir())
    check = pet_input.check_suv(bqml, files)
    assert check.usable and check.kind == "dicom" and "BQML" in check.message
    assert not pet_input.check_suv(None).usable


def test_lesion_point_and_box_in_the_pet_frame(sample):
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, load_pet(sample.path), "Sample")
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "P")
    with pytest.raises(ValueError):
        pet_input.lesion_arguments(point, node)
    point.AddControlPoint(10.0, -20.0, -300.0)
    assert pet_input.lesion_arguments(point, node) == ["--point", "10.0000", "-20.0000", "-300.0000"]
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "R")
    roi.SetCenter(10.0, -20.0, -300.0)
    roi.SetSize(40.0, 30.0, 20.0)
    args = pet_input.lesion_arguments(roi, node)
    assert args[0] == "--box"
    np.testing.assert_allclose([float(v) for v in args[1:]], [-10, -35, -310, 30, -5, -290], atol=1e-6)
    assert pet_input.lesion_arguments(None, node) == []
    # the PET moved by a linear transform: the point is given in the PET's own frame
    import vtk

    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "T")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 5.0)
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())
    assert pet_input.lesion_arguments(point, node) == ["--point", "5.0000", "-20.0000", "-300.0000"]


# --------------------------------------------------------------------------- files
def test_volume_geometry_round_trips_through_nrrd(tmp_path):
    scene = new_scene()
    angle = np.deg2rad(20.0)
    direction = (np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0)
    matrix = scene_io.ijk_to_ras_from_lps((12.5, -40.0, 100.0), (1.5, 2.0, 3.0), direction)
    values = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    node = scene_io.add_volume_node(scene, values, matrix, "oblique")
    np.testing.assert_allclose(ijk_to_ras(node), matrix, atol=1e-12)
    path = scene_io.write_volume(node, tmp_path / "v.nrrd")
    image = sitk.ReadImage(str(path))
    np.testing.assert_allclose(image.GetOrigin(), (12.5, -40.0, 100.0), atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), (1.5, 2.0, 3.0), atol=1e-6)
    np.testing.assert_allclose(image.GetDirection(), direction, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), values)
    again = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "again")
    scene_io.read_volume(path, again)
    np.testing.assert_allclose(ijk_to_ras(again), matrix, atol=1e-6)
    # Slicer's own NRRD reader agrees on where the voxels are
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    by_slicer = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "by slicer")
    assert storage.ReadData(by_slicer)
    np.testing.assert_allclose(ijk_to_ras(by_slicer), matrix, atol=1e-6)


def test_seg_nrrd_written_and_read_back_with_the_same_voxels(sample, tmp_path):
    scene = new_scene()
    pet = load_pet(sample.path)
    node = scene_io.add_pet_volume_node(scene, pet, "Sample")
    scene_io.ensure_segmentation_converters()
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "S")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node)
    segment_id = segmentation.GetSegmentation().AddEmptySegment("MTV", "MTV", [1.0, 0.3, 0.2])
    other_id = segmentation.GetSegmentation().AddEmptySegment("Other", "Other", [0.0, 1.0, 0.0])
    mask = np.zeros(pet.shape, np.uint8)
    mask[100:110, 70:80, 60:75] = 1
    mask[105, 85, 70] = 1
    other = np.zeros(pet.shape, np.uint8)
    other[10:12, 10:12, 10:12] = 1
    scene_io.update_segment_from_array(mask, segmentation, segment_id, node)
    scene_io.update_segment_from_array(other, segmentation, other_id, node)
    path = scene_io.write_segmentation(segmentation, tmp_path / "mtv.seg.nrrd")
    read = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    scene_io.read_segmentation(path, read)
    assert scene.GetNodesByClass("vtkMRMLStorageNode").GetNumberOfItems() == 0   # none left behind
    np.testing.assert_array_equal(scene_io.segment_array(read, scene_io.segment_id_by_name(read, "MTV"), node), mask)
    np.testing.assert_array_equal(scene_io.segment_array(read, scene_io.segment_id_by_name(read, "Other"), node), other)
    # and the engine reads the file Slicer wrote to the same voxels
    engine_mask, ijk_to_lps = read_seg_nrrd(path, "MTV")
    full = np.zeros(pet.shape, np.uint8)
    offset = np.rint(np.linalg.solve(scene_io.ijk_to_ras_from_lps(pet.origin, pet.spacing, pet.direction),
                                     scene_io.LPS_TO_RAS @ ijk_to_lps @ [0, 0, 0, 1])[:3]).astype(int)
    z, y, x = offset[2], offset[1], offset[0]
    dz, dy, dx = engine_mask.shape
    full[z:z + dz, y:y + dy, x:x + dx] = engine_mask
    np.testing.assert_array_equal(full, mask)


# --------------------------------------------------------------------------- first use
class FakeInstaller:
    def __init__(self, agree: bool, torch_ok: bool = True):
        self.agree, self.torch_ok = agree, torch_ok
        self.calls: list = []

    def confirm(self, text):
        self.calls.append(("confirm", text))
        return self.agree

    def install_torch(self):
        self.calls.append(("torch",))
        return self.torch_ok

    def pip_install(self, requirements):
        self.calls.append(("pip", list(requirements)))


def test_dependency_plan_and_installation_with_fakes(tmp_path):
    missing = {"torch", "MTLRadiomicsLib", "monai", "highdicom"}
    plan = dependencies.plan_dependencies(MODULE_DIR, is_importable=lambda name: name not in missing)
    assert plan.torch and plan.engine_source == PROJECT_ROOT
    assert plan.packages == ["monai>=1.3", "highdicom>=0.22"]
    assert "PyTorch" in plan.describe() and "monai" in plan.describe()
    declined = FakeInstaller(agree=False)
    assert dependencies.ensure_dependencies(plan, declined) is False
    assert [c[0] for c in declined.calls] == ["confirm"]
    agreed = FakeInstaller(agree=True)
    assert dependencies.ensure_dependencies(plan, agreed) is True
    assert agreed.calls[1:] == [("torch",), ("pip", [str(PROJECT_ROOT)]), ("pip", ["monai>=1.3", "highdicom>=0.22"])]
    with pytest.raises(dependencies.DependencyError):
        dependencies.ensure_dependencies(plan, FakeInstaller(agree=True, torch_ok=False))
    complete = dependencies.plan_dependencies(MODULE_DIR, is_importable=lambda name: True)
    assert complete.complete and dependencies.ensure_dependencies(complete, FakeInstaller(agree=False))
    # a built extension: the engine is shipped beside the module, no source to install
    shipped = tmp_path / "qt-scripted-modules"
    (shipped / "MTLRadiomicsLib").mkdir(parents=True)
    (shipped / "MTLRadiomicsLib" / "__init__.py").write_text("")
    plan = dependencies.plan_dependencies(shipped, is_importable=lambda name: name != "MTLRadiomicsLib")
    assert plan.engine_source is None and dependencies.shipped_engine_root(shipped) == shipped
    with pytest.raises(dependencies.DependencyError):
        dependencies.plan_dependencies(tmp_path / "empty", is_importable=lambda name: name != "MTLRadiomicsLib")


def test_engine_requirements_follow_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads pyproject.toml")

    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [r for r in project["dependencies"] + project["optional-dependencies"]["dicom"]
              if not r.startswith("torch")]
    assert sorted(r.pip.lower() for r in dependencies.ENGINE_REQUIREMENTS) == sorted(w.lower() for w in wanted)


def test_gpu_choice_falls_back_to_the_cpu_with_a_reason():
    class Version:
        def __init__(self, cuda):
            self.cuda = cuda

    class Cuda:
        def __init__(self, available):
            self.available = available

        def is_available(self):
            return self.available

        def get_device_name(self, index):
            return "Test GPU"

    class FakeTorch:
        def __init__(self, cuda_version, available):
            self.version, self.cuda = Version(cuda_version), Cuda(available)

    cpu_build = dependencies.cuda_status(lambda: FakeTorch(None, False))
    assert not cpu_build.cuda and "CPU-only" in cpu_build.message
    no_gpu = dependencies.cuda_status(lambda: FakeTorch("12.4", False))
    assert not no_gpu.cuda and "No usable CUDA GPU" in no_gpu.message
    gpu = dependencies.cuda_status(lambda: FakeTorch("12.4", True))
    assert gpu.cuda and "Test GPU" in gpu.message
    assert dependencies.device_argument("cuda", lambda: cpu_build) == ("cpu", cpu_build.message)
    assert dependencies.device_argument("cuda", lambda: gpu)[0] == "cuda"
    assert dependencies.device_argument("auto", lambda: pytest.fail("auto needs no check")) == ("auto", "")
    assert dependencies.device_argument("cpu") == ("cpu", "")


def test_missing_model_is_a_clear_error(sample, tmp_path):
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, load_pet(sample.path), "Sample")
    logic = make_logic(scene, tmp_path, tmp_path / "no_model")
    with pytest.raises(AnalysisError, match="bundled model was not found"):
        logic.start_analysis(AnalysisRequest(node))
    with pytest.raises(AnalysisError, match="not a model folder"):
        logic.start_analysis(AnalysisRequest(node, model_folder=tmp_path))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


# --------------------------------------------------------------------------- sample data and parameters
def test_sample_pet_is_generated_once_with_its_checksum(sample, tmp_path):
    assert sample.path.is_file() and sample.uri.startswith("file://")
    assert sample.checksum == f"SHA256:{sample_data.sha256_of(sample.path)}"
    mtime = sample.path.stat().st_mtime_ns
    again = sample_data.ensure_sample_pet(sample.path.parent)
    assert again.sha256 == sample.sha256 and sample.path.stat().st_mtime_ns == mtime
    pet = load_pet(sample.path)
    assert pet.size == (150, 150, 317) and 5.0 < float(pet.suv.max()) < 50.0
    # The lesion point lies inside the volume, on the lesion: its voxel, found by inverting the
    # geometry by hand, is FDG-avid and a hot lesion surrounds it.
    d = np.asarray(pet.direction).reshape(3, 3) * np.asarray(pet.spacing)
    lps = np.array([-sample.lesion_ras[0], -sample.lesion_ras[1], sample.lesion_ras[2]])
    index = tuple(int(v) for v in np.rint(np.linalg.solve(d, lps - np.asarray(pet.origin))))
    assert pet.physical_to_index(tuple(lps)) == index
    assert all(0 <= v < n for v, n in zip(index, pet.size)), index
    i, j, k = index
    assert float(pet.suv[k, j, i]) > 2.5
    assert float(pet.suv[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3].max()) > 0.5 * float(pet.suv.max())
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / sample_data.SAMPLE_FILE).write_bytes(sample.path.read_bytes()[:1000])
    (damaged / (sample_data.SAMPLE_FILE + ".sha256")).write_text(
        (sample.path.parent / (sample_data.SAMPLE_FILE + ".sha256")).read_text())
    assert sample_data.cached_sample_pet(damaged) is None
    assert sample_data.ensure_sample_pet(damaged).sha256 == sample.sha256


def test_parameter_node_class_imports_without_the_wrapper():
    from MTLRadiomicsModuleLogic import parameters

    annotations = parameters.MTLRadiomicsParameterNode.__annotations__
    assert {"petVolume", "lesion", "mtvMethod", "fillHoles", "model", "modelFolder", "device", "explanationTarget",
            "samples", "mtvSegmentation", "heatmapScale", "heatmapOpacity", "exportFolder"} == set(annotations)
    assert [m.value for m in parameters.MtvMethod] == list(parameters.MTV_METHOD_LABELS)
    assert parameters.MtvMethod("suv2.5").label() == "SUV >= 2.5"
    assert parameters.Device("cuda").label() == "GPU (CUDA)"
    assert [d.value for d in parameters.Device] == ["auto", "cuda", "cpu"]
    assert tuple(parameters.SCALES) == results.SCALES
    if not hasattr(slicer, "parameterNodeWrapper"):
        assert parameters.HAS_PARAMETER_NODE_WRAPPER is False


def test_logic_has_no_qt_import():
    for path in (MODULE_DIR / "MTLRadiomicsModuleLogic").glob("*.py"):
        text = path.read_text()
        for forbidden in ("import qt", "from qt", "import ctk", "PythonQt", "PyQt", "PySide"):
            assert forbidden not in text, f"{path.name}: {forbidden}"

"""The Slicer module's logic with withheld scores and installed models, against real MRML, headless.

One real engine run on the synthetic sample PET with a model chosen by name from a temporary models
root ($MTL_RADIOMICS_MODELS holding two copies of the tiny model): the tiny model's network MTV is
empty, so the engine withholds the scores. The result then has a "Scores withheld" row, no heatmap
nodes, the reason among the warnings, a CSV without numbers for the scores; the physician draws the
MTV (here: the "SUV >= 2.5" segment of the MTV-by-method segmentation) and a rescore brings the
scores and the heatmap nodes. The MTV method labels are the engine's.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import (AnalysisError, AnalysisLogic, AnalysisRequest, ProcessState,  # noqa: E402
                                     ResultNodes, dependencies, models, parameters, results, sample_data,
                                     scene_io)

from MTLRadiomicsLib import load_pet  # noqa: E402
from test_slicer_logic import new_scene, node_ids, run_to_end  # noqa: E402

CHOSEN_NAME = "tiny-random-b"          # the card name of the second installed copy


@pytest.fixture(scope="module")
def models_root(tiny_model, tmp_path_factory):
    """$MTL_RADIOMICS_MODELS: a folder with two installed copies of the tiny model (tiny-a, tiny-b)
    and one folder without a model card."""
    root = tmp_path_factory.mktemp("installed_models")
    for key, name, summary in (("tiny-a", "tiny-random-a", "copy A"), ("tiny-b", CHOSEN_NAME, "copy B")):
        shutil.copytree(tiny_model, root / key)
        card = json.loads((root / key / "model.json").read_text())
        card["name"] = name
        card["training_data"] = dict(card.get("training_data") or {}, summary=f"test {summary}")
        (root / key / "model.json").write_text(json.dumps(card, indent=2))
    (root / "not-a-model").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(models.MODELS_ENV, str(root))
        yield root


def make_logic(scene, tmp_path, bundled=None, **kwargs) -> AnalysisLogic:
    return AnalysisLogic(scene, sys.executable, PROJECT_ROOT, temp_root=tmp_path / "runs", bundled_model=bundled,
                         device_status=lambda: dependencies.DeviceStatus(False, "no GPU in tests"), **kwargs)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> sample_data.SamplePet:
    return sample_data.ensure_sample_pet(tmp_path_factory.mktemp("mtv_sample_cache"))


@pytest.fixture(scope="module")
def withheld(models_root, sample, tmp_path_factory):
    """The sample PET analysed with the installed model chosen by its card name and the network MTV
    (empty for the tiny model: the scores are withheld)."""
    scene = new_scene()
    pet = load_pet(sample.path)
    node = scene_io.add_pet_volume_node(scene, pet, "Sample")
    point = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
    point.AddControlPoint(*sample.lesion_ras)
    tmp = tmp_path_factory.mktemp("withheld")
    logic = make_logic(scene, tmp, bundled=models_root / "tiny-a")
    job = logic.start_analysis(AnalysisRequest(node, point, model=CHOSEN_NAME, device="cpu", samples=2,
                                               report=False))
    run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    result = logic.finish(job)
    return {"scene": scene, "logic": logic, "pet_node": node, "pet": pet, "result": result, "job": job,
            "tmp": tmp, "root": models_root}


# --------------------------------------------------------------------------- installed models
def test_installed_models_come_from_the_models_root(models_root, tmp_path):
    logic = make_logic(new_scene(), tmp_path, bundled=models_root / "tiny-a")
    assert logic.models_root() == models_root
    installed = logic.installed_models()
    assert [(m.key, m.name, m.is_default) for m in installed] == [("tiny-a", "tiny-random-a", True),
                                                                  ("tiny-b", CHOSEN_NAME, False)]
    assert installed[1].summary == "test copy B" and installed[1].folder == models_root / "tiny-b"
    assert "[default]" in installed[0].label() and CHOSEN_NAME in installed[1].label()
    # by folder name or by card name; a folder chosen by path keeps working
    assert logic.model_folder(None, "tiny-b") == logic.model_folder(None, CHOSEN_NAME) == models_root / "tiny-b"
    assert logic.model_folder(models_root / "tiny-a", CHOSEN_NAME) == models_root / "tiny-a"
    assert logic.model_folder(None, None) == models_root / "tiny-a"
    with pytest.raises(AnalysisError, match="tiny-a .*tiny-b"):
        logic.model_folder(None, "no-such-model")
    # a default model outside the root is listed first all the same
    elsewhere = make_logic(new_scene(), tmp_path, bundled=PROJECT_ROOT / "Resources" / "models" / "default")
    if (PROJECT_ROOT / "Resources" / "models" / "default" / "model.json").is_file():
        assert [m.key for m in elsewhere.installed_models()] == ["default", "tiny-a", "tiny-b"]
    # without the variable: Resources/models beside the engine, as the engine's registry does
    plain = models.models_root(PROJECT_ROOT, env={})
    assert plain == PROJECT_ROOT / "Resources" / "models"
    assert models.models_root(PROJECT_ROOT, env={models.MODELS_ENV: str(models_root)}) == models_root


def test_the_model_list_agrees_with_the_engine_registry(models_root):
    from MTLRadiomicsLib.model.registry import installed_models, models_root as engine_root

    assert engine_root() == models.models_root(PROJECT_ROOT)
    engine = [(m.key, m.name, m.folder) for m in installed_models()]
    logic = [(m.key, m.name, m.folder) for m in models.installed_models(models.models_root(PROJECT_ROOT))]
    assert sorted(engine) == sorted(logic)


def test_a_model_chosen_by_name_runs(withheld):
    data = withheld["result"].result_json
    assert data["model"]["name"] == CHOSEN_NAME
    assert Path(data["model"]["folder"]).resolve() == (withheld["root"] / "tiny-b").resolve()
    command = withheld["job"].process.command
    assert Path(command[command.index("--model") + 1]) == withheld["root"] / "tiny-b"
    assert withheld["result"].model_folder == withheld["root"] / "tiny-b"   # rescoring uses it again


# --------------------------------------------------------------------------- withheld scores
def test_an_empty_network_mtv_withholds_the_scores(withheld):
    logic, result, scene = withheld["logic"], withheld["result"], withheld["scene"]
    data = result.result_json
    assert data["mtv"]["method"] == "network" and data["mtv"]["fill_holes"] is False
    assert data["mtv"]["methods"]["network"]["metrics"]["voxels"] == 0
    reason = data["scores"]["withheld"]
    assert reason and "empty" in reason and data["scores"]["outcome"] is None
    rows = results.scores_from_table(result.scores_table)
    assert len(rows) == 1 and rows[0]["score"] == f"Scores withheld: {reason}" and rows[0]["samples"] == 0
    assert logic.scores_withheld(result) == reason
    assert reason in logic.warnings(result)
    # no heatmap anywhere: none in the result, none in the scene, nothing shown over the PET
    assert result.heatmaps == {} and data["explanation"]["scales"] == []
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    assert not any(volumes.GetItemAsObject(i).GetAttribute("MTLRadiomics.Scale")
                   for i in range(volumes.GetNumberOfItems()))
    logic.hide_heatmaps(result)
    composites = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    for i in range(composites.GetNumberOfItems()):
        assert composites.GetItemAsObject(i).GetForegroundVolumeID() is None
        assert composites.GetItemAsObject(i).GetBackgroundVolumeID() == withheld["pet_node"].GetID()
    with pytest.raises(ValueError):
        logic.show_heatmap(result, "enc5")
    # the other methods are there to compare with, and found again from the segmentation
    again = ResultNodes.from_segmentation(result.segmentation)
    assert again.heatmaps == {} and again.methods_table.GetID() == result.methods_table.GetID()
    assert results.scores_withheld(again) == reason
    network = results.methods_from_table(result.methods_table)[0]
    assert network["method"] == parameters.MTV_METHOD_LABELS["network"] and network["scored"]
    assert network["mtv_ml"] == 0.0


def test_export_with_withheld_scores(withheld, tmp_path):
    summary = withheld["logic"].export(withheld["result"], tmp_path / "export")
    csv_file = next(f for f in summary.files if f.suffix == ".csv")
    rows = list(csv.DictReader(open(csv_file, encoding="utf-8")))
    scores = [r for r in rows if r["section"] == "score"]
    assert len(scores) == 1 and scores[0]["name"].startswith("Scores withheld") and scores[0]["value"] == ""
    assert "nan" not in csv_file.read_text().lower()
    methods = [r for r in rows if r["section"] == "mtv_method"]
    assert [r["name"] for r in methods if r["mtv"] == "scored"] == [parameters.MTV_METHOD_LABELS["network"]]
    assert any("withheld" in note for note in summary.notes)


def test_rescore_after_an_edit_brings_scores_and_heatmaps(withheld):
    """The physician draws the MTV (here: copies the 'SUV >= 2.5' segment into the MTV segment) and
    updates the scores: scores, heatmap nodes (new, in the result's folder, referenced) and the
    methods' Dice with the edited MTV."""
    logic, result, scene, pet_node = withheld["logic"], withheld["result"], withheld["scene"], withheld["pet_node"]
    drawn = results.method_masks(result)["SUV >= 2.5"]
    assert drawn.any()
    scene_io.update_segment_from_array(drawn, result.segmentation, result.segment_id, pet_node)
    job = logic.start_rescore(result, AnalysisRequest(pet_node, device="cpu", samples=2, report=False))
    assert Path(job.process.command[job.process.command.index("--model") + 1]) == withheld["root"] / "tiny-b"
    run_to_end(logic, job)
    assert job.state == ProcessState.SUCCEEDED, job.process.error_message()
    updated = logic.finish(job)
    data = updated.result_json
    assert data["command"] == "rescore" and data["scores"]["withheld"] == "", data["warnings"]
    assert logic.scores_withheld(updated) == ""
    rows = results.scores_from_table(updated.scores_table)
    assert rows[0]["mean"] == pytest.approx(data["scores"]["outcome"]["mean"]) and rows[0]["mtv"] == "edited"
    assert set(updated.heatmaps) == set(results.SCALES)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for scale, node in updated.heatmaps.items():
        assert node.GetScene() is scene and node.GetName().endswith(f"Grad-CAM {scale}")
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == updated.folder_item
        np.testing.assert_allclose(scene_io.get_ijk_to_ras(node), scene_io.get_ijk_to_ras(pet_node), atol=1e-4)
    assert set(ResultNodes.from_segmentation(updated.segmentation).heatmaps) == set(results.SCALES)
    logic.show_heatmap(updated, "enc5", 0.5)
    dice = {r["method"]: r["dice"] for r in results.methods_from_table(updated.methods_table)}
    assert dice["SUV >= 2.5"] == pytest.approx(1.0)
    # a later run whose scores are withheld removes the heatmaps again instead of leaving stale ones
    before = set(node_ids(scene))
    heatmap_ids = {n.GetID() for n in updated.heatmaps.values()}
    heatmap_ids |= {n.GetDisplayNodeID() for n in updated.heatmaps.values()}
    results.update_from_rescore(updated, withheld["job"].out_dir)
    assert updated.heatmaps == {} and set(node_ids(scene)) == before - heatmap_ids
    assert ResultNodes.from_segmentation(updated.segmentation).heatmaps == {}
    assert logic.scores_withheld(updated)


# --------------------------------------------------------------------------- choices
def test_mtv_method_labels_are_the_engines():
    from MTLRadiomicsLib.mtv.lesion import MTV_METHODS

    assert parameters.MTV_METHOD_LABELS == MTV_METHODS
    assert [m.label() for m in parameters.MtvMethod] == list(MTV_METHODS.values())


def test_bad_choices_are_refused_before_any_run(sample, models_root, tmp_path):
    scene = new_scene()
    node = scene_io.add_pet_volume_node(scene, load_pet(sample.path), "Sample")
    logic = make_logic(scene, tmp_path, bundled=models_root / "tiny-a")
    with pytest.raises(AnalysisError, match="Unknown MTV method"):
        logic.start_analysis(AnalysisRequest(node, mtv_method="suv3"))
    with pytest.raises(AnalysisError, match="No installed model"):
        logic.start_analysis(AnalysisRequest(node, model="no-such-model"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    assert os.environ[models.MODELS_ENV] == str(models_root)


# --------------------------------------------------------------------------- the widget, with stand-ins
WIDGET_SCRIPT = r'''
import json, sys, types
from pathlib import Path

module_dir, out_dir, pet_path, bundled = sys.argv[1:5]
sys.path.insert(0, module_dir)
import slicer
import slicer.util

qt = types.ModuleType("qt")
qt.Qt = types.SimpleNamespace(ToolTipRole=3)
sys.modules["qt"] = qt
base = types.ModuleType("slicer.ScriptedLoadableModule")


class Stub:
    def __init__(self, *args, **kwargs):
        pass


for name in ("ScriptedLoadableModule", "ScriptedLoadableModuleLogic", "ScriptedLoadableModuleWidget",
             "ScriptedLoadableModuleTest"):
    setattr(base, name, type(name, (Stub,), {}))
sys.modules["slicer.ScriptedLoadableModule"] = base
popups = []
slicer.util.warningDisplay = lambda text, **kwargs: popups.append(text)
slicer.util.WaitCursor = lambda: __import__("contextlib").nullcontext()

import MTLRadiomics as module
from MTLRadiomicsModuleLogic import AnalysisError, AnalysisLogic, PollResult, ProcessState, results, scene_io
from MTLRadiomicsModuleLogic.parameters import MODEL_FOLDER_CHOICE, MtvMethod
from MTLRadiomicsLib import load_pet


class Widget:                                    # what the module reads and sets, nothing more
    def __init__(self, **values):
        self.enabled, self.text, self.toolTip, self.style = True, "", "", ""
        self.__dict__.update(values)

    def setStyleSheet(self, style):
        self.style = style

    def setEnabled(self, enabled):
        self.enabled = enabled

    def setVisible(self, visible):
        self.visible = visible

    def blockSignals(self, block):
        return False

    def setMRMLTableNode(self, node):
        self.table = node

    def currentNode(self):
        return self.node


class Combo(Widget):
    def __init__(self, **values):
        super().__init__(**values)
        self.items, self.currentIndex = [], -1

    @property
    def count(self):
        return len(self.items)

    @property
    def currentText(self):
        return self.items[self.currentIndex]["text"] if 0 <= self.currentIndex < self.count else ""

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItem(self, text, data=None):
        self.items.append({"text": text, "data": data, "tip": ""})
        if self.currentIndex < 0:
            self.currentIndex = 0

    def setItemData(self, index, value, role):
        assert role == qt.Qt.ToolTipRole
        self.items[index]["tip"] = value

    def itemData(self, index):
        return self.items[index]["data"] if 0 <= index < self.count else None

    def findData(self, data):
        return next((i for i, item in enumerate(self.items) if item["data"] == data), -1)

    def setCurrentIndex(self, index):
        self.currentIndex = index


scene = slicer.vtkMRMLScene()
for name in ("Red", "Green", "Yellow"):
    composite = slicer.vtkMRMLSliceCompositeNode()
    composite.SetLayoutName(name)
    scene.AddNode(composite)
pet = scene_io.add_pet_volume_node(scene, load_pet(pet_path), "Sample")
logic = AnalysisLogic(scene, sys.executable, Path(module_dir).parent, bundled_model=bundled)
result = results.import_results(scene, out_dir, pet, Path(out_dir).parent, pet_path)

widget = module.MTLRadiomicsWidget()
widget.logic = logic
widget.ui = types.SimpleNamespace(
    modelComboBox=Combo(), modelPathLineEdit=Widget(currentPath=""), modelInfoLabel=Widget(),
    mtvMethodComboBox=Combo(), heatmapScaleComboBox=Combo(), heatmapOpacitySlider=Widget(value=0.5),
    heatmapNoteLabel=Widget(), scoresLabel=Widget(), warningsLabel=Widget(), statusLabel=Widget(),
    methodsLabel=Widget(), scoresTableView=Widget(), metricsTableView=Widget(), methodsTableView=Widget(),
    showMethodsCheckBox=Widget(checked=False), petVolumeSelector=Widget(node=pet), analyzeButton=Widget(),
    updateScoresButton=Widget(), editMtvButton=Widget(), exportButton=Widget(), progressBar=Widget(value=0))
for method in MtvMethod:                          # as the parameter node wrapper fills it
    widget.ui.mtvMethodComboBox.addItem(method.label())
for scale in results.SCALES:
    widget.ui.heatmapScaleComboBox.addItem(scale)
params = types.SimpleNamespace(model="", petVolume=pet, lesion=None, mtvMethod=MtvMethod.SUV25, fillHoles=True,
                               device=types.SimpleNamespace(value="cpu"),
                               explanationTarget=types.SimpleNamespace(value="outcome"), samples=2,
                               mtvSegmentation=None)
widget._parameterNode = params
report = {}

widget._setMtvMethodToolTips()
report["mtv_tips"] = [item["tip"] for item in widget.ui.mtvMethodComboBox.items]
widget.populateModels()
combo = widget.ui.modelComboBox
report["models"] = [[item["text"], item["data"]] for item in combo.items]
report["model_index"] = combo.currentIndex
report["model_info"] = widget.ui.modelInfoLabel.text
combo.setCurrentIndex(1)
widget.onModelComboBoxChanged(1)
request = widget._request()
report["chosen"] = [params.model, request.model, str(request.model_folder), request.mtv_method, request.fill_holes]
params.model = "uninstalled-model"
widget._modelChoiceToGui()
report["missing"] = [combo.currentIndex, widget.ui.modelInfoLabel.text]
combo.setCurrentIndex(combo.count - 1)
widget.onModelComboBoxChanged(combo.count - 1)
report["folder_enabled"] = widget.ui.modelPathLineEdit.enabled
try:
    widget._request()
    report["empty_folder"] = "accepted"
except AnalysisError as error:
    report["empty_folder"] = str(error)
report["rescore_request_folder"] = str(widget._request(analyze=False).model_folder)
widget.ui.modelPathLineEdit.currentPath = bundled
request = widget._request()
report["folder_request"] = [params.model, request.model, str(request.model_folder)]

widget._showResult(result)
ui = widget.ui
report["shown"] = {
    "warnings": ui.warningsLabel.text, "warnings_style": ui.warningsLabel.style, "scores_label": ui.scoresLabel.text,
    "heatmap_controls": [ui.heatmapScaleComboBox.enabled, ui.heatmapOpacitySlider.enabled],
    "heatmap_note": ui.heatmapNoteLabel.text, "methods_table": ui.methodsTableView.table.GetID(),
    "methods_label": ui.methodsLabel.text,
    "show_methods": [ui.showMethodsCheckBox.enabled, ui.showMethodsCheckBox.checked],
    "update_scores": ui.updateScoresButton.enabled, "export": ui.exportButton.enabled}
widget.onShowMethodsToggled(True)
report["methods_visible"] = bool(result.methods_segmentation.GetDisplayNode().GetVisibility())


class FinishedJob:                                # a run that has just ended, as the timer sees it
    kind, started = "analyze", 0.0


class Finished:
    def poll(self, job):
        return PollResult(ProcessState.SUCCEEDED)

    def finish(self, job):
        return result

    def __getattr__(self, name):
        return getattr(logic, name)


widget.logic = Finished()
widget._job = FinishedJob()
widget._pollTimer = Widget(stop=lambda: None)
widget.onPollEngine()
report["status"] = [ui.statusLabel.text, ui.statusLabel.style, params.mtvSegmentation is result.segmentation]
report["popups"] = popups
print(json.dumps({"withheld_id": result.methods_table.GetID(), **report}))
'''


def test_the_widget_shows_models_choices_and_withheld_scores(withheld, tmp_path):
    """The widget's own code (model combo box, request, result display, the end of a run) with
    stand-ins for the Qt widgets, on real MRML and the withheld result."""
    import subprocess

    root = withheld["root"]
    done = subprocess.run([sys.executable, "-c", WIDGET_SCRIPT, str(MODULE_DIR), str(withheld["job"].out_dir),
                           str(withheld["result"].input_path), str(root / "tiny-a")],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert all("scores" in tip and "every method's MTV is listed" in tip for tip in report["mtv_tips"])
    assert report["models"] == [["tiny-random-a (tiny-a)  [default]", "tiny-a"],
                                [f"{CHOSEN_NAME} (tiny-b)", "tiny-b"],
                                ["Model folder (choose below)", parameters.MODEL_FOLDER_CHOICE]]
    assert report["model_index"] == 0 and report["model_info"].startswith("tiny-random-a")
    assert report["chosen"] == ["tiny-b", "tiny-b", "None", "suv2.5", True]
    assert report["missing"][0] == 0 and "'uninstalled-model' of this scene is not installed" in report["missing"][1]
    assert report["folder_enabled"] and "Choose a model folder" in report["empty_folder"]
    assert report["rescore_request_folder"] == "None"
    assert report["folder_request"] == [parameters.MODEL_FOLDER_CHOICE, None, str(root / "tiny-a")]
    shown = report["shown"]
    reason = withheld["result"].result_json["scores"]["withheld"]
    assert shown["warnings"].startswith(f"\u26a0 Scores withheld: {reason}") and "bold" in shown["warnings_style"]
    assert "WITHHELD" in shown["scores_label"]
    assert shown["heatmap_controls"] == [False, False] and "withheld" in shown["heatmap_note"]
    assert shown["methods_table"] == report["withheld_id"] and "network" in shown["methods_label"]
    assert shown["show_methods"] == [True, False] and report["methods_visible"]
    assert shown["update_scores"] and shown["export"]                # rescore and export stay possible
    status, style, selected = report["status"]
    assert f"Scores withheld: {reason}" in status and "bold" in style and selected
    assert len(report["popups"]) == 1 and reason in report["popups"][0]

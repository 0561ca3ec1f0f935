"""The Slicer module's result nodes (results.py) and its parameter enums (parameters.py) against real
MRML (the slicer-core wheel), headless and in-process: no engine process, no model, no network.

The engine's output folders are written by hand with the engine's own writers (outputs.py) on a
small PET grid (18 x 14 x 10 voxels, anisotropic spacing, an axis-permuted oblique direction, a
non-zero origin): an analysis (scores, every MTV method, Grad-CAM heatmaps), an analysis whose scores
were withheld, an analysis from before MTV methods existed, and rescores (an edited MTV; its scores
withheld; an older engine's output). Every check is decided by what the test wrote (arrays, the
values in result.json, the geometry worked out by hand), never by calling the function under test
again: node names, attributes, references, subject hierarchy, transforms, voxels, heatmap display,
slice views, table cells, and what a rescore changes and leaves alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import parameters, results, scene_io  # noqa: E402
from MTLRadiomicsModuleLogic.results import ResultNodes  # noqa: E402

from MTLRadiomicsLib.analysis.outputs import write_image_like, write_seg_nrrd, write_segments_nrrd  # noqa: E402
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume  # noqa: E402

NAN = float("nan")
SHAPE = (10, 14, 18)                                  # (z, y, x)
SPACING = (2.0, 2.5, 3.5)                             # (x, y, z) mm
ORIGIN = (-40.5, 22.25, 105.0)                        # LPS mm
PET_NAME = "Patient PET"
OTHER_PET_NAME = "Baseline PET"
BASE = f"{PET_NAME} MTLRadiomics 1"
SCORE_COLUMNS = ["Score", "Value", "Mean", "SD", "Samples", "MTV"]
METHOD_COLUMNS = ["Method", "Scored", "Available", "MTV (ml)", "SUVmean", "SUVmax", "Dice with scored MTV", "Reason"]
ANALYSIS_SCALES = ["enc1", "enc5", "dec2", "dec1"]    # listed in result.json; dec2 has no file
ANALYSIS_FILES = ("enc1", "enc5", "dec1", "enc3")     # enc3 is on disk but not listed
RESCORE_SCALES = ["enc1", "dec4"]                     # enc1 read again, dec4 new, enc5 and dec1 gone
LEGACY_FILES = ("enc2", "dec3")                       # no "explanation" in result.json: every scale on disk
WITHHELD_REASON = "the MTV reaches the edge of the scan, so it may be cut off"
COLOUR_POINTS = [(0.0, 0.0, 0.0, 1.0), (0.25, 0.0, 1.0, 1.0), (0.5, 0.0, 1.0, 0.0), (0.75, 1.0, 1.0, 0.0),
                 (1.0, 1.0, 0.0, 0.0)]


# --------------------------------------------------------------------------- the engine's output, by hand
def oblique_direction() -> tuple[float, ...]:
    """Row-major LPS direction cosines: image x along S, y along L, z along P, then tilted 25 and 10 degrees."""
    a, b = np.deg2rad(25.0), np.deg2rad(10.0)
    rz = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rx = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    permute = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    return tuple(float(v) for v in (rz @ rx @ permute).ravel())


def expected_ijk_to_ras(pet: PetVolume) -> np.ndarray:
    """IJK-to-RAS worked out from the PET's LPS geometry: columns direction x spacing, then (L, P) -> (R, A)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(pet.direction, (3, 3)) * np.asarray(pet.spacing)
    matrix[:3, 3] = pet.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ matrix


def estimate(mean: float, sd: float, samples: int = 10) -> dict:
    return {"mean": mean, "sd": sd, "samples": samples}


def metrics_json(suv_max: float, suv_peak: float, suv_mean: float, mtv_ml: float, tlg: float, voxels: int) -> dict:
    return {"suv_max": suv_max, "suv_peak": suv_peak, "suv_mean": suv_mean, "mtv_ml": mtv_ml, "tlg": tlg,
            "voxels": voxels, "lesion_suv_max": suv_max, "lesion_suv_max_ras": [12.5, -30.25, 118.0]}


def method_entry(name: str, label: str, available: bool, reason: str = "", voxels: int = 0,
                 metrics: Optional[dict] = None, dice: Optional[float] = None) -> dict:
    """One method as the engine's MTV table gives it (classical: MtvResult.to_dict, then metrics and Dice)."""
    entry = {"method": name, "label": label, "available": available, "reason": reason, "threshold_suv": 3.95,
             "reference_suvmax": 9.8731, "seed_zyx": [5, 7, 8], "filled_voxels": 1, "voxels": voxels}
    if metrics is not None:
        entry["metrics"] = metrics
    if dice is not None:
        entry["dice_with_chosen"] = dice
    return entry


def engine_result(command: str, scores: dict, metrics: dict, explanation: Optional[dict],
                  mtv: Optional[dict]) -> dict:
    """result.json as AnalysisResult.to_dict writes it; ``explanation``/``mtv`` None: an older engine's."""
    data = {"engine_version": "0.1.0", "command": command, "created": "2025-03-04T10:20:30+00:00",
            "input": {"path": "/data/patient/pet.nrrd", "format": "nrrd", "sha256": "ab" * 32, "files": 1},
            "pet": {"shape_zyx": list(SHAPE), "spacing_mm": list(SPACING), "origin_lps": list(ORIGIN)},
            "model": {"name": "tiny-random", "tasks": ["segmentation", "outcome", "classification"],
                      "class_names": ["leiomyosarcoma", "liposarcoma"]},
            "location": {"method": "point", "center_lps": [-12.5, 30.25, 118.0], "center_ras": [12.5, -30.25, 118.0],
                         "crop_size_mm": [96.0, 96.0, 96.0], "candidates": [], "excluded": [], "note": "",
                         "field_center_lps": [-12.5, 30.25, 118.0], "field_note": ""},
            "scores": scores, "metrics": metrics}
    if explanation is not None:
        data["explanation"] = explanation
    if mtv is not None:
        data["mtv"] = mtv
    data |= {"domain": {}, "timings_s": {"load": 0.1}, "warnings": [], "device": "cpu"}
    return data


def explanation(scales: list[str]) -> dict:
    extra = {} if scales else {"note": "no heatmaps: the scores were withheld"}
    return {"target": "outcome", "method": "Grad-CAM, all scales from one forward and one backward pass",
            "scales": list(scales), **extra}


def write_output(folder: Path, pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray],
                 method_masks: Optional[dict[str, np.ndarray]], data: dict, labelmap: bool = True) -> Path:
    """An engine output folder: the MTV (.seg.nrrd and NIfTI), every method's MTV, heatmaps, result.json."""
    folder.mkdir(parents=True)
    outputs = {"segmentation": write_seg_nrrd(mask, pet, folder / "segmentation.seg.nrrd").name}
    if labelmap:
        outputs["mtv_nifti"] = write_image_like(mask.astype(np.uint8), pet, folder / "mtv.nii.gz").name
    if method_masks:
        outputs["mtv_methods"] = write_segments_nrrd(method_masks, pet, folder / "mtv_methods.seg.nrrd").name
    for scale, heat in heatmaps.items():
        outputs[f"gradcam_{scale}"] = write_image_like(heat, pet, folder / f"gradcam_{scale}.nrrd").name
    (folder / "result.json").write_text(json.dumps({**data, "outputs": outputs}, indent=2))
    return folder


@dataclass
class Outputs:
    pet: PetVolume
    mask: np.ndarray                          # the analysis' MTV (method suvmax40)
    withheld_mask: np.ndarray                 # the MTV of the analysis whose scores were withheld
    edited: np.ndarray                        # the physician's edit, scored by the rescores
    method_masks: dict[str, np.ndarray]       # every available method's MTV, by label
    heatmaps: dict[str, np.ndarray]           # the analysis' heatmap files, by scale
    rescore_heatmaps: dict[str, np.ndarray]
    legacy_heatmaps: dict[str, np.ndarray]
    folders: dict[str, Path]
    json: dict[str, dict]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> Outputs:
    rng = np.random.default_rng(7)
    pet = PetVolume(suv=(rng.random(SHAPE) * 3.0).astype(np.float32), spacing=SPACING, origin=ORIGIN,
                    direction=oblique_direction())
    mask = np.zeros(SHAPE, np.uint8)
    mask[3:7, 4:10, 5:12] = 1
    mask[5, 6, 8] = 0                                             # a hole the MTV keeps
    edited = mask.copy()
    edited[3] = 0
    edited[7, 5:9, 6:10] = 1
    suvmax41 = mask.copy()
    suvmax41[6] = 0
    suv25 = np.zeros(SHAPE, np.uint8)
    suv25[2:8, 3:11, 4:13] = 1
    withheld_mask = np.zeros(SHAPE, np.uint8)
    withheld_mask[0:4, 2:12, 3:15] = 1                             # touches the first slice
    method_masks = {"40 % of SUVmax": mask, "41 % of SUVmax (EANM)": suvmax41,
                    "50 % of SUVmax": np.zeros(SHAPE, np.uint8), "SUV >= 2.5": suv25}
    heatmaps = {s: rng.random(SHAPE).astype(np.float32) for s in ANALYSIS_FILES}
    rescore_heatmaps = {s: rng.random(SHAPE).astype(np.float32) for s in RESCORE_SCALES}
    legacy_heatmaps = {s: rng.random(SHAPE).astype(np.float32) for s in LEGACY_FILES}

    methods = {
        "network": {"label": "network (sliding windows)", "available": False,
                    "reason": "the model has no segmentation head"},
        "suvmax40": method_entry("suvmax40", "40 % of SUVmax", True, voxels=167, dice=1.0,
                                 metrics=metrics_json(9.8731, 7.6512, 4.3208, 2.9225, 12.6275, 167)),
        "suvmax41": method_entry("suvmax41", "41 % of SUVmax (EANM)", True, voxels=125, dice=0.8562,
                                 metrics=metrics_json(9.8731, 7.6512, 4.4102, 2.1875, 9.6473, 125)),
        "suvmax50": method_entry("suvmax50", "50 % of SUVmax", True, voxels=0, dice=0.0,
                                 reason="no voxel of 50 % of SUVmax is connected to the seed",
                                 metrics=metrics_json(0.0, 0.0, 0.0, 0.0, 0.0, 0)),
        "suv2.5": method_entry("suv2.5", "SUV >= 2.5", True, voxels=432, dice=0.5577,
                               metrics=metrics_json(9.8731, 7.6512, 3.1066, 7.56, 23.4859, 432)),
        "percist": {"method": "percist", "label": "PERCIST: 1.5 x liver mean + 2 x liver SD", "available": False,
                    "reason": "no liver reference: the liver was not found in the scan"},
    }
    analysis_mtv = {"method": "suvmax40", "label": "40 % of SUVmax", "fill_holes": True, "seed_voxel_zyx": [5, 7, 8],
                    "check": {"valid": True, "reasons": []}, "methods": methods,
                    "liver_reference": {"found": False, "reason": "the liver was not found in the scan"}}
    scores = {"outcome_kind": "binary", "outcome_meaning": "response to neoadjuvant chemotherapy",
              "outcome": estimate(0.7314, 0.0123),
              "pathology": {"leiomyosarcoma": estimate(0.6208, 0.0441), "liposarcoma": estimate(0.3792, 0.0441)},
              "uncertainty": "mean ± sd over 10 samples, Monte-Carlo dropout", "mask_source": "predicted",
              "withheld": "", "survival": estimate(-0.4127, 0.0876), "survival_meaning": "log relative hazard",
              "pathology_note": "", "domain": "inside", "calibration": "uncalibrated", "seed": 1234}
    withheld_scores = {"outcome_kind": "binary", "outcome_meaning": "response to neoadjuvant chemotherapy",
                       "outcome": None, "pathology": {},
                       "uncertainty": "mean ± sd over 10 samples, Monte-Carlo dropout", "mask_source": "predicted", "withheld": WITHHELD_REASON, "survival": None,
                       "survival_meaning": "", "pathology_note": "", "domain": "", "calibration": "uncalibrated",
                       "seed": None}
    outside_scores = {**scores, "outcome": estimate(0.6849, 0.0207), "survival": estimate(-0.2081, 0.0347),
                      "pathology": {}, "mask_source": "edited", "domain": "outside",
                      "pathology_note": "not shown: the lesion is outside the model's training domain, so no "
                                        "class the model knows (leiomyosarcoma, liposarcoma) can be told"}
    edited_mtv = {"method": "edited", "label": "edited MTV (rescore)", "check": {"valid": True, "reasons": []},
                  "methods": {}}
    withheld_methods = {name: dict(entry) for name, entry in methods.items()}

    json_by_name = {
        "analysis": engine_result("analyze", scores, metrics_json(9.8731, 7.6512, 4.3208, 2.9225, 12.6275, 167),
                                  explanation(ANALYSIS_SCALES), analysis_mtv),
        "withheld": engine_result("analyze", withheld_scores, metrics_json(6.5, 5.25, 2.75, 19.0, 52.25, 1200),
                                  explanation([]), {**analysis_mtv, "method": "suv2.5", "label": "SUV >= 2.5",
                                                    "fill_holes": False, "methods": withheld_methods,
                                                    "check": {"valid": False, "reasons": [WITHHELD_REASON]}}),
        "legacy": engine_result("analyze", {**scores, "mask_source": "predicted"},
                                metrics_json(8.5, 6.5, 4.0, 2.5, 10.0, 143), None, None),
        "rescore": engine_result("rescore", outside_scores, metrics_json(10.2113, 7.9004, 4.1187, 3.1325, 12.9018, 179),
                                 explanation(RESCORE_SCALES), edited_mtv),
        "rescore_withheld": engine_result("rescore", {**withheld_scores, "mask_source": "edited"},
                                          metrics_json(10.2113, 7.9004, 4.1187, 3.1325, 12.9018, 179),
                                          explanation([]), edited_mtv),
        "rescore_old": engine_result("rescore", {**scores, "mask_source": "edited"},
                                     metrics_json(7.25, 6.0, 3.5, 2.0, 7.0, 114), None, None),
    }
    root = tmp_path_factory.mktemp("engine_output")
    folders = {
        "analysis": write_output(root / "analysis", pet, mask, heatmaps, method_masks, json_by_name["analysis"]),
        "withheld": write_output(root / "withheld", pet, withheld_mask, {}, method_masks, json_by_name["withheld"]),
        "legacy": write_output(root / "legacy", pet, mask, legacy_heatmaps, None, json_by_name["legacy"]),
        "rescore": write_output(root / "rescore", pet, edited, rescore_heatmaps, None, json_by_name["rescore"]),
        "rescore_withheld": write_output(root / "rescore_withheld", pet, edited, {}, None,
                                         json_by_name["rescore_withheld"]),
        "rescore_old": write_output(root / "rescore_old", pet, edited, {}, None, json_by_name["rescore_old"],
                                    labelmap=False),
    }
    stored = {name: json.loads((folder / "result.json").read_text()) for name, folder in folders.items()}
    return Outputs(pet=pet, mask=mask, withheld_mask=withheld_mask, edited=edited, method_masks=method_masks,
                   heatmaps=heatmaps, rescore_heatmaps=rescore_heatmaps, legacy_heatmaps=legacy_heatmaps,
                   folders=folders, json=stored)


# --------------------------------------------------------------------------- scenes
def new_scene(slicer_like: bool = False) -> "slicer.vtkMRMLScene":
    """A scene as Slicer's views give it: three slice composite nodes. ``slicer_like``: every data node
    gets a subject hierarchy item at the scene level when it is added, as Slicer's subject hierarchy
    plugins do (a bare MRML scene leaves new nodes without one)."""
    import vtk

    scene = slicer.vtkMRMLScene()
    for name in ("Red", "Green", "Yellow"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(name)
        scene.AddNode(composite)
    if slicer_like:
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)

        @vtk.calldata_type(vtk.VTK_OBJECT)
        def added(caller, event, node) -> None:
            if isinstance(node, (slicer.vtkMRMLDisplayableNode, slicer.vtkMRMLTableNode)) \
                    and not sh.GetItemByDataNode(node):
                sh.CreateItem(sh.GetSceneItemID(), node)

        scene.AddObserver(slicer.vtkMRMLScene.NodeAddedEvent, added)
    return scene


@dataclass
class PetScene:
    scene: object
    pet_node: object
    sh: object
    study: int = 0
    transform: object = None


def add_pet(scene, pet: PetVolume, name: str, study: bool, transform: bool) -> PetScene:
    """The PET as test_slicer_logic adds it; ``study``: under a patient and a study in the subject
    hierarchy (else no item at all); ``transform``: under a linear transform."""
    node = scene_io.add_pet_volume_node(scene, pet, name)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    study_item = 0
    if study:
        patient = sh.CreateSubjectItem(sh.GetSceneItemID(), f"{name} patient")
        study_item = sh.CreateStudyItem(patient, "PET study")
        item = sh.GetItemByDataNode(node)
        if item:
            sh.SetItemParent(item, study_item)
        else:
            sh.CreateItem(study_item, node)
    transform_node = None
    if transform:
        transform_node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", f"{name} registration")
        matrix = np.eye(4)
        matrix[:3, 3] = (4.0, -2.5, 7.0)
        transform_node.SetMatrixTransformToParent(scene_io.vtk_matrix(matrix))
        node.SetAndObserveTransformNodeID(transform_node.GetID())
    return PetScene(scene=scene, pet_node=node, sh=sh, study=study_item, transform=transform_node)


def pet_scene(pet: PetVolume, name: str = PET_NAME, study: bool = True, transform: bool = True,
              slicer_like: bool = False) -> PetScene:
    return add_pet(new_scene(slicer_like), pet, name, study, transform)


def import_output(ps: PetScene, folder: Path, model: Optional[Path] = Path("/models/tiny"),
                  from_dicom: bool = True) -> ResultNodes:
    return results.import_results(ps.scene, folder, ps.pet_node, folder.parent / "run", folder.parent / "input.nrrd",
                                  model_folder=model, from_dicom=from_dicom)


@dataclass
class Imported:
    ps: PetScene
    other_pet: object
    first: ResultNodes                       # the analysis, model folder given, from DICOM
    second: ResultNodes                      # the same output again, defaults (no model folder, not DICOM)
    other: ResultNodes                       # the withheld analysis of a PET outside the subject hierarchy
    manual: object                           # a segmentation of the user's, not a result


@pytest.fixture
def imported(outputs) -> Imported:
    """The results imported afresh for each test (mutation testing credits a shared fixture's code to
    the first test that sets it up only)."""
    ps = pet_scene(outputs.pet)
    first = import_output(ps, outputs.folders["analysis"])
    manual = ps.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Manual contour")
    manual.GetSegmentation().AddEmptySegment("MTV", "MTV")
    manual.SetNodeReferenceID(results.REF_PET, ps.pet_node.GetID())
    second = results.import_results(ps.scene, outputs.folders["analysis"], ps.pet_node, "/runs/second",
                                    "/data/second.nrrd")
    other_pet = scene_io.add_pet_volume_node(ps.scene, outputs.pet, OTHER_PET_NAME)
    other = results.import_results(ps.scene, outputs.folders["withheld"], other_pet, "/runs/other", "/data/other.nrrd",
                                   model_folder="/models/other", from_dicom=False)
    return Imported(ps=ps, other_pet=other_pet, first=first, second=second, other=other, manual=manual)


# --------------------------------------------------------------------------- helpers
def column(table_node, name: str) -> list:
    array = table_node.GetTable().GetColumnByName(name)
    assert array is not None, f"no column {name!r} in {table_node.GetName()}"
    return [array.GetValue(i) for i in range(array.GetNumberOfValues())]


def column_names(table_node) -> list[str]:
    table = table_node.GetTable()
    return [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]


def column_classes(table_node) -> list[str]:
    table = table_node.GetTable()
    return [table.GetColumn(c).GetClassName() for c in range(table.GetNumberOfColumns())]


def nan_safe(value: object) -> object:
    """NaN made comparable (NaN != NaN), recursively through lists and dicts."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: nan_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_safe(v) for v in value]
    return value


def new_table(scene=None) -> "slicer.vtkMRMLTableNode":
    scene = scene if scene is not None else slicer.vtkMRMLScene()
    return scene.AddNewNodeByClass("vtkMRMLTableNode", "table")


def ijk_to_ras(node) -> np.ndarray:
    return scene_io.get_ijk_to_ras(node)


def parent_of(sh, node) -> int:
    item = sh.GetItemByDataNode(node)
    assert item, f"{node.GetName()} has no subject hierarchy item"
    return sh.GetItemParent(item)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = int(a.sum()) + int(b.sum())
    return NAN if total == 0 else 2.0 * float((a & b).sum()) / total


def transfer_points(color_node) -> list[tuple[float, ...]]:
    function = color_node.GetColorTransferFunction()
    points = []
    for i in range(function.GetSize()):
        value = [0.0] * 6
        function.GetNodeValue(i, value)
        points.append(tuple(value[:4]))
    return points


def result_nodes(result: ResultNodes) -> list:
    return [result.segmentation, result.labelmap, *result.heatmaps.values(), result.scores_table, result.metrics_table,
            *[n for n in (result.methods_segmentation, result.methods_table) if n is not None]]


def assert_heatmap_display(node, color_node) -> None:
    display = node.GetDisplayNode()
    assert display is not None, node.GetName()
    assert display.GetColorNodeID() == color_node.GetID()
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    assert (display.GetWindow(), display.GetLevel()) == (1.0, 0.5)
    assert not display.GetAutoThreshold()
    assert (display.GetLowerThreshold(), display.GetUpperThreshold()) == (0.2, 1.0)
    assert display.GetApplyThreshold() == 1
    assert display.GetInterpolate() == 1


def grad_cam_colour_nodes(scene) -> list:
    return [n for n in scene_io.nodes_by_class(scene, "vtkMRMLProceduralColorNode")
            if n.GetSingletonTag() == "MTLRadiomicsGradCAM"]


# --------------------------------------------------------------------------- parameters
def test_device_choices_in_combo_box_order_with_their_labels():
    # the widget maps the combo box index to list(Device)
    assert [(d.name, d.value, d.label()) for d in parameters.Device] == [
        ("AUTO", "auto", "Automatic (GPU when available)"), ("GPU", "cuda", "GPU (CUDA)"), ("CPU", "cpu", "CPU")]
    assert parameters.Device("cuda") is parameters.Device.GPU


def test_explanation_targets_with_their_labels():
    assert [(t.name, t.value, t.label()) for t in parameters.ExplanationTarget] == [
        ("OUTCOME", "outcome", "Outcome score"), ("SEGMENTATION", "segmentation", "Tumour segmentation")]


def test_mtv_methods_with_the_engine_labels():
    expected = {"network": "network (sliding windows)", "suvmax40": "40 % of SUVmax",
                "suvmax41": "41 % of SUVmax (EANM)", "suvmax50": "50 % of SUVmax", "suv2.5": "SUV >= 2.5",
                "percist": "PERCIST: 1.5 x liver mean + 2 x liver SD"}
    assert parameters.MTV_METHOD_LABELS == expected
    assert [(m.value, m.label()) for m in parameters.MtvMethod] == list(expected.items())
    assert parameters.MtvMethod("suv2.5") is parameters.MtvMethod.SUV25


def test_parameter_node_defaults_and_scales():
    node = parameters.MTLRadiomicsParameterNode
    assert (node.mtvMethod, node.device, node.explanationTarget) == (
        parameters.MtvMethod.NETWORK, parameters.Device.AUTO, parameters.ExplanationTarget.OUTCOME)
    assert (node.fillHoles, node.model, node.samples, node.heatmapScale, node.heatmapOpacity, node.lesion) == (
        False, "", 10, "enc5", 0.5, None)
    assert parameters.SCALES == results.SCALES == ("enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2",
                                                   "dec1")
    assert parameters.MODEL_FOLDER_CHOICE == "<model folder>"


# --------------------------------------------------------------------------- import
def test_nodes_are_named_after_the_pet_and_numbered_per_pet(imported):
    first, second, other = imported.first, imported.second, imported.other
    assert first.segmentation.GetName() == f"{BASE} MTV"
    assert first.labelmap.GetName() == f"{BASE} MTV labelmap"
    assert {s: n.GetName() for s, n in first.heatmaps.items()} == {
        s: f"{BASE} Grad-CAM {s}" for s in ("enc1", "enc5", "dec1")}
    assert first.scores_table.GetName() == f"{BASE} scores"
    assert first.metrics_table.GetName() == f"{BASE} PET metrics"
    assert first.methods_segmentation.GetName() == f"{BASE} MTV by method"
    assert first.methods_table.GetName() == f"{BASE} MTV methods"
    # a second result of the same PET (the user's own segmentation in between does not count)
    base2 = f"{PET_NAME} MTLRadiomics 2"
    assert [n.GetName() for n in result_nodes(second)] == [
        f"{base2} MTV", f"{base2} MTV labelmap", f"{base2} Grad-CAM enc1", f"{base2} Grad-CAM enc5",
        f"{base2} Grad-CAM dec1", f"{base2} scores", f"{base2} PET metrics", f"{base2} MTV by method",
        f"{base2} MTV methods"]
    # numbered per PET
    assert other.segmentation.GetName() == f"{OTHER_PET_NAME} MTLRadiomics 1 MTV"
    assert [first.segmentation.GetAttribute("MTLRadiomics.BaseName"),
            second.segmentation.GetAttribute("MTLRadiomics.BaseName"),
            other.segmentation.GetAttribute("MTLRadiomics.BaseName")] == [
        BASE, base2, f"{OTHER_PET_NAME} MTLRadiomics 1"]
    assert [n.GetClassName() for n in result_nodes(first)] == [
        "vtkMRMLSegmentationNode", "vtkMRMLLabelMapVolumeNode", *["vtkMRMLScalarVolumeNode"] * 3,
        "vtkMRMLTableNode", "vtkMRMLTableNode", "vtkMRMLSegmentationNode", "vtkMRMLTableNode"]


def test_segmentation_carries_the_run_and_references_every_node(imported, outputs):
    first, second, other = imported.first, imported.second, imported.other
    analysis = outputs.folders["analysis"]
    segmentation = first.segmentation
    assert {name: segmentation.GetAttribute(name) for name in (
        "MTLRadiomics.Role", "MTLRadiomics.RunFolder", "MTLRadiomics.Input", "MTLRadiomics.ResultFolder",
        "MTLRadiomics.AnalysisFolder", "MTLRadiomics.BaseName", "MTLRadiomics.FromDicom", "MTLRadiomics.Model")} == {
        "MTLRadiomics.Role": "MTV", "MTLRadiomics.RunFolder": str(analysis.parent / "run"),
        "MTLRadiomics.Input": str(analysis.parent / "input.nrrd"), "MTLRadiomics.ResultFolder": str(analysis),
        "MTLRadiomics.AnalysisFolder": str(analysis), "MTLRadiomics.BaseName": BASE,
        "MTLRadiomics.FromDicom": "true", "MTLRadiomics.Model": "/models/tiny"}
    references = {role: segmentation.GetNodeReferenceID(role) for role in (
        "MTLRadiomicsPET", "MTLRadiomicsLabelmap", "MTLRadiomicsScores", "MTLRadiomicsMetrics",
        "MTLRadiomicsMtvMethods", "MTLRadiomicsMtvMethodsTable")}
    assert references == {
        "MTLRadiomicsPET": imported.ps.pet_node.GetID(), "MTLRadiomicsLabelmap": first.labelmap.GetID(),
        "MTLRadiomicsScores": first.scores_table.GetID(), "MTLRadiomicsMetrics": first.metrics_table.GetID(),
        "MTLRadiomicsMtvMethods": first.methods_segmentation.GetID(),
        "MTLRadiomicsMtvMethodsTable": first.methods_table.GetID()}
    assert {s: segmentation.GetNodeReferenceID(f"MTLRadiomicsHeatmap_{s}") for s in results.SCALES} == {
        s: first.heatmaps[s].GetID() if s in first.heatmaps else None for s in results.SCALES}
    assert {s: n.GetAttribute("MTLRadiomics.Scale") for s, n in first.heatmaps.items()} == {
        "enc1": "enc1", "enc5": "enc5", "dec1": "dec1"}
    assert first.methods_segmentation.GetAttribute("MTLRadiomics.Role") == "MTVMethods"
    # the defaults: no model folder, not from DICOM
    assert second.segmentation.GetAttribute("MTLRadiomics.FromDicom") == "false"
    assert second.segmentation.GetAttribute("MTLRadiomics.Model") is None
    assert other.segmentation.GetAttribute("MTLRadiomics.FromDicom") == "false"
    assert other.segmentation.GetAttribute("MTLRadiomics.Model") == "/models/other"
    assert other.segmentation.GetNodeReferenceID("MTLRadiomicsPET") == imported.other_pet.GetID()
    assert [segmentation.GetAttribute("MTLRadiomics.Role") for segmentation in
            (imported.manual, second.methods_segmentation)] == [None, "MTVMethods"]


def test_import_returns_every_node_and_file(imported, outputs):
    first, second = imported.first, imported.second
    analysis = outputs.folders["analysis"]
    assert first.pet.GetID() == imported.ps.pet_node.GetID()
    assert first.segment_id == "MTV"
    assert (first.run_folder, first.input_path, first.result_folder, first.analysis_folder) == (
        analysis.parent / "run", analysis.parent / "input.nrrd", analysis, analysis)
    assert (first.model_folder, first.from_dicom) == (Path("/models/tiny"), True)
    assert (second.run_folder, second.input_path, second.model_folder, second.from_dicom) == (
        Path("/runs/second"), Path("/data/second.nrrd"), None, False)
    assert list(first.heatmaps) == ["enc1", "enc5", "dec1"]      # listed with a file, in the listed order
    sh = imported.ps.sh
    assert first.folder_item == parent_of(sh, first.segmentation) and first.folder_item != imported.ps.study
    for result in (first, second, imported.other):
        assert result.segmentation.GetScene() is imported.ps.scene
        assert result.labelmap.GetScene() is imported.ps.scene
        assert result.scores_table.GetScene() is imported.ps.scene
        assert result.metrics_table.GetScene() is imported.ps.scene
        assert result.methods_table.GetScene() is imported.ps.scene
        assert result.methods_segmentation.GetScene() is imported.ps.scene


def test_results_sit_in_a_folder_under_the_pet_study(imported):
    sh, first, second = imported.ps.sh, imported.first, imported.second
    for result, name in ((first, BASE), (second, f"{PET_NAME} MTLRadiomics 2")):
        folder = result.folder_item
        assert folder and sh.GetItemParent(folder) == imported.ps.study
        assert sh.GetItemName(folder) == name and sh.GetItemLevel(folder) == "Folder"
        assert sh.GetItemDataNode(folder) is None
        for node in result_nodes(result):
            assert parent_of(sh, node) == folder, node.GetName()
    assert first.folder_item != second.folder_item
    assert parent_of(sh, imported.ps.pet_node) == imported.ps.study


def test_a_pet_without_a_study_gets_its_folder_beside_it_at_scene_level(imported):
    sh, other = imported.ps.sh, imported.other
    scene_item = sh.GetSceneItemID()
    assert parent_of(sh, imported.other_pet) == scene_item     # the PET had no item: it got one
    assert sh.GetItemParent(other.folder_item) == scene_item
    assert sh.GetItemName(other.folder_item) == f"{OTHER_PET_NAME} MTLRadiomics 1"
    for node in result_nodes(other):
        assert parent_of(sh, node) == other.folder_item, node.GetName()


def test_every_node_observes_the_transform_of_the_pet(imported):
    transform_id = imported.ps.transform.GetID()
    for result in (imported.first, imported.second):
        for node in [result.segmentation, result.labelmap, *result.heatmaps.values(), result.methods_segmentation]:
            assert node.GetTransformNodeID() == transform_id, node.GetName()
        for table in (result.scores_table, result.metrics_table, result.methods_table):
            assert not hasattr(table, "SetAndObserveTransformNodeID")   # tables are not transformable
    other = imported.other
    for node in [other.segmentation, other.labelmap, other.methods_segmentation]:
        assert node.GetTransformNodeID() is None, node.GetName()


def test_labelmap_segment_and_heatmaps_hold_the_written_voxels_on_the_pet_grid(imported, outputs):
    first, pet_node = imported.first, imported.ps.pet_node
    expected = expected_ijk_to_ras(outputs.pet)
    np.testing.assert_allclose(ijk_to_ras(pet_node), expected, atol=1e-9)
    for node in [first.labelmap, *first.heatmaps.values()]:
        assert node.GetImageData().GetDimensions() == (18, 14, 10), node.GetName()
        np.testing.assert_allclose(ijk_to_ras(node), expected, atol=1e-4)
    labelmap = scene_io.array_from_volume(first.labelmap)
    assert labelmap.dtype == np.uint8
    np.testing.assert_array_equal(labelmap, outputs.mask)
    for scale, node in first.heatmaps.items():
        values = scene_io.array_from_volume(node)
        assert values.dtype == np.float32
        np.testing.assert_array_equal(values, outputs.heatmaps[scale])
    np.testing.assert_array_equal(scene_io.segment_array(first.segmentation, "MTV", pet_node), outputs.mask)
    role = slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()
    for segmentation in (first.segmentation, first.methods_segmentation):
        assert segmentation.GetNodeReferenceID(role) == pet_node.GetID()
    other = imported.other
    np.testing.assert_array_equal(scene_io.array_from_volume(other.labelmap), outputs.withheld_mask)
    assert other.heatmaps == {}
    assert not [n for n in scene_io.nodes_by_class(imported.ps.scene, "vtkMRMLScalarVolumeNode")
                if n.GetName().startswith(f"{OTHER_PET_NAME} MTLRadiomics 1 Grad-CAM")]


def test_every_method_mtv_is_a_hidden_segmentation_with_one_segment_per_method(imported, outputs):
    first = imported.first
    assert first.methods_segmentation.GetDisplayNode().GetVisibility() == 0
    assert first.segmentation.GetDisplayNode().GetVisibility() == 1
    masks = results.method_masks(first)
    assert list(masks) == list(outputs.method_masks)
    for label, mask in masks.items():
        assert mask.dtype == np.uint8 and mask.shape == SHAPE, label
        np.testing.assert_array_equal(mask, outputs.method_masks[label], err_msg=label)
    # on the PET's grid when the result has no labelmap
    masks = results.method_masks(dataclasses.replace(first, labelmap=None))
    assert list(masks) == list(outputs.method_masks)
    for label, mask in masks.items():
        np.testing.assert_array_equal(mask, outputs.method_masks[label], err_msg=label)
    assert results.method_masks(dataclasses.replace(first, methods_segmentation=None)) == {}


def test_the_engine_grid_is_the_labelmap_not_the_pet(imported, outputs):
    """current_mask and method_masks put the segments on the labelmap's grid (here a crop of the PET's)."""
    first = imported.first
    crop = np.eye(4)
    crop[:3, 3] = (4, 3, 2)                                   # voxel (x, y, z) = (4, 3, 2) of the PET grid
    cropped = scene_io.add_volume_node(slicer.vtkMRMLScene(), np.zeros((7, 9, 11), np.uint8),
                                       expected_ijk_to_ras(outputs.pet) @ crop, "crop",
                                       "vtkMRMLLabelMapVolumeNode")
    on_crop = dataclasses.replace(first, labelmap=cropped)
    window = (slice(2, 9), slice(3, 12), slice(4, 15))
    np.testing.assert_array_equal(results.current_mask(on_crop), outputs.mask[window])
    masks = results.method_masks(on_crop)
    assert list(masks) == list(outputs.method_masks)
    for label, mask in masks.items():
        np.testing.assert_array_equal(mask, outputs.method_masks[label][window], err_msg=label)


# --------------------------------------------------------------------------- heatmap display
def test_heatmaps_share_one_grad_cam_colour_map_over_0_to_1(imported):
    colours = grad_cam_colour_nodes(imported.ps.scene)
    assert len(colours) == 1                                    # one per scene, however many results
    colour = colours[0]
    assert colour.GetName() == "MTLRadiomics Grad-CAM" and colour.GetAttribute("Category") == "MTLRadiomics"
    assert transfer_points(colour) == COLOUR_POINTS
    for result in (imported.first, imported.second):
        for node in result.heatmaps.values():
            assert_heatmap_display(node, colour)


def test_colour_map_is_made_once_per_scene_and_display_set_on_any_volume():
    scene = slicer.vtkMRMLScene()
    colour = results.heatmap_color_node(scene)
    assert colour.GetScene() is scene and colour.GetSingletonTag() == "MTLRadiomicsGradCAM"
    assert results.heatmap_color_node(scene).GetID() == colour.GetID()
    assert len(grad_cam_colour_nodes(scene)) == 1
    assert transfer_points(colour) == COLOUR_POINTS
    bare = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "bare")      # no display node yet
    scene_io.set_volume_array(bare, np.zeros((2, 3, 4), np.float32), np.eye(4))
    results.setup_heatmap_display(bare, colour)
    assert_heatmap_display(bare, colour)
    shown = scene_io.add_volume_node(scene, np.zeros((2, 3, 4), np.float32), np.eye(4), "shown")
    display_id = shown.GetDisplayNodeID()
    results.setup_heatmap_display(shown, colour)                           # its own display node is kept
    assert shown.GetDisplayNodeID() == display_id and shown.GetNumberOfDisplayNodes() == 1
    assert_heatmap_display(shown, colour)


def composites_by_name(scene) -> dict:
    return {c.GetLayoutName(): c for c in scene_io.nodes_by_class(scene, "vtkMRMLSliceCompositeNode")}


def test_slice_views_show_one_heatmap_over_the_pet(imported):
    scene, first, pet_id = imported.ps.scene, imported.first, imported.ps.pet_node.GetID()
    views = composites_by_name(scene)
    assert sorted(views) == ["Green", "Red", "Yellow"]
    for scale, opacity, shown in (("enc5", None, 0.5), ("dec1", 1.7, 1.0), ("enc1", -0.3, 0.0), ("enc5", 0.35, 0.35)):
        if opacity is None:
            results.show_heatmap(scene, first, scale)
        else:
            results.show_heatmap(scene, first, scale, opacity)
        for name, view in views.items():
            assert (view.GetBackgroundVolumeID(), view.GetForegroundVolumeID()) == (
                pet_id, first.heatmaps[scale].GetID()), name
            assert view.GetForegroundOpacity() == shown, (name, scale)
    for opacity, shown in ((0.8, 0.8), (2.5, 1.0), (-1.0, 0.0), (0.0, 0.0), (1.0, 1.0)):
        results.set_heatmap_opacity(scene, opacity)
        assert [v.GetForegroundOpacity() for v in views.values()] == [shown] * 3, opacity
    with pytest.raises(ValueError, match="this result has no heatmap for the scale enc3"):
        results.show_heatmap(scene, first, "enc3")
    with pytest.raises(ValueError, match="no heatmap for the scale enc1"):
        results.show_heatmap(scene, imported.other, "enc1")


def test_hiding_drops_only_heatmap_foregrounds_and_keeps_the_pet(imported):
    scene, first, pet_id = imported.ps.scene, imported.first, imported.ps.pet_node.GetID()
    other_id = imported.other_pet.GetID()
    views = composites_by_name(scene)
    results.show_heatmap(scene, first, "enc1", 0.6)
    views["Green"].SetForegroundVolumeID(other_id)          # another volume over the PET: not a heatmap
    views["Yellow"].SetForegroundVolumeID(None)
    views["Yellow"].SetBackgroundVolumeID(other_id)
    results.hide_heatmaps(scene, first)
    assert {n: (v.GetBackgroundVolumeID(), v.GetForegroundVolumeID()) for n, v in views.items()} == {
        "Red": (pet_id, None), "Green": (pet_id, other_id), "Yellow": (pet_id, None)}
    results.show_heatmap(scene, imported.second, "dec1")      # another result's heatmap is a heatmap too
    results.hide_heatmaps(scene, imported.other)
    assert {n: (v.GetBackgroundVolumeID(), v.GetForegroundVolumeID()) for n, v in views.items()} == {
        n: (other_id, None) for n in views}


# --------------------------------------------------------------------------- tables of an import
def test_scores_table_of_the_analysis(imported):
    table = imported.first.scores_table
    assert column_names(table) == SCORE_COLUMNS
    assert column_classes(table) == ["vtkStringArray", "vtkStringArray", "vtkDoubleArray", "vtkDoubleArray",
                                     "vtkIntArray", "vtkStringArray"]
    assert column(table, "Score") == ["Response probability", "Survival risk (log relative hazard)",
                                      "P(leiomyosarcoma)", "P(liposarcoma)"]
    assert column(table, "Value") == ["0.731 ± 0.012", "-0.413 ± 0.088", "0.621 ± 0.044", "0.379 ± 0.044"]
    assert column(table, "Mean") == [0.7314, -0.4127, 0.6208, 0.3792]
    assert column(table, "SD") == [0.0123, 0.0876, 0.0441, 0.0441]
    assert column(table, "Samples") == [10, 10, 10, 10]
    assert column(table, "MTV") == ["predicted"] * 4
    assert [table.GetColumnTitle(name) for name in SCORE_COLUMNS] == SCORE_COLUMNS
    assert table.GetUseColumnTitleAsColumnHeader()
    assert table.GetColumnDescription("Value") == "mean ± standard deviation over the uncertainty samples"
    assert table.GetColumnDescription("MTV") == "scored with the predicted or the physician-edited MTV"
    assert (table.GetAttribute("MTLRadiomics.ScoresWithheld"), table.GetAttribute("MTLRadiomics.Domain"),
            table.GetAttribute("MTLRadiomics.MaskSource")) == ("", "inside", "predicted")
    assert results.scores_from_table(table) == [
        {"score": "Response probability", "mean": 0.7314, "sd": 0.0123, "samples": 10, "mtv": "predicted"},
        {"score": "Survival risk (log relative hazard)", "mean": -0.4127, "sd": 0.0876, "samples": 10,
         "mtv": "predicted"},
        {"score": "P(leiomyosarcoma)", "mean": 0.6208, "sd": 0.0441, "samples": 10, "mtv": "predicted"},
        {"score": "P(liposarcoma)", "mean": 0.3792, "sd": 0.0441, "samples": 10, "mtv": "predicted"}]
    assert results.scores_withheld(imported.first) == ""


def test_scores_table_of_a_withheld_analysis_says_why(imported):
    table = imported.other.scores_table
    assert column_names(table) == SCORE_COLUMNS
    assert nan_safe([column(table, name) for name in SCORE_COLUMNS]) == nan_safe([
        [f"Scores withheld: {WITHHELD_REASON}"], ["withheld"], [NAN], [NAN], [0], ["predicted"]])
    assert table.GetAttribute("MTLRadiomics.ScoresWithheld") == WITHHELD_REASON
    assert table.GetAttribute("MTLRadiomics.Domain") == ""
    assert results.scores_withheld(imported.other) == WITHHELD_REASON
    assert results.scores_withheld(dataclasses.replace(imported.other, scores_table=None)) == ""
    assert results.scores_withheld(dataclasses.replace(imported.other, scores_table=new_table())) == ""


def test_metrics_table_of_the_analysis(imported, outputs):
    table = imported.first.metrics_table
    assert column_names(table) == ["Metric", "Value", "Unit"]
    assert column_classes(table) == ["vtkStringArray", "vtkDoubleArray", "vtkStringArray"]
    assert column(table, "Metric") == ["SUVmax", "SUVpeak", "SUVmean", "MTV", "TLG"]
    assert column(table, "Value") == [9.8731, 7.6512, 4.3208, 2.9225, 12.6275]
    assert column(table, "Unit") == ["g/ml", "g/ml", "g/ml", "ml", "g"]
    assert table.GetColumnDescription("Value") == \
        "SUVpeak: highest mean SUV in a 1 ml sphere; TLG = SUVmean x MTV"
    assert (table.GetAttribute("MTLRadiomics.MetricsSource"), table.GetAttribute("MTLRadiomics.Voxels")) == (
        "engine", "167")
    assert results.metrics_from_table(table) == {"suv_max": 9.8731, "suv_peak": 7.6512, "suv_mean": 4.3208,
                                                 "mtv_ml": 2.9225, "tlg": 12.6275}
    assert results.metrics_from_table(imported.other.metrics_table) == {
        "suv_max": 6.5, "suv_peak": 5.25, "suv_mean": 2.75, "mtv_ml": 19.0, "tlg": 52.25}


def expected_methods(mtv: dict) -> list[dict]:
    """methods_from_table's rows worked out from result.json's "mtv"."""
    rows = []
    for name, entry in mtv["methods"].items():
        metrics = entry.get("metrics", {}) if entry["available"] else {}
        rows.append({"method": entry["label"], "scored": name == mtv["method"], "available": entry["available"],
                     "mtv_ml": metrics.get("mtv_ml", NAN), "suv_mean": metrics.get("suv_mean", NAN),
                     "suv_max": metrics.get("suv_max", NAN),
                     "dice": entry.get("dice_with_chosen", NAN) if entry["available"] else NAN,
                     "reason": entry["reason"]})
    return rows


def test_methods_table_of_the_analysis(imported, outputs):
    table = imported.first.methods_table
    assert column_names(table) == METHOD_COLUMNS
    assert column_classes(table) == ["vtkStringArray"] * 3 + ["vtkDoubleArray"] * 4 + ["vtkStringArray"]
    assert column(table, "Method") == ["network (sliding windows)", "40 % of SUVmax", "41 % of SUVmax (EANM)",
                                       "50 % of SUVmax", "SUV >= 2.5", "PERCIST: 1.5 x liver mean + 2 x liver SD"]
    assert column(table, "Scored") == ["", "yes", "", "", "", ""]
    assert column(table, "Available") == ["no", "yes", "yes", "yes", "yes", "no"]
    assert nan_safe(column(table, "MTV (ml)")) == nan_safe([NAN, 2.9225, 2.1875, 0.0, 7.56, NAN])
    assert nan_safe(column(table, "SUVmean")) == nan_safe([NAN, 4.3208, 4.4102, 0.0, 3.1066, NAN])
    assert nan_safe(column(table, "SUVmax")) == nan_safe([NAN, 9.8731, 9.8731, 0.0, 9.8731, NAN])
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe([NAN, 1.0, 0.8562, 0.0, 0.5577, NAN])
    assert column(table, "Reason") == ["the model has no segmentation head", "", "",
                                       "no voxel of 50 % of SUVmax is connected to the seed", "",
                                       "no liver reference: the liver was not found in the scan"]
    assert nan_safe(results.methods_from_table(table)) == nan_safe(expected_methods(outputs.json["analysis"]["mtv"]))
    assert (table.GetAttribute("MTLRadiomics.ScoredMtv"), table.GetAttribute("MTLRadiomics.FillHoles")) == (
        "suvmax40", "true")
    withheld = imported.other.methods_table
    assert column(withheld, "Scored") == ["", "", "", "", "yes", ""]
    assert (withheld.GetAttribute("MTLRadiomics.ScoredMtv"), withheld.GetAttribute("MTLRadiomics.FillHoles")) == (
        "suv2.5", "false")
    assert [table.GetColumnTitle(name) for name in METHOD_COLUMNS] == METHOD_COLUMNS
    assert table.GetColumnDescription("Scored") == "the MTV method the scores and the PET metrics use"
    assert table.GetColumnDescription("Dice with scored MTV") == \
        "overlap with the MTV the current scores use (1: same)"
    assert table.GetColumnDescription("Reason") == "why a method could not run or found nothing"
    assert [table.GetColumnUnitLabel(name) for name in ("MTV (ml)", "SUVmean", "SUVmax")] == ["ml", "g/ml", "g/ml"]


# --------------------------------------------------------------------------- tables filled directly
@pytest.mark.parametrize("kind, meaning, label", [
    ("binary", "", "Response probability"),
    ("binary", None, "Response probability"),
    ("binary", "   ", "Response probability"),
    ("binary", "Response to neoadjuvant chemotherapy", "Response probability"),
    ("binary", "histological RESPONSE (>= 90 % necrosis)", "Response probability"),
    ("binary", "  lung metastasis within 2 years ", "Lung metastasis within 2 years"),
    ("binary", "local recurrence", "Local recurrence"),
    ("binary", "x", "X"),
    ("survival", "", "Survival risk (log relative hazard)"),
    ("survival", "overall survival", "Survival risk (log relative hazard)"),
    ("Binary", "local recurrence", "Survival risk (log relative hazard)"),
])
def test_outcome_label_rules(kind, meaning, label):
    assert results.outcome_label(kind, meaning) == label


def test_outcome_label_without_a_meaning():
    assert results.outcome_label("binary") == "Response probability"
    assert results.outcome_label("survival") == "Survival risk (log relative hazard)"


def score_rows(table_node) -> list[tuple]:
    return nan_safe(list(zip(*(column(table_node, name) for name in SCORE_COLUMNS))))


def test_scores_with_every_head_then_refilled_withheld():
    table = new_table()
    results.fill_scores_table(table, {
        "outcome_kind": "binary", "outcome_meaning": "local recurrence", "outcome": estimate(0.25, 0.05, 4),
        "survival": estimate(1.2345, 0.5, 4), "mask_source": "edited", "withheld": "", "domain": "inside",
        "pathology": {"necrosis": estimate(0.9996, 0.0004, 4), "viable tumour": estimate(0.0004, 0.0004, 4)}})
    assert score_rows(table) == nan_safe([
        ("Local recurrence", "0.250 ± 0.050", 0.25, 0.05, 4, "edited"),
        ("Survival risk (log relative hazard)", "1.234 ± 0.500", 1.2345, 0.5, 4, "edited"),
        ("P(necrosis)", "1.000 ± 0.000", 0.9996, 0.0004, 4, "edited"),
        ("P(viable tumour)", "0.000 ± 0.000", 0.0004, 0.0004, 4, "edited")])
    assert table.GetAttribute("MTLRadiomics.MaskSource") == "edited"
    # withheld although the model gave scores: one row, with NaN values
    results.fill_scores_table(table, {"outcome_kind": "binary", "outcome": estimate(0.5, 0.1),
                                      "withheld": "the MTV is empty", "mask_source": "edited", "domain": "inside"})
    assert column_names(table) == SCORE_COLUMNS
    assert score_rows(table) == nan_safe([("Scores withheld: the MTV is empty", "withheld", NAN, NAN, 0, "edited")])
    assert (table.GetAttribute("MTLRadiomics.ScoresWithheld"), table.GetAttribute("MTLRadiomics.Domain")) == (
        "the MTV is empty", "inside")


def test_a_model_without_any_score_is_said_so():
    table = new_table()
    results.fill_scores_table(table, {"outcome_kind": "binary", "outcome": None, "survival": None, "pathology": {},
                                      "withheld": ""})
    assert score_rows(table) == nan_safe([
        ("Scores withheld: the model gives no scores", "withheld", NAN, NAN, 0, "predicted")])
    assert table.GetAttribute("MTLRadiomics.ScoresWithheld") == "the model gives no scores"
    assert results.scores_from_table(table)[0]["samples"] == 0
    results.fill_scores_table(table, {})
    assert score_rows(table) == nan_safe([
        ("Scores withheld: the model gives no scores", "withheld", NAN, NAN, 0, "predicted")])
    assert (table.GetAttribute("MTLRadiomics.Domain"), table.GetAttribute("MTLRadiomics.MaskSource")) == (
        "", "predicted")


@pytest.mark.parametrize("scores, row", [
    ({"outcome": {"mean": 0.4, "sd": 0.1}}, ("Response probability", "0.400 ± 0.100", 0.4, 0.1, 0, "predicted")),
    ({"survival": {"mean": -1.5, "sd": 0.25}},
     ("Survival risk (log relative hazard)", "-1.500 ± 0.250", -1.5, 0.25, 0, "predicted")),
    ({"pathology": {"sarcoma": {"mean": 0.875, "sd": 0.0625}}},
     ("P(sarcoma)", "0.875 ± 0.062", 0.875, 0.0625, 0, "predicted")),
    ({"outcome_kind": "survival", "outcome": estimate(0.3, 0.2, 3)},
     ("Survival risk (log relative hazard)", "0.300 ± 0.200", 0.3, 0.2, 3, "predicted")),
])
def test_one_head_alone_is_one_row(scores, row):
    """Keys the engine may leave out: the outcome kind (binary), its meaning, the MTV source (predicted),
    the samples (0), withheld and domain ("")."""
    table = new_table()
    results.fill_scores_table(table, scores)
    assert score_rows(table) == nan_safe([row])
    assert (table.GetAttribute("MTLRadiomics.ScoresWithheld"), table.GetAttribute("MTLRadiomics.Domain"),
            table.GetAttribute("MTLRadiomics.MaskSource")) == ("", "", "predicted")


def test_scores_outside_the_training_domain_are_marked_in_every_row():
    table = new_table()
    results.fill_scores_table(table, {
        "outcome_kind": "binary", "outcome_meaning": "", "outcome": estimate(0.8, 0.1, 5), "domain": "outside",
        "pathology": {"liposarcoma": estimate(0.3, 0.05, 5)}, "mask_source": "predicted", "withheld": ""})
    assert score_rows(table) == nan_safe([
        ("OUTSIDE THE MODEL'S TRAINING DOMAIN: read these scores with care", "outside", NAN, NAN, 0, "predicted"),
        ("Response probability [outside training domain]", "0.800 ± 0.100", 0.8, 0.1, 5, "predicted"),
        ("P(liposarcoma) [outside training domain]", "0.300 ± 0.050", 0.3, 0.05, 5, "predicted")])
    assert (table.GetAttribute("MTLRadiomics.Domain"), table.GetAttribute("MTLRadiomics.ScoresWithheld")) == (
        "outside", "")


def test_pathology_not_shown_is_a_row_of_its_own():
    table = new_table()
    results.fill_scores_table(table, {"outcome": estimate(0.6, 0.1, 2), "pathology": {},
                                      "pathology_note": "not shown: unknown classes", "domain": "inside"})
    assert score_rows(table) == nan_safe([
        ("Response probability", "0.600 ± 0.100", 0.6, 0.1, 2, "predicted"),
        ("Pathology not shown: unknown classes", "not shown", NAN, NAN, 0, "predicted")])


def test_metrics_table_filled_live_and_refilled():
    table = new_table()
    metrics = {"suv_max": 5.5, "suv_peak": 4.25, "suv_mean": 3.0, "mtv_ml": 1.5, "tlg": 4.5}
    results.fill_metrics_table(table, metrics, source="live")
    assert (table.GetAttribute("MTLRadiomics.MetricsSource"), table.GetAttribute("MTLRadiomics.Voxels")) == (
        "live", "0")
    results.fill_metrics_table(table, {**metrics, "tlg": 9.0, "voxels": 57.0}, source="engine")
    assert column_names(table) == ["Metric", "Value", "Unit"]
    assert column(table, "Value") == [5.5, 4.25, 3.0, 1.5, 9.0]
    assert (table.GetAttribute("MTLRadiomics.MetricsSource"), table.GetAttribute("MTLRadiomics.Voxels")) == (
        "engine", "57")
    assert [table.GetColumnTitle(n) for n in ("Metric", "Value", "Unit")] == ["Metric", "Value", "Unit"]


def test_metrics_from_a_table_with_some_rows():
    import vtk

    table_node = new_table()
    names, values = vtk.vtkStringArray(), vtk.vtkDoubleArray()
    names.SetName("Metric")
    values.SetName("Value")
    for name, value in (("TLG", 12.5), ("Volume", 3.0), ("SUVmax", 8.25)):
        names.InsertNextValue(name)
        values.InsertNextValue(value)
    table_node.GetTable().AddColumn(names)
    table_node.GetTable().AddColumn(values)
    assert results.metrics_from_table(table_node) == {"suv_max": 8.25, "tlg": 12.5}


def test_methods_table_of_incomplete_entries():
    table = new_table()
    results.fill_methods_table(table, {"method": "suv2.5", "methods": {
        "suv2.5": {"label": "SUV >= 2.5", "available": True, "reason": "",
                   "metrics": {"mtv_ml": 3.5, "suv_mean": 4.125, "suv_max": 9.0}, "dice_with_chosen": 1.0},
        "custom": {"available": True, "reason": None},                      # no label, metrics or Dice
        "partial": {"label": "partial", "available": True, "metrics": {"mtv_ml": 2.0}, "dice_with_chosen": None,
                    "reason": "found nothing above the threshold"},
        "percist": {"label": "PERCIST", "available": False, "reason": "no liver",
                    "metrics": {"mtv_ml": 9.5, "suv_mean": 2.0, "suv_max": 4.0}, "dice_with_chosen": 0.5},
        "other": {"label": "other", "metrics": None}}})
    assert nan_safe(results.methods_from_table(table)) == nan_safe([
        {"method": "SUV >= 2.5", "scored": True, "available": True, "mtv_ml": 3.5, "suv_mean": 4.125, "suv_max": 9.0,
         "dice": 1.0, "reason": ""},
        {"method": "custom", "scored": False, "available": True, "mtv_ml": NAN, "suv_mean": NAN, "suv_max": NAN,
         "dice": NAN, "reason": ""},
        {"method": "partial", "scored": False, "available": True, "mtv_ml": 2.0, "suv_mean": NAN, "suv_max": NAN,
         "dice": NAN, "reason": "found nothing above the threshold"},
        {"method": "PERCIST", "scored": False, "available": False, "mtv_ml": NAN, "suv_mean": NAN, "suv_max": NAN,
         "dice": NAN, "reason": "no liver"},
        {"method": "other", "scored": False, "available": False, "mtv_ml": NAN, "suv_mean": NAN, "suv_max": NAN,
         "dice": NAN, "reason": ""}])
    assert column(table, "Available") == ["yes", "yes", "yes", "no", "no"]
    assert (table.GetAttribute("MTLRadiomics.ScoredMtv"), table.GetAttribute("MTLRadiomics.FillHoles")) == (
        "suv2.5", "false")
    results.fill_methods_table(table, {})                                    # results before MTV methods
    assert column_names(table) == METHOD_COLUMNS
    assert table.GetTable().GetNumberOfRows() == 0
    assert (table.GetAttribute("MTLRadiomics.ScoredMtv"), table.GetAttribute("MTLRadiomics.FillHoles")) == (
        "", "false")


# --------------------------------------------------------------------------- finding results again
def test_results_of_one_pet_oldest_first(imported):
    scene = imported.ps.scene
    ids = lambda found: [r.segmentation.GetID() for r in found]  # noqa: E731
    first, second, other = imported.first, imported.second, imported.other
    assert ids(results.results_for_pet(scene, imported.ps.pet_node)) == [first.segmentation.GetID(),
                                                                         second.segmentation.GetID()]
    assert ids(results.results_for_pet(scene, imported.other_pet)) == [other.segmentation.GetID()]
    assert ids(results.results_for_pet(scene, None)) == [r.segmentation.GetID() for r in (first, second, other)]
    assert results.results_for_pet(slicer.vtkMRMLScene(), imported.ps.pet_node) == []


def assert_same_result(found: ResultNodes, expected: ResultNodes) -> None:
    ids = lambda node: None if node is None else node.GetID()  # noqa: E731
    for name in ("segmentation", "pet", "labelmap", "scores_table", "metrics_table", "methods_segmentation",
                 "methods_table"):
        assert ids(getattr(found, name)) == ids(getattr(expected, name)), name
    assert {s: n.GetID() for s, n in found.heatmaps.items()} == {s: n.GetID() for s, n in expected.heatmaps.items()}
    for name in ("segment_id", "run_folder", "input_path", "result_folder", "model_folder", "from_dicom",
                 "folder_item", "analysis_folder"):
        assert getattr(found, name) == getattr(expected, name), name


def test_a_result_is_found_again_from_its_segmentation(imported):
    for result in (imported.first, imported.second, imported.other):
        found = ResultNodes.from_segmentation(result.segmentation)
        assert found is not None
        assert_same_result(found, result)
    found = ResultNodes.from_segmentation(imported.first.segmentation)
    assert list(found.heatmaps) == ["enc1", "enc5", "dec1"] and found.model_folder == Path("/models/tiny")
    assert found.from_dicom is True and ResultNodes.from_segmentation(imported.second.segmentation).from_dicom is False
    assert ResultNodes.from_segmentation(imported.second.segmentation).model_folder is None


def test_other_segmentations_are_not_results(imported, outputs):
    scene, pet_id = imported.ps.scene, imported.ps.pet_node.GetID()
    assert ResultNodes.from_segmentation(None) is None
    assert ResultNodes.from_segmentation(imported.manual) is None                 # no role
    assert ResultNodes.from_segmentation(imported.first.methods_segmentation) is None

    def segmentation(name: str, segments: tuple[str, ...], pet: bool = True) -> "slicer.vtkMRMLSegmentationNode":
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        for segment in segments:
            node.GetSegmentation().AddEmptySegment(segment, segment)
        node.SetAttribute("MTLRadiomics.Role", "MTV")
        if pet:
            node.SetNodeReferenceID("MTLRadiomicsPET", pet_id)
        return node

    try:
        no_pet = segmentation("no PET", ("MTV",), pet=False)
        no_mtv = segmentation("no MTV", ("Tumour", "Node"))
        empty = segmentation("no segment", ())
        for node in (no_pet, no_mtv, empty):
            assert ResultNodes.from_segmentation(node) is None, node.GetName()
        # a bare result: its only segment is the MTV; no other node, attribute or subject hierarchy item
        two = ResultNodes.from_segmentation(segmentation("two", ("Necrosis", "MTV")))   # a segment added by hand
        assert two is not None and two.segment_id == "MTV"
        bare = ResultNodes.from_segmentation(segmentation("bare", ("Tumour",)))
        assert bare is not None and bare.segment_id == "Tumour"
        assert (bare.labelmap, bare.scores_table, bare.metrics_table, bare.methods_segmentation, bare.methods_table,
                bare.heatmaps) == (None, None, None, None, None, {})
        assert (bare.run_folder, bare.input_path, bare.result_folder) == (Path(""), Path(""), Path(""))
        assert (bare.model_folder, bare.from_dicom, bare.folder_item, bare.analysis_folder) == (None, False, 0, None)
        assert bare.node_ids() == [bare.segmentation.GetID()]
        assert [r.segmentation.GetName() for r in results.results_for_pet(scene, imported.ps.pet_node)] == [
            f"{BASE} MTV", f"{PET_NAME} MTLRadiomics 2 MTV", "two", "bare"]
    finally:
        for name in ("no PET", "no MTV", "no segment", "two", "bare"):
            node = scene.GetFirstNodeByName(name)
            if node is not None:
                scene.RemoveNode(node)


def test_node_ids_in_order(imported):
    first = imported.first
    assert first.node_ids() == [first.segmentation.GetID(), first.labelmap.GetID(), first.scores_table.GetID(),
                                first.metrics_table.GetID(), first.methods_segmentation.GetID(),
                                first.methods_table.GetID(), *[first.heatmaps[s].GetID()
                                                               for s in ("enc1", "enc5", "dec1")]]
    other = imported.other
    assert other.node_ids() == [other.segmentation.GetID(), other.labelmap.GetID(), other.scores_table.GetID(),
                                other.metrics_table.GetID(), other.methods_segmentation.GetID(),
                                other.methods_table.GetID()]
    partial = dataclasses.replace(first, labelmap=None, methods_table=None, heatmaps={"dec1": first.heatmaps["dec1"]})
    assert partial.node_ids() == [first.segmentation.GetID(), first.scores_table.GetID(), first.metrics_table.GetID(),
                                  first.methods_segmentation.GetID(), first.heatmaps["dec1"].GetID()]


def test_analysis_json_falls_back_to_the_result_folder(imported, outputs, tmp_path):
    first, folders, stored = imported.first, outputs.folders, outputs.json

    def at(analysis: Optional[Path], result: Path) -> ResultNodes:
        return dataclasses.replace(first, analysis_folder=analysis, result_folder=result)

    assert at(folders["analysis"], folders["rescore"]).result_json == stored["rescore"]
    assert at(folders["analysis"], folders["rescore"]).analysis_json == stored["analysis"]
    assert at(None, folders["rescore"]).analysis_json == stored["rescore"]
    assert at(Path("."), folders["rescore"]).analysis_json == stored["rescore"]
    assert at(Path(""), folders["withheld"]).analysis_json == stored["withheld"]
    assert at(tmp_path / "gone", folders["rescore"]).analysis_json == stored["rescore"]
    assert results.analysis_mtv(at(folders["analysis"], folders["rescore"])) == stored["analysis"]["mtv"]
    assert results.analysis_mtv(at(None, folders["rescore"])) == stored["rescore"]["mtv"]
    assert results.analysis_mtv(at(folders["legacy"], folders["rescore"])) == {}       # before MTV methods
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "result.json").write_text("{not json")
    assert results.analysis_mtv(at(broken, folders["rescore"])) == {}
    assert results.analysis_mtv(at(tmp_path / "gone", tmp_path / "gone too")) == {}
    none = tmp_path / "none"
    none.mkdir()
    (none / "result.json").write_text(json.dumps({"mtv": None}))
    assert results.analysis_mtv(at(none, folders["rescore"])) == {}


# --------------------------------------------------------------------------- edits and rescoring
def test_an_edit_by_array_is_noticed(outputs):
    ps = pet_scene(outputs.pet)
    result = import_output(ps, outputs.folders["analysis"])
    scored = results.scored_mask(result)
    assert scored.dtype == np.uint8
    np.testing.assert_array_equal(scored, outputs.mask)
    np.testing.assert_array_equal(results.current_mask(result), outputs.mask)
    assert results.edited_since_scoring(result) is False
    scene_io.update_segment_from_array(outputs.edited, result.segmentation, result.segment_id, result.labelmap)
    np.testing.assert_array_equal(results.current_mask(result), outputs.edited)
    np.testing.assert_array_equal(results.scored_mask(result), outputs.mask)
    assert results.edited_since_scoring(result) is True
    without = dataclasses.replace(result, labelmap=None)           # on the PET's grid
    np.testing.assert_array_equal(results.current_mask(without), outputs.edited)
    assert results.scored_mask(without) is None and results.edited_since_scoring(without) is True
    empty = dataclasses.replace(result, labelmap=ps.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "empty"))
    assert results.scored_mask(empty) is None
    # labels other than 1 count as the MTV
    twos = ps.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "twos")
    scene_io.set_volume_array(twos, outputs.edited * 2, expected_ijk_to_ras(outputs.pet))
    np.testing.assert_array_equal(results.scored_mask(dataclasses.replace(result, labelmap=twos)), outputs.edited)
    assert results.edited_since_scoring(dataclasses.replace(result, labelmap=twos)) is False


@dataclass
class Rescored:
    ps: PetScene
    result: ResultNodes
    data: dict
    removed: dict[str, list[str]]            # scale -> IDs of the node and its display and storage nodes
    enc1_id: str
    methods_before: dict[str, np.ndarray]


@pytest.fixture
def rescored(outputs) -> Rescored:
    """The analysis, its MTV edited by array, rescored (edited MTV, scores outside the training domain)."""
    ps = pet_scene(outputs.pet)
    result = import_output(ps, outputs.folders["analysis"])
    removed = {}
    for scale in ("enc5", "dec1"):
        node = result.heatmaps[scale]
        node.AddDefaultStorageNode()
        removed[scale] = [node.GetID(), node.GetDisplayNodeID(), node.GetStorageNodeID()]
        assert all(removed[scale])
    enc1_id = result.heatmaps["enc1"].GetID()
    scene_io.update_segment_from_array(outputs.edited, result.segmentation, result.segment_id, result.labelmap)
    methods_before = results.method_masks(result)
    data = results.update_from_rescore(result, outputs.folders["rescore"])
    return Rescored(ps=ps, result=result, data=data, removed=removed, enc1_id=enc1_id, methods_before=methods_before)


def test_rescore_refills_the_scores_and_metrics(rescored, outputs):
    result = rescored.result
    assert rescored.data == outputs.json["rescore"]
    assert score_rows(result.scores_table) == nan_safe([
        ("OUTSIDE THE MODEL'S TRAINING DOMAIN: read these scores with care", "outside", NAN, NAN, 0, "edited"),
        ("Response probability [outside training domain]", "0.685 ± 0.021", 0.6849, 0.0207, 10, "edited"),
        ("Survival risk (log relative hazard) [outside training domain]", "-0.208 ± 0.035", -0.2081, 0.0347, 10,
         "edited"),
        ("Pathology not shown: the lesion is outside the model's training domain, so no class the model knows "
         "(leiomyosarcoma, liposarcoma) can be told", "not shown", NAN, NAN, 0, "edited")])
    assert (result.scores_table.GetAttribute("MTLRadiomics.Domain"),
            result.scores_table.GetAttribute("MTLRadiomics.MaskSource")) == ("outside", "edited")
    assert column(result.metrics_table, "Value") == [10.2113, 7.9004, 4.1187, 3.1325, 12.9018]
    assert (result.metrics_table.GetAttribute("MTLRadiomics.MetricsSource"),
            result.metrics_table.GetAttribute("MTLRadiomics.Voxels")) == ("engine", "179")


def test_rescore_reads_the_scored_mtv_and_keeps_the_edited_segmentation(rescored, outputs):
    result = rescored.result
    assert result.labelmap.GetName() == f"{BASE} MTV labelmap"
    np.testing.assert_array_equal(scene_io.array_from_volume(result.labelmap), outputs.edited)
    np.testing.assert_allclose(ijk_to_ras(result.labelmap), expected_ijk_to_ras(outputs.pet), atol=1e-4)
    np.testing.assert_array_equal(results.current_mask(result), outputs.edited)
    assert results.edited_since_scoring(result) is False
    masks = results.method_masks(result)
    assert list(masks) == list(rescored.methods_before)
    for label, mask in masks.items():
        np.testing.assert_array_equal(mask, outputs.method_masks[label], err_msg=label)
    segmentation = result.segmentation
    assert segmentation.GetAttribute("MTLRadiomics.ResultFolder") == str(outputs.folders["rescore"])
    assert segmentation.GetAttribute("MTLRadiomics.AnalysisFolder") == str(outputs.folders["analysis"])
    assert (result.result_folder, result.analysis_folder) == (outputs.folders["rescore"], outputs.folders["analysis"])
    assert results.analysis_mtv(result) == outputs.json["analysis"]["mtv"]


def test_rescore_heatmaps_are_read_again_added_and_removed(rescored, outputs):
    ps, result = rescored.ps, rescored.result
    scene, segmentation = ps.scene, result.segmentation
    assert list(result.heatmaps) == ["enc1", "dec4"]
    assert result.heatmaps["enc1"].GetID() == rescored.enc1_id                 # the same node, read again
    for scale in ("enc1", "dec4"):
        node = result.heatmaps[scale]
        np.testing.assert_array_equal(scene_io.array_from_volume(node), outputs.rescore_heatmaps[scale])
        np.testing.assert_allclose(ijk_to_ras(node), expected_ijk_to_ras(outputs.pet), atol=1e-4)
        assert segmentation.GetNodeReferenceID(f"MTLRadiomicsHeatmap_{scale}") == node.GetID()
    added = result.heatmaps["dec4"]
    assert added.GetName() == f"{BASE} Grad-CAM dec4" and added.GetAttribute("MTLRadiomics.Scale") == "dec4"
    assert added.GetScene() is scene and added.GetClassName() == "vtkMRMLScalarVolumeNode"
    assert added.GetTransformNodeID() == ps.transform.GetID()
    assert parent_of(ps.sh, added) == result.folder_item
    colours = grad_cam_colour_nodes(scene)
    assert len(colours) == 1
    assert_heatmap_display(added, colours[0])
    for scale, ids in rescored.removed.items():
        assert segmentation.GetNodeReferenceID(f"MTLRadiomicsHeatmap_{scale}") is None
        assert [scene.GetNodeByID(node_id) for node_id in ids] == [None, None, None], scale
    assert ResultNodes.from_segmentation(segmentation).heatmaps.keys() == {"enc1", "dec4"}


def test_rescore_recomputes_the_dice_with_the_edited_mtv(rescored, outputs):
    table = rescored.result.methods_table
    assert table.GetAttribute("MTLRadiomics.ScoredMtv") == "edited"
    assert column(table, "Scored") == [""] * 6
    expected = [NAN if label not in outputs.method_masks else dice(outputs.method_masks[label], outputs.edited)
                for label in column(table, "Method")]
    assert not math.isnan(expected[1]) and 0.0 < expected[1] < 1.0
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe(expected)
    # the rest stays as the analysis had it
    assert column(table, "Available") == ["no", "yes", "yes", "yes", "yes", "no"]
    assert nan_safe(column(table, "MTV (ml)")) == nan_safe([NAN, 2.9225, 2.1875, 0.0, 7.56, NAN])


def test_a_second_rescore_with_scores_withheld_removes_every_heatmap(rescored, outputs):
    result, scene = rescored.result, rescored.ps.scene
    heatmap_ids = [n.GetID() for n in result.heatmaps.values()]
    display_ids = [n.GetDisplayNodeID() for n in result.heatmaps.values()]
    results.update_from_rescore(result, outputs.folders["rescore_withheld"])
    assert result.heatmaps == {}
    assert [scene.GetNodeByID(i) for i in heatmap_ids + display_ids] == [None] * 4
    assert all(result.segmentation.GetNodeReferenceID(f"MTLRadiomicsHeatmap_{s}") is None for s in results.SCALES)
    assert results.scores_withheld(result) == WITHHELD_REASON
    assert score_rows(result.scores_table) == nan_safe([
        (f"Scores withheld: {WITHHELD_REASON}", "withheld", NAN, NAN, 0, "edited")])
    assert result.segmentation.GetAttribute("MTLRadiomics.ResultFolder") == str(outputs.folders["rescore_withheld"])
    assert result.segmentation.GetAttribute("MTLRadiomics.AnalysisFolder") == str(outputs.folders["analysis"])
    assert (result.result_folder, result.analysis_folder) == (
        outputs.folders["rescore_withheld"], outputs.folders["analysis"])
    assert grad_cam_colour_nodes(scene)                            # the colour map stays for later results


def test_a_heatmap_the_user_deleted_is_forgotten_by_the_rescore(outputs):
    ps = pet_scene(outputs.pet, transform=False)
    result = import_output(ps, outputs.folders["analysis"])
    ps.scene.RemoveNode(result.heatmaps["enc5"])
    dec1_id = result.heatmaps["dec1"].GetID()
    results.update_from_rescore(result, outputs.folders["rescore"])
    assert list(result.heatmaps) == RESCORE_SCALES
    assert result.segmentation.GetNodeReferenceID("MTLRadiomicsHeatmap_enc5") is None
    assert ps.scene.GetNodeByID(dec1_id) is None
    for scale, node in result.heatmaps.items():
        np.testing.assert_array_equal(scene_io.array_from_volume(node), outputs.rescore_heatmaps[scale])


def test_rescore_adds_heatmaps_to_an_analysis_that_had_none(outputs):
    ps = pet_scene(outputs.pet, name=OTHER_PET_NAME, study=False, transform=False)
    result = import_output(ps, outputs.folders["withheld"])
    assert result.heatmaps == {}
    result.segmentation.SetName("Tumour (edited)")        # renamed by the user: new nodes keep the result's name
    scene_io.update_segment_from_array(outputs.edited, result.segmentation, result.segment_id, result.labelmap)
    results.update_from_rescore(result, outputs.folders["rescore"])
    base = f"{OTHER_PET_NAME} MTLRadiomics 1"
    assert {s: n.GetName() for s, n in result.heatmaps.items()} == {s: f"{base} Grad-CAM {s}" for s in RESCORE_SCALES}
    assert list(result.heatmaps) == RESCORE_SCALES
    colour = grad_cam_colour_nodes(ps.scene)[0]
    for scale, node in result.heatmaps.items():
        np.testing.assert_array_equal(scene_io.array_from_volume(node), outputs.rescore_heatmaps[scale])
        assert result.segmentation.GetNodeReferenceID(f"MTLRadiomicsHeatmap_{scale}") == node.GetID()
        assert parent_of(ps.sh, node) == result.folder_item
        assert node.GetTransformNodeID() is None
        assert node.GetAttribute("MTLRadiomics.Scale") == scale
        assert_heatmap_display(node, colour)
    assert results.scores_withheld(result) == ""
    table = result.methods_table
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe(
        [NAN if label not in outputs.method_masks else dice(outputs.method_masks[label], outputs.edited)
         for label in column(table, "Method")])


def test_new_heatmaps_go_to_the_result_folder_even_when_the_segmentation_moved(outputs):
    ps = pet_scene(outputs.pet)
    result = import_output(ps, outputs.folders["withheld"])
    ps.sh.SetItemParent(ps.sh.GetItemByDataNode(result.segmentation), ps.study)
    results.update_from_rescore(result, outputs.folders["rescore"])
    for node in result.heatmaps.values():
        assert parent_of(ps.sh, node) == result.folder_item and node.GetTransformNodeID() == ps.transform.GetID()


def test_without_its_folder_item_a_result_puts_new_heatmaps_beside_its_segmentation(outputs):
    ps = pet_scene(outputs.pet)
    made = import_output(ps, outputs.folders["withheld"])
    study_item = ps.study
    ps.sh.SetItemParent(ps.sh.GetItemByDataNode(made.segmentation), study_item)
    result = dataclasses.replace(made, folder_item=0)
    results.update_from_rescore(result, outputs.folders["rescore"])
    assert [parent_of(ps.sh, n) for n in result.heatmaps.values()] == [study_item, study_item]
    # a segmentation without a subject hierarchy item: at the scene level
    ps = pet_scene(outputs.pet, study=False, transform=False)
    made = import_output(ps, outputs.folders["withheld"])
    ps.sh.RemoveItem(ps.sh.GetItemByDataNode(made.segmentation), False, False)
    assert not ps.sh.GetItemByDataNode(made.segmentation)
    result = dataclasses.replace(made, folder_item=0)
    results.update_from_rescore(result, outputs.folders["rescore"])
    assert [parent_of(ps.sh, n) for n in result.heatmaps.values()] == [ps.sh.GetSceneItemID()] * 2


def test_an_older_result_names_new_heatmaps_after_its_segmentation(outputs):
    ps = pet_scene(outputs.pet, transform=False)
    result = import_output(ps, outputs.folders["withheld"])
    result.segmentation.RemoveAttribute("MTLRadiomics.BaseName")
    result.segmentation.SetName("Old result MTV")
    results.update_from_rescore(result, outputs.folders["rescore"])
    assert [n.GetName() for n in result.heatmaps.values()] == ["Old result Grad-CAM enc1", "Old result Grad-CAM dec4"]


def test_an_older_analysis_without_explanation_or_mtv_methods(outputs):
    """result.json without "explanation": every scale with a file; without "mtv": no methods nodes."""
    ps = pet_scene(outputs.pet)
    result = import_output(ps, outputs.folders["legacy"])
    assert list(result.heatmaps) == list(LEGACY_FILES)
    for scale, node in result.heatmaps.items():
        np.testing.assert_array_equal(scene_io.array_from_volume(node), outputs.legacy_heatmaps[scale])
        assert node.GetTransformNodeID() == ps.transform.GetID()
    assert (result.methods_segmentation, result.methods_table) == (None, None)
    assert result.segmentation.GetNodeReferenceID("MTLRadiomicsMtvMethods") is None
    assert result.segmentation.GetNodeReferenceID("MTLRadiomicsMtvMethodsTable") is None
    assert results.method_masks(result) == {} and results.analysis_mtv(result) == {}
    assert result.node_ids() == [result.segmentation.GetID(), result.labelmap.GetID(), result.scores_table.GetID(),
                                 result.metrics_table.GetID(), *[n.GetID() for n in result.heatmaps.values()]]
    assert [parent_of(ps.sh, n) for n in result_nodes(result)] == [result.folder_item] * 6


def test_rescore_of_an_older_result_by_an_older_engine(outputs):
    """No analysis folder recorded (it becomes the result folder), no methods table, no mtv.nii.gz and no
    "explanation" in the rescore's result.json: the labelmap stays, every heatmap goes."""
    ps = pet_scene(outputs.pet)
    imported = import_output(ps, outputs.folders["legacy"])
    imported.segmentation.RemoveAttribute("MTLRadiomics.AnalysisFolder")
    result = ResultNodes.from_segmentation(imported.segmentation)
    assert result.analysis_folder is None
    ids = [n.GetID() for n in result.heatmaps.values()]
    data = results.update_from_rescore(result, outputs.folders["rescore_old"])
    assert data == outputs.json["rescore_old"]
    np.testing.assert_array_equal(scene_io.array_from_volume(result.labelmap), outputs.mask)
    assert result.heatmaps == {} and [ps.scene.GetNodeByID(i) for i in ids] == [None, None]
    assert result.segmentation.GetAttribute("MTLRadiomics.AnalysisFolder") == str(outputs.folders["legacy"])
    assert result.segmentation.GetAttribute("MTLRadiomics.ResultFolder") == str(outputs.folders["rescore_old"])
    assert (result.analysis_folder, result.result_folder) == (outputs.folders["legacy"], outputs.folders["rescore_old"])
    assert column(result.metrics_table, "Value") == [7.25, 6.0, 3.5, 2.0, 7.0]
    assert column(result.scores_table, "MTV") == ["edited"] * 4
    assert result.methods_table is None


def test_rescore_of_a_result_without_labelmap_keeps_the_methods_table(outputs):
    ps = pet_scene(outputs.pet)
    imported = import_output(ps, outputs.folders["analysis"])
    result = dataclasses.replace(imported, labelmap=None)
    results.update_from_rescore(result, outputs.folders["rescore"])
    np.testing.assert_array_equal(scene_io.array_from_volume(imported.labelmap), outputs.mask)   # not touched
    table = result.methods_table
    assert column(table, "Scored") == ["", "yes", "", "", "", ""]
    assert table.GetAttribute("MTLRadiomics.ScoredMtv") == "suvmax40"
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe([NAN, 1.0, 0.8562, 0.0, 0.5577, NAN])
    assert list(result.heatmaps) == RESCORE_SCALES


def test_dice_with_an_empty_scored_mtv(outputs):
    ps = pet_scene(outputs.pet, transform=False)
    result = import_output(ps, outputs.folders["analysis"])
    results.update_methods_dice(result, np.zeros(SHAPE, np.uint8), label="nothing")
    table = result.methods_table
    # the empty method against the empty MTV: no overlap to tell (NaN); the unavailable ones stay NaN
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe([NAN, 0.0, 0.0, NAN, 0.0, NAN])
    assert column(table, "Scored") == [""] * 6
    assert table.GetAttribute("MTLRadiomics.ScoredMtv") == "nothing"
    results.update_methods_dice(result, outputs.method_masks["SUV >= 2.5"] * 3, label="edited")
    assert nan_safe(column(table, "Dice with scored MTV")) == nan_safe(
        [NAN, dice(outputs.mask, outputs.method_masks["SUV >= 2.5"]),
         dice(outputs.method_masks["41 % of SUVmax (EANM)"], outputs.method_masks["SUV >= 2.5"]), 0.0, 1.0, NAN])


def test_in_a_scene_that_gives_every_node_an_item_the_nodes_move_into_the_folder(outputs):
    ps = pet_scene(outputs.pet, slicer_like=True)
    assert parent_of(ps.sh, ps.pet_node) == ps.study
    result = import_output(ps, outputs.folders["withheld"])
    assert ps.sh.GetItemParent(result.folder_item) == ps.study
    for node in result_nodes(result):
        assert parent_of(ps.sh, node) == result.folder_item, node.GetName()
    results.update_from_rescore(result, outputs.folders["rescore"])
    for node in result.heatmaps.values():
        assert parent_of(ps.sh, node) == result.folder_item, node.GetName()

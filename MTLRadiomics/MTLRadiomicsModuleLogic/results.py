"""The engine's output folder brought into the scene, and the result nodes found again from it.

One analysis becomes, in a subject hierarchy folder under the PET's study:
- the MTV as a segmentation (segment "MTV") whose reference geometry is the PET,
- the MTV the current scores were computed from as a labelmap volume,
- one Grad-CAM volume per network scale, shown as a coloured foreground over the PET (none when the
  scores were withheld because the MTV is implausible),
- a table of scores with their uncertainty (or one row saying why they were withheld) and a table of
  PET metrics,
- every MTV method's MTV as a second segmentation ("MTV by method", one segment per method, hidden
  at first) and a table comparing the methods (MTV, SUVmean, SUVmax, Dice with the scored MTV).
The segmentation node carries references to the other nodes, so a result survives saving and
reloading the scene. No Qt import.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from MTLRadiomicsModuleLogic import scene_io

SCALES = ("enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1")
SCALE_LABELS = {"enc1": "encoder 1 (finest)", "enc2": "encoder 2", "enc3": "encoder 3", "enc4": "encoder 4",
                "enc5": "encoder 5 (bottleneck)", "dec4": "decoder 4", "dec3": "decoder 3",
                "dec2": "decoder 2", "dec1": "decoder 1 (finest)"}

ROLE_ATTRIBUTE = "MTLRadiomics.Role"
ROLE_MTV = "MTV"
ROLE_MTV_METHODS = "MTVMethods"
ATTR_RUN_FOLDER = "MTLRadiomics.RunFolder"
ATTR_INPUT = "MTLRadiomics.Input"
ATTR_RESULT_FOLDER = "MTLRadiomics.ResultFolder"
ATTR_MODEL = "MTLRadiomics.Model"
ATTR_FROM_DICOM = "MTLRadiomics.FromDicom"
ATTR_METRICS_SOURCE = "MTLRadiomics.MetricsSource"
ATTR_ANALYSIS_FOLDER = "MTLRadiomics.AnalysisFolder"     # the analyze run's output (a rescore keeps it)
ATTR_BASE_NAME = "MTLRadiomics.BaseName"                 # "<PET> MTLRadiomics <n>": names of the nodes
ATTR_SCORES_WITHHELD = "MTLRadiomics.ScoresWithheld"     # on the scores table: why, or ""
ATTR_SCORED_MTV = "MTLRadiomics.ScoredMtv"               # on the methods table: the scored method or "edited"
REF_PET = "MTLRadiomicsPET"
REF_LABELMAP = "MTLRadiomicsLabelmap"
REF_SCORES = "MTLRadiomicsScores"
REF_METRICS = "MTLRadiomicsMetrics"
REF_HEATMAP = "MTLRadiomicsHeatmap_"
REF_METHODS_SEGMENTATION = "MTLRadiomicsMtvMethods"
REF_METHODS_TABLE = "MTLRadiomicsMtvMethodsTable"

HEATMAP_COLOR_TAG = "MTLRadiomicsGradCAM"
HEATMAP_THRESHOLD = 0.2          # heat below this is transparent over the PET
DEFAULT_OPACITY = 0.5

METRIC_ROWS = (("suv_max", "SUVmax", "g/ml"), ("suv_peak", "SUVpeak", "g/ml"), ("suv_mean", "SUVmean", "g/ml"),
               ("mtv_ml", "MTV", "ml"), ("tlg", "TLG", "g"))
METHOD_COLUMNS = ("Method", "Scored", "Available", "MTV (ml)", "SUVmean", "SUVmax", "Dice with scored MTV",
                  "Reason")


@dataclass
class ResultNodes:
    """The nodes of one analysis and the files behind them."""

    segmentation: object
    segment_id: str
    pet: object
    labelmap: object
    heatmaps: dict[str, object]
    scores_table: object
    metrics_table: object
    run_folder: Path
    input_path: Path
    result_folder: Path
    model_folder: Optional[Path] = None
    from_dicom: bool = False
    folder_item: int = 0
    methods_segmentation: object = None       # every MTV method's MTV, one segment each (hidden at first)
    methods_table: object = None              # the methods side by side
    analysis_folder: Optional[Path] = None    # the analyze run's output folder (result_folder after a rescore
                                              # is the rescore's)

    @property
    def result_json(self) -> dict:
        return json.loads((self.result_folder / "result.json").read_text())

    @property
    def analysis_json(self) -> dict:
        """result.json of the analysis (not of a later rescore): it holds every method's MTV."""
        folder = self.analysis_folder if self.analysis_folder and str(self.analysis_folder) not in ("", ".") \
            else self.result_folder
        path = folder / "result.json"
        return json.loads(path.read_text()) if path.is_file() else self.result_json

    def node_ids(self) -> list[str]:
        nodes = [self.segmentation, self.labelmap, self.scores_table, self.metrics_table,
                 self.methods_segmentation, self.methods_table, *self.heatmaps.values()]
        return [n.GetID() for n in nodes if n is not None]

    @classmethod
    def from_segmentation(cls, segmentation_node) -> Optional["ResultNodes"]:
        """The result a segmentation node belongs to (None for other segmentations)."""
        if segmentation_node is None or segmentation_node.GetAttribute(ROLE_ATTRIBUTE) != ROLE_MTV:
            return None
        pet = segmentation_node.GetNodeReference(REF_PET)
        if pet is None:
            return None
        heatmaps = {}
        for scale in SCALES:
            node = segmentation_node.GetNodeReference(REF_HEATMAP + scale)
            if node is not None:
                heatmaps[scale] = node
        try:
            segment_id = scene_io.segment_id_by_name(segmentation_node, "MTV")
        except ValueError:
            return None
        model = segmentation_node.GetAttribute(ATTR_MODEL)
        analysis = segmentation_node.GetAttribute(ATTR_ANALYSIS_FOLDER)
        scene = segmentation_node.GetScene()
        folder_item = 0
        if scene is not None:
            import slicer

            sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
            item = sh.GetItemByDataNode(segmentation_node) if sh else 0
            folder_item = sh.GetItemParent(item) if item else 0
        return cls(segmentation=segmentation_node, segment_id=segment_id, pet=pet,
                   labelmap=segmentation_node.GetNodeReference(REF_LABELMAP), heatmaps=heatmaps,
                   scores_table=segmentation_node.GetNodeReference(REF_SCORES),
                   metrics_table=segmentation_node.GetNodeReference(REF_METRICS),
                   run_folder=Path(segmentation_node.GetAttribute(ATTR_RUN_FOLDER) or ""),
                   input_path=Path(segmentation_node.GetAttribute(ATTR_INPUT) or ""),
                   result_folder=Path(segmentation_node.GetAttribute(ATTR_RESULT_FOLDER) or ""),
                   model_folder=Path(model) if model else None,
                   from_dicom=segmentation_node.GetAttribute(ATTR_FROM_DICOM) == "true",
                   folder_item=folder_item,
                   methods_segmentation=segmentation_node.GetNodeReference(REF_METHODS_SEGMENTATION),
                   methods_table=segmentation_node.GetNodeReference(REF_METHODS_TABLE),
                   analysis_folder=Path(analysis) if analysis else None)


def results_for_pet(scene, pet_node) -> list[ResultNodes]:
    """All analyses of ``pet_node`` in the scene, oldest first."""
    found = []
    for node in scene_io.nodes_by_class(scene, "vtkMRMLSegmentationNode"):
        result = ResultNodes.from_segmentation(node)
        if result is not None and (pet_node is None or result.pet.GetID() == pet_node.GetID()):
            found.append(result)
    return found


# --------------------------------------------------------------------------- import
def import_results(scene, out_dir: str | Path, pet_node, run_folder: str | Path, input_path: str | Path,
                   model_folder: Optional[str | Path] = None, from_dicom: bool = False) -> ResultNodes:
    """Create the result nodes of a finished ``analyze`` run in ``out_dir``. Always new nodes: an
    earlier (possibly edited) result is never touched."""
    import slicer

    out_dir = Path(out_dir)
    result = json.loads((out_dir / "result.json").read_text())
    scene_io.ensure_segmentation_converters()
    number = len(results_for_pet(scene, pet_node)) + 1
    base = f"{pet_node.GetName()} MTLRadiomics {number}"
    transform_id = pet_node.GetTransformNodeID()

    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{base} MTV")
    scene_io.read_segmentation(out_dir / "segmentation.seg.nrrd", segmentation)
    segmentation.SetName(f"{base} MTV")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(pet_node)
    segmentation.CreateDefaultDisplayNodes()
    segment_id = scene_io.segment_id_by_name(segmentation, "MTV")

    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{base} MTV labelmap")
    scene_io.read_volume(out_dir / "mtv.nii.gz", labelmap)
    labelmap.CreateDefaultDisplayNodes()

    heatmaps = {}
    for scale in result.get("explanation", {}).get("scales", SCALES):     # none when the scores were withheld
        path = out_dir / f"gradcam_{scale}.nrrd"
        if path.exists():
            heatmaps[scale] = _new_heatmap(scene, base, scale, path)

    scores_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{base} scores")
    fill_scores_table(scores_table, result["scores"])
    metrics_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{base} PET metrics")
    fill_metrics_table(metrics_table, result["metrics"], source="engine")

    methods_segmentation = None
    if (out_dir / "mtv_methods.seg.nrrd").is_file():
        methods_segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{base} MTV by method")
        scene_io.read_segmentation(out_dir / "mtv_methods.seg.nrrd", methods_segmentation)
        methods_segmentation.SetName(f"{base} MTV by method")
        methods_segmentation.SetReferenceImageGeometryParameterFromVolumeNode(pet_node)
        methods_segmentation.SetAttribute(ROLE_ATTRIBUTE, ROLE_MTV_METHODS)
        methods_segmentation.CreateDefaultDisplayNodes()
        methods_segmentation.GetDisplayNode().SetVisibility(False)       # for comparison, on request
    methods_table = None
    mtv = result.get("mtv") or {}
    if mtv.get("methods"):
        methods_table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{base} MTV methods")
        fill_methods_table(methods_table, mtv)

    nodes = [segmentation, labelmap, *heatmaps.values(), scores_table, metrics_table,
             *[n for n in (methods_segmentation, methods_table) if n is not None]]
    if transform_id:
        for node in nodes:
            if hasattr(node, "SetAndObserveTransformNodeID"):
                node.SetAndObserveTransformNodeID(transform_id)

    segmentation.SetAttribute(ROLE_ATTRIBUTE, ROLE_MTV)
    segmentation.SetAttribute(ATTR_RUN_FOLDER, str(run_folder))
    segmentation.SetAttribute(ATTR_INPUT, str(input_path))
    segmentation.SetAttribute(ATTR_RESULT_FOLDER, str(out_dir))
    segmentation.SetAttribute(ATTR_ANALYSIS_FOLDER, str(out_dir))
    segmentation.SetAttribute(ATTR_BASE_NAME, base)
    segmentation.SetAttribute(ATTR_FROM_DICOM, "true" if from_dicom else "false")
    if model_folder:
        segmentation.SetAttribute(ATTR_MODEL, str(model_folder))
    segmentation.SetNodeReferenceID(REF_PET, pet_node.GetID())
    segmentation.SetNodeReferenceID(REF_LABELMAP, labelmap.GetID())
    segmentation.SetNodeReferenceID(REF_SCORES, scores_table.GetID())
    segmentation.SetNodeReferenceID(REF_METRICS, metrics_table.GetID())
    for scale, node in heatmaps.items():
        segmentation.SetNodeReferenceID(REF_HEATMAP + scale, node.GetID())
    if methods_segmentation is not None:
        segmentation.SetNodeReferenceID(REF_METHODS_SEGMENTATION, methods_segmentation.GetID())
    if methods_table is not None:
        segmentation.SetNodeReferenceID(REF_METHODS_TABLE, methods_table.GetID())

    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder_item = _result_folder_item(sh, pet_node, base)
    for node in nodes:
        _place(sh, node, folder_item)

    return ResultNodes(segmentation=segmentation, segment_id=segment_id, pet=pet_node, labelmap=labelmap,
                       heatmaps=heatmaps, scores_table=scores_table, metrics_table=metrics_table,
                       run_folder=Path(run_folder), input_path=Path(input_path), result_folder=out_dir,
                       model_folder=Path(model_folder) if model_folder else None, from_dicom=from_dicom,
                       folder_item=folder_item, methods_segmentation=methods_segmentation,
                       methods_table=methods_table, analysis_folder=out_dir)


def _new_heatmap(scene, base: str, scale: str, path: Path):
    """A Grad-CAM volume node read from ``path``, displayed with the module's colour map."""
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{base} Grad-CAM {scale}")
    scene_io.read_volume(path, node)
    node.SetAttribute("MTLRadiomics.Scale", scale)
    setup_heatmap_display(node, heatmap_color_node(scene))
    return node


def update_from_rescore(result: ResultNodes, out_dir: str | Path) -> dict:
    """Bring a finished ``rescore`` run into an existing result: scores, metrics, the scored MTV
    labelmap, the heatmaps (new nodes when the analysis had none because its scores were withheld;
    removed when the rescore's scores are withheld) and the methods table's Dice with the scored MTV.
    The (edited) segmentation and the MTV-by-method segmentation are left exactly as they are."""
    out_dir = Path(out_dir)
    data = json.loads((out_dir / "result.json").read_text())
    fill_scores_table(result.scores_table, data["scores"])
    fill_metrics_table(result.metrics_table, data["metrics"], source="engine")
    if result.labelmap is not None and (out_dir / "mtv.nii.gz").exists():
        scene_io.read_volume(out_dir / "mtv.nii.gz", result.labelmap)
    _update_heatmaps(result, out_dir, data.get("explanation", {}).get("scales", []))
    result.segmentation.SetAttribute(ATTR_RESULT_FOLDER, str(out_dir))
    if not result.segmentation.GetAttribute(ATTR_ANALYSIS_FOLDER):
        result.segmentation.SetAttribute(ATTR_ANALYSIS_FOLDER, str(result.result_folder))
        result.analysis_folder = result.result_folder
    result.result_folder = out_dir
    if result.methods_table is not None:
        scored = scored_mask(result)
        if scored is not None:
            update_methods_dice(result, scored, label="edited")
    return data


def _update_heatmaps(result: ResultNodes, out_dir: Path, scales) -> None:
    """The result's heatmap nodes follow the run in ``out_dir``: read again, added, or removed."""
    import slicer

    scene = result.segmentation.GetScene()
    scales = [s for s in scales if (out_dir / f"gradcam_{s}.nrrd").exists()]
    for scale in [s for s in result.heatmaps if s not in scales]:    # withheld now: no stale heatmaps
        node = result.heatmaps.pop(scale)
        result.segmentation.RemoveNodeReferenceIDs(REF_HEATMAP + scale)
        if scene is not None and node.GetScene() is scene:
            _remove_node(scene, node)
    base = (result.segmentation.GetAttribute(ATTR_BASE_NAME)
            or result.segmentation.GetName().removesuffix(" MTV"))
    added = []
    for scale in scales:
        path = out_dir / f"gradcam_{scale}.nrrd"
        if scale in result.heatmaps:
            scene_io.read_volume(path, result.heatmaps[scale])
            continue
        node = _new_heatmap(scene, base, scale, path)
        transform_id = result.pet.GetTransformNodeID()
        if transform_id:
            node.SetAndObserveTransformNodeID(transform_id)
        result.segmentation.SetNodeReferenceID(REF_HEATMAP + scale, node.GetID())
        result.heatmaps[scale] = node
        added.append(node)
    if added:
        sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
        folder = result.folder_item or sh.GetItemParent(sh.GetItemByDataNode(result.segmentation))
        for node in added:
            _place(sh, node, folder or sh.GetSceneItemID())


def _remove_node(scene, node) -> None:
    """A volume node and its display and storage nodes."""
    helpers = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
    helpers += [node.GetNthStorageNode(i) for i in range(node.GetNumberOfStorageNodes())]
    scene.RemoveNode(node)
    for helper in helpers:
        if helper is not None and helper.GetScene() is scene:
            scene.RemoveNode(helper)


def _result_folder_item(sh, pet_node, name: str) -> int:
    """A new subject hierarchy folder beside the PET: under its study when it has one."""
    pet_item = sh.GetItemByDataNode(pet_node)
    if not pet_item:
        pet_item = sh.CreateItem(sh.GetSceneItemID(), pet_node)
    parent = sh.GetItemParent(pet_item) or sh.GetSceneItemID()
    return sh.CreateFolderItem(parent, name)


def _place(sh, node, parent_item: int) -> None:
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent_item)
    else:
        sh.CreateItem(parent_item, node)


# --------------------------------------------------------------------------- tables
def _column(array_class: str, name: str, values, cast):
    import vtk

    column = getattr(vtk, array_class)()
    column.SetName(name)
    for value in values:
        column.InsertNextValue(cast(value))
    return column


def _string_column(name: str, values: list[str]):
    return _column("vtkStringArray", name, values, str)


def _double_column(name: str, values: list[float]):
    return _column("vtkDoubleArray", name, values, float)


def _int_column(name: str, values: list[int]):
    return _column("vtkIntArray", name, values, int)


def _replace_columns(table_node, columns) -> None:
    table = table_node.GetTable()
    while table.GetNumberOfColumns():
        table.RemoveColumn(0)
    for column in columns:
        table.AddColumn(column)
        table_node.SetColumnTitle(column.GetName(), column.GetName())
    table_node.SetUseColumnTitleAsColumnHeader(True)
    table_node.Modified()


def outcome_label(kind: str, meaning: str = "") -> str:
    """The outcome row's label: the model card's meaning for a binary outcome other than response
    (as the engine's report says it; the module does not import the engine)."""
    if kind != "binary":
        return "Survival risk (log relative hazard)"
    meaning = (meaning or "").strip()
    if not meaning or "response" in meaning.lower():
        return "Response probability"
    return meaning[0].upper() + meaning[1:]


def fill_scores_table(table_node, scores: dict) -> None:
    """Rows: the outcome score, a survival risk, then one probability per pathology class; mean, SD,
    samples. Withheld scores (an implausible MTV) give one row that says so, with NaN values; scores
    outside the model's training domain are marked in every row's name and a first row says so."""
    withheld = scores.get("withheld", "")
    nothing = {"mean": float("nan"), "sd": float("nan"), "samples": 0}
    if withheld or not scores.get("outcome") and not scores.get("pathology") and not scores.get("survival"):
        withheld = withheld or "the model gives no scores"
        rows = [(f"Scores withheld: {withheld}", nothing)]
        values = ["withheld"]
    else:
        outside = scores.get("domain") == "outside"
        mark = " [outside training domain]" if outside else ""
        rows = [(outcome_label(scores.get("outcome_kind", "binary"), scores.get("outcome_meaning", "")) + mark, scores["outcome"])] if scores.get("outcome") else []
        if scores.get("survival"):
            rows.append(("Survival risk (log relative hazard)" + mark, scores["survival"]))
        rows += [(f"P({name})" + mark, estimate) for name, estimate in scores.get("pathology", {}).items()]
        values = [f"{e['mean']:.3f} ± {e['sd']:.3f}" for _, e in rows]
        if scores.get("pathology_note"):
            rows.append((f"Pathology {scores['pathology_note']}", nothing))
            values.append("not shown")
        if outside:
            rows.insert(0, ("OUTSIDE THE MODEL'S TRAINING DOMAIN: read these scores with care", nothing))
            values.insert(0, "outside")
    source = scores.get("mask_source", "predicted")
    _replace_columns(table_node, [
        _string_column("Score", [name for name, _ in rows]),
        _string_column("Value", values),
        _double_column("Mean", [e["mean"] for _, e in rows]),
        _double_column("SD", [e["sd"] for _, e in rows]),
        _int_column("Samples", [e.get("samples", 0) for _, e in rows]),
        _string_column("MTV", [source] * len(rows)),
    ])
    table_node.SetAttribute(ATTR_SCORES_WITHHELD, withheld)
    table_node.SetAttribute("MTLRadiomics.Domain", str(scores.get("domain", "")))
    table_node.SetColumnDescription("Value", "mean ± standard deviation over the uncertainty samples")
    table_node.SetColumnDescription("MTV", "scored with the predicted or the physician-edited MTV")
    table_node.SetAttribute("MTLRadiomics.MaskSource", source)


def fill_metrics_table(table_node, metrics: dict, source: str) -> None:
    """Rows SUVmax, SUVpeak, SUVmean, MTV, TLG with units; ``source`` 'engine' or 'live'."""
    _replace_columns(table_node, [
        _string_column("Metric", [label for _, label, _ in METRIC_ROWS]),
        _double_column("Value", [metrics[key] for key, _, _ in METRIC_ROWS]),
        _string_column("Unit", [unit for _, _, unit in METRIC_ROWS]),
    ])
    table_node.SetColumnDescription("Value", "SUVpeak: highest mean SUV in a 1 ml sphere; TLG = SUVmean x MTV")
    table_node.SetAttribute(ATTR_METRICS_SOURCE, source)
    table_node.SetAttribute("MTLRadiomics.Voxels", str(int(metrics.get("voxels", 0))))


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def fill_methods_table(table_node, mtv: dict) -> None:
    """One row per MTV method (result.json's "mtv"): label, whether it is the scored one, whether it
    could run, MTV, SUVmean, SUVmax, Dice with the scored MTV, and why it is unavailable or empty."""
    methods = mtv.get("methods", {})
    chosen = mtv.get("method", "")
    rows = list(methods.items())

    def metric(entry, key):
        return _number((entry.get("metrics") or {}).get(key)) if entry.get("available") else float("nan")

    _replace_columns(table_node, [
        _string_column("Method", [e.get("label", name) for name, e in rows]),
        _string_column("Scored", ["yes" if name == chosen else "" for name, _ in rows]),
        _string_column("Available", ["yes" if e.get("available") else "no" for _, e in rows]),
        _double_column("MTV (ml)", [metric(e, "mtv_ml") for _, e in rows]),
        _double_column("SUVmean", [metric(e, "suv_mean") for _, e in rows]),
        _double_column("SUVmax", [metric(e, "suv_max") for _, e in rows]),
        _double_column("Dice with scored MTV", [_number(e.get("dice_with_chosen")) if e.get("available")
                                                 else float("nan") for _, e in rows]),
        _string_column("Reason", [str(e.get("reason", "") or "") for _, e in rows]),
    ])
    table_node.SetAttribute(ATTR_SCORED_MTV, chosen)
    table_node.SetAttribute("MTLRadiomics.FillHoles", "true" if mtv.get("fill_holes") else "false")
    table_node.SetColumnDescription("Scored", "the MTV method the scores and the PET metrics use")
    table_node.SetColumnDescription("Dice with scored MTV", "overlap with the MTV the current scores use (1: same)")
    table_node.SetColumnDescription("Reason", "why a method could not run or found nothing")
    table_node.SetColumnUnitLabel("MTV (ml)", "ml")
    table_node.SetColumnUnitLabel("SUVmean", "g/ml")
    table_node.SetColumnUnitLabel("SUVmax", "g/ml")


def methods_from_table(table_node) -> list[dict]:
    """The rows of a methods table as dicts (method label, scored, available, mtv_ml, suv_mean,
    suv_max, dice, reason)."""
    table = table_node.GetTable()
    column = {name: table.GetColumnByName(name) for name in METHOD_COLUMNS}
    rows = []
    for i in range(table.GetNumberOfRows()):
        rows.append({"method": column["Method"].GetValue(i), "scored": column["Scored"].GetValue(i) == "yes",
                     "available": column["Available"].GetValue(i) == "yes",
                     "mtv_ml": float(column["MTV (ml)"].GetValue(i)),
                     "suv_mean": float(column["SUVmean"].GetValue(i)),
                     "suv_max": float(column["SUVmax"].GetValue(i)),
                     "dice": float(column["Dice with scored MTV"].GetValue(i)),
                     "reason": column["Reason"].GetValue(i)})
    return rows


def method_masks(result: ResultNodes) -> dict[str, np.ndarray]:
    """Each segment of the MTV-by-method segmentation (named by the method's label) as a uint8
    (z, y, x) mask on the engine's grid."""
    node = result.methods_segmentation
    if node is None:
        return {}
    reference = result.labelmap if result.labelmap is not None else result.pet
    segmentation = node.GetSegmentation()
    masks = {}
    for i in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(i)
        masks[segmentation.GetSegment(segment_id).GetName()] = scene_io.segment_array(node, segment_id, reference)
    return masks


def update_methods_dice(result: ResultNodes, scored: np.ndarray, label: str) -> None:
    """The methods table's Dice column against ``scored`` (the MTV the scores now use, e.g. an
    edited one); ``label`` names it ("edited"): no method is then marked as scored."""
    table_node = result.methods_table
    masks = method_masks(result)
    table = table_node.GetTable()
    names, dice = table.GetColumnByName("Method"), table.GetColumnByName("Dice with scored MTV")
    scored_column = table.GetColumnByName("Scored")
    reference = scored > 0
    for i in range(table.GetNumberOfRows()):
        mask = masks.get(names.GetValue(i))
        if mask is not None:
            total = int(mask.sum()) + int(reference.sum())
            dice.SetValue(i, float("nan") if total == 0 else 2.0 * float((mask.astype(bool) & reference).sum()) / total)
        scored_column.SetValue(i, "")
    table_node.SetAttribute(ATTR_SCORED_MTV, label)
    table.Modified()
    table_node.Modified()


def scores_withheld(result: ResultNodes) -> str:
    """Why the result's current scores were withheld, or "" (from the scores table, so it holds after
    a scene is reopened)."""
    if result.scores_table is None:
        return ""
    return result.scores_table.GetAttribute(ATTR_SCORES_WITHHELD) or ""


def analysis_mtv(result: ResultNodes) -> dict:
    """result.json's "mtv" of the analysis ({} for results made before MTV methods existed)."""
    try:
        return dict(result.analysis_json.get("mtv") or {})
    except (OSError, ValueError):
        return {}


def metrics_from_table(table_node) -> dict[str, float]:
    table = table_node.GetTable()
    names = table.GetColumnByName("Metric")
    values = table.GetColumnByName("Value")
    by_label = {names.GetValue(i): values.GetValue(i) for i in range(table.GetNumberOfRows())}
    return {key: float(by_label[label]) for key, label, _ in METRIC_ROWS if label in by_label}


def scores_from_table(table_node) -> list[dict]:
    table = table_node.GetTable()
    columns = {table.GetColumnName(c): table.GetColumn(c) for c in range(table.GetNumberOfColumns())}
    rows = []
    for i in range(table.GetNumberOfRows()):
        rows.append({"score": columns["Score"].GetValue(i), "mean": float(columns["Mean"].GetValue(i)),
                     "sd": float(columns["SD"].GetValue(i)), "samples": int(columns["Samples"].GetValue(i)),
                     "mtv": columns["MTV"].GetValue(i)})
    return rows


# --------------------------------------------------------------------------- heatmap display
def heatmap_color_node(scene):
    """The module's Grad-CAM colour map (blue, cyan, green, yellow, red over 0-1), one per scene."""
    import slicer

    node = scene.GetSingletonNode(HEATMAP_COLOR_TAG, "vtkMRMLProceduralColorNode")
    if node is not None:
        return node
    node = slicer.vtkMRMLProceduralColorNode()
    node.SetName("MTLRadiomics Grad-CAM")
    node.SetSingletonTag(HEATMAP_COLOR_TAG)
    node.SetAttribute("Category", "MTLRadiomics")
    function = node.GetColorTransferFunction()
    function.RemoveAllPoints()
    for value, rgb in ((0.0, (0.0, 0.0, 1.0)), (0.25, (0.0, 1.0, 1.0)), (0.5, (0.0, 1.0, 0.0)),
                       (0.75, (1.0, 1.0, 0.0)), (1.0, (1.0, 0.0, 0.0))):
        function.AddRGBPoint(value, *rgb)
    scene.AddNode(node)
    return scene.GetSingletonNode(HEATMAP_COLOR_TAG, "vtkMRMLProceduralColorNode") or node


def setup_heatmap_display(heatmap_node, color_node) -> None:
    """Colour map over 0-1; values below HEATMAP_THRESHOLD transparent so the PET shows through."""
    if heatmap_node.GetDisplayNode() is None:
        heatmap_node.CreateDefaultDisplayNodes()
    display = heatmap_node.GetDisplayNode()
    display.SetAndObserveColorNodeID(color_node.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetLowerThreshold(HEATMAP_THRESHOLD)
    display.SetUpperThreshold(1.0)
    display.ApplyThresholdOn()
    display.SetInterpolate(True)


def show_heatmap(scene, result: ResultNodes, scale: str, opacity: float = DEFAULT_OPACITY) -> None:
    """The PET as background and the heatmap of ``scale`` as foreground in every slice view."""
    node = result.heatmaps.get(scale)
    if node is None:
        raise ValueError(f"this result has no heatmap for the scale {scale}")
    for composite in scene_io.nodes_by_class(scene, "vtkMRMLSliceCompositeNode"):
        composite.SetBackgroundVolumeID(result.pet.GetID())
        composite.SetForegroundVolumeID(node.GetID())
        composite.SetForegroundOpacity(float(min(max(opacity, 0.0), 1.0)))


def hide_heatmaps(scene, result: ResultNodes) -> None:
    """No Grad-CAM heatmap over the PET (a result without heatmaps is shown): the slice views keep
    the PET as background and drop any heatmap foreground."""
    for composite in scene_io.nodes_by_class(scene, "vtkMRMLSliceCompositeNode"):
        foreground_id = composite.GetForegroundVolumeID()
        foreground = scene.GetNodeByID(foreground_id) if foreground_id else None
        if foreground is not None and foreground.GetAttribute("MTLRadiomics.Scale"):
            composite.SetForegroundVolumeID(None)
        composite.SetBackgroundVolumeID(result.pet.GetID())


def set_heatmap_opacity(scene, opacity: float) -> None:
    for composite in scene_io.nodes_by_class(scene, "vtkMRMLSliceCompositeNode"):
        composite.SetForegroundOpacity(float(min(max(opacity, 0.0), 1.0)))


def scored_mask(result: ResultNodes) -> Optional[np.ndarray]:
    """The MTV the current scores were computed from (the labelmap), or None."""
    if result.labelmap is None or result.labelmap.GetImageData() is None:
        return None
    return (scene_io.array_from_volume(result.labelmap) > 0).astype(np.uint8)


def current_mask(result: ResultNodes) -> np.ndarray:
    """The MTV segment now (after any edits), on the engine's grid."""
    reference = result.labelmap if result.labelmap is not None else result.pet
    return scene_io.segment_array(result.segmentation, result.segment_id, reference)


def edited_since_scoring(result: ResultNodes) -> bool:
    scored = scored_mask(result)
    return scored is None or not np.array_equal(scored, current_mask(result))


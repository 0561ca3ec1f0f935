"""Logic of the MTLRadiomics Slicer module, importable without Qt (tested headless on real MRML).

- engine_process: the engine's command line as a background process (start, poll, cancel).
- warm_engine: one long-lived engine worker (``mtl-radiomics serve``) reused by every run.
- scene_io: voxels between MRML nodes and files with exact geometry (RAS in MRML, LPS in files).
- pet_input: what the engine is given (DICOM files or NRRD), SUV check, lesion point or box.
- results: engine outputs as nodes (segmentation, labelmap, heatmaps, tables, every MTV method's MTV)
  and heatmap display.
- models: the installed models (model cards under the models root), listed without the engine.
- live_metrics: PET metrics recomputed when the MTV is edited.
- dependencies: first-use installation of the engine's Python packages.
- parameters: the module's parameter node (parameterNodeWrapper in Slicer).
- sample_data: the synthetic sample PET for Slicer's Sample Data module.
- slice_views: a result drawn by Slicer's slice pipeline (PET, heatmap, MTV outline) as RGB arrays or PNG.
- analysis_logic: the logic class tying these together.
"""

from MTLRadiomicsModuleLogic.analysis_logic import (AnalysisError, AnalysisLogic, AnalysisRequest, EngineJob,
                                              ExportSummary)
from MTLRadiomicsModuleLogic.engine_process import EngineProcess, PollResult, ProcessState, ProgressEvent
from MTLRadiomicsModuleLogic.results import SCALE_LABELS, SCALES, ResultNodes

__all__ = ["AnalysisError", "AnalysisLogic", "AnalysisRequest", "EngineJob", "ExportSummary", "EngineProcess",
           "PollResult", "ProcessState", "ProgressEvent", "ResultNodes", "SCALES", "SCALE_LABELS"]

"""The module's logic: from the user's choices to an engine run in the background, and from the
engine's files to nodes in the scene. It works on any vtkMRMLScene, so it is tested headless
against real MRML; the Slicer module adds the application's scene, Python and DICOM database.

A run goes: ``start_analysis`` (prepare the input, start the process) -> ``poll`` (progress, from a
timer) -> ``finish`` (import the outputs as new nodes) or ``cancel`` (kill the process, delete the
run folder; the scene is not touched before ``finish``). The engine runs in a warm worker
(``warm_engine``: started with the first run, reused after, killed by cancel and started again by
the next run), or, when that worker cannot start, in a process of its own per run. No Qt import.
"""

from __future__ import annotations

import csv
import itertools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from MTLRadiomicsModuleLogic import dependencies, models, pet_input, results, scene_io
from MTLRadiomicsModuleLogic.engine_process import EngineProcess, PollResult, ProcessState, engine_command
from MTLRadiomicsModuleLogic.live_metrics import LiveMetrics
from MTLRadiomicsModuleLogic.parameters import MTV_METHOD_LABELS
from MTLRadiomicsModuleLogic.results import ResultNodes
from MTLRadiomicsModuleLogic.warm_engine import WarmEngine, WarmRun, WarmStartError


REPORT_TIMEOUT_S = 600.0                       # the longest export waits for the engine's report


class AnalysisError(RuntimeError):
    """Something the user has to fix; the message says what."""


@dataclass
class AnalysisRequest:
    """The user's choices for one analysis."""

    pet_node: object
    lesion_node: object = None                 # markups point list or ROI; None: automatic
    model_folder: Optional[Path] = None        # a model folder; None: ``model``, else the default model
    model: Optional[str] = None                # an installed model by folder or card name; None: the default
    mtv_method: str = "network"                # the MTV the scores use (MTV_METHOD_LABELS); analyze only
    fill_holes: bool = False                   # fill holes enclosed by the MTV (necrotic cores); analyze only
    device: str = "auto"                       # auto, cuda or cpu
    explain: str = "outcome"                   # outcome or segmentation
    samples: int = 10
    report: bool = True                        # False: no report with the run; export writes it (``export``)


@dataclass
class EngineJob:
    """One engine run in the background."""

    kind: str                                  # "analyze", "rescore" or "report"
    process: EngineProcess | WarmRun
    run_folder: Path
    out_dir: Path
    input_path: Path
    pet_node_id: str
    model_folder: Path
    from_dicom: bool = False
    result: Optional[ResultNodes] = None       # the result a rescore updates
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    command: list[str] = field(default_factory=list)      # the engine's command line, for a process of its own
    cwd: Optional[Path] = None

    @property
    def state(self) -> ProcessState:
        return self.process.state


@dataclass
class ExportSummary:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class AnalysisLogic:
    """Analyze, rescore, live metrics, heatmap display and export on one MRML scene.

    python: the interpreter for the engine (PythonSlicer in Slicer, sys.executable in tests).
    engine_root: the folder holding the MTLRadiomicsLib package.
    env: environment of the engine process (None: this process's).
    dicom_lookup: SOP instance UID -> file, to hand DICOM-loaded volumes to the engine as DICOM.
    temp_root: where run folders are created.
    bundled_model: the model used when the request names none (the default model).
    device_status: how the GPU is checked when the user asks for it.
    models_root: the folder of installed models (None: where the engine looks, see models.models_root).
    engine_only_folder: pydicom 3 and highdicom for the engine process only (see dependencies), put
    on the engine's path when it holds them.
    warm_engine: run the engine in one long-lived worker (``mtl-radiomics serve``) that keeps the
    model loaded; False: a process of its own per run.
    """

    def __init__(self, scene, python: str, engine_root: str | Path, env: Optional[dict] = None,
                 dicom_lookup: Optional[pet_input.DicomLookup] = None, temp_root: Optional[str | Path] = None,
                 bundled_model: Optional[str | Path] = None,
                 device_status: Callable[[], dependencies.DeviceStatus] = dependencies.cuda_status,
                 models_root: Optional[str | Path] = None,
                 engine_only_folder: Optional[str | Path] = None, warm_engine: bool = True):
        self.scene = scene
        self.python = str(python)
        self.engine_root = Path(engine_root)
        self.env = env
        self.dicom_lookup = dicom_lookup
        self.temp_root = Path(temp_root) if temp_root else Path(tempfile.gettempdir()) / "MTLRadiomics"
        self.bundled_model = Path(bundled_model) if bundled_model else None
        self.device_status = device_status
        self._models_root = Path(models_root) if models_root else None
        self.engine_only_folder = Path(engine_only_folder) if engine_only_folder else None
        self.live_metrics = LiveMetrics()
        self.use_warm_engine = warm_engine
        self.warm_engine_note = ""                 # why runs went to processes of their own
        self._warm: Optional[WarmEngine] = None
        self._pet_checks: dict[str, tuple[tuple, pet_input.SuvCheck]] = {}
        self._counter = itertools.count(1)
        scene_io.ensure_segmentation_converters()

    # ------------------------------------------------------------------ inputs
    def check_pet(self, pet_node) -> pet_input.SuvCheck:
        """Whether ``pet_node`` can be analysed, and why not. Computed once per state of the node
        (its voxels, geometry and DICOM instances): the widget asks on every refresh of its
        buttons, and the check reads the DICOM header and scans the whole volume. Never raises: a
        volume that cannot be checked is not usable, and the message says why."""
        if pet_node is None:
            return pet_input.SuvCheck(False, "not-suv", "Select a PET volume.")
        key = _pet_state(pet_node)
        cached = self._pet_checks.get(pet_node.GetID() or str(id(pet_node)))
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            check = pet_input.check_suv(pet_node, pet_input.dicom_files(pet_node, self.dicom_lookup))
        except Exception as error:  # a damaged DICOM file or database: pydicom and SQL raise many kinds
            check = pet_input.SuvCheck(False, "not-suv", f"This volume cannot be checked: {error}")
        self._pet_checks[pet_node.GetID() or str(id(pet_node))] = (key, check)
        return check

    def models_root(self) -> Optional[Path]:
        """The folder of installed models the engine would use."""
        if self._models_root is not None:
            return self._models_root
        fallback = self.bundled_model.parent if self.bundled_model else None
        return models.models_root(self.engine_root, self.env, fallback)

    def installed_models(self) -> list[models.InstalledModel]:
        """The installed models (folders with a model card under the models root), the default first.
        Reads the model cards only: no engine or PyTorch import."""
        return models.installed_models(self.models_root(), self.bundled_model)

    def model_folder(self, request_folder: Optional[str | Path], model: Optional[str] = None) -> Path:
        """The model folder of a request: a folder chosen by path, else an installed model by name,
        else the default (bundled) model."""
        if not request_folder and model:
            installed = self.installed_models()
            found = models.find_model(str(model), installed)
            if found is None:
                names = ", ".join(m.key if m.key == m.name else f"{m.key} ({m.name})" for m in installed) or "none"
                raise AnalysisError(f"No installed model is called {model!r} (installed: {names}); "
                                    "choose another model or a model folder.")
            return found.folder
        if request_folder:
            folder = Path(request_folder)
            if not (folder / "model.json").is_file():
                raise AnalysisError(f"{folder} is not a model folder: it needs model.json (the model card) "
                                    "and model.safetensors")
            return folder
        if self.bundled_model is None or not (self.bundled_model / "model.json").is_file():
            raise AnalysisError("The bundled model was not found"
                                + (f" in {self.bundled_model}" if self.bundled_model else "")
                                + "; choose a model folder.")
        return self.bundled_model

    # ------------------------------------------------------------------ runs
    def _command(self, arguments: list[str]) -> list[str]:
        folders = [self.engine_only_folder] if dependencies.engine_only_ready(self.engine_only_folder) else []
        return engine_command(self.python, self.engine_root, arguments, package_folders=folders)

    def _run(self, arguments: list[str], cwd: Path) -> tuple[EngineProcess | WarmRun, list[str]]:
        """Start ``mtl-radiomics ARGUMENTS`` on the warm worker, else in a process of its own; returns
        the run and the command line (kept for a fallback)."""
        command = self._command(arguments)
        if self.use_warm_engine and not self.warm_engine_note:
            try:
                run = self.warm_engine().submit(arguments)
                run.command = command
                return run, command
            except WarmStartError as error:
                self._warm_failed(str(error))
            except OSError as error:             # no process at all (the interpreter is missing, ...)
                self._warm_failed(f"the warm engine could not start ({error})")
        return EngineProcess(command, env=self.env, cwd=cwd).start(), command

    def warm_engine(self) -> WarmEngine:
        """The warm worker's keeper (created on first use; the worker starts with the first run)."""
        if self._warm is None:
            self._warm = WarmEngine(lambda: self._command(["serve"]), env=self.env)
        return self._warm

    def _warm_failed(self, reason: str) -> None:
        self.warm_engine_note = reason + "; each analysis now runs in a process of its own"
        if self._warm is not None:
            self._warm.stop()

    def _fall_back(self, job: EngineJob) -> Optional[str]:
        """When the warm worker could not start, run ``job`` in a process of its own; the note."""
        if not (isinstance(job.process, WarmRun) and job.process.startup_failed):
            return None
        self._warm_failed(job.process.error_message())
        job.process = EngineProcess(job.command, env=self.env, cwd=job.cwd).start()
        job.notes.append(self.warm_engine_note)
        return self.warm_engine_note

    def stop_engine(self) -> None:
        """End the warm worker (the module is closed); a later run starts a new one."""
        if self._warm is not None:
            self._warm.stop()

    def _new_run_folder(self) -> Path:
        self.temp_root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter)}-",
                                     dir=self.temp_root))

    def _options(self, request: AnalysisRequest, model: Path, out_dir: Path,
                 mtv: bool = False) -> tuple[list[str], list[str]]:
        """Engine options; ``mtv``: add the MTV method and hole filling (``analyze`` only: ``rescore``
        scores the edited MTV as it is)."""
        device, note = dependencies.device_argument(request.device, self.device_status)
        options = ["--out", str(out_dir), "--model", str(model), "--device", device,
                   "--explain", request.explain, "--samples", str(int(request.samples)), "--progress", "json"]
        if mtv:
            options += ["--mtv-method", request.mtv_method]
            if request.fill_holes:
                options.append("--fill-holes")
        if not request.report:
            options.append("--no-report")
        return options, [note] if note else []

    def start_analysis(self, request: AnalysisRequest) -> EngineJob:
        """Prepare the input and start ``mtl-radiomics analyze`` in the background."""
        pet = request.pet_node
        check = self.check_pet(pet)
        if not check.usable:
            raise AnalysisError(check.message)
        if request.samples < 2:
            raise AnalysisError("The uncertainty needs at least 2 samples.")
        if request.explain not in ("outcome", "segmentation"):
            raise AnalysisError(f"unknown explanation target {request.explain}")
        if request.mtv_method not in MTV_METHOD_LABELS:
            raise AnalysisError(f"Unknown MTV method {request.mtv_method!r}; choose one of "
                                f"{', '.join(MTV_METHOD_LABELS)}.")
        model = self.model_folder(request.model_folder, request.model)
        try:
            location = pet_input.lesion_arguments(request.lesion_node, pet)
        except ValueError as error:
            raise AnalysisError(str(error)[:1].upper() + str(error)[1:] + ".") from None
        files = pet_input.dicom_files(pet, self.dicom_lookup)
        run_folder = self._new_run_folder()
        try:
            input_path = pet_input.prepare_engine_input(pet, run_folder / "input", files)
            out_dir = run_folder / "analysis"
            options, notes = self._options(request, model, out_dir, mtv=True)
            process, command = self._run(["analyze", str(input_path), *location, *options], run_folder)
        except BaseException:
            shutil.rmtree(run_folder, ignore_errors=True)
            raise
        return EngineJob("analyze", process, run_folder, out_dir, input_path, pet.GetID(), model,
                         from_dicom=bool(files), notes=notes, command=command, cwd=run_folder)

    def start_rescore(self, result: ResultNodes, request: Optional[AnalysisRequest] = None) -> EngineJob:
        """Write the (edited) MTV segment on the PET grid and start ``mtl-radiomics rescore``."""
        request = request or AnalysisRequest(result.pet)
        mask = results.current_mask(result)
        if not mask.any():
            raise AnalysisError("The MTV segment is empty: draw the tumour before updating the scores.")
        input_path = self._ensure_input(result)
        stored = result.model_folder
        model = (stored if stored and (stored / "model.json").is_file()
                 else self.model_folder(request.model_folder, request.model))
        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._counter)}"
        reference = result.labelmap if result.labelmap is not None else result.pet
        mask_path = scene_io.write_array_like(mask, reference, result.run_folder / f"edited-mtv-{stamp}.nrrd")
        out_dir = result.run_folder / f"rescore-{stamp}"
        options, notes = self._options(request, model, out_dir)
        process, command = self._run(["rescore", str(input_path), "--mask", str(mask_path), *options],
                                     result.run_folder)
        return EngineJob("rescore", process, result.run_folder, out_dir, input_path, result.pet.GetID(),
                         model, from_dicom=result.from_dicom, result=result, notes=notes, command=command,
                         cwd=result.run_folder)

    def _ensure_input(self, result: ResultNodes) -> Path:
        """The PET file the result was computed from; written again when its run folder is gone
        (a scene saved and reopened later)."""
        if str(result.run_folder) in ("", "."):
            result.run_folder = self._new_run_folder()
            result.segmentation.SetAttribute(results.ATTR_RUN_FOLDER, str(result.run_folder))
        if str(result.input_path) in ("", ".") or not result.input_path.exists():
            files = pet_input.dicom_files(result.pet, self.dicom_lookup)
            result.input_path = pet_input.prepare_engine_input(result.pet, result.run_folder / "input", files)
            result.segmentation.SetAttribute(results.ATTR_INPUT, str(result.input_path))
        result.run_folder.mkdir(parents=True, exist_ok=True)
        return result.input_path

    def poll(self, job: EngineJob) -> PollResult:
        update = job.process.poll()
        note = self._fall_back(job)
        if note is None:
            return update
        fresh = job.process.poll()
        return PollResult(fresh.state, update.events + fresh.events, [*update.log_lines, note, *fresh.log_lines],
                          fresh.returncode)

    def wait(self, job: EngineJob, timeout: Optional[float] = None) -> ProcessState:
        state = job.process.wait(timeout)
        if self._fall_back(job) is not None:
            state = job.process.wait(timeout)
        return state

    def cancel(self, job: EngineJob) -> None:
        """Stop the run and remove what it wrote; the scene stays as it was."""
        job.process.cancel()
        if job.kind == "analyze":
            shutil.rmtree(job.run_folder, ignore_errors=True)
        else:
            shutil.rmtree(job.out_dir, ignore_errors=True)
            for partial in job.out_dir.parent.glob(f".{job.out_dir.name}.partial-*"):
                shutil.rmtree(partial, ignore_errors=True)

    def finish(self, job: EngineJob) -> ResultNodes:
        """Import a finished run: new nodes for ``analyze``, updated scores for ``rescore``."""
        state = self.poll(job).state
        if state == ProcessState.RUNNING:
            state = self.wait(job)
        if state != ProcessState.SUCCEEDED:
            message = job.process.error_message() or f"the engine stopped ({state.value})"
            if job.kind == "analyze":
                shutil.rmtree(job.run_folder, ignore_errors=True)
            raise AnalysisError(message)
        if not (job.out_dir / "result.json").is_file():
            raise AnalysisError(f"the engine finished but wrote no result in {job.out_dir}")
        if job.kind == "rescore":
            results.update_from_rescore(job.result, job.out_dir)
            return job.result
        pet = self.scene.GetNodeByID(job.pet_node_id)
        if pet is None:
            raise AnalysisError("The PET volume was removed from the scene during the analysis.")
        return results.import_results(self.scene, job.out_dir, pet, job.run_folder, job.input_path,
                                      model_folder=job.model_folder, from_dicom=job.from_dicom)

    def warnings(self, result: ResultNodes) -> list[str]:
        """The engine's warnings about the last run of this result (analysis or rescore)."""
        try:
            return list(result.result_json.get("warnings", []))
        except (OSError, ValueError):
            return []

    def scores_withheld(self, result: ResultNodes) -> str:
        """Why the current scores were withheld (an implausible MTV), or "" when there are scores."""
        return results.scores_withheld(result)

    def mtv_summary(self, result: ResultNodes) -> dict:
        """result.json's "mtv" of the analysis: the scored method, every method, the checks."""
        return results.analysis_mtv(result)

    # ------------------------------------------------------------------ display and metrics
    def show_heatmap(self, result: ResultNodes, scale: str, opacity: float = results.DEFAULT_OPACITY) -> None:
        results.show_heatmap(self.scene, result, scale, opacity)

    def hide_heatmaps(self, result: ResultNodes) -> None:
        results.hide_heatmaps(self.scene, result)

    def set_heatmap_opacity(self, opacity: float) -> None:
        results.set_heatmap_opacity(self.scene, opacity)

    def update_live_metrics(self, result: ResultNodes) -> dict[str, float]:
        self._ensure_input(result)
        return self.live_metrics.update(result)

    def results_for(self, pet_node) -> list[ResultNodes]:
        return results.results_for_pet(self.scene, pet_node)

    # ------------------------------------------------------------------ export
    def write_report(self, result: ResultNodes, timeout: float = REPORT_TIMEOUT_S) -> None:
        """Write the PDF/HTML report into the result's run folder when the run made none
        (``mtl-radiomics report``, on the warm worker when it is up: the PET is still in its memory).
        AnalysisError when the engine cannot write it (the message says why)."""
        source = result.result_folder
        if (source / "report.pdf").is_file():
            return
        input_path = self._ensure_input(result)
        process, command = self._run(["report", str(input_path), "--out", str(source), "--progress", "json"],
                                     result.run_folder)
        job = EngineJob("report", process, result.run_folder, source, input_path, result.pet.GetID(),
                        result.model_folder or Path(), from_dicom=result.from_dicom, result=result,
                        command=command, cwd=result.run_folder)
        state = self.wait(job, timeout)
        if state == ProcessState.RUNNING:
            job.process.cancel()
            raise AnalysisError(f"The report took longer than {timeout:.0f} s and was stopped.")
        if state != ProcessState.SUCCEEDED or not (source / "report.pdf").is_file():
            raise AnalysisError(job.process.error_message() or f"the engine stopped ({state.value})")

    def export(self, result: ResultNodes, folder: str | Path) -> ExportSummary:
        """Report (PDF, HTML), result.json, a CSV of metrics and scores, and DICOM SEG for DICOM input.
        A run made without its report gets it now (``write_report``); when that fails, the rest is
        exported and a note says why there is no report."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        summary = ExportSummary()
        base = _safe_name(result.pet.GetName()) + "_MTLRadiomics"
        source = result.result_folder
        try:
            self.write_report(result)
        except AnalysisError as error:
            summary.notes.append(f"No PDF/HTML report: it could not be written ({error}).")
        for name, suffix in (("report.pdf", ".pdf"), ("report.html", ".html"), ("result.json", ".json")):
            if (source / name).is_file():
                target = folder / f"{base}_report{suffix}" if name.startswith("report") else folder / f"{base}{suffix}"
                shutil.copyfile(source / name, target)
                summary.files.append(target)
        withheld = results.scores_withheld(result)
        if withheld:
            summary.notes.append(f"The scores were withheld: {withheld}. The CSV holds the PET metrics only.")
        summary.files.append(self._write_csv(result, folder / f"{base}_metrics_scores.csv"))
        if result.from_dicom:
            if (source / "mtv_seg.dcm").is_file():
                target = folder / f"{base}_MTV_SEG.dcm"
                shutil.copyfile(source / "mtv_seg.dcm", target)
                summary.files.append(target)
            else:
                summary.notes.append("No DICOM SEG was written (the MTV was empty).")
        if results.edited_since_scoring(result):
            summary.notes.append("The MTV was edited after the last scoring: the CSV holds its current metrics, "
                                 "but the report, result.json and DICOM SEG describe the MTV that was scored. "
                                 "Click 'Update scores from edited MTV' and export again to include the edit.")
        return summary

    def _write_csv(self, result: ResultNodes, path: Path) -> Path:
        metrics = results.metrics_from_table(result.metrics_table)
        source = result.metrics_table.GetAttribute(results.ATTR_METRICS_SOURCE) or "engine"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["section", "name", "value", "sd", "samples", "unit", "mtv"])
            for key, label, unit in results.METRIC_ROWS:
                if key in metrics:
                    writer.writerow(["metric", label, f"{metrics[key]:.6g}", "", "", unit, source])
            if results.scores_withheld(result):
                row = results.scores_from_table(result.scores_table)[0]
                writer.writerow(["score", row["score"], "", "", 0, "", row["mtv"]])
            else:
                for row in results.scores_from_table(result.scores_table):
                    writer.writerow(["score", row["score"], f"{row['mean']:.6g}", f"{row['sd']:.6g}",
                                     row["samples"], "", row["mtv"]])
            if result.methods_table is not None:
                for row in results.methods_from_table(result.methods_table):
                    if row["available"]:
                        writer.writerow(["mtv_method", row["method"], f"{row['mtv_ml']:.6g}", "", "", "ml",
                                         "scored" if row["scored"] else ""])
        return path


def _pet_state(node) -> tuple:
    """What the PET check depends on: the node and its image (modification times) and the DICOM
    instances it was loaded from."""
    image = node.GetImageData()
    return (id(node), node.GetMTime(), image.GetMTime() if image is not None else 0,
            node.GetAttribute(pet_input.INSTANCE_UIDS_ATTRIBUTE) or "")


def _safe_name(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("_")
    return cleaned or "PET"


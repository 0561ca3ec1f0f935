"""MTLRadiomics 3D Slicer module.

A thin front end over the MTLRadiomicsLib engine: the engine reads the PET, finds and segments the
tumour, explains the network with Grad-CAM and scores the outcome in a background process; the
module moves data between the scene and the engine. The logic lives in the MTLRadiomicsModuleLogic package
(no Qt, tested headless on real MRML); this file holds the module description, the widget (Qt only:
it wires the .ui to the logic, polls the engine with a timer and observes the MTV for edits) and
the self-test that runs the whole flow inside Slicer.
"""

import contextlib
import logging
import os
import sys
import time
from pathlib import Path

import qt
import vtk

import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from MTLRadiomicsModuleLogic import (SCALE_LABELS, AnalysisError, AnalysisLogic, AnalysisRequest, ProcessState,
                               ResultNodes, dependencies, engine_process, results, sample_data)
from MTLRadiomicsModuleLogic.parameters import MODEL_FOLDER_CHOICE, Device, MtvMethod, MTLRadiomicsParameterNode

MODULE_DIR = Path(__file__).resolve().parent


#
# MTLRadiomics
#


class MTLRadiomics(ScriptedLoadableModule):
    """Module description shown in Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "MTLRadiomics"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = []
        self.parent.contributors = ["MTLRadiomics contributors"]
        self.parent.helpText = (
            "Analyse a 3D FDG-PET volume with a multi-task multi-scale network: the metabolic tumour "
            "volume (MTV) as an editable segmentation, Grad-CAM heatmaps for every network scale, PET "
            "metrics (SUVmax, SUVpeak, SUVmean, MTV, TLG) that follow your edits, and outcome scores "
            "with their uncertainty. The scores use the MTV of the chosen method (the network or a "
            "classical threshold); every method's MTV is listed for comparison, and the scores are "
            "withheld when the MTV is implausible. The bundled model is trained on synthetic phantoms "
            "and is not for clinical use.")
        self.parent.acknowledgementText = (
            "Method after Amyar et al., Multi-Task Multi-Scale Learning for Outcome Prediction in 3D "
            "PET Images.")
        problem = supportProblem()
        if problem:
            # Slicer 5.8 and earlier: say so once, at load, and in the module's help
            logging.error(problem)
            self.parent.helpText = problem + "\n\n" + self.parent.helpText
        slicer.app.connect("startupCompleted()", registerSampleData)


def supportProblem():
    """Why this Slicer cannot run the module (older than 5.10, Python older than 3.10), or ""."""
    try:
        version = (int(slicer.app.majorVersion), int(slicer.app.minorVersion))
    except (AttributeError, TypeError, ValueError):
        version = None
    return dependencies.support_problem(version, sys.version_info[:2])


#
# Sample data
#


def sampleCacheFolder():
    return Path(slicer.app.cachePath) / "MTLRadiomics"


def registerSampleData():
    """Offer the synthetic sample PET in the Sample Data module (generated on first download)."""
    import SampleData

    cached = sample_data.cached_sample_pet(sampleCacheFolder())
    path = sampleCacheFolder() / sample_data.SAMPLE_FILE
    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(sample_data.SAMPLE_CATEGORY, "MTLRadiomics")
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=sample_data.SAMPLE_CATEGORY,
        sampleName=sample_data.SAMPLE_NAME,
        thumbnailFileName=str(MODULE_DIR / "Resources" / "Icons" / "MTLRadiomics.png"),
        uris=cached.uri if cached else path.resolve().as_uri(),
        fileNames=sample_data.SAMPLE_FILE,
        nodeNames=sample_data.SAMPLE_NAME,
        checksums=cached.checksum if cached else None,
        customDownloader=lambda source: downloadSamplePet(),
    )
    # SampleData.downloadSample(name) from a script ignores customDownloader and downloads the
    # registered URI: a rewrite rule (Slicer 5.10+) generates the sample first when it is missing.
    if hasattr(SampleData.SampleDataLogic, "registerUrlRewriteRule"):
        SampleData.SampleDataLogic.registerUrlRewriteRule(
            "MTLRadiomicsSamplePET", sample_data.generating_rewrite_rule(sampleCacheFolder(), _prepareSample))


def _prepareSample(cacheFolder):
    """Generate the sample PET for Sample Data (the engine's packages are installed first if needed)."""
    if not ensureEngineImportable():
        raise RuntimeError("the engine's Python packages are needed to generate the sample")
    with slicer.util.WaitCursor():
        return sample_data.ensure_sample_pet(cacheFolder)


def downloadSamplePet():
    """Generate the sample PET if needed and load it through Sample Data; returns the volume node."""
    import SampleData

    if not ensureEngineImportable():
        return None
    with slicer.util.WaitCursor():
        sample = sample_data.ensure_sample_pet(sampleCacheFolder())
        source = SampleData.SampleDataSource(
            sampleName=sample_data.SAMPLE_NAME, uris=sample.uri, fileNames=sample_data.SAMPLE_FILE,
            nodeNames=sample_data.SAMPLE_NAME, checksums=sample.checksum, loadFileTypes="VolumeFile")
        nodes = SampleData.SampleDataLogic().downloadFromSource(source)
    return nodes[0] if nodes else None


def enginePackagesFolder():
    """pydicom 3 and highdicom for the engine process only, where Slicer's pydicom is older than 3
    (see MTLRadiomicsModuleLogic.dependencies); one folder per Python version."""
    settings = getattr(slicer.app, "slicerUserSettingsFilePath", "") or ""
    base = Path(settings).parent if settings else Path(slicer.app.cachePath)
    return base / "MTLRadiomics" / f"engine-packages-py{sys.version_info[0]}{sys.version_info[1]}"


@contextlib.contextmanager
def normalCursor():
    """No wait cursor while the user is asked or told something: the override cursors that callers
    set (slicer.util.WaitCursor) are lifted here and put back afterwards."""
    lifted = []
    while len(lifted) < 32 and qt.QApplication.overrideCursor() is not None:
        lifted.append(qt.QApplication.overrideCursor().shape())
        qt.QApplication.restoreOverrideCursor()
    try:
        yield
    finally:
        for shape in reversed(lifted):
            qt.QApplication.setOverrideCursor(shape)


def ensureEngineImportable():
    """Install the engine's packages when they are missing, after asking (without asking in
    Slicer's testing mode, where slicer.util.confirmOkCancelDisplay answers False: the self-test
    must be able to install them); True when ready."""
    problem = supportProblem()
    if problem:
        with normalCursor():
            slicer.util.errorDisplay(problem, windowTitle="MTLRadiomics")
        return False
    try:
        plan = dependencies.plan_dependencies(MODULE_DIR, engine_only_folder=enginePackagesFolder())
    except dependencies.DependencyError as error:
        with normalCursor():
            slicer.util.errorDisplay(str(error), windowTitle="MTLRadiomics")
        return False
    if not plan.complete:
        if slicer.app.testingEnabled():
            logging.info("MTLRadiomics: testing mode, installing without asking.\n" + plan.describe())
        else:
            with normalCursor():
                if not slicer.util.confirmOkCancelDisplay(plan.describe(), windowTitle="MTLRadiomics"):
                    return False
        installer = dependencies.SlicerInstaller(constraints_folder=Path(slicer.app.temporaryPath) / "MTLRadiomics")
        try:
            with slicer.util.WaitCursor():
                dependencies.install_dependencies(plan, installer)
        except Exception as error:  # pip and the PyTorch installer raise many kinds
            with normalCursor():
                slicer.util.errorDisplay(f"Installing the Python packages failed: {error}", windowTitle="MTLRadiomics")
            return False
    return dependencies.make_engine_importable(MODULE_DIR)


#
# MTLRadiomicsLogic
#


class MTLRadiomicsLogic(AnalysisLogic, ScriptedLoadableModuleLogic):
    """The module logic on Slicer's scene: the engine runs with PythonSlicer, DICOM volumes are
    handed over through the DICOM database. All behaviour is in MTLRadiomicsModuleLogic.AnalysisLogic.

    AnalysisLogic comes first: ScriptedLoadableModuleLogic.__init__ calls super().__init__() without
    arguments, which must reach object, not AnalysisLogic."""

    def __init__(self):
        AnalysisLogic.__init__(
            self, slicer.mrmlScene, python=engine_process.current_python(),
            engine_root=dependencies.engine_root(MODULE_DIR) or MODULE_DIR,
            env=_engineEnvironment(), dicom_lookup=_dicomFileForInstance,
            temp_root=Path(slicer.app.temporaryPath) / "MTLRadiomics", bundled_model=bundledModelFolder(),
            engine_only_folder=enginePackagesFolder())
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return MTLRadiomicsParameterNode(super().getParameterNode())

    def refreshEngineLocation(self):
        self.engine_root = Path(dependencies.engine_root(MODULE_DIR) or MODULE_DIR)


def bundledModelFolder():
    """The model shipped with the extension (installed beside the module, or in the source tree)."""
    candidates = []
    if os.environ.get("MTL_RADIOMICS_MODEL"):
        candidates.append(Path(os.environ["MTL_RADIOMICS_MODEL"]))
    candidates += [MODULE_DIR / "Resources" / "models" / "default",
                   MODULE_DIR.parent / "Resources" / "models" / "default"]
    for folder in candidates:
        if (folder / "model.json").is_file():
            return folder
    return candidates[0]


def _engineEnvironment():
    try:
        environment = dict(slicer.util.startupEnvironment())
    except Exception:  # older Slicer or a bare Python: inherit ours
        environment = dict(os.environ)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def _dicomFileForInstance(uid):
    database = getattr(slicer, "dicomDatabase", None)
    if database is None or not database.isOpen:
        return None
    return database.fileForInstance(uid) or None


#
# MTLRadiomicsWidget
#


class MTLRadiomicsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Module panel: binds the .ui to the parameter node and drives the logic."""

    POLL_INTERVAL_MS = 200
    METRICS_DELAY_MS = 400
    ERROR_STYLE = "color: #c0392b; font-weight: bold"
    WARNING_STYLE = "color: #b9770e"

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._job = None
        self._result = None
        self._observedSegmentation = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MTLRadiomics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = MTLRadiomicsLogic()

        self.ui.resultSelector.addAttribute("vtkMRMLSegmentationNode", results.ROLE_ATTRIBUTE, results.ROLE_MTV)
        self.ui.progressBar.hide()
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollEngine)
        self._metricsTimer = qt.QTimer()
        self._metricsTimer.setSingleShot(True)
        self._metricsTimer.setInterval(self.METRICS_DELAY_MS)
        self._metricsTimer.connect("timeout()", self.onUpdateLiveMetrics)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.analyzeButton.connect("clicked(bool)", self.onAnalyzeButton)
        self.ui.updateScoresButton.connect("clicked(bool)", self.onUpdateScoresButton)
        self.ui.editMtvButton.connect("clicked(bool)", self.onEditMtvButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.petVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onPetVolumeChanged)
        self.ui.lesionSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onLesionChanged)
        self.ui.resultSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onResultChanged)
        self.ui.heatmapScaleComboBox.connect("currentIndexChanged(int)", self.onHeatmapScaleChanged)
        self.ui.heatmapOpacitySlider.connect("valueChanged(double)", self.onHeatmapOpacityChanged)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelComboBoxChanged)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self.onModelChoiceChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.showMethodsCheckBox.connect("toggled(bool)", self.onShowMethodsToggled)

        self.populateModels()
        self.initializeParameterNode()
        self.onModelChoiceChanged()

    def cleanup(self):
        if self._job is not None:
            self.logic.cancel(self._job)
            self._job = None
        self.logic.stop_engine()              # the warm engine worker ends with the module
        self._pollTimer.stop()
        self._metricsTimer.stop()
        self.removeObservers()

    def enter(self):
        self.populateModels()              # models installed since the module was last shown
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event):
        if self._job is not None:
            self.logic.cancel(self._job)
            self._job = None
            self._setRunning(False)
        self._observeSegmentation(None)
        self.logic.live_metrics.forget()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------------ parameter node
    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.petVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume and not firstVolume.IsA("vtkMRMLLabelMapVolumeNode"):
                self._parameterNode.petVolume = firstVolume
        if str(self._parameterNode.exportFolder) in ("", "."):
            self._parameterNode.exportFolder = Path(qt.QDir.homePath())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            # the .ui names each bound widget's parameter in its SlicerParameterName property
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self._setMtvMethodToolTips()
        self._modelChoiceToGui()
        # without a parameter node (the scene is closing) nothing is shown nor observed: the nodes
        # still in the selectors are about to be removed
        bound = self._parameterNode is not None
        self.onPetVolumeChanged(self.ui.petVolumeSelector.currentNode() if bound else None)
        self.onResultChanged(self.ui.resultSelector.currentNode() if bound else None)

    # ------------------------------------------------------------------ inputs
    def onPetVolumeChanged(self, node=None):
        check = self.logic.check_pet(node)
        self.ui.suvStatusLabel.text = check.message
        self.ui.suvStatusLabel.setStyleSheet("" if check.usable else "color: #c0392b")
        self._updateButtons()

    def onLesionChanged(self, node=None):
        isPointList = node is not None and node.IsA("vtkMRMLMarkupsFiducialNode")
        self.ui.lesionPlaceWidget.setCurrentNode(node if isPointList else None)
        self.ui.lesionPlaceWidget.setEnabled(isPointList)

    def _setMtvMethodToolTips(self):
        # the parameter node fills the combo box with the methods' labels (MtvMethod.label)
        combo = self.ui.mtvMethodComboBox
        for index, method in enumerate(MtvMethod):
            if index < combo.count:
                combo.setItemData(index, f"The scores and PET metrics use the MTV '{method.label()}'; every "
                                  "method's MTV is listed under Results.", qt.Qt.ToolTipRole)

    # ------------------------------------------------------------------ model choice
    def populateModels(self):
        """The model combo box: the installed models (default first), then 'Model folder'."""
        combo = self.ui.modelComboBox
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for model in self.logic.installed_models():
            combo.addItem(model.label(), model.key)
            combo.setItemData(combo.count - 1, "\n".join(t for t in (model.summary, str(model.folder)) if t),
                              qt.Qt.ToolTipRole)
        combo.addItem("Model folder (choose below)", MODEL_FOLDER_CHOICE)
        combo.setItemData(combo.count - 1, "Any model folder exported by training.export (model.json + "
                          "model.safetensors)", qt.Qt.ToolTipRole)
        combo.blockSignals(wasBlocked)
        self._modelChoiceToGui()

    def _modelChoice(self):
        """The installed model's name, MODEL_FOLDER_CHOICE, or "" (the default model)."""
        data = self.ui.modelComboBox.itemData(self.ui.modelComboBox.currentIndex)
        return str(data) if data else ""

    def _modelChoiceToGui(self):
        """Show the parameter node's model in the combo box (it is not bound by the .ui: the list
        of installed models is only known at run time)."""
        if not hasattr(self, "ui"):
            return
        combo = self.ui.modelComboBox
        choice = self._parameterNode.model if self._parameterNode else ""
        index = combo.findData(choice) if choice else 0
        missing = index < 0
        wasBlocked = combo.blockSignals(True)
        combo.setCurrentIndex(max(index, 0))
        combo.blockSignals(wasBlocked)
        self.onModelChoiceChanged()
        if missing:
            self.ui.modelInfoLabel.text = (f"The model '{choice}' of this scene is not installed; "
                                           + self.ui.modelInfoLabel.text)

    def onModelComboBoxChanged(self, index=None):
        if self._parameterNode:
            self._parameterNode.model = self._modelChoice()
        self.onModelChoiceChanged()

    def onModelChoiceChanged(self, *unused):
        choice = self._modelChoice()
        byFolder = choice == MODEL_FOLDER_CHOICE
        self.ui.modelPathLineEdit.setEnabled(byFolder)
        path = self.ui.modelPathLineEdit.currentPath
        if byFolder and not path:
            self.ui.modelInfoLabel.text = "Choose a model folder (with model.json and model.safetensors)."
            return
        try:
            folder = self.logic.model_folder(path if byFolder else None, None if byFolder else (choice or None))
        except AnalysisError as error:
            self.ui.modelInfoLabel.text = str(error)
            return
        self.ui.modelInfoLabel.text = _modelCardSummary(folder)

    def onDeviceChanged(self, index=None):
        # read the combo box itself: this runs before the parameter node hears of the change
        choices = list(Device)
        index = self.ui.deviceComboBox.currentIndex
        device = choices[index] if 0 <= index < len(choices) else Device.AUTO
        if device == Device.GPU:
            with slicer.util.WaitCursor():
                self.ui.deviceStatusLabel.text = dependencies.cuda_status().message
        else:
            self.ui.deviceStatusLabel.text = ""

    def _request(self, analyze=True):
        """The user's choices; a rescore uses the model of its result when that is still there."""
        p = self._parameterNode
        choice = self._modelChoice()
        byFolder = choice == MODEL_FOLDER_CHOICE
        path = self.ui.modelPathLineEdit.currentPath
        if analyze and byFolder and not path:
            raise AnalysisError("Choose a model folder, or an installed model, under 'Model and computation'.")
        return AnalysisRequest(
            pet_node=p.petVolume, lesion_node=p.lesion,
            model_folder=Path(path) if byFolder and path else None,
            model=None if byFolder else (choice or None),
            mtv_method=p.mtvMethod.value, fill_holes=bool(p.fillHoles),
            device=p.device.value, explain=p.explanationTarget.value, samples=int(p.samples),
            report=False)          # the report is written at export, from the run's files

    # ------------------------------------------------------------------ runs
    def onAnalyzeButton(self):
        if self._job is not None:
            self._cancelJob()
            return
        if not ensureEngineImportable():
            return
        self.logic.refreshEngineLocation()
        try:
            self._job = self.logic.start_analysis(self._request())
        except (AnalysisError, OSError, RuntimeError) as error:
            self._showError(str(error))
            return
        self._startPolling("Analysing")

    def onUpdateScoresButton(self):
        if self._job is not None or self._result is None:
            return
        if not ensureEngineImportable():
            return
        self.logic.refreshEngineLocation()
        try:
            self._job = self.logic.start_rescore(self._result, self._request(analyze=False))
        except (AnalysisError, OSError, RuntimeError, ValueError) as error:
            self._showError(str(error))
            return
        self._startPolling("Updating the scores")

    def _startPolling(self, text):
        for note in self._job.notes:
            logging.info(note)
        self.ui.statusLabel.text = " ".join([text + "..."] + self._job.notes)
        self.ui.statusLabel.setStyleSheet("")
        self._setRunning(True)
        self._pollTimer.start()

    def onPollEngine(self):
        job = self._job
        if job is None:
            self._pollTimer.stop()
            return
        update = self.logic.poll(job)
        for line in update.log_lines:
            logging.info(f"MTLRadiomics engine: {line}")
        event = update.last_event
        if event is not None:
            self.ui.progressBar.value = int(round(100 * event.fraction))
            self.ui.statusLabel.text = f"{event.message} ({time.monotonic() - job.started:.0f} s)"
        if not update.state.finished:
            return
        self._pollTimer.stop()
        self._job = None
        self._setRunning(False)
        try:
            with slicer.util.WaitCursor():
                result = self.logic.finish(job)
        except (AnalysisError, OSError, ValueError, RuntimeError) as error:
            self._showError(str(error))
            return
        done = (f"Done in {time.monotonic() - job.started:.0f} s."
                + ("" if job.kind == "analyze" else " Scores now use the edited MTV."))
        withheld = self.logic.scores_withheld(result)
        warnings = self.logic.warnings(result)
        if withheld:
            self.ui.statusLabel.setStyleSheet(self.ERROR_STYLE)
            self.ui.statusLabel.text = (f"{done} Scores withheld: {withheld}. Choose another MTV method, give a "
                                        "box around the lesion, or edit the MTV and update the scores.")
        elif warnings:
            self.ui.statusLabel.setStyleSheet(self.WARNING_STYLE)
            self.ui.statusLabel.text = f"{done} {len(warnings)} warning(s): see Results."
        else:
            self.ui.statusLabel.setStyleSheet("")
            self.ui.statusLabel.text = done
        if job.kind == "analyze":
            self._parameterNode.mtvSegmentation = result.segmentation
        self._showResult(result)
        if withheld:
            slicer.util.warningDisplay(
                f"The scores were withheld: {withheld}.\n\n" + "\n".join(f"- {w}" for w in warnings),
                windowTitle="MTLRadiomics")

    def _cancelJob(self):
        self._pollTimer.stop()
        job, self._job = self._job, None
        with slicer.util.WaitCursor():
            self.logic.cancel(job)
        self._setRunning(False)
        self.ui.statusLabel.setStyleSheet("")
        self.ui.statusLabel.text = "Cancelled: the engine was stopped and nothing was added to the scene."

    def _setRunning(self, running):
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        self.ui.analyzeButton.text = "Cancel" if running else "Analyze"
        self.ui.analyzeButton.toolTip = ("Stop the engine; the scene stays as it was" if running
                                         else "Segment the tumour, compute the heatmaps, PET metrics and scores.")
        self._updateButtons()

    def _updateButtons(self):
        running = self._job is not None
        check = self.logic.check_pet(self.ui.petVolumeSelector.currentNode()) if not running else None
        self.ui.analyzeButton.enabled = running or bool(check and check.usable)
        hasResult = self._result is not None
        self.ui.updateScoresButton.enabled = hasResult and not running
        self.ui.editMtvButton.enabled = hasResult
        self.ui.exportButton.enabled = hasResult and not running

    def _showError(self, message):
        self.ui.statusLabel.setStyleSheet("color: #c0392b")
        self.ui.statusLabel.text = message
        slicer.util.errorDisplay(message, windowTitle="MTLRadiomics")

    # ------------------------------------------------------------------ results
    def onResultChanged(self, node=None):
        result = ResultNodes.from_segmentation(node)
        self._observeSegmentation(node if result else None)
        if result is not None:
            self._showResult(result)
            return
        self._result = None
        self.ui.scoresTableView.setMRMLTableNode(None)
        self.ui.metricsTableView.setMRMLTableNode(None)
        self.ui.methodsTableView.setMRMLTableNode(None)
        self.ui.methodsLabel.text = "MTV of every method:"
        self.ui.warningsLabel.text = ""
        self.ui.heatmapNoteLabel.text = ""
        self._setShowMethods(None)
        self._updateButtons()

    def _showResult(self, result):
        self._result = result
        self.ui.scoresTableView.setMRMLTableNode(result.scores_table)
        self.ui.metricsTableView.setMRMLTableNode(result.metrics_table)
        self.ui.methodsTableView.setMRMLTableNode(result.methods_table)
        mtv = self.logic.mtv_summary(result)
        if mtv.get("label"):
            self.ui.methodsLabel.text = (f"MTV of every method (the analysis scored: {mtv['label']}"
                                         + (", holes filled" if mtv.get("fill_holes") else "") + "):")
        else:
            self.ui.methodsLabel.text = "MTV of every method:"
        self._setShowMethods(result.methods_segmentation)
        self._showWarnings(result)
        self.onHeatmapScaleChanged()
        self._updateButtons()

    def _showWarnings(self, result):
        withheld = self.logic.scores_withheld(result)
        lines = [w for w in self.logic.warnings(result) if w != withheld]
        if withheld:
            lines.insert(0, f"Scores withheld: {withheld}.")
        self.ui.warningsLabel.text = "\n".join(f"\u26a0 {line}" for line in lines)
        self.ui.warningsLabel.setStyleSheet(self.ERROR_STYLE if withheld else self.WARNING_STYLE if lines else "")
        self.ui.scoresLabel.text = "Scores: WITHHELD (see the warnings below)" if withheld else "Scores (mean ± SD):"
        self.ui.scoresLabel.setStyleSheet(self.ERROR_STYLE if withheld else "")

    def _setShowMethods(self, methodsSegmentation):
        display = methodsSegmentation.GetDisplayNode() if methodsSegmentation is not None else None
        checkBox = self.ui.showMethodsCheckBox
        wasBlocked = checkBox.blockSignals(True)
        checkBox.checked = bool(display is not None and display.GetVisibility())
        checkBox.blockSignals(wasBlocked)
        checkBox.enabled = display is not None

    def onShowMethodsToggled(self, checked):
        node = self._result.methods_segmentation if self._result is not None else None
        if node is not None and node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetVisibility(bool(checked))

    def onHeatmapScaleChanged(self, *unused):
        if self._result is None:
            return
        hasHeatmaps = bool(self._result.heatmaps)
        self.ui.heatmapScaleComboBox.enabled = hasHeatmaps
        self.ui.heatmapOpacitySlider.enabled = hasHeatmaps
        if not hasHeatmaps:
            self.logic.hide_heatmaps(self._result)
            withheld = self.logic.scores_withheld(self._result)
            self.ui.heatmapNoteLabel.text = (
                "No heatmaps: the scores were withheld, so there is nothing to explain. Edit the MTV and "
                "click 'Update scores from edited MTV' to score it." if withheld
                else "No heatmaps for this result.")
            self.ui.heatmapNoteLabel.setStyleSheet(self.WARNING_STYLE)
            return
        self.ui.heatmapNoteLabel.text = ""
        scale = self.ui.heatmapScaleComboBox.currentText
        if scale in self._result.heatmaps:
            self.logic.show_heatmap(self._result, scale, self.ui.heatmapOpacitySlider.value)
            self.ui.heatmapScaleComboBox.toolTip = SCALE_LABELS.get(scale, scale)

    def onHeatmapOpacityChanged(self, value):
        if self._result is not None:
            self.logic.set_heatmap_opacity(value)

    def _observeSegmentation(self, segmentationNode):
        if self._observedSegmentation is not None:
            for event in _segmentEditEvents():
                self.removeObserver(self._observedSegmentation, event, self.onSegmentEdited)
        self._observedSegmentation = segmentationNode
        if segmentationNode is not None:
            for event in _segmentEditEvents():
                self.addObserver(segmentationNode, event, self.onSegmentEdited)

    def onSegmentEdited(self, caller=None, event=None):
        self._metricsTimer.start()         # restarts while the user keeps painting

    def onUpdateLiveMetrics(self):
        if self._result is None:
            return
        try:
            self.logic.update_live_metrics(self._result)
            edited = results.edited_since_scoring(self._result)
        except (OSError, ValueError, RuntimeError, ImportError) as error:
            self.ui.statusLabel.text = f"PET metrics not updated: {error}"
            return
        if edited:
            self.ui.statusLabel.setStyleSheet("")
            self.ui.statusLabel.text = ("MTV edited: the PET metrics follow the edit; the scores are still those "
                                        "of the MTV that was scored. Click 'Update scores from edited MTV'.")

    def onEditMtvButton(self):
        if self._result is None:
            return
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(self._result.segmentation)
        if hasattr(editor, "setSourceVolumeNode"):
            editor.setSourceVolumeNode(self._result.pet)
        else:
            editor.setMasterVolumeNode(self._result.pet)

    def onExportButton(self):
        if self._result is None:
            return
        folder = self.ui.exportDirectoryButton.directory
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)     # the report may be written now
        try:
            summary = self.logic.export(self._result, folder)
        except (OSError, ValueError) as error:
            self._showError(f"Export failed: {error}")
            return
        finally:
            qt.QApplication.restoreOverrideCursor()
        text = "Written to " + folder + ":\n" + "\n".join(f.name for f in summary.files)
        if summary.notes:
            text += "\n\n" + "\n".join(summary.notes)
        slicer.util.infoDisplay(text, windowTitle="MTLRadiomics export")


def _segmentEditEvents():
    events = [slicer.vtkSegmentation.SegmentModified]
    if hasattr(slicer.vtkSegmentation, "SourceRepresentationModified"):
        events.append(slicer.vtkSegmentation.SourceRepresentationModified)
    return events


def _modelCardSummary(folder):
    import json

    try:
        card = json.loads((Path(folder) / "model.json").read_text())
    except (OSError, ValueError) as error:
        return f"Model card unreadable: {error}"
    name = card.get("name", Path(folder).name)
    use = card.get("intended_use", "")
    return f"{name}: {use}" if use else name


#
# MTLRadiomicsTest
#


class MTLRadiomicsTest(ScriptedLoadableModuleTest):
    """The whole flow inside Slicer: sample, analyze, nodes, edit, live metrics, rescore, export, cancel."""

    TIMEOUT_S = 900

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_analyze_edit_rescore_export()
        self.setUp()
        self.test_cancel_leaves_the_scene_unchanged()

    def _waitFor(self, logic, job):
        start = time.monotonic()
        while not logic.poll(job).state.finished:
            slicer.app.processEvents()
            time.sleep(0.1)
            if time.monotonic() - start > self.TIMEOUT_S:
                logic.cancel(job)
                self.fail("the engine did not finish in time")
        return job.process.state

    def _model(self):
        folder = bundledModelFolder()
        if (folder / "model.json").is_file():
            return folder
        import torch
        from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config, save_model

        folder = Path(slicer.app.temporaryPath) / "MTLRadiomicsTest" / "tiny-model"
        if not (folder / "model.json").is_file():
            torch.manual_seed(0)
            card = ModelCard(name="tiny-random", architecture={}, intended_use="Self-test model with random weights.",
                             preprocessing=Preprocessing(spacing_mm=(3.0, 3.0, 3.0), crop_size=(32, 32, 32)))
            save_model(MultiTaskNet(named_config("tiny")), card, folder)
        return folder

    def _sampleAndPoint(self, fromScript=False):
        self.assertTrue(ensureEngineImportable(), "the engine's Python packages are needed")
        if fromScript:                     # as a user's script would: through Sample Data alone
            import SampleData

            registerSampleData()
            pet = SampleData.downloadSample(sample_data.SAMPLE_NAME)
        else:
            pet = downloadSamplePet()
        self.assertIsNotNone(pet)
        sample = sample_data.cached_sample_pet(sampleCacheFolder())
        point = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Lesion")
        point.AddControlPoint(*sample.lesion_ras)
        return pet, point

    def test_analyze_edit_rescore_export(self):
        import numpy as np
        from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

        self.delayDisplay("Loading the synthetic sample PET")
        pet, point = self._sampleAndPoint()
        logic = MTLRadiomicsLogic()
        self.assertTrue(logic.check_pet(pet).usable)

        self.delayDisplay("Analysing in the background")
        # a classical MTV: the self-test model may have random weights, whose network MTV is no lesion
        job = logic.start_analysis(AnalysisRequest(pet, point, model_folder=self._model(), device="auto",
                                                   samples=2, report=True, mtv_method="suv2.5"))
        self.assertEqual(self._waitFor(logic, job), ProcessState.SUCCEEDED, job.process.error_message())
        result = logic.finish(job)
        self.assertEqual(logic.scores_withheld(result), "")
        self.assertEqual(result.result_json["mtv"]["method"], "suv2.5")
        self.assertEqual(set(result.heatmaps), set(results.SCALES))
        self.assertIsNotNone(result.methods_segmentation)
        self.assertFalse(result.methods_segmentation.GetDisplayNode().GetVisibility())
        self.assertIsNotNone(result.methods_table)
        for node in [result.labelmap, *result.heatmaps.values()]:
            self.assertTrue(np.allclose(_ijkToRas(node), _ijkToRas(pet), atol=1e-3))
        self.assertEqual(result.scores_table.GetNumberOfRows(), 3)
        self.assertEqual(result.metrics_table.GetNumberOfRows(), 5)
        logic.show_heatmap(result, "enc3", 0.4)
        composite = slicer.app.layoutManager().sliceWidget("Red").sliceLogic().GetSliceCompositeNode()
        self.assertEqual(composite.GetForegroundVolumeID(), result.heatmaps["enc3"].GetID())

        self.delayDisplay("Editing the MTV by array")
        mask = slicer.util.arrayFromSegmentBinaryLabelmap(result.segmentation, result.segment_id, pet)
        edited = (mask > 0).astype(np.uint8)
        center = np.argwhere(mask).mean(axis=0).round().astype(int) if mask.any() else np.array(mask.shape) // 2
        z, y, x = center
        edited[z - 3:z + 4, y - 3:y + 4, x - 3:x + 4] = 1
        slicer.util.updateSegmentBinaryLabelmapFromArray(edited, result.segmentation, result.segment_id, pet)
        live = logic.update_live_metrics(result)
        suv = slicer.util.arrayFromVolume(pet)
        expected = compute_metrics(suv, edited, pet.GetSpacing())
        self.assertAlmostEqual(live["mtv_ml"], expected.mtv_ml, places=4)

        self.delayDisplay("Updating the scores from the edited MTV")
        job = logic.start_rescore(result, AnalysisRequest(pet, samples=2, device="auto"))
        self.assertEqual(self._waitFor(logic, job), ProcessState.SUCCEEDED, job.process.error_message())
        result = logic.finish(job)
        scored = result.result_json
        self.assertEqual(scored["scores"]["mask_source"], "edited")
        self.assertAlmostEqual(scored["metrics"]["mtv_ml"], expected.mtv_ml, places=4)

        self.delayDisplay("Exporting the report")
        folder = Path(slicer.app.temporaryPath) / "MTLRadiomicsTest" / "export"
        summary = logic.export(result, folder)
        names = {f.suffix for f in summary.files}
        self.assertTrue({".pdf", ".html", ".json", ".csv"} <= names, names)
        self.delayDisplay("Test passed")

    def test_cancel_leaves_the_scene_unchanged(self):
        self.delayDisplay("Cancelling a running analysis")
        pet, point = self._sampleAndPoint(fromScript=True)
        logic = MTLRadiomicsLogic()
        before = [slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())]
        job = logic.start_analysis(AnalysisRequest(pet, point, model_folder=self._model(), samples=2, report=False))
        start = time.monotonic()
        while not logic.poll(job).events and time.monotonic() - start < 120:
            slicer.app.processEvents()
            time.sleep(0.05)
        logic.cancel(job)
        self.assertEqual(job.process.state, ProcessState.CANCELLED)
        self.assertIsNotNone(job.process.returncode)
        self.assertFalse(engine_process.process_group_alive(job.process.pid))
        self.assertFalse(job.run_folder.exists())
        after = [slicer.mrmlScene.GetNthNode(i).GetID() for i in range(slicer.mrmlScene.GetNumberOfNodes())]
        self.assertEqual(before, after)
        self.delayDisplay("Test passed")


def _ijkToRas(node):
    import numpy as np

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])

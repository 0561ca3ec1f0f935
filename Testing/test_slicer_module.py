"""The Slicer module against what Slicer itself does (its source for 5.8, 5.10 and the current
version), headless: real MRML from the slicer-core wheel, the module file loaded in this process
with stand-ins for Qt and the application object only.

- testing mode: Slicer's confirmOkCancelDisplay answers False there, the self-test must still install;
- scene queries release the collections vtkMRMLScene::GetNodesByClass hands over;
- supported Slicer versions, and an installer that keeps Slicer's own packages;
- scene close, SampleData.downloadSample from a script, the cursor while asking, the PET check.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="the slicer-core wheel (headless MRML) is not installed")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the installed 'slicer' package has no MRML classes", allow_module_level=True)
import slicer.util  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
MODULE_FILE = MODULE_DIR / "MTLRadiomics.py"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from MTLRadiomicsModuleLogic import (AnalysisLogic, ResultNodes, dependencies, pet_input, results,  # noqa: E402
                                     sample_data, scene_io)
from MTLRadiomicsModuleLogic.engine_process import BOOTSTRAP, engine_command  # noqa: E402

# Slicer 5.10.0's own packages (SuperBuild/External_python-*.cmake), as importlib.metadata lists them
SLICER_510 = {"numpy": "2.0.2", "scipy": "1.13.1", "pydicom": "2.4.4", "pillow": "11.2.1", "simpleitk": "2.5.2",
              "six": "1.17.0", "requests": "2.32.3", "pip": "25.1.1", "setuptools": "80.9.0", "wheel": "0.45.1"}


# --------------------------------------------------------------------------- stand-ins
class Cursor:
    def __init__(self, shape):
        self._shape = shape

    def shape(self):
        return self._shape


class QApplication:
    """Qt's override cursor stack, as slicer.util.WaitCursor uses it."""

    cursors: list = []

    @classmethod
    def setOverrideCursor(cls, cursor):
        cls.cursors.append(cursor if isinstance(cursor, Cursor) else Cursor(cursor))

    @classmethod
    def restoreOverrideCursor(cls):
        if cls.cursors:
            cls.cursors.pop()

    @classmethod
    def overrideCursor(cls):
        return cls.cursors[-1] if cls.cursors else None


def fake_qt() -> types.ModuleType:
    qt = types.ModuleType("qt")
    qt.Qt = types.SimpleNamespace(WaitCursor=16, ToolTipRole=3)
    qt.QApplication = QApplication
    # the values Qt gives these enums (QMessageBox::Ok is 0x400): slicer.util compares with them
    qt.QMessageBox = types.SimpleNamespace(Ok=0x400, Cancel=0x400000, Yes=0x4000, No=0x10000, Question=4,
                                           Warning=2, Critical=3, Information=1)
    return qt


class App:
    """slicer.app, reduced to what the module and slicer.util touch."""

    applicationName = "Slicer"

    def __init__(self, tmp: Path, testing: bool = False, version: tuple[int, int] = (5, 10)):
        self.testing = testing
        self.majorVersion, self.minorVersion = version
        self.temporaryPath = str(tmp / "temp")
        self.cachePath = str(tmp / "cache")
        self.slicerUserSettingsFilePath = str(tmp / "settings" / "Slicer.ini")
        self.signals: list[str] = []

    def testingEnabled(self) -> bool:
        return self.testing

    def processEvents(self) -> None:
        pass

    def connect(self, signal, slot) -> None:
        self.signals.append(signal)

    setOverrideCursor = staticmethod(QApplication.setOverrideCursor)
    restoreOverrideCursor = staticmethod(QApplication.restoreOverrideCursor)


def _base_classes() -> types.ModuleType:
    base = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            super().__init__()

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent

    class ScriptedLoadableModuleTest:
        pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
                ScriptedLoadableModuleTest):
        setattr(base, cls.__name__, cls)
    return base


def load_module(monkeypatch, tmp_path: Path, testing: bool = False, version: tuple[int, int] = (5, 10)):
    """MTLRadiomics.py loaded here with stand-ins for qt, slicer.app and Slicer's module base classes."""
    QApplication.cursors = []
    monkeypatch.setitem(sys.modules, "qt", fake_qt())
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _base_classes())
    app = App(tmp_path, testing, version)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", slicer.vtkMRMLScene(), raising=False)
    spec = importlib.util.spec_from_file_location("MTLRadiomics", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "MTLRadiomics", module)
    spec.loader.exec_module(module)
    return module


class Recorder:
    """Stands in for the PyTorch extension and pip: records what would be installed."""

    def __init__(self):
        self.calls: list = []

    def torch(self, *unused):
        self.calls.append(("torch", len(QApplication.cursors)))
        return True

    def pip(self, *args):                     # (requirements) as set on the class: no instance passed
        self.calls.append(("pip", list(args[-1]), len(QApplication.cursors)))


def incomplete_plan(*args, **kwargs) -> dependencies.DependencyPlan:
    return dependencies.DependencyPlan(torch=True, packages=["monai>=1.3"])


def stub_installation(monkeypatch, module) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(module.dependencies, "plan_dependencies", incomplete_plan)
    monkeypatch.setattr(module.dependencies.SlicerInstaller, "install_torch", recorder.torch)
    monkeypatch.setattr(module.dependencies.SlicerInstaller, "pip_install", recorder.pip)
    return recorder


# --------------------------------------------------------------------------- 7: testing mode
def test_the_self_test_installs_without_asking_in_testing_mode(monkeypatch, tmp_path, caplog):
    module = load_module(monkeypatch, tmp_path, testing=True)
    # Slicer's own confirmOkCancelDisplay in testing mode: _messageDisplay returns True, which is
    # then compared with QMessageBox.Ok (0x400), so the answer is False (Slicer 5.8, 5.10, current)
    assert slicer.util.confirmOkCancelDisplay("Install?") is False
    asked = []
    real_confirm = slicer.util.confirmOkCancelDisplay
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay",
                        lambda *args, **kwargs: asked.append(args) or real_confirm(*args, **kwargs))
    recorder = stub_installation(monkeypatch, module)
    with caplog.at_level(logging.INFO):
        assert module.ensureEngineImportable() is True
    assert asked == []
    assert [call[:2] for call in recorder.calls] == [("torch", 1), ("pip", ["monai>=1.3"])]
    assert any("testing mode" in record.getMessage() for record in caplog.records)


def test_outside_testing_mode_the_user_is_asked_and_can_decline(monkeypatch, tmp_path):
    module = load_module(monkeypatch, tmp_path, testing=False)
    recorder = stub_installation(monkeypatch, module)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *args, **kwargs: False)
    assert module.ensureEngineImportable() is False
    assert recorder.calls == []


# --------------------------------------------------------------------------- 10c: cursor while asking
def test_the_install_question_is_asked_without_a_wait_cursor(monkeypatch, tmp_path):
    module = load_module(monkeypatch, tmp_path, testing=False)
    recorder = stub_installation(monkeypatch, module)
    cursors_when_asked = []
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay",
                        lambda *args, **kwargs: cursors_when_asked.append(len(QApplication.cursors)) or True)
    with slicer.util.WaitCursor():                   # a caller that is busy, e.g. a button handler
        assert len(QApplication.cursors) == 1
        assert module.ensureEngineImportable() is True
        assert len(QApplication.cursors) == 1        # the caller's cursor is back
    assert cursors_when_asked == [0]
    assert all(call[-1] >= 1 for call in recorder.calls)   # the installation itself shows the wait cursor
    assert QApplication.cursors == []


def test_an_installation_error_is_shown_without_a_wait_cursor(monkeypatch, tmp_path):
    module = load_module(monkeypatch, tmp_path, testing=False)
    monkeypatch.setattr(module.dependencies, "plan_dependencies", incomplete_plan)
    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", lambda *args, **kwargs: True)

    def failing_torch(*unused):
        raise dependencies.DependencyError("no PyTorch extension")

    monkeypatch.setattr(module.dependencies.SlicerInstaller, "install_torch", failing_torch)
    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: shown.append((text, len(QApplication.cursors))))
    assert module.ensureEngineImportable() is False
    assert len(shown) == 1 and "no PyTorch extension" in shown[0][0] and shown[0][1] == 0


# --------------------------------------------------------------------------- 8: collections released
def _result_scene():
    scene_io.ensure_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    for name in ("Red", "Green", "Yellow"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(name)
        scene.AddNode(composite)
    grid = np.eye(4)
    pet = scene_io.add_volume_node(scene, np.ones((4, 5, 6), np.float32), grid, "PET")
    heat = scene_io.add_volume_node(scene, np.zeros((4, 5, 6), np.float32), grid, "heat")
    heat.SetAttribute("MTLRadiomics.Scale", "enc1")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "MTV")
    segmentation.GetSegmentation().AddEmptySegment("MTV", "MTV")
    segmentation.SetAttribute(results.ROLE_ATTRIBUTE, results.ROLE_MTV)
    segmentation.SetNodeReferenceID(results.REF_PET, pet.GetID())
    segmentation.SetNodeReferenceID(results.REF_HEATMAP + "enc1", heat.GetID())
    return scene, pet, heat, segmentation


def test_scene_queries_release_the_collections_they_are_given():
    scene, pet, heat, segmentation = _result_scene()
    result = ResultNodes.from_segmentation(segmentation)
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode") for i in range(3)]
    watched = [*composites, segmentation]
    before = [node.GetReferenceCount() for node in watched]
    for _ in range(5):                        # each Analyze, heatmap or opacity change queries the scene
        assert len(results.results_for_pet(scene, pet)) == 1
        results.show_heatmap(scene, result, "enc1", 0.3)
        results.set_heatmap_opacity(scene, 0.6)
        results.hide_heatmaps(scene, result)
    assert [node.GetReferenceCount() for node in watched] == before
    listed = scene_io.nodes_by_class(scene, "vtkMRMLSliceCompositeNode")
    assert [n.GetID() for n in listed] == [n.GetID() for n in composites]
    assert scene_io.nodes_by_class(scene, "vtkMRMLTableNode") == []


def test_nodes_by_class_releases_the_callers_reference():
    scene, *_ = _result_scene()
    handed = []

    class SpyScene:                           # the scene as seen by the helper, keeping each collection
        def GetNodesByClass(self, name):
            collection = scene.GetNodesByClass(name)
            handed.append(collection)
            return collection

    scene_io.nodes_by_class(SpyScene(), "vtkMRMLSliceCompositeNode")
    assert len(handed) == 1 and handed[0].GetReferenceCount() == 1     # only our spy's reference is left


# --------------------------------------------------------------------------- 9: supported Slicer, installer
def test_slicer_58_is_refused_with_a_clear_message():
    problem = dependencies.support_problem((5, 8), (3, 9))
    assert "5.10 or later" in problem and "Slicer 5.8 runs Python 3.9" in problem
    assert dependencies.support_problem((5, 10), (3, 12)) == ""
    assert dependencies.support_problem((5, 11), (3, 12)) == ""
    assert "Python 3.9" in dependencies.support_problem(None, (3, 9))


def test_the_module_says_so_at_load_on_an_old_slicer(monkeypatch, tmp_path, caplog):
    module = load_module(monkeypatch, tmp_path, version=(5, 8))
    monkeypatch.setattr(module.sys, "version_info", (3, 9, 10))
    parent = types.SimpleNamespace()
    with caplog.at_level(logging.ERROR):
        module.MTLRadiomics(parent)
    assert parent.helpText.startswith("MTLRadiomics needs 3D Slicer 5.10 or later")
    assert any("5.10 or later" in record.getMessage() for record in caplog.records)
    shown = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: shown.append(text))
    monkeypatch.setattr(module.dependencies, "plan_dependencies",
                        lambda *a, **k: pytest.fail("nothing is planned on an unsupported Slicer"))
    assert module.ensureEngineImportable() is False
    assert shown and "Slicer 5.8 runs Python 3.9" in shown[0]


def test_the_supported_versions_are_declared():
    cmake = (PROJECT_ROOT / "CMakeLists.txt").read_text()
    assert "find_package(Slicer 5.10 REQUIRED)" in cmake
    assert "Slicer_REQUIRED_PYTHON_VERSION" in cmake
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "3D Slicer (5.10 or later)" in readme
    assert dependencies.MINIMUM_SLICER == (5, 10) and dependencies.MINIMUM_PYTHON == (3, 10)


class Distribution:
    def __init__(self, name, version):
        self.metadata, self.version = {"Name": name}, version


def test_constraints_pin_every_installed_package_but_pip_tooling():
    installed = dependencies.installed_distributions(
        [Distribution("pydicom", "2.4.4"), Distribution("SimpleITK", "2.5.2"), Distribution("numpy", "2.0.2"),
         Distribution("numpy", "1.26.4"),                      # a second copy further down sys.path
         Distribution("Pillow", "11.2.1"), Distribution("pip", "25.1.1"), Distribution("setuptools", "80.9.0"),
         Distribution("mtl-radiomics", "0.1.0"), Distribution("torch", "2.7.1+cu126"), Distribution("", "1.0")])
    assert installed["numpy"] == "2.0.2" and installed["simpleitk"] == "2.5.2"
    lines = dependencies.constraints_text(installed).splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["numpy==2.0.2", "pillow==11.2.1", "pydicom==2.4.4", "simpleitk==2.5.2", "torch==2.7.1+cu126"]


def test_pip_runs_with_slicers_versions_as_constraints(tmp_path):
    calls = []
    installer = dependencies.SlicerInstaller(constraints_folder=tmp_path, pip=calls.append,
                                             installed=lambda: dict(SLICER_510))
    installer.pip_install(["monai>=1.3", str(PROJECT_ROOT)])
    constraints = tmp_path / dependencies.SlicerInstaller.CONSTRAINTS_FILE
    assert calls == [["monai>=1.3", str(PROJECT_ROOT), "-c", str(constraints)]]
    pinned = constraints.read_text().splitlines()
    assert {"pydicom==2.4.4", "numpy==2.0.2", "simpleitk==2.5.2", "pillow==11.2.1", "scipy==1.13.1"} <= set(pinned)
    assert not any(line.startswith(("pip==", "setuptools==", "wheel==")) for line in pinned)


def test_a_conflict_with_slicers_packages_is_explained(tmp_path):
    def pip(arguments):
        raise subprocess.CalledProcessError(1, ["pip", "install", *arguments])

    installer = dependencies.SlicerInstaller(constraints_folder=tmp_path, pip=pip, installed=lambda: dict(SLICER_510))
    with pytest.raises(dependencies.DependencyError, match="kept as they are") as error:
        installer.pip_install(["highdicom>=0.23"])
    assert "nothing of Slicer's was replaced" in str(error.value)
    assert str(tmp_path / dependencies.SlicerInstaller.CONSTRAINTS_FILE) in str(error.value)


def test_slicer_510_gets_highdicom_for_the_engine_only(tmp_path):
    folder = tmp_path / "engine-packages"
    missing = {"torch", "highdicom", "monai"}
    plan = dependencies.plan_dependencies(MODULE_DIR, is_importable=lambda name: name not in missing,
                                          installed=SLICER_510, engine_only_folder=folder)
    assert plan.packages == ["monai>=1.3"]                          # not highdicom into Slicer's Python
    assert plan.engine_only == list(dependencies.ENGINE_ONLY_REQUIREMENTS) and plan.engine_only_folder == folder
    assert any(r.startswith("pydicom==3") for r in plan.engine_only)
    text = plan.describe()
    assert "pydicom 2.4.4 is left as it is" in text and "kept at their versions" in text
    calls = []
    installer = dependencies.SlicerInstaller(constraints_folder=tmp_path, pip=calls.append,
                                             installed=lambda: dict(SLICER_510))
    installer.install_torch = lambda: True
    dependencies.install_dependencies(plan, installer)
    assert calls[0][:1] == ["monai>=1.3"] and calls[0][1] == "-c"
    assert calls[1] == ["--upgrade", "--no-deps", "--target", str(folder), *dependencies.ENGINE_ONLY_REQUIREMENTS]
    # once the folder holds them nothing more is planned; a Slicer with pydicom 3 installs highdicom itself
    for package in ("pydicom", "highdicom"):
        (folder / package).mkdir(parents=True)
        (folder / package / "__init__.py").write_text("")
    again = dependencies.plan_dependencies(MODULE_DIR, is_importable=lambda name: name != "highdicom",
                                           installed=SLICER_510, engine_only_folder=folder)
    assert again.complete
    newer = dependencies.plan_dependencies(MODULE_DIR, is_importable=lambda name: name != "highdicom",
                                           installed={**SLICER_510, "pydicom": "3.0.2"}, engine_only_folder=folder)
    assert newer.packages == ["highdicom>=0.22"] and newer.engine_only == []


def test_the_engine_process_imports_the_engine_only_packages_first(tmp_path):
    folder = tmp_path / "engine-packages"
    (folder / "pydicom").mkdir(parents=True)
    (folder / "pydicom" / "__init__.py").write_text("__version__ = '3.0.2-engine-only'\n")
    (folder / "highdicom").mkdir()
    (folder / "highdicom" / "__init__.py").write_text("")
    engine = tmp_path / "engine"
    (engine / "MTLRadiomicsLib").mkdir(parents=True)
    (engine / "MTLRadiomicsLib" / "__init__.py").write_text("")
    (engine / "MTLRadiomicsLib" / "cli.py").write_text(
        "def main():\n    import pydicom, MTLRadiomicsLib\n    print(pydicom.__version__, MTLRadiomicsLib.__file__)\n"
        "    return 0\n")
    logic = AnalysisLogic(slicer.vtkMRMLScene(), sys.executable, engine, engine_only_folder=folder)
    command = logic._command(["analyze"])
    assert command[:3] == [sys.executable, "-c", BOOTSTRAP] and command[3] == f"{engine}{os.pathsep}{folder}"
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    version, engine_file = done.stdout.split()
    assert version == "3.0.2-engine-only" and Path(engine_file).parent == engine / "MTLRadiomicsLib"
    # without the folder (a Slicer with pydicom 3) the command is as before
    plain = AnalysisLogic(slicer.vtkMRMLScene(), sys.executable, engine, engine_only_folder=tmp_path / "none")
    assert plain._command(["analyze"]) == engine_command(sys.executable, engine, ["analyze"])
    assert engine_command(sys.executable, engine, ["analyze"])[3] == str(engine)


# --------------------------------------------------------------------------- 10a: scene close
class Stand:
    """A Qt widget as the module's code uses it: attributes, and methods that do nothing."""

    def __init__(self, **values):
        self.__dict__.update(enabled=True, text="", toolTip="", checked=False, value=0.5, currentText="",
                             currentIndex=0, count=0, currentPath="", node=None)
        self.__dict__.update(values)

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def currentNode(self):
        return self.node


class ParameterNode:
    model = ""

    def disconnectGui(self, tag):
        pass


def _widget(module, scene, pet, segmentation):
    widget = module.MTLRadiomicsWidget()
    widget.logic = AnalysisLogic(scene, sys.executable, PROJECT_ROOT)
    names = ("modelComboBox", "modelPathLineEdit", "modelInfoLabel", "suvStatusLabel", "analyzeButton",
             "updateScoresButton", "editMtvButton", "exportButton", "scoresTableView", "metricsTableView",
             "methodsTableView", "methodsLabel", "warningsLabel", "scoresLabel", "heatmapNoteLabel",
             "heatmapScaleComboBox", "heatmapOpacitySlider", "showMethodsCheckBox", "statusLabel")
    widget.ui = types.SimpleNamespace(**{name: Stand() for name in names})
    widget.ui.petVolumeSelector = Stand(node=pet)
    widget.ui.resultSelector = Stand(node=segmentation)
    widget._parameterNode = ParameterNode()
    return widget


def test_closing_the_scene_stops_observing_the_result(monkeypatch, tmp_path):
    module = load_module(monkeypatch, tmp_path)
    scene, pet, heat, segmentation = _result_scene()
    widget = _widget(module, scene, pet, segmentation)
    event = slicer.vtkSegmentation.SegmentModified
    widget.onResultChanged(segmentation)
    assert widget._result is not None and widget.hasObserver(segmentation, event, widget.onSegmentEdited)
    widget.onSceneStartClose(scene, None)
    assert widget._result is None and widget._observedSegmentation is None
    assert not widget.hasObserver(segmentation, event, widget.onSegmentEdited)
    assert widget.ui.suvStatusLabel.text == "Select a PET volume."


# --------------------------------------------------------------------------- 10b: SampleData from a script
class SampleDataLogic:
    """Slicer 5.10's SampleData logic, reduced to what downloadSample does: look the source up,
    rewrite each URI with the registered rules, fetch it into the cache with urllib (a failed
    download gives no node), load it. The custom downloader is only called by the module's button."""

    sources: dict = {}
    rules: dict = {}
    cache: Path = Path()

    @staticmethod
    def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None,
                                       nodeNames=None, customDownloader=None, thumbnailFileName=None,
                                       loadFileTypes=None, loadFiles=None, loadFileProperties={},
                                       checksums=None, loadFileType=None):
        SampleDataLogic.sources.setdefault(sampleName, {"uris": uris, "fileNames": fileNames,
                                                        "checksums": checksums, "downloader": customDownloader})

    @staticmethod
    def registerUrlRewriteRule(name, rewriteFunction):
        SampleDataLogic.rules[name] = rewriteFunction

    def downloadSamples(self, sampleName):
        import urllib.request

        source = self.sources[sampleName]
        uri = source["uris"]
        for rule in self.rules.values():
            uri = rule(uri)
        self.cache.mkdir(parents=True, exist_ok=True)
        path = self.cache / source["fileNames"]
        try:
            urllib.request.urlretrieve(uri, path)
        except OSError:
            return []
        return [path]

    def downloadSample(self, sampleName):
        return self.downloadSamples(sampleName)[0]


def test_sample_data_download_from_a_script_generates_the_sample(monkeypatch, tmp_path):
    module = load_module(monkeypatch, tmp_path)
    SampleDataLogic.sources, SampleDataLogic.rules, SampleDataLogic.cache = {}, {}, tmp_path / "SampleDataCache"
    sample_module = types.ModuleType("SampleData")
    sample_module.SampleDataLogic = SampleDataLogic
    sample_module.SampleDataSource = dict
    monkeypatch.setitem(sys.modules, "SampleData", sample_module)
    monkeypatch.setattr(module, "ensureEngineImportable", lambda: True)
    module.registerSampleData()                       # at startup: nothing generated yet
    assert sample_data.cached_sample_pet(module.sampleCacheFolder()) is None
    path = SampleDataLogic().downloadSample(sample_data.SAMPLE_NAME)      # a script's first use
    generated = sample_data.cached_sample_pet(module.sampleCacheFolder())
    assert generated is not None and sample_data.sha256_of(path) == generated.sha256
    assert SampleDataLogic.rules["MTLRadiomicsSamplePET"]("https://example.org/x.nrrd") == "https://example.org/x.nrrd"


def test_the_rewrite_rule_generates_only_the_missing_sample(tmp_path):
    made = []
    rule = sample_data.generating_rewrite_rule(tmp_path, lambda folder: made.append(folder))
    uri = (tmp_path / sample_data.SAMPLE_FILE).resolve().as_uri()
    assert rule("file:///elsewhere/other.nrrd") == "file:///elsewhere/other.nrrd" and made == []
    assert rule(uri) == uri and made == [tmp_path]

    def failing(folder):
        raise RuntimeError("no engine")

    assert sample_data.generating_rewrite_rule(tmp_path, failing)(uri) == uri     # logged, not raised


# --------------------------------------------------------------------------- 10d: the PET check
def _pet(scene, values):
    return scene_io.add_volume_node(scene, np.asarray(values, np.float32), np.diag([2.0, 2.0, 2.0, 1.0]), "PET")


def test_the_pet_check_runs_once_per_state_of_the_volume(monkeypatch):
    scene = slicer.vtkMRMLScene()
    logic = AnalysisLogic(scene, sys.executable, PROJECT_ROOT)
    node = _pet(scene, np.full((8, 8, 8), 2.0))
    calls = []
    real = pet_input.check_suv
    monkeypatch.setattr(pet_input, "check_suv", lambda *args: calls.append(1) or real(*args))
    first = logic.check_pet(node)
    for _ in range(10):                              # each button refresh
        assert logic.check_pet(node) is first
    assert first.usable and len(calls) == 1
    scene_io.set_volume_array(node, np.full((8, 8, 8), 20000.0, np.float32))   # now Bq/ml-like values
    changed = logic.check_pet(node)
    assert len(calls) == 2 and not changed.usable and "Bq/ml" in changed.message
    other = _pet(scene, np.full((8, 8, 8), 3.0))
    assert logic.check_pet(other).usable and len(calls) == 3


def test_the_pet_check_never_raises(tmp_path):
    scene = slicer.vtkMRMLScene()
    broken = tmp_path / "not_dicom.dcm"
    broken.write_text("not a DICOM file")
    logic = AnalysisLogic(scene, sys.executable, PROJECT_ROOT, dicom_lookup=lambda uid: str(broken))
    node = _pet(scene, np.full((4, 4, 4), 2.0))
    node.SetAttribute(pet_input.INSTANCE_UIDS_ATTRIBUTE, "1.2.3")
    check = logic.check_pet(node)
    assert not check.usable and check.message.startswith("This volume cannot be checked:")

    def failing_lookup(uid):
        raise RuntimeError("the DICOM database is locked")

    node.SetAttribute(pet_input.INSTANCE_UIDS_ATTRIBUTE, "1.2.4")
    logic.dicom_lookup = failing_lookup
    check = logic.check_pet(node)
    assert not check.usable and "database is locked" in check.message

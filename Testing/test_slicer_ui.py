"""The module's .ui file against the code that uses it, without a running Slicer.

Every widget the module reaches through ``self.ui.<name>`` must exist in the .ui file, and every
signal it connects must exist on that widget's class. The signal table below is taken from the
classes' own declarations:
- Qt 5.15 reference documentation (the Qt that Slicer 5.8 uses): QObject, QWidget, QAbstractButton,
  QCheckBox, QComboBox, QAbstractSpinBox, QSpinBox, QProgressBar, QLabel, QAbstractItemView, QTimer;
- CTK Libs/Widgets headers: ctkCollapsibleButton.h, ctkPathLineEdit.h, ctkDirectoryButton.h,
  ctkSliderWidget.h;
- Slicer headers: Libs/MRML/Widgets/qMRMLWidget.h, qMRMLNodeComboBox.h, qMRMLTableView.h,
  Base/QTGUI/qSlicerWidget.h, qSlicerApplication.h, Base/QTCore/qSlicerCoreApplication.h,
  Modules/Loadable/Markups/Widgets/qSlicerMarkupsPlaceWidget.h.
Signatures are written normalised, as PythonQt's connect() takes them (const QString& -> QString).
"""

from __future__ import annotations

import re
import sys
import typing
import xml.etree.ElementTree as ET
from enum import Enum
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = PROJECT_ROOT / "MTLRadiomics"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "MTLRadiomics.ui"
MODULE_FILE = MODULE_DIR / "MTLRadiomics.py"

BASES = {
    "QWidget": "QObject",
    "QAbstractButton": "QWidget",
    "QPushButton": "QAbstractButton",
    "QCheckBox": "QAbstractButton",
    "QComboBox": "QWidget",
    "QAbstractSpinBox": "QWidget",
    "QSpinBox": "QAbstractSpinBox",
    "QProgressBar": "QWidget",
    "QFrame": "QWidget",
    "QLabel": "QFrame",
    "QAbstractScrollArea": "QFrame",
    "QAbstractItemView": "QAbstractScrollArea",
    "QTableView": "QAbstractItemView",
    "QTimer": "QObject",
    "QCoreApplication": "QObject",
    "QGuiApplication": "QCoreApplication",
    "QApplication": "QGuiApplication",
    "qSlicerCoreApplication": "QApplication",
    "qSlicerApplication": "qSlicerCoreApplication",
    "qMRMLWidget": "QWidget",
    "qSlicerWidget": "QWidget",
    "qMRMLNodeComboBox": "QWidget",
    "qMRMLTableView": "QTableView",
    "qSlicerMarkupsPlaceWidget": "qSlicerWidget",
    "ctkCollapsibleButton": "QAbstractButton",
    "ctkPathLineEdit": "QWidget",
    "ctkDirectoryButton": "QWidget",
    "ctkSliderWidget": "QWidget",
}

SIGNALS = {
    "QObject": {"destroyed()", "destroyed(QObject*)", "objectNameChanged(QString)"},
    "QWidget": {"customContextMenuRequested(QPoint)", "windowIconChanged(QIcon)", "windowIconTextChanged(QString)",
                "windowTitleChanged(QString)"},
    "QAbstractButton": {"clicked()", "clicked(bool)", "pressed()", "released()", "toggled(bool)"},
    "QPushButton": set(),
    "QCheckBox": {"stateChanged(int)"},
    "QComboBox": {"activated(int)", "activated(QString)", "currentIndexChanged(int)", "currentIndexChanged(QString)",
                  "currentTextChanged(QString)", "editTextChanged(QString)", "highlighted(int)",
                  "highlighted(QString)", "textActivated(QString)", "textHighlighted(QString)"},
    "QAbstractSpinBox": {"editingFinished()"},
    "QSpinBox": {"valueChanged(int)", "valueChanged(QString)", "textChanged(QString)"},
    "QProgressBar": {"valueChanged(int)"},
    "QFrame": set(),
    "QLabel": {"linkActivated(QString)", "linkHovered(QString)"},
    "QAbstractScrollArea": set(),
    "QAbstractItemView": {"activated(QModelIndex)", "clicked(QModelIndex)", "doubleClicked(QModelIndex)",
                          "entered(QModelIndex)", "iconSizeChanged(QSize)", "pressed(QModelIndex)",
                          "viewportEntered()"},
    "QTableView": set(),
    "QTimer": {"timeout()"},
    "QCoreApplication": {"aboutToQuit()", "applicationNameChanged()", "applicationVersionChanged()",
                         "organizationDomainChanged()", "organizationNameChanged()"},
    "QGuiApplication": {"applicationStateChanged(Qt::ApplicationState)", "focusObjectChanged(QObject*)",
                        "lastWindowClosed()", "screenAdded(QScreen*)", "screenRemoved(QScreen*)"},
    "QApplication": {"focusChanged(QWidget*,QWidget*)"},
    "qSlicerCoreApplication": {"mrmlSceneChanged(vtkMRMLScene*)", "urlReceived(QString)",
                               "usageEventLogged(QString,QString)"},
    "qSlicerApplication": {"startupCompleted()", "renderPaused(bool)"},
    "qMRMLWidget": {"mrmlSceneChanged(vtkMRMLScene*)"},
    "qSlicerWidget": {"mrmlSceneChanged(vtkMRMLScene*)"},
    "qMRMLNodeComboBox": {"currentNodeChanged(vtkMRMLNode*)", "currentNodeChanged(bool)",
                          "currentNodeIDChanged(QString)", "nodeActivated(vtkMRMLNode*)", "nodeAdded(vtkMRMLNode*)",
                          "nodeAddedByUser(vtkMRMLNode*)", "nodeAddedByUserAction(vtkMRMLNode*)",
                          "nodeAboutToBeRemoved(vtkMRMLNode*)", "currentNodeRenamed(QString)",
                          "nodeAboutToBeEdited(vtkMRMLNode*)"},
    "qMRMLTableView": {"mrmlSceneChanged(vtkMRMLScene*)", "selectionChanged()"},
    "qSlicerMarkupsPlaceWidget": {"activeMarkupsPlaceModeChanged(bool)", "activeMarkupsFiducialPlaceModeChanged(bool)"},
    "ctkCollapsibleButton": {"contentsCollapsed(bool)"},
    "ctkPathLineEdit": {"validInputChanged(bool)", "currentPathChanged(QString)"},
    "ctkDirectoryButton": {"directoryChanged(QString)", "directorySelected(QString)"},
    "ctkSliderWidget": {"valueChanged(double)", "valueIsChanging(double)", "decimalsChanged(int)"},
}

# Slots the .ui file's own connections use (same headers).
SLOTS = {
    "qMRMLNodeComboBox": {"setMRMLScene(vtkMRMLScene*)"},
    "qMRMLTableView": {"setMRMLScene(vtkMRMLScene*)", "setMRMLTableNode(vtkMRMLNode*)"},
    "qSlicerWidget": {"setMRMLScene(vtkMRMLScene*)"},
    "qMRMLWidget": {"setMRMLScene(vtkMRMLScene*)"},
    "qSlicerMarkupsPlaceWidget": {"setMRMLScene(vtkMRMLScene*)", "setCurrentNode(vtkMRMLNode*)",
                                  "setPlaceModeEnabled(bool)"},
}

# Widgets slicer.parameterNodeWrapper can bind to a parameter of each type (the canRepresent() methods
# of Base/Python/slicer/parameterNodeWrapper/guiConnectors.py).
CONNECTABLE = {
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
    "int": {"QSpinBox", "QSlider", "QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox", "qMRMLSliderWidget"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox", "qMRMLSliderWidget"},
    "enum": {"QComboBox", "ctkComboBox"},
    "choice": {"QComboBox", "ctkComboBox"},
    "path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "node": {"qMRMLNodeComboBox"},
}


def normalise(signature: str) -> str:
    signature = signature.replace("const ", "").replace("&", "").replace(" ", "")
    return signature


def class_chain(name: str) -> list[str]:
    chain = [name]
    while chain[-1] in BASES:
        chain.append(BASES[chain[-1]])
    return chain


def has_signal(class_name: str, signal: str) -> bool:
    return any(normalise(signal) in SIGNALS.get(c, set()) for c in class_chain(class_name))


def has_slot(class_name: str, slot: str) -> bool:
    return any(normalise(slot) in SLOTS.get(c, set()) for c in class_chain(class_name))


@pytest.fixture(scope="module")
def ui():
    root = ET.parse(UI_FILE).getroot()
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}
    custom = {c.findtext("class"): c.findtext("extends") for c in root.iter("customwidget")}
    return {"root": root, "widgets": widgets, "custom": custom}


@pytest.fixture(scope="module")
def source() -> str:
    return MODULE_FILE.read_text()


def test_the_table_knows_every_class_of_the_ui(ui):
    for name, cls in ui["widgets"].items():
        assert cls in SIGNALS, f"{name}: add the signals of {cls} to the table"
    for cls, extends in ui["custom"].items():
        assert extends in class_chain(cls)[1:], f"{cls} extends {extends} in the .ui, not in {class_chain(cls)}"
    qt_classes = {c for c in ui["widgets"].values() if c.startswith("Q")}
    assert not (set(ui["widgets"].values()) - qt_classes - set(ui["custom"])), "undeclared custom widget"
    assert ui["root"].find("widget").get("class") == "qMRMLWidget"


def test_every_widget_the_module_uses_exists(ui, source):
    used = set(re.findall(r"self\.ui\.(\w+)", source))
    assert used, "the module uses no widget?"
    missing = sorted(used - set(ui["widgets"]))
    assert not missing, f"not in {UI_FILE.name}: {missing}"


def connections(source: str) -> list[tuple[str, str, int]]:
    """(receiver expression, signal, line) of every string-signature connect() call."""
    found = []
    for number, line in enumerate(source.splitlines(), 1):
        for match in re.finditer(r"([\w.]+)\.connect\(\s*[\"']([^\"']+)[\"']", line):
            found.append((match.group(1), match.group(2), number))
    return found


def test_every_connected_signal_exists_on_its_class(ui, source):
    timers = set(re.findall(r"self\.(\w+)\s*=\s*qt\.QTimer\(\)", source))
    found = connections(source)
    assert len([f for f in found if f[0].startswith("self.ui.")]) >= 10
    for target, signal, line in found:
        if target.startswith("self.ui."):
            name = target[len("self.ui."):]
            cls = ui["widgets"].get(name)
            assert cls is not None, f"line {line}: no widget {name} in the .ui"
        elif target.startswith("self.") and target[len("self."):] in timers:
            cls = "QTimer"
        elif target == "slicer.app":
            cls = "qSlicerApplication"
        else:
            pytest.fail(f"line {line}: connect() on {target}: add its class to this test")
        assert has_signal(cls, signal), f"line {line}: {cls} has no signal {signal}"
    # the attribute form (widget.signal.connect) is checked by name
    for name, signal in re.findall(r"self\.ui\.(\w+)\.(\w+)\.connect\(", source):
        cls = ui["widgets"][name]
        assert any(s.split("(")[0] == signal for c in class_chain(cls) for s in SIGNALS.get(c, ())), \
            f"{cls} has no signal {signal}"


def test_the_signal_check_can_fail():
    assert not has_signal("QPushButton", "valueChanged(double)")
    assert has_signal("QPushButton", "clicked(bool)")
    assert has_signal("ctkPathLineEdit", "currentPathChanged(const QString&)")
    assert not has_signal("ctkSliderWidget", "valueChanged(int)")


def test_ui_connections_use_existing_signals_and_slots(ui):
    edges = ui["root"].find("connections")
    assert edges is not None and len(edges) >= 5
    connected = set()
    for edge in edges:
        sender, receiver = edge.findtext("sender"), edge.findtext("receiver")
        assert has_signal(ui["widgets"][sender], edge.findtext("signal")), sender
        assert has_slot(ui["widgets"][receiver], edge.findtext("slot")), receiver
        connected.add(receiver)
    # every MRML widget gets the scene from the top-level qMRMLWidget
    needs_scene = {n for n, c in ui["widgets"].items()
                   if c in ("qMRMLNodeComboBox", "qMRMLTableView", "qSlicerMarkupsPlaceWidget")}
    assert needs_scene <= connected, sorted(needs_scene - connected)


# Parameters the widget keeps in step with its widget in code, not through SlicerParameterName: the
# model combo box lists the installed models, which are only known at run time (a Choice annotation
# is fixed when the class is made). name -> the widget showing it.
CODE_BOUND = {"model": "modelComboBox"}


def parameter_kind(annotation) -> str:
    import pathlib

    import slicer

    base = typing.get_origin(annotation) is typing.Annotated and typing.get_args(annotation)[0] or annotation
    extras = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is typing.Annotated else ()
    if typing.get_origin(base) is typing.Union:
        args = [a for a in typing.get_args(base) if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, slicer.vtkMRMLNode) for a in args):
            return "node"
    if isinstance(base, type) and issubclass(base, slicer.vtkMRMLNode):
        return "node"
    if isinstance(base, type) and issubclass(base, Enum):
        return "enum"
    if base is str and any(type(e).__name__ == "Choice" for e in extras):
        return "choice"
    if base in (pathlib.Path, pathlib.PurePath):
        return "path"
    return {bool: "bool", int: "int", float: "float"}.get(base, f"unsupported {base!r}")


def test_code_bound_parameters_are_read_and_written_by_the_widget(ui, source):
    for parameter, widget in CODE_BOUND.items():
        assert widget in ui["widgets"] and widget in source, widget
        assert re.search(rf"self\._parameterNode\.{parameter}\s*=[^=]", source), f"{parameter} is never written"
        assert re.search(rf"self\._parameterNode\.{parameter}\b(?!\s*=[^=])", source), f"{parameter} is never read"
        assert not any(p.get("name") == "SlicerParameterName" for w in ui["root"].iter("widget")
                       if w.get("name") == widget for p in w.findall("property"))


def test_mtv_choices_say_what_the_scores_use(ui):
    widgets = {w.get("name"): w for w in ui["root"].iter("widget")}

    def text(name, prop):
        return next(p.findtext("string") for p in widgets[name].findall("property") if p.get("name") == prop)

    tip = text("mtvMethodComboBox", "toolTip")
    assert "scores" in tip and "Every method's MTV" in tip
    assert text("fillHolesCheckBox", "text") == "Fill holes (necrotic cores)"
    assert ui["widgets"]["methodsTableView"] == "qMRMLTableView"


def test_parameter_names_match_the_parameter_node(ui):
    pytest.importorskip("slicer", reason="the slicer-core wheel gives the node classes")
    if str(MODULE_DIR) not in sys.path:
        sys.path.insert(0, str(MODULE_DIR))
    from MTLRadiomicsModuleLogic import parameters

    hints = typing.get_type_hints(parameters.MTLRadiomicsParameterNode, include_extras=True)
    bound = {}
    for widget in ui["root"].iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = (widget.get("name"), widget.get("class"))
    expected = set(hints) - set(CODE_BOUND)
    assert set(bound) == expected, f"unbound: {expected - set(bound)}, unknown: {set(bound) - expected}"
    for parameter, (name, cls) in bound.items():
        kind = parameter_kind(hints[parameter])
        assert cls in CONNECTABLE.get(kind, set()), f"{name} ({cls}) cannot show the {kind} parameter {parameter}"
    # node selectors list the node classes the parameter accepts
    import slicer

    for parameter, (name, cls) in bound.items():
        if cls != "qMRMLNodeComboBox":
            continue
        widget = next(w for w in ui["root"].iter("widget") if w.get("name") == name)
        listed = {s.text for p in widget.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")}
        annotation = hints[parameter]
        args = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Union else (annotation,)
        wanted = {a().GetClassName() for a in args if isinstance(a, type) and issubclass(a, slicer.vtkMRMLNode)}
        assert listed == wanted, f"{name}: {listed} != {wanted}"


STAND_INS = r'''
import json, sys, types
from pathlib import Path

module_dir, tmp = sys.argv[1], Path(sys.argv[2])
sys.path.insert(0, module_dir)
import slicer                      # slicer-core: real MRML and slicer.util
import slicer.util

# What only the Slicer application provides, reduced to what the module touches at load time.
qt = types.ModuleType("qt")
sys.modules["qt"] = qt
base = types.ModuleType("slicer.ScriptedLoadableModule")


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None):
        super().__init__()         # as Slicer's class does
        self.moduleName = self.__class__.__name__[:-len("Logic")]


class ScriptedLoadableModuleWidget:
    pass


class ScriptedLoadableModuleTest:
    pass


for cls in (ScriptedLoadableModule, ScriptedLoadableModuleLogic, ScriptedLoadableModuleWidget,
            ScriptedLoadableModuleTest):
    setattr(base, cls.__name__, cls)
sys.modules["slicer.ScriptedLoadableModule"] = base


class App:
    temporaryPath = str(tmp / "temp")
    cachePath = str(tmp / "cache")
    signals = []

    def connect(self, signal, slot):
        self.signals.append(signal)


slicer.app = App()
slicer.mrmlScene = slicer.vtkMRMLScene()
registered = []


class SampleDataLogic:
    @staticmethod
    def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None, fileNames=None,
                                       nodeNames=None, customDownloader=None, thumbnailFileName=None,
                                       loadFileTypes=None, loadFiles=None, loadFileProperties={},
                                       checksums=None, loadFileType=None):   # Slicer 5.8's signature
        registered.append({"category": category, "sampleName": sampleName, "uris": uris,
                           "fileNames": fileNames, "nodeNames": nodeNames, "checksums": checksums,
                           "thumbnail": thumbnailFileName, "downloader": callable(customDownloader)})


sample_data_module = types.ModuleType("SampleData")
sample_data_module.SampleDataLogic = SampleDataLogic
sys.modules["SampleData"] = sample_data_module

import MTLRadiomics as module

parent = types.SimpleNamespace()
module.MTLRadiomics(parent)
logic = module.MTLRadiomicsLogic()
module.registerSampleData()
from MTLRadiomicsModuleLogic import sample_data
sample_data.ensure_sample_pet(Path(slicer.app.cachePath) / "MTLRadiomics")
module.registerSampleData()
print(json.dumps({
    "title": parent.title, "categories": parent.categories, "signals": App.signals,
    "python": logic.python, "engine_root": str(logic.engine_root), "module_name": logic.moduleName,
    "is_module_logic": isinstance(logic, ScriptedLoadableModuleLogic), "scene": logic.scene is slicer.mrmlScene,
    "temp_root": str(logic.temp_root), "bundled_model": str(logic.bundled_model), "registered": registered,
    "models": [[m.key, m.is_default] for m in logic.installed_models()],
    "widget": hasattr(module, "MTLRadiomicsWidget"), "test": hasattr(module, "MTLRadiomicsTest"),
}))
'''


def test_module_file_loads_with_stand_ins_for_the_application(tmp_path):
    """Module-level code, the module description, the Logic's construction (Slicer's logic base class
    calls super().__init__() without arguments) and the Sample Data registration (checked against
    Slicer 5.8's signature), with stand-ins for Qt and the application object."""
    import json
    import os
    import subprocess

    pytest.importorskip("slicer", reason="the slicer-core wheel gives MRML and slicer.util")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "PythonSlicer").symlink_to(sys.executable)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    done = subprocess.run([sys.executable, "-c", STAND_INS, str(MODULE_DIR), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["title"] == "MTLRadiomics" and report["categories"] == ["Quantification"]
    assert report["signals"] == ["startupCompleted()"]
    assert Path(report["python"]) == bin_dir / "PythonSlicer"
    assert Path(report["engine_root"]) == PROJECT_ROOT
    assert report["module_name"] == "MTLRadiomics" and report["is_module_logic"] and report["scene"]
    assert Path(report["temp_root"]) == tmp_path / "temp" / "MTLRadiomics"
    assert report["bundled_model"].endswith(str(Path("Resources") / "models" / "default"))
    if (PROJECT_ROOT / "Resources" / "models" / "default" / "model.json").is_file():
        assert report["models"][0] == ["default", True]          # the default model first
    assert report["widget"] and report["test"]
    first, second = report["registered"]
    cached = tmp_path / "cache" / "MTLRadiomics" / "MTLRadiomicsSamplePET.nrrd"
    assert first["uris"] == cached.resolve().as_uri() and first["checksums"] is None
    assert second["uris"] == first["uris"] and second["checksums"].startswith("SHA256:")
    assert first["fileNames"] == "MTLRadiomicsSamplePET.nrrd" and first["nodeNames"] == "MTLRadiomicsSamplePET"
    assert first["downloader"] and Path(first["thumbnail"]).is_file()

"""Python packages the engine needs in Slicer's Python, installed on first use after the user agrees.

PyTorch comes through the PyTorch extension (``PyTorchUtils``), which picks the build that matches
the computer's GPU driver; the other packages through ``slicer.util.pip_install``; the engine itself
is either shipped beside the module (the built extension) or installed from the source folder the
module sits in. The plan is computed from what can be imported, so it is tested with fakes; the
Slicer installer is a small class behind the ``Installer`` interface. No Qt import.

Supported: 3D Slicer 5.10 and later (Python 3.12; the engine needs Python 3.10 or later, so Slicer
5.8 with Python 3.9 is refused with a message). pip runs with a constraints file that pins every
package already in Slicer's Python to its installed version, so installing the engine never
replaces one of Slicer's own packages (pydicom, numpy, SimpleITK, ...) nor the PyTorch build that
the PyTorch extension chose.

DICOM SEG (highdicom) and Slicer's pydicom: highdicom 0.23 and later need pydicom 3; highdicom
0.22, the last release for pydicom 2, fails with numpy 2 (it uses ``np.float_``). Slicer 5.10 ships
pydicom 2.4.4 with numpy 2.0.2, so no highdicom works in its Python. On such a Slicer, pydicom 3 and
highdicom go into a folder of their own that only the engine process puts first on its path
(``ENGINE_ONLY_REQUIREMENTS``, the pair Slicer's own later releases ship together); Slicer keeps its
pydicom.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Protocol, Sequence

ENGINE_PACKAGE = "MTLRadiomicsLib"
ENGINE_DISTRIBUTION = "mtl-radiomics"
TORCH_REQUIREMENT = ">=2.1"

MINIMUM_SLICER = (5, 10)
MINIMUM_PYTHON = (3, 10)          # pyproject.toml requires-python

# pydicom 3 and highdicom for the engine process only, where Slicer's pydicom is older than 3
ENGINE_ONLY_REQUIREMENTS: tuple[str, ...] = ("pydicom==3.0.2", "highdicom==0.27.0", "pyjpegls==1.5.1",
                                             "typing-extensions>=4.0")
PIP_TOOLING = frozenset({"pip", "setuptools", "wheel"})   # never pinned: pip may need newer build tools


@dataclass(frozen=True)
class Requirement:
    import_name: str
    pip: str


# The engine's dependencies (pyproject.toml [project.dependencies] without torch, plus the dicom
# extra, which writes DICOM SEG for DICOM input). A test keeps this list and pyproject.toml in step.
ENGINE_REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("numpy", "numpy>=1.24"),
    Requirement("scipy", "scipy>=1.10"),
    Requirement("SimpleITK", "SimpleITK>=2.3"),
    Requirement("pydicom", "pydicom>=2.4"),
    Requirement("matplotlib", "matplotlib>=3.7"),
    Requirement("tqdm", "tqdm>=4.60"),
    Requirement("monai", "monai>=1.3"),
    Requirement("safetensors", "safetensors>=0.4"),
    Requirement("slicerio", "slicerio>=1.0"),
    Requirement("highdicom", "highdicom>=0.22"),
)


class DependencyError(RuntimeError):
    """A dependency cannot be installed; the message says what the user can do."""


# --------------------------------------------------------------------------- supported Slicer
def _dotted(version: Sequence[int]) -> str:
    return ".".join(str(v) for v in version)


def support_problem(slicer_version: Optional[Sequence[int]], python_version: Sequence[int]) -> str:
    """Why this Slicer cannot run the extension, or "" when it can (Slicer 5.10+, Python 3.10+)."""
    too_old_slicer = slicer_version is not None and tuple(slicer_version[:2]) < MINIMUM_SLICER
    too_old_python = tuple(python_version[:2]) < MINIMUM_PYTHON
    if not (too_old_slicer or too_old_python):
        return ""
    this = (f"Slicer {_dotted(slicer_version[:2])} " if slicer_version is not None else "this Slicer ") + \
        f"runs Python {_dotted(python_version[:2])}"
    return (f"MTLRadiomics needs 3D Slicer {_dotted(MINIMUM_SLICER)} or later (Python "
            f"{_dotted(MINIMUM_PYTHON)} or later for the engine); {this}. Install a newer Slicer to use it.")


# --------------------------------------------------------------------------- what Slicer has
def canonical_name(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions(distributions: Optional[Iterable] = None) -> dict[str, str]:
    """Canonical name -> version of every distribution installed in this Python (the first one
    found on sys.path when a name is installed twice, as import would)."""
    found: dict[str, str] = {}
    for distribution in importlib.metadata.distributions() if distributions is None else distributions:
        try:
            name, version = distribution.metadata["Name"], distribution.version
        except (KeyError, AttributeError, TypeError):
            continue
        if name and version:
            found.setdefault(canonical_name(name), str(version))
    return found


def constraints_text(installed: Mapping[str, str]) -> str:
    """A pip constraints file that keeps each installed package at its version (pip's own tooling
    and the engine's distribution excepted)."""
    lines = ["# Written by MTLRadiomics: the packages already in Slicer's Python stay as they are."]
    for name, version in sorted(installed.items()):
        if name not in PIP_TOOLING and name != ENGINE_DISTRIBUTION:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def needs_engine_only_dicom(installed: Mapping[str, str]) -> bool:
    """True when Slicer's pydicom is older than 3: no highdicom can be installed beside it (see the
    module docstring), so the engine gets pydicom 3 and highdicom in a folder of its own."""
    version = installed.get("pydicom")
    if not version:
        return False
    match = re.match(r"(\d+)", version)
    return bool(match) and int(match.group(1)) < 3


def engine_only_ready(folder: Optional[str | Path]) -> bool:
    """Whether the engine-only folder holds pydicom and highdicom."""
    if folder is None:
        return False
    folder = Path(folder)
    return all((folder / package / "__init__.py").is_file() for package in ("pydicom", "highdicom"))


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------- where the engine is
def shipped_engine_root(module_dir: str | Path) -> Optional[Path]:
    """The folder holding the MTLRadiomicsLib package next to the module: the module's own folder
    in a built extension, the repository root when Slicer uses the source folder directly."""
    module_dir = Path(module_dir).resolve()
    for folder in (module_dir, module_dir.parent):
        if (folder / ENGINE_PACKAGE / "__init__.py").is_file():
            return folder
    return None


def engine_source_folder(module_dir: str | Path) -> Optional[Path]:
    """The pip-installable engine source (pyproject.toml + MTLRadiomicsLib) beside the module."""
    root = shipped_engine_root(module_dir)
    if root is not None and (root / "pyproject.toml").is_file():
        return root
    return None


def engine_root(module_dir: Optional[str | Path] = None) -> Optional[Path]:
    """The folder the engine is imported from: an installed package, else the shipped folder."""
    spec = None
    try:
        spec = importlib.util.find_spec(ENGINE_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parents[1]
    return shipped_engine_root(module_dir) if module_dir is not None else None


def make_engine_importable(module_dir: str | Path) -> bool:
    """Put the shipped engine on sys.path when it is not importable yet; True when importable."""
    if importable(ENGINE_PACKAGE):
        return True
    root = shipped_engine_root(module_dir)
    if root is None:
        return False
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    return importable(ENGINE_PACKAGE)


# --------------------------------------------------------------------------- plan
@dataclass
class DependencyPlan:
    """What is missing and how it will be installed."""

    torch: bool = False
    packages: list[str] = field(default_factory=list)
    engine_source: Optional[Path] = None
    engine_only: list[str] = field(default_factory=list)     # into engine_only_folder, for the engine only
    engine_only_folder: Optional[Path] = None
    slicer_pydicom: str = ""                                  # Slicer's pydicom when engine_only is used

    @property
    def complete(self) -> bool:
        return not (self.torch or self.packages or self.engine_source or self.engine_only)

    def describe(self) -> str:
        lines = ["MTLRadiomics needs Python packages that are not installed in Slicer yet:"]
        if self.torch:
            lines.append(f"- PyTorch (torch{TORCH_REQUIREMENT}), installed by the PyTorch extension with the "
                         "build that matches this computer (CUDA when an NVIDIA GPU is usable, else CPU)")
        if self.engine_source is not None:
            lines.append(f"- the MTLRadiomics engine from {self.engine_source}, with its dependencies")
        if self.packages:
            lines.append("- " + ", ".join(self.packages))
        if self.engine_only:
            lines.append(f"- for DICOM SEG: {', '.join(self.engine_only)} into {self.engine_only_folder}, used only "
                         f"by the engine; Slicer's own pydicom {self.slicer_pydicom} is left as it is (no highdicom "
                         "for pydicom 2 works with the numpy of this Slicer)")
        lines.append("Packages already in Slicer's Python are kept at their versions.")
        lines.append("The download takes a few minutes and needs an internet connection. Install now?")
        return "\n".join(lines)


def plan_dependencies(module_dir: Optional[str | Path] = None,
                      is_importable: Callable[[str], bool] = importable,
                      installed: Optional[Mapping[str, str]] = None,
                      engine_only_folder: Optional[str | Path] = None) -> DependencyPlan:
    """What to install. ``installed``: the distributions of Slicer's Python (read from this Python
    when None); ``engine_only_folder``: where the engine's own pydicom 3 and highdicom go when
    Slicer's pydicom is older (None: no such folder, highdicom is planned like the others)."""
    installed = installed_distributions() if installed is None else installed
    plan = DependencyPlan(torch=not is_importable("torch"))
    engine_ok = is_importable(ENGINE_PACKAGE)
    if not engine_ok and module_dir is not None:
        source = engine_source_folder(module_dir)
        if source is not None:
            plan.engine_source = source                  # pip also brings the dependencies
        elif shipped_engine_root(module_dir) is None:
            raise DependencyError("the MTLRadiomics engine (MTLRadiomicsLib) is neither installed nor "
                                  f"shipped beside the module in {module_dir}; reinstall the extension")
    plan.packages = [r.pip for r in ENGINE_REQUIREMENTS if not is_importable(r.import_name)]
    if engine_only_folder is not None and needs_engine_only_dicom(installed):
        plan.packages = [p for p in plan.packages if not p.startswith("highdicom")]
        if not engine_only_ready(engine_only_folder):
            plan.engine_only = list(ENGINE_ONLY_REQUIREMENTS)
            plan.engine_only_folder = Path(engine_only_folder)
            plan.slicer_pydicom = installed.get("pydicom", "")
    return plan


class Installer(Protocol):
    """How packages get installed (Slicer's implementation below; fakes in tests)."""

    def confirm(self, text: str) -> bool: ...

    def install_torch(self) -> bool: ...

    def pip_install(self, requirements: list[str]) -> None: ...

    def pip_install_engine_only(self, requirements: list[str], folder: Path) -> None: ...


def ensure_dependencies(plan: DependencyPlan, installer: Installer) -> bool:
    """Install what ``plan`` lists after one confirmation; False when the user declines.
    Raises DependencyError when an installation fails."""
    if plan.complete:
        return True
    if not installer.confirm(plan.describe()):
        return False
    install_dependencies(plan, installer)
    return True


def install_dependencies(plan: DependencyPlan, installer: Installer) -> None:
    """Install what ``plan`` lists, without asking (the caller has asked, or runs a self-test).
    Raises DependencyError when an installation fails."""
    if plan.torch and not installer.install_torch():
        raise DependencyError("PyTorch was not installed. Install it with the PyTorch Utils module "
                              "(PyTorch extension) and try again.")
    if plan.engine_source is not None:
        installer.pip_install([str(plan.engine_source)])
    if plan.packages:
        installer.pip_install(list(plan.packages))
    if plan.engine_only:
        installer.pip_install_engine_only(list(plan.engine_only), plan.engine_only_folder)


def pip_arguments(requirements: Sequence[str], constraints_file: str | Path) -> list[str]:
    """``pip install`` arguments: the requirements, held to the constraints file."""
    return [*[str(r) for r in requirements], "-c", str(constraints_file)]


def engine_only_arguments(requirements: Sequence[str], folder: str | Path) -> list[str]:
    """``pip install`` arguments that put exactly ``requirements`` into ``folder`` (no dependencies:
    everything else comes from Slicer's Python)."""
    return ["--upgrade", "--no-deps", "--target", str(folder), *[str(r) for r in requirements]]


class SlicerInstaller:
    """Installs into Slicer's Python: torch through the PyTorch extension, the rest with pip held to
    the versions Slicer's Python already has (see the module docstring).

    confirm: asks the user (None: agreed). constraints_folder: where the constraints file is
    written. pip: runs ``pip install ARGS`` (None: slicer.util.pip_install). installed: the
    installed distributions (None: read from this Python at each install)."""

    CONSTRAINTS_FILE = "slicer-constraints.txt"

    def __init__(self, confirm: Optional[Callable[[str], bool]] = None,
                 constraints_folder: Optional[str | Path] = None,
                 pip: Optional[Callable[[list[str]], None]] = None,
                 installed: Optional[Callable[[], Mapping[str, str]]] = None):
        self._confirm = confirm
        self._constraints_folder = Path(constraints_folder) if constraints_folder else None
        self._pip = pip
        self._installed = installed or installed_distributions

    def confirm(self, text: str) -> bool:
        return True if self._confirm is None else bool(self._confirm(text))

    def install_torch(self) -> bool:
        try:
            import PyTorchUtils
        except ImportError:
            raise DependencyError("MTLRadiomics needs the PyTorch extension: install 'PyTorch' from the "
                                  "Extensions Manager, restart Slicer and try again.") from None
        logic = PyTorchUtils.PyTorchUtilsLogic()
        if logic.torchInstalled():
            return True
        # the user has just agreed to the whole list: no second question
        torch = logic.installTorch(askConfirmation=False, torchVersionRequirement=TORCH_REQUIREMENT)
        return torch is not None

    def _run_pip(self, arguments: list[str]) -> None:
        if self._pip is not None:
            self._pip(arguments)
            return
        import slicer

        slicer.util.pip_install(arguments)

    def write_constraints(self) -> Path:
        """The constraints file from the distributions installed now (torch included, once the
        PyTorch extension has installed it)."""
        import tempfile

        folder = self._constraints_folder or Path(tempfile.gettempdir()) / "MTLRadiomics"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / self.CONSTRAINTS_FILE
        path.write_text(constraints_text(self._installed()))
        return path

    def pip_install(self, requirements: list[str]) -> None:
        constraints = self.write_constraints()
        logging.info("MTLRadiomics: pip install %s (constraints: %s)", " ".join(requirements), constraints)
        try:
            self._run_pip(pip_arguments(requirements, constraints))
        except subprocess.CalledProcessError:
            raise DependencyError(
                f"pip found no versions of {', '.join(requirements)} that work with the packages already in "
                f"Slicer's Python, which are kept as they are (listed in {constraints}); nothing of Slicer's "
                "was replaced. The Python console shows pip's reason. A newer Slicer, or installing the "
                "named package by hand, may solve it.") from None

    def pip_install_engine_only(self, requirements: list[str], folder: Path) -> None:
        logging.info("MTLRadiomics: pip install %s into %s (for the engine only)", " ".join(requirements), folder)
        Path(folder).mkdir(parents=True, exist_ok=True)
        try:
            self._run_pip(engine_only_arguments(requirements, folder))
        except subprocess.CalledProcessError:
            raise DependencyError(f"Installing {', '.join(requirements)} into {folder} failed; the Python "
                                  "console shows pip's reason. Without them the engine cannot write DICOM "
                                  "SEG for DICOM input.") from None


# --------------------------------------------------------------------------- GPU
@dataclass
class DeviceStatus:
    """Whether the engine can use a CUDA GPU here, and why not."""

    cuda: bool
    message: str


def cuda_status(import_torch: Callable[[], object] = lambda: importlib.import_module("torch")) -> DeviceStatus:
    try:
        torch = import_torch()
    except ImportError:
        return DeviceStatus(False, "PyTorch is not installed yet; the analysis will install it first.")
    cuda_version = getattr(getattr(torch, "version", None), "cuda", None)
    if not cuda_version:
        return DeviceStatus(False, "This PyTorch build has no CUDA support (a CPU-only build): the analysis "
                            "runs on the CPU. Reinstall PyTorch with the PyTorch Utils module to use a GPU.")
    try:
        available = bool(torch.cuda.is_available())
    except Exception:                                # broken drivers raise instead of returning False
        available = False
    if not available:
        return DeviceStatus(False, f"No usable CUDA GPU was found (PyTorch built for CUDA {cuda_version}): "
                            "the analysis runs on the CPU.")
    try:
        name = torch.cuda.get_device_name(0)
    except Exception:
        name = "CUDA GPU"
    return DeviceStatus(True, f"GPU: {name} (CUDA {cuda_version}).")


def device_argument(choice: str, status_provider: Callable[[], DeviceStatus] = cuda_status) -> tuple[str, str]:
    """The engine's --device for the user's choice 'auto', 'cuda' or 'cpu', and a note for the user."""
    if choice in ("cpu", "auto"):
        return choice, ""                  # auto: the engine takes CUDA when it can, else the CPU
    status = status_provider()
    if not status.cuda:
        return "cpu", status.message
    return "cuda", status.message


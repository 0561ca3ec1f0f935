"""Python packages the engine needs in Slicer's Python, installed on first use after the user agrees.

PyTorch comes through the PyTorch extension (``PyTorchUtils``), which picks the build that matches
the computer's GPU driver; the other packages through ``slicer.util.pip_install``; the engine itself
is either shipped beside the module (the built extension) or installed from the source folder the
module sits in. The plan is computed from what can be imported, so it is tested with fakes; the
Slicer installer is a small class behind the ``Installer`` interface. No Qt import.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

ENGINE_PACKAGE = "MTLRadiomicsLib"
TORCH_REQUIREMENT = ">=2.1"


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

    @property
    def complete(self) -> bool:
        return not (self.torch or self.packages or self.engine_source)

    def describe(self) -> str:
        lines = ["MTLRadiomics needs Python packages that are not installed in Slicer yet:"]
        if self.torch:
            lines.append(f"- PyTorch (torch{TORCH_REQUIREMENT}), installed by the PyTorch extension with the "
                         "build that matches this computer (CUDA when an NVIDIA GPU is usable, else CPU)")
        if self.engine_source is not None:
            lines.append(f"- the MTLRadiomics engine from {self.engine_source}, with its dependencies")
        if self.packages:
            lines.append("- " + ", ".join(self.packages))
        lines.append("The download takes a few minutes and needs an internet connection. Install now?")
        return "\n".join(lines)


def plan_dependencies(module_dir: Optional[str | Path] = None,
                      is_importable: Callable[[str], bool] = importable) -> DependencyPlan:
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
    return plan


class Installer(Protocol):
    """How packages get installed (Slicer's implementation below; fakes in tests)."""

    def confirm(self, text: str) -> bool: ...

    def install_torch(self) -> bool: ...

    def pip_install(self, requirements: list[str]) -> None: ...


def ensure_dependencies(plan: DependencyPlan, installer: Installer) -> bool:
    """Install what ``plan`` lists after one confirmation; False when the user declines.
    Raises DependencyError when an installation fails."""
    if plan.complete:
        return True
    if not installer.confirm(plan.describe()):
        return False
    if plan.torch and not installer.install_torch():
        raise DependencyError("PyTorch was not installed. Install it with the PyTorch Utils module "
                              "(PyTorch extension) and try again.")
    if plan.engine_source is not None:
        installer.pip_install([str(plan.engine_source)])
    if plan.packages:
        installer.pip_install(list(plan.packages))
    return True


class SlicerInstaller:
    """Installs into Slicer's Python: torch through the PyTorch extension, the rest with pip."""

    def __init__(self, confirm: Callable[[str], bool]):
        self._confirm = confirm

    def confirm(self, text: str) -> bool:
        return bool(self._confirm(text))

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

    def pip_install(self, requirements: list[str]) -> None:
        import slicer

        slicer.util.pip_install(list(requirements))


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


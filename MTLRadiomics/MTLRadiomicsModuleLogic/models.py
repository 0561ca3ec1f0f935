"""The installed models, listed for the module's model combo box without importing the engine.

The engine keeps its installed models as folders (a model card ``model.json`` + weights) under a
models root: ``$MTL_RADIOMICS_MODELS``, else ``Resources/models`` beside the engine package
(``MTLRadiomicsLib/model/registry.py``). Importing the engine pulls in PyTorch, which may not be
installed yet when the module opens, so the cards are read here the same way: folder name and
card name both name a model; the default model comes first. No Qt and no torch import.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

MODELS_ENV = "MTL_RADIOMICS_MODELS"          # the engine's variable for another folder of installed models
CARD_FILE = "model.json"


@dataclass(frozen=True)
class InstalledModel:
    """One installed model: ``key`` (its folder name), the card's ``name``, its folder and a summary."""

    key: str
    name: str
    folder: Path
    summary: str = ""
    is_default: bool = False

    def label(self) -> str:
        """What the combo box shows."""
        text = self.name if self.name == self.key else f"{self.name} ({self.key})"
        return text + ("  [default]" if self.is_default else "")


def read_card(folder: str | Path) -> Optional[dict]:
    """The model card of ``folder`` as a dict, or None when it has none or it is unreadable."""
    try:
        card = json.loads((Path(folder) / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def card_summary(card: dict) -> str:
    """What the model was trained on, else its intended use (one line)."""
    data = card.get("training_data") or {}
    if isinstance(data, dict):
        text = data.get("summary") or data.get("source") or ""
        if text:
            return str(text)
    return str(card.get("intended_use", "") or "")


def models_root(engine_root: Optional[str | Path], env: Optional[Mapping[str, str]] = None,
                fallback: Optional[str | Path] = None) -> Optional[Path]:
    """Where the engine looks for installed models: ``$MTL_RADIOMICS_MODELS`` (of the engine's
    environment), else ``Resources/models`` beside the engine package, else ``fallback``."""
    environment = os.environ if env is None else env
    if environment.get(MODELS_ENV):
        return Path(environment[MODELS_ENV])
    candidates = [Path(engine_root) / "Resources" / "models"] if engine_root else []
    if fallback:
        candidates.append(Path(fallback))
    for folder in candidates:
        if folder.is_dir():
            return folder
    return candidates[0] if candidates else None


def _same(a: Path, b: Optional[Path]) -> bool:
    if b is None:
        return False
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def installed_models(root: Optional[str | Path], default_folder: Optional[str | Path] = None) -> list[InstalledModel]:
    """Every folder under ``root`` with a readable model card, the default model first.

    ``default_folder``: the default model (the module's bundled model); it is listed first even when
    it lies outside ``root``. Without it the folder named ``default`` is the default."""
    default = Path(default_folder) if default_folder else (Path(root) / "default" if root else None)
    found: list[InstalledModel] = []
    if root and Path(root).is_dir():
        for folder in sorted(p for p in Path(root).iterdir() if (p / CARD_FILE).is_file()):
            card = read_card(folder)
            if card is None:
                continue
            found.append(InstalledModel(folder.name, str(card.get("name") or folder.name), folder,
                                        card_summary(card), _same(folder, default)))
    if default is not None and not any(m.is_default for m in found):
        card = read_card(default)
        if card is not None:
            found.append(InstalledModel(default.name, str(card.get("name") or default.name), default,
                                        card_summary(card), True))
    return sorted(found, key=lambda m: (not m.is_default, m.key))


def find_model(choice: str, models: list[InstalledModel]) -> Optional[InstalledModel]:
    """The installed model named ``choice`` (its folder name first, then its card name)."""
    for model in models:
        if choice == model.key:
            return model
    for model in models:
        if choice == model.name:
            return model
    return None

"""The installed models: folders under ``Resources/models/`` (each a model card + safetensors), found
by folder name or card name; the default is ``$MTL_RADIOMICS_MODEL`` or the folder ``default``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from MTLRadiomicsLib.errors import ModelFileError

MODEL_ENV = "MTL_RADIOMICS_MODEL"
MODELS_ENV = "MTL_RADIOMICS_MODELS"          # another folder of installed models
DEFAULT_FOLDER = "default"
CARD_FILE = "model.json"


@dataclass
class InstalledModel:
    """One installed model: its folder name (``key``), card name, folder and card summary."""

    key: str
    name: str
    folder: Path
    summary: str
    is_default: bool

    def to_dict(self) -> dict:
        return {"key": self.key, "name": self.name, "folder": str(self.folder), "summary": self.summary,
                "default": self.is_default}


def models_root() -> Path:
    """The folder of installed models: $MTL_RADIOMICS_MODELS, else Resources/models beside the engine."""
    if os.environ.get(MODELS_ENV):
        return Path(os.environ[MODELS_ENV])
    return Path(__file__).resolve().parents[2] / "Resources" / "models"


def _scan() -> list[tuple[Path, dict]]:
    """(folder, card) for every folder under the models root that holds a readable model card."""
    root = models_root()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if (p / CARD_FILE).is_file()):
        try:
            found.append((folder, json.loads((folder / CARD_FILE).read_text())))
        except (OSError, ValueError):
            continue
    return found


def _match(choice: str) -> Optional[Path]:
    path = Path(choice).expanduser()
    if (path / CARD_FILE).is_file():
        return path
    for folder, card in _scan():
        if choice in (folder.name, str(card.get("name", ""))):
            return folder
    return None


def default_model_dir() -> Path:
    """The default model: $MTL_RADIOMICS_MODEL (a folder or an installed name), else ``default``."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return _match(chosen) or Path(chosen)
    return models_root() / DEFAULT_FOLDER


def _summary(card: dict) -> str:
    data = card.get("training_data", {}) or {}
    return str(data.get("summary") or data.get("source") or "")


def installed_models() -> list[InstalledModel]:
    """Every folder under the models root that holds a model card, the default first."""
    default = default_model_dir().resolve()
    found = [InstalledModel(folder.name, str(card.get("name", folder.name)), folder, _summary(card),
                            folder.resolve() == default) for folder, card in _scan()]
    return sorted(found, key=lambda m: (not m.is_default, m.key))


def resolve_model(choice: Optional[str | Path], use_default: bool = True) -> Path:
    """The folder of a model given as a folder path, an installed folder name or a card name;
    None gives the default model. Raises ModelFileError naming the installed models otherwise."""
    if choice is None or str(choice) == "":
        if not use_default:
            raise ModelFileError("no model given")
        return default_model_dir()
    found = _match(str(choice))
    if found is not None:
        return found
    path = Path(choice).expanduser()
    names = ", ".join(f"{m.key} ({m.name})" for m in installed_models()) or "none"
    if path.exists():
        raise ModelFileError(f"{path} holds no model card ({CARD_FILE}); installed models: {names}")
    raise ModelFileError(f"no model {str(choice)!r}: give a model folder or one of the installed models: {names} "
                         "(see 'mtl-radiomics models')")

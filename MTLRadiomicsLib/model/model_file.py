"""Save and load models as safetensors weights plus a JSON model card; nothing is unpickled."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import ModelFileError
from MTLRadiomicsLib.model.config import ModelConfig
from MTLRadiomicsLib.model.model_card import ModelCard
from MTLRadiomicsLib.model.network import MultiTaskNet

CARD_FILE = "model.json"


@dataclass
class LoadedModel:
    """A network in eval mode with its card."""

    network: MultiTaskNet
    card: ModelCard
    folder: Path

    @property
    def config(self) -> ModelConfig:
        return self.network.config


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(network: MultiTaskNet, card: ModelCard, folder: str | Path) -> Path:
    """Write ``folder/model.safetensors`` and ``folder/model.json``; returns the card path.

    The card's architecture, checksum, engine version and date are filled in here."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / card.weights_file
    state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as handle:
        tmp_weights = Path(handle.name)
    save_file(state, str(tmp_weights), metadata={"format": "pt", "name": card.name})
    os.chmod(tmp_weights, 0o644)
    os.replace(tmp_weights, weights)
    card.architecture = network.config.to_dict()
    card.weights_sha256 = sha256_of(weights)
    card.engine_version = __version__
    card.created = card.created or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    card_path = folder / CARD_FILE
    tmp_card = card_path.with_suffix(".json.tmp")
    tmp_card.write_text(json.dumps(card.to_dict(), indent=2))
    os.replace(tmp_card, card_path)
    return card_path


def read_card(folder: str | Path) -> ModelCard:
    """The model card of a model folder (or of a path to its model.json)."""
    path = Path(folder)
    card_path = path if path.suffix == ".json" else path / CARD_FILE
    if not card_path.exists():
        raise ModelFileError(f"no model card {CARD_FILE} in {card_path.parent}; a model folder holds "
                             f"{CARD_FILE} and its safetensors weights")
    try:
        return ModelCard.from_dict(json.loads(card_path.read_text()))
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{card_path} is not a valid model card ({error})") from None


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the network from the card and load the weights (checksum verified), in eval mode."""
    folder = Path(folder)
    if folder.suffix == ".json":
        folder = folder.parent
    card = read_card(folder)
    weights = folder / card.weights_file
    if not weights.exists():
        raise ModelFileError(f"the weights {weights.name} named by {CARD_FILE} are missing in {folder}")
    if card.weights_sha256 and sha256_of(weights) != card.weights_sha256:
        raise ModelFileError(f"{weights} does not match the checksum in {CARD_FILE}: the file is "
                             "damaged or belongs to another model")
    try:
        config = ModelConfig.from_dict(card.architecture)
    except (ValueError, TypeError) as error:
        raise ModelFileError(f"{folder / CARD_FILE}: invalid architecture ({error})") from None
    network = MultiTaskNet(config)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ModelFileError(f"{weights} cannot be read as safetensors ({error})") from None
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError:
        missing, unexpected = ["tensor shapes differ"], []
    if missing or unexpected:
        raise ModelFileError(f"{weights} does not fit the architecture in {CARD_FILE} "
                             f"({len(missing)} missing, {len(unexpected)} unexpected or mis-shaped tensors)")
    network.to(device).eval()
    return LoadedModel(network=network, card=card, folder=folder)

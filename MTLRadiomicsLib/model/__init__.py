"""The multi-task multi-scale network, its losses and its model files."""

from MTLRadiomicsLib.model.config import LossConfig, ModelConfig, named_config
from MTLRadiomicsLib.model.model_card import ModelCard, Preprocessing
from MTLRadiomicsLib.model.model_file import LoadedModel, load_model, read_card, save_model
from MTLRadiomicsLib.model.network import MultiTaskNet

__all__ = ["LossConfig", "ModelConfig", "named_config", "ModelCard", "Preprocessing", "LoadedModel",
           "load_model", "read_card", "save_model", "MultiTaskNet"]

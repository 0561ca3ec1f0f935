"""The YAML run configuration: model, loss, preprocessing and training settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from MTLRadiomicsLib.model.config import LossConfig, ModelConfig, named_config
from MTLRadiomicsLib.model.model_card import Preprocessing


@dataclass
class TrainingConfig:
    """Optimisation and bookkeeping (paper defaults: Adam, lr 1e-4, batch 4, patience 70)."""

    epochs: int = 300
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 0.0
    patience: int = 70
    seed: int = 0
    val_fold: int = 0
    num_workers: int = 0
    cache_rate: float = 1.0
    amp: bool = True
    threads: int = 0
    sampling: str = "lesion"      # "lesion": one crop around the lesion; "patches": windows from the whole case;
                                  # "mixed": both (windows for the segmentation, the crop for every task)
    monitor: str = "loss"         # early stopping on: "loss", "loss_outcome" (lower); "dice", "outcome_auc",
                                  # "c_index" (higher)
    init_weights: str = ""        # a model folder whose matching tensors start the network (fine-tuning)
    patches_per_case: int = 4     # "patches"/"mixed": windows drawn from each case per epoch
    head_lr: float = 0.0          # learning rate of the outcome, survival and pathology heads (0: lr); a few
                                  # dozen patients give a few hundred steps, too few for the heads at a
                                  # fine-tuning rate


@dataclass
class RunConfig:
    model: ModelConfig
    loss: LossConfig = field(default_factory=LossConfig)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        pre = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.preprocessing).items()}
        return {"model": self.model.to_dict(), "loss": self.loss.to_dict(), "preprocessing": pre,
                "training": asdict(self.training)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunConfig":
        model_data = dict(data.get("model", {}))
        preset = model_data.pop("preset", None)
        model = named_config(preset, **model_data) if preset else ModelConfig.from_dict(model_data)
        _known(data.get("training", {}), TrainingConfig, "training")
        _known(data.get("loss", {}), LossConfig, "loss")
        _known(data.get("preprocessing", {}), Preprocessing, "preprocessing")
        unknown = set(data) - {"model", "loss", "preprocessing", "training"}
        if unknown:
            raise ValueError(f"unknown sections in the configuration: {sorted(unknown)}")
        return cls(model=model, loss=LossConfig(**data.get("loss", {})),
                   preprocessing=Preprocessing(**data.get("preprocessing", {})),
                   training=TrainingConfig(**data.get("training", {})))

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Optional[dict[str, dict[str, Any]]] = None) -> "RunConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        for section, values in (overrides or {}).items():
            data.setdefault(section, {}).update(values)
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _known(values: dict[str, Any], kind: type, section: str) -> None:
    names = {f.name for f in fields(kind)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown keys in '{section}': {sorted(unknown)}; known: {sorted(names)}")

"""The JSON model card that travels with the safetensors weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CARD_FORMAT = 1


@dataclass
class Preprocessing:
    """How a PET crop becomes network input.

    spacing_mm: isotropic resampling (x, y, z) in mm; crop_size: voxels (z, y, x), multiples of 16;
    input = clip(SUV, 0, suv_clip) / suv_scale.
    """

    spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0)
    crop_size: tuple[int, int, int] = (48, 48, 48)
    suv_clip: float = 30.0
    suv_scale: float = 10.0
    channels: tuple[str, ...] = ("PET (SUV)",)

    def __post_init__(self) -> None:
        self.spacing_mm = tuple(float(s) for s in self.spacing_mm)  # type: ignore[assignment]
        self.crop_size = tuple(int(s) for s in self.crop_size)  # type: ignore[assignment]
        self.channels = tuple(self.channels)


@dataclass
class ModelCard:
    """Everything a front end needs to run and describe a model; serialised as JSON."""

    name: str
    architecture: dict[str, Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    class_names: tuple[str, ...] = ("lung", "oesophageal")
    outcome: dict[str, Any] = field(default_factory=lambda: {
        "kind": "binary", "meaning": "probability of response to treatment"})
    training_data: dict[str, Any] = field(default_factory=dict)
    held_out_metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str = "Research use only. Not for clinical use."
    calibration: dict[str, Any] = field(default_factory=dict)   # temperatures fitted on held-out predictions
    domain: dict[str, Any] = field(default_factory=dict)        # what the model was trained on (see analysis.domain)
    weights_file: str = "model.safetensors"
    weights_sha256: str = ""
    engine_version: str = ""
    created: str = ""
    format_version: int = CARD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocessing"] = {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in data["preprocessing"].items()}
        data["class_names"] = list(self.class_names)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        data = dict(data)
        data["preprocessing"] = Preprocessing(**data.get("preprocessing", {}))
        data["class_names"] = tuple(data.get("class_names", ()))
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model card keys {sorted(unknown)}")
        return cls(**data)

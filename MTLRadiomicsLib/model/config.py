"""Configuration of the multi-task multi-scale network: architecture, tasks, features, losses.

Every combination of tasks and outcome features is a configuration, not a code change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional

ENCODER_SCALES = ("enc1", "enc2", "enc3", "enc4", "enc5")     # full, 1/2, 1/4, 1/8, 1/16 resolution
DECODER_SCALES = ("dec4", "dec3", "dec2", "dec1")             # 1/8, 1/4, 1/2, full resolution
ALL_SCALES = ENCODER_SCALES + DECODER_SCALES
SEG_LOSSES = ("dice", "dice_ce", "dice_focal", "tversky")
BACKBONES = ("unet", "resnet")
OUTCOME_KINDS = ("binary", "survival")


@dataclass
class ModelConfig:
    """Architecture and task switches.

    features: channels of the five encoder levels (paper: 64, 128, 256, 512, 1024).
    in_channels: 1 for PET, 2 for PET + CT.
    backbone: "unet" (two 3x3x3 convs and 2x2x2 max-pool per level) or "resnet" (residual units,
        strided convs).
    reconstruction/segmentation/classification/outcome/detection: which task heads exist.
    n_classes: pathology classes (2: one logit with BCE; more: cross-entropy).
    outcome_kind: "binary" (response probability, BCE) or "survival" (risk, Cox partial likelihood).
    tumour_features: feed the segmentation (or an external mask) to the outcome head's tumour CNN.
    global_features: feed channel-wise GAP of the scales in ``global_scales`` to the outcome head.
    survival: a second outcome head for survival (log hazard, Cox partial likelihood) beside a binary
        outcome (e.g. lung metastasis and overall survival of the same patients).
    metric_features: the outcome heads also take the classical PET metrics of the MTV (log SUVmax,
        SUVpeak, MTV, TLG; ``MTLRadiomicsLib.model.metric_features``), given to ``forward``.
    metric_center, metric_scale: the metric features enter as (value - center) / scale, one number per
        feature; set by training from its own training cases (None: as given).
    """

    name: str = "small"
    in_channels: int = 1
    features: tuple[int, int, int, int, int] = (8, 16, 32, 64, 128)
    backbone: str = "unet"
    norm: str = "instance"
    dropout: float = 0.5
    reconstruction: bool = True
    segmentation: bool = True
    classification: bool = True
    outcome: bool = True
    detection: bool = False
    n_classes: int = 2
    outcome_kind: str = "binary"
    tumour_features: bool = True
    global_features: bool = True
    survival: bool = False
    metric_features: bool = False
    metric_center: Optional[tuple[float, ...]] = None
    metric_scale: Optional[tuple[float, ...]] = None
    global_scales: tuple[str, ...] = ("enc3", "enc4", "enc5", "dec4", "dec3")
    tumour_channels: tuple[int, int] = (16, 32)
    class_hidden: tuple[int, int] = (128, 64)
    outcome_hidden: tuple[int, int] = (128, 128)

    def __post_init__(self) -> None:
        self.features = tuple(int(f) for f in self.features)  # type: ignore[assignment]
        self.global_scales = tuple(self.global_scales)
        self.tumour_channels = tuple(self.tumour_channels)  # type: ignore[assignment]
        self.class_hidden = tuple(self.class_hidden)  # type: ignore[assignment]
        self.outcome_hidden = tuple(self.outcome_hidden)  # type: ignore[assignment]
        if self.metric_center is not None:
            self.metric_center = tuple(float(v) for v in self.metric_center)
        if self.metric_scale is not None:
            self.metric_scale = tuple(float(v) for v in self.metric_scale)
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for an inconsistent configuration."""
        if len(self.features) != 5 or min(self.features) < 1:
            raise ValueError(f"features needs five positive channel counts, not {self.features}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, not {self.backbone!r}")
        if self.outcome_kind not in OUTCOME_KINDS:
            raise ValueError(f"outcome_kind must be one of {OUTCOME_KINDS}, not {self.outcome_kind!r}")
        if self.in_channels not in (1, 2):
            raise ValueError("in_channels must be 1 (PET) or 2 (PET + CT)")
        if self.n_classes < 2:
            raise ValueError("n_classes must be at least 2")
        if not any((self.reconstruction, self.segmentation, self.classification, self.outcome,
                    self.detection)):
            raise ValueError("at least one task must be switched on")
        if (self.metric_center is None) != (self.metric_scale is None) or (
                self.metric_scale is not None and (len(self.metric_scale) != len(self.metric_center or ())
                                                   or min(self.metric_scale) <= 0)):
            raise ValueError("metric_center and metric_scale go together, one value per metric feature, "
                             "every scale positive")
        if self.survival and (not self.outcome or self.outcome_kind != "binary"):
            raise ValueError("survival adds a Cox head beside a binary outcome: it needs outcome: true and "
                             "outcome_kind: binary (outcome_kind: survival alone gives a Cox outcome)")
        if self.outcome:
            if not (self.tumour_features or self.global_features or self.metric_features):
                raise ValueError("the outcome head needs tumour features, global features, PET metrics or some of them")
            unknown = [s for s in self.global_scales if s not in ALL_SCALES]
            if unknown:
                raise ValueError(f"unknown scales {unknown}; choose from {ALL_SCALES}")
            if self.global_features and not self.global_scales:
                raise ValueError("global_features needs at least one scale in global_scales")
            if self.global_features and not self.segmentation and any(
                    s.startswith("dec") for s in self.global_scales):
                # Without a segmentation decoder there are no decoder scales to pool.
                self.global_scales = tuple(s for s in self.global_scales if s.startswith("enc"))

    @property
    def tasks(self) -> list[str]:
        """Names of the switched-on tasks."""
        names = ("reconstruction", "segmentation", "classification", "outcome", "survival", "detection")
        return [n for n in names if getattr(self, n)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model configuration keys: {sorted(unknown)}")
        return cls(**data)

    def with_changes(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)


def named_config(name: str, **changes: Any) -> ModelConfig:
    """The named configurations: 'paper' (as published) and 'small' (fast on a CPU), 'tiny' (tests)."""
    presets: dict[str, dict[str, Any]] = {
        "paper": dict(features=(64, 128, 256, 512, 1024), tumour_channels=(64, 128)),
        "small": dict(features=(8, 16, 32, 64, 128), tumour_channels=(16, 32)),
        "tiny": dict(features=(4, 8, 8, 16, 16), tumour_channels=(4, 8), class_hidden=(16, 8),
                     outcome_hidden=(16, 16)),
    }
    if name not in presets:
        raise ValueError(f"unknown configuration {name!r}; choose from {sorted(presets)}")
    return ModelConfig(name=name, **{**presets[name], **changes})


@dataclass
class LossConfig:
    """Loss weights and kinds.

    The paper's weighting: alpha * L_recon + beta * L_seg + omega * L_class + lambda * L_outcome with
    alpha = beta and omega = 1 - (lambda + 2 alpha). ``weighting="uncertainty"`` learns the weights
    instead (homoscedastic uncertainty). ``box_weight`` weighs the optional detection task.
    """

    alpha: float = 0.2
    lam: float = 0.3
    box_weight: float = 0.1
    weighting: str = "paper"
    seg_loss: str = "dice"
    ties: str = "efron"
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    focal_gamma: float = 2.0

    def __post_init__(self) -> None:
        if self.seg_loss not in SEG_LOSSES:
            raise ValueError(f"seg_loss must be one of {SEG_LOSSES}, not {self.seg_loss!r}")
        if self.weighting not in ("paper", "uncertainty"):
            raise ValueError("weighting must be 'paper' or 'uncertainty'")
        if self.ties not in ("efron", "breslow"):
            raise ValueError("ties must be 'efron' or 'breslow'")
        if not 0 <= self.lam <= 1 or not 0 <= self.alpha or self.omega < 0:
            raise ValueError(f"loss weights need 0 <= lambda <= 1 and lambda + 2 alpha <= 1 "
                             f"(alpha={self.alpha}, lambda={self.lam})")

    @property
    def beta(self) -> float:
        return self.alpha

    @property
    def omega(self) -> float:
        return 1.0 - (self.lam + 2.0 * self.alpha)

    def task_weights(self) -> dict[str, float]:
        """Weights per task; a survival head beside the outcome weighs as the outcome (lambda)."""
        return {"reconstruction": self.alpha, "segmentation": self.beta,
                "classification": self.omega, "outcome": self.lam, "survival": self.lam,
                "detection": self.box_weight}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["ModelConfig", "LossConfig", "named_config", "ENCODER_SCALES", "DECODER_SCALES",
           "ALL_SCALES", "SEG_LOSSES"]

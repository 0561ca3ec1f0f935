"""Task heads on the shared encoder: pathology class, outcome (tumour + global features), box."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """Conv + max-pool + flatten on the deepest encoder map, then an MLP with ELU and dropout.

    Input (B, C, d, h, w) -> logits (B, n_out); n_out = 1 for two classes (BCE), else n_classes.
    The max-pool is adaptive (to 2x2x2) so any crop size works.
    """

    def __init__(self, in_channels: int, hidden: tuple[int, int], n_out: int, dropout: float):
        super().__init__()
        conv_channels = hidden[1]
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, conv_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool3d(2), nn.Flatten())
        self.mlp = nn.Sequential(
            nn.Linear(conv_channels * 8, hidden[0]), nn.ELU(), nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]), nn.ELU(), nn.Dropout(dropout),
            nn.Linear(hidden[1], n_out))

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.features(deepest))


class TumourFeatures(nn.Module):
    """CNN on the tumour: input (B, 2, D, H, W) = (tumour probability, PET x probability);
    two convs, max-pool, two convs, global average pooling -> (B, channels[1])."""

    def __init__(self, channels: tuple[int, int]):
        super().__init__()
        a, b = channels
        self.net = nn.Sequential(
            nn.Conv3d(2, a, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv3d(a, a, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool3d(2),
            nn.Conv3d(a, b, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv3d(b, b, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.out_features = b

    def forward(self, tumour: torch.Tensor, pet: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([tumour, pet * tumour], dim=1))


class OutcomeHead(nn.Module):
    """Tumour features, channel-wise GAP of multi-scale maps and/or ``extra`` features (the PET
    metrics), concatenated, then FC hidden[0] -> hidden[1] -> 1. Output (B,): response logit or log
    hazard (risk). ``features`` returns the concatenated input vector (B, n_in): what the head sees.
    ``extra_center``/``extra_scale``: the extra features enter as (value - center) / scale (fixed,
    from the model configuration, not learned and not in the weights file)."""

    def __init__(self, tumour_channels: tuple[int, int] | None, global_channels: int,
                 hidden: tuple[int, int], dropout: float, extra: int = 0,
                 extra_center: Sequence[float] | None = None, extra_scale: Sequence[float] | None = None):
        super().__init__()
        center = torch.zeros(extra) if extra_center is None else torch.as_tensor(list(extra_center), dtype=torch.float32)
        scale = torch.ones(extra) if extra_scale is None else torch.as_tensor(list(extra_scale), dtype=torch.float32)
        if extra and (center.numel() != extra or scale.numel() != extra):
            raise ValueError(f"the metric standardisation needs {extra} values")
        self.register_buffer("extra_center", center, persistent=False)
        self.register_buffer("extra_scale", scale, persistent=False)
        self.tumour = TumourFeatures(tumour_channels) if tumour_channels else None
        self.extra = extra
        n_in = (self.tumour.out_features if self.tumour else 0) + global_channels + extra
        self.n_in = n_in
        self.mlp = nn.Sequential(
            nn.Linear(n_in, hidden[0]), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(inplace=True),
            nn.Linear(hidden[1], 1))

    def features(self, tumour: torch.Tensor | None, pet: torch.Tensor, global_maps: list[torch.Tensor],
                 extra: torch.Tensor | None = None) -> torch.Tensor:
        parts = []
        if self.tumour is not None:
            assert tumour is not None
            parts.append(self.tumour(tumour, pet))
        parts += [m.mean(dim=(2, 3, 4)) for m in global_maps]
        if self.extra:
            if extra is None or extra.shape[-1] != self.extra:
                raise ValueError(f"this outcome head needs {self.extra} PET metric features (metrics=...)")
            parts.append(((extra - self.extra_center) / self.extra_scale).to(pet.dtype))
        return torch.cat(parts, dim=1)

    def forward(self, tumour: torch.Tensor | None, pet: torch.Tensor,
                global_maps: list[torch.Tensor], extra: torch.Tensor | None = None) -> torch.Tensor:
        return self.mlp(self.features(tumour, pet, global_maps, extra)).squeeze(1)


class DetectionHead(nn.Module):
    """Lesion box from the deepest encoder map: (B, 6) = centre (z, y, x) and size (z, y, x),
    each as a fraction of the crop extent in [0, 1]."""

    def __init__(self, in_channels: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(in_channels, hidden),
                                 nn.ReLU(inplace=True), nn.Linear(hidden, 6), nn.Sigmoid())

    def forward(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.net(deepest)

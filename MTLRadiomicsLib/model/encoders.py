"""Shared 3-D encoders: five levels whose outputs are the scales enc1 (full) ... enc5 (1/16)."""

from __future__ import annotations

import torch
from monai.networks.blocks import ResidualUnit
from monai.networks.nets.basic_unet import Down, TwoConv
from torch import nn

ACT = ("relu", {"inplace": True})


def norm_arg(norm: str) -> tuple | str | None:
    """MONAI norm argument from a short name: 'instance', 'batch' or 'none'."""
    return {"instance": ("instance", {"affine": True}), "batch": "batch", "none": None}[norm]


class UNetEncoder(nn.Module):
    """The paper's encoder: per level two 3x3x3 convs with ReLU; 2x2x2 max-pool between levels;
    dropout after the last conv of the deepest level.

    Input (B, C, D, H, W) with D, H, W divisible by 16; outputs five maps, level i of shape
    (B, features[i], D / 2^i, H / 2^i, W / 2^i).
    """

    def __init__(self, in_channels: int, features: tuple[int, ...], norm: str, dropout: float):
        super().__init__()
        n = norm_arg(norm)
        self.enc1 = TwoConv(3, in_channels, features[0], ACT, n, bias=True)
        self.enc2 = Down(3, features[0], features[1], ACT, n, bias=True)
        self.enc3 = Down(3, features[1], features[2], ACT, n, bias=True)
        self.enc4 = Down(3, features[2], features[3], ACT, n, bias=True)
        self.enc5 = Down(3, features[3], features[4], ACT, n, bias=True)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        e5 = self.dropout(self.enc5(e4))
        return [e1, e2, e3, e4, e5]


class ResNetEncoder(nn.Module):
    """A residual encoder: per level one MONAI ResidualUnit of two 3x3x3 convs; levels 2-5 halve
    the resolution with a stride-2 first conv. Same output shapes as :class:`UNetEncoder`."""

    def __init__(self, in_channels: int, features: tuple[int, ...], norm: str, dropout: float):
        super().__init__()
        n = norm_arg(norm) or "batch"
        channels = (in_channels,) + tuple(features)
        for level in range(5):
            unit = ResidualUnit(3, channels[level], channels[level + 1], strides=1 if level == 0 else 2,
                                kernel_size=3, subunits=2, act=ACT, norm=n)
            self.add_module(f"enc{level + 1}", unit)
        self.dropout = nn.Dropout3d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for level in range(5):
            x = getattr(self, f"enc{level + 1}")(x)
            if level == 4:
                x = self.dropout(x)
            outputs.append(x)
        return outputs


def build_encoder(backbone: str, in_channels: int, features: tuple[int, ...], norm: str,
                  dropout: float) -> nn.Module:
    if backbone == "unet":
        return UNetEncoder(in_channels, features, norm, dropout)
    if backbone == "resnet":
        return ResNetEncoder(in_channels, features, norm, dropout)
    raise ValueError(f"unknown backbone {backbone!r}")

"""The network's building blocks in plain PyTorch: two 3x3x3 convolutions, a max-pool level, an
up-sampling level with a skip connection, and a residual unit.

The module and parameter names follow the layout of the model files written so far (``conv_0.conv``,
``conv_0.adn.N``, ``max_pooling``, ``convs``, ``upsample.deconv``, ``conv.unit0``, ``residual``), so
every saved model loads unchanged. Building them here keeps MONAI, which imports all its
sub-packages on first use (several seconds), out of analysis; training still uses MONAI's losses.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def norm_layer(norm: Optional[str], channels: int) -> Optional[nn.Module]:
    """'instance' (affine), 'batch' or None (no normalisation)."""
    if norm is None:
        return None
    if norm == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if norm == "batch":
        return nn.BatchNorm3d(channels)
    raise ValueError(f"unknown normalisation {norm!r}")


class NormAct(nn.Sequential):
    """Normalisation (child ``N``, when any) then ReLU (child ``A``)."""

    def __init__(self, channels: int, norm: Optional[str]):
        super().__init__()
        layer = norm_layer(norm, channels)
        if layer is not None:
            self.add_module("N", layer)
        self.add_module("A", nn.ReLU(inplace=True))


class ConvBlock(nn.Sequential):
    """A 3-D convolution (child ``conv``, 'same' padding) followed by :class:`NormAct` (``adn``)."""

    def __init__(self, in_channels: int, out_channels: int, norm: Optional[str], kernel_size: int = 3,
                 stride: int = 1, bias: bool = True):
        super().__init__()
        self.add_module("conv", nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride,
                                          padding=(kernel_size - 1) // 2, bias=bias))
        self.add_module("adn", NormAct(out_channels, norm))


class DoubleConv(nn.Sequential):
    """Two :class:`ConvBlock` of 3x3x3 (``conv_0``, ``conv_1``)."""

    def __init__(self, in_channels: int, out_channels: int, norm: Optional[str], bias: bool = True):
        super().__init__()
        self.add_module("conv_0", ConvBlock(in_channels, out_channels, norm, bias=bias))
        self.add_module("conv_1", ConvBlock(out_channels, out_channels, norm, bias=bias))


class PoolDoubleConv(nn.Sequential):
    """2x2x2 max-pool (``max_pooling``) then :class:`DoubleConv` (``convs``): one encoder level."""

    def __init__(self, in_channels: int, out_channels: int, norm: Optional[str], bias: bool = True):
        super().__init__()
        self.add_module("max_pooling", nn.MaxPool3d(kernel_size=2))
        self.add_module("convs", DoubleConv(in_channels, out_channels, norm, bias=bias))


class UpConcat(nn.Module):
    """One decoder level: a 2x2x2 transposed convolution (``upsample.deconv``) to ``in_channels / 2``
    (``halves``) or ``in_channels`` channels, the encoder map concatenated in front of it (the
    up-sampled map padded by one voxel at the end of an axis where an odd size left it short), then
    :class:`DoubleConv` (``convs``)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: Optional[str],
                 halves: bool = True, bias: bool = True):
        super().__init__()
        up_channels = in_channels // 2 if halves else in_channels
        self.upsample = nn.Sequential()
        self.upsample.add_module("deconv", nn.ConvTranspose3d(in_channels, up_channels, kernel_size=2, stride=2))
        self.convs = DoubleConv(skip_channels + up_channels, out_channels, norm, bias=bias)

    def forward(self, x: torch.Tensor, skip: Optional[torch.Tensor]) -> torch.Tensor:
        up = self.upsample(x)
        if skip is None:
            return self.convs(up)
        pad: list[int] = []
        for axis in range(1, up.dim() - 1):            # F.pad lists the last axis first
            pad += [0, 1 if skip.shape[-axis] != up.shape[-axis] else 0]
        if any(pad):
            up = F.pad(up, pad, "replicate")
        return self.convs(torch.cat([skip, up], dim=1))


class ResidualBlock(nn.Module):
    """``subunits`` :class:`ConvBlock` (``conv.unit0``, ...; the first with ``stride``) plus a
    shortcut (``residual``): the identity, a 1x1x1 convolution when only the channels change, or a
    strided convolution of ``kernel_size`` when the resolution changes."""

    def __init__(self, in_channels: int, out_channels: int, norm: Optional[str], stride: int = 1,
                 kernel_size: int = 3, subunits: int = 2, bias: bool = True):
        super().__init__()
        self.conv = nn.Sequential()
        channels, step = in_channels, stride
        for n in range(max(1, subunits)):
            self.conv.add_module(f"unit{n}", ConvBlock(channels, out_channels, norm, kernel_size, step, bias))
            channels, step = out_channels, 1
        self.residual: nn.Module = nn.Identity()
        if stride != 1:
            self.residual = nn.Conv3d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, bias=bias)
        elif in_channels != out_channels:
            self.residual = nn.Conv3d(in_channels, out_channels, 1, 1, 0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.residual(x)

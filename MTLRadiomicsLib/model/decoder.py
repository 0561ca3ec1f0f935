"""A U-Net decoder with skip connections; two of them on one encoder make the 'W'."""

from __future__ import annotations

import torch
from monai.networks.nets.basic_unet import UpCat
from torch import nn

from MTLRadiomicsLib.model.encoders import ACT, norm_arg


class UNetDecoder(nn.Module):
    """Four up-sampling levels (transposed conv, concatenation with the encoder map, two convs)
    and a 1x1x1 output conv.

    Input: the five encoder maps. Output: (B, out_channels, D, H, W) and the decoder maps
    dec4 (1/8), dec3 (1/4), dec2 (1/2), dec1 (full resolution).
    """

    def __init__(self, features: tuple[int, ...], out_channels: int, norm: str):
        super().__init__()
        n = norm_arg(norm)
        f = features
        self.dec4 = UpCat(3, f[4], f[3], f[3], ACT, n, bias=True, halves=True)
        self.dec3 = UpCat(3, f[3], f[2], f[2], ACT, n, bias=True, halves=True)
        self.dec2 = UpCat(3, f[2], f[1], f[1], ACT, n, bias=True, halves=True)
        self.dec1 = UpCat(3, f[1], f[0], f[0], ACT, n, bias=True, halves=False)
        self.head = nn.Conv3d(f[0], out_channels, kernel_size=1)

    def forward(self, enc: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        d4 = self.dec4(enc[4], enc[3])
        d3 = self.dec3(d4, enc[2])
        d2 = self.dec2(d3, enc[1])
        d1 = self.dec1(d2, enc[0])
        return self.head(d1), [d4, d3, d2, d1]

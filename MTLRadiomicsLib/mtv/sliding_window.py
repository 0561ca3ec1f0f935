"""Sliding-window inference over a volume larger than the network's field of view, in plain PyTorch.

Windows of the field's size tile the volume with the given overlap (the last window of an axis
moved back to end at the volume's edge); each prediction is weighted by a Gaussian centred on its
window (sigma 1/8 of the window along each axis, weights no smaller than 1e-3), and every voxel gets
the weighted mean of the windows that cover it. A volume smaller than the window is zero-padded
evenly on both sides for the inference and cropped back. These are the blending rules of MONAI's
``sliding_window_inference`` with ``mode="gaussian"`` (the results agree to the last bit), without
importing MONAI.
"""

from __future__ import annotations

import itertools
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

SIGMA_SCALE = 0.125
MIN_WEIGHT = 1e-3


def gaussian_weights(size: Sequence[int], device: torch.device | str = "cpu",
                     sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """(D, H, W) float32: the product of one Gaussian per axis, 1 at the centre of an odd axis,
    with sigma ``sigma_scale`` times the axis length; no weight below ``MIN_WEIGHT``."""
    weights = None
    for axis, n in enumerate(size):
        sigma = n * sigma_scale
        x = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float, device=device)
        g = torch.exp(x ** 2 / (-2 * sigma ** 2))
        weights = g if weights is None else weights.unsqueeze(-1) * g[(None,) * axis]
    assert weights is not None
    floor = max(float(weights.min()), MIN_WEIGHT)
    return torch.clamp(weights, min=floor)


def window_starts(length: int, window: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis of ``length`` voxels (``length >= window``)."""
    step = window if window == length else max(1, int(window * (1 - overlap)))
    count = next((d + 1 for d in range(int(math.ceil(length / step))) if d * step + window >= length), 1)
    return [d * step - max(d * step + window - length, 0) for d in range(count)]


def sliding_window_mean(x: torch.Tensor, window: Sequence[int], predict: Callable[[torch.Tensor], torch.Tensor],
                        batch_size: int = 4, overlap: float = 0.5) -> torch.Tensor:
    """``predict`` over windows of ``window`` voxels of ``x`` (1, C, D, H, W), blended with Gaussian
    weights: (1, K, D, H, W) in the dtype of ``x``. ``predict`` maps (B, C, *window) to (B, K, *window)."""
    if x.dim() != 5 or x.shape[0] != 1:
        raise ValueError("the input must be (1, C, D, H, W)")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    window = tuple(int(w) for w in window)
    original = tuple(int(s) for s in x.shape[2:])
    pad: list[int] = []                                     # F.pad order: last axis first
    for n, w in zip(reversed(original), reversed(window)):
        short = max(w - n, 0)
        pad += [short // 2, short - short // 2]
    if any(pad):
        x = F.pad(x, pad, mode="constant", value=0.0)
    size = tuple(int(s) for s in x.shape[2:])
    starts = [window_starts(n, w, overlap) for n, w in zip(size, window)]
    boxes = [tuple(slice(s, s + w) for s, w in zip(corner, window)) for corner in itertools.product(*starts)]
    weights = gaussian_weights(window, x.device).to(x.dtype)[None, None]
    total = torch.zeros((1, 1, *size), dtype=x.dtype, device=x.device)
    for box in boxes:
        total[(slice(None), slice(None), *box)] += weights
    output = None
    for first in range(0, len(boxes), batch_size):
        batch = boxes[first:first + batch_size]
        windows = torch.cat([x[(slice(None), slice(None), *box)] for box in batch])
        predicted = predict(windows)
        predicted = predicted.to(x.dtype) * weights
        if output is None:
            output = torch.zeros((1, predicted.shape[1], *size), dtype=x.dtype, device=x.device)
        for p, box in zip(predicted, batch):
            output[(slice(None), slice(None), *box)] += p
    assert output is not None
    output /= total
    if any(pad):
        crop = [slice(pad[2 * (2 - axis)], pad[2 * (2 - axis)] + original[axis]) for axis in range(3)]
        output = output[(slice(None), slice(None), *crop)]
    return output

"""Grad-CAM at every scale of the encoder and the segmentation decoder, from one forward and one
backward pass.

For a target y (the outcome score, or the mean segmentation logit inside the predicted MTV) and a
feature map A (channels c), the heatmap is ReLU(sum_c w_c A_c) with w_c the spatial mean of
dy/dA_c; each map is up-sampled (trilinear) to the crop and scaled to 0-1. All scales' gradients
come from a single ``torch.autograd.grad`` call over the maps the network returns.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from MTLRadiomicsLib.model.network import MultiTaskNet

TARGETS = ("outcome", "segmentation")


def explain_target(out: dict, target: str) -> torch.Tensor:
    """The scalar Grad-CAM explains: the outcome score (response logit or log hazard), or the mean
    segmentation logit over the predicted MTV (the whole crop when nothing is segmented)."""
    if target == "outcome":
        if "outcome" not in out:
            raise ValueError("this model has no outcome head to explain; use --explain segmentation")
        return out["outcome"].sum()
    if target == "segmentation":
        if "segmentation" not in out:
            raise ValueError("this model has no segmentation head to explain; use --explain outcome")
        logits = out["segmentation"]
        region = (logits > 0).float()
        if region.sum() == 0:
            return logits.mean()
        return (logits * region).sum() / region.sum()
    raise ValueError(f"explanation target must be one of {TARGETS}, not {target!r}")


def gradcam_all_scales(network: MultiTaskNet, x: torch.Tensor, target: str = "outcome",
                       mask: Optional[torch.Tensor] = None, metrics: Optional[torch.Tensor] = None
                       ) -> dict[str, np.ndarray]:
    """Heatmaps (D, H, W) in [0, 1] on the input grid for every scale the network exposes.

    ``x`` is (1, C, D, H, W); ``metrics`` (1, 4) the PET metric features (models that take them).
    A scale whose map does not influence the target gets zeros."""
    network.eval()
    with torch.enable_grad():
        out = network(x, mask=mask, metrics=metrics)
        features: dict[str, torch.Tensor] = out["features"]
        names = list(features)
        y = explain_target(out, target)
        grads = torch.autograd.grad(y, [features[n] for n in names], allow_unused=True)
    size = x.shape[2:]
    maps = {}
    for name, activation, grad in zip(names, (features[n] for n in names), grads):
        if grad is None:
            maps[name] = np.zeros(tuple(size), np.float32)
            continue
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach()
        cam = F.interpolate(cam, size=size, mode="trilinear", align_corners=False)[0, 0]
        peak = float(cam.max())
        maps[name] = (cam / peak).cpu().numpy().astype(np.float32) if peak > 0 else np.zeros(tuple(size), np.float32)
    return maps

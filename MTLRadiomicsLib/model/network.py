"""The multi-task multi-scale 3-D network (after Amyar et al.).

One shared encoder; a reconstruction decoder (T1, linear output) and a segmentation decoder
(T2, one logit per voxel) with skip connections (the 'W'); a pathology classifier (T3) on the
deepest map; an outcome head (T4) fed by the segmentation (or an external mask) and by channel-wise
GAP of multi-scale encoder/decoder maps; an optional lesion box head.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from MTLRadiomicsLib.model.config import DECODER_SCALES, ENCODER_SCALES, ModelConfig
from MTLRadiomicsLib.model.decoder import UNetDecoder
from MTLRadiomicsLib.model.encoders import build_encoder
from MTLRadiomicsLib.model.heads import ClassificationHead, DetectionHead, OutcomeHead
from MTLRadiomicsLib.model.metric_features import N_METRIC_FEATURES

DIVISOR = 16   # input sizes must be multiples of 2^4 (four 2x down-samplings)


class MultiTaskNet(nn.Module):
    """Input (B, C, D, H, W), C = 1 (PET) or 2 (PET + CT), D, H, W multiples of 16.

    ``forward`` returns a dict with the switched-on tasks:
      reconstruction (B, C, D, H, W)  linear
      segmentation   (B, 1, D, H, W)  logits
      classification (B, 1) or (B, n_classes)  logits
      outcome        (B,)  response logit or log hazard
      survival       (B,)  log hazard of the survival head beside a binary outcome (config.survival)
      outcome_features (B, n)  what the outcome head sees (tumour, multi-scale, metric features)
      detection      (B, 6)  box centre and size as fractions of the crop
      features       {scale: map} for every scale (enc1..enc5, dec4..dec1 when segmenting), the maps
                     Grad-CAM differentiates against.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        f = config.features
        self.encoder = build_encoder(config.backbone, config.in_channels, f, config.norm, config.dropout)
        self.reconstruction = UNetDecoder(f, config.in_channels, config.norm) if config.reconstruction else None
        self.segmentation = UNetDecoder(f, 1, config.norm) if config.segmentation else None
        n_out = 1 if config.n_classes == 2 else config.n_classes
        self.classification = (ClassificationHead(f[4], config.class_hidden, n_out, config.dropout)
                               if config.classification else None)
        self.detection = DetectionHead(f[4]) if config.detection else None
        self.outcome = None
        self.survival = None
        if config.outcome:
            channels = dict(zip(ENCODER_SCALES, f)) | dict(zip(DECODER_SCALES, (f[3], f[2], f[1], f[0])))
            global_channels = sum(channels[s] for s in config.global_scales) if config.global_features else 0
            tumour = config.tumour_channels if config.tumour_features else None
            extra = N_METRIC_FEATURES if config.metric_features else 0
            standard = (config.metric_center, config.metric_scale) if config.metric_features else (None, None)
            self.outcome = OutcomeHead(tumour, global_channels, config.outcome_hidden, config.dropout, extra,
                                       *standard)
            if config.survival:
                self.survival = OutcomeHead(tumour, global_channels, config.outcome_hidden, config.dropout, extra,
                                            *standard)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None,
                metrics: Optional[torch.Tensor] = None) -> dict:
        """``mask`` (B, 1, D, H, W), values in [0, 1]: used by the outcome head in place of the
        predicted segmentation (e.g. a physician's edited MTV). ``metrics`` (B, 4): the PET metric
        features of the MTV (``metric_vector``), needed when ``config.metric_features``."""
        check_input(x, self.config.in_channels)
        if x.device.type == "cpu":
            # Channels-last 3-D input takes PyTorch's oneDNN convolutions on the CPU: about three times
            # faster than the default layout for these small channel counts, same values.
            x = x.contiguous(memory_format=torch.channels_last_3d)
        enc = self.encoder(x)
        features = dict(zip(ENCODER_SCALES, enc))
        out: dict = {}
        if self.reconstruction is not None:
            out["reconstruction"], _ = self.reconstruction(enc)
        if self.segmentation is not None:
            out["segmentation"], dec = self.segmentation(enc)
            features.update(zip(DECODER_SCALES, dec))
        if self.classification is not None:
            out["classification"] = self.classification(enc[4])
        if self.detection is not None:
            out["detection"] = self.detection(enc[4])
        if self.outcome is not None:
            tumour = None
            if self.config.tumour_features:
                if mask is not None:
                    tumour = mask.to(x.dtype)
                elif "segmentation" in out:
                    tumour = torch.sigmoid(out["segmentation"])
                else:
                    raise ValueError("tumour features need the segmentation task or an external mask")
            scales = [features[s] for s in self.config.global_scales] if self.config.global_features else []
            head_input = self.outcome.features(tumour, x[:, :1], scales, metrics)
            out["outcome_features"] = head_input
            out["outcome"] = self.outcome.mlp(head_input).squeeze(1)
            if self.survival is not None:
                out["survival"] = self.survival(tumour, x[:, :1], scales, metrics)
        out["features"] = features
        return out


def check_input(x: torch.Tensor, channels: int) -> None:
    """Raise ValueError unless x is (B, channels, D, H, W) with D, H, W multiples of 16."""
    if x.ndim != 5 or x.shape[1] != channels:
        raise ValueError(f"input must be (B, {channels}, D, H, W), not {tuple(x.shape)}")
    if any(s % DIVISOR for s in x.shape[2:]):
        raise ValueError(f"spatial size {tuple(x.shape[2:])} must be a multiple of {DIVISOR}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

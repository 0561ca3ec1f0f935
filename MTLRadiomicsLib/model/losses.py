"""Task losses and their weighted sum, with partial labels.

Each task's loss is computed only over the cases of the batch that carry its label
(``has_<task>`` flags); a task without any labelled case in the batch contributes zero.
"""

from __future__ import annotations

from typing import Optional

import warnings

import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, TverskyLoss
from torch import nn

from MTLRadiomicsLib.model.config import LossConfig, ModelConfig


def segmentation_loss(config: LossConfig) -> nn.Module:
    """Dice (paper), Dice + CE, Dice + focal or Tversky on one-logit sigmoid output."""
    common = dict(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    if config.seg_loss == "dice":
        return DiceLoss(**common)
    if config.seg_loss == "dice_ce":
        return DiceCELoss(**common)
    if config.seg_loss == "dice_focal":
        return DiceFocalLoss(gamma=config.focal_gamma, **common)
    return TverskyLoss(alpha=config.tversky_alpha, beta=config.tversky_beta, **common)


def cox_loss(log_hazard: torch.Tensor, event: torch.Tensor, time: torch.Tensor, ties: str) -> torch.Tensor:
    """Negative Cox partial log-likelihood (torchsurv), mean over events; zero without events."""
    from torchsurv.loss.cox import neg_partial_log_likelihood

    if not bool(event.any()):
        return log_hazard.sum() * 0.0
    # Summed and divided by the number of events, so tied and untied batches weigh each event alike.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Ties in `time` detected")
        total = neg_partial_log_likelihood(log_hazard, event.bool(), time.float(), ties_method=ties,
                                           reduction="sum")
    return total / event.bool().sum()


class MultiTaskLoss(nn.Module):
    """alpha L_recon + beta L_seg + omega L_class + lambda L_outcome (+ lambda L_survival for a
    survival head beside a binary outcome) (+ box weight x L_box).

    With ``weighting="uncertainty"`` the weights are learned: sum_t exp(-s_t) L_t + s_t, one
    log-variance s_t per task (these parameters must be given to the optimiser).

    Batch keys: image (B, C, D, H, W); mask (B, 1, D, H, W) with has_mask (B,); pathology (B,) with
    has_pathology; response (B,) with has_response; time, event (B,) with has_survival;
    box (B, 6) with has_box.
    """

    def __init__(self, model_config: ModelConfig, loss_config: Optional[LossConfig] = None):
        super().__init__()
        self.model_config = model_config
        self.config = loss_config or LossConfig()
        self.seg = segmentation_loss(self.config)
        self.tasks = model_config.tasks
        self.log_vars = (nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in self.tasks})
                         if self.config.weighting == "uncertainty" else None)

    def task_losses(self, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Unweighted loss of every switched-on task (zero where no case is labelled)."""
        losses: dict[str, torch.Tensor] = {}
        if "reconstruction" in out:
            losses["reconstruction"] = F.mse_loss(out["reconstruction"], batch["image"])
        if "segmentation" in out:
            keep = _flags(batch, "has_mask", out["segmentation"])
            losses["segmentation"] = (self.seg(out["segmentation"][keep], batch["mask"][keep].float())
                                      if keep.any() else _zero(out["segmentation"]))
        if "classification" in out:
            keep = _flags(batch, "has_pathology", out["classification"])
            logits, target = out["classification"][keep], batch["pathology"][keep]
            if not keep.any():
                losses["classification"] = _zero(out["classification"])
            elif logits.shape[1] == 1:
                losses["classification"] = F.binary_cross_entropy_with_logits(logits[:, 0], target.float())
            else:
                losses["classification"] = F.cross_entropy(logits, target.long())
        if "outcome" in out:
            losses["outcome"] = self._outcome(out["outcome"], batch)
        if "survival" in out:
            losses["survival"] = self._cox(out["survival"], batch)
        if "detection" in out:
            keep = _flags(batch, "has_box", out["detection"])
            losses["detection"] = (F.smooth_l1_loss(out["detection"][keep], batch["box"][keep].float(), beta=0.05)
                                   if keep.any() else _zero(out["detection"]))
        return losses

    def _outcome(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        if self.model_config.outcome_kind == "binary":
            keep = _flags(batch, "has_response", prediction)
            if not keep.any():
                return _zero(prediction)
            return F.binary_cross_entropy_with_logits(prediction[keep], batch["response"][keep].float())
        return self._cox(prediction, batch)

    def _cox(self, prediction: torch.Tensor, batch: dict) -> torch.Tensor:
        keep = _flags(batch, "has_survival", prediction)
        if keep.sum() < 2:
            return _zero(prediction)
        return cox_loss(prediction[keep], batch["event"][keep], batch["time"][keep], self.config.ties)

    def forward(self, out: dict, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and the unweighted task losses (detached, for logging)."""
        losses = self.task_losses(out, batch)
        weights = self.config.task_weights()
        total = next(iter(losses.values())) * 0.0
        for task, value in losses.items():
            if self.log_vars is not None:
                s = self.log_vars[task]
                total = total + torch.exp(-s) * value + s
            else:
                total = total + weights[task] * value
        return total, {k: v.detach() for k, v in losses.items()}


def _flags(batch: dict, key: str, like: torch.Tensor) -> torch.Tensor:
    """Boolean (B,) of labelled cases; all True when the batch has no such flag."""
    flags = batch.get(key)
    if flags is None:
        return torch.ones(like.shape[0], dtype=torch.bool, device=like.device)
    return torch.as_tensor(flags, device=like.device).bool().reshape(-1)


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps the graph (so DDP sees every parameter used)."""
    return like.sum() * 0.0

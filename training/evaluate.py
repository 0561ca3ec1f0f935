"""Run a model over a loader and gather per-case predictions, losses and metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from MTLRadiomicsLib.model.losses import MultiTaskLoss
from training.metrics import dice_per_case, summarise


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def collect(network: torch.nn.Module, loader, criterion: MultiTaskLoss, device: torch.device,
            autocast_dtype: torch.dtype | None = None) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Mean losses and per-case outputs over ``loader`` (model in eval mode)."""
    network.eval()
    config = criterion.model_config
    sums: dict[str, float] = {}
    count = 0
    gathered: dict[str, list] = {}

    def add(key: str, values: Any) -> None:
        gathered.setdefault(key, []).append(np.asarray(values))

    for batch in loader:
        batch = to_device(batch, device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            out = network(batch["image"], metrics=batch.get("metrics"))
            total, parts = criterion(out, batch)
        size = batch["image"].shape[0]
        count += size
        sums["loss"] = sums.get("loss", 0.0) + float(total) * size
        for k, v in parts.items():
            sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + float(v) * size
        add("case_id", list(batch["case_id"]))
        if "segmentation" in out:
            keep = batch["has_mask"].bool()
            if keep.any():
                prob = torch.sigmoid(out["segmentation"][keep].float())
                add("dice", dice_per_case(prob, batch["mask"][keep]).cpu())
        if "reconstruction" in out:
            err = (out["reconstruction"].float() - batch["image"]).pow(2).flatten(1).mean(1)
            add("recon_mse", err.cpu())
        if "classification" in out:
            keep = batch["has_pathology"].bool()
            logits = out["classification"][keep].float()
            prob = (torch.cat([1 - torch.sigmoid(logits), torch.sigmoid(logits)], 1) if logits.shape[1] == 1
                    else torch.softmax(logits, 1))
            add("class_prob", prob.cpu())
            add("class_label", batch["pathology"][keep].cpu())
        if "outcome" in out:
            score = out["outcome"].float()
            if config.outcome_kind == "binary":
                keep = batch["has_response"].bool()
                add("outcome", torch.sigmoid(score[keep]).cpu())
                add("outcome_label", batch["response"][keep].cpu())
            else:
                keep = batch["has_survival"].bool()
                add("outcome_surv", score[keep].cpu())
                add("surv_time", batch["time"][keep].cpu())
                add("surv_event", batch["event"][keep].cpu())
        if "survival" in out:
            keep = batch["has_survival"].bool()
            add("survival_risk", out["survival"].float()[keep].cpu())
            add("survival_time", batch["time"][keep].cpu())
            add("survival_event", batch["event"][keep].cpu())
        if "detection" in out:
            keep = batch["has_box"].bool()
            if keep.any():
                err = (out["detection"][keep, :3].float() - batch["box"][keep, :3]).norm(dim=1)
                add("box_error", err.cpu())
    outputs = {k: np.concatenate([np.atleast_1d(v) for v in vs]) if k != "class_prob"
               else np.concatenate(vs, axis=0) for k, vs in gathered.items()}
    losses = {k: v / max(count, 1) for k, v in sums.items()}
    metrics = summarise(outputs, config.outcome_kind, config.n_classes)
    return losses | metrics, outputs


@torch.no_grad()
def collect_whole_cases(network: torch.nn.Module, loader, preprocessing, device: torch.device
                        ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Whole-case segmentation by sliding windows (the engine's blending) on the model's grid: Dice per
    case against the resampled mask. ``loader`` gives one whole case per batch (sampling "patches")."""
    from monai.inferers import sliding_window_inference

    from MTLRadiomicsLib.mtv.network_mtv import OVERLAP, segmentation_predictor

    network.eval()
    predict = segmentation_predictor(network)
    roi = tuple(int(s) for s in preprocessing.crop_size)
    dice, ids = [], []
    for batch in loader:
        if not bool(batch["has_mask"][0]):
            continue
        image = batch["image"].to(device)
        probability = sliding_window_inference(image, roi, 4, predict, overlap=OVERLAP, mode="gaussian")
        dice.append(float(dice_per_case(probability.cpu(), batch["mask"])[0]))
        ids.append(batch["case_id"][0])
    outputs = {"dice": np.asarray(dice), "case_id": np.asarray(ids)}
    return ({"dice": float(np.mean(dice))} if dice else {}), outputs

"""Evaluation metrics: Dice, reconstruction error, class and outcome accuracy / AUC, C-index."""

from __future__ import annotations

import math

import numpy as np
import torch


def dice_per_case(probability: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Dice of (probability > threshold) vs target per case; inputs (B, 1, D, H, W); (B,).
    Both empty gives 1."""
    from monai.metrics import compute_dice

    pred = (probability > threshold).float()
    values = compute_dice(pred, target.float(), include_background=True, ignore_empty=False).reshape(-1)
    both_empty = (pred.flatten(1).sum(1) == 0) & (target.flatten(1).sum(1) == 0)
    return torch.where(both_empty, torch.ones_like(values), values)


def binary_auc(score: np.ndarray, label: np.ndarray) -> float:
    """ROC AUC of any real-valued score (probabilities, logits, SUVs, volumes); NaN when one class
    is absent. The scores enter as their ranks scaled to [0, 1] (the AUC depends on the order only):
    torchmetrics would take values outside [0, 1] for logits and squash them, and in float32 every
    SUV above about 17 would then tie at 1."""
    from scipy.stats import rankdata
    from torchmetrics.functional.classification import binary_auroc

    label = np.asarray(label).astype(int)
    if label.min(initial=1) == label.max(initial=0):
        return math.nan
    ranks = rankdata(np.asarray(score, dtype=float))
    scaled = (ranks - 1.0) / max(len(ranks) - 1.0, 1.0)
    return float(binary_auroc(torch.as_tensor(scaled, dtype=torch.float64), torch.as_tensor(label)))


def multiclass_auc(probabilities: np.ndarray, label: np.ndarray) -> float:
    """Macro one-vs-rest AUC for (N, K) probabilities."""
    from torchmetrics.functional.classification import multiclass_auroc

    label = np.asarray(label).astype(int)
    if len(np.unique(label)) < 2:
        return math.nan
    return float(multiclass_auroc(torch.as_tensor(probabilities, dtype=torch.float32),
                                  torch.as_tensor(label), num_classes=probabilities.shape[1]))


def concordance(risk: np.ndarray, event: np.ndarray, time: np.ndarray) -> float:
    """Harrell's C-index (torchsurv): higher risk should mean shorter time. NaN without events or
    without a comparable pair."""
    from torchsurv.metrics.cindex import ConcordanceIndex

    event = np.asarray(event).astype(bool)
    if not event.any() or len(event) < 2:
        return math.nan
    try:
        return float(ConcordanceIndex()(torch.as_tensor(np.asarray(risk, dtype=np.float32)),
                                        torch.as_tensor(event), torch.as_tensor(np.asarray(time, dtype=np.float32))))
    except ValueError:              # no comparable pair (e.g. the only event is the longest time)
        return math.nan


def accuracy(prediction: np.ndarray, label: np.ndarray) -> float:
    label = np.asarray(label)
    return float(np.mean(np.asarray(prediction) == label)) if len(label) else math.nan


def summarise(outputs: dict[str, np.ndarray], outcome_kind: str, n_classes: int) -> dict[str, float]:
    """Metrics from gathered per-case outputs (see ``training.evaluate.collect``)."""
    m: dict[str, float] = {}
    if "dice" in outputs and len(outputs["dice"]):
        m["dice"] = float(np.mean(outputs["dice"]))
    if "recon_mse" in outputs and len(outputs["recon_mse"]):
        m["recon_mse"] = float(np.mean(outputs["recon_mse"]))
    if "class_prob" in outputs and len(outputs["class_label"]):
        prob, label = outputs["class_prob"], outputs["class_label"]
        if n_classes == 2:
            m["class_auc"] = binary_auc(prob[:, 1], label)
        else:
            m["class_auc"] = multiclass_auc(prob, label)
        m["class_accuracy"] = accuracy(prob.argmax(axis=1), label)
    if "outcome" in outputs and len(outputs.get("outcome_label", [])) and outcome_kind == "binary":
        score, label = outputs["outcome"], outputs["outcome_label"]
        m["outcome_auc"] = binary_auc(score, label)
        m["outcome_accuracy"] = accuracy((score > 0.5).astype(int), label)
    if outcome_kind == "survival" and len(outputs.get("surv_time", [])):
        m["c_index"] = concordance(outputs["outcome_surv"], outputs["surv_event"], outputs["surv_time"])
    if len(outputs.get("survival_time", [])):
        m["c_index"] = concordance(outputs["survival_risk"], outputs["survival_event"], outputs["survival_time"])
    if "box_error" in outputs and len(outputs["box_error"]):
        m["box_centre_error"] = float(np.mean(outputs["box_error"]))
    return m


def bootstrap_interval(values_fn, n: int, rounds: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``values_fn(indices)`` over ``n`` cases."""
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(rounds):
        value = values_fn(rng.integers(0, n, size=n))
        if not math.isnan(value):
            stats.append(value)
    if not stats:
        return (math.nan, math.nan)
    lo, hi = np.percentile(stats, [(1 - level) / 2 * 100, (1 + level) / 2 * 100])
    return float(lo), float(hi)

"""PNG plots of a training run: loss curves, ROC curves, Kaplan-Meier by predicted risk."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def loss_curves(history: Sequence[dict], out_png: str | Path) -> Path:
    """Training and validation loss per epoch: the total and each task."""
    epochs = [h["epoch"] for h in history]
    keys = sorted({k[len("train_"):] for h in history for k in h if k.startswith("train_loss")})
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", "-"), ("val", "--")):
            values = [h.get(f"{split}_{key}", np.nan) for h in history]
            ax.plot(epochs, values, style, label=split)
        ax.set_title(key.replace("loss_", "").replace("loss", "total"), fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def roc_points(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over all thresholds (descending score)."""
    order = np.argsort(-np.asarray(score), kind="mergesort")
    label = np.asarray(label)[order].astype(bool)
    tp = np.concatenate([[0], np.cumsum(label)])
    fp = np.concatenate([[0], np.cumsum(~label)])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], out_png: str | Path) -> Path:
    """One ROC panel with a curve per name: name -> (score, label, auc)."""
    fig, ax = plt.subplots(figsize=(4, 4))
    for name, (score, label, auc) in curves.items():
        fpr, tpr = roc_points(score, label)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def kaplan_meier_by_risk(risk: np.ndarray, event: np.ndarray, time: np.ndarray, out_png: str | Path,
                         title: str = "Kaplan-Meier by predicted risk") -> Path:
    """Survival curves of the cases above and below the median predicted risk (torchsurv KM)."""
    from torchsurv.stats.kaplan_meier import KaplanMeierEstimator

    risk, event, time = np.asarray(risk), np.asarray(event).astype(bool), np.asarray(time, dtype=np.float32)
    high = risk > np.median(risk)
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    for name, group in (("low risk", ~high), ("high risk", high)):
        if group.sum() < 2 or not event[group].any():
            continue
        km = KaplanMeierEstimator()
        km(torch.as_tensor(event[group]), torch.as_tensor(time[group]))
        ax.step(np.concatenate([[0], km.time.numpy()]), np.concatenate([[1], km.km_est.numpy()]),
                where="post", label=f"{name} (n={int(group.sum())})")
    ax.set_xlabel("time (months)")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out

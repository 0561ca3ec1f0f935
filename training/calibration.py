"""Temperature scaling of held-out logits, and what calibration looks like (reliability).

One temperature T divides the logits: p = sigmoid(z / T) for a binary outcome, softmax(z / T) for
classes. T is fitted by minimising the negative log-likelihood on held-out predictions (the pooled
out-of-fold predictions of a cross-validation). It leaves every AUC and accuracy unchanged (a
monotone map) and makes the probabilities mean what they say; T > 1 softens over-confident models.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
from scipy.optimize import minimize_scalar

LOG_T_RANGE = (-3.0, 3.0)      # T between 0.05 and 20


def _nll_binary(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = logits / t
    return float(np.mean(np.logaddexp(0.0, z) - labels * z))


def _nll_classes(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_p[np.arange(len(labels)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """T minimising the NLL: ``logits`` (N,) binary with labels 0/1, or (N, K) with class indices."""
    logits, labels = np.asarray(logits, float), np.asarray(labels)
    if len(labels) < 2:
        return 1.0
    if logits.ndim == 1:
        nll = lambda log_t: _nll_binary(logits, labels.astype(float), math.exp(log_t))  # noqa: E731
    else:
        nll = lambda log_t: _nll_classes(logits, labels.astype(int), math.exp(log_t))  # noqa: E731
    best = minimize_scalar(nll, bounds=LOG_T_RANGE, method="bounded")
    return float(math.exp(best.x))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 5) -> dict:
    """Reliability of binary probabilities: per equal-width bin the mean probability, the observed
    frequency and the count; expected calibration error (ECE) and Brier score."""
    p, y = np.asarray(probabilities, float), np.asarray(labels, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    ece = 0.0
    for b in range(bins):
        inside = index == b
        if not inside.any():
            continue
        mean_p, freq = float(p[inside].mean()), float(y[inside].mean())
        rows.append({"bin": [float(edges[b]), float(edges[b + 1])], "mean_probability": mean_p,
                     "observed": freq, "n": int(inside.sum())})
        ece += inside.mean() * abs(mean_p - freq)
    return {"bins": rows, "ece": float(ece), "brier": float(np.mean((p - y) ** 2))}


def reliability_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], path, title: str,
                       bins: int = 5) -> None:
    """Reliability diagram of several binary predictors {name: (probabilities, labels)} as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfect calibration")
    for name, (p, y) in curves.items():
        r = reliability(p, y, bins)
        xs = [b["mean_probability"] for b in r["bins"]]
        ys = [b["observed"] for b in r["bins"]]
        ax.plot(xs, ys, "o-", label=f"{name} (ECE {r['ece']:.2f}, Brier {r['brier']:.2f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def calibration_entry(outcome_t: Optional[float], class_t: Optional[float], data: str, n: int) -> dict:
    """The model card's ``calibration``."""
    entry: dict = {"method": "temperature scaling (NLL)", "data": data, "n": n}
    if outcome_t is not None:
        entry["outcome_temperature"] = round(outcome_t, 4)
    if class_t is not None:
        entry["class_temperature"] = round(class_t, 4)
    return entry

"""Evaluation metrics against independent computations: AUC of raw scores, C-index direction,
bootstrap intervals, temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest

from training.calibration import fit_temperature, reliability
from training.metrics import binary_auc, bootstrap_interval, concordance


def mann_whitney(score, label):
    pos, neg = score[label == 1], score[label == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def test_auc_of_raw_scores_equals_the_mann_whitney_count():
    rng = np.random.default_rng(3)
    label = rng.integers(0, 2, 60)
    suv = np.round(rng.gamma(4, 4, 60) + 6 * label, 1)           # SUVs up to ~50, with ties
    tlg = rng.gamma(2, 500, 60) * (1 + label)                     # thousands
    for score in (suv, tlg, -tlg, suv / 100.0):
        assert binary_auc(score, label) == pytest.approx(mann_whitney(score, label), abs=1e-6)
    assert binary_auc(tlg, label) == pytest.approx(1 - binary_auc(-tlg, label), abs=1e-6)
    assert np.isnan(binary_auc(suv, np.zeros(60)))


def test_c_index_rewards_higher_risk_for_earlier_events():
    time = np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    event = np.array([1, 1, 1, 0, 1])
    assert concordance(-time, event, time) == pytest.approx(1.0)
    assert concordance(time, event, time) == pytest.approx(0.0)


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=500)
    lo_s, hi_s = bootstrap_interval(lambda i: float(small[i].mean()), len(small), rounds=500)
    lo_l, hi_l = bootstrap_interval(lambda i: float(large[i].mean()), len(large), rounds=500)
    assert lo_s < small.mean() < hi_s and lo_l < large.mean() < hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s) / 3


def test_temperature_softens_an_overconfident_model():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=2000)
    label = (rng.uniform(size=2000) < 1 / (1 + np.exp(-truth))).astype(int)
    overconfident = 4.0 * truth                                    # the right order, four times too sure
    t = fit_temperature(overconfident, label)
    assert t == pytest.approx(4.0, rel=0.15)
    before = reliability(1 / (1 + np.exp(-overconfident)), label)
    after = reliability(1 / (1 + np.exp(-overconfident / t)), label)
    assert after["ece"] < before["ece"] / 2 and after["brier"] < before["brier"]
    classes = rng.integers(0, 3, 900)
    logits = np.eye(3)[classes] * 2.0 + rng.normal(size=(900, 3)) * 2.0
    assert fit_temperature(logits * 5, classes) > fit_temperature(logits, classes)

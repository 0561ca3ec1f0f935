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


def harrell(risk, event, time) -> float:
    """Harrell's C by brute force: pairs whose shorter time is an event; ties in risk count half."""
    pairs = [(i, j) for i in range(len(time)) for j in range(len(time)) if time[i] < time[j] and event[i]]
    return float(np.mean([1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0 for i, j in pairs]))


def test_c_index_equals_harrells_pair_count_with_censoring():
    rng = np.random.default_rng(5)
    n = 80
    risk = rng.normal(size=n)
    time = np.round(rng.exponential(np.exp(-risk)) * 100, 3) + 0.001      # higher risk, earlier time
    event = (rng.uniform(size=n) < 0.7).astype(int)                        # 30 % censored
    c = concordance(risk, event, time)
    assert c == pytest.approx(harrell(risk, event, time), abs=1e-6)
    assert c > 0.6                                                        # the risk does tell
    assert concordance(-risk, event, time) == pytest.approx(1.0 - c, abs=1e-6)
    noise = rng.normal(size=n)
    assert concordance(noise, event, time) == pytest.approx(harrell(noise, event, time), abs=1e-6)
    assert np.isnan(concordance(risk, np.zeros(n), time))                # no event: undefined


def test_bootstrap_interval_is_reproducible_and_seeded():
    rng = np.random.default_rng(2)
    values = rng.normal(size=60)

    def mean(i):
        return float(values[i].mean())

    first = bootstrap_interval(mean, len(values), rounds=300, seed=4)
    assert bootstrap_interval(mean, len(values), rounds=300, seed=4) == first
    assert bootstrap_interval(mean, len(values), rounds=300, seed=5) != first
    narrow = bootstrap_interval(mean, len(values), rounds=300, seed=4, level=0.5)
    assert first[0] < narrow[0] < values.mean() < narrow[1] < first[1]
    # The interval is the percentiles of the resampled statistic, drawn as numpy draws them.
    draws = np.random.default_rng(4)
    stats = [mean(draws.integers(0, 60, size=60)) for _ in range(300)]
    assert first == pytest.approx(tuple(np.percentile(stats, [2.5, 97.5])), abs=1e-12)
    # Undefined rounds (NaN) are left out; all undefined gives NaN.
    half = bootstrap_interval(lambda i: mean(i) if i[0] % 2 else float("nan"), 60, rounds=300, seed=4)
    assert np.isfinite(half).all()
    assert np.isnan(bootstrap_interval(lambda i: float("nan"), 60, rounds=20)).all()


def test_dice_per_case_by_hand():
    import torch

    from training.metrics import dice_per_case

    rng = np.random.default_rng(6)
    prob = rng.uniform(size=(4, 1, 6, 6, 6)).astype(np.float32)
    target = (rng.uniform(size=prob.shape) > 0.6).astype(np.float32)
    prob[2] = 0.1
    target[2] = 0.0                                   # both empty: 1
    target[3] = 0.0                                   # prediction but no target: 0
    got = dice_per_case(torch.as_tensor(prob), torch.as_tensor(target)).numpy()
    for b in range(4):
        p, t = prob[b] > 0.5, target[b] > 0
        expected = 1.0 if p.sum() + t.sum() == 0 else 2.0 * (p & t).sum() / (p.sum() + t.sum())
        assert got[b] == pytest.approx(expected, abs=1e-6), b
    assert got[2] == 1.0 and got[3] == 0.0


def test_summarise_against_hand_computations():
    from training.metrics import multiclass_auc, summarise

    rng = np.random.default_rng(7)
    n = 40
    label = rng.integers(0, 2, n)
    outcome = np.clip(0.5 + 0.2 * (label - 0.5) + rng.normal(scale=0.2, size=n), 0, 1)
    p1 = np.clip(0.4 + 0.3 * label + rng.normal(scale=0.2, size=n), 0, 1)
    pathology = rng.integers(0, 2, n)
    time = rng.uniform(1, 50, n)
    event = rng.integers(0, 2, n)
    risk = rng.normal(size=n)
    outputs = {"dice": rng.uniform(size=n), "recon_mse": rng.uniform(size=n),
               "class_prob": np.column_stack([1 - p1, p1]), "class_label": pathology,
               "outcome": outcome, "outcome_label": label,
               "survival_risk": risk, "survival_time": time, "survival_event": event}
    m = summarise(outputs, "binary", 2)
    assert m["dice"] == pytest.approx(outputs["dice"].mean()) and m["recon_mse"] == pytest.approx(outputs["recon_mse"].mean())
    assert m["class_auc"] == pytest.approx(mann_whitney(p1, pathology), abs=1e-6)
    assert m["class_accuracy"] == pytest.approx(np.mean((p1 > 0.5) == (pathology == 1)))
    assert m["outcome_auc"] == pytest.approx(mann_whitney(outcome, label), abs=1e-6)
    assert m["outcome_accuracy"] == pytest.approx(np.mean((outcome > 0.5) == (label == 1)))
    assert m["c_index"] == pytest.approx(harrell(risk, event, time), abs=1e-6)
    # Three classes: the macro one-vs-rest AUC.
    k3 = rng.dirichlet(np.ones(3), size=n)
    y3 = rng.integers(0, 3, n)
    by_hand = np.mean([mann_whitney(k3[:, c], (y3 == c).astype(int)) for c in range(3)])
    assert multiclass_auc(k3, y3) == pytest.approx(by_hand, abs=1e-5)
    assert summarise({"class_prob": k3, "class_label": y3}, "binary", 3)["class_auc"] == pytest.approx(by_hand, abs=1e-5)


def test_summarise_of_a_cox_model_and_the_edges_of_each_metric():
    import math

    import torch

    from training.metrics import accuracy, dice_per_case, multiclass_auc, summarise

    rng = np.random.default_rng(8)
    n = 30
    time, event, risk = rng.uniform(1, 40, n), rng.integers(0, 2, n), rng.normal(size=n)
    cox = summarise({"outcome_surv": risk, "surv_event": event, "surv_time": time}, "survival", 2)
    assert cox == {"c_index": pytest.approx(harrell(risk, event, time), abs=1e-6)}
    # a binary model's outputs never give a C-index from the outcome's own columns
    assert "c_index" not in summarise({"outcome_surv": risk, "surv_event": event, "surv_time": time}, "binary", 2)
    assert summarise({"outcome": np.array([0.5, 0.7]), "outcome_label": np.array([0, 1])},
                     "binary", 2)["outcome_accuracy"] == 1.0        # 0.5 is not a predicted response
    assert summarise({"outcome": np.array([0.5]), "outcome_label": np.array([])}, "binary", 2) == {}
    assert summarise({"class_prob": np.zeros((0, 2)), "class_label": np.array([])}, "binary", 2) == {}
    # two patients: one comparable pair
    assert concordance(np.array([2.0, 1.0]), np.array([1, 0]), np.array([3.0, 9.0])) == 1.0
    assert concordance(np.array([1.0, 2.0]), np.array([1, 0]), np.array([3.0, 9.0])) == 0.0
    assert math.isnan(concordance(np.array([1.0]), np.array([1]), np.array([3.0])))
    assert math.isnan(concordance(np.array([1.0, 2.0]), np.array([0, 0]), np.array([3.0, 9.0])))
    # two of three classes present: still a macro AUC over the classes that occur
    k3 = np.array([[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1]])
    assert not math.isnan(multiclass_auc(k3, np.array([0, 1, 0, 1])))
    assert math.isnan(multiclass_auc(k3, np.array([1, 1, 1, 1])))
    assert math.isnan(accuracy(np.array([]), np.array([]))) and accuracy(np.array([1, 0]), np.array([1, 1])) == 0.5
    # the threshold itself is not foreground; a case with an empty target and prediction is 1
    prob = torch.full((2, 1, 2, 2, 2), 0.5)
    prob[1, 0, 0, 0, 0] = 0.9
    target = torch.zeros_like(prob)
    target[1, 0, 0, 0, 0] = 1.0
    assert dice_per_case(prob, target).tolist() == [1.0, 1.0]
    target[0, 0, 1, 1, 1] = 1.0
    assert dice_per_case(prob, target).tolist() == [0.0, 1.0]

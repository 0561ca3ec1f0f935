"""Classical outcome baselines on given folds: penalised models on IBSI radiomics, and single PET metrics.

Every prediction is out-of-fold on the folds it is GIVEN (the manifest's ``fold`` column, the same
folds as every other row of the real-outcome benchmark): the model that predicts fold k is fitted on
the other folds only, and everything it learns from data is learnt from them:

- feature hygiene (``FeatureFilter``, fitted on the training folds): columns with more than 10 %
  non-finite values dropped; near-constant columns dropped (one value held by >= 90 % of the
  training cases, or a relative spread below 1e-6); highly correlated columns dropped (greedy in
  MIRP's column order: a column is kept only when its |Spearman rho| with every kept column is
  <= 0.9); z-scored with the training mean and standard deviation; a missing value of a held-out
  case becomes the training mean (z = 0);
- the penalty, chosen by an inner cross-validation (stratified, ``INNER_FOLDS`` folds, fixed seed)
  on the training folds only, with the feature hygiene refitted inside every inner split;
  ties go to the stronger penalty.

Tasks (``task`` argument):

- ``"binary"`` (lung metastasis): L2-penalised logistic regression (scikit-learn; elastic net with
  ``l1_ratios=(0.0, 0.5)``); penalty C by the inner cross-validated log-loss; the output is the
  probability of the positive class.
- ``"survival"`` (overall survival): ridge Cox model, the project's own
  (``benchmarks.radiomics.cox_coefficients``: torchsurv partial likelihood, Efron ties, L-BFGS); the
  penalty chosen by the inner cross-validated partial likelihood of Verweij & van Houwelingen
  (Stat Med 1993): sum over inner folds of l(beta_-k; all training cases) - l(beta_-k; training
  cases outside k); the output is the linear predictor (log hazard ratio, higher = worse).
- ``"multiclass"`` (sarcoma type): multinomial L2 logistic regression; penalty by the inner
  log-loss; the output is (N, K) class probabilities in ``np.unique(labels)`` order.

Single-variable baselines need no fitting: the score is the variable itself (SUVmax, TLG, MTV,
SUVpeak of the GTV from the engine's ``MTLRadiomicsLib.mtv.pet_metrics.compute_metrics``, so they
equal what the engine reports), its AUC for lung metastasis and its C-index as a risk score.

Metrics reuse ``training.metrics`` (binary_auc, multiclass_auc, concordance, accuracy,
bootstrap_interval); intervals are 95 % percentile bootstraps over patients (1000 resamples).

``python -m benchmarks.classical_outcome --manifest M.csv --cache runs/sts/radiomics_mirp.csv``
prints every figure (and writes them as JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.radiomics import COX_PENALTIES, PENALTIES, cox_coefficients
from training.metrics import accuracy, binary_auc, bootstrap_interval, concordance, multiclass_auc

TASKS = ("binary", "survival", "multiclass")
INNER_FOLDS = 4
INNER_SEED = 0
MAX_CORRELATION = 0.9
CONSTANT_FRACTION = 0.9
MIN_FINITE_FRACTION = 0.9
# The grids of benchmarks.radiomics, widened towards stronger penalties: with 28 training patients
# the inner cross-validation often wants more shrinkage than those grids hold.
LOGISTIC_C = tuple(sorted(set(PENALTIES) | {0.001}))              # C of the logistic regression
COX_L2 = tuple(sorted(set(COX_PENALTIES) | {3.0, 10.0, 30.0, 100.0}))   # ridge weight of the Cox model
BOOTSTRAP_ROUNDS = 1000
PET_METRICS = ("suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg")


# --------------------------------------------------------------------------- feature hygiene

class FeatureFilter:
    """Finite / near-constant / correlation filter and z-scoring, all learnt from ``fit``'s rows.

    scikit-learn compatible (``get_params``/``set_params``/``fit``/``transform``), so it can sit in a
    Pipeline that scikit-learn's cross-validation refits on every split."""

    def __init__(self, max_correlation: float = MAX_CORRELATION, constant_fraction: float = CONSTANT_FRACTION,
                 min_finite_fraction: float = MIN_FINITE_FRACTION):
        self.max_correlation = max_correlation
        self.constant_fraction = constant_fraction
        self.min_finite_fraction = min_finite_fraction

    def get_params(self, deep: bool = True) -> dict:
        return {"max_correlation": self.max_correlation, "constant_fraction": self.constant_fraction,
                "min_finite_fraction": self.min_finite_fraction}

    def set_params(self, **params) -> "FeatureFilter":
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, x, y=None) -> "FeatureFilter":
        x = np.asarray(x, dtype=np.float64)
        n, p = x.shape
        finite = np.isfinite(x)
        candidates = []
        for j in range(p):
            values = x[finite[:, j], j]
            if values.size < max(2, math.ceil(self.min_finite_fraction * n)):
                continue
            _, counts = np.unique(values, return_counts=True)
            spread = float(values.std())
            if counts.max() >= self.constant_fraction * values.size or spread <= 1e-6 * (abs(float(values.mean())) + 1e-12):
                continue
            candidates.append(j)
        filled = np.where(finite, x, np.nanmedian(np.where(finite, x, np.nan), axis=0))
        ranks = stats.rankdata(filled[:, candidates], axis=0) if candidates else np.zeros((n, 0))
        rho = np.abs(np.corrcoef(ranks, rowvar=False)) if len(candidates) > 1 else np.ones((1, 1))
        kept_local: list[int] = []
        for a in range(len(candidates)):
            if all(rho[a, b] <= self.max_correlation for b in kept_local):
                kept_local.append(a)
        self.columns_ = np.asarray([candidates[a] for a in kept_local], dtype=int)
        kept = np.where(finite[:, self.columns_], x[:, self.columns_], np.nan)
        self.mean_ = np.nanmean(kept, axis=0) if kept.size else np.zeros(0)
        sd = np.nanstd(kept, axis=0) if kept.size else np.zeros(0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        return self

    def transform(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)[:, self.columns_]
        z = (x - self.mean_) / self.scale_
        return np.where(np.isfinite(z), z, 0.0)

    def fit_transform(self, x, y=None) -> np.ndarray:
        return self.fit(x, y).transform(x)


# --------------------------------------------------------------------------- models of one fold

@dataclass
class FoldFit:
    """One outer fold: the held-out prediction, the chosen penalty and the features kept."""

    prediction: np.ndarray
    penalty: float
    l1_ratio: float
    features: list[str]
    inner_scores: dict = field(default_factory=dict)


def _logistic(c: float, l1_ratio: float, elastic: bool):
    from sklearn import __version__ as sklearn_version
    from sklearn.linear_model import LogisticRegression

    major, minor = (int(v) for v in sklearn_version.split(".")[:2])
    kwargs = dict(C=c, max_iter=20000, tol=1e-6)
    if elastic:
        kwargs |= dict(solver="saga", l1_ratio=l1_ratio, random_state=0)
        if (major, minor) < (1, 8):
            kwargs["penalty"] = "elasticnet"
    return LogisticRegression(**kwargs)


def _inner_splits(y_strata: np.ndarray, inner_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified inner splits of the training cases (fewer folds when a stratum is too small)."""
    from sklearn.model_selection import StratifiedKFold

    _, counts = np.unique(y_strata, return_counts=True)
    k = int(max(2, min(inner_folds, counts.min())))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y_strata)), y_strata))


def fit_logistic_fold(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, names: Sequence[str],
                      l1_ratios: Sequence[float] = (0.0,), inner_folds: int = INNER_FOLDS,
                      seed: int = INNER_SEED) -> FoldFit:
    """Penalised logistic regression (binary or multinomial) fitted on the training rows only; C (and
    l1_ratio) by the inner cross-validated log-loss; probabilities of ``x_test`` ((n,) binary, (n, K)
    multiclass over the training classes, in sorted order)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    elastic = any(r > 0 for r in l1_ratios)
    pipeline = Pipeline([("filter", FeatureFilter()), ("model", _logistic(1.0, 0.0, elastic))])
    grid = {"model__C": list(LOGISTIC_C)}
    if elastic:
        grid["model__l1_ratio"] = [float(r) for r in l1_ratios]
    search = GridSearchCV(pipeline, grid, scoring="neg_log_loss", cv=_inner_splits(y_train, inner_folds, seed),
                          refit=True, n_jobs=None, error_score="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(x_train, y_train)
    best = search.best_estimator_
    probability = best.predict_proba(x_test)
    kept = [names[j] for j in best.named_steps["filter"].columns_]
    scores = {f"C={p['model__C']}" + (f",l1={p['model__l1_ratio']}" if elastic else ""): float(s)
              for p, s in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])}
    return FoldFit(probability[:, 1] if probability.shape[1] == 2 else probability,
                   float(search.best_params_["model__C"]), float(search.best_params_.get("model__l1_ratio", 0.0)),
                   kept, scores)


def log_partial_likelihood(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Cox log partial likelihood (sum over events, Efron ties; torchsurv, as the Cox model's fit)."""
    import torch
    from torchsurv.loss.cox import neg_partial_log_likelihood

    event = np.asarray(event).astype(bool)
    if not event.any():
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = neg_partial_log_likelihood(torch.as_tensor(np.asarray(risk, dtype=np.float64)), torch.as_tensor(event),
                                           torch.as_tensor(np.asarray(time, dtype=np.float64)),
                                           ties_method="efron", reduction="sum")
    return -float(value)


def _cox_fit(x: np.ndarray, time: np.ndarray, event: np.ndarray, penalty: float) -> tuple[FeatureFilter, np.ndarray]:
    scaler = FeatureFilter().fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beta = cox_coefficients(scaler.transform(x), time, event, penalty)
    return scaler, beta


def fit_cox_fold(x_train: np.ndarray, time_train: np.ndarray, event_train: np.ndarray, x_test: np.ndarray,
                 names: Sequence[str], inner_folds: int = INNER_FOLDS, seed: int = INNER_SEED) -> FoldFit:
    """Ridge Cox model fitted on the training rows only; the penalty by the inner cross-validated
    partial likelihood (Verweij & van Houwelingen); the linear predictor of ``x_test``."""
    event_train = np.asarray(event_train).astype(bool)
    time_train = np.asarray(time_train, dtype=np.float64)
    splits = _inner_splits(event_train.astype(int), inner_folds, seed)
    scores: dict[str, float] = {}
    best_penalty, best_score = None, -math.inf
    for penalty in sorted(COX_L2, reverse=True):           # strongest first: ties keep the stronger
        total = 0.0
        for inner_train, _ in splits:
            if not event_train[inner_train].any():
                continue
            scaler, beta = _cox_fit(x_train[inner_train], time_train[inner_train], event_train[inner_train], penalty)
            total += (log_partial_likelihood(scaler.transform(x_train) @ beta, time_train, event_train)
                      - log_partial_likelihood(scaler.transform(x_train[inner_train]) @ beta,
                                               time_train[inner_train], event_train[inner_train]))
        scores[f"l2={penalty}"] = total
        if total > best_score + 1e-9:
            best_penalty, best_score = penalty, total
    assert best_penalty is not None
    scaler, beta = _cox_fit(x_train, time_train, event_train, best_penalty)
    return FoldFit(scaler.transform(x_test) @ beta, float(best_penalty), 0.0,
                   [names[j] for j in scaler.columns_], scores)


# --------------------------------------------------------------------------- out-of-fold

def _matrix(table) -> tuple[np.ndarray, list[str]]:
    if isinstance(table, pd.DataFrame):
        return table.to_numpy(dtype=np.float64), [str(c) for c in table.columns]
    x = np.asarray(table, dtype=np.float64)
    return x, [f"x{j}" for j in range(x.shape[1])]


def _survival(labels) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) from a DataFrame with time and event columns, a (time, event) pair or (N, 2)."""
    if isinstance(labels, pd.DataFrame):
        return labels["time"].to_numpy(np.float64), labels["event"].to_numpy().astype(bool)
    if isinstance(labels, (tuple, list)) and len(labels) == 2:
        return np.asarray(labels[0], dtype=np.float64), np.asarray(labels[1]).astype(bool)
    array = np.asarray(labels, dtype=np.float64)
    return array[:, 0], array[:, 1].astype(bool)


def out_of_fold_details(table, labels, folds, task: str, l1_ratios: Sequence[float] = (0.0,),
                        inner_folds: int = INNER_FOLDS, seed: int = INNER_SEED) -> tuple[np.ndarray, dict[int, FoldFit]]:
    """Out-of-fold predictions (see ``out_of_fold``) and each outer fold's fit."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    x, names = _matrix(table)
    folds = np.asarray(folds)
    if len(folds) != len(x):
        raise ValueError(f"{len(x)} rows of features but {len(folds)} folds")
    if task == "survival":
        time, event = _survival(labels)
        prediction = np.full(len(x), np.nan)
    else:
        y = np.asarray(labels)
        classes, y_index = np.unique(y, return_inverse=True)
        if task == "binary" and len(classes) != 2:
            raise ValueError(f"binary task needs two classes, found {list(classes)}")
        prediction = np.full(len(x), np.nan) if task == "binary" else np.full((len(x), len(classes)), np.nan)
    fits: dict[int, FoldFit] = {}
    for fold in np.unique(folds):
        test, train = folds == fold, folds != fold
        if task == "survival":
            fit = fit_cox_fold(x[train], time[train], event[train], x[test], names, inner_folds, seed)
            prediction[test] = fit.prediction
        else:
            fit = fit_logistic_fold(x[train], y_index[train], x[test], names, l1_ratios, inner_folds, seed)
            if task == "binary":
                prediction[test] = fit.prediction
            else:
                seen = np.unique(y_index[train])                 # classes of the training folds
                block = np.zeros((int(test.sum()), len(classes)))
                block[:, seen] = fit.prediction
                prediction[test] = block
        fits[int(fold)] = fit
    return prediction, fits


def out_of_fold(table, labels, folds, task: str, l1_ratios: Sequence[float] = (0.0,),
                inner_folds: int = INNER_FOLDS, seed: int = INNER_SEED) -> np.ndarray:
    """Out-of-fold predictions of ``task`` ("binary", "survival", "multiclass") from the features
    ``table`` (DataFrame or (N, F) array; rows in the order of ``labels`` and ``folds``): every row is
    predicted by a model fitted, hygiene and penalty included, on the rows of the other folds only.

    labels: 0/1 (binary); (time, event) pair, (N, 2) array or DataFrame with time and event
    (survival); class labels (multiclass). Returns: probabilities (N,) of class 1; Cox linear
    predictors (N,); or class probabilities (N, K) in ``np.unique(labels)`` order."""
    return out_of_fold_details(table, labels, folds, task, l1_ratios, inner_folds, seed)[0]


# --------------------------------------------------------------------------- metrics

@dataclass
class Estimate:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def unit_ranks(score) -> np.ndarray:
    """The score's ranks (ties averaged) mapped into (0, 1): the same ROC AUC as the score itself.

    ``training.metrics.binary_auc`` goes through torchmetrics, which takes scores outside [0, 1] for
    logits and passes them through a sigmoid in float32: every SUV above about 17 (and every TLG or
    MTV) then becomes exactly 1.0, a tie, and the AUC of a raw PET metric comes out wrong (SUVmax
    0.808 instead of 0.825 on the 35 sarcomas, TLG and MTV 0.5). Ranks keep the order and the ties,
    so the AUC is that of the raw value."""
    return stats.rankdata(np.asarray(score, dtype=np.float64)) / (len(score) + 1.0)


def auc_estimate(score, label, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Estimate:
    """ROC AUC of the raw score (no fitting, no flipping), with a patient bootstrap 95 % interval."""
    score, label = unit_ranks(score), np.asarray(label).astype(int)
    low, high = bootstrap_interval(lambda i: binary_auc(score[i], label[i]), len(label), rounds, seed)
    return Estimate(binary_auc(score, label), low, high)


def concordance_estimate(risk, time, event, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Estimate:
    """Harrell's C-index of the risk score (higher = shorter survival), with a patient bootstrap."""
    risk, time, event = np.asarray(risk, np.float64), np.asarray(time, np.float64), np.asarray(event).astype(bool)
    low, high = bootstrap_interval(lambda i: concordance(risk[i], event[i], time[i]), len(risk), rounds, seed)
    return Estimate(concordance(risk, event, time), low, high)


def accuracy_estimate(probability, label, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Estimate:
    """Accuracy of the most probable class (``label`` as indices 0..K-1)."""
    prediction, label = np.asarray(probability).argmax(axis=1), np.asarray(label).astype(int)
    low, high = bootstrap_interval(lambda i: accuracy(prediction[i], label[i]), len(label), rounds, seed)
    return Estimate(accuracy(prediction, label), low, high)


def macro_auc_estimate(probability, label, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Estimate:
    """Macro one-vs-rest AUC; a resample that lacks a class is skipped."""
    probability, label = np.asarray(probability, np.float64), np.asarray(label).astype(int)
    k = probability.shape[1]

    def value(i):
        return multiclass_auc(probability[i], label[i]) if len(np.unique(label[i])) == k else math.nan

    low, high = bootstrap_interval(value, len(label), rounds, seed)
    return Estimate(multiclass_auc(probability, label), low, high)


# --------------------------------------------------------------------------- the cohort

def pet_metrics_table(manifest) -> pd.DataFrame:
    """The engine's PET metrics of each case's GTV on its native grid (rows case_id): SUVmax, SUVpeak,
    SUVmean, MTV (ml), TLG, exactly as ``compute_metrics`` reports them."""
    import SimpleITK as sitk

    from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

    frame = manifest if isinstance(manifest, pd.DataFrame) else pd.read_csv(manifest, dtype={"case_id": str})
    rows = {}
    for record in frame.itertuples(index=False):
        image = sitk.ReadImage(str(record.pet), sitk.sitkFloat32)
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(record.mask))) > 0
        metrics = compute_metrics(sitk.GetArrayFromImage(image), mask, image.GetSpacing())
        rows[str(record.case_id)] = {name: getattr(metrics, name) for name in PET_METRICS}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("case_id")


def evaluate_cohort(manifest, features: pd.DataFrame, pet: Optional[pd.DataFrame] = None,
                    rounds: int = BOOTSTRAP_ROUNDS, elastic_net: bool = True) -> dict:
    """Every classical figure on the manifest's folds: out-of-fold AUC (lung metastasis), C-index
    (survival), accuracy and macro AUC (type), each with its bootstrap interval; also the
    out-of-fold predictions per case (``"cases"``)."""
    frame = manifest if isinstance(manifest, pd.DataFrame) else pd.read_csv(manifest, dtype={"case_id": str})
    frame = frame.assign(case_id=frame["case_id"].astype(str))
    missing = [c for c in frame["case_id"] if c not in features.index]
    if missing:
        raise ValueError(f"no radiomics features for {missing}: the out-of-fold rows must be every case")
    pet = pet_metrics_table(frame) if pet is None else pet
    x = features.loc[frame["case_id"]]
    folds = frame["fold"].to_numpy(int)
    y = frame["response"].to_numpy(int)
    time, event = frame["time"].to_numpy(float), frame["event"].to_numpy(int)
    metric = pet.loc[frame["case_id"]]
    out: dict = {"patients": len(frame), "folds": int(len(np.unique(folds))), "features": int(x.shape[1]),
                 "lung_metastasis": {}, "survival": {}, "pathology": {}, "cases": {}}

    started = time_now = _clock()
    p_l2, fits_l2 = out_of_fold_details(x, y, folds, "binary")
    out["lung_metastasis"]["radiomics logistic (L2)"] = auc_estimate(p_l2, y, rounds).to_dict()
    out["lung_metastasis"]["radiomics logistic (L2) penalties"] = {k: f.penalty for k, f in fits_l2.items()}
    out["lung_metastasis"]["radiomics features kept per fold"] = {k: len(f.features) for k, f in fits_l2.items()}
    out["cases"]["lung_metastasis_l2"] = p_l2.tolist()
    if elastic_net:
        p_en, fits_en = out_of_fold_details(x, y, folds, "binary", l1_ratios=(0.0, 0.5))
        out["lung_metastasis"]["radiomics logistic (elastic net)"] = auc_estimate(p_en, y, rounds).to_dict()
        out["lung_metastasis"]["radiomics logistic (elastic net) penalties"] = {
            k: [f.penalty, f.l1_ratio] for k, f in fits_en.items()}
        out["cases"]["lung_metastasis_elastic_net"] = p_en.tolist()
    for name, column in (("SUVmax", "suv_max"), ("SUVpeak", "suv_peak"), ("TLG", "tlg"), ("MTV", "mtv_ml")):
        out["lung_metastasis"][name] = auc_estimate(metric[column].to_numpy(), y, rounds).to_dict()
    out["seconds_lung_metastasis"] = _clock() - time_now

    time_now = _clock()
    risk, fits_cox = out_of_fold_details(x, (time, event), folds, "survival")
    out["survival"]["radiomics ridge Cox"] = concordance_estimate(risk, time, event, rounds).to_dict()
    out["survival"]["radiomics ridge Cox penalties"] = {k: f.penalty for k, f in fits_cox.items()}
    out["cases"]["survival_cox"] = risk.tolist()
    for name, column in (("SUVmax", "suv_max"), ("SUVpeak", "suv_peak"), ("TLG", "tlg"), ("MTV", "mtv_ml")):
        out["survival"][name] = concordance_estimate(metric[column].to_numpy(), time, event, rounds).to_dict()
    out["seconds_survival"] = _clock() - time_now

    time_now = _clock()
    classes, label = np.unique(frame["pathology"].astype(str).to_numpy(), return_inverse=True)
    probability, fits_type = out_of_fold_details(x, label, folds, "multiclass")
    out["pathology"]["classes"] = [str(c) for c in classes]
    out["pathology"]["accuracy"] = accuracy_estimate(probability, label, rounds).to_dict()
    out["pathology"]["macro AUC"] = macro_auc_estimate(probability, label, rounds).to_dict()
    out["pathology"]["majority-class accuracy"] = float(np.bincount(label).max() / len(label))
    out["pathology"]["penalties"] = {k: f.penalty for k, f in fits_type.items()}
    out["cases"]["pathology_probability"] = probability.tolist()
    out["seconds_pathology"] = _clock() - time_now
    out["seconds"] = _clock() - started
    out["cases"]["case_id"] = frame["case_id"].tolist()
    return out


def _clock() -> float:
    return time.perf_counter()


def _fmt(entry) -> str:
    return str(Estimate(**entry)) if isinstance(entry, dict) and "value" in entry else str(entry)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import torch

    from benchmarks.radiomics_mirp import radiomics_table, timing_summary

    parser = argparse.ArgumentParser(prog="python -m benchmarks.classical_outcome", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True, help="manifest CSV (python -m training.sts_cohort)")
    parser.add_argument("--cache", required=True, help="the MIRP feature table CSV (filled when incomplete)")
    parser.add_argument("--json", help="write every figure to this JSON file")
    parser.add_argument("--rounds", type=int, default=BOOTSTRAP_ROUNDS, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    features = radiomics_table(args.manifest, args.cache)
    if features.attrs["failed"]:
        print(f"radiomics failed for {features.attrs['failed']}", file=sys.stderr)
        return 1
    result = evaluate_cohort(args.manifest, features, rounds=args.rounds)
    result["extraction"] = timing_summary(features)
    for section in ("lung_metastasis", "survival", "pathology"):
        print(f"{section}:")
        for key, value in result[section].items():
            print(f"  {key}: {_fmt(value)}")
    print("extraction:", json.dumps({k: round(v, 2) for k, v in result["extraction"].items()}))
    print(f"models: {result['seconds']:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

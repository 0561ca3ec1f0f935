"""Held-out accuracy of the multi-task network against its ablations, classical radiomics and the
ceiling set by the true risk, on one synthetic cohort.

``python -m benchmarks.accuracy [--quick | --medium | --full] [--out DIR] [--device auto|cpu|cuda]``

One run generates (or reuses) a synthetic cohort (`generate_cohort`, fixed seed), trains on folds
1..4 with fold 0 as the validation fold for early stopping and model selection, and reports on the
locked test split (fold 'test'), never used before. Early stopping and the choice of the best
epoch follow the mode's validation metric (``Mode.monitor``): the total loss in the quick and full
modes, the outcome's own metric in the medium mode (the total loss, where the outcome weighs 0.3,
picks epochs good for the segmentation and the classification, not for the outcome). The rows:

- the full model: reconstruction, segmentation, pathology and outcome, multi-scale global features
  and tumour features from the segmentation;
- single-task outcome prediction: the same backbone, the outcome head alone on global features;
- segmentation + outcome, without the auxiliary reconstruction and classification tasks;
- classical radiomics: features of the 40 % SUVmax MTV with L2 logistic regression
  (`benchmarks.radiomics`);
- the survival variant: the full model with a Cox head, and a ridge Cox model on the radiomics
  features;
- the ceiling: the AUC / C-index of the manifest's true risk (oracle_risk; for response the score
  is -oracle_risk);
- medium mode only: the full model with the MTV's PET metrics (SUVmax, SUVpeak, MTV, TLG of the
  manifest's mask) as further outcome features (``metric_features``).

``--epochs``, ``--patience`` and ``--cases`` override the mode's settings for a dry run (the section
says so; give it ``--results`` of a scratch file).

Every figure comes with a 95 % percentile bootstrap interval over the test cases (the same
resamples for every model); each model's outcome AUC and C-index are also given as a share of the
ceiling. Results: a section of benchmarks/RESULTS.md per mode and ``accuracy_<mode>.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from benchmarks.report import RESULTS, write_section

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mode:
    """What one mode generates and trains."""

    name: str
    n_cases: int
    seed: int
    preset: str
    spacing_mm: float
    crop: int
    epochs: int
    patience: int
    batch_size: int
    lr: float
    bootstrap_rounds: int
    purpose: str
    monitor: str = "loss"             # early stopping / best epoch of the response networks (training.monitor)
    survival_monitor: str = "loss"    # the same for the Cox network
    extra_models: tuple[str, ...] = ()  # rows beyond DEEP_MODELS (keys of EXTRA_MODELS)
    note: str = ""                    # why the mode is set as it is (printed in its RESULTS section)


# The medium mode: the small preset at 32^3 / 3 mm (the bundled model's input; 96 mm field of view, as
# quick's 16^3 at 6 mm). Time: one training step of the full small model (4 crops) takes 0.33 s on an
# idle 2-core CPU (benchmarks/speed.py), so an epoch of 384 training cases (96 steps) and the 96
# validation cases about 35 s; the full, Cox and PET-metric networks cost that, segmentation + outcome
# about 0.65 of it and the outcome-only network 0.15-0.2 (the step ratios measured side by side): about
# 135 s per epoch of all five networks, at most 22 epochs about 50 min, with generation (600 crops,
# about 1 min), the networks' cache fills and final evaluations, radiomics and the bootstrap about 54 min.
# Selection on the outcome's own metric: the total loss, where the outcome weighs 0.3, kept the quick
# mode's full model at an epoch with validation outcome AUC 0.52 (test 0.50). The AUC of the 96
# validation cases (41 responders) has a bootstrap SD of 0.047 (that of the true risk; 0.066 for quick's
# 48): it tells an outcome head near 0.5 from one near 0.75, which is what the choice of the epoch has
# to do, and it is what the table reports (ranks: the head's calibration drifting between epochs does
# not move it); the Cox network likewise on its validation C-index.
MEDIUM_EPOCHS, MEDIUM_PATIENCE = 22, 8
MEDIUM_NOTE = (
    "Model selection: every network keeps the epoch of its best validation outcome AUC (the Cox network: "
    "its C-index) and stops after {patience} epochs without improvement. The total loss, where the outcome "
    "weighs 0.3, chose epochs good for the segmentation and the classification in the quick mode's run of "
    "2026-11-22 (its full model: validation outcome AUC 0.52, test 0.50). The validation fold's {{n_val}} "
    "cases ({{n_val_responders}} responders) give the AUC a sampling SD of {{val_sd:.3f}} (the bootstrap SD "
    "of the AUC of the true risk on fold 0, which is {{val_auc:.3f}}): enough to tell a useless outcome "
    "head from a good one, not epochs a few hundredths apart. The validation figures in the training table are those of the "
    "chosen epochs, biased upward by the choice; the test figures are not.\n\n"
    "Budget: a training step of the full `small` network (4 crops of 32³) takes 0.33 s on an idle 2-core "
    "CPU (`benchmarks/speed.py`), about 35 s per epoch with validation; segmentation + outcome costs about "
    "0.65 of that, outcome only 0.15-0.2; the five networks together about 135 s per epoch, so at most "
    "{epochs} epochs (about 50 min) and generation, cache fills, radiomics and bootstrap (about 4 min) fit "
    "the hour. Measured seconds per epoch: the training table (a CPU shared with other work takes longer)."
).format(epochs=MEDIUM_EPOCHS, patience=MEDIUM_PATIENCE)


MODES = {
    "quick": Mode("quick", n_cases=300, seed=2024, preset="tiny", spacing_mm=6.0, crop=16, epochs=50,
                  patience=10, batch_size=8, lr=3e-3, bootstrap_rounds=1000,
                  purpose="a few minutes on a 2-core CPU"),
    "medium": Mode("medium", n_cases=600, seed=2024, preset="small", spacing_mm=3.0, crop=32, epochs=MEDIUM_EPOCHS,
                   patience=MEDIUM_PATIENCE, batch_size=4, lr=1e-3, bootstrap_rounds=2000,
                   purpose="under an hour on a 2-core CPU", monitor="outcome_auc", survival_monitor="c_index",
                   extra_models=("full_metrics",), note=MEDIUM_NOTE),
    "full": Mode("full", n_cases=1000, seed=2024, preset="small", spacing_mm=2.0, crop=48, epochs=150,
                 patience=25, batch_size=4, lr=1e-3, bootstrap_rounds=2000,
                 purpose="a GPU (hours on a CPU)"),
    "smoke": Mode("smoke", n_cases=60, seed=5, preset="tiny", spacing_mm=8.0, crop=16, epochs=1,
                  patience=1, batch_size=8, lr=3e-3, bootstrap_rounds=50,
                  purpose="the test suite (seconds); its figures mean nothing"),
}


@dataclass(frozen=True)
class DeepModel:
    key: str
    label: str
    trained_for: str
    changes: dict = field(default_factory=dict)


DEEP_MODELS = (
    DeepModel("full", "Full model (4 tasks, multi-scale, tumour + global features)", "response (BCE)"),
    DeepModel("outcome_only", "Single task: outcome only (global features)", "response (BCE)",
              dict(reconstruction=False, segmentation=False, classification=False, tumour_features=False)),
    DeepModel("seg_outcome", "Segmentation + outcome (no reconstruction, no classification)", "response (BCE)",
              dict(reconstruction=False, classification=False)),
    DeepModel("full_survival", "Full model, survival (Cox head)", "survival (Cox)",
              dict(outcome_kind="survival")),
)
EXTRA_MODELS = {
    "full_metrics": DeepModel("full_metrics", "Full model + PET metric features (SUVmax, SUVpeak, MTV, TLG)",
                              "response (BCE)", dict(metric_features=True)),
}
RADIOMICS_LOGISTIC = ("radiomics_logistic", "Radiomics (40 % SUVmax MTV) + L2 logistic regression", "response")
RADIOMICS_COX = ("radiomics_cox", "Radiomics (40 % SUVmax MTV) + ridge Cox", "survival")
ORACLE = ("oracle", "Ceiling: true risk (oracle_risk)", "—")
ROW_ORDER = ("full", "full_metrics", "outcome_only", "seg_outcome", "radiomics_logistic", "full_survival",
             "radiomics_cox", "oracle")
METRICS = ("outcome_auc", "outcome_accuracy", "c_index", "dice", "pathology_auc")
MONITOR_WORDS = {
    "loss": "the total validation loss (every task with its weight)",
    "loss_outcome": "the outcome's own validation loss (BCE; for the Cox head its partial likelihood)",
    "outcome_auc": "the validation outcome AUC",
    "c_index": "the validation C-index",
    "dice": "the validation Dice",
}


def models_of(mode: Mode) -> tuple[DeepModel, ...]:
    """The networks a mode trains: the standard rows and its extra ones."""
    return DEEP_MODELS + tuple(EXTRA_MODELS[key] for key in mode.extra_models)


def monitor_of(mode: Mode, model: DeepModel) -> str:
    """The validation metric that stops ``model`` early and chooses its best epoch."""
    return mode.survival_monitor if model.changes.get("outcome_kind") == "survival" else mode.monitor


@dataclass
class Predictions:
    """Per-case scores on the test split, aligned with the test case order.

    response_score: higher = response more likely; response_probability: a calibrated probability
    (for accuracy at 0.5), None where the model gives none; risk: higher = shorter survival;
    dice: per-case Dice of the model's MTV; pathology_score: probability of the second class."""

    response_score: Optional[np.ndarray] = None
    response_probability: Optional[np.ndarray] = None
    risk: Optional[np.ndarray] = None
    dice: Optional[np.ndarray] = None
    pathology_score: Optional[np.ndarray] = None


@dataclass
class Labels:
    case_ids: list[str]
    response: np.ndarray
    time: np.ndarray
    event: np.ndarray
    pathology: np.ndarray
    oracle_risk: np.ndarray


# ---------------------------------------------------------------- cohort and configurations


def prepare_cohort(out: Path, mode: Mode, log: Callable[[str], None]) -> tuple[Path, float]:
    """The mode's cohort in ``out/cohort`` (reused when it was made with the same settings)."""
    from MTLRadiomicsLib.synth import GENERATOR_VERSION, generate_cohort

    folder = out / "cohort"
    summary = folder / "cohort.json"
    if (folder / "manifest.csv").exists() and summary.exists():
        facts = json.loads(summary.read_text())
        if (facts.get("n_cases"), facts.get("seed"), facts.get("generator_version")) == (
                mode.n_cases, mode.seed, GENERATOR_VERSION):
            log(f"reusing the cohort in {folder}")
            return folder / "manifest.csv", 0.0
        shutil.rmtree(folder)
    log(f"generating {mode.n_cases} synthetic cases (seed {mode.seed}) in {folder}")
    start = time.perf_counter()
    manifest = generate_cohort(folder, mode.n_cases, seed=mode.seed, kind="crop", progress=False)
    return manifest, time.perf_counter() - start


def run_config(mode: Mode, model: DeepModel):
    from MTLRadiomicsLib.model.config import LossConfig, named_config
    from MTLRadiomicsLib.model.model_card import Preprocessing
    from training.run_config import RunConfig, TrainingConfig

    return RunConfig(
        model=named_config(mode.preset, norm="batch", **model.changes),
        loss=LossConfig(),
        preprocessing=Preprocessing(spacing_mm=(mode.spacing_mm,) * 3, crop_size=(mode.crop,) * 3),
        training=TrainingConfig(epochs=mode.epochs, batch_size=mode.batch_size, lr=mode.lr,
                                patience=mode.patience, seed=0, val_fold=0, amp=True,
                                monitor=monitor_of(mode, model)))


# ---------------------------------------------------------------- the models


def train_deep(model: DeepModel, mode: Mode, manifest: Path, runs: Path, test_records, device: str,
               log: Callable[[str], None]) -> tuple[Predictions, dict]:
    """Train one network (early stopping on the mode's fold-0 validation metric) and predict the test split."""
    from torch.utils.data import DataLoader

    from MTLRadiomicsLib.model.losses import MultiTaskLoss
    from MTLRadiomicsLib.model.model_file import load_model
    from training.dataset import build_dataset
    from training.evaluate import collect
    from training.trainer import pick_device, train

    config = run_config(mode, model)
    run_dir = runs / model.key
    if run_dir.exists():
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    result = train(config, manifest, run_dir, device_name=device, progress=False,
                   log=lambda line: log(f"  [{model.key}] {line}"))
    seconds = time.perf_counter() - start
    if not (run_dir / "best").exists():
        raise RuntimeError(f"{model.key}: no epoch had a defined validation {config.training.monitor} "
                           "(a validation fold with one class?): no best model to test")
    best = load_model(run_dir / "best", device=pick_device(device))
    data = build_dataset(test_records, config.preprocessing, config.model.in_channels, augment=False)
    _, outputs = collect(best.network, DataLoader(data, batch_size=mode.batch_size),
                         MultiTaskLoss(best.config), pick_device(device))
    order = [str(c) for c in outputs["case_id"]]
    if order != [r.case_id for r in test_records]:
        raise RuntimeError("test predictions came back in another order than the test cases")
    p = Predictions()
    if config.model.outcome_kind == "binary":
        prob = outputs["outcome"].astype(np.float64)
        p.response_score = p.response_probability = prob
        p.risk = -prob
    else:
        p.risk = outputs["outcome_surv"].astype(np.float64)
        p.response_score = -p.risk
    if "dice" in outputs:
        p.dice = outputs["dice"].astype(np.float64)
    if "class_prob" in outputs:
        p.pathology_score = outputs["class_prob"][:, 1].astype(np.float64)
    monitor = config.training.monitor
    validation = {k: v for k, v in json.loads((run_dir / "metrics.json").read_text()).get("validation", {}).items()
                  if not k.startswith("loss") or k == monitor}
    epoch_seconds = [row["seconds"] for row in result.history]
    facts = {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "train_seconds": round(seconds, 1),
             "epoch_seconds_median": round(float(np.median(epoch_seconds)), 1) if epoch_seconds else math.nan,
             "monitor": monitor,
             "parameters": int(sum(t.numel() for t in best.network.parameters())),
             "tasks": best.config.tasks, "validation": validation}
    return p, facts


def radiomics_models(records, test_ids: list[str], labels: Labels, log) -> tuple[dict, dict]:
    """The logistic (response, pathology) and Cox (survival) radiomics baselines."""
    from benchmarks import radiomics
    from training.manifest import split
    from training.metrics import binary_auc

    train_records, val_records, test_records = split(records, 0)
    start = time.perf_counter()
    table = radiomics.feature_table(train_records + val_records + test_records, progress=log)
    feature_seconds = time.perf_counter() - start

    def arrays(rs):
        ids = [r.case_id for r in rs]
        return (table.rows(ids), np.array([r.response for r in rs], float),
                np.array([r.time for r in rs], float), np.array([r.event for r in rs], float),
                np.array([r.pathology for r in rs], float))

    x_tr, resp_tr, time_tr, event_tr, path_tr = arrays(train_records)
    x_va, resp_va, time_va, event_va, path_va = arrays(val_records)
    x_te = table.rows(test_ids)
    dice = table.dice_of(test_ids)
    response = radiomics.fit_logistic(x_tr, resp_tr, x_va, resp_va, binary_auc)
    pathology = radiomics.fit_logistic(x_tr, path_tr, x_va, path_va, binary_auc)
    cox = radiomics.fit_cox(x_tr, time_tr, event_tr, x_va, time_va, event_va, concordance)
    prob = response.probability(x_te)
    logistic = Predictions(response_score=prob, response_probability=prob, risk=-prob, dice=dice,
                           pathology_score=pathology.probability(x_te))
    risk = cox.risk(x_te)
    cox_p = Predictions(response_score=-risk, risk=risk, dice=dice,
                        pathology_score=pathology.probability(x_te))
    facts = {"features": list(table.names), "feature_seconds": round(feature_seconds, 1),
             "response_C": response.penalty_c, "response_validation_auc": response.validation_auc,
             "pathology_C": pathology.penalty_c, "cox_penalty": cox.penalty,
             "cox_validation_c_index": cox.validation_c_index,
             "mtv": "40 % SUVmax region in the lesion's bounding box + 10 mm, region holding SUVmax",
             "texture_library": "scikit-image graycoprops on 3-D 13-direction co-occurrence matrices"}
    return {"radiomics_logistic": logistic, "radiomics_cox": cox_p}, facts


def oracle_predictions(labels: Labels) -> Predictions:
    """The true risk: P(response) = sigmoid(-k risk) is above 0.5 exactly when risk < 0."""
    risk = labels.oracle_risk
    return Predictions(response_score=-risk, response_probability=(risk < 0).astype(float), risk=risk)


# ---------------------------------------------------------------- metrics


def concordance(risk: np.ndarray, event: np.ndarray, time: np.ndarray) -> float:
    """Harrell's C (training.metrics); NaN for a resample without a comparable pair."""
    from training.metrics import concordance as c_index

    try:
        return c_index(risk, event, time)
    except ValueError:
        return math.nan


def metric_functions(p: Predictions, labels: Labels) -> dict[str, Callable[[np.ndarray], float]]:
    """Metric name -> function of bootstrap indices, for the metrics this model has."""
    from training.metrics import binary_auc

    fns: dict[str, Callable[[np.ndarray], float]] = {}
    if p.response_score is not None:
        fns["outcome_auc"] = lambda i: binary_auc(p.response_score[i], labels.response[i])
    if p.response_probability is not None:
        correct = ((p.response_probability > 0.5).astype(int) == labels.response).astype(float)
        fns["outcome_accuracy"] = lambda i: float(correct[i].mean())
    if p.risk is not None:
        fns["c_index"] = lambda i: concordance(p.risk[i], labels.event[i], labels.time[i])
    if p.dice is not None:
        fns["dice"] = lambda i: float(p.dice[i].mean())
    if p.pathology_score is not None:
        fns["pathology_auc"] = lambda i: binary_auc(p.pathology_score[i], labels.pathology[i])
    return fns


def score_all(predictions: dict[str, Predictions], labels: Labels, rounds: int) -> dict[str, dict]:
    """Point value and 95 % bootstrap interval of every metric; shares of the ceiling (paired)."""
    from training.metrics import bootstrap_interval

    n = len(labels.case_ids)
    everything = np.arange(n)
    functions = {key: {name: _memoised(fn) for name, fn in metric_functions(p, labels).items()}
                 for key, p in predictions.items()}
    oracle = functions["oracle"]
    scores: dict[str, dict] = {}
    for key, fns in functions.items():
        row: dict = {}
        for name, fn in fns.items():
            lo, hi = bootstrap_interval(fn, n, rounds=rounds)
            row[name] = {"value": fn(everything), "ci95": [lo, hi]}
        for name, ceiling in (("outcome_auc", "auc_share_of_ceiling"), ("c_index", "c_index_share_of_ceiling")):
            if name in fns and key != "oracle":
                fn, ref = fns[name], oracle[name]
                ratio = lambda i, fn=fn, ref=ref: _ratio(fn(i), ref(i))
                lo, hi = bootstrap_interval(ratio, n, rounds=rounds)
                row[ceiling] = {"value": ratio(everything), "ci95": [lo, hi]}
        scores[key] = row
    return scores


def _memoised(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
    """``fn`` remembering its value per resample (the shares of the ceiling reuse the same ones)."""
    cache: dict[bytes, float] = {}

    def wrapped(indices: np.ndarray) -> float:
        key = np.asarray(indices).tobytes()
        if key not in cache:
            cache[key] = fn(indices)
        return cache[key]

    return wrapped


def _ratio(value: float, ceiling: float) -> float:
    return value / ceiling if math.isfinite(ceiling) and ceiling > 0 else math.nan


# ---------------------------------------------------------------- report


def fmt(entry: Optional[dict], digits: int = 3) -> str:
    if not entry or not math.isfinite(entry["value"]):
        return "—"
    lo, hi = entry["ci95"]
    return f"{entry['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown(result: dict) -> str:
    mode, facts, scores = result["mode"], result["facts"], result["scores"]
    labels = {key: (label, trained) for key, label, trained in result["rows"]}
    head = ("| model | trained for | outcome AUC | accuracy | C-index | Dice | pathology AUC | "
            "AUC / ceiling | C-index / ceiling |")
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for key in ROW_ORDER:
        if key not in scores:
            continue
        s = scores[key]
        label, trained = labels[key]
        cells = [fmt(s.get(m)) for m in METRICS] + [fmt(s.get("auc_share_of_ceiling"), 2),
                                                     fmt(s.get("c_index_share_of_ceiling"), 2)]
        if key == "oracle":
            cells[-2:] = ["1", "1"]
        lines.append(f"| {label} | {trained} | " + " | ".join(cells) + " |")
    deep = facts["deep_models"]
    runs = ["| model | parameters | monitor | epochs run | best epoch | s per epoch (median) | training time (s) | "
            "validation (fold 0, best epoch) |", "|---|---|---|---|---|---|---|---|"]
    for key in deep:
        f = deep[key]
        val = ", ".join(f"{k} {v:.3f}" for k, v in f["validation"].items() if isinstance(v, (int, float)))
        runs.append(f"| {key} | {f['parameters']:,} | {f.get('monitor', 'loss')} | {f['epochs_run']} | "
                    f"{f['best_epoch']} | {f.get('epoch_seconds_median', math.nan):.0f} | "
                    f"{f['train_seconds']:.0f} | {val} |")
    m, c, r = result["settings"], result["cohort"], facts["radiomics"]
    monitor, survival_monitor = m.get("monitor", "loss"), m.get("survival_monitor", "loss")
    selection = f"early stopping on {MONITOR_WORDS[monitor]}"
    if survival_monitor != monitor:
        selection += f" (the Cox network: {MONITOR_WORDS[survival_monitor]})"
    extra = ""
    if "full_metrics" in deep:
        extra = ("Full model + PET metric features: the full model whose outcome head also takes log(1 + x) of "
                 "SUVmax, SUVpeak, MTV (ml) and TLG of the manifest's mask (the ground-truth MTV, on the test cases "
                 "too, as the crops of every network are centred on it; the engine computes them from its own MTV).")
    note = ""
    if m.get("note"):
        note = m["note"].format(n_val=c["n_validation"], n_val_responders=c["validation_responders"],
                                val_sd=c["oracle_validation_auc_sd"], val_auc=c["oracle_validation_auc"])
    paragraphs = "".join("\n\n" + text for text in (extra, note) if text) + ("\n" if extra or note else "")
    text = f"""What this mode does ({m['purpose']}): a synthetic cohort of {c['n_cases']} lesion crops (64³ at
2 mm, seed {m['seed']}; `generate_cohort(kind='crop')`), split by the generator into folds 0–4 and a
locked test split: {c['n_train']} training cases (folds 1–4), {c['n_validation']} validation cases (fold 0:
{selection} and choice of the best epoch for the networks, choice of the
penalty for the radiomics models) and {c['n_test']} test cases (fold `test`, used for this table only).
Networks: the `{m['preset']}` preset (encoder widths {', '.join(map(str, m['features']))}), batch
normalisation, input crops of {m['crop']}³ voxels at {m['spacing_mm']:g} mm ({m['crop'] * m['spacing_mm']:g} mm
field of view), at most {m['epochs']} epochs (patience {m['patience']}), batch {m['batch_size']}, Adam
lr {m['lr']:g}, training seed 0, loss weights α = β = 0.2, λ = 0.3, ω = 0.3; training augmentation as in
`training/`; the same folds and test cases for every row.{paragraphs}
Radiomics: {len(r['features'])} features of the 40 % SUVmax MTV (a box around the lesion with a 10 mm margin,
voxels ≥ 40 % of the lesion's SUVmax, the region holding SUVmax): SUVmax, SUVpeak, SUVmean, MTV, TLG
(the engine's `pet_metrics`), first-order statistics, shape (marching cubes) and 3-D GLCM texture
(co-occurrences in 13 directions, properties by scikit-image's `graycoprops`; pyradiomics does not
install on Python 3.11: its source package needs numpy and versioneer at build time); L2 logistic
regression (scikit-learn, C = {r['response_C']:g}) and a ridge Cox model (torchsurv partial likelihood,
penalty {r['cox_penalty']:g}). Whole run: {result['seconds']:.0f} s (cohort generation
{c['generation_seconds']:.0f} s of it; 0 when an earlier run's cohort was reused).

Test split, n = {c['n_test']}; value [95 % bootstrap interval, {m['bootstrap_rounds']} resamples, the same for
every row]. Outcome AUC: response; accuracy: response probability > 0.5 (the ceiling: true risk < 0,
the Bayes rule). C-index: survival, from the Cox risk, or for the response models from −P(response).
Dice: networks on their own {m['spacing_mm']:g} mm crop grid against the resampled ground-truth mask;
radiomics rows: the 40 % SUVmax MTV on the 2 mm grid against the ground truth (the generator's 40 %
SUVmax region of the tumour's own signal). Shares of the ceiling: AUC ÷ ceiling AUC and
C-index ÷ ceiling C-index, bootstrapped in pairs. The cohort's ceiling over all
{c['n_cases']} cases: AUC {c['oracle_auc_all']:.3f}, C-index {c['oracle_c_index_all']:.3f}.

{chr(10).join(lines)}

Training of the networks:

{chr(10).join(runs)}
"""
    return text


# ---------------------------------------------------------------- the run


def run(mode: Mode, out: Path, device: str = "auto", results: Path = RESULTS,
        log: Callable[[str], None] = print, command: Optional[str] = None) -> dict:
    """Run the benchmark in ``mode``; write RESULTS section and JSON; return the result dict."""
    from MTLRadiomicsLib.model.config import named_config
    from training.manifest import read_manifest, split

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    manifest, generation_seconds = prepare_cohort(out, mode, log)
    records, class_names = read_manifest(manifest)
    train_records, val_records, test_records = split(records, 0)
    test_ids = [r.case_id for r in test_records]
    labels = Labels(test_ids, np.array([r.response for r in test_records], int),
                    np.array([r.time for r in test_records], float),
                    np.array([r.event for r in test_records], int),
                    np.array([r.pathology for r in test_records], int),
                    np.array([r.oracle_risk for r in test_records], float))
    predictions: dict[str, Predictions] = {}
    deep_facts: dict[str, dict] = {}
    models = models_of(mode)
    for model in models:
        log(f"training {model.key}: {model.label}")
        predictions[model.key], deep_facts[model.key] = train_deep(model, mode, manifest, out / "runs",
                                                                   test_records, device, log)
    log("radiomics baselines")
    radiomics_predictions, radiomics_facts = radiomics_models(records, test_ids, labels, log)
    predictions |= radiomics_predictions
    predictions["oracle"] = oracle_predictions(labels)
    log("bootstrap intervals")
    scores = score_all(predictions, labels, mode.bootstrap_rounds)
    cohort = json.loads((manifest.parent / "cohort.json").read_text())
    result = {
        "mode": mode.name,
        "settings": asdict(mode) | {"features": list(named_config(mode.preset).features)},
        "cohort": {"n_cases": len(records), "n_train": len(train_records), "n_validation": len(val_records),
                   "n_test": len(test_records), "class_names": class_names,
                   "oracle_auc_all": cohort["oracle_auc_response"], "oracle_c_index_all": cohort["oracle_c_index"],
                   "generation_seconds": round(generation_seconds, 1)}
                  | validation_noise(val_records, mode.bootstrap_rounds),
        "rows": [(m.key, m.label, m.trained_for) for m in models] + [RADIOMICS_LOGISTIC, RADIOMICS_COX, ORACLE],
        "scores": scores,
        "facts": {"deep_models": deep_facts, "radiomics": radiomics_facts},
        "test_case_ids": test_ids,
        "seconds": round(time.perf_counter() - started, 1),
    }
    body = markdown(result)
    json_path = results.parent / f"accuracy_{mode.name}.json"
    json_path.write_text(json.dumps(result, indent=1, default=_json_default))
    command = command or f"python -m benchmarks.accuracy --{mode.name}"
    write_section(f"Accuracy ({mode.name})", body + f"\nAll figures: `{_relative(json_path)}`.\n", command,
                  results)
    log(body)
    return result


def validation_noise(val_records, rounds: int) -> dict:
    """How noisy a validation AUC is: the true risk's AUC on the validation fold and its bootstrap SD."""
    from training.metrics import binary_auc

    response = np.array([r.response for r in val_records], int)
    score = -np.array([r.oracle_risk for r in val_records], float)
    if not len(response):
        return {"validation_responders": 0, "oracle_validation_auc": math.nan, "oracle_validation_auc_sd": math.nan}
    rng = np.random.default_rng(0)
    draws = [binary_auc(score[i], response[i]) for i in rng.integers(0, len(response), (rounds, len(response)))]
    draws = [d for d in draws if math.isfinite(d)]
    return {"validation_responders": int(response.sum()),
            "oracle_validation_auc": binary_auc(score, response) if 0 < response.sum() < len(response) else math.nan,
            "oracle_validation_auc_sd": float(np.std(draws)) if len(draws) > 1 else math.nan}


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value)} is not JSON serialisable")


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def with_overrides(mode: Mode, **changes: Optional[int]) -> Mode:
    """``mode`` with the given settings changed (None: unchanged); its purpose names the changes."""
    changes = {k: v for k, v in changes.items() if v is not None and v != getattr(mode, k)}
    if not changes:
        return mode
    for key, value in changes.items():
        if value < 1:
            raise ValueError(f"--{key.replace('n_cases', 'cases')} must be positive, not {value}")
    said = ", ".join(f"{k.replace('n_cases', 'cases')} {v}" for k, v in changes.items())
    return replace(mode, **changes, purpose=f"a dry run of the {mode.name} mode with {said}: its figures mean nothing")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accuracy", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_const", dest="mode", const="quick",
                       help="300 cases, tiny networks on 16³ crops at 6 mm, up to 50 epochs: minutes on a CPU (default)")
    which.add_argument("--medium", action="store_const", dest="mode", const="medium",
                       help="600 cases, small networks on 32³ crops at 3 mm, selection on the outcome's "
                            "validation metric: under an hour on a 2-core CPU")
    which.add_argument("--full", action="store_const", dest="mode", const="full",
                       help="1000 cases, small networks at 2 mm, up to 150 epochs: for a GPU")
    which.add_argument("--smoke", action="store_const", dest="mode", const="smoke",
                       help="60 cases, one epoch: checks that the benchmark runs (figures mean nothing)")
    parser.add_argument("--out", type=Path, help="working folder for the cohort and the runs "
                        "(default: runs/bench_accuracy_<mode>)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to write")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    dry = parser.add_argument_group("dry runs", "override the mode's settings (the section says so; "
                                    "write it to a scratch --results)")
    dry.add_argument("--epochs", type=int, help="at most this many epochs per network")
    dry.add_argument("--patience", type=int, help="early-stopping patience")
    dry.add_argument("--cases", type=int, help="cohort size (at least 60 for a validation fold with both classes)")
    args = parser.parse_args(argv)
    mode = with_overrides(MODES[args.mode or "quick"], epochs=args.epochs, patience=args.patience,
                          n_cases=args.cases)
    out = args.out or ROOT / "runs" / (f"bench_accuracy_{mode.name}" if mode == MODES[mode.name]
                                       else f"bench_accuracy_{mode.name}_dry")
    command = "python -m benchmarks.accuracy " + " ".join(sys.argv[1:] if argv is None else argv)
    run(mode, out, args.device, args.results, log=lambda line: print(line, flush=True), command=command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

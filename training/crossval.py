"""k-fold cross-validation: ``python -m training.crossval --config C --manifest M --out CV``.

For each fold k of the manifest (its integer ``fold`` column) a model is trained on the other folds,
with fold k+1 (mod k) held back for early stopping, and tested on fold k, so every case is predicted
once by a model that never saw it. The held-out predictions are pooled: per-fold and pooled metrics
(whole-lesion Dice by the engine's sliding-window MTV on the PET grid, with a bootstrap 95 %
interval), a table (``crossval.md``), per-case rows (``oof.csv``), figures (``dice_per_fold.png``,
``volumes.png``) and ``crossval.json``. Finished folds are not retrained (the run resumes).
``--final`` then trains one model on all cases for the median best epoch of the folds
(``final/best``), the model to export.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

FOLD_DIR = "fold_{k}"


def read_rows(manifest: Path) -> tuple[list[dict], list[str]]:
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader), list(reader.fieldnames or [])


def development_folds(rows: list[dict]) -> list[int]:
    """The integer folds of the manifest (cases of the locked 'test' split are left out)."""
    folds = sorted({int(r["fold"]) for r in rows if str(r.get("fold", "")).strip().lstrip("-").isdigit()})
    if len(folds) < 2:
        raise ValueError("cross-validation needs a manifest with at least two integer folds in its 'fold' column")
    return folds


def fold_manifest(rows: list[dict], columns: list[str], folds: list[int], k: int, root: Path, out: Path) -> Path:
    """The manifest of fold ``k``: fold k -> 'test', the next fold -> '0' (validation), the rest -> '1';
    paths made absolute against the original manifest's folder."""
    validation = folds[(folds.index(k) + 1) % len(folds)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            fold = str(row.get("fold", "")).strip()
            if not fold.lstrip("-").isdigit():
                continue
            new = dict(row)
            for key in ("pet", "mask", "ct"):
                if new.get(key):
                    new[key] = str((root / new[key]).resolve())
            new["fold"] = "test" if int(fold) == k else ("0" if int(fold) == validation else "1")
            writer.writerow(new)
    return out


def bootstrap_mean(values: Sequence[float], rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = [float(values[rng.integers(0, len(values), len(values))].mean()) for _ in range(rounds)]
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def summarise_dice(rows: list[dict]) -> dict:
    values = [r["dice"] for r in rows]
    if not values:
        return {"n": 0}
    return {"n": len(values), "dice_mean": float(np.mean(values)), "dice_median": float(np.median(values)),
            "dice_ci95": list(bootstrap_mean(values)), "empty": int(sum(bool(r["empty"]) for r in rows)),
            "cut": int(sum(bool(r["cut_at_scan_end"]) or bool(r["reached_limit"]) for r in rows))}


def run_crossval(config_path: str | Path, manifest: str | Path, out: str | Path, overrides: Optional[dict] = None,
                 device_name: str = "auto", final: bool = False, progress: bool = True,
                 log: Callable[[str], None] = print, init_from: Optional[str | Path] = None) -> dict:
    """Train and test every fold, pool the held-out results, write the files (module doc); returns
    the content of crossval.json. ``init_from``: an earlier cross-validation folder whose fold k
    model starts fold k (and whose final model starts the final one): fine-tuning without leakage."""
    from MTLRadiomicsLib.model.model_file import load_model
    from training.heldout_mtv import evaluate_network_mtv
    from training.heldout_scores import score_cases
    from training.manifest import read_manifest
    from training.run_config import RunConfig
    from training.trainer import pick_device, train

    manifest, out = Path(manifest), Path(out)
    rows, columns = read_rows(manifest)
    folds = development_folds(rows)
    out.mkdir(parents=True, exist_ok=True)
    config = RunConfig.from_yaml(config_path, overrides)
    config.training.val_fold = 0
    config.save(out / "config.yaml")
    device = pick_device(device_name)
    started = time.perf_counter()
    per_fold, pooled = {}, []
    scored: list[dict] = []
    for k in folds:
        fold_dir = out / FOLD_DIR.format(k=k)
        fold_csv = fold_manifest(rows, columns, folds, k, manifest.parent, fold_dir / "manifest.csv")
        if not (fold_dir / "run" / "metrics.json").exists():
            log(f"fold {k}: training")
            resume = (fold_dir / "run" / "checkpoint_last.pt").exists()
            fold_config = _with_init(config, init_from, FOLD_DIR.format(k=k) + "/run/best")
            train(fold_config, fold_csv, fold_dir / "run", resume=resume, device_name=device_name,
                  progress=progress, log=log)
        history = json.loads((fold_dir / "run" / "history.json").read_text())
        best_epoch = max((r["epoch"] for r in history if r.get("improved")), default=len(history))
        records, _ = read_manifest(fold_csv)
        test = [r for r in records if r.is_test]
        cases_path = fold_dir / "heldout.json"
        model = None
        if cases_path.exists():
            cases = json.loads(cases_path.read_text())
        else:
            model = load_model(fold_dir / "run" / "best", device=device)
            cases = []
            if model.network.segmentation is not None:
                log(f"fold {k}: whole-lesion MTV on {len(test)} held-out cases")
                cases = evaluate_network_mtv(model, test, device, log=log)
            cases_path.write_text(json.dumps(cases, indent=1))
        scores_path = fold_dir / "scores.json"
        if scores_path.exists():
            fold_scores = json.loads(scores_path.read_text())
        else:
            model = model or load_model(fold_dir / "run" / "best", device=device)
            fold_scores = []
            if model.network.outcome is not None or model.network.classification is not None:
                log(f"fold {k}: scores of {len(test)} held-out cases")
                fold_scores = score_cases(model, test, device, log=log)
            scores_path.write_text(json.dumps(fold_scores, indent=1))
        for case in cases + fold_scores:
            case["fold"] = k
        per_fold[k] = summarise_dice(cases) | {"best_epoch": best_epoch, "epochs_run": len(history)}
        if fold_scores:
            per_fold[k] |= {"outcomes": summarise_scores(fold_scores, bootstrap=False)}
        pooled += cases
        scored += fold_scores
    result = {"manifest": str(manifest), "config": str(config_path), "overrides": overrides or {},
              "folds": {str(k): v for k, v in per_fold.items()}, "pooled": summarise_dice(pooled),
              "median_best_epoch": int(statistics.median(v["best_epoch"] for v in per_fold.values())),
              "seconds": round(time.perf_counter() - started, 1)}
    if scored:
        result["outcomes"] = summarise_scores(scored)
        result["calibration"] = fit_calibration(scored)
    if final:
        final_dir = out / "final"
        if not (final_dir / "metrics.json").exists() and not (final_dir / "best" / "model.json").exists():
            epochs = result["median_best_epoch"]
            log(f"final model: all {len(pooled)} cases, {epochs} epochs (the folds' median best epoch)")
            all_csv = final_manifest(rows, columns, manifest.parent, out / "final_manifest.csv")
            final_config = _with_init(config, init_from, "final/best")
            final_config.training.epochs = epochs
            final_config.training.patience = epochs + 1
            train(final_config, all_csv, final_dir, resume=(final_dir / "checkpoint_last.pt").exists(),
                  device_name=device_name, progress=progress, log=log)
        result["final_model"] = str(final_dir / "best")
    write_outputs(out, result, pooled, scored)
    return result


def _with_init(config, init_from: Optional[str | Path], relative: str):
    """A copy of ``config`` starting from ``init_from/relative`` (when given)."""
    from training.run_config import RunConfig

    copy = RunConfig.from_dict(config.to_dict())
    if init_from:
        source = Path(init_from) / relative
        if not (source / "model.json").exists():
            raise FileNotFoundError(f"{source} holds no model to start from (train {init_from} first)")
        copy.training.init_weights = str(source)
    return copy


def summarise_scores(rows: list[dict], bootstrap: bool = True) -> dict:
    """Out-of-fold outcome figures: lung-metastasis (binary outcome) AUC, survival C-index, type
    accuracy and macro AUC, each with a bootstrap 95 % interval over the cases when ``bootstrap``."""
    from training.heldout_scores import class_probabilities
    from training.metrics import accuracy, binary_auc, bootstrap_interval, concordance, multiclass_auc

    out: dict = {"n": len(rows)}

    def add(name: str, fn, n: int) -> None:
        value = fn(np.arange(n))
        out[name] = value
        if bootstrap and not math.isnan(value):
            out[f"{name}_ci95"] = list(bootstrap_interval(fn, n))

    binary = [r for r in rows if "outcome_logit" in r and r.get("response") is not None]
    if binary:
        score = np.array([r["outcome_logit"] for r in binary])
        label = np.array([int(r["response"]) for r in binary])
        add("outcome_auc", lambda i: binary_auc(score[i], label[i]), len(binary))
    survival = [r for r in rows if "survival_risk" in r and r.get("time") is not None and r.get("event") is not None]
    if survival:
        risk = np.array([r["survival_risk"] for r in survival])
        time_ = np.array([float(r["time"]) for r in survival])
        event = np.array([int(r["event"]) for r in survival])
        add("c_index", lambda i: concordance(risk[i], event[i], time_[i]), len(survival))
    typed = [r for r in rows if "class_logits" in r and r.get("pathology") is not None]
    if typed:
        prob = class_probabilities(np.array([r["class_logits"] for r in typed]))
        label = np.array([int(r["pathology"]) for r in typed])
        add("class_accuracy", lambda i: accuracy(prob[i].argmax(axis=1), label[i]), len(typed))
        if prob.shape[1] > 2:
            add("class_auc", lambda i: multiclass_auc(prob[i], label[i]), len(typed))
        else:
            add("class_auc", lambda i: binary_auc(prob[i, 1], label[i]), len(typed))
    return out


def fit_calibration(rows: list[dict]) -> dict:
    """Temperatures for the outcome and the classes, fitted on the pooled out-of-fold logits."""
    from training.calibration import calibration_entry, fit_temperature

    binary = [r for r in rows if "outcome_logit" in r and r.get("response") is not None]
    typed = [r for r in rows if "class_logits" in r and r.get("pathology") is not None]
    t_outcome = (fit_temperature(np.array([r["outcome_logit"] for r in binary]),
                                 np.array([int(r["response"]) for r in binary])) if binary else None)
    t_class = None
    if typed:
        logits = np.array([r["class_logits"] for r in typed])
        if logits.shape[1] == 1:
            logits = logits[:, 0]
        t_class = fit_temperature(logits, np.array([int(r["pathology"]) for r in typed]))
    return calibration_entry(t_outcome, t_class, "pooled out-of-fold predictions of the cross-validation",
                             max(len(binary), len(typed)))


def final_manifest(rows: list[dict], columns: list[str], root: Path, out: Path) -> Path:
    """Every development case for training, none held back (fold '1')."""
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            if not str(row.get("fold", "")).strip().lstrip("-").isdigit():
                continue
            new = dict(row)
            for key in ("pet", "mask", "ct"):
                if new.get(key):
                    new[key] = str((root / new[key]).resolve())
            new["fold"] = "1"
            writer.writerow(new)
    return out


def write_outputs(out: Path, result: dict, pooled: list[dict], scored: Optional[list[dict]] = None) -> None:
    (out / "crossval.json").write_text(json.dumps(result, indent=2))
    if pooled:
        with open(out / "oof.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(pooled[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(pooled)
    if scored:
        columns = [c for c in scored[0] if c != "features"]
        with open(out / "oof_scores.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
            writer.writeheader()
            writer.writerows(scored)
    (out / "crossval.md").write_text(markdown_table(result))
    if pooled:
        figures(out, result, pooled)


def markdown_table(result: dict) -> str:
    lines = ["| fold | n | Dice mean | Dice median | 95 % CI (mean) | empty | cut | best epoch |",
             "|---|---|---|---|---|---|---|---|"]

    def row(name: str, m: dict) -> str:
        if not m.get("n"):
            return f"| {name} | 0 | | | | | | |"
        lo, hi = m["dice_ci95"]
        return (f"| {name} | {m['n']} | {m['dice_mean']:.3f} | {m['dice_median']:.3f} | [{lo:.3f}, {hi:.3f}] | "
                f"{m['empty']} | {m['cut']} | {m.get('best_epoch', '')} |")

    lines += [row(k, m) for k, m in result["folds"].items()]
    lines.append(row("pooled", result["pooled"]))
    outcomes = result.get("outcomes")
    if outcomes:
        lines += ["", "| out-of-fold | value | 95 % CI |", "|---|---|---|"]
        for key, label in (("outcome_auc", "outcome AUC"), ("c_index", "survival C-index"),
                           ("class_accuracy", "type accuracy"), ("class_auc", "type AUC")):
            if key in outcomes:
                lo, hi = outcomes.get(f"{key}_ci95", [math.nan, math.nan])
                lines.append(f"| {label} | {outcomes[key]:.3f} | [{lo:.3f}, {hi:.3f}] |")
    return "\n".join(lines) + "\n"


def figures(out: Path, result: dict, pooled: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = sorted({c["fold"] for c in pooled})
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.boxplot([[c["dice"] for c in pooled if c["fold"] == k] for k in folds] + [[c["dice"] for c in pooled]])
    ax.set_xticks(range(1, len(folds) + 2), [f"fold {k}" for k in folds] + ["pooled"])
    ax.set_ylabel("Dice (whole-lesion MTV vs reference)")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out Dice per fold")
    fig.tight_layout()
    fig.savefig(out / "dice_per_fold.png", dpi=120)
    plt.close(fig)
    predicted = np.array([c["mtv_ml"] for c in pooled])
    reference = np.array([c["reference_ml"] for c in pooled])
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    axes[0].loglog(reference, np.maximum(predicted, 0.1), "o", alpha=0.7)
    limits = [max(0.1, min(reference.min(), max(predicted.min(), 0.1))), max(reference.max(), predicted.max())]
    axes[0].plot(limits, limits, "k--", linewidth=0.8)
    axes[0].set_xlabel("reference volume (ml)")
    axes[0].set_ylabel("MTV (ml)")
    axes[0].set_title("Volumes")
    mean = (predicted + reference) / 2
    diff = predicted - reference
    axes[1].semilogx(mean, diff, "o", alpha=0.7)
    bias, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    for value, style in ((bias, "-"), (bias + 1.96 * sd, "--"), (bias - 1.96 * sd, "--")):
        axes[1].axhline(value, color="grey", linestyle=style, linewidth=0.8)
    axes[1].set_xlabel("mean of MTV and reference (ml)")
    axes[1].set_ylabel("MTV − reference (ml)")
    axes[1].set_title(f"Bland-Altman: bias {bias:.0f} ml, limits ±{1.96 * sd:.0f} ml")
    fig.tight_layout()
    fig.savefig(out / "volumes.png", dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from training.train import overrides_from_args

    parser = argparse.ArgumentParser(prog="python -m training.crossval", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML run configuration (training/configs/*.yaml)")
    parser.add_argument("--manifest", required=True, help="cohort manifest CSV with integer folds")
    parser.add_argument("--out", required=True, help="cross-validation folder (resumed when it exists)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--epochs", type=int, help="maximum epochs per fold (overrides training.epochs)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a configuration value (repeatable)")
    parser.add_argument("--init-from", metavar="CV", help="an earlier cross-validation folder: its fold k model "
                        "starts fold k, its final model the final one (fine-tuning without leakage)")
    parser.add_argument("--final", action="store_true",
                        help="then train the final model on all cases for the folds' median best epoch")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    args.fold = None
    try:
        overrides = overrides_from_args(args)
        if overrides.get("training", {}).get("threads"):
            torch.set_num_threads(int(overrides["training"]["threads"]))
        result = run_crossval(args.config, args.manifest, args.out, overrides, args.device, args.final,
                              not args.no_progress, init_from=args.init_from)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"crossval: error: {error}", file=sys.stderr)
        return 2
    pooled = result["pooled"]
    for key, value in (result.get("outcomes") or {}).items():
        if key in ("outcome_auc", "c_index", "class_accuracy", "class_auc"):
            print(f"out-of-fold {key} {value:.3f}")
    if pooled.get("n"):
        lo, hi = pooled["dice_ci95"]
        print(f"pooled out-of-fold Dice {pooled['dice_mean']:.3f} [{lo:.3f}, {hi:.3f}], median "
              f"{pooled['dice_median']:.3f} (n = {pooled['n']}); {args.out}/crossval.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

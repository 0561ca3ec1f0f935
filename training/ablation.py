"""Ablations: the paper's Table 1 task/feature combinations and the lambda sweep, over folds.

``python -m training.ablation --config training/configs/small.yaml --manifest M --out DIR``
writes ``DIR/ablation.md`` (mean +- sd over folds, validation folds only) and ``DIR/ablation.json``.

Table 1 rows: every non-empty combination of the four tasks T1 reconstruction, T2 segmentation,
T3 classification, T4 outcome (15 rows); the outcome head uses tumour and global multi-scale
features when the segmentation is trained and global features otherwise. Two more rows vary the
outcome features of the full model (tumour only, global only). The sweep trains the full model for
lambda in 0.1 ... 0.9 with alpha = beta = omega = (1 - lambda) / 3.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from training.run_config import RunConfig
from training.trainer import train

TASKS = ("reconstruction", "segmentation", "classification", "outcome")
SHORT = {"reconstruction": "T1", "segmentation": "T2", "classification": "T3", "outcome": "T4"}
COLUMNS = (("dice", "Dice"), ("recon_mse", "Recon. MSE"), ("class_auc", "Class AUC"),
           ("outcome_auc", "Outcome AUC"), ("c_index", "C-index"))


@dataclass
class Variant:
    label: str
    tasks: tuple[str, ...]
    features: str                     # "tumour+global", "global", "tumour", "-"
    lam: Optional[float] = None


def table1_variants() -> list[Variant]:
    variants = []
    for n in range(1, 5):
        for combo in itertools.combinations(TASKS, n):
            if "outcome" in combo:
                features = "tumour+global" if "segmentation" in combo else "global"
            else:
                features = "-"
            variants.append(Variant(" + ".join(SHORT[t] for t in combo), combo, features))
    variants.append(Variant("T1 + T2 + T3 + T4", TASKS, "tumour"))
    variants.append(Variant("T1 + T2 + T3 + T4", TASKS, "global"))
    return variants


def sweep_variants(lams: Sequence[float]) -> list[Variant]:
    return [Variant(f"lambda = {lam:.1f}", TASKS, "tumour+global", lam) for lam in lams]


def configure(base: RunConfig, variant: Variant) -> RunConfig:
    flags = {t: t in variant.tasks for t in TASKS}
    model = base.model.with_changes(
        **flags, tumour_features="tumour" in variant.features, global_features="global" in variant.features)
    loss = base.loss
    if variant.lam is not None:
        share = (1.0 - variant.lam) / 3.0
        loss = replace(loss, lam=variant.lam, alpha=share)
    return replace(base, model=model, loss=loss)


def mean_sd(values: list[float]) -> str:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "-"
    if len(finite) == 1:
        return f"{finite[0]:.3f}"
    return f"{np.mean(finite):.3f} ± {np.std(finite, ddof=1):.3f}"


def markdown(rows: list[tuple[Variant, list[dict]]], title: str, outcome_kind: str) -> str:
    outcome_key = "outcome_auc" if outcome_kind == "binary" else "c_index"
    keys = [c for c in COLUMNS if c[0] in ("dice", "recon_mse", "class_auc", outcome_key)]
    header = "| Tasks | T1 | T2 | T3 | T4 | Outcome features | " + " | ".join(n for _, n in keys) + " |"
    lines = [f"### {title}", "", header, "|" + "---|" * (6 + len(keys))]
    for variant, results in rows:
        marks = " | ".join("✓" if t in variant.tasks else "" for t in TASKS)
        cells = " | ".join(mean_sd([r.get(k) for r in results]) for k, _ in keys)
        lines.append(f"| {variant.label} | {marks} | {variant.features} | {cells} |")
    return "\n".join(lines) + "\n"


def run_variant(base: RunConfig, variant: Variant, manifest: Path, out: Path, folds: Sequence[int],
                device: str) -> list[dict]:
    config = configure(base, variant)
    results = []
    for fold in folds:
        fold_config = replace(config, training=replace(config.training, val_fold=fold))
        name = variant.label.replace(" + ", "-").replace(" = ", "") + f"_{variant.features}_fold{fold}"
        run_dir = out / "runs" / name.replace(" ", "")
        done = run_dir / "metrics.json"
        if done.exists():                       # finished earlier: re-use (the ablation can resume)
            results.append(json.loads(done.read_text()).get("validation", {}))
            continue
        result = train(fold_config, manifest, run_dir, resume=(run_dir / "checkpoint_last.pt").exists(),
                       device_name=device, progress=False, log=lambda *_: None)
        results.append(result.final.get("validation", {}))
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.ablation", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, help="override training.epochs")
    parser.add_argument("--lambdas", type=float, nargs="*", default=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--only", type=int, nargs="*", help="run only these Table 1 rows (1-based)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    overrides = {"training": {"epochs": args.epochs}} if args.epochs else None
    base = RunConfig.from_yaml(args.config, overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = table1_variants()
    if args.only:
        variants = [variants[i - 1] for i in args.only]
    table_rows, sweep_rows = [], []
    for i, variant in enumerate(variants, 1):
        print(f"[{i}/{len(variants)}] {variant.label} ({variant.features})", flush=True)
        table_rows.append((variant, run_variant(base, variant, Path(args.manifest), out, args.folds, args.device)))
    for variant in sweep_variants(args.lambdas):
        print(f"[sweep] {variant.label}", flush=True)
        sweep_rows.append((variant, run_variant(base, variant, Path(args.manifest), out, args.folds, args.device)))
    kind = base.model.outcome_kind
    text = ("# Ablation\n\n"
            f"Configuration `{args.config}`, manifest `{args.manifest}`, validation folds {args.folds}; "
            "mean ± sd over folds.\n\n" + markdown(table_rows, "Tasks and features (Table 1 layout)", kind))
    if sweep_rows:
        text += "\n" + markdown(sweep_rows, "Outcome loss weight λ (α = β = ω = (1 − λ) / 3)", kind)
    (out / "ablation.md").write_text(text)
    (out / "ablation.json").write_text(json.dumps(
        [{"label": v.label, "tasks": v.tasks, "features": v.features, "lambda": v.lam, "folds": r}
         for v, r in table_rows + sweep_rows], indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a model folder on every case of a manifest (a held-out cohort) against the ceiling.

``python -m training.assess --model Resources/models/default --manifest heldout/manifest.csv --out report/``
writes ``assessment.json`` (metrics, 95 % bootstrap intervals, the oracle AUC / C-index of the
manifest's true risk and the model's share of it) and ``roc.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from torch.utils.data import DataLoader

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.model.losses import MultiTaskLoss
from MTLRadiomicsLib.model.model_file import load_model
from training.dataset import build_dataset
from training.evaluate import collect
from training.manifest import read_manifest
from training.metrics import binary_auc, bootstrap_interval, concordance
from training.plots import roc_curves
from training.trainer import pick_device


def assess(model_dir: str | Path, manifest: str | Path, out: Optional[str | Path] = None,
           device_name: str = "auto", batch_size: int = 8) -> dict:
    """Metrics of the model on all cases of ``manifest``; also written to ``out`` when given."""
    device = pick_device(device_name)
    loaded = load_model(model_dir, device=device)
    records, _ = read_manifest(manifest, class_names=list(loaded.card.class_names))
    data = build_dataset(records, loaded.card.preprocessing, loaded.config.in_channels, augment=False)
    metrics, outputs = collect(loaded.network, DataLoader(data, batch_size=batch_size),
                               MultiTaskLoss(loaded.config), device)
    result: dict = {"model": str(model_dir), "manifest": str(manifest), "n_cases": len(records),
                    "metrics": {k: v for k, v in metrics.items() if not k.startswith("loss")}}
    intervals = {}
    if "dice" in outputs:
        dice = outputs["dice"]
        intervals["dice"] = bootstrap_interval(lambda i: float(np.mean(dice[i])), len(dice))
    if "class_label" in outputs and loaded.config.n_classes == 2:
        p, y = outputs["class_prob"][:, 1], outputs["class_label"]
        intervals["class_auc"] = bootstrap_interval(lambda i: binary_auc(p[i], y[i]), len(y))
    by_id = {r.case_id: r for r in records}
    if "outcome_label" in outputs:
        score, label = outputs["outcome"], outputs["outcome_label"]
        intervals["outcome_auc"] = bootstrap_interval(lambda i: binary_auc(score[i], label[i]), len(label))
        ids = [i for i in outputs["case_id"] if by_id[i].response is not None]
        risk = np.array([by_id[i].oracle_risk if by_id[i].oracle_risk is not None else math.nan for i in ids])
        if np.isfinite(risk).all():
            oracle = binary_auc(-risk, label)
            result["oracle_outcome_auc"] = oracle
            result["outcome_auc_share_of_oracle"] = metrics["outcome_auc"] / oracle
    if "surv_time" in outputs:
        ids = [i for i in outputs["case_id"] if by_id[i].time is not None and by_id[i].event is not None]
        risk = np.array([by_id[i].oracle_risk for i in ids], dtype=float)
        if np.isfinite(risk).all():
            oracle = concordance(risk, outputs["surv_event"], outputs["surv_time"])
            result["oracle_c_index"] = oracle
            result["c_index_share_of_oracle"] = metrics["c_index"] / oracle
    result["bootstrap_95"] = {k: [round(a, 4), round(b, 4)] for k, (a, b) in intervals.items()}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "assessment.json").write_text(json.dumps(result, indent=2))
        curves = {}
        if "outcome_label" in outputs:
            curves["outcome"] = (outputs["outcome"], outputs["outcome_label"], metrics["outcome_auc"])
        if "class_label" in outputs and loaded.config.n_classes == 2:
            curves["pathology"] = (outputs["class_prob"][:, 1], outputs["class_label"] == 1, metrics["class_auc"])
        if curves:
            roc_curves(curves, out / "roc.png")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.assess", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="model folder (model.json + safetensors)")
    parser.add_argument("--manifest", required=True, help="manifest of the cases to evaluate (all of them)")
    parser.add_argument("--out", help="folder for assessment.json and roc.png")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    try:
        result = assess(args.model, args.manifest, args.out, args.device)
    except (MTLRadiomicsError, ValueError) as error:
        print(f"assess: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

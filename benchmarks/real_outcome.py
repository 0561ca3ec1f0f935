"""Outcome, survival and pathology on real FDG-PET: the paper's comparison on the 35 sarcomas, in one run.

``python -m benchmarks.real_outcome --seg-crossval CV_SEG`` trains and cross-validates (resumable; the
same five folds of ``training.sts_cohort`` for every row):

- the full multi-task model (GTV segmentation, sarcoma type, lung metastasis, overall survival, with
  the MTV's PET metrics as features; ``training/configs/real_sts_multitask.yaml``), and ablations that
  show what each part adds: without the PET metric features, on the PET metrics alone, outcome alone
  (the lung-metastasis and survival heads on encoder features), segmentation + outcome;
  every fold k starts from fold k of the segmentation cross-validation CV_SEG (no leakage);
- a radiomics model: IBSI features from MIRP on the GTV with penalised logistic / ridge Cox /
  multinomial models (``benchmarks.classical_outcome``);
- SUVmax, TLG and MTV alone (of the GTV, by the engine's metrics).

Lung metastasis: out-of-fold AUC; survival: C-index; sarcoma type: accuracy; segmentation: Dice of the
whole-lesion MTV. 95 % bootstrap intervals over the patients. The deep models' scores come through the
engine's own path (their network MTV, the field placed on it; ``training.heldout_scores``). A
reliability diagram compares the full model's lung-metastasis probabilities uncalibrated and with a
temperature fitted on the other folds (nested, so no fold is calibrated on itself). Finally the
synthetic lung/oesophagus model is checked against its training domain on every real sarcoma.
Writes the "Real PET: outcome" section of RESULTS.md, ``real_outcome.json`` and
``real_outcome_reliability.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from benchmarks.report import RESULTS, write_section

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "training" / "configs" / "real_sts_multitask.yaml"
LESION_ONLY = {"segmentation": False, "reconstruction": False, "classification": False}
ROWS = (
    ("full", "Full multi-task (GTV + type + lung metastasis + survival, PET metrics)", {}),
    ("no_metrics", "Full multi-task without the PET metric features", {"model": {"metric_features": False}}),
    ("metrics_only", "Outcome heads on the PET metrics alone",
     {"model": {**LESION_ONLY, "tumour_features": False, "global_features": False},
      "training": {"sampling": "lesion"}}),
    ("outcome_only", "Outcome alone (lung metastasis + survival heads, encoder features)",
     {"model": {**LESION_ONLY, "tumour_features": False, "metric_features": False},
      "training": {"sampling": "lesion"}}),
    ("seg_outcome", "Segmentation + outcome (no type, no reconstruction, no PET metrics)",
     {"model": {"classification": False, "reconstruction": False, "metric_features": False}}),
)


def deep_rows(manifest: Path, runs: Path, seg_crossval: Path, epochs: Optional[int], log: Callable[[str], None],
              only: Optional[Sequence[str]] = None) -> dict[str, dict]:
    """Cross-validate every deep row (resuming finished folds); its out-of-fold scores and figures."""
    from training.crossval import run_crossval

    out = {}
    for key, label, overrides in ROWS:
        if only and key not in only:
            continue
        settings = {section: dict(values) for section, values in overrides.items()}
        if epochs:
            settings.setdefault("training", {})["epochs"] = epochs
        log(f"{label}: cross-validation in {runs / key}")
        result = run_crossval(CONFIG, manifest, runs / key, settings, "cpu", final=False, progress=False,
                              log=log, init_from=seg_crossval)
        scores = json.loads((runs / key / "crossval.json").read_text())
        out[key] = {"label": label, "overrides": settings, "outcomes": result.get("outcomes", {}),
                    "dice": result["pooled"], "calibration": result.get("calibration", {}),
                    "scored": _scored(runs / key), "seconds": scores.get("seconds")}
    return out


def _scored(folder: Path) -> list[dict]:
    rows = []
    for fold in sorted(folder.glob("fold_*")):
        rows += [dict(r, fold=int(fold.name.split("_")[1])) for r in json.loads((fold / "scores.json").read_text())]
    return rows


def nested_calibration(scored: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lung-metastasis probabilities uncalibrated and with a temperature fitted on the other folds;
    and the labels (cases with a label only)."""
    from training.calibration import fit_temperature

    rows = [r for r in scored if r.get("response") is not None and "outcome_logit" in r]
    logits = np.array([r["outcome_logit"] for r in rows])
    labels = np.array([int(r["response"]) for r in rows])
    folds = np.array([r["fold"] for r in rows])
    calibrated = np.zeros_like(logits)
    for k in np.unique(folds):
        t = fit_temperature(logits[folds != k], labels[folds != k])
        calibrated[folds == k] = logits[folds == k] / t
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    return sigmoid(logits), sigmoid(calibrated), labels


def synthetic_model_domain(manifest: Path, log: Callable[[str], None]) -> dict:
    """The bundled synthetic model on every real sarcoma: how many lie outside its training domain,
    and the largest pathology probability it would show."""
    from MTLRadiomicsLib.analysis.domain import check_domain
    from MTLRadiomicsLib.localisation.body_region import body_region
    from MTLRadiomicsLib.model.model_file import load_model
    from MTLRadiomicsLib.model.registry import models_root
    from training.heldout_mtv import hottest_seed, load_case
    from training.heldout_scores import class_probabilities, score_case
    from training.manifest import read_manifest

    model = load_model(models_root() / "default")
    if not model.card.domain:
        return {"note": "the synthetic model's card records no domain (run python -m training.domain)"}
    records, _ = read_manifest(manifest)
    flagged, shown_max, reasons = 0, 0.0, {}
    for record in records:
        row = score_case(model, record, torch.device("cpu"))
        pet, reference = load_case(record)
        _, seed = hottest_seed(pet, reference)
        region = body_region(pet, seed)
        check = check_domain(model.card.domain, region=region.name, region_reason=region.reason,
                             volume_ml=row["mtv_ml"], suv_max=row["suv_max"], spacing_mm=tuple(pet.spacing),
                             features=np.array(row["features"]))
        probability = float(class_probabilities(np.array([row["class_logits"]])).max())
        if check.inside:
            shown_max = max(shown_max, probability)
        else:
            flagged += 1
            for reason in check.reasons:
                key = reason.split(" (")[0]
                reasons[key] = reasons.get(key, 0) + 1
    log(f"synthetic model: {flagged} of {len(records)} real sarcomas outside its domain")
    return {"n": len(records), "flagged": flagged, "largest_pathology_probability_shown": shown_max,
            "reasons": reasons}


def classical_rows(manifest: Path, cache: Path, log: Callable[[str], None]) -> dict:
    from benchmarks.classical_outcome import evaluate_cohort
    from benchmarks.radiomics_mirp import radiomics_table

    table = radiomics_table(manifest, cache)
    log(f"radiomics: {table.shape[1]} MIRP features of {table.shape[0]} cases")
    return evaluate_cohort(manifest, table, elastic_net=False)


def _cell(value: Optional[float], ci: Optional[Sequence[float]]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if not ci:
        return f"{value:.3f}"
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def markdown(result: dict) -> str:
    lines = [
        "The 35 real soft-tissue sarcomas of the TCIA collection (lung metastasis 13 of 35, 11 deaths, "
        "four type classes: MFH, liposarcoma, leiomyosarcoma, other). Every row uses the same five folds "
        "(`python -m training.sts_cohort`, stratified by lung metastasis and death); every figure is out of "
        "fold with a 95 % bootstrap interval over the patients (1000 resamples). Deep rows: the small preset "
        "at 4 mm, 32³ lesion crops, fold k fine-tuned from fold k of the segmentation cross-validation "
        f"(`{result['seg_crossval']}`), early stopping on the outcome's validation loss; scored through the "
        "engine's path (the model's own whole-lesion MTV; SUV ≥ 2.5 for models without a segmentation "
        "head). Radiomics: MIRP IBSI features of the GTV (4 mm isotropic, 0.5 SUV bins, 11 families), "
        "L2 logistic / ridge Cox / multinomial models with the penalty chosen by inner cross-validation "
        "on the training folds. SUVmax, TLG, MTV: of the GTV, used as the score itself.",
        "",
        "| model | lung metastasis AUC | survival C-index | type accuracy | Dice |",
        "|---|---|---|---|---|",
    ]
    for key, row in result["deep"].items():
        o = row["outcomes"]
        dice = row["dice"]
        lines.append(f"| {row['label']} | {_cell(o.get('outcome_auc'), o.get('outcome_auc_ci95'))} | "
                     f"{_cell(o.get('c_index'), o.get('c_index_ci95'))} | "
                     f"{_cell(o.get('class_accuracy'), o.get('class_accuracy_ci95'))} | "
                     f"{_cell(dice.get('dice_mean'), dice.get('dice_ci95')) if dice.get('n') else '—'} |")
    c = result.get("classical") or {}
    if c:
        lm, sv, pa = c["lung_metastasis"], c["survival"], c["pathology"]

        def est(entry: dict) -> str:
            return _cell(entry.get("value"), [entry["low"], entry["high"]] if "low" in entry else None)

        lines.append(f"| Radiomics (MIRP) + penalised logistic / ridge Cox / multinomial | "
                     f"{est(lm['radiomics logistic (L2)'])} | {est(sv['radiomics ridge Cox'])} | "
                     f"{est(pa['accuracy'])} | — |")
        for name in ("SUVmax", "TLG", "MTV"):
            lines.append(f"| {name} alone (GTV) | {est(lm[name])} | {est(sv[name])} | — | — |")
        lines.append(f"| Majority class | — | — | {pa['majority-class accuracy']:.3f} | — |")
    cal = result.get("reliability")
    if cal:
        lines += ["", f"Calibration of the full model's lung-metastasis probability (nested temperature): "
                      f"ECE {cal['uncalibrated']['ece']:.3f} → {cal['calibrated']['ece']:.3f}, Brier "
                      f"{cal['uncalibrated']['brier']:.3f} → {cal['calibrated']['brier']:.3f} (5 bins); the "
                      f"shipped model's temperature is fitted on all out-of-fold predictions.",
                  "", "![Reliability](real_outcome_reliability.png)"]
    domain = result.get("synthetic_domain")
    if domain and "flagged" in domain:
        lines += ["", f"The synthetic lung/oesophagus model on the same 35 sarcomas: {domain['flagged']} of "
                      f"{domain['n']} outside its training domain (reasons: "
                      + ", ".join(f"{k} ({v})" for k, v in domain["reasons"].items())
                      + f"); the largest pathology probability it would still show: "
                        f"{domain['largest_pathology_probability_shown']:.2f}."]
    return "\n".join(lines)


def run(seg_crossval: Path, runs: Path, results: Path = RESULTS, epochs: Optional[int] = None,
        log: Callable[[str], None] = print, command: str = "python -m benchmarks.real_outcome",
        only: Optional[Sequence[str]] = None, classical: bool = True, domain: bool = True) -> dict:
    from training.calibration import reliability, reliability_figure
    from training.sts_cohort import write_sts_manifest

    started = time.perf_counter()
    runs.mkdir(parents=True, exist_ok=True)
    manifest = write_sts_manifest(runs / "manifest.csv")
    result = {"seg_crossval": str(seg_crossval), "deep": deep_rows(manifest, runs, seg_crossval, epochs, log, only)}
    if classical:
        result["classical"] = classical_rows(manifest, runs / "radiomics_mirp.csv", log)
    if "full" in result["deep"]:
        raw, calibrated, labels = nested_calibration(result["deep"]["full"]["scored"])
        result["reliability"] = {"uncalibrated": reliability(raw, labels), "calibrated": reliability(calibrated, labels)}
        reliability_figure({"uncalibrated": (raw, labels), "temperature (nested)": (calibrated, labels)},
                           results.parent / "real_outcome_reliability.png",
                           "Full multi-task model: lung metastasis, out of fold (n = 35)")
    if domain:
        result["synthetic_domain"] = synthetic_model_domain(manifest, log)
    result["seconds"] = round(time.perf_counter() - started, 1)
    slim = json.loads(json.dumps(result, default=float))
    for row in slim["deep"].values():
        row.pop("scored", None)
    (results.parent / "real_outcome.json").write_text(json.dumps(slim, indent=1, default=float))
    write_section("Real PET: outcome, survival and pathology", markdown(result), command, results)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_outcome", description=__doc__.split("\n")[0])
    parser.add_argument("--seg-crossval", required=True, help="the segmentation cross-validation on the real crops "
                        "(python -m training.crossval --config training/configs/real_sts.yaml ...) whose fold models "
                        "start the deep rows' folds")
    parser.add_argument("--runs", default="runs/bench_real_outcome", help="working folder (resumed when it exists)")
    parser.add_argument("--epochs", type=int, help="maximum epochs per fold (default: the configuration's)")
    parser.add_argument("--rows", help=f"comma list of deep rows to run (default all: {', '.join(k for k, _, _ in ROWS)})")
    args = parser.parse_args(argv)
    command = (f"python -m benchmarks.real_outcome --seg-crossval {args.seg_crossval}"
               + (f" --epochs {args.epochs}" if args.epochs else "") + (f" --rows {args.rows}" if args.rows else ""))
    run(Path(args.seg_crossval), Path(args.runs), epochs=args.epochs, command=command,
        only=args.rows.split(",") if args.rows else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())

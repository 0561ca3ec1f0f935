"""`mtl-radiomics models`: the installed models, what each was trained on and how well it did."""

from __future__ import annotations

import argparse
import json


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="list the installed models",
        description="List the installed models (folders under Resources/models, or $MTL_RADIOMICS_MODELS): "
                    "the name to give to --model, what each was trained on, its tasks and its held-out "
                    "figures. The default model is marked with *.")
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.set_defaults(handler=run)


FIGURES = (("dice", "Dice"), ("outcome_auc", "outcome AUC"), ("c_index", "C-index"), ("class_auc", "pathology AUC"),
           ("class_accuracy", "pathology accuracy"))


def _figures(card) -> str:
    metrics = card.held_out_metrics or {}
    for split in ("cross_validation", "test", "validation"):
        values = metrics.get(split)
        if isinstance(values, dict) and values:
            shown = [f"{label} {values[k]:.2f}" for k, label in FIGURES
                     if isinstance(values.get(k), (int, float))]
            where = values.get("data") or split.replace("_", " ")
            return f"{', '.join(shown)} ({where})" if shown else ""
    return ""


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.errors import ModelFileError
    from MTLRadiomicsLib.model.model_file import read_card
    from MTLRadiomicsLib.model.registry import installed_models, models_root

    models = installed_models()
    rows = []
    for model in models:
        try:
            card = read_card(model.folder)
        except ModelFileError as error:
            rows.append(model.to_dict() | {"error": str(error)})
            continue
        arch = card.architecture
        tasks = [t for t in ("segmentation", "classification", "outcome", "reconstruction", "detection")
                 if arch.get(t)]
        rows.append(model.to_dict() | {"tasks": tasks, "classes": list(card.class_names) if arch.get("classification") else [],
                                       "outcome": card.outcome.get("meaning", "") if arch.get("outcome") else "",
                                       "figures": _figures(card), "intended_use": card.intended_use})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models installed in {models_root()}")
        return 0
    for row in rows:
        print(f"{'*' if row['default'] else ' '} {row['key']:<12} {row['name']}")
        if "error" in row:
            print(f"    unreadable: {row['error']}")
            continue
        if row["summary"]:
            print(f"    trained on: {row['summary']}")
        print(f"    tasks: {', '.join(row['tasks'])}")
        if row["classes"]:
            print(f"    pathology classes: {', '.join(row['classes'])}")
        if row["outcome"]:
            print(f"    outcome: {row['outcome']}")
        if row["figures"]:
            print(f"    held-out: {row['figures']}")
        print(f"    folder: {row['folder']}")
    print("use one with --model NAME (or --model FOLDER for any exported model); * marks the default")
    return 0

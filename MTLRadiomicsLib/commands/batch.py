"""`mtl-radiomics batch MANIFEST.csv --out DIR`: analyse many scans; one bad scan never stops the rest."""

from __future__ import annotations

import argparse
import csv
import json
import time
import traceback
from pathlib import Path
from typing import Optional

from MTLRadiomicsLib.commands.analysis_options import add_model_options, add_mtv_options, options_from_args
from MTLRadiomicsLib.commands.manifest import PLAIN_NAME_RULE, case_key, read_cases, row_options
from MTLRadiomicsLib.commands.pet_options import add_suv_options
from MTLRadiomicsLib.errors import MTLRadiomicsError

__all__ = ["register", "run", "read_cases"]

SUMMARY_COLUMNS = ["case_id", "status", "error", "outcome_mean", "outcome_sd", "pathology", "pathology_probability",
                   "scores_withheld", "mtv_method", "suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "location",
                   "seconds", "warnings", "folder"]
CASE_RECORD = "batch_case.json"           # in each case folder: the hashes of its manifest row and options
EXIT_ALL_DONE, EXIT_SOME_FAILED = 0, 1
# Options that do not change a case's result: changing them does not redo finished cases.
NOT_IN_KEY = {"handler", "suv_actions", "manifest", "out", "overwrite", "redo", "progress", "device", "debug",
              "command"}
EPILOG = ("Exit status: 0 every case done (now or before); 1 some cases failed (the others are done and "
          "summary.csv says why each failed); 2 the batch did not start (a bad option or manifest, nothing "
          "analysed); 3 an internal error; 130 interrupted.")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch", help="analyse every scan of a manifest, with a summary CSV",
        description="Analyse the scans listed in a CSV manifest: columns case_id and pet (relative paths are "
                    "read from the manifest's folder); optional point_x, point_y, point_z in RAS mm; optional "
                    "columns named like the SUV options (weight, dose, input_units, injection_time, scan_time, "
                    "half_life, decay_corrected_to, series) replace those options for their row. A case_id is the "
                    f"name of the case's folder OUT/<case_id>/: {PLAIN_NAME_RULE}. A case that fails is reported "
                    "and the others go on; a finished case is skipped unless its manifest row or the analysis "
                    "options changed since, or --redo. Writes OUT/summary.csv.",
        epilog=EPILOG)
    parser.add_argument("manifest", metavar="MANIFEST.csv")
    parser.add_argument("--redo", action="store_true", help="analyse finished cases again")
    actions = add_suv_options(parser)
    add_mtv_options(parser)
    add_model_options(parser)
    parser.set_defaults(handler=run, suv_actions=actions)


def run(args: argparse.Namespace) -> int:
    """Analyse every case; return EXIT_ALL_DONE or EXIT_SOME_FAILED (usage errors raise before any case)."""
    from tqdm import tqdm

    options_from_args(args)                      # bad options stop the batch before any case
    cases = read_cases(Path(args.manifest))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options_key = {k: v for k, v in vars(args).items() if k not in NOT_IN_KEY}
    rows, failed = [], 0
    bar = tqdm(cases, unit="case", disable=args.progress == "none")
    for case in bar:
        bar.set_description(case["case_id"])
        folder = out / case["case_id"]
        row = {"case_id": case["case_id"], "folder": str(folder)}
        key = case_key(case["row"], options_key)
        redo = "done" if args.redo else _redo_reason(folder, key)
        if redo is None:
            rows.append(row | {"status": "skipped (done before)"} | _summary_values(folder / "result.json"))
            continue
        if redo != "done":
            tqdm.write(f"{case['case_id']}: {redo}")
        started = time.perf_counter()
        try:
            _analyze_case(case, args, folder)
            _write_record(folder, case, key)
            rows.append(row | {"status": redo, "seconds": round(time.perf_counter() - started, 2)}
                        | _summary_values(folder / "result.json"))
        except MTLRadiomicsError as error:
            failed += 1
            rows.append(row | {"status": "failed", "error": str(error)})
            tqdm.write(f"{case['case_id']}: {error}")
        except Exception as error:  # one broken case must not stop the batch
            failed += 1
            rows.append(row | {"status": "failed", "error": f"{type(error).__name__}: {error}"})
            tqdm.write(f"{case['case_id']}: internal error {type(error).__name__}: {error}")
            (out / f"{case['case_id']}_error.txt").write_text(traceback.format_exc())
    summary = _write_summary(out, rows)
    print(f"{len(cases) - failed} of {len(cases)} cases analysed; summary: {summary}")
    return EXIT_ALL_DONE if failed == 0 else EXIT_SOME_FAILED


def _analyze_case(case: dict, args: argparse.Namespace, folder: Path) -> None:
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.progress import Progress

    options = options_from_args(row_options(args, case["row"], args.suv_actions))
    options.point = case["point"]
    analyze(case["pet"], folder, options, Progress("none"), overwrite=True)


def _redo_reason(folder: Path, key: dict[str, str]) -> Optional[str]:
    """None for a finished case made from this row with these options; else the status to report."""
    if not (folder / "result.json").exists():
        return "done"
    try:
        record = json.loads((folder / CASE_RECORD).read_text())
    except (OSError, ValueError):
        return "redone: no record of the manifest row it was made from"
    if record.get("row_sha256") != key["row_sha256"]:
        return "redone: its manifest row changed"
    if record.get("options_sha256") != key["options_sha256"]:
        return "redone: the analysis options changed"
    return None


def _write_record(folder: Path, case: dict, key: dict[str, str]) -> None:
    tmp = folder / f"{CASE_RECORD}.tmp"
    tmp.write_text(json.dumps({"case_id": case["case_id"], "manifest_row": case["row"], **key}, indent=2))
    tmp.replace(folder / CASE_RECORD)


def _write_summary(out: Path, rows: list[dict]) -> Path:
    summary = out / "summary.csv"
    tmp = summary.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(summary)
    return summary


def _summary_values(result_path: Path) -> dict:
    result = json.loads(result_path.read_text())
    scores, metrics = result["scores"], result["metrics"]
    best = max(scores["pathology"].items(), key=lambda kv: kv[1]["mean"]) if scores["pathology"] else ("", {"mean": ""})
    outcome = scores.get("outcome") or {"mean": "", "sd": ""}
    return {"outcome_mean": outcome["mean"], "outcome_sd": outcome["sd"],
            "pathology": best[0], "pathology_probability": best[1]["mean"],
            "scores_withheld": scores.get("withheld", ""),
            "mtv_method": (result.get("mtv") or {}).get("method", ""),
            **{k: round(metrics[k], 4) for k in ("suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg")},
            "location": result["location"]["method"], "warnings": " | ".join(result.get("warnings", []))}

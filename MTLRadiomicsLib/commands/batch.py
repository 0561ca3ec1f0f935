"""`mtl-radiomics batch MANIFEST.csv --out DIR`: analyse many scans; one bad scan never stops the rest."""

from __future__ import annotations

import argparse
import csv
import json
import time
import traceback
from pathlib import Path

from MTLRadiomicsLib.commands.analysis_options import add_model_options, add_mtv_options, options_from_args
from MTLRadiomicsLib.errors import MTLRadiomicsError

SUMMARY_COLUMNS = ["case_id", "status", "error", "outcome_mean", "outcome_sd", "pathology", "pathology_probability",
                   "scores_withheld", "mtv_method", "suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "location",
                   "seconds", "folder"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch", help="analyse every scan of a manifest, with a summary CSV",
        description="Analyse the scans listed in a CSV manifest (columns case_id and pet; optional point_x, "
                    "point_y, point_z in RAS mm). Each case goes to OUT/<case_id>/; a case that fails is "
                    "reported and skipped; finished cases are not redone unless --redo. Writes OUT/summary.csv.")
    parser.add_argument("manifest", metavar="MANIFEST.csv")
    parser.add_argument("--redo", action="store_true", help="analyse finished cases again")
    add_mtv_options(parser)
    add_model_options(parser)
    parser.set_defaults(handler=run)


def read_cases(manifest: Path) -> list[dict]:
    if not manifest.exists():
        raise MTLRadiomicsError(f"manifest {manifest} does not exist")
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "pet" not in rows[0]:
        raise MTLRadiomicsError(f"{manifest}: a CSV with at least the columns case_id and pet is needed")
    cases, seen = [], set()
    for i, row in enumerate(rows, start=1):
        case_id = (row.get("case_id") or f"case{i:04d}").strip()
        if case_id in seen:
            raise MTLRadiomicsError(f"{manifest}: case_id {case_id!r} appears twice")
        seen.add(case_id)
        pet = Path(row["pet"].strip())
        point = None
        if all(row.get(f"point_{a}", "").strip() for a in "xyz"):
            point = tuple(float(row[f"point_{a}"]) for a in "xyz")
        cases.append({"case_id": case_id, "pet": pet if pet.is_absolute() else manifest.parent / pet, "point": point})
    return cases


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.progress import Progress

    base = options_from_args(args)
    cases = read_cases(Path(args.manifest))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    bar = tqdm(cases, unit="case", disable=args.progress == "none")
    for case in bar:
        bar.set_description(case["case_id"])
        folder = out / case["case_id"]
        row = {"case_id": case["case_id"], "folder": str(folder)}
        if (folder / "result.json").exists() and not args.redo:
            rows.append(row | {"status": "skipped (done before)"} | _summary_values(folder / "result.json"))
            continue
        base.point = case["point"]
        started = time.perf_counter()
        try:
            analyze(case["pet"], folder, base, Progress("none"), overwrite=True)
            rows.append(row | {"status": "done", "seconds": round(time.perf_counter() - started, 2)}
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
    summary = out / "summary.csv"
    tmp = summary.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(summary)
    print(f"{len(cases) - failed} of {len(cases)} cases analysed; summary: {summary}")
    return 0 if failed == 0 else 1


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
            "location": result["location"]["method"]}

"""The summary CSV of `batch`: one line per case, in manifest order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

SUMMARY_COLUMNS = ["case_id", "status", "error", "outcome_mean", "outcome_sd", "pathology", "pathology_probability",
                   "scores_withheld", "mtv_method", "suv_max", "suv_peak", "suv_mean", "mtv_ml", "tlg", "location",
                   "seconds", "warnings", "folder"]
SUMMARY = "summary.csv"


def write_summary(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` to the CSV ``path`` atomically (a temporary file renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path


def read_summary(path: Path) -> list[dict]:
    """The rows of a summary CSV, as written."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def summary_values(result_path: Path) -> dict:
    """The summary's columns taken from a case's result.json."""
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

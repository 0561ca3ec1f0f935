"""Section 6 of ``benchmarks.speed``: `mtl-radiomics batch` of synthetic cases, ``--workers N``
against one case after the other, on the same manifest in the same run.

The cases are synthetic whole-body PETs (NIfTI, a point in each lesion); the smoke mode takes a few
small lesion crops instead. Each batch is a fresh process when the mode says so (as a user runs
it), else an in-process call of the command line (the workers are processes either way). The
summaries of both runs are compared: the scores must be the same (Monte-Carlo dropout is seeded
from each input's SHA-256).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
GOAL_SPEED_UP = 1.6                   # issue 12: --workers 2 at least 1.6 times faster than serial
FIRST_SEED = 100
VARYING = {"seconds", "folder"}       # summary columns that differ between the two runs


@dataclass(frozen=True)
class BatchBench:
    """What to time: ``cases`` synthetic cases ('wholebody' or 'crop'), with ``workers``."""

    cases: int
    workers: int = 2
    kind: str = "wholebody"
    report: bool = True


def write_cases(folder: Path, bench: BatchBench) -> Path:
    """The synthetic cases as NIfTI and their manifest (case_id, pet, the lesion's point in RAS)."""
    import SimpleITK as sitk

    from MTLRadiomicsLib.synth import lesion_crop_case, wholebody_case

    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "cases.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "pet", "point_x", "point_y", "point_z"])
        for seed in range(FIRST_SEED, FIRST_SEED + bench.cases):
            case = (wholebody_case(seed) if bench.kind == "wholebody" else
                    lesion_crop_case(seed, "lung", crop_size=(40, 40, 40), spacing_mm=(3.0, 3.0, 3.0)))
            path = folder / f"case{seed}.nii.gz"
            sitk.WriteImage(case.pet.to_sitk(), str(path))
            x, y, z = case.lesion_center_lps
            writer.writerow([f"case{seed}", path.name, f"{-x:.2f}", f"{-y:.2f}", f"{z:.2f}"])
    return manifest


def run_batch(manifest: Path, out: Path, args: list[str], fresh_process: bool) -> tuple[float, int, str]:
    """One `batch` run: wall seconds, exit status and what it printed."""
    command = ["batch", str(manifest), "--out", str(out), "--progress", "none", *args]
    start = time.perf_counter()
    if fresh_process:
        process = subprocess.run([sys.executable, "-m", "MTLRadiomicsLib.cli", *command], capture_output=True,
                                 text=True, cwd=ROOT)
        return time.perf_counter() - start, process.returncode, process.stdout + process.stderr
    import contextlib
    import io

    from MTLRadiomicsLib.cli import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(command)
    return time.perf_counter() - start, status, printed.getvalue()


def _results(summary: Path) -> list[dict]:
    with open(summary, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in VARYING} for row in csv.DictReader(handle)]


def batch_speed(bench: BatchBench, model: Path, mtv_method: str, samples: int, work: Path, fresh_process: bool,
                log: Callable[[str], None] = print) -> dict:
    """Time the batch one case after the other and with ``bench.workers`` workers."""
    manifest = write_cases(work / "batch_cases", bench)
    args = ["--model", str(model), "--mtv-method", mtv_method, "--samples", str(samples)]
    if not bench.report:
        args.append("--no-report")
    runs = {}
    for name, workers in (("serial", 1), ("workers", bench.workers)):
        out = work / f"batch_{name}"
        seconds, status, printed = run_batch(manifest, out, [*args, "--workers", str(workers)], fresh_process)
        if status != 0:
            raise RuntimeError(f"batch --workers {workers} failed ({status}): {printed.strip()[-2000:]}")
        runs[name] = {"wall_s": seconds, "rows": _results(out / "summary.csv"),
                      "notes": [line for line in printed.splitlines() if "lowered" in line]}
        log(f"batch of {bench.cases} {bench.kind} cases, --workers {workers}: {seconds:.1f} s")
    speed_up = runs["serial"]["wall_s"] / runs["workers"]["wall_s"]
    return {"cases": bench.cases, "kind": bench.kind, "workers": bench.workers, "report": bench.report,
            "samples": samples, "fresh_process": fresh_process,
            "serial_s": runs["serial"]["wall_s"], "workers_s": runs["workers"]["wall_s"],
            "speed_up": speed_up, "goal": GOAL_SPEED_UP, "goal_met": speed_up >= GOAL_SPEED_UP,
            "same_scores": runs["serial"]["rows"] == runs["workers"]["rows"],
            "notes": runs["workers"]["notes"]}


def batch_markdown(row: dict, model_label: str) -> str:
    """Section 6 of the speed results."""
    if not row:
        return "**6. `batch`:** not timed in this mode."
    what = "synthetic whole-body PETs" if row["kind"] == "wholebody" else "small synthetic lesion crops"
    how = "fresh `mtl-radiomics batch` processes" if row["fresh_process"] else "in-process `batch` calls"
    lines = [f"**6. `batch` of {row['cases']} {what}** ({how}, NIfTI with a point in each lesion, "
             f"`--samples {row['samples']}`, {'with' if row['report'] else 'without'} reports; one case after "
             f"the other against `--workers {row['workers']}`, each worker loading the model once; "
             f"model: {model_label}):", "",
             "| cases | one after the other (s) | --workers " + str(row["workers"]) + " (s) | speed-up | "
             f"goal ≥ {row['goal']:g}× | same scores |", "|---|---|---|---|---|---|",
             f"| {row['cases']} | {row['serial_s']:.1f} | {row['workers_s']:.1f} | {row['speed_up']:.2f}× | "
             f"{'met' if row['goal_met'] else 'not met'} | {'yes' if row['same_scores'] else 'NO'} |"]
    lines += [f"\nNote from the run: {note}" for note in row["notes"]]
    return "\n".join(lines)

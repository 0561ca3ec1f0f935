"""`mtl-radiomics batch MANIFEST.csv --out DIR`: analyse many scans; one bad scan never stops the rest.

Cases run one after the other in this process, or with ``--workers N`` in worker processes within a
memory budget (``batch_workers``); ``--shard K/N`` analyses one part of the manifest for a cluster's
array job, and ``batch-merge`` joins the parts' summaries (``batch_shards``).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from MTLRadiomicsLib.commands import batch_shards
from MTLRadiomicsLib.commands.analysis_options import add_model_options, add_mtv_options, options_from_args
from MTLRadiomicsLib.commands.batch_summary import SUMMARY, SUMMARY_COLUMNS, summary_values, write_summary
from MTLRadiomicsLib.commands.batch_workers import (CASE_RECORD, CaseOutcome, CaseTask, analyse_case, case_memory_gb,
                                                    cpu_cores, default_memory_gb, pet_voxels, plan_workers,
                                                    run_in_workers)
from MTLRadiomicsLib.commands.manifest import PLAIN_NAME_RULE, case_key, read_cases, row_options
from MTLRadiomicsLib.commands.pet_options import add_suv_options
from MTLRadiomicsLib.errors import MTLRadiomicsError

__all__ = ["register", "run", "read_cases", "SUMMARY_COLUMNS"]

EXIT_ALL_DONE, EXIT_SOME_FAILED, EXIT_INTERRUPTED = 0, 1, 130
# Options that do not change a case's result: changing them does not redo finished cases.
NOT_IN_KEY = {"handler", "suv_actions", "manifest", "out", "overwrite", "redo", "progress", "device", "debug",
              "command", "workers", "memory_gb", "shard"}
INTERRUPTED = "not analysed (interrupted)"
EPILOG = ("Exit status: 0 every case done (now or before); 1 some cases failed (the others are done and "
          "summary.csv says why each failed); 2 the batch did not start (a bad option or manifest, nothing "
          "analysed); 3 an internal error; 130 interrupted (Ctrl-C or SIGTERM; finished cases are kept and "
          "the same command goes on from there).")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "batch", help="analyse every scan of a manifest, with a summary CSV",
        description="Analyse the scans listed in a CSV manifest: columns case_id and pet (relative paths are "
                    "read from the manifest's folder); optional point_x, point_y, point_z in RAS mm; optional "
                    "columns named like the SUV options (weight, dose, input_units, injection_time, scan_time, "
                    "half_life, decay_corrected_to, series) replace those options for their row. A case_id is the "
                    f"name of the case's folder OUT/<case_id>/: {PLAIN_NAME_RULE}. A case that fails is reported "
                    "and the others go on; a finished case is skipped unless its manifest row or the analysis "
                    "options changed since, or --redo. Writes OUT/summary.csv (in manifest order).",
        epilog=EPILOG)
    parser.add_argument("manifest", metavar="MANIFEST.csv")
    parser.add_argument("--redo", action="store_true", help="analyse finished cases again")
    group = parser.add_argument_group("many cases")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help="analyse N cases at a time in worker processes, each loading the model once "
                            "(default 1: one after the other in this process); lowered to the cores and to "
                            "what --memory-gb holds, with a note")
    group.add_argument("--memory-gb", type=float, metavar="GB",
                       help="memory the workers may use together (default: 75%% of the memory available "
                            "now); each case is estimated from its PET's voxel count")
    group.add_argument("--shard", metavar="K/N",
                       help="analyse only shard K of N (manifest row i, from 0, is in shard i %% N + 1), e.g. "
                            "one per array job of a cluster; writes OUT/summary_shard_K_of_N.csv; "
                            "'mtl-radiomics batch-merge OUT' then joins the shards into OUT/summary.csv")
    actions = add_suv_options(parser)
    add_mtv_options(parser)
    add_model_options(parser)
    parser.set_defaults(handler=run, suv_actions=actions)
    batch_shards.register(commands)


def run(args: argparse.Namespace) -> int:
    """Analyse every case (of the shard); return EXIT_ALL_DONE, EXIT_SOME_FAILED or EXIT_INTERRUPTED
    (usage errors raise before any case)."""
    from tqdm import tqdm

    options_from_args(args)                      # bad options stop the batch before any case
    shard = batch_shards.parse_shard(args.shard)
    if args.workers < 1:
        raise MTLRadiomicsError("--workers must be at least 1")
    if args.memory_gb is not None and not args.memory_gb > 0:
        raise MTLRadiomicsError("--memory-gb must be more than 0")
    manifest = Path(args.manifest)
    cases = read_cases(manifest)
    positions = shard.positions(len(cases)) if shard else list(range(len(cases)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if shard:
        batch_shards.forget_finished(out, shard)
    options_key = {k: v for k, v in vars(args).items() if k not in NOT_IN_KEY}
    rows: dict[int, dict] = {}
    tasks: dict[int, CaseTask] = {}
    completed: set[int] = set()
    bar = tqdm(total=len(positions), unit="case", disable=args.progress == "none")

    def finished(index: int, row: dict, note: Optional[str] = None) -> None:
        rows[index] = row
        completed.add(index)
        if note:
            tqdm.write(note)
        bar.set_description(row["case_id"])
        bar.update(1)

    for index in positions:
        case = cases[index]
        folder = out / case["case_id"]
        row = {"case_id": case["case_id"], "folder": str(folder)}
        key = case_key(case["row"], options_key)
        redo = "done" if args.redo else _redo_reason(folder, key)
        if redo is None:
            try:
                values = summary_values(folder / "result.json")
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:   # damaged since
                redo = f"redone: its result.json cannot be read ({type(error).__name__}: {error})"
            else:
                finished(index, row | {"status": "skipped (done before)"} | values)
                continue
        if redo != "done":
            tqdm.write(f"{case['case_id']}: {redo}")
        try:
            options = options_from_args(row_options(args, case["row"], args.suv_actions))
        except MTLRadiomicsError as error:
            finished(index, row | {"status": "failed", "error": str(error)}, f"{case['case_id']}: {error}")
            continue
        except Exception as error:  # one broken row must not stop the batch
            finished(index, row | {"status": "failed", "error": f"{type(error).__name__}: {error}"},
                     f"{case['case_id']}: internal error {type(error).__name__}: {error}")
            continue
        options.point = case["point"]
        tasks[index] = CaseTask(index, case["case_id"], case["pet"], folder, options,
                                {"case_id": case["case_id"], "manifest_row": case["row"], **key})
        rows[index] = row | {"status": redo}

    def done(outcome: CaseOutcome) -> None:
        task = tasks[outcome.index]
        finished(task.index, *_outcome_row(out, task, rows[task.index], outcome))

    try:
        with _sigterm_as_interrupt():
            _run_tasks(list(tasks.values()), args, done)
    except KeyboardInterrupt:
        bar.close()
        left = [t for i, t in tasks.items() if i not in completed]
        for task in left:
            rows[task.index] = {"case_id": task.case_id, "folder": str(task.folder), "status": INTERRUPTED}
            for partial in out.glob(f".{task.case_id}.partial-*"):   # what a stopped worker left
                shutil.rmtree(partial, ignore_errors=True)
        summary = _write(out, shard, manifest, options_key, cases, rows)
        print(f"mtl-radiomics: interrupted: {len(left)} of {len(positions)} cases not analysed (finished ones "
              f"are kept; the same command goes on from there); summary: {summary}", file=sys.stderr)
        return EXIT_INTERRUPTED
    bar.close()
    failed = sum(row["status"] == "failed" for row in rows.values())
    summary = _write(out, shard, manifest, options_key, cases, rows)
    print(f"{len(positions) - failed} of {len(positions)} cases analysed; summary: {summary}")
    return EXIT_ALL_DONE if failed == 0 else EXIT_SOME_FAILED


def _run_tasks(tasks: list[CaseTask], args: argparse.Namespace, done) -> None:
    """The cases in this process, or in worker processes when --workers and the memory allow."""
    from tqdm import tqdm

    if args.workers > 1 and len(tasks) > 1:
        budget = args.memory_gb if args.memory_gb is not None else default_memory_gb()
        largest = case_memory_gb(max(pet_voxels(Path(t.pet)) for t in tasks))
        plan = plan_workers(args.workers, len(tasks), cpu_cores(), budget, largest)
        for note in plan.notes:
            tqdm.write(note)
        if plan.workers > 1:
            run_in_workers(tasks, plan, (args.model, plan.threads), done)
            return
    for task in tasks:
        done(analyse_case(task))


def _outcome_row(out: Path, task: CaseTask, row: dict, outcome: CaseOutcome) -> tuple[dict, Optional[str]]:
    """The summary row of an analysed case and the line to show (None for none)."""
    if outcome.ok:
        try:
            return row | {"seconds": outcome.seconds} | summary_values(task.folder / "result.json"), None
        except (OSError, ValueError, KeyError) as error:
            outcome = CaseOutcome(task.index, ok=False, internal=True,
                                  error=f"its result.json cannot be read ({type(error).__name__}: {error})")
    failed = row | {"status": "failed", "error": outcome.error}
    if outcome.traceback:
        (out / f"{task.case_id}_error.txt").write_text(outcome.traceback)
    return failed, f"{task.case_id}: {'internal error ' if outcome.internal else ''}{outcome.error}"


def _write(out: Path, shard: Optional[batch_shards.Shard], manifest: Path, options_key: dict, cases: list[dict],
           rows: dict[int, dict]) -> Path:
    ordered = [rows[i] for i in sorted(rows)]
    if shard is None:
        return write_summary(out / SUMMARY, ordered)
    if any(row["status"] == INTERRUPTED for row in ordered):         # not finished: merge will say so
        return write_summary(out / shard.summary_name, ordered)
    return batch_shards.write_shard(out, shard, manifest, case_key({}, options_key)["options_sha256"],
                                    [c["case_id"] for c in cases], ordered)


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cluster's job limit, scancel) stops the batch as Ctrl-C does."""
    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:                           # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _redo_reason(folder: Path, key: dict[str, str]) -> Optional[str]:
    """None for a finished case made from this row with these options; else the status to report."""
    import json

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

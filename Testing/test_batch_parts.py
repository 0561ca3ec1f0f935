"""The parts of `batch` called in this process (so that mutation testing sees them): the worker plan
and memory estimate, the machine's facts, a worker's start and its model kept loaded, the pool's
results, Ctrl-C and SIGTERM, stopping a pool, case records and redo reasons, the summary rows, and
shards with their merge. Every expected value is the test's own (files it wrote, numbers it
counted, messages word for word); analyses are faked where only the batch's handling is tested, and
one batch of two tiny synthetic PETs runs in a real pool of two workers."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import multiprocessing
import os
import re
import signal
import threading
import time
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from MTLRadiomicsLib.commands import batch, batch_shards, batch_workers
from MTLRadiomicsLib.commands.batch_shards import Shard, forget_finished, merge, parse_shard, write_shard
from MTLRadiomicsLib.commands.batch_summary import SUMMARY_COLUMNS
from MTLRadiomicsLib.commands.batch_workers import (CaseOutcome, CaseTask, WorkerPlan, case_memory_gb, crashed,
                                                    init_worker, keep_model_loaded, pet_voxels, plan_workers,
                                                    run_in_workers, write_record)
from MTLRadiomicsLib.errors import MTLRadiomicsError

CRASHED = "its worker process ended unexpectedly (killed, or out of memory?)"
INTERRUPTED = "not analysed (interrupted)"


# ---------------------------------------------------------------- helpers


@pytest.fixture
def signals():
    """SIGINT's and SIGTERM's handlers and this thread's signal mask, restored after the test."""
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    for number, handler in handlers.items():
        signal.signal(number, handler)


@pytest.fixture
def environ():
    """os.environ as it was, restored after the test."""
    saved = dict(os.environ)
    yield saved
    os.environ.clear()
    os.environ.update(saved)


def blocked() -> set:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def a_task(index: int, case_id: str, folder: Path = Path("."), record: dict | None = None) -> CaseTask:
    return CaseTask(index, case_id, Path(f"{case_id}.nii.gz"), folder, None, record or {})


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def full_row(**values) -> dict:
    """A summary row as read back from the CSV: every column, empty unless given."""
    return {column: "" for column in SUMMARY_COLUMNS} | {k: str(v) for k, v in values.items()}


def sha256_of_json(value) -> str:
    """The digest batch records for a manifest row (SHA-256 of its sorted-key JSON)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- the plan and the machine


@pytest.mark.parametrize("requested, n_cases, cores, budget, case_gb, expected", [
    (0, 5, 4, 64.0, 1.0, WorkerPlan(1, 4, [])),                 # 0 (or less): one worker
    (-3, 5, 4, 64.0, 1.0, WorkerPlan(1, 4, [])),
    (4, 0, 4, 64.0, 1.0, WorkerPlan(1, 4, [])),                 # no cases: still one
    (8, 3, 16, 64.0, 1.0, WorkerPlan(3, 5, [])),                # no more than the cases, without a note
    (3, 10, 8, 100.0, 1.0, WorkerPlan(3, 2, [])),               # threads: cores // workers
    (4, 10, 4, 100.0, 1.0, WorkerPlan(4, 1, [])),               # as many as the cores: no note
    (2, 10, 4, 3.0, 1.5, WorkerPlan(2, 2, [])),                 # exactly what the budget holds: no note
    (6, 20, 4, 64.0, 1.0, WorkerPlan(4, 1, ["--workers 6 lowered to 4: this machine has 4 cores"])),
    (6, 10, 8, 4.04, 1.26, WorkerPlan(3, 2, ["--workers 6 lowered to 3 by the memory budget: the largest case "
                                             "needs about 1.3 GB and --memory-gb is 4.0 GB"])),
    (3, 10, 4, 0.5, 1.0, WorkerPlan(1, 4, ["--workers 3 lowered to 1 by the memory budget: the largest case "
                                           "needs about 1.0 GB and --memory-gb is 0.5 GB"])),
    (8, 20, 4, 2.0, 0.9, WorkerPlan(2, 2, ["--workers 8 lowered to 4: this machine has 4 cores",
                                           "--workers 4 lowered to 2 by the memory budget: the largest case "
                                           "needs about 0.9 GB and --memory-gb is 2.0 GB"])),
])
def test_the_plan_in_every_branch(requested, n_cases, cores, budget, case_gb, expected):
    assert plan_workers(requested, n_cases, cores, budget, case_gb) == expected


def test_a_case_needs_the_worker_plus_125_bytes_per_voxel():
    assert case_memory_gb(0) == pytest.approx(0.55, abs=1e-12)
    assert case_memory_gb(2 ** 30) == pytest.approx(125.55, abs=1e-9)
    assert case_memory_gb(2 ** 23) == pytest.approx(0.55 + 125 / 128, abs=1e-12)
    assert case_memory_gb(1000) == pytest.approx(0.55 + 125_000 / 1_073_741_824, abs=1e-15)


def test_the_voxels_of_a_nifti_and_of_a_dicom_folder(tmp_path):
    import SimpleITK as sitk
    from synthetic_dicom import write_series

    image = sitk.GetImageFromArray(np.zeros((7, 9, 11), np.float32))          # (z, y, x)
    sitk.WriteImage(image, str(tmp_path / "pet.nii.gz"))
    assert pet_voxels(tmp_path / "pet.nii.gz") == 7 * 9 * 11

    folder = tmp_path / "dicom"
    files = write_series(folder)
    nested = folder / "more" / "extra.bin"                     # files below the folder count too
    nested.parent.mkdir()
    total = sum(f.stat().st_size for f in files)
    nested.write_bytes(b"x" * (3 if total % 2 == 0 else 2))     # an odd number of bytes in all
    total += nested.stat().st_size
    assert total % 2 == 1 and len(files) == 6
    voxels = pet_voxels(folder)
    assert voxels == (total - 1) // 2 and isinstance(voxels, int)

    (tmp_path / "notes.txt").write_text("not an image")
    assert pet_voxels(tmp_path / "notes.txt") == 0
    assert pet_voxels(tmp_path / "missing.nii.gz") == 0


def test_the_cores_are_those_this_process_may_run_on(monkeypatch):
    asked = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: asked.append(pid) or {0, 2, 5})
    assert batch_workers.cpu_cores() == 3 and asked == [0]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set())
    assert batch_workers.cpu_cores() == 1

    monkeypatch.delattr(os, "sched_getaffinity")              # not Linux: the machine's count
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert batch_workers.cpu_cores() == 6
    for unknown in (None, 0):
        monkeypatch.setattr(os, "cpu_count", lambda: unknown)
        assert batch_workers.cpu_cores() == 1


def test_the_memory_available_comes_from_meminfo_else_free_pages_else_4_gb(monkeypatch):
    opened = []
    meminfo = "MemTotal:       16777216 kB\nMemFree:         1048576 kB\nMemAvailable:    5767168 kB\n"

    def fake_open(path, *args, **kwargs):
        opened.append(path)
        return io.StringIO(meminfo)

    monkeypatch.setattr(batch_workers, "open", fake_open, raising=False)
    assert batch_workers.available_memory_gb() == 5.5 and opened == ["/proc/meminfo"]

    pages = {"SC_AVPHYS_PAGES": 3 * 2 ** 18, "SC_PAGE_SIZE": 8192}
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    meminfo = "MemTotal:       16777216 kB\nMemFree:         1048576 kB\n"      # an old kernel
    assert batch_workers.available_memory_gb() == 6.0

    def no_file(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr(batch_workers, "open", no_file, raising=False)        # no /proc
    assert batch_workers.available_memory_gb() == 6.0
    for error in (ValueError, OSError):
        def failing(name, error=error):
            raise error(name)

        monkeypatch.setattr(os, "sysconf", failing)
        assert batch_workers.available_memory_gb() == 4.0
    monkeypatch.delattr(os, "sysconf")
    assert batch_workers.available_memory_gb() == 4.0


def test_the_default_budget_is_three_quarters_of_the_memory_available(monkeypatch):
    monkeypatch.setattr(batch_workers, "available_memory_gb", lambda: 8.0)
    assert batch_workers.default_memory_gb() == 6.0


# ---------------------------------------------------------------- a worker's start and its model


def test_a_worker_starts_ignoring_ctrl_c_with_its_threads_and_its_model_loaded(tiny_model, signals, environ,
                                                                             monkeypatch):
    import torch

    from MTLRadiomicsLib.analysis import engine
    from MTLRadiomicsLib.model import LoadedModel

    threads, interop, loads = [], [], []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(torch, "set_num_interop_threads", interop.append)
    real_load = engine._load

    def counting_load(choice):
        loads.append(choice)
        return real_load(choice)

    monkeypatch.setattr(engine, "_load", counting_load)             # the engine's loader, restored after
    os.environ.update(OMP_NUM_THREADS="7", MKL_NUM_THREADS="7")
    before = dict(os.environ)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGUSR1})  # as the parent held it back

    init_worker(str(tiny_model), 3)

    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.SIGINT not in blocked() and signal.SIGUSR1 in blocked()     # only Ctrl-C let through
    assert threads == [3] and interop == [1]
    assert {k: v for k, v in os.environ.items() if before.get(k) != v} == {"OMP_NUM_THREADS": "3",
                                                                            "MKL_NUM_THREADS": "3"}
    assert set(os.environ) == set(before)
    assert loads == [str(tiny_model)]                               # loaded once, at the start
    assert engine._load is not counting_load and engine._load.keeps_models is True
    model = engine._load(str(tiny_model))
    assert isinstance(model, LoadedModel) and loads == [str(tiny_model)]
    assert engine._load(Path(tiny_model)) is model and loads == [str(tiny_model)]


def test_a_worker_starts_where_torch_threads_are_set_already_or_signal_masks_do_not_exist(signals, environ,
                                                                                        monkeypatch):
    import torch

    from MTLRadiomicsLib.analysis import engine

    def already_set(n):
        raise RuntimeError("Error: cannot set number of interop threads after parallel work has started")

    loads = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    monkeypatch.setattr(torch, "set_num_interop_threads", already_set)
    monkeypatch.setattr(engine, "_load", lambda choice: loads.append(choice) or "the model")
    monkeypatch.delattr(signal, "pthread_sigmask")                  # not POSIX
    signal.signal(signal.SIGINT, signal.default_int_handler)

    init_worker(None, 1)

    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "1"
    assert loads == [None] and engine._load(None) == "the model" and loads == [None]


def test_the_model_is_loaded_once_per_choice_and_kept():
    calls, made = [], []

    def load(choice):
        calls.append(choice)
        made.append(object())
        return made[-1]

    engine = types.SimpleNamespace(_load=load)
    assert keep_model_loaded(engine, "first") is True
    assert calls == ["first"]                                       # loaded now, not at the first case
    kept = engine._load
    assert kept is not load and kept.keeps_models is True
    assert kept("first") is made[0] and calls == ["first"]
    assert kept(Path("first")) is made[0] and calls == ["first"]    # the same choice as a path
    other = kept("second")
    assert other is made[1] and calls == ["first", "second"]        # another choice: loaded again
    assert kept("second") is made[1] and kept(None) is made[2] and kept(None) is made[2]
    assert calls == ["first", "second", None]

    # A loader that keeps its models already is left as it is (a second start in the same process).
    assert keep_model_loaded(engine, "third") is True
    assert engine._load is kept and calls == ["first", "second", None]


def test_a_loader_that_keeps_models_is_not_wrapped_again_nor_called():
    calls = []

    def keeping(choice):
        calls.append(choice)

    keeping.keeps_models = True
    engine = types.SimpleNamespace(_load=keeping)
    assert keep_model_loaded(engine, "m") is True
    assert engine._load is keeping and calls == []


def test_without_a_loader_or_when_loading_fails_each_case_loads_the_model_itself():
    bare = types.SimpleNamespace()
    assert keep_model_loaded(bare, "m") is False
    assert not hasattr(bare, "_load")                               # nothing patched on such an engine

    calls = []

    def broken(choice):
        calls.append(choice)
        raise FileNotFoundError(f"no model at {choice}")

    engine = types.SimpleNamespace(_load=broken)
    assert keep_model_loaded(engine, "/nowhere") is False
    assert engine._load is not broken and engine._load.keeps_models is True and calls == ["/nowhere"]
    with pytest.raises(FileNotFoundError, match="no model at /nowhere"):
        engine._load("/nowhere")                                     # a failure is not kept: tried again
    assert calls == ["/nowhere", "/nowhere"]


# ---------------------------------------------------------------- one case's outcome and record


def test_a_case_whose_worker_died_failed_with_an_internal_error():
    assert crashed(a_task(7, "c7")) == CaseOutcome(7, ok=False, seconds=0.0, error=CRASHED, internal=True,
                                                   traceback="")


def test_the_case_record_is_written_whole(tmp_path):
    record = {"case_id": "c1", "manifest_row": {"pet": "a.nii.gz", "weight": "70"}, "row_sha256": "ab" * 32}
    (tmp_path / "batch_case.json").write_text("an older record")
    write_record(tmp_path, record)
    assert (tmp_path / "batch_case.json").read_text() == json.dumps(record, indent=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch_case.json"]       # no temporary file left


RESULT = {"scores": {"pathology": {"benign": {"mean": 0.25}, "malignant": {"mean": 0.625}},
                     "outcome": {"mean": 0.5, "sd": 0.125}},
          "metrics": {"suv_max": 8.0, "suv_peak": 6.123456, "suv_mean": 4.5, "mtv_ml": 1.216, "tlg": 5.4},
          "mtv": {"method": "suv2.5"}, "location": {"method": "point"}, "warnings": ["first note", "second note"]}
RESULT_COLUMNS = {"outcome_mean": 0.5, "outcome_sd": 0.125, "pathology": "malignant", "pathology_probability": 0.625,
                  "scores_withheld": "", "mtv_method": "suv2.5", "suv_max": 8.0, "suv_peak": 6.1235, "suv_mean": 4.5,
                  "mtv_ml": 1.216, "tlg": 5.4, "location": "point", "warnings": "first note | second note"}


def write_result(folder: Path, suv_max: float = 8.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = json.loads(json.dumps(RESULT))
    result["metrics"]["suv_max"] = suv_max
    (folder / "result.json").write_text(json.dumps(result))


def test_the_summary_row_of_a_finished_case(tmp_path):
    task = a_task(0, "c1", tmp_path / "c1")
    write_result(task.folder)
    row = {"case_id": "c1", "folder": str(task.folder), "status": "redone: its manifest row changed"}
    shown = dict(row)
    result, note = batch._outcome_row(tmp_path, task, row, CaseOutcome(0, ok=True, seconds=1.5))
    assert result == shown | {"seconds": 1.5} | RESULT_COLUMNS and note is None
    assert row == shown                                              # the row given is not changed


@pytest.mark.parametrize("content, error", [
    (None, "FileNotFoundError: [Errno 2] No such file or directory: '{path}'"),
    ("{not json", "JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ('{"metrics": {}}', "KeyError: 'scores'"),
])
def test_a_finished_case_whose_result_cannot_be_read_failed(tmp_path, content, error):
    task = a_task(3, "c4", tmp_path / "c4")
    task.folder.mkdir()
    if content is not None:
        (task.folder / "result.json").write_text(content)
    error = error.format(path=task.folder / "result.json")
    row = {"case_id": "c4", "folder": str(task.folder), "status": "done"}
    result, note = batch._outcome_row(tmp_path, task, row, CaseOutcome(3, ok=True, seconds=2.0))
    assert result == row | {"status": "failed", "error": f"its result.json cannot be read ({error})"}
    assert note == f"c4: internal error its result.json cannot be read ({error})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c4"]     # no traceback file: there is none


def test_a_failed_case_row_its_line_and_its_traceback(tmp_path):
    task = a_task(1, "c2", tmp_path / "c2")
    row = {"case_id": "c2", "folder": str(task.folder), "status": "done"}
    plain = batch._outcome_row(tmp_path, task, row, CaseOutcome(1, ok=False, error="no PET at x.nii.gz"))
    assert plain == (row | {"status": "failed", "error": "no PET at x.nii.gz"}, "c2: no PET at x.nii.gz")
    assert list(tmp_path.iterdir()) == []

    trace = "Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero\n"
    internal = CaseOutcome(1, ok=False, error="ZeroDivisionError: division by zero", internal=True, traceback=trace)
    failed, note = batch._outcome_row(tmp_path, task, row, internal)
    assert failed == row | {"status": "failed", "error": "ZeroDivisionError: division by zero"}
    assert note == "c2: internal error ZeroDivisionError: division by zero"
    assert (tmp_path / "c2_error.txt").read_text() == trace


def test_why_a_case_is_analysed_again(tmp_path):
    key = {"row_sha256": "r" * 64, "options_sha256": "o" * 64}
    folder = tmp_path / "case"
    folder.mkdir()
    assert batch._redo_reason(folder, key) == "done"                              # never finished
    (folder / "batch_case.json").write_text(json.dumps(key))
    assert batch._redo_reason(folder, key) == "done"                              # a record, no result
    (folder / "result.json").write_text("{}")
    assert batch._redo_reason(folder, key) is None                                # finished with these
    for record, reason in (
            (None, "redone: no record of the manifest row it was made from"),
            ("{broken", "redone: no record of the manifest row it was made from"),
            ({"options_sha256": "o" * 64}, "redone: its manifest row changed"),
            ({"row_sha256": "x" * 64, "options_sha256": "o" * 64}, "redone: its manifest row changed"),
            ({"row_sha256": "x" * 64, "options_sha256": "x" * 64}, "redone: its manifest row changed"),
            ({"row_sha256": "r" * 64}, "redone: the analysis options changed"),
            ({"row_sha256": "r" * 64, "options_sha256": "x" * 64}, "redone: the analysis options changed"),
            ({"row_sha256": "r" * 64, "options_sha256": "o" * 64, "case_id": "other"}, None)):
        (folder / "batch_case.json").unlink(missing_ok=True)
        if record is not None:
            (folder / "batch_case.json").write_text(record if isinstance(record, str) else json.dumps(record))
        assert batch._redo_reason(folder, key) == reason, record


# ---------------------------------------------------------------- signals


def test_sigterm_stops_the_batch_as_ctrl_c_does_and_its_handler_is_restored(signals):
    def previous(_signum, _frame):
        raise AssertionError("the previous handler must not run inside")

    signal.signal(signal.SIGTERM, previous)
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with batch._sigterm_as_interrupt():
            handler = signal.getsignal(signal.SIGTERM)
            assert handler is not previous
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):                      # the handler runs at the next bytecodes
                time.sleep(0.01)
            reached.append("after the signal")
    assert reached == [] and signal.getsignal(signal.SIGTERM) is previous
    with pytest.raises(KeyboardInterrupt):
        handler(signal.SIGTERM, None)

    with batch._sigterm_as_interrupt():               # left normally: restored as well
        pass
    assert signal.getsignal(signal.SIGTERM) is previous


def test_sigterm_is_left_alone_outside_the_main_thread(signals):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    seen = []

    def body():
        with batch._sigterm_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))
        seen.append("left")

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.SIG_DFL, "left"] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_held_back_is_delivered_right_after(signals):
    """Held back in this thread, which starts the workers: a SIGINT sent to the process may be taken
    by another thread of it at once (a native thread pool's), so this one is sent to this thread."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGUSR1})
    inside = []
    with pytest.raises(KeyboardInterrupt):
        with batch_workers._sigint_held():
            inside.append(blocked())
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            for _ in range(20):
                time.sleep(0.01)
            inside.append("not interrupted inside")
        inside.append("not reached")                  # delivered as the block ends
    assert inside == [{signal.SIGINT, signal.SIGUSR1}, "not interrupted inside"]
    assert blocked() == {signal.SIGUSR1}              # the mask as it was, not only SIGINT let through

    signal.pthread_sigmask(signal.SIG_SETMASK, {signal.SIGINT})
    with batch_workers._sigint_held():                # held back already: still held after
        pass
    assert blocked() == {signal.SIGINT}

    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with pytest.raises(ZeroDivisionError):
        with batch_workers._sigint_held():
            1 / 0
    assert blocked() == set()


def test_ctrl_c_is_held_back_too_while_another_thread_runs(signals):
    """_sigint_held blocks SIGINT in the calling thread only: a Ctrl-C (sent to the process) is then
    taken by any other thread that does not block it, and KeyboardInterrupt is raised inside the
    moment, e.g. in the middle of starting a worker. batch.run always has such a thread: its tqdm
    bar (disabled too, with --progress none) starts tqdm's monitor thread before the pool."""
    from tqdm import tqdm

    bar = tqdm(total=1, disable=True)                 # as batch.run makes it
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)        # and another thread, whatever tqdm does
    other.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    inside = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with batch_workers._sigint_held():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(20):
                    time.sleep(0.01)
                inside.append("not interrupted inside")
    finally:
        stop.set()
        other.join()
        bar.close()
    assert inside == ["not interrupted inside"], "Ctrl-C was taken inside the moment it is held back"


def test_without_signal_masks_ctrl_c_is_ignored_for_the_moment(signals, monkeypatch):
    def mine(_signum, _frame):
        pass

    signal.signal(signal.SIGINT, mine)
    monkeypatch.delattr(signal, "pthread_sigmask")
    with batch_workers._sigint_held():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGINT) is mine
    with pytest.raises(ZeroDivisionError):
        with batch_workers._sigint_held():
            1 / 0
    assert signal.getsignal(signal.SIGINT) is mine

    seen = []

    def body():
        with batch_workers._sigint_held():
            seen.append(signal.getsignal(signal.SIGINT))
        seen.append("left")

    thread = threading.Thread(target=body)            # not the main thread: nothing to change
    thread.start()
    thread.join()
    assert seen == [mine, "left"] and signal.getsignal(signal.SIGINT) is mine


# ---------------------------------------------------------------- stopping a pool


class FakeProcess:
    def __init__(self, pid: int, log: list):
        self.pid, self.log = pid, log

    def terminate(self):
        self.log.append(("terminate", self.pid))

    def join(self, timeout=None):
        self.log.append(("join", self.pid, timeout))


class FakeExecutor:
    """Like ProcessPoolExecutor, ``shutdown`` forgets the worker processes (sets ``_processes`` to None)."""

    def __init__(self, **attributes):
        self.calls = []
        self.__dict__.update(attributes)

    def shutdown(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        if hasattr(self, "_processes"):
            self._processes = None


@pytest.mark.parametrize("pool, ended", [
    ({101: 101, 103: 103}, [101, 103]),           # the pool's processes, and only those
    ({}, []),                                     # no worker started yet: nothing to end
    (None, []),
    ("absent", []),
])
def test_stop_cancels_what_has_not_started_then_ends_the_workers(monkeypatch, pool, ended):
    log = []
    children = {pid: FakeProcess(pid, log) for pid in (101, 102, 103)}
    monkeypatch.setattr(multiprocessing, "active_children", lambda: list(children.values()))
    processes = pool if not isinstance(pool, dict) else {pid: children[pid] for pid in pool}
    executor = FakeExecutor() if pool == "absent" else FakeExecutor(_processes=processes)
    batch_workers._stop(executor)
    assert executor.calls == [((), {"wait": False, "cancel_futures": True})]
    assert log == [("terminate", pid) for pid in ended] + [("join", pid, 10) for pid in ended]


def test_stopping_a_pool_leaves_other_child_processes_alone():
    """_stop ends the pool's workers only. (It used to read the executor's processes after
    ProcessPoolExecutor.shutdown(), which sets ``_processes`` to None: every child process of this
    process was ended, those of a host program or of another pool too.)"""
    context = multiprocessing.get_context("spawn")
    other = context.Process(target=time.sleep, args=(60,))
    other.start()
    executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
    try:
        executor.submit(time.sleep, 60)
        pool = list(executor._processes.values())
        batch_workers._stop(executor)
        assert len(pool) == 1 and pool[0].exitcode == -signal.SIGTERM
        assert other.is_alive(), "a child process that is not the pool's was ended"
    finally:
        other.terminate()
        other.join()


# ---------------------------------------------------------------- the pool, with quick work


_STARTED = None                  # in a worker: the initializer's arguments
_WHERE = "imported afresh"       # the parent changes it: a forked worker would see that


def _start(*args) -> None:
    global _STARTED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _STARTED = args


def _quick_or_slow(task: CaseTask) -> CaseOutcome:
    if task.case_id.startswith("slow"):
        time.sleep(60)
    return CaseOutcome(task.index, ok=True, seconds=1.25, error=f"{_STARTED!r} {_WHERE}")


def test_ctrl_c_while_results_come_in_ends_the_pool_and_is_raised_again(monkeypatch):
    """Three fresh ('spawn') workers started by the initializer with its arguments; Ctrl-C in the
    parent as the first result comes: the others are ended, none is left, Ctrl-C is raised again."""
    import sys

    stops = []
    real_stop = batch_workers._stop

    def spy(executor):
        stops.append((executor, list(executor._processes.values())))     # before shutdown clears them
        real_stop(executor)

    submitted = []

    class Pool(ProcessPoolExecutor):
        def submit(self, fn, task):
            submitted.append(task.case_id)
            return super().submit(fn, task)

    monkeypatch.setattr(batch_workers, "_stop", spy)
    monkeypatch.setattr(batch_workers, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(sys.modules[__name__], "_WHERE", "as in the parent")
    outcomes = []

    def on_done(outcome):
        outcomes.append(outcome)
        raise KeyboardInterrupt                       # Ctrl-C while the parent takes a result

    tasks = [a_task(0, "quick"), a_task(1, "slow1"), a_task(2, "slow2"), a_task(3, "slow3")]
    with pytest.raises(KeyboardInterrupt):
        run_in_workers(tasks, WorkerPlan(3, 1), ("start", 7), on_done, work=_quick_or_slow, initializer=_start)
    assert outcomes == [CaseOutcome(0, ok=True, seconds=1.25, error="('start', 7) imported afresh")]
    assert submitted == ["quick", "slow1", "slow2"]                   # three at a time: the fourth never
    [(executor, processes)] = stops
    assert isinstance(executor, ProcessPoolExecutor) and executor._max_workers == 3 and len(processes) == 3
    codes = [p.exitcode for p in processes]
    assert None not in codes and -signal.SIGTERM in codes, codes      # the slow cases' workers were ended
    assert not [p for p in multiprocessing.active_children() if p in processes]


# ---------------------------------------------------------------- the batch in this process, analyses faked


def batch_argv(manifest: Path, out: Path, *more) -> list[str]:
    return [str(a) for a in ("batch", manifest, "--out", out, "--model", "some-model", "--samples", "2",
                             "--no-report", "--progress", "none", "--mtv-method", "suv2.5", *more)]


HEADER = ["case_id", "pet", "point_x", "point_y", "point_z"]


@pytest.fixture
def cohort(tmp_path) -> dict:
    """A manifest of three cases (PET paths relative to it) and where their folders go."""
    rows = [["c1", "pets/one.nii.gz", 1.5, -2.0, 30.0], ["c2", "pets/two.nii.gz", 0, 0, 0],
            ["c3", "pets/three.nii.gz", -4.0, 5.0, 6.0]]
    manifest = write_csv(tmp_path / "cases.csv", HEADER, rows)
    return {"manifest": manifest, "out": tmp_path / "out", "rows": rows,
            "manifest_rows": [dict(zip(HEADER, map(str, r))) for r in rows]}


class FakeAnalysis:
    """analyse_case as batch calls it, without the engine: a result.json with SUVmax 2 + the case's
    index and the record, or a failure for the case_ids in ``fail``."""

    def __init__(self, fail: dict | None = None):
        self.tasks, self.fail = [], fail or {}

    def __call__(self, task: CaseTask) -> CaseOutcome:
        self.tasks.append(task)
        if task.case_id in self.fail:
            return CaseOutcome(task.index, ok=False, error=self.fail[task.case_id])
        write_result(task.folder, suv_max=2.0 + task.index)
        write_record(task.folder, task.record)
        return CaseOutcome(task.index, ok=True, seconds=0.5 + task.index)


def done_row(out: Path, case_id: str, index: int, status: str = "done", seconds=None) -> dict:
    return full_row(**(RESULT_COLUMNS | {"suv_max": 2.0 + index}), case_id=case_id, status=status,
                    folder=out / case_id, seconds="" if seconds is None else seconds)


def test_a_batch_in_this_process_then_resumed_redone_and_changed(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    analysis = FakeAnalysis(fail={"c2": "the PET cannot be read"})
    monkeypatch.setattr(batch, "analyse_case", analysis)
    manifest, out = cohort["manifest"], cohort["out"]
    assert main(batch_argv(manifest, out)) == 1
    assert capsys.readouterr().out == f"c2: the PET cannot be read\n2 of 3 cases analysed; summary: {out / 'summary.csv'}\n"
    assert read_csv(out / "summary.csv") == [
        done_row(out, "c1", 0, seconds=0.5),
        full_row(case_id="c2", status="failed", error="the PET cannot be read", folder=out / "c2"),
        done_row(out, "c3", 2, seconds=2.5)]

    # What batch gave each case: its PET beside the manifest, its folder, its point and options, its record.
    assert [(t.index, t.case_id, t.pet, t.folder) for t in analysis.tasks] == [
        (i, f"c{i + 1}", manifest.parent / "pets" / name, out / f"c{i + 1}")
        for i, name in enumerate(["one.nii.gz", "two.nii.gz", "three.nii.gz"])]
    assert [t.options.point for t in analysis.tasks] == [(1.5, -2.0, 30.0), (0.0, 0.0, 0.0), (-4.0, 5.0, 6.0)]
    first = analysis.tasks[0]
    assert (first.options.model, first.options.samples, first.options.mtv_method, first.options.report) == (
        "some-model", 2, "suv2.5", False)
    options_sha = first.record["options_sha256"]
    assert [t.record for t in analysis.tasks] == [
        {"case_id": f"c{i + 1}", "manifest_row": row, "row_sha256": sha256_of_json(row), "options_sha256": options_sha}
        for i, row in enumerate(cohort["manifest_rows"])]
    assert re.fullmatch(r"[0-9a-f]{64}", options_sha)

    # Again: the finished cases are skipped with their results, the failed one is tried again.
    analysis.fail = {}
    assert main(batch_argv(manifest, out)) == 0
    assert capsys.readouterr().out == f"3 of 3 cases analysed; summary: {out / 'summary.csv'}\n"
    assert [t.case_id for t in analysis.tasks[3:]] == ["c2"]
    assert read_csv(out / "summary.csv") == [
        done_row(out, "c1", 0, "skipped (done before)"), done_row(out, "c2", 1, seconds=1.5),
        done_row(out, "c3", 2, "skipped (done before)")]

    # A changed row is redone and says why; --redo redoes every case without a reason.
    rows = cohort["rows"]
    write_csv(manifest, HEADER, [rows[0], rows[1], [*rows[2][:2], -4.0, 5.0, 7.0]])
    assert main(batch_argv(manifest, out)) == 0
    assert capsys.readouterr().out.splitlines()[0] == "c3: redone: its manifest row changed"
    assert [r["status"] for r in read_csv(out / "summary.csv")] == [
        "skipped (done before)", "skipped (done before)", "redone: its manifest row changed"]
    assert main(batch_argv(manifest, out, "--fill-holes")) == 0
    assert capsys.readouterr().out.splitlines()[:3] == [f"c{i}: redone: the analysis options changed"
                                                        for i in (1, 2, 3)]
    assert main(batch_argv(manifest, out, "--fill-holes", "--redo")) == 0
    assert capsys.readouterr().out == f"3 of 3 cases analysed; summary: {out / 'summary.csv'}\n"
    assert [r["status"] for r in read_csv(out / "summary.csv")] == ["done"] * 3
    assert len(analysis.tasks) == 3 + 1 + 1 + 3 + 3


def test_an_internal_error_of_a_case_leaves_its_traceback_and_the_batch_goes_on(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    trace = "Traceback (most recent call last):\nValueError: odd\n"

    def analysis(task):
        if task.case_id == "c2":
            return CaseOutcome(task.index, ok=False, error="ValueError: odd", internal=True, traceback=trace)
        return FakeAnalysis()(task)

    monkeypatch.setattr(batch, "analyse_case", analysis)
    out = cohort["out"]
    assert main(batch_argv(cohort["manifest"], out)) == 1
    assert capsys.readouterr().out.splitlines()[0] == "c2: internal error ValueError: odd"
    assert (out / "c2_error.txt").read_text() == trace
    assert [r["status"] for r in read_csv(out / "summary.csv")] == ["done", "failed", "done"]


@pytest.mark.parametrize("content", ["{truncated", '{"scores": {}}'])
def test_a_finished_case_whose_result_became_unreadable_does_not_stop_the_resumed_batch(cohort, monkeypatch,
                                                                                     capsys, content):
    """A case done before whose result.json was damaged since (cut short, or without a key the summary
    reads) is analysed again; it used to stop the whole resumed batch with an internal error (exit 3,
    no summary), where one bad case must never stop the rest."""
    from MTLRadiomicsLib.cli import main

    monkeypatch.setattr(batch, "analyse_case", FakeAnalysis())
    manifest, out = cohort["manifest"], cohort["out"]
    assert main(batch_argv(manifest, out)) == 0
    (out / "c2" / "result.json").write_text(content)
    (out / "summary.csv").unlink()
    capsys.readouterr()
    status = main(batch_argv(manifest, out))
    assert status in (0, 1), capsys.readouterr().err
    rows = read_csv(out / "summary.csv")
    assert [r["status"] for r in rows][::2] == ["skipped (done before)"] * 2
    assert rows[1]["status"] != "skipped (done before)"


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
    (["--memory-gb", "0"], "--memory-gb must be more than 0"),
    (["--memory-gb", "-1"], "--memory-gb must be more than 0"),
    (["--shard", "3/2"], "--shard '3/2': give K/N with 1 <= K <= N, e.g. --shard 1/4 (with SLURM: --shard "
                         "$SLURM_ARRAY_TASK_ID/4 and --array=1-4)"),
])
def test_bad_batch_options_are_refused_before_any_case(cohort, monkeypatch, capsys, argv, message):
    from MTLRadiomicsLib.cli import main

    analysis = FakeAnalysis()
    monkeypatch.setattr(batch, "analyse_case", analysis)
    assert main(batch_argv(cohort["manifest"], cohort["out"], *argv)) == 2
    assert capsys.readouterr().err == f"mtl-radiomics: error: {message}\n"
    assert analysis.tasks == [] and not cohort["out"].exists()


def test_the_batch_options_as_parsed():
    from MTLRadiomicsLib.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["batch", "m.csv", "--out", "o"])
    assert (args.manifest, args.out, args.workers, args.memory_gb, args.shard, args.redo, args.handler) == (
        "m.csv", "o", 1, None, None, False, batch.run)
    args = parser.parse_args(["batch", "m.csv", "--out", "o", "--workers", "3", "--memory-gb", "2.5", "--shard",
                              "2/4", "--redo"])
    assert (args.workers, args.memory_gb, args.shard, args.redo) == (3, 2.5, "2/4", True)
    args = parser.parse_args(["batch-merge", "a", "b"])
    assert (args.folders, args.out, args.handler) == (["a", "b"], None, batch_shards.run_merge)
    assert parser.parse_args(["batch-merge", "a", "--out", "c"]).out == "c"


class FakePool:
    """run_in_workers as batch calls it: what it was given, the outcomes given back last case first."""

    def __init__(self, analysis, stop_after=None, signal_number=signal.SIGINT):
        self.analysis, self.stop_after, self.signal_number, self.calls = analysis, stop_after, signal_number, []

    def __call__(self, tasks, plan, initargs, on_done):
        self.calls.append(([t.case_id for t in tasks], plan, initargs))
        for n, task in enumerate(reversed(tasks)):
            if n == self.stop_after:
                if self.signal_number == signal.SIGINT:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), self.signal_number)
                for _ in range(200):
                    time.sleep(0.01)
                raise AssertionError("the signal did not stop the batch")
            on_done(self.analysis(task))


def test_workers_get_the_plan_for_the_largest_case_and_the_model(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    analysis = FakeAnalysis()
    pool = FakePool(analysis)
    voxels = {"one.nii.gz": 1000, "two.nii.gz": 2 ** 23, "three.nii.gz": 5}      # two: 1.53 GB
    asked = []
    monkeypatch.setattr(batch, "analyse_case", analysis)
    monkeypatch.setattr(batch, "run_in_workers", pool)
    monkeypatch.setattr(batch, "pet_voxels", lambda pet: asked.append(pet) or voxels[Path(pet).name])
    monkeypatch.setattr(batch, "cpu_cores", lambda: 4)
    monkeypatch.setattr(batch, "default_memory_gb", lambda: 3.2)
    manifest, out = cohort["manifest"], cohort["out"]

    assert main(batch_argv(manifest, out, "--workers", "3")) == 0
    note = ("--workers 3 lowered to 2 by the memory budget: the largest case needs about 1.5 GB and --memory-gb "
            "is 3.2 GB")
    assert capsys.readouterr().out == f"{note}\n3 of 3 cases analysed; summary: {out / 'summary.csv'}\n"
    assert pool.calls == [(["c1", "c2", "c3"], WorkerPlan(2, 2, [note]), ("some-model", 2))]
    assert sorted(asked) == sorted(manifest.parent / "pets" / n for n in voxels)
    assert [t.case_id for t in analysis.tasks] == ["c3", "c2", "c1"]
    assert read_csv(out / "summary.csv") == [done_row(out, f"c{i + 1}", i, seconds=0.5 + i) for i in range(3)]

    # --memory-gb instead of the default; a budget for one worker: the cases run here, one by one.
    assert main(batch_argv(manifest, out, "--workers", "2", "--memory-gb", "9", "--redo")) == 0
    assert pool.calls[1] == (["c1", "c2", "c3"], WorkerPlan(2, 2, []), ("some-model", 2))
    capsys.readouterr()
    assert main(batch_argv(manifest, out, "--workers", "2", "--memory-gb", "1.0", "--redo")) == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "--workers 2 lowered to 1 by the memory budget: the largest case needs about 1.5 GB and --memory-gb is 1.0 GB")
    assert len(pool.calls) == 2 and [t.case_id for t in analysis.tasks[6:]] == ["c1", "c2", "c3"]

    # One case to do, or --workers 1: no pool, no plan (no note), no PET header read for one.
    (out / "c2" / "result.json").unlink()
    estimated = len(asked)
    assert main(batch_argv(manifest, out, "--workers", "2", "--memory-gb", "1.0")) == 0
    assert capsys.readouterr().out == f"3 of 3 cases analysed; summary: {out / 'summary.csv'}\n"
    assert main(batch_argv(manifest, out, "--redo")) == 0
    assert len(pool.calls) == 2 and [t.case_id for t in analysis.tasks[9:]] == ["c2", "c1", "c2", "c3"]
    assert len(asked) == estimated == 9


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_batch_keeps_what_finished_and_says_what_did_not(cohort, monkeypatch, capsys, signals,
                                                                        signal_number):
    from MTLRadiomicsLib.cli import main

    before = signal.getsignal(signal.SIGTERM)
    analysis = FakeAnalysis()
    monkeypatch.setattr(batch, "run_in_workers", FakePool(analysis, stop_after=1, signal_number=signal_number))
    monkeypatch.setattr(batch, "cpu_cores", lambda: 2)
    manifest, out = cohort["manifest"], cohort["out"]
    out.mkdir()
    for leftover in (".c1.partial-1a2b", ".c2.partial-3c4d"):           # what stopped workers left
        (out / leftover).mkdir()
        (out / leftover / "pet.nii.gz").write_text("half")
    (out / ".unrelated.partial-x").mkdir()

    assert main(batch_argv(manifest, out, "--workers", "2", "--memory-gb", "64")) == 130
    assert capsys.readouterr().err == (f"mtl-radiomics: interrupted: 2 of 3 cases not analysed (finished ones are "
                                       f"kept; the same command goes on from there); summary: {out / 'summary.csv'}\n")
    assert read_csv(out / "summary.csv") == [full_row(case_id="c1", status=INTERRUPTED, folder=out / "c1"),
                                             full_row(case_id="c2", status=INTERRUPTED, folder=out / "c2"),
                                             done_row(out, "c3", 2, seconds=2.5)]
    assert sorted(p.name for p in out.iterdir()) == [".unrelated.partial-x", "c3", "summary.csv"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_shard_analyses_its_rows_and_records_that_it_finished(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    analysis = FakeAnalysis()
    monkeypatch.setattr(batch, "analyse_case", analysis)
    manifest, out = cohort["manifest"], cohort["out"]
    out.mkdir()
    (out / "summary_shard_1_of_2.json").write_text("{}")               # of an earlier run of the shard
    record_path = out / "summary_shard_1_of_2.json"

    interrupted = FakePool(analysis, stop_after=1)
    monkeypatch.setattr(batch, "run_in_workers", interrupted)
    monkeypatch.setattr(batch, "cpu_cores", lambda: 2)
    assert main(batch_argv(manifest, out, "--shard", "1/2", "--workers", "2", "--memory-gb", "64")) == 130
    assert interrupted.calls[0][0] == ["c1", "c3"]
    assert not record_path.exists()                                     # not finished: merge will say so
    assert read_csv(out / "summary_shard_1_of_2.csv") == [full_row(case_id="c1", status=INTERRUPTED, folder=out / "c1"),
                                                          done_row(out, "c3", 2, seconds=2.5)]
    assert not (out / "summary.csv").exists()
    capsys.readouterr()

    assert main(batch_argv(manifest, out, "--shard", "1/2")) == 0
    assert capsys.readouterr().out == f"2 of 2 cases analysed; summary: {out / 'summary_shard_1_of_2.csv'}\n"
    assert read_csv(out / "summary_shard_1_of_2.csv") == [done_row(out, "c1", 0, seconds=0.5),
                                                          done_row(out, "c3", 2, "skipped (done before)")]
    record = json.loads(record_path.read_text())
    assert (record["shard"], record["of"], record["manifest"], record["summary"]) == (
        1, 2, str(manifest), "summary_shard_1_of_2.csv")
    assert record["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert record["case_ids"] == ["c1", "c2", "c3"] and record["shard_case_ids"] == ["c1", "c3"]
    case = json.loads((out / "c1" / "batch_case.json").read_text())
    assert record["options_sha256"] == case["options_sha256"]          # the cases' options

    assert main(batch_argv(manifest, out, "--shard", "2/2")) == 0
    assert [t.case_id for t in analysis.tasks] == ["c3", "c1", "c2"]
    assert main(["batch-merge", str(out)]) == 0
    assert read_csv(out / "summary.csv") == [done_row(out, "c1", 0, seconds=0.5),
                                             done_row(out, "c2", 1, seconds=1.5),
                                             done_row(out, "c3", 2, "skipped (done before)")]


# ---------------------------------------------------------------- a real pool of two workers


SPACING, ORIGIN, SHAPE = (4.0, 4.0, 4.0), (-48.0, -48.0, -40.0), (20, 24, 24)       # (z, y, x)
CENTRE = (10, 12, 12)


def sphere(radius_mm: float) -> np.ndarray:
    k, j, i = np.indices(SHAPE)
    d2 = sum(((a - c) * s) ** 2 for a, c, s in zip((i, j, k), reversed(CENTRE), SPACING))
    return d2 <= radius_mm ** 2


def test_a_real_pool_of_two_workers_analyses_the_cases_and_reports_each_here(tiny_model, tmp_path, monkeypatch):
    """Two synthetic PETs with a hot sphere (SUV 8 on 1; the point at its centre) and a missing PET,
    in two worker processes started by init_worker; the results are taken in this process."""
    import SimpleITK as sitk

    from MTLRadiomicsLib.cli import main
    from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

    k, j, i = CENTRE
    x, y, z = (o + n * s for o, n, s in zip(ORIGIN, (i, j, k), SPACING))
    radii = {"small": 6.0, "large": 10.0}
    rows = []
    for name, radius in radii.items():
        suv = np.ones(SHAPE, np.float32)
        suv[sphere(radius)] = 8.0
        pet = PetVolume(suv=suv, spacing=SPACING, origin=ORIGIN, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
        sitk.WriteImage(pet.to_sitk(), str(tmp_path / f"{name}.nii.gz"))
        rows.append([name, f"{name}.nii.gz", -x, -y, z])
    rows.append(["missing", "none.nii.gz", 0, 0, 0])
    manifest = write_csv(tmp_path / "cases.csv", HEADER, rows)
    out = tmp_path / "out"
    pools = []
    real_pool = batch.run_in_workers

    def spy(tasks, plan, initargs, on_done):
        pools.append((plan, initargs))
        real_pool(tasks, plan, initargs, on_done)

    monkeypatch.setattr(batch, "run_in_workers", spy)
    monkeypatch.setattr(batch, "cpu_cores", lambda: 2)
    argv = [str(a) for a in ("batch", manifest, "--out", out, "--model", tiny_model, "--samples", "2", "--no-report",
                             "--progress", "none", "--mtv-method", "suv2.5", "--workers", "2", "--memory-gb", "64")]
    assert main(argv) == 1
    assert pools == [(WorkerPlan(2, 1, []), (str(tiny_model), 1))]
    summary = {r["case_id"]: r for r in read_csv(out / "summary.csv")}
    assert list(summary) == ["small", "large", "missing"]
    voxel_ml = float(np.prod(SPACING)) / 1000.0
    for name, radius in radii.items():
        row = summary[name]
        assert (row["status"], row["error"], row["location"], row["mtv_method"]) == ("done", "", "point", "suv2.5")
        assert float(row["mtv_ml"]) == pytest.approx(sphere(radius).sum() * voxel_ml, abs=1e-4)
        assert float(row["suv_max"]) == 8.0 and float(row["seconds"]) > 0
        manifest_row = dict(zip(HEADER, map(str, rows[list(radii).index(name)])))
        record = json.loads((out / name / "batch_case.json").read_text())
        assert {k: v for k, v in record.items() if k != "options_sha256"} == {
            "case_id": name, "manifest_row": manifest_row, "row_sha256": sha256_of_json(manifest_row)}
    assert sphere(radii["large"]).sum() > 3 * sphere(radii["small"]).sum()
    assert (summary["missing"]["status"], summary["missing"]["error"]) == (
        "failed", f"{tmp_path / 'none.nii.gz'} does not exist")

    assert main(argv) == 1                                             # resumed: only the failed case again
    assert [r["status"] for r in read_csv(out / "summary.csv")] == ["skipped (done before)"] * 2 + ["failed"]
    assert len(pools) == 1


# ---------------------------------------------------------------- shards and their merge


def test_shards_their_rows_and_their_names():
    assert parse_shard(None) is None
    assert parse_shard("2/5") == Shard(2, 5) and parse_shard(" 3 / 4 ") == Shard(3, 4)
    assert parse_shard("1/1") == Shard(1, 1) and parse_shard("4/4") == Shard(4, 4)
    assert parse_shard("07/12") == Shard(7, 12)
    assert Shard(2, 7).summary_name == "summary_shard_2_of_7.csv"
    assert Shard(2, 7).record_name == "summary_shard_2_of_7.json"
    assert Shard(2, 3).positions(8) == [1, 4, 7] and Shard(1, 3).positions(7) == [0, 3, 6]
    assert Shard(3, 3).positions(2) == [] and Shard(1, 1).positions(3) == [0, 1, 2]
    assert Shard(2, 2).positions(4) == [1, 3]


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0", "-1/2", "1/2/3", "", "1 2", "1.0/2"])
def test_a_bad_shard_is_refused_word_for_word(text):
    with pytest.raises(MTLRadiomicsError) as error:
        parse_shard(text)
    assert str(error.value) == (f"--shard {text!r}: give K/N with 1 <= K <= N, e.g. --shard 1/4 (with SLURM: "
                                "--shard $SLURM_ARRAY_TASK_ID/4 and --array=1-4)")


def test_a_shard_run_forgets_only_its_own_record_of_having_finished(tmp_path):
    for name in ("summary_shard_1_of_2.json", "summary_shard_1_of_2.csv", "summary_shard_2_of_2.json"):
        (tmp_path / name).write_text("x")
    forget_finished(tmp_path, Shard(1, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary_shard_1_of_2.csv", "summary_shard_2_of_2.json"]
    forget_finished(tmp_path, Shard(1, 2))                             # nothing to forget: no error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary_shard_1_of_2.csv", "summary_shard_2_of_2.json"]


def test_a_finished_shard_writes_its_summary_then_its_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    content = b"case_id,pet\na,a.nii.gz\nb,b.nii.gz\nc,c.nii.gz\nd,d.nii.gz\ne,e.nii.gz\n"
    Path("cases.csv").write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary_shard_2_of_3.json").write_text("an older record")
    rows = [{"case_id": "b", "status": "done", "suv_max": 1.5, "not a column": 1},
            {"case_id": "e", "status": "failed", "error": "no PET"}]
    earliest = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    summary = write_shard(out, Shard(2, 3), Path("cases.csv"), "f" * 64, ["a", "b", "c", "d", "e"], rows)
    latest = dt.datetime.now(dt.timezone.utc)
    assert summary == out / "summary_shard_2_of_3.csv"
    assert read_csv(summary) == [full_row(case_id="b", status="done", suv_max=1.5),
                                 full_row(case_id="e", status="failed", error="no PET")]
    text = (out / "summary_shard_2_of_3.json").read_text()
    record = json.loads(text)
    finished = record.pop("finished")
    assert record == {"shard": 2, "of": 3, "manifest": str(tmp_path / "cases.csv"),
                      "manifest_sha256": hashlib.sha256(content).hexdigest(), "options_sha256": "f" * 64,
                      "summary": "summary_shard_2_of_3.csv", "case_ids": ["a", "b", "c", "d", "e"],
                      "shard_case_ids": ["b", "e"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", finished), finished     # UTC, whole seconds
    assert earliest <= dt.datetime.fromisoformat(finished) <= latest
    assert text == json.dumps(json.loads(text), indent=1)              # one key a line
    assert sorted(p.name for p in out.iterdir()) == ["summary_shard_2_of_3.csv", "summary_shard_2_of_3.json"]


M1, M2, O1, O2 = "1" * 64, "2" * 64, "a" * 64, "b" * 64


def put_shard(folder: Path, k: int, n: int, case_ids: list[str], rows: list[dict], *, manifest=M1, options=O1,
              shard_case_ids=None) -> None:
    """A finished shard as batch leaves it, written here by hand: its summary and its record."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"summary_shard_{k}_of_{n}"
    with open(folder / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(full_row(**row) for row in rows)
    record = {"shard": k, "of": n, "manifest": "/data/cases.csv", "manifest_sha256": manifest,
              "options_sha256": options, "finished": "2024-05-01T10:00:00+00:00", "summary": f"{name}.csv",
              "case_ids": case_ids,
              "shard_case_ids": shard_case_ids if shard_case_ids is not None else [r["case_id"] for r in rows]}
    (folder / f"{name}.json").write_text(json.dumps(record))


def test_merge_joins_the_shards_in_manifest_order(tmp_path):
    ids = ["a", "b", "c", "d"]
    put_shard(tmp_path / "one", 1, 2, ids, [{"case_id": "a", "status": "done", "suv_max": 3},
                                            {"case_id": "c", "status": "failed", "error": "boom"},
                                            {"case_id": "b", "status": "failed", "error": "stale"}],
              shard_case_ids=["a", "c"])                               # a row that is not the shard's: ignored
    put_shard(tmp_path / "two", 2, 2, ids, [{"case_id": "d", "status": "done"}, {"case_id": "b", "status": "done"}])
    (tmp_path / "one" / "summary_shard_2_of_2.json.tmp").write_text("{")  # a record being written: not read
    merged, failed = merge([tmp_path / "one", tmp_path / "two"])
    expected = [full_row(case_id="a", status="done", suv_max=3), full_row(case_id="b", status="done"),
                full_row(case_id="c", status="failed", error="boom"), full_row(case_id="d", status="done")]
    assert merged == expected and failed == [expected[2]]


def test_merge_writes_summary_csv_and_says_what_failed(tmp_path, capsys):
    from MTLRadiomicsLib.cli import main

    ids = ["a", "b", "c", "d"]
    put_shard(tmp_path / "one", 1, 2, ids, [{"case_id": "a", "status": "done"},
                                            {"case_id": "c", "status": "failed", "error": "boom"}])
    put_shard(tmp_path / "two", 2, 2, ids, [{"case_id": "b", "status": "skipped (done before)"},
                                            {"case_id": "d", "status": "failed", "error": "no PET"}])
    joined = tmp_path / "joined" / "here"
    assert main(["batch-merge", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(joined)]) == 1
    assert capsys.readouterr().out == (f"2 of 4 cases analysed; summary: {joined / 'summary.csv'}\n"
                                       "failed: c: boom\nfailed: d: no PET\n")
    assert [r["case_id"] for r in read_csv(joined / "summary.csv")] == ids
    assert not (tmp_path / "one" / "summary.csv").exists()

    put_shard(tmp_path / "ok", 1, 1, ["x", "y"], [{"case_id": "x", "status": "done"},
                                                  {"case_id": "y", "status": "done"}])
    assert main(["batch-merge", str(tmp_path / "ok")]) == 0           # into the first folder
    assert capsys.readouterr().out == f"2 of 2 cases analysed; summary: {tmp_path / 'ok' / 'summary.csv'}\n"
    assert read_csv(tmp_path / "ok" / "summary.csv") == [full_row(case_id="x", status="done"),
                                                         full_row(case_id="y", status="done")]


def test_merge_refusals_word_for_word(tmp_path, capsys):
    from MTLRadiomicsLib.cli import main

    def refused(*folders: Path) -> str:
        with pytest.raises(MTLRadiomicsError) as error:
            merge(list(folders))
        return str(error.value)

    ids = ["a", "b", "c"]
    one = [{"case_id": "a", "status": "done"}, {"case_id": "c", "status": "done"}]
    two = [{"case_id": "b", "status": "done"}]

    assert refused(tmp_path / "nope") == f"{tmp_path / 'nope'} is not a folder"
    (tmp_path / "file").write_text("x")
    assert refused(tmp_path / "file") == f"{tmp_path / 'file'} is not a folder"

    empty, other = tmp_path / "empty", tmp_path / "other"
    for folder in (empty, other):
        folder.mkdir()
    (empty / "summary_shard_1_of_2.csv").write_text("case_id\n")
    (empty / "summary_shard_1_of_2.json.tmp").write_text("{}")
    assert refused(empty, other) == (f"no finished shard in {empty}, {other} (no summary_shard_K_of_N.json; "
                                     "run batch --shard K/N first)")

    bad = tmp_path / "bad"
    put_shard(bad, 1, 2, ids, one)
    (bad / "summary_shard_2_of_2.json").write_text("{")
    assert refused(bad) == (f"{bad / 'summary_shard_2_of_2.json'} cannot be read (Expecting property name enclosed in "
                            "double quotes: line 1 column 2 (char 1)); run that shard again")

    for name, changes, what, shown in (
            ("manifests", {"manifest": M2, "options": O2}, "manifests", ("111111111111", "222222222222")),
            ("options", {"options": O2}, "analysis options", ("aaaaaaaaaaaa", "bbbbbbbbbbbb"))):
        folder = tmp_path / name
        put_shard(folder, 1, 2, ids, one)
        put_shard(folder, 2, 2, ids, two, **changes)
        assert refused(folder) == (f"the shards come from different {what} and cannot be merged: "
                                   f"shard 1/2 ({shown[0]}); shard 2/2 ({shown[1]})")
    counts = tmp_path / "counts"
    put_shard(counts, 1, 2, ids, one)
    put_shard(counts, 2, 3, ids, two)
    assert refused(counts) == ("the shards come from different numbers of shards and cannot be merged: "
                               "shard 1/2 (2); shard 2/3 (3)")

    first, second = tmp_path / "first", tmp_path / "second"
    put_shard(first, 1, 2, ids, one)
    put_shard(second, 1, 2, ids, one)
    put_shard(second, 2, 2, ids, two)
    assert refused(first, second) == f"shard(s) 1 of 2 found more than once in {first}, {second}"

    many = [f"c{i:02d}" for i in range(14)]
    alone = tmp_path / "alone"
    put_shard(alone, 1, 3, many, [{"case_id": c, "status": "done"} for c in many[::3]])
    assert refused(alone, other) == (
        f"shard(s) 2, 3 of 3 missing or unfinished in {alone}, {other} (9 cases not analysed: c01, c04, c07, c10, "
        "c13 and 4 more); run batch --shard K/3 for each with the same manifest and options, then merge again")
    ten = list("abcdefghij")
    half = tmp_path / "half"
    put_shard(half, 1, 2, ten, [{"case_id": c, "status": "done"} for c in ten[::2]])
    assert refused(half) == (f"shard(s) 2 of 2 missing or unfinished in {half} (5 cases not analysed: b, d, f, h, j); "
                             "run batch --shard K/2 for each with the same manifest and options, then merge again")

    short = tmp_path / "short"
    put_shard(short, 1, 2, ten, [{"case_id": c, "status": "done"} for c in ten[::2]])
    put_shard(short, 2, 2, ten, [{"case_id": "b", "status": "done"}], shard_case_ids=ten[1::2])
    assert refused(short) == (f"{short / 'summary_shard_2_of_2.csv'} lacks 4 of its shard's cases (d, f, h, j); "
                              "run batch --shard 2/2 again")
    put_shard(short, 2, 2, ten, [], shard_case_ids=ten[1::2] + ["k", "l"])
    assert refused(short) == (f"{short / 'summary_shard_2_of_2.csv'} lacks 7 of its shard's cases (b, d, f, h, j and "
                              "2 more); run batch --shard 2/2 again")

    assert main(["batch-merge", str(half)]) == 2                       # the command: one line, nothing written
    assert capsys.readouterr().err.startswith("mtl-radiomics: error: shard(s) 2 of 2 missing or unfinished in ")
    assert not (half / "summary.csv").exists()


# ---------------------------------------------------------------- rows that fail, in this process
def test_a_bad_row_fails_alone_and_the_rows_after_it_are_analysed(tmp_path, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    rows = [["c1", "one.nii.gz", 0, 0, 0, ""], ["c2", "two.nii.gz", 0, 0, 0, "heavy"],
            ["c3", "three.nii.gz", 0, 0, 0, "70"]]
    manifest = write_csv(tmp_path / "cases.csv", HEADER + ["weight"], rows)
    analysis = FakeAnalysis()
    monkeypatch.setattr(batch, "analyse_case", analysis)
    out = tmp_path / "nested" / "folders" / "out"                       # made with its parents
    assert main(batch_argv(manifest, out)) == 1
    summary = read_csv(out / "summary.csv")
    assert [r["status"] for r in summary] == ["done", "failed", "done"]
    assert [t.case_id for t in analysis.tasks] == ["c1", "c3"]
    error = summary[1]["error"]
    assert "weight" in error and "heavy" in error and summary[1]["case_id"] == "c2"
    assert f"c2: {error}\n" in capsys.readouterr().out


def test_an_internal_error_in_a_row_fails_that_row_and_says_so(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    original = batch.row_options

    def breaks_on_c2(args, row, actions):
        if row["case_id"] == "c2":
            raise TypeError("boom")
        return original(args, row, actions)

    monkeypatch.setattr(batch, "row_options", breaks_on_c2)
    monkeypatch.setattr(batch, "analyse_case", FakeAnalysis())
    assert main(batch_argv(cohort["manifest"], cohort["out"])) == 1
    summary = read_csv(cohort["out"] / "summary.csv")
    assert [(r["case_id"], r["status"], r["error"]) for r in summary] == [
        ("c1", "done", ""), ("c2", "failed", "TypeError: boom"), ("c3", "done", "")]
    assert "c2: internal error TypeError: boom\n" in capsys.readouterr().out


def test_an_analysed_case_whose_result_cannot_be_read_fails_as_an_internal_error(cohort, monkeypatch, capsys):
    from MTLRadiomicsLib.cli import main

    def broken(task):
        task.folder.mkdir(parents=True, exist_ok=True)
        (task.folder / "result.json").write_text("{cut")
        return CaseOutcome(task.index, ok=True, seconds=1.0)

    monkeypatch.setattr(batch, "analyse_case", broken)
    assert main(batch_argv(cohort["manifest"], cohort["out"])) == 1
    summary = read_csv(cohort["out"] / "summary.csv")
    assert [r["status"] for r in summary] == ["failed"] * 3
    assert all(r["error"].startswith("its result.json cannot be read (JSONDecodeError: ") for r in summary)
    assert "c1: internal error its result.json cannot be read (JSONDecodeError: " in capsys.readouterr().out


def test_one_worker_asked_for_runs_every_case_here(cohort, monkeypatch):
    from MTLRadiomicsLib.cli import main

    monkeypatch.setattr(batch, "run_in_workers", lambda *a: pytest.fail("no pool for --workers 1"))
    monkeypatch.setattr(batch, "pet_voxels", lambda path: pytest.fail("no plan for --workers 1"))
    analysis = FakeAnalysis()
    monkeypatch.setattr(batch, "analyse_case", analysis)
    assert main(batch_argv(cohort["manifest"], cohort["out"], "--workers", "1")) == 0
    assert [t.case_id for t in analysis.tasks] == ["c1", "c2", "c3"]


def test_batch_help_documents_the_manifest_the_rules_and_every_exit_status(capsys, monkeypatch):
    """What a user reads before a cohort run: the manifest's columns, the per-row SUV columns, the
    folder rule, what is skipped and redone, the summary, the options for many cases and what each exit
    status means."""
    from MTLRadiomicsLib.cli import main
    from MTLRadiomicsLib.commands.manifest import PLAIN_NAME_RULE

    monkeypatch.setenv("COLUMNS", "2000")                       # no line breaks inside the words checked
    with pytest.raises(SystemExit) as stop:
        main(["batch", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("Analyse the scans listed in a CSV manifest: columns case_id and pet (relative paths are read "
                  "from the manifest's folder); optional point_x, point_y, point_z in RAS mm; optional columns "
                  "named like the SUV options (weight, dose, input_units, injection_time, scan_time, half_life, "
                  "decay_corrected_to, series) replace those options for their row.",
                  f"A case_id is the name of the case's folder OUT/<case_id>/: {PLAIN_NAME_RULE}.",
                  "A case that fails is reported and the others go on; a finished case is skipped unless its "
                  "manifest row or the analysis options changed since, or --redo. Writes OUT/summary.csv (in "
                  "manifest order).",
                  "Exit status: 0 every case done (now or before); 1 some cases failed (the others are done and "
                  "summary.csv says why each failed); 2 the batch did not start (a bad option or manifest, nothing "
                  "analysed); 3 an internal error; 130 interrupted (Ctrl-C or SIGTERM; finished cases are kept and "
                  "the same command goes on from there).",
                  "analyse N cases at a time in worker processes, each loading the model once (default 1: one "
                  "after the other in this process); lowered to the cores and to what --memory-gb holds, with a "
                  "note",
                  "memory the workers may use together (default: 75% of the memory available now); each case is "
                  "estimated from its PET's voxel count",
                  "analyse only shard K of N (manifest row i, from 0, is in shard i % N + 1), e.g. one per array job "
                  "of a cluster; writes OUT/summary_shard_K_of_N.csv; 'mtl-radiomics batch-merge OUT' then joins "
                  "the shards into OUT/summary.csv",
                  "--redo analyse finished cases again"):
        assert words in text, words
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "batch analyse every scan of a manifest, with a summary CSV" in " ".join(capsys.readouterr().out.split())
    assert (batch.EXIT_ALL_DONE, batch.EXIT_SOME_FAILED, batch.EXIT_INTERRUPTED) == (0, 1, 130)

"""`batch --workers N`: cases analysed in worker processes on one machine, within a memory budget.

Each worker is a fresh ('spawn') process that ignores Ctrl-C (the parent stops it), uses
``cores // workers`` torch threads and loads the model once, when it starts. A case's memory is
estimated from its PET's voxel count (measured: one analysis of a synthetic whole-body PET with the
bundled model peaks at about 535 MB for the process with the engine and the model, plus 117-122
bytes per voxel); the number of workers is lowered until that many of the largest case fit the
budget. A worker process that dies (killed, out of memory) fails only its own case: the cases it
shared the pool with are run again one at a time to find it, and a new pool takes the rest.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback
from collections import deque
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from MTLRadiomicsLib.errors import MTLRadiomicsError

WORKER_BASE_GB = 0.55            # a worker with the engine imported and the model loaded (measured 0.53)
BYTES_PER_VOXEL = 125            # an analysis's peak above that, per PET voxel (measured 117-122)
DEFAULT_MEMORY_SHARE = 0.75      # --memory-gb default: this share of the memory available now
CASE_RECORD = "batch_case.json"  # in each case folder: the hashes of its manifest row and options


@dataclass
class CaseTask:
    """One case to analyse: where its PET is, its folder, its analysis options (an
    ``AnalysisOptions``) and the record batch_case.json gets when it is done."""

    index: int
    case_id: str
    pet: Path
    folder: Path
    options: Any
    record: dict


@dataclass
class CaseOutcome:
    """What became of a case: done, or failed with a one-line error (and the traceback of an
    internal error)."""

    index: int
    ok: bool
    seconds: float = 0.0
    error: str = ""
    internal: bool = False
    traceback: str = ""


@dataclass(frozen=True)
class WorkerPlan:
    """How many worker processes, the torch threads of each, and why fewer than asked for."""

    workers: int
    threads: int
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- the plan


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:                      # not on Linux
        return max(1, os.cpu_count() or 1)


def available_memory_gb() -> float:
    """Memory available for new work now (MemAvailable of /proc/meminfo, else free pages), in GB."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        return 4.0                              # unknown: a small machine's worth


def default_memory_gb() -> float:
    """The default --memory-gb: DEFAULT_MEMORY_SHARE of the memory available now."""
    return DEFAULT_MEMORY_SHARE * available_memory_gb()


def pet_voxels(pet: Path) -> int:
    """The voxel count of a PET file (from its header), or of a DICOM folder (its files' bytes over
    two, 16-bit pixels); 0 when it cannot be told (the case will fail on its own)."""
    try:
        if pet.is_dir():
            return sum(p.stat().st_size for p in pet.rglob("*") if p.is_file()) // 2
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(pet))
        reader.ReadImageInformation()
        size = 1
        for n in reader.GetSize():
            size *= int(n)
        return size
    except (OSError, RuntimeError):
        return 0


def case_memory_gb(voxels: int) -> float:
    """The estimated peak memory of a worker analysing a PET of ``voxels`` voxels, in GB."""
    return WORKER_BASE_GB + voxels * BYTES_PER_VOXEL / 2 ** 30


def plan_workers(requested: int, n_cases: int, cores: int, budget_gb: float, case_gb: float) -> WorkerPlan:
    """At most ``requested`` workers, no more than the cases, the cores, or the memory budget
    allows for ``case_gb`` each (at least one); threads per worker so that workers x threads <= cores."""
    notes = []
    workers = max(1, min(requested, n_cases))
    if workers > cores:
        notes.append(f"--workers {workers} lowered to {cores}: this machine has {cores} cores")
        workers = cores
    fit = max(1, int(budget_gb // case_gb))
    if workers > fit:
        notes.append(f"--workers {workers} lowered to {fit} by the memory budget: the largest case needs about "
                     f"{case_gb:.1f} GB and --memory-gb is {budget_gb:.1f} GB")
        workers = fit
    return WorkerPlan(workers=workers, threads=max(1, cores // workers), notes=notes)


# ---------------------------------------------------------------- one case (in a worker or in-process)


def analyse_case(task: CaseTask) -> CaseOutcome:
    """Analyse one case into its folder and write its record; errors are returned, not raised
    (Ctrl-C is)."""
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.progress import Progress

    started = time.perf_counter()
    try:
        analyze(task.pet, task.folder, task.options, Progress("none"), overwrite=True)
        write_record(task.folder, task.record)
    except MTLRadiomicsError as error:
        return CaseOutcome(task.index, ok=False, error=str(error))
    except Exception as error:  # one broken case must not stop the batch
        return CaseOutcome(task.index, ok=False, error=f"{type(error).__name__}: {error}", internal=True,
                           traceback=traceback.format_exc())
    return CaseOutcome(task.index, ok=True, seconds=round(time.perf_counter() - started, 2))


def write_record(folder: Path, record: dict) -> None:
    """Write the case's batch_case.json atomically."""
    import json

    tmp = folder / f"{CASE_RECORD}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(folder / CASE_RECORD)


def init_worker(model: Optional[str], threads: int) -> None:
    """A worker process's start: Ctrl-C left to the parent, ``threads`` torch threads, the engine
    imported and the model loaded once for all its cases."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):         # started while the parent held Ctrl-C back
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:                        # already set in this process
        pass
    from MTLRadiomicsLib.analysis import engine

    keep_model_loaded(engine, model)


def keep_model_loaded(engine: Any, model: Optional[str]) -> bool:
    """Make ``engine``'s model loader keep what it loaded, and load ``model`` now; False (each case
    loads the model itself, as in one process) when the engine has no such loader or loading fails
    (the cases then report the error)."""
    load = getattr(engine, "_load", None)
    if load is None or getattr(load, "keeps_models", False):
        return load is not None
    loaded: dict[str, Any] = {}

    def load_once(choice: Optional[str | Path]) -> Any:
        key = str(choice)
        if key not in loaded:
            loaded[key] = load(choice)
        return loaded[key]

    load_once.keeps_models = True  # type: ignore[attr-defined]
    engine._load = load_once
    try:
        load_once(model)
    except Exception:               # the cases will report it, one each
        return False
    return True


# ---------------------------------------------------------------- the pool


def crashed(task: CaseTask) -> CaseOutcome:
    return CaseOutcome(task.index, ok=False, internal=True,
                       error="its worker process ended unexpectedly (killed, or out of memory?)")


def run_in_workers(tasks: Sequence[CaseTask], plan: WorkerPlan, initargs: tuple,
                   on_done: Callable[[CaseOutcome], None],
                   work: Callable[[CaseTask], CaseOutcome] = analyse_case,
                   initializer: Callable[..., None] = init_worker) -> None:
    """Run ``work`` on every task in ``plan.workers`` processes, ``plan.workers`` tasks at a time;
    ``on_done`` gets each outcome in the parent as it comes (in any order). Ctrl-C cancels what has
    not started, ends the workers and is raised again."""
    pending, suspects = deque(tasks), deque()
    context = multiprocessing.get_context("spawn")
    while pending or suspects:
        isolate = bool(suspects)                  # after a crash: its cases alone, one at a time
        source, limit = (suspects, 1) if isolate else (pending, plan.workers)
        executor = ProcessPoolExecutor(max_workers=limit, mp_context=context, initializer=initializer,
                                       initargs=initargs)
        in_flight: dict[Future, CaseTask] = {}
        try:
            broken = False
            while (source or in_flight) and not broken:
                while source and len(in_flight) < limit:
                    task = source.popleft()
                    with _sigint_held():          # a worker started now inherits it: no traceback on Ctrl-C
                        in_flight[executor.submit(work, task)] = task
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    task = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            on_done(crashed(task))
                        else:
                            suspects.append(task)
                        continue
                    on_done(outcome)
            suspects.extend(in_flight.values())   # their pool broke under them
            executor.shutdown(wait=True)
        except KeyboardInterrupt:
            _stop(executor)
            raise


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Ctrl-C held back (blocked and noted, not ignored) for a moment: a worker process started now
    inherits the block and ignores SIGINT from its first line, and a Ctrl-C pressed meanwhile reaches
    this process as soon as the moment ends, whichever of its threads took it; it is never lost (an
    ignored one would be)."""
    if not hasattr(signal, "pthread_sigmask"):      # no POSIX signal masks: ignore it for the moment
        try:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:                          # not the main thread
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        return
    # Blocked in this thread, for the workers started now to inherit; but the process's other threads
    # (tqdm's monitor, a host program's) still take a Ctrl-C, and Python then runs the handler in this
    # thread: a handler that only notes it holds it back too, and it is raised again right after.
    pending: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    except ValueError:                              # not the main thread: no Python handler runs here
        previous = None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)      # one pending on this thread is noted now
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            if pending:
                signal.raise_signal(signal.SIGINT)


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the pool's worker processes now (only those: other child
    processes of this process, a host program's or another pool's, are left alone). The workers are
    taken before ``shutdown``, which forgets them."""
    workers = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(timeout=10)

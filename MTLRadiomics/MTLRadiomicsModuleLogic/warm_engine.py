"""A warm engine for the module: one ``mtl-radiomics serve`` process that keeps the engine imported
and the model loaded between analyses.

The worker starts with the first request and is reused after. Each request is a :class:`WarmRun`,
polled like an :class:`EngineProcess` (the same states, progress events, log lines and one-line
errors). Cancel kills the worker with everything it started, at once; a worker that ended (killed,
crashed) fails the request it was working on and is started again for the next one. A worker that
ends before it is ready (an engine without ``serve``, a broken installation) marks its requests
``startup_failed``, so that the caller can run them the old way, one process each.

No Slicer and no Qt import here.
"""

from __future__ import annotations

import collections
import itertools
import json
import subprocess
import threading
import weakref
from typing import Any, Callable, Optional, Sequence

from MTLRadiomicsModuleLogic.engine_process import (ERROR_PREFIX, PollResult, ProcessState, ProgressEvent,
                                                    kill_process_tree, new_group_options)

KILL_GRACE_S = 3.0
SHUTDOWN_GRACE_S = 5.0
STDERR_LINES_KEPT = 200
EXIT_USER_ERROR, EXIT_INTERNAL_ERROR = 2, 3          # the command line's exit status for the same errors


class WarmStartError(OSError):
    """The warm worker ended before it took a request; the message says why."""


def request_from_arguments(arguments: Sequence[str], request_id: str) -> dict[str, Any]:
    """The serve request for the command line ``arguments`` (``analyze|rescore PET --option value ...``):
    the same options, by name, so that the warm engine and a process of its own do the same work."""
    command, pet, *rest = [str(a) for a in arguments]
    options: dict[str, Any] = {}
    key: Optional[str] = None
    values: list[str] = []

    def close() -> None:
        if key is not None:
            options[key] = True if not values else values[0] if len(values) == 1 else list(values)

    for token in rest:
        if token.startswith("--"):
            close()
            key, values = token[2:].replace("-", "_"), []
        elif key is None:
            raise ValueError(f"unexpected argument {token!r}")
        else:
            values.append(token)
    close()
    request: dict[str, Any] = {"id": request_id, "command": command, "pet": pet}
    for name in ("out", "mask"):
        if name in options:
            request[name] = options.pop(name)
    options.pop("progress", None)
    request["options"] = options
    return request


class WarmRun:
    """One request to the warm worker, polled like an EngineProcess."""

    def __init__(self, worker: "WarmWorker", request: dict[str, Any]):
        self.worker = worker
        self.request = request
        self.id = str(request["id"])
        self.command: list[str] = []        # the command line that does the same work in a process of its own
        self.last_event: Optional[ProgressEvent] = None
        self.startup_failed = False
        self._lock = threading.Lock()
        self._events: list[ProgressEvent] = []
        self._logs: list[str] = []
        self._state = ProcessState.RUNNING
        self._error = ""
        self._returncode: Optional[int] = None
        self._finished = threading.Event()

    # ------------------------------------------------------------------ EngineProcess's interface
    @property
    def pid(self) -> Optional[int]:
        return self.worker.pid

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def returncode(self) -> Optional[int]:
        return self._returncode

    def is_running(self) -> bool:
        return self._state == ProcessState.RUNNING

    def poll(self) -> PollResult:
        """New progress events and log lines since the last call; never blocks."""
        with self._lock:
            events, self._events = self._events, []
            logs, self._logs = self._logs, []
            state = self._state
        if events:
            self.last_event = events[-1]
        return PollResult(state, events, logs, self._returncode)

    def wait(self, timeout: Optional[float] = None) -> ProcessState:
        self._finished.wait(timeout)
        return self._state

    def cancel(self) -> Optional[int]:
        """Stop the work at once: the worker is killed (the next request starts a new one)."""
        if self._state == ProcessState.RUNNING:
            self._end(ProcessState.CANCELLED, "")
            self.worker.kill()
            self._returncode = self.worker.returncode
        return self._returncode

    def error_message(self) -> str:
        return self._error

    # ------------------------------------------------------------------ fed by the worker's readers
    def _event(self, event: ProgressEvent) -> None:
        with self._lock:
            self._events.append(event)

    def _log(self, line: str) -> None:
        with self._lock:
            self._logs.append(line)

    def _answer(self, line: dict[str, Any]) -> None:
        if line.get("status") == "done":
            self._returncode = 0
            self._end(ProcessState.SUCCEEDED, "")
        else:
            error = str(line.get("error") or "the engine failed without a message")
            self._returncode = EXIT_INTERNAL_ERROR if error.startswith("internal error:") else EXIT_USER_ERROR
            self._end(ProcessState.FAILED, error)

    def _worker_ended(self, message: str, returncode: Optional[int], before_ready: bool) -> None:
        if self._state != ProcessState.RUNNING:
            return
        self.startup_failed = before_ready
        self._returncode = returncode
        self._end(ProcessState.FAILED, message)

    def _end(self, state: ProcessState, error: str) -> None:
        with self._lock:
            if self._state != ProcessState.RUNNING:
                return
            self._state, self._error = state, error
        self._finished.set()


class WarmWorker:
    """One ``mtl-radiomics serve`` process and its reader threads."""

    def __init__(self, command: Sequence[str], env: Optional[dict[str, str]] = None, cwd: Optional[str] = None):
        self.command = [str(c) for c in command]
        self.env = env
        self.cwd = cwd
        self.ready = threading.Event()
        self.ended = threading.Event()
        self.killed = False
        self._process: Optional[subprocess.Popen] = None
        self._runs: dict[str, WarmRun] = {}
        self._order: list[str] = []                  # ids of unanswered requests, oldest first
        self._lock = threading.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._threads: list[threading.Thread] = []

    def start(self) -> "WarmWorker":
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
            cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **new_group_options())
        for target, stream in ((self._read_stdout, self._process.stdout), (self._read_stderr, self._process.stderr)):
            thread = threading.Thread(target=target, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> Optional[int]:
        return self._process.poll() if self._process is not None else None

    @property
    def stdin(self):
        return self._process.stdin if self._process is not None else None

    def alive(self) -> bool:
        return self._process is not None and not self.ended.is_set() and self._process.poll() is None

    def submit(self, request: dict[str, Any]) -> WarmRun:
        """Send one request; its answers reach the returned run. OSError when the worker is gone."""
        run = WarmRun(self, request)
        with self._lock:
            self._runs[run.id] = run
            self._order.append(run.id)
        try:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except (OSError, ValueError) as error:
            with self._lock:
                self._runs.pop(run.id, None)
                self._order.remove(run.id)
            raise OSError(f"the engine worker does not take requests: {error}") from None
        return run

    def kill(self) -> None:
        """Kill the worker and everything it started; waits (briefly) until it is gone."""
        if self._process is None:
            return
        self.killed = True
        kill_process_tree(self._process, graceful=True)
        try:
            self._process.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        kill_process_tree(self._process, graceful=False)          # and whatever is left of the group
        try:
            self._process.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
        for thread in self._threads:
            thread.join(timeout=KILL_GRACE_S)

    def shutdown(self) -> None:
        """Ask the worker to end after its current request; kill it when it does not."""
        if self._process is None or not self.alive():
            return
        try:
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"id": "shutdown", "command": "shutdown"}) + "\n")
            self._process.stdin.close()
            self._process.wait(timeout=SHUTDOWN_GRACE_S)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self.kill()

    def stderr_tail(self, lines: int = 5) -> list[str]:
        with self._lock:
            return [line for line in self._stderr if line.strip()][-lines:]

    # ------------------------------------------------------------------ readers
    def _current(self) -> Optional[WarmRun]:
        with self._lock:
            return self._runs.get(self._order[0]) if self._order else None

    def _read_stdout(self, stream) -> None:
        try:
            for raw in iter(stream.readline, ""):
                self._stdout_line(raw.rstrip("\r\n"))
        except (OSError, ValueError):
            pass
        finally:
            self._on_end()

    def _stdout_line(self, line: str) -> None:
        try:
            data = json.loads(line) if line.startswith("{") else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if line.strip() and (run := self._current()) is not None:
                run._log(line)
            return
        if data.get("status") == "ready" and "id" not in data:
            self.ready.set()
            return
        run_id = str(data.get("id"))
        with self._lock:
            run = self._runs.get(run_id)
        if run is None:
            return
        if "stage" in data:
            event = ProgressEvent.from_line(line)
            if event is not None:
                run._event(event)
        elif data.get("status") in ("done", "error"):
            with self._lock:
                self._runs.pop(run_id, None)
                if run_id in self._order:
                    self._order.remove(run_id)
            run._answer(data)

    def _read_stderr(self, stream) -> None:
        try:
            for raw in iter(stream.readline, ""):
                line = raw.rstrip("\r\n")
                with self._lock:
                    self._stderr.append(line)
                if line.strip() and (run := self._current()) is not None:
                    run._log(line)
        except (OSError, ValueError):
            pass

    def _on_end(self) -> None:
        """stdout closed: the worker has ended (or is ending); fail whatever it had not answered."""
        code = None
        if self._process is not None:
            try:
                code = self._process.wait(timeout=KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                code = self._process.poll()
        self.ended.set()
        before_ready = not self.ready.is_set()
        message = self._end_message(code, before_ready)
        with self._lock:
            runs = [self._runs.pop(i) for i in list(self._order) if i in self._runs]
            self._order.clear()
        for run in runs:
            run._worker_ended(message, code, before_ready)

    def _end_message(self, code: Optional[int], before_ready: bool) -> str:
        if self._threads:
            self._threads[-1].join(timeout=1.0)                     # the stderr reader: its last lines
        tail = self.stderr_tail()
        for line in tail:
            if line.startswith(ERROR_PREFIX):
                detail = line[len(ERROR_PREFIX):].strip()
                break
        else:
            detail = tail[-1] if tail else ""
        how = (f"was stopped by signal {-code}" if code is not None and code < 0
               else f"stopped with exit status {code}" if code is not None else "stopped")
        if before_ready:
            return f"the warm engine could not start: it {how}" + (f" ({detail})" if detail else "")
        return (f"the engine {how} unexpectedly during the analysis" + (f": {detail}" if detail else "")
                + "; it is started again for the next analysis")


class WarmEngine:
    """Keeps one warm worker: started with the first request, reused after, started again when it
    has ended (cancelled, crashed). ``command`` builds the worker's command line."""

    def __init__(self, command: Callable[[], Sequence[str]], env: Optional[dict[str, str]] = None,
                 cwd: Optional[str] = None):
        self.command = command
        self.env = env
        self.cwd = cwd
        self.worker: Optional[WarmWorker] = None
        self.starts = 0
        self._ids = itertools.count(1)

    def submit(self, arguments: Sequence[str]) -> WarmRun:
        """Run the command line ``arguments`` (``analyze|rescore ...``) on the worker. Raises OSError
        when no worker can be started."""
        request = request_from_arguments(arguments, f"r{next(self._ids)}")
        for attempt in range(2):
            worker = self._worker()
            try:
                return worker.submit(request)
            except OSError as error:             # it ended between the check and the request: once more
                worker.ended.wait(KILL_GRACE_S)
                worker.kill()
                if attempt:
                    raise WarmStartError(worker._end_message(worker.returncode, not worker.ready.is_set())
                                         if worker.ended.is_set() else str(error)) from None
        raise AssertionError("unreachable")

    def _worker(self) -> WarmWorker:
        command = [str(c) for c in self.command()]
        if self.worker is not None and self.worker.alive() and self.worker.command != command:
            self.worker.shutdown()                   # the engine moved (installed, updated): a new worker
        if self.worker is None or not self.worker.alive() or self.worker.command != command:
            self.worker = WarmWorker(command, self.env, self.cwd).start()
            self.starts += 1
            # the worker ends at the end of its input: when this engine goes, or this process ends
            weakref.finalize(self, _close_quietly, self.worker.stdin)
        return self.worker

    @property
    def pid(self) -> Optional[int]:
        return self.worker.pid if self.worker is not None and self.worker.alive() else None

    def stop(self) -> None:
        """End the worker (module closed)."""
        if self.worker is not None:
            self.worker.shutdown()
            self.worker = None


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except (OSError, ValueError):
        pass

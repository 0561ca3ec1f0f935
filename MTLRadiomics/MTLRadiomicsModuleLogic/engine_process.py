"""The engine's command line run as a background process: start, poll, cancel.

The engine (``mtl-radiomics analyze|rescore ... --progress json``) prints one JSON object per stage on
stdout and, on a user error, one line ``mtl-radiomics: error: ...`` on stderr with exit status 2.
Two reader threads move stdout and stderr lines into a queue so that the caller (a Qt timer in
Slicer, a loop in tests) can poll without ever blocking. Cancel kills the whole process group: in
Slicer the interpreter is started through the ``PythonSlicer`` launcher, which runs the real Python
as a child process, so killing only the launcher would leave the engine running.

No Slicer and no Qt import here.
"""

from __future__ import annotations

import enum
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

ERROR_PREFIX = "mtl-radiomics: error: "
INTERNAL_ERROR_PREFIX = "mtl-radiomics: internal error: "

# Run the engine from an explicit folder: the first argument after -c is the folder that holds
# the MTLRadiomicsLib package (then any folders of packages for the engine only, joined with
# os.pathsep), put first on sys.path, so the child process imports the same engine as the caller
# even when a launcher resets PYTHONPATH.
BOOTSTRAP = ("import os, sys; sys.path[:0] = sys.argv.pop(1).split(os.pathsep); "
             "from MTLRadiomicsLib.cli import main; raise SystemExit(main())")


class ProcessState(enum.Enum):
    """Where a run stands."""

    NOT_STARTED = "not started"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (ProcessState.SUCCEEDED, ProcessState.FAILED, ProcessState.CANCELLED)


@dataclass
class ProgressEvent:
    """One progress line of the engine: stage name, fraction done (0-1), message for the user."""

    stage: str
    fraction: float
    message: str = ""
    elapsed_s: float = 0.0
    out: Optional[str] = None

    @classmethod
    def from_line(cls, line: str) -> Optional["ProgressEvent"]:
        """Parse one stdout line; None when it is not a progress object."""
        line = line.strip()
        if not line.startswith("{"):
            return None
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict) or "stage" not in data:
            return None
        return cls(stage=str(data["stage"]), fraction=float(data.get("fraction", 0.0)),
                   message=str(data.get("message", "")), elapsed_s=float(data.get("elapsed_s", 0.0)),
                   out=data.get("out"))


@dataclass
class PollResult:
    """What happened since the last poll."""

    state: ProcessState
    events: list[ProgressEvent] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    returncode: Optional[int] = None          # the exit status once the process has ended

    @property
    def last_event(self) -> Optional[ProgressEvent]:
        return self.events[-1] if self.events else None


def engine_command(python: str, engine_root: str | Path, arguments: Sequence[str],
                   package_folders: Sequence[str | Path] = ()) -> list[str]:
    """The command line that runs ``mtl-radiomics ARGUMENTS`` with ``python`` and the engine found in
    ``engine_root`` (the folder holding the MTLRadiomicsLib package); ``package_folders`` come next
    on the engine's path, before the interpreter's own packages."""
    path = os.pathsep.join([str(engine_root), *[str(f) for f in package_folders]])
    return [str(python), "-c", BOOTSTRAP, path, *[str(a) for a in arguments]]


class EngineProcess:
    """One run of the engine in a background process.

    ``start()`` launches it, ``poll()`` returns new progress events without blocking, ``cancel()``
    kills the process and everything it started, ``wait()`` blocks (tests, batch use).
    """

    KILL_GRACE_S = 3.0

    def __init__(self, command: Sequence[str], env: Optional[dict[str, str]] = None,
                 cwd: Optional[str | Path] = None):
        self.command = [str(c) for c in command]
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd is not None else None
        self._process: Optional[subprocess.Popen] = None
        self._queue: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._stderr: list[str] = []
        self._stdout_other: list[str] = []
        self._lock = threading.Lock()
        self._state = ProcessState.NOT_STARTED
        self._cancelled = False
        self.last_event: Optional[ProgressEvent] = None
        self.started_at: Optional[float] = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "EngineProcess":
        if self._process is not None:
            raise RuntimeError("the engine process was already started")
        kwargs = new_group_options()                     # own process group: cancel kills it all
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=self.env, cwd=self.cwd, text=True, encoding="utf-8", errors="replace", bufsize=1,
            **kwargs)
        self.started_at = time.monotonic()
        self._state = ProcessState.RUNNING
        for stream, handler in ((self._process.stdout, self._stdout_line),
                                (self._process.stderr, self._stderr_line)):
            thread = threading.Thread(target=self._read, args=(stream, handler), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> Optional[int]:
        return self._process.returncode if self._process is not None else None

    @property
    def state(self) -> ProcessState:
        return self._state

    def is_running(self) -> bool:
        return self._state == ProcessState.RUNNING

    def poll(self) -> PollResult:
        """New progress events and log lines since the last call; never blocks."""
        events: list[ProgressEvent] = []
        lines: list[str] = []
        if self._process is not None and self._state == ProcessState.RUNNING:
            code = self._process.poll()
            if code is not None:
                self._join_readers()
                self._state = ProcessState.SUCCEEDED if code == 0 else ProcessState.FAILED
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                break
            if kind == "event":
                events.append(item)
                self.last_event = item
            else:
                lines.append(item)
        return PollResult(self._state, events, lines, self.returncode)

    def wait(self, timeout: Optional[float] = None) -> ProcessState:
        """Block until the process ends (or ``timeout`` seconds pass); returns the state."""
        if self._process is None:
            return self._state
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self._state
        self._join_readers()
        if self._state == ProcessState.RUNNING:
            self._state = ProcessState.SUCCEEDED if self._process.returncode == 0 else ProcessState.FAILED
        return self._state

    def cancel(self) -> Optional[int]:
        """Kill the process and all its children; returns the exit code (never blocks long)."""
        if self._process is None:
            self._state = ProcessState.CANCELLED
            return None
        if self._process.poll() is None:
            self._cancelled = True
            self._kill_tree(graceful=True)
            try:
                self._process.wait(timeout=self.KILL_GRACE_S)
            except subprocess.TimeoutExpired:
                self._kill_tree(graceful=False)
                self._process.wait(timeout=self.KILL_GRACE_S)
        # children of the launcher may outlive it for a moment: make sure the group is gone
        self._kill_tree(graceful=False)
        self._join_readers()
        if self._cancelled or self._state == ProcessState.RUNNING:
            self._state = ProcessState.CANCELLED
        return self._process.returncode

    # ------------------------------------------------------------------ results
    @property
    def stderr_text(self) -> str:
        with self._lock:
            return "\n".join(self._stderr)

    def error_message(self) -> str:
        """The engine's one-line error for the user, else the last lines of stderr."""
        with self._lock:
            lines = list(self._stderr)
        for line in lines:
            if line.startswith(ERROR_PREFIX):
                return line[len(ERROR_PREFIX):].strip()
        for line in lines:
            if line.startswith(INTERNAL_ERROR_PREFIX):
                return "internal error: " + line[len(INTERNAL_ERROR_PREFIX):].strip()
        tail = [line for line in lines if line.strip()][-5:]
        if tail:
            return "\n".join(tail)
        code = self.returncode
        return f"the engine stopped with exit status {code}" if code else ""

    # ------------------------------------------------------------------ internals
    def _read(self, stream, handler) -> None:
        try:
            for line in iter(stream.readline, ""):
                handler(line.rstrip("\r\n"))
        except (OSError, ValueError):
            pass                                    # the pipe was closed by a kill
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _stdout_line(self, line: str) -> None:
        event = ProgressEvent.from_line(line)
        if event is not None:
            self._queue.put(("event", event))
        elif line.strip():
            with self._lock:
                self._stdout_other.append(line)
            self._queue.put(("log", line))

    def _stderr_line(self, line: str) -> None:
        with self._lock:
            self._stderr.append(line)
        if line.strip():
            self._queue.put(("log", line))

    def _join_readers(self) -> None:
        for thread in self._threads:
            thread.join(timeout=5.0)

    def _kill_tree(self, graceful: bool) -> None:
        if self._process is not None:
            kill_process_tree(self._process, graceful)


def new_group_options() -> dict:
    """Popen options that start a process in its own process group (so that it can be killed with
    everything it starts)."""
    if os.name == "nt":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {"start_new_session": True}


def kill_process_tree(process: subprocess.Popen, graceful: bool) -> None:
    """SIGTERM (``graceful``) or SIGKILL to the process group of ``process`` (started with
    :func:`new_group_options`); taskkill of the tree on Windows."""
    pid = process.pid
    if os.name == "nt":
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(pid)], capture_output=True,
                       creationflags=flags, check=False)
        if process.poll() is None:
            process.kill()
        return
    try:
        os.killpg(pid, signal.SIGTERM if graceful else signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def process_group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process of the group ``pgid`` exists (POSIX; False elsewhere)."""
    if os.name == "nt":
        return False
    proc = Path("/proc")
    if proc.is_dir():
        return any(_proc_state(entry)[1] == pgid and _proc_state(entry)[0] not in ("Z", "X", "")
                   for entry in proc.iterdir() if entry.name.isdigit())
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_alive(pid: int) -> bool:
    """True while the process ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    if os.name == "nt":
        return False
    entry = Path("/proc") / str(pid)
    if Path("/proc").is_dir():
        return _proc_state(entry)[0] not in ("Z", "X", "")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_state(entry: Path) -> tuple[str, int]:
    """(state letter, process group) from /proc/PID/stat; ('', -1) when the process is gone."""
    try:
        text = (entry / "stat").read_text()
    except OSError:
        return "", -1
    fields = text[text.rfind(")") + 2:].split()     # after "pid (comm) "
    try:
        return fields[0], int(fields[2])
    except (IndexError, ValueError):
        return "", -1


def current_python() -> str:
    """The Python that runs the engine: Slicer's ``PythonSlicer`` inside Slicer, else this one."""
    import shutil

    if _inside_slicer_application():
        found = shutil.which("PythonSlicer")
        if found:
            return found
        raise RuntimeError("PythonSlicer was not found next to Slicer; the analysis cannot run "
                           "in the background")
    return sys.executable


def _inside_slicer_application() -> bool:
    slicer = sys.modules.get("slicer")
    return slicer is not None and hasattr(slicer, "app")

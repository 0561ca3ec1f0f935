"""Run the `mtl-radiomics` command line as a real process, as a user or front end would, or called
in this process (the same parser, handlers, messages and exit status, without the seconds each new
interpreter spends starting and importing)."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, timeout: float = 300, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """`mtl-radiomics ARGS...` with this interpreter; returns the finished process (text output).
    ``env``: variables added to the environment."""
    return subprocess.run([sys.executable, "-m", "MTLRadiomicsLib.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT,
                          env={**os.environ, **(env or {})})


def run_cli_here(*args: str, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """`mtl-radiomics ARGS...` through the command line's ``main`` in this process: its exit status
    (also an argparse exit), stdout and stderr as a finished process would give them. ``env``:
    variables set for the call only."""
    from MTLRadiomicsLib.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as stop:                  # argparse: --help (0) and usage errors (2)
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["mtl-radiomics", *map(str, args)], code, out.getvalue(), err.getvalue())


def assert_one_line_error(process: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: exit status 2, one error line on stderr, no traceback."""
    assert process.returncode == 2, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert "Traceback" not in process.stderr
    assert lines[0].startswith("mtl-radiomics: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

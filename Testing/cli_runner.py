"""Run the `mtl-radiomics` command line as a real process, as a user or front end would."""

from __future__ import annotations

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


def assert_one_line_error(process: subprocess.CompletedProcess, *fragments: str) -> None:
    """A refused command: exit status 2, one error line on stderr, no traceback."""
    assert process.returncode == 2, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, process.stderr
    assert "Traceback" not in process.stderr
    assert lines[0].startswith("mtl-radiomics: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

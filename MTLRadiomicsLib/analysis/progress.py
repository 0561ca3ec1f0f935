"""Progress of long work: a bar on the terminal, or one JSON line per stage for front ends.

JSON lines go to stdout, one object each: {"stage": ..., "fraction": 0.0-1.0, "message": ...};
the last line of a finished run has stage "done" and the output folder. ``fields`` are added to
every JSON line (``mtl-radiomics serve`` tags each line with its request's id).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Optional, TextIO


class Progress:
    """Report stages of a run. ``mode``: 'bar' (tqdm on stderr), 'json' (stdout) or 'none'."""

    def __init__(self, mode: str = "bar", stream: Optional[TextIO] = None, fields: Optional[dict] = None):
        if mode not in ("bar", "json", "none"):
            raise ValueError("progress mode must be 'bar', 'json' or 'none'")
        self.mode = mode
        self.stream = stream
        self.fields = dict(fields or {})
        self._bar = None
        self._started = time.perf_counter()
        self._last = 0.0

    def stage(self, name: str, fraction: float, message: str = "") -> None:
        fraction = max(self._last, min(1.0, float(fraction)))
        self._last = fraction
        if self.mode == "json":
            line = {**self.fields, "stage": name, "fraction": round(fraction, 3), "message": message,
                    "elapsed_s": round(time.perf_counter() - self._started, 2)}
            print(json.dumps(line), file=self.stream or sys.stdout, flush=True)
        elif self.mode == "bar":
            from tqdm import tqdm

            if self._bar is None:
                self._bar = tqdm(total=100, file=self.stream or sys.stderr, leave=False,
                                 bar_format="{l_bar}{bar}| {elapsed}")
            self._bar.set_description_str(message or name)
            self._bar.n = int(round(fraction * 100))
            self._bar.refresh()

    def done(self, message: str = "", **extra) -> None:
        if self.mode == "json":
            line = {**self.fields, "stage": "done", "fraction": 1.0, "message": message,
                    "elapsed_s": round(time.perf_counter() - self._started, 2)} | extra
            print(json.dumps(line), file=self.stream or sys.stdout, flush=True)
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

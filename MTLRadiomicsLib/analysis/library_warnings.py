"""Warnings of the libraries an analysis uses (pydicom, highdicom, ...), kept with the analysis.

Python warnings and the libraries' logged warnings raised while a case is analysed go into that
case's warnings as one line each, without file paths, and not to the terminal; a warning repeated
for every slice of a series is listed once with its count. Warnings meant for developers
(deprecations) go where they went before; the active warning filters are left as they are.
"""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from pathlib import PurePath
from typing import Iterator

LIBRARY_LOGGERS = ("pydicom", "highdicom", "slicerio")
# Warnings about the code rather than the case: shown as before, not put into the result.
DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning, ResourceWarning)

# A file path: absolute (/a/b, ~/a, C:\a\b) or starting with ./ or ../; not a URL, not "and/or".
_PATH = re.compile(r"(?<![^\s'\"(\[<=])(?:[A-Za-z]:[\\/]|~[\\/]|\.{1,2}[\\/]|/)[^\s'\"()\[\]<>,;]*")


def one_line(text: str) -> str:
    """``text`` on one line, each file path replaced by its last component."""
    def last_part(match: re.Match) -> str:
        parts = [part for part in re.split(r"[\\/]", match.group(0)) if part]
        return parts[-1] if parts else ""

    return _PATH.sub(last_part, " ".join(str(text).split()))


def _source(filename: str) -> str:
    """The package a warning came from: the folder after site-packages, else the file's name."""
    parts = PurePath(filename).parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return PurePath(parts[parts.index(marker) + 1]).stem
    if "MTLRadiomicsLib" in parts:
        return "MTLRadiomics"
    return PurePath(filename).stem or "python"


class CapturedWarnings:
    """Adds warning lines to a list, counting repeats in place.

    A message may come both as a warning and as a log record (pydicom sends both); each channel is
    counted on its own and the larger count is shown."""

    def __init__(self, into: list[str]) -> None:
        self.into = into
        self.shown: dict[str, str] = {}                   # line -> as it stands in ``into`` (with its count)
        self.counts: dict[str, dict[str, int]] = {}      # line -> channel -> count

    def add(self, channel: str, source: str, message: str, category: type[Warning] = UserWarning) -> None:
        kind = "" if issubclass(category, UserWarning) else f" ({category.__name__})"
        line = f"{source}{kind}: {one_line(message)}"
        counts = self.counts.setdefault(line, {})
        counts[channel] = counts.get(channel, 0) + 1
        count = max(counts.values())
        shown = line if count == 1 else f"{line} ({count} times)"
        if line in self.shown and self.shown[line] in self.into:      # the list may have been reordered
            self.into[self.into.index(self.shown[line])] = shown
        else:
            self.into.append(shown)
        self.shown[line] = shown

    def library_last(self) -> None:
        """Move the libraries' lines behind the analysis's own warnings (which matter more), in place."""
        mine = set(self.shown.values())
        self.into.sort(key=lambda line: line in mine)


class _LogHandler(logging.Handler):
    def __init__(self, collector: CapturedWarnings) -> None:
        super().__init__(logging.WARNING)
        self.collector = collector

    def emit(self, record: logging.LogRecord) -> None:
        self.collector.add("log", record.name.split(".")[0], record.getMessage())


@contextmanager
def capture_warnings(into: list[str]) -> Iterator[CapturedWarnings]:
    """While the block runs, put Python warnings and the libraries' logged warnings into ``into``
    (as they happen, so that a report written inside the block shows them)."""
    collector = CapturedWarnings(into)
    handler = _LogHandler(collector)
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    with warnings.catch_warnings():          # also forgets which warnings were shown before
        previous = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, DEVELOPER_WARNINGS):
                previous(message, category, filename, lineno, file, line)
            else:
                collector.add("warning", _source(filename), str(message), category)

        warnings.showwarning = show
        for logger in loggers:
            logger.addHandler(handler)
        try:
            yield collector
        finally:
            for logger in loggers:
                logger.removeHandler(handler)

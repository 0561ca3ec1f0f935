"""A warm engine: one long-lived process that loads each model once and answers requests given as
JSON lines (``mtl-radiomics serve``); the last scans read are kept too (a rescore after an analysis
does not read the DICOM series again).

Requests, one JSON object per line:

- ``{"id": ..., "command": "analyze", "pet": PATH, "out": DIR, "options": {...}}``
- ``{"id": ..., "command": "rescore", "pet": PATH, "mask": EDITED, "out": DIR, "options": {...}}``
- ``{"id": ..., "command": "report", "pet": PATH, "out": DIR, "options": {...}}``: the report of the
  analysis folder DIR written with ``no_report`` (``mtl-radiomics report``; PET options only)
- ``{"id": ..., "command": "ping"}`` and ``{"id": ..., "command": "shutdown"}``

``options`` holds what the command line takes, named like its options (``mtv_method``,
``fill_holes``, ``point``, ``box``, ``lps``, ``weight``, ``series``, ``segment``, ``no_report``,
``overwrite``, ...) or like the fields of :class:`AnalysisOptions` (``series_uid``,
``mask_segment``, ``report``, ``point_system``, ``threshold``); they are checked as the command line
checks them. Answers: the progress lines of ``--progress json``, each with the request's ``id``,
then one result line: ``{"id", "status": "done", "out", "result_json", "result"}`` (``result``: the
content of result.json) or ``{"id", "status": "error", "error": one line}``. A bad request gets an
error line and the server goes on; end of input or ``shutdown`` ends it. The first line the server
writes is ``{"status": "ready", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.errors import MTLRadiomicsError, ModelFileError

COMMANDS = ("analyze", "rescore", "report", "ping", "shutdown")
ALIASES = {"series_uid": "series", "mask_segment": "segment"}     # AnalysisOptions field -> option
TOP_LEVEL = ("pet", "out", "mask")                                 # given beside "options", not in it
IGNORED = ("progress",)                                            # always JSON lines here
MAX_CACHED_MODELS = 2


class RequestError(MTLRadiomicsError):
    """A request the server cannot run as given (bad JSON, unknown command, bad option)."""


class _RequestParser(argparse.ArgumentParser):
    """The command line's parser, raising instead of exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise RequestError(message)


def _parser(command: str) -> argparse.ArgumentParser:
    """The options of ``analyze``, ``rescore`` or ``report``, as the command line defines them."""
    from MTLRadiomicsLib.commands.analysis_options import (add_location_options, add_model_options,
                                                            add_mtv_options)
    from MTLRadiomicsLib.commands.pet_options import add_pet_options
    from MTLRadiomicsLib.commands.report import add_report_options

    parser = _RequestParser(prog=f"serve {command}", add_help=False)
    add_pet_options(parser)
    if command == "report":
        add_report_options(parser)
        return parser
    if command == "analyze":
        add_location_options(parser)
        add_mtv_options(parser)
    else:
        parser.add_argument("--mask", required=True)
        parser.add_argument("--segment")
    add_model_options(parser)
    return parser


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def _tokens(options: dict[str, Any]) -> tuple[list[str], Optional[float]]:
    """Command-line tokens for ``options``, and the network threshold (no option on the command line)."""
    tokens: list[str] = []
    threshold = None
    for key, value in options.items():
        if not isinstance(key, str) or not key.replace("_", "").replace(".", "").isalnum():
            raise RequestError(f"unknown option {key!r}")
        if key in TOP_LEVEL:
            raise RequestError(f"give {key!r} beside \"options\", not in it")
        if key in IGNORED:
            continue
        if key == "threshold":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
                raise RequestError("threshold must be a number between 0 and 1")
            threshold = float(value)
            continue
        if key == "report":
            if value is False:
                tokens.append("--no-report")
            continue
        if key == "point_system":
            if str(value).upper() not in ("RAS", "LPS"):
                raise RequestError("point_system must be RAS or LPS")
            if str(value).upper() == "LPS":
                tokens.append("--lps")
            continue
        flag = "--" + ALIASES.get(key, key).replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            tokens.append(flag)
        elif isinstance(value, (list, tuple)):
            flat = [v for item in value for v in (item if isinstance(item, (list, tuple)) else [item])]
            tokens += [flag, *(str(v) for v in flat)]
        else:
            tokens.append(f"{flag}={value}")
    return tokens, threshold


def parse_request(request: dict[str, Any]) -> tuple[AnalysisOptions, bool]:
    """The analysis options and ``overwrite`` of an analyze, rescore or report request; RequestError
    (or the command line's own errors) when they are not valid."""
    from MTLRadiomicsLib.commands.analysis_options import options_from_args
    from MTLRadiomicsLib.commands.report import report_options

    command = request["command"]
    for key in ("pet", "out") + (("mask",) if command == "rescore" else ()):
        if not isinstance(request.get(key), str) or not request[key]:
            raise RequestError(f"a {command} request needs {key!r} (a path)")
    options = request.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError("\"options\" must be an object")
    tokens, threshold = _tokens(options)
    argv = [f"--out={request['out']}", *tokens]
    if command == "rescore":
        argv.append(f"--mask={request['mask']}")
    argv += ["--", request["pet"]]                 # a path that starts with '-' is still the PET
    parser = _PARSERS.setdefault(command, _parser(command))
    args = parser.parse_args(argv)
    analysis = report_options(args) if command == "report" else options_from_args(args)
    if threshold is not None:
        analysis.threshold = threshold
    return analysis, bool(args.overwrite)


class ModelCache:
    """Loaded models by resolved folder and weights (card SHA-256, and the files' size and time, so
    that a model replaced on disk is loaded again); at most ``size`` kept, the least recent dropped."""

    def __init__(self, size: int = MAX_CACHED_MODELS, loader: Optional[Callable[[Path], Any]] = None):
        self.size = size
        self.loader = loader
        self.loads = 0
        self._models: OrderedDict[tuple, Any] = OrderedDict()

    def key(self, choice: Optional[str | Path]) -> tuple:
        from MTLRadiomicsLib.model.model_file import CARD_FILE, read_card, sha256_of
        from MTLRadiomicsLib.model.registry import resolve_model

        folder = resolve_model(choice)
        if not folder.exists():
            raise ModelFileError(f"no model at {folder}; pass --model FOLDER (a folder with model.json and "
                                 "model.safetensors)")
        folder = folder.resolve()
        card = read_card(folder)
        weights = folder / card.weights_file
        try:
            stats = tuple((s.st_size, s.st_mtime_ns) for s in (weights.stat(), (folder / CARD_FILE).stat()))
        except OSError:
            stats = ()
        sha = card.weights_sha256 or (sha256_of(weights) if weights.is_file() else "")
        return str(folder), sha, stats

    def get(self, choice: Optional[str | Path]):
        """The loaded model for ``choice`` (a folder or an installed name; None: the default)."""
        key = self.key(choice)
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        if self.loader is None:
            from MTLRadiomicsLib.model.model_file import load_model

            loaded = load_model(key[0])
        else:
            loaded = self.loader(Path(key[0]))
        self.loads += 1
        for stale in [k for k in self._models if k[0] == key[0]]:
            del self._models[stale]                # the same folder with other weights
        self._models[key] = loaded
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return loaded

    def folders(self) -> list[str]:
        return [k[0] for k in self._models]


def one_line(text: str) -> str:
    """``text`` on one line."""
    return " ".join(str(text).split())


class Server:
    """Answers requests read from ``stdin`` on ``stdout`` (see the module's docstring)."""

    def __init__(self, stdin: TextIO, stdout: TextIO, cache: Optional[ModelCache] = None,
                 log: Optional[TextIO] = None, pets: Optional[Callable] = None):
        from MTLRadiomicsLib.analysis.pet_cache import PetCache

        self.stdin = stdin
        self.stdout = stdout
        self.cache = cache or ModelCache()
        self.pets = pets if pets is not None else PetCache()
        self.log = log if log is not None else sys.stderr
        self.requests = 0

    def write(self, line: dict[str, Any]) -> None:
        self.stdout.write(json.dumps(line, default=str) + "\n")
        self.stdout.flush()

    def run(self) -> int:
        """Serve until ``shutdown`` or the end of the input; returns the exit status (0)."""
        self.write({"status": "ready", "pid": os.getpid(), "version": __version__})
        for raw in self.stdin:
            if not raw.strip():
                continue
            if not self.handle(raw):
                break
        return 0

    def handle(self, raw: str) -> bool:
        """Answer one request line; False after ``shutdown``."""
        try:
            request = json.loads(raw)
        except ValueError as error:
            self.write({"id": None, "status": "error", "error": f"not a JSON object: {one_line(error)}"})
            return True
        if not isinstance(request, dict):
            self.write({"id": None, "status": "error", "error": "a request must be a JSON object"})
            return True
        rid = request.get("id")
        command = request.get("command")
        if command == "shutdown":
            self.write({"id": rid, "status": "bye"})
            return False
        if command == "ping":
            self.write({"id": rid, "status": "pong", "pid": os.getpid(), "version": __version__,
                        "model_loads": self.cache.loads, "models": self.cache.folders(), "requests": self.requests,
                        "pet_reads": getattr(self.pets, "reads", None)})
            return True
        if command not in COMMANDS:
            self.write({"id": rid, "status": "error",
                        "error": f"unknown command {command!r}; one of {', '.join(COMMANDS)}"})
            return True
        self.requests += 1
        try:
            self.write(self.analyse(rid, request))
        except MTLRadiomicsError as error:
            self.write({"id": rid, "status": "error", "error": one_line(error)})
        except Exception as error:  # the request failed, the server goes on
            traceback.print_exc(file=self.log)
            self.write({"id": rid, "status": "error",
                        "error": one_line(f"internal error: {type(error).__name__}: {error}")})
        return True

    def analyse(self, rid: Any, request: dict[str, Any]) -> dict[str, Any]:
        """Run one analyze, rescore or report request with the cached model and scans; the result line."""
        from MTLRadiomicsLib.analysis.progress import Progress

        options, overwrite = parse_request(request)
        progress = Progress("json", stream=self.stdout, fields={"id": rid})
        if request["command"] == "report":
            from MTLRadiomicsLib.analysis.folder_report import report_folder

            report_folder(request["pet"], request["out"], options, progress, overwrite=overwrite,
                          pet_reader=self.pets)
        else:
            self._analyse(request, options, overwrite, progress)
        result_path = Path(request["out"]) / "result.json"
        return {"id": rid, "status": "done", "out": str(request["out"]), "result_json": str(result_path),
                "result": json.loads(result_path.read_text())}

    def _analyse(self, request: dict[str, Any], options: AnalysisOptions, overwrite: bool, progress) -> None:
        from MTLRadiomicsLib.analysis.engine import analyze

        loaded = self.cache.get(options.model)
        analyze(request["pet"], request["out"], options, progress, overwrite=overwrite,
                edited_mask=request.get("mask") if request["command"] == "rescore" else None, loaded=loaded,
                pet_reader=self.pets)

"""`mtl-radiomics serve`: a warm engine answering analyze and rescore requests as JSON lines."""

from __future__ import annotations

import argparse
import os
import sys


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="a long-lived engine: analyze and rescore requests as JSON lines on stdin",
        description="Read requests, one JSON object per line, on stdin and answer on stdout: "
                    '{"id": ..., "command": "analyze", "pet": PATH, "out": DIR, "options": {...}}, '
                    '"rescore" (with "mask": EDITED), "ping" and "shutdown". Each model is loaded once and '
                    "kept. The answers are the progress lines of --progress json tagged with the request's "
                    'id, then {"id", "status": "done", "out", "result_json", "result"} or {"id", "status": '
                    '"error", "error"}. options take the options of analyze and rescore by their names '
                    '(mtv_method, fill_holes, point, box, lps, model, device, samples, seed, weight, ...).')
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.analysis.server import Server

    protocol = _protocol_stream()
    return Server(sys.stdin, protocol).run()


def _protocol_stream():
    """The answers get stdout to themselves: whatever else would be written there (a library's
    print, C code) goes to stderr, so that every stdout line is one JSON object."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return protocol

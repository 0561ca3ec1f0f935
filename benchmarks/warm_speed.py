"""Section 7 of ``benchmarks.speed``: the warm engine (``mtl-radiomics serve``) against today's path of
one process per run, on the same scan in the same run.

Cold: `analyze`, then `rescore` of its MTV, each a fresh process as a user runs them (in-process calls
when the mode says so: the smoke mode). Warm: one `serve` process; the time until it is ready, the
first analysis (it loads the model and reads the scan), further analyses of the same scan (median),
then rescores of the analysis's MTV (median): each from the request sent to the result line read.
The warm answers must give the cold numbers (scores and metrics).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
GOALS_S = {"warm_analyze_s": 3.0, "warm_rescore_s": 2.0, "cold_analyze_s": 8.0}    # issue 12, on this CPU


@dataclass(frozen=True)
class WarmBench:
    """What to time: ``input`` ('sts_auto': STS_001, automatic localisation; 'demo': the demo
    sample), ``repeats`` warm analyses after the first and as many rescores."""

    input: str = "sts_auto"
    repeats: int = 2


def _cli(arguments: Sequence[str], fresh_process: bool) -> float:
    """Wall seconds of one `mtl-radiomics` command."""
    start = time.perf_counter()
    if fresh_process:
        done = subprocess.run([sys.executable, "-m", "MTLRadiomicsLib.cli", *arguments], capture_output=True,
                              text=True, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"mtl-radiomics {arguments[0]} failed: {done.stderr.strip()[-2000:]}")
    else:
        from MTLRadiomicsLib.cli import main

        if main(list(arguments)) != 0:
            raise RuntimeError(f"mtl-radiomics {arguments[0]} failed")
    return time.perf_counter() - start


class _Server:
    """A `serve` process, one request at a time."""

    def __init__(self) -> None:
        start = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "MTLRadiomicsLib.cli", "serve"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, cwd=ROOT, bufsize=1)
        ready = self._line()
        if ready.get("status") != "ready":
            raise RuntimeError(f"serve did not start: {ready}")
        self.ready_s = time.perf_counter() - start
        self.ids = 0

    def _line(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("serve ended")
        return json.loads(line)

    def run(self, command: str, **request) -> tuple[float, dict]:
        """Wall seconds until the result line, and the result (result.json)."""
        self.ids += 1
        assert self.process.stdin is not None
        start = time.perf_counter()
        self.process.stdin.write(json.dumps({"id": self.ids, "command": command, **request}) + "\n")
        self.process.stdin.flush()
        while True:
            line = self._line()
            if line.get("id") == self.ids and "status" in line:
                break
        seconds = time.perf_counter() - start
        if line["status"] != "done":
            raise RuntimeError(f"serve {command} failed: {line.get('error')}")
        return seconds, line["result"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"command": "shutdown"}) + "\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)


def warm_speed(bench: WarmBench, pet: Path, point: Optional[Sequence[float]], model: Path, mtv_method: str,
               samples: int, work: Path, fresh_process: bool, log: Callable[[str], None]) -> dict:
    """Cold and warm analyze and rescore of ``pet`` with ``model``; seconds, ratios, stage times."""
    options = {"model": str(model), "samples": samples, "mtv_method": mtv_method, "device": "cpu",
               "overwrite": True, **({"point": list(point)} if point is not None else {})}
    flags = ["--model", str(model), "--samples", str(samples), "--device", "cpu", "--progress", "none"]
    location = ["--point", *(f"{v:.3f}" for v in point)] if point is not None else []
    cold_out, cold_rescore = work / "cold", work / "cold_rescore"
    cold_analyze_s = _cli(["analyze", str(pet), "--out", str(cold_out), "--mtv-method", mtv_method,
                           *location, *flags], fresh_process)
    mask = cold_out / "mtv.nii.gz"
    cold_rescore_s = _cli(["rescore", str(pet), "--mask", str(mask), "--out", str(cold_rescore), *flags],
                          fresh_process)
    log(f"  cold: analyze {cold_analyze_s:.1f} s, rescore {cold_rescore_s:.1f} s")

    server = _Server()
    try:
        first_s, _ = server.run("analyze", pet=str(pet), out=str(work / "warm0"), options=options)
        analyses = [server.run("analyze", pet=str(pet), out=str(work / f"warm{n + 1}"), options=options)
                    for n in range(bench.repeats)]
        rescore_options = {k: v for k, v in options.items() if k not in ("mtv_method", "point")}
        # As the Slicer module asks: no report with the rescore; Export asks for it afterwards.
        rescores = [server.run("rescore", pet=str(pet), mask=str(mask), out=str(work / f"rescore{n}"),
                               options={**rescore_options, "no_report": True}) for n in range(bench.repeats)]
        report_s, _ = server.run("report", pet=str(pet), out=str(work / f"rescore{bench.repeats - 1}"), options={})
        with_report_s, with_report = server.run("rescore", pet=str(pet), mask=str(mask), out=str(work / "rescore_r"),
                                                options=rescore_options)
    finally:
        server.close()
    warm_analyze_s = statistics.median(s for s, _ in analyses)
    warm_rescore_s = statistics.median(s for s, _ in rescores)
    log(f"  warm: ready {server.ready_s:.1f} s, first analyze {first_s:.1f} s, analyze {warm_analyze_s:.1f} s, "
        f"rescore {warm_rescore_s:.1f} s (report at export {report_s:.1f} s; with its report {with_report_s:.1f} s)")
    cold = json.loads((cold_out / "result.json").read_text())
    cold_re = json.loads((cold_rescore / "result.json").read_text())
    same = (analyses[-1][1]["scores"] == cold["scores"] and analyses[-1][1]["metrics"] == cold["metrics"]
            and rescores[-1][1]["scores"] == cold_re["scores"] and rescores[-1][1]["metrics"] == cold_re["metrics"])
    figures = {"cold_analyze_s": cold_analyze_s, "cold_rescore_s": cold_rescore_s, "ready_s": server.ready_s,
               "first_analyze_s": first_s, "warm_analyze_s": warm_analyze_s, "warm_rescore_s": warm_rescore_s,
               "warm_report_s": report_s, "warm_rescore_with_report_s": with_report_s}
    return {**figures, "input": bench.input, "repeats": bench.repeats, "fresh_process": fresh_process,
            "analyze_ratio": warm_analyze_s / cold_analyze_s, "rescore_ratio": warm_rescore_s / cold_rescore_s,
            "warm_analyze_stages_s": analyses[-1][1]["timings_s"], "warm_rescore_stages_s": rescores[-1][1]["timings_s"],
            "warm_rescore_with_report_stages_s": with_report["timings_s"],
            "cold_analyze_stages_s": cold["timings_s"], "same_numbers": same,
            "goals_met": {k: figures[k] <= v for k, v in GOALS_S.items()}}


def warm_markdown(w: dict, model: str, input_name: str) -> str:
    if not w:
        return "**7. Warm engine:** not timed in this mode."
    how = "fresh processes" if w["fresh_process"] else "in-process calls (smoke mode)"
    lines = [f"**7. Warm engine** (`mtl-radiomics serve`, {model}, {input_name}; cold: `analyze` and `rescore` as "
             f"{how}; warm: one serve process, median of {w['repeats']} requests; goals: warm analyze <= "
             f"{GOALS_S['warm_analyze_s']:g} s, warm rescore <= {GOALS_S['warm_rescore_s']:g} s, cold analyze <= "
             f"{GOALS_S['cold_analyze_s']:g} s):", "",
             "| | cold (s) | warm (s) | warm / cold |", "|---|---|---|---|",
             f"| analyze | {w['cold_analyze_s']:.1f} | {w['warm_analyze_s']:.1f} | {w['analyze_ratio']:.2f} |",
             f"| rescore of its MTV, as the Slicer module asks (no report) | {w['cold_rescore_s']:.1f} | "
             f"{w['warm_rescore_s']:.1f} | {w['rescore_ratio']:.2f} |",
             *([f"| the report of that rescore, at export (`report`) | - | {w['warm_report_s']:.1f} | - |",
                f"| rescore with its report | {w['cold_rescore_s']:.1f} | {w['warm_rescore_with_report_s']:.1f} | "
                f"{w['warm_rescore_with_report_s'] / w['cold_rescore_s']:.2f} |"] if "warm_report_s" in w else []),
             "", f"The server was ready after {w['ready_s']:.1f} s; its first analysis (model load, scan read) took "
             f"{w['first_analyze_s']:.1f} s. Cold runs write their report (the command line's default). Warm "
             "stages (analyze): "
             + ", ".join(f"{k} {v:.2f}" for k, v in w["warm_analyze_stages_s"].items())
             + "; (rescore): " + ", ".join(f"{k} {v:.2f}" for k, v in w["warm_rescore_stages_s"].items())
             + f". Same scores and metrics warm and cold: {'yes' if w['same_numbers'] else 'NO'}. Goals met: "
             + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in w["goals_met"].items()) + "."]
    return "\n".join(lines)

"""End-to-end speed of `mtl-radiomics analyze` on the CPU for one model, with the stages broken down.

``python -m benchmarks.analyze_speed [--model DIR] [--repeats 3]``: the analysis part of
`benchmarks.speed` alone: the real whole-body scan STS_001 (../shared/data/real, DICOM, with a
point in the tumour, and automatic localisation) and the demo sample (NIfTI, automatic); each run
in a fresh process as a user runs it; wall time (median of repeats) and peak resident memory of the
process; stage times from result.json.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from benchmarks.report import write_section
from benchmarks.speed import MODES, BenchModel, analyze_markdown, analyze_section, prepare_models


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analyze_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            models = {"given": BenchModel("given", Path(args.model).name, Path(args.model))}
        else:
            models = prepare_models(("bundled",), Path(tmp) / "models")
        key = next(iter(models))
        mode = replace(MODES["full"], models=(key,), analyze_inputs={key: ("sts_point", "sts_auto", "demo")},
                       analyze_repeats=args.repeats)
        section = analyze_section(mode, models, Path(tmp), ["cpu"], print)
    body = (analyze_markdown(section) + "\n\nGoal: under 20 s and 3 GB on a 2-core CPU.")
    write_section("analyze end to end (CPU)", body, "python -m benchmarks.analyze_speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

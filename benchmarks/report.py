"""Write a benchmark's section into benchmarks/RESULTS.md with the machine, command and date."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def write_section(name: str, body: str, command: str, results: Path = RESULTS) -> Path:
    """Replace (or add) the section ``## name`` of RESULTS.md."""
    header = f"## {name}"
    stamp = (f"{header}\n\n- Date: {dt.date.today().isoformat()}\n- Machine: {machine()}\n"
             f"- Command: `{command}`\n\n"
             f"{body.strip()}\n")
    text = results.read_text() if results.exists() else "# Benchmark results\n\nFigures measured by the scripts in `benchmarks/`.\n"
    pattern = re.compile(rf"^{re.escape(header)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(stamp + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + stamp
    results.write_text(text.rstrip() + "\n")
    return results

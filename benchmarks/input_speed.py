"""How fast the engine reads PET and makes synthetic data.

``python -m benchmarks.input_speed``: reading the real whole-body DICOM series with SUV
(../shared/data/real STS_001, when present), rasterising its RTSTRUCT, one synthetic whole-body
case, one synthetic lesion crop and a 100-case crop cohort; median of repeats, in seconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

from benchmarks.report import write_section

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "STS_001_wholebody"


def timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask
    from MTLRadiomicsLib.synth import generate_cohort, lesion_crop_case, wholebody_case

    rows = []
    if REAL.exists():
        pet = load_pet(REAL / "dicom")
        rows.append(("read STS_001 DICOM (267 slices) + SUVbw", timed(lambda: load_pet(REAL / "dicom"), 3)))
        rows.append(("rasterise STS_001 RTSTRUCT GTV_Mass", timed(lambda: load_mask(REAL / "rtstruct", pet), 3)))
    rows.append(("synthetic whole-body case (4 x 4 x 3 mm)", timed(lambda: wholebody_case(1), 3)))
    rows.append(("synthetic lesion crop (64^3 at 2 mm)", timed(lambda: lesion_crop_case(1), 5)))
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("synthetic cohort, 100 crops with NIfTI files",
                     timed(lambda: generate_cohort(Path(tmp) / "c", 100, seed=1, progress=False), 1)))
    body = "| task | median time (s) |\n|---|---|\n" + "\n".join(f"| {n} | {t:.2f} |" for n, t in rows)
    print(body)
    write_section("Input and synthetic data speed", body, "python -m benchmarks.input_speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

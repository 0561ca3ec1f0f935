"""The command line's parser is built without the heavy libraries: `mtl-radiomics --help`, `info`
or `models` do not wait for PyTorch or MONAI, and a command imports what it uses when it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "monai", "matplotlib", "highdicom", "scipy"}


def test_building_the_parser_imports_no_heavy_library():
    code = ("import sys; from MTLRadiomicsLib.cli import build_parser; build_parser(); "
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(HEAVY)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_the_mtv_method_names_come_without_the_mtv_code():
    from MTLRadiomicsLib.mtv.lesion import MTV_METHODS as from_lesion
    from MTLRadiomicsLib.mtv.methods import MTV_METHODS

    assert MTV_METHODS is from_lesion and "network" in MTV_METHODS and "suv2.5" in MTV_METHODS

"""Shared fixtures: the real PET data in ../shared/data/real, read in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = (PROJECT_ROOT / ".." / "shared" / "data" / "real").resolve()
STS001 = REAL_DATA / "STS_001_wholebody"
STS005 = REAL_DATA / "STS_005_suv_dicom"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real PET data not found at {path} (the shared data folder sits beside the project)")
    return path


@pytest.fixture(scope="session")
def sts001_dir() -> Path:
    return _require(STS001)


@pytest.fixture(scope="session")
def sts005_dir() -> Path:
    return _require(STS005)


@pytest.fixture(scope="session")
def sts001_expected(sts001_dir: Path) -> dict:
    return json.loads((sts001_dir / "expected.json").read_text())


@pytest.fixture(scope="session")
def sts001_pet(sts001_dir: Path):
    from MTLRadiomicsLib import load_pet

    return load_pet(sts001_dir / "dicom")

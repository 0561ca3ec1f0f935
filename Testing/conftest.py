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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny model with random weights (fixed seed) in a model folder: fast engine runs in tests.

    Its segmentation head is biased to "no tumour anywhere" (a random one would call half the body
    tumour), so its network MTV is empty; tests that need scores choose a classical MTV method."""
    import torch

    from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config, save_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    card = ModelCard(name="tiny-random", architecture={}, intended_use="Test model with random weights.",
                     preprocessing=Preprocessing(spacing_mm=(3.0, 3.0, 3.0), crop_size=(32, 32, 32)))
    network = MultiTaskNet(named_config("tiny"))
    with torch.no_grad():
        network.segmentation.head.bias.fill_(-30.0)
    save_model(network, card, folder)
    return folder


@pytest.fixture(scope="session")
def sts_crops_dir() -> Path:
    return _require(REAL_DATA / "sts_crops")

"""The README says what a physician and a researcher need to know, and says it as the code does it:
the classes of each bundled model, the real-data figures of benchmarks/RESULTS.md, where the
network's field goes, how the scores are seeded, and what is assumed about decay."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def readme() -> str:
    """The README with every run of whitespace as one space."""
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


def results_row(label: str) -> list[str]:
    """The cells of the row of benchmarks/RESULTS.md's real-PET table that starts with ``label``."""
    for line in (ROOT / "benchmarks" / "RESULTS.md").read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| {label} |"):
            return [c.strip() for c in line.strip("|").split("|")]
    raise AssertionError(f"no row {label!r} in RESULTS.md")


@pytest.mark.parametrize("card", sorted((ROOT / "Resources" / "models").glob("*/model.json")),
                         ids=lambda p: p.parent.name)
def test_every_bundled_model_and_the_classes_it_knows(readme, card):
    data = json.loads(card.read_text())
    assert f"`{card.parent.name}` (`{data['name']}`)" in readme
    if data["architecture"].get("classification"):
        for name in data["class_names"]:
            assert f"`{name}`" in readme, name
    else:
        assert "no outcome or pathology head" in readme


def test_real_data_figures_come_from_the_benchmark_results(readme):
    mean_ci, median = results_row("real model, cross-validated (network)")[1:3]
    mean, lo, hi = re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", mean_ci).groups()
    assert f"mean Dice {mean} [95 % CI {lo}, {hi}] (median {median})" in readme
    assert f"SUV ≥ 2.5 {results_row('SUV >= 2.5')[1].split()[0]}" in readme
    summary = readme.split("## Quick start")[0]                  # said before anything else
    assert f"mean Dice of {float(mean):.2f}" in summary and "synthetic phantoms only" in summary


def test_how_the_field_is_placed_and_the_scores_seeded(readme):
    from MTLRadiomicsLib.analysis import engine, field

    assert "MTV's largest 26-connected part" in readme and "analysis/field.py" in readme
    assert "largest" in inspect.getsource(field.place_field)
    assert "start at the lesion's hottest voxel" in readme
    assert "`--seed N`" in readme and "`scores.seed`" in readme and "first 15 hex digits" in readme
    assert "source_hash[:15]" in inspect.getsource(engine)


def test_the_decay_assumptions(readme):
    from MTLRadiomicsLib.pet_input.suv import F18_HALF_LIFE_S

    assert "### Decay: what the engine assumes" in readme
    assert f"F-18's {F18_HALF_LIFE_S} s" in readme
    assert "`START` is assumed" in readme and "`--decay-corrected-to`" in readme

"""The benchmark scripts in their smoke modes: they run end to end, write their RESULTS section and
JSON into a temporary RESULTS file (the real one is untouched), keep other sections, and report
real, finite figures for every model and the ceiling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from benchmarks import accuracy, speed
from benchmarks.report import RESULTS

OTHER_SECTION = "## Some other benchmark\n\n- Date: 2026-01-01\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture(scope="module")
def real_results_before():
    return RESULTS.read_text() if RESULTS.exists() else None


@pytest.fixture(scope="module")
def results_file(tmp_path_factory, real_results_before) -> Path:
    path = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    path.write_text("# Benchmark results\n\n" + OTHER_SECTION)
    return path


@pytest.fixture(scope="module")
def accuracy_run(results_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("accuracy")
    return accuracy.run(accuracy.MODES["smoke"], out, device="cpu", results=results_file, log=lambda line: None)


@pytest.fixture(scope="module")
def speed_run(results_file, accuracy_run):
    return speed.run(speed.MODES["smoke"], results_file, log=lambda line: None)


def test_accuracy_table_has_every_model_and_the_ceiling(accuracy_run, results_file):
    text = results_file.read_text()
    section = text.split("## Accuracy (smoke)", 1)[1].split("\n## ", 1)[0]
    for line in ("- Date: ", "- Machine: ", "- Command: `python -m benchmarks.accuracy --smoke`"):
        assert line in section
    table = [row for row in section.splitlines() if row.startswith("| ")]
    labels = [label for _, label, _ in accuracy_run["rows"]]
    assert len(labels) == 7
    for label in labels:
        assert any(row.startswith(f"| {label} |") for row in table), label
    assert any(row.startswith("| Ceiling: true risk") for row in table)
    assert OTHER_SECTION.strip() in text


def test_accuracy_figures_are_finite_with_intervals_and_ratios(accuracy_run, results_file):
    scores = accuracy_run["scores"]
    expected = {
        "full": {"outcome_auc", "outcome_accuracy", "c_index", "dice", "pathology_auc"},
        "outcome_only": {"outcome_auc", "outcome_accuracy", "c_index"},
        "seg_outcome": {"outcome_auc", "outcome_accuracy", "c_index", "dice"},
        "full_survival": {"outcome_auc", "c_index", "dice", "pathology_auc"},
        "radiomics_logistic": {"outcome_auc", "outcome_accuracy", "c_index", "dice", "pathology_auc"},
        "radiomics_cox": {"outcome_auc", "c_index", "dice", "pathology_auc"},
        "oracle": {"outcome_auc", "outcome_accuracy", "c_index"},
    }
    for key, metrics in expected.items():
        row = scores[key]
        assert metrics <= set(row), (key, set(row))
        for name in metrics:
            value, (lo, hi) = row[name]["value"], row[name]["ci95"]
            assert _finite(value) and _finite(lo) and _finite(hi), (key, name, row[name])
            assert lo <= hi
        if key != "oracle":
            for ratio, metric in (("auc_share_of_ceiling", "outcome_auc"), ("c_index_share_of_ceiling", "c_index")):
                assert _finite(row[ratio]["value"]), (key, ratio)
                assert row[ratio]["value"] == pytest.approx(row[metric]["value"] / scores["oracle"][metric]["value"])
    assert 0.0 <= scores["radiomics_logistic"]["dice"]["value"] <= 1.0
    saved = json.loads((results_file.parent / "accuracy_smoke.json").read_text())
    assert saved["scores"].keys() == scores.keys()
    assert saved["cohort"]["n_test"] == len(saved["test_case_ids"]) > 0
    for facts in saved["facts"]["deep_models"].values():
        assert facts["epochs_run"] >= 1 and facts["parameters"] > 0


def test_medium_mode_selects_every_network_on_its_outcome():
    medium = accuracy.MODES["medium"]
    models = accuracy.models_of(medium)
    assert [m.key for m in models] == ["full", "outcome_only", "seg_outcome", "full_survival", "full_metrics"]
    configs = {m.key: accuracy.run_config(medium, m) for m in models}
    assert {k: c.training.monitor for k, c in configs.items()} == {
        "full": "outcome_auc", "outcome_only": "outcome_auc", "seg_outcome": "outcome_auc",
        "full_survival": "c_index", "full_metrics": "outcome_auc"}
    assert configs["full_metrics"].model.metric_features and not configs["full"].model.metric_features
    assert configs["full"].model.name == "small" and configs["full"].preprocessing.crop_size == (32, 32, 32)
    for name in ("smoke", "quick", "full"):
        assert {accuracy.run_config(accuracy.MODES[name], m).training.monitor
                for m in accuracy.models_of(accuracy.MODES[name])} == {"loss"}
    dry = accuracy.with_overrides(medium, epochs=1, patience=None, n_cases=80)
    assert (dry.epochs, dry.patience, dry.n_cases) == (1, medium.patience, 80) and "dry run" in dry.purpose
    assert accuracy.with_overrides(medium, epochs=None) is medium


def test_speed_section_and_figures(speed_run, results_file):
    text = results_file.read_text()
    assert "## Accuracy (smoke)" in text and OTHER_SECTION.strip() in text
    section = text.split("## Speed (smoke)", 1)[1].split("\n## ", 1)[0]
    assert "- Machine: " in section and "- Command: `python -m benchmarks.speed --smoke`" in section
    for heading in ("**1. `analyze` end to end**", "**2. Grad-CAM, all scales**", "**3. Inference throughput**",
                    "**4. CUDA", "**5. Training**"):
        assert heading in section
    if not torch.cuda.is_available():
        assert "no CUDA on this machine" in section

    (analyzed,) = speed_run["analyze"]["rows"]
    assert analyzed["wall_s"] > 0 and analyzed["peak_mb"] > 0
    assert all(_finite(analyzed["stages_s"][s]) for s in speed.STAGES)
    assert analyzed["stages_s"]["inference"] > 0 and analyzed["stages_s"]["gradcam"] > 0

    cam = speed_run["gradcam"][0]
    assert len(cam["scales"]) == 9 and cam["ours_s"] > 0 and cam["monai_s"] > 0
    assert _finite(cam["speed_up"]) and cam["max_abs_difference"] < 1e-3 and len(cam["scales_compared"]) >= 5

    for row in speed_run["throughput"]:
        assert row["voxels_per_s"] > 0 and row["gflop"] > 0 and 0 < row["share_of_stack"] < 10
        assert row["stack_gflop"] == pytest.approx(row["gflop"], rel=0.6)

    (trained,) = speed_run["training"]
    assert trained["samples_per_s"] > 0 and 0 < trained["model_busy_share"] <= 1 and trained["loss_finite"]
    assert json.loads((results_file.parent / "speed_smoke.json").read_text())["mode"] == "smoke"


def test_real_results_file_untouched(speed_run, real_results_before):
    assert (RESULTS.read_text() if RESULTS.exists() else None) == real_results_before

"""The bundled default model: a proper model folder, honest card, and it works on synthetic PET."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from MTLRadiomicsLib.analysis.engine import analyze, default_model_dir
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.model import load_model
from MTLRadiomicsLib.model.model_file import sha256_of


@pytest.fixture(scope="module")
def bundled():
    return load_model(default_model_dir())


def test_bundled_model_folder_and_card(bundled):
    folder = default_model_dir()
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 20 * 1024 * 1024
    card = json.loads((folder / "model.json").read_text())
    assert card["weights_sha256"] == sha256_of(weights)
    assert "synthetic" in card["intended_use"].lower() and "not for clinical use" in card["intended_use"].lower()
    metrics = card["held_out_metrics"]
    assert metrics["test"]["dice"] > 0.5 and metrics["independent_cohort"]["n_cases"] >= 100
    assert card["class_names"] == ["lung", "oesophageal"]
    assert set(bundled.config.tasks) >= {"reconstruction", "segmentation", "classification", "outcome"}


def test_bundled_model_on_fresh_synthetic_crops(bundled):
    """Twelve crops the model never saw: the MTV overlaps the truth and the pathology is right."""
    from MTLRadiomicsLib.analysis.inference import predict, prepare_input
    from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet
    from MTLRadiomicsLib.synth import lesion_crop_case
    from training.metrics import binary_auc

    dice, class_prob, labels = [], [], []
    for seed in range(900_000, 900_012):
        case = lesion_crop_case(seed)
        crop = prepare_input(case.pet, case.lesion_center_lps, bundled.card)
        prediction = predict(bundled.network, crop, torch.device("cpu"), samples=2)
        mask = crop_to_pet(prediction.segmentation, crop.reference, case.pet) >= 0.5
        truth = case.mask > 0
        dice.append(2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1))
        class_prob.append(prediction.class_samples[:, 1].mean())
        labels.append(int(case.pathology == "oesophageal"))
    assert float(np.mean(dice)) > 0.6
    assert binary_auc(np.array(class_prob), np.array(labels)) > 0.8


def test_demo_sample_is_found_and_segmented(tmp_path):
    import SimpleITK as sitk

    from MTLRadiomicsLib.synth import wholebody_case

    case = wholebody_case(2024)
    path = tmp_path / "demo.nii.gz"
    sitk.WriteImage(case.pet.to_sitk(), str(path))
    result = analyze(path, tmp_path / "out", AnalysisOptions(samples=4, report=False))
    assert result.location.method == "automatic"
    assert np.linalg.norm(np.subtract(result.location.center_lps, case.lesion_center_lps)) < 20.0
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "mtv.nii.gz"))) > 0
    truth = case.mask > 0
    assert 2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()) > 0.5
    # The model was trained on 2 mm crops; the demo is a 4 x 4 x 3 mm whole-body scan. The engine says
    # so, and keeps the pathology back, while the outcome is shown and marked.
    assert result.scores.domain == "outside"
    assert result.domain["reasons"] and all("voxel size" in r or "slice spacing" in r for r in result.domain["reasons"])
    assert result.scores.pathology == {} and "training domain" in result.scores.pathology_note
    assert result.scores.outcome is not None and 0.0 <= result.scores.outcome.mean <= 1.0

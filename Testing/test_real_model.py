"""The bundled real model (sts-real): an honest card (data, licence, commands, cross-validated
figures, domain), and it segments real sarcomas whole; the synthetic model knows they are not its."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from MTLRadiomicsLib.model import load_model
from MTLRadiomicsLib.model.model_file import sha256_of
from MTLRadiomicsLib.model.registry import installed_models, models_root

REAL = models_root() / "sts-real"


@pytest.fixture(scope="module")
def real_model():
    if not (REAL / "model.json").exists():
        pytest.fail(f"the bundled real model is missing at {REAL}")
    return load_model(REAL)


def test_card_records_data_licence_commands_and_cross_validation(real_model):
    card = json.loads((REAL / "model.json").read_text())
    assert card["weights_sha256"] == sha256_of(REAL / "model.safetensors")
    data = card["training_data"]
    assert "CC BY 3.0" in data["licence"] and "10.7937/K9/TCIA.2015.7GO2GSKS" in data["source"]
    assert data["n_cases"] == 35 and data["seed"] == 0
    assert any("training.crossval" in c for c in data["commands"])
    cv = card["held_out_metrics"]["cross_validation"]
    assert cv["n"] == 35 and 0.0 < cv["dice"] < 1.0 and len(cv["folds"]) == 5
    assert cv["dice_ci95"][0] <= cv["dice"] <= cv["dice_ci95"][1]
    domain = card["domain"]
    assert domain["tracer"] == "FDG" and "lower_limb" in domain["body_regions"]
    assert domain["volume_ml"][1] > 2000 and domain["voxel_mm"]["slice"] == [3.27, 3.27]
    assert "not for clinical use" in card["intended_use"].lower()
    assert [m.key for m in installed_models()][:2] == ["default", "sts-real"]


def test_segments_a_real_sarcoma_better_than_the_synthetic_model(real_model, sts_crops_dir):
    """STS_001 (366 ml, a necrotic thigh liposarcoma) was a held-out case of the cross-validation; the final model
    saw it in training, so this checks the shipped weights work, not their accuracy (see RESULTS.md)."""
    from MTLRadiomicsLib.mtv.network_mtv import segment_network_mtv
    from MTLRadiomicsLib.model.registry import default_model_dir
    from training.heldout_mtv import dice, hottest_seed
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask

    pet = load_pet(sts_crops_dir / "STS_001" / "PET_image.nii.gz")
    gtv = load_mask(sts_crops_dir / "STS_001" / "PET_mask.nii.gz", pet) > 0
    _, seed = hottest_seed(pet, gtv)
    real = segment_network_mtv(real_model.network, real_model.card, pet, seed, torch.device("cpu")).mask > 0
    synthetic_model = load_model(default_model_dir())
    synthetic = segment_network_mtv(synthetic_model.network, synthetic_model.card, pet, seed,
                                    torch.device("cpu")).mask > 0
    assert dice(real, gtv) > 0.6
    assert dice(real, gtv) > dice(synthetic, gtv)


def test_the_synthetic_model_flags_a_real_thigh_sarcoma(sts_crops_dir):
    from MTLRadiomicsLib.analysis.domain import check_domain
    from MTLRadiomicsLib.model.registry import default_model_dir
    from MTLRadiomicsLib import load_pet

    card = json.loads((default_model_dir() / "model.json").read_text())
    domain = card["domain"]
    assert domain["body_regions"] == ["thorax"] and len(domain["features"]["mean"]) > 100
    pet = load_pet(sts_crops_dir / "STS_019" / "PET_image.nii.gz")
    check = check_domain(domain, volume_ml=17.2, suv_max=16.3, spacing_mm=tuple(pet.spacing))
    assert not check.inside and any("voxel size" in r for r in check.reasons)
    assert np.isfinite(domain["features"]["max_distance"])


def test_the_real_model_scores_every_task_with_calibrated_cross_validated_figures(real_model):
    card = json.loads((REAL / "model.json").read_text())
    assert set(real_model.config.tasks) >= {"segmentation", "classification", "outcome", "survival"}
    assert real_model.config.metric_features and len(real_model.config.metric_center) == 4
    assert "lung metastasis" in card["outcome"]["meaning"]
    assert card["class_names"] == ["Leiomyosarcoma", "Liposarcoma", "MFH", "other"]
    outcomes = card["held_out_metrics"]["cross_validation"]["outcomes"]
    assert outcomes["n"] == 35
    assert outcomes["outcome_auc_ci95"][0] <= outcomes["outcome_auc"] <= outcomes["outcome_auc_ci95"][1]
    assert card["calibration"]["outcome_temperature"] > 0 and "out-of-fold" in card["calibration"]["data"]
    assert len(card["domain"]["features"]["mean"]) == real_model.network.outcome.n_in


def test_a_real_sarcoma_analysed_with_the_real_model_is_inside_its_domain(sts_crops_dir, tmp_path):
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.options import AnalysisOptions
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask

    path = sts_crops_dir / "STS_024" / "PET_image.nii.gz"
    pet = load_pet(path)
    gtv = load_mask(sts_crops_dir / "STS_024" / "PET_mask.nii.gz", pet) > 0
    k, j, i = np.unravel_index(int(np.argmax(np.where(gtv, pet.suv, -1))), gtv.shape)
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    result = analyze(path, tmp_path / "out", AnalysisOptions(point=(-x, -y, z), model="sts-real", samples=4,
                                                              report=False))
    assert result.scores.withheld == "" and result.scores.domain == "inside", result.domain
    assert 0.0 <= result.scores.outcome.mean <= 1.0 and result.scores.survival is not None
    assert set(result.scores.pathology) == {"Leiomyosarcoma", "Liposarcoma", "MFH", "other"}
    assert "temperature scaling" in result.scores.calibration


def test_the_cli_names_what_the_real_models_score_means(sts_crops_dir, tmp_path):
    from cli_runner import run_cli_here

    process = run_cli_here("analyze", sts_crops_dir / "STS_024" / "PET_image.nii.gz", "--out", tmp_path / "o",
                           "--model", "sts-real", "--samples", "2", "--no-report", "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert "probability of lung metastasis" in process.stdout and "response probability" not in process.stdout

"""A model that knows its domain: the lesion against the card's training domain, marked scores,
no pathology outside it, and calibrated probabilities."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from cli_runner import run_cli_here

from MTLRadiomicsLib.analysis.domain import check_domain, feature_distance

THORAX = {"tracer": "FDG", "tumour_types": ["lung", "oesophageal"], "body_regions": ["thorax"],
          "volume_ml": [0.5, 120.0], "suv_max": [3.5, 26.0],
          "voxel_mm": {"in_plane": [2.0, 2.0], "slice": [2.0, 2.0]}}


def test_each_fact_outside_the_domain_is_a_reason():
    inside = check_domain(THORAX, tracer="FDG -- fluorodeoxyglucose", region="thorax", volume_ml=30.0,
                          suv_max=9.0, spacing_mm=(2.0, 2.0, 2.0))
    assert inside.inside and inside.checked and inside.reasons == []
    outside = check_domain(THORAX, tracer="Ga-68 PSMA", region="lower_limb", volume_ml=900.0, suv_max=60.0,
                           spacing_mm=(4.7, 4.7, 3.3))
    assert not outside.inside
    text = " | ".join(outside.reasons)
    for fragment in ("tracer is Ga-68 PSMA", "lower limb", "volume (900 ml)", "SUVmax (60)", "in-plane voxel size",
                     "slice spacing"):
        assert fragment in text, fragment
    assert "outside the model's training domain" in outside.summary
    # Margins: twice the largest training volume is still inside, the unknown region never counts.
    assert check_domain(THORAX, region="unknown", volume_ml=240.0, spacing_mm=(2.4, 2.4, 2.4)).inside
    assert not check_domain({}).checked and check_domain({}).inside


def test_deep_features_unlike_every_training_case():
    rng = np.random.default_rng(0)
    training = rng.normal(size=(40, 12))
    mean, sd = training.mean(0), training.std(0)
    distances = [feature_distance(f, mean, sd) for f in training]
    domain = {"features": {"mean": mean.tolist(), "sd": sd.tolist(), "max_distance": max(distances)}}
    assert check_domain(domain, features=training[3]).inside
    far = mean + 6 * sd
    result = check_domain(domain, features=far)
    assert not result.inside and "unlike every training case" in result.reasons[0]
    assert result.facts["feature_distance"] == pytest.approx(6.0, rel=1e-3)


@pytest.fixture()
def thorax_model(tiny_model, tmp_path):
    folder = tmp_path / "thorax"
    shutil.copytree(tiny_model, folder)
    card = json.loads((folder / "model.json").read_text())
    card["domain"] = THORAX
    (folder / "model.json").write_text(json.dumps(card))
    return folder


def test_a_thigh_sarcoma_with_a_thorax_model_is_marked_and_gets_no_pathology(thorax_model, sts_crops_dir, tmp_path):
    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsLib.pet_input.masks import load_mask

    path = sts_crops_dir / "STS_002" / "PET_image.nii.gz"
    pet = load_pet(path)
    gtv = load_mask(sts_crops_dir / "STS_002" / "PET_mask.nii.gz", pet) > 0
    k, j, i = np.unravel_index(int(np.argmax(np.where(gtv, pet.suv, -1))), gtv.shape)
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    out = tmp_path / "a"
    process = run_cli_here("analyze", path, "--out", out, "--model", thorax_model, "--point", -x, -y, z,
                           "--samples", "2", "--mtv-method", "suv2.5", "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert "OUTSIDE THE MODEL'S TRAINING DOMAIN" in process.stdout
    assert "p(lung)" not in process.stdout and "pathology   not shown" in process.stdout
    data = json.loads((out / "result.json").read_text())
    assert data["domain"]["inside"] is False and data["scores"]["domain"] == "outside"
    assert any("in-plane voxel size" in r for r in data["domain"]["reasons"])
    assert data["scores"]["pathology"] == {} and "training domain" in data["scores"]["pathology_note"]
    assert data["scores"]["outcome"] is not None                 # the outcome is shown, marked
    assert "Outside the model&#x27;s training domain" in (out / "report.html").read_text() or \
        "Outside the model's training domain" in (out / "report.html").read_text()


def test_calibration_temperature_is_applied(tiny_model, sts_crops_dir, tmp_path):
    """A huge temperature turns every logit into p = 0.5: the engine divides by the card's temperature."""
    folder = tmp_path / "hot"
    shutil.copytree(tiny_model, folder)
    card = json.loads((folder / "model.json").read_text())
    card["calibration"] = {"method": "temperature scaling (NLL)", "data": "a test", "outcome_temperature": 1e6,
                           "class_temperature": 1e6}
    (folder / "model.json").write_text(json.dumps(card))
    path = sts_crops_dir / "STS_002" / "PET_image.nii.gz"
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.options import AnalysisOptions
    from MTLRadiomicsLib import load_pet

    pet = load_pet(path)
    k, j, i = np.unravel_index(int(np.argmax(pet.suv)), pet.shape)
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    hot = analyze(path, tmp_path / "h", AnalysisOptions(point=(-x, -y, z), model=folder, samples=2,
                                                         mtv_method="suv2.5", report=False))
    plain = analyze(path, tmp_path / "p", AnalysisOptions(point=(-x, -y, z), model=tiny_model, samples=2,
                                                           mtv_method="suv2.5", report=False))
    assert hot.scores.outcome.mean == pytest.approx(0.5, abs=1e-4)
    assert all(e.mean == pytest.approx(0.5, abs=1e-4) for e in hot.scores.pathology.values())
    assert plain.scores.outcome.mean != pytest.approx(0.5, abs=1e-3)
    assert "temperature scaling fitted on a test" == hot.scores.calibration
    assert plain.scores.calibration == "uncalibrated"

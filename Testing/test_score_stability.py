"""Scores that depend only on the lesion: not on the click, not on a stray voxel of an edited mask,
not on the run (seeded uncertainty), and none at all without a plausible lesion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.analysis.engine import analyze
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.pet_input.masks import load_mask


@pytest.fixture(scope="module")
def sarcoma(sts_crops_dir):
    """The real sarcoma STS_002: PET, GTV, and five RAS points inside the GTV where SUV >= 2.5,
    spread through the tumour (the hottest voxel and four others far from it)."""
    path = sts_crops_dir / "STS_002" / "PET_image.nii.gz"
    pet = load_pet(path)
    gtv = load_mask(sts_crops_dir / "STS_002" / "PET_mask.nii.gz", pet) > 0
    candidates = np.argwhere(gtv & (pet.suv >= 3.0))
    hottest = np.unravel_index(int(np.argmax(np.where(gtv, pet.suv, -1))), gtv.shape)
    distance = np.linalg.norm((candidates - np.asarray(hottest)) * np.asarray(pet.spacing)[::-1], axis=1)
    order = np.argsort(distance)
    chosen = [tuple(hottest)] + [tuple(candidates[order[int(q * (len(order) - 1))]]) for q in (0.3, 0.5, 0.7, 0.9)]
    points = []
    for k, j, i in chosen:
        x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
        points.append((-x, -y, z))
    return {"path": path, "pet": pet, "gtv": gtv, "points": points, "voxels": chosen}


def _scores(out) -> dict:
    return json.loads((out / "result.json").read_text())["scores"]


def test_two_runs_give_identical_scores_and_the_seed_is_recorded(sarcoma, tiny_model, tmp_path):
    options = AnalysisOptions(point=sarcoma["points"][0], model=tiny_model, samples=4, mtv_method="suv2.5",
                              report=False)
    analyze(sarcoma["path"], tmp_path / "a", options)
    analyze(sarcoma["path"], tmp_path / "b", options)
    a, b = _scores(tmp_path / "a"), _scores(tmp_path / "b")
    assert a["outcome"] == b["outcome"] and a["pathology"] == b["pathology"]
    sha = json.loads((tmp_path / "a" / "result.json").read_text())["input"]["sha256"]
    assert a["seed"] == int(sha[:15], 16)
    # Monte-Carlo dropout is on: the samples differ, so the sd is not zero ...
    assert a["outcome"]["sd"] > 0
    # ... and another seed draws other dropout masks.
    other = AnalysisOptions(point=sarcoma["points"][0], model=tiny_model, samples=4, mtv_method="suv2.5",
                            report=False, seed=7)
    analyze(sarcoma["path"], tmp_path / "c", other)
    c = _scores(tmp_path / "c")
    assert c["seed"] == 7 and c["outcome"] != a["outcome"]


def test_clicks_anywhere_in_the_lesion_give_the_same_scores(sarcoma, tiny_model, tmp_path):
    results = []
    for n, point in enumerate(sarcoma["points"]):
        out = tmp_path / f"click{n}"
        analyze(sarcoma["path"], out, AnalysisOptions(point=point, model=tiny_model, samples=4,
                                                      mtv_method="suv2.5", report=False))
        results.append(json.loads((out / "result.json").read_text()))
    first = results[0]["scores"]["outcome"]
    for result in results[1:]:
        outcome = result["scores"]["outcome"]
        assert abs(outcome["mean"] - first["mean"]) <= max(outcome["sd"], first["sd"], 1e-9)
        assert result["location"]["field_center_lps"] == pytest.approx(results[0]["location"]["field_center_lps"])


def test_the_network_mtv_does_not_depend_on_the_click(sarcoma):
    """The sliding windows start from the lesion's hottest voxel, wherever the click is."""
    import torch

    from MTLRadiomicsLib.model import load_model
    from MTLRadiomicsLib.model.registry import resolve_model
    from MTLRadiomicsLib.mtv.lesion import segment_lesion

    loaded = load_model(resolve_model("sts-real"))
    pet = sarcoma["pet"]
    masks = []
    for k, j, i in (sarcoma["voxels"][0], sarcoma["voxels"][4]):
        seed_lps = pet.index_to_physical((float(i), float(j), float(k)))
        mtvs = segment_lesion(pet, seed_lps, "network", loaded.network, loaded.card, torch.device("cpu"))
        masks.append(mtvs.mask > 0)
    assert masks[0].sum() > 0
    assert np.array_equal(masks[0], masks[1])


def test_a_stray_voxel_in_an_edited_mask_does_not_move_the_field(sarcoma, tiny_model, tmp_path):
    pet = sarcoma["pet"]
    region = (pet.suv >= 2.5) & sarcoma["gtv"]
    stray = region.copy()
    where = np.argwhere(region)
    far = np.unravel_index(int(np.argmax(np.linalg.norm(
        (np.argwhere(np.ones_like(region)) - where.mean(0)) * np.asarray(pet.spacing)[::-1], axis=1))), region.shape)
    stray[far] = True
    for name, mask in (("clean", region), ("stray", stray)):
        image = pet.copy_geometry_to(sitk.GetImageFromArray(mask.astype(np.uint8)))
        sitk.WriteImage(image, str(tmp_path / f"{name}.nii.gz"))
        analyze(sarcoma["path"], tmp_path / name, AnalysisOptions(model=tiny_model, samples=4, report=False),
                edited_mask=tmp_path / f"{name}.nii.gz")
    clean = json.loads((tmp_path / "clean" / "result.json").read_text())
    dirty = json.loads((tmp_path / "stray" / "result.json").read_text())
    assert dirty["location"]["field_center_lps"] == pytest.approx(clean["location"]["field_center_lps"])
    assert dirty["scores"]["outcome"] == clean["scores"]["outcome"]
    assert "1 other part(s)" in dirty["location"]["field_note"]
    assert any("did not move it" in w for w in dirty["warnings"])


def test_a_point_outside_fdg_avid_tissue_gets_no_scores_and_a_warning(sarcoma, tiny_model, tmp_path):
    pet = sarcoma["pet"]
    cold = np.argwhere(pet.suv < 0.8)
    distance = np.linalg.norm((cold - np.argwhere(sarcoma["gtv"]).mean(0)) * np.asarray(pet.spacing)[::-1], axis=1)
    k, j, i = cold[int(np.argmax(distance))]
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    result = analyze(sarcoma["path"], tmp_path / "cold", AnalysisOptions(point=(-x, -y, z), model=tiny_model,
                                                                         samples=4, mtv_method="suv2.5", report=False))
    assert result.scores.outcome is None and result.scores.withheld
    assert any("not lie in FDG-avid tissue" in w for w in result.warnings)

"""`analyze` and the MTV: every method side by side, the chosen one scored, no silent empty MTV, and
the installed models chosen by name."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runner import assert_one_line_error, run_cli_here

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.analysis.engine import analyze
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.mtv.classical import segment_classical
from MTLRadiomicsLib.mtv.lesion import MTV_METHODS


@pytest.fixture(scope="module")
def crop(sts_crops_dir):
    """The real thigh sarcoma STS_001 (crop in SUV) and a point at its GTV's hottest voxel (RAS)."""
    from MTLRadiomicsLib.pet_input.masks import load_mask

    path = sts_crops_dir / "STS_001" / "PET_image.nii.gz"
    pet = load_pet(path)
    gtv = load_mask(sts_crops_dir / "STS_001" / "PET_mask.nii.gz", pet) > 0
    k, j, i = np.unravel_index(int(np.argmax(np.where(gtv, pet.suv, -1))), gtv.shape)
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    return {"path": path, "pet": pet, "seed_zyx": (int(k), int(j), int(i)), "ras": (-x, -y, z)}


def test_every_method_side_by_side_and_the_chosen_one_scored(crop, tiny_model, tmp_path):
    out = tmp_path / "a"
    result = analyze(crop["path"], out, AnalysisOptions(point=crop["ras"], model=tiny_model, samples=3,
                                                          mtv_method="suv2.5"))
    data = json.loads((out / "result.json").read_text())
    assert data["mtv"]["method"] == "suv2.5"
    assert list(data["mtv"]["methods"]) == list(MTV_METHODS)
    # The scored MTV is the classical SUV >= 2.5 region of the seed, computed here independently.
    expected = segment_classical(crop["pet"].suv, crop["pet"].spacing, crop["seed_zyx"], "suv2.5").mask > 0
    saved = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "mtv.nii.gz"))) > 0
    assert saved.any() and np.array_equal(saved, expected)
    assert result.metrics["voxels"] == int(expected.sum())
    assert data["mtv"]["methods"]["suv2.5"]["metrics"]["mtv_ml"] == pytest.approx(result.metrics["mtv_ml"])
    # A thigh crop holds no liver: the liver-referenced method says why and is not written.
    percist = data["mtv"]["methods"]["percist"]
    assert percist["available"] is False and "liver" in percist["reason"]
    assert data["mtv"]["liver_reference"]["found"] is False
    for name in ("suvmax40", "suvmax41", "suvmax50"):
        assert data["mtv"]["methods"][name]["available"] and data["mtv"]["methods"][name]["metrics"]["voxels"] > 0
    # Higher fractions of the same SUVmax give nested, smaller MTVs.
    ml = {n: data["mtv"]["methods"][n]["metrics"]["mtv_ml"] for n in ("suvmax40", "suvmax41", "suvmax50")}
    assert ml["suvmax40"] >= ml["suvmax41"] >= ml["suvmax50"]
    assert data["scores"]["withheld"] == "" and data["scores"]["outcome"]["samples"] == 3
    # Every available method is a segment of mtv_methods.seg.nrrd, on the PET grid.
    import slicerio

    segmentation = slicerio.read_segmentation(str(out / data["outputs"]["mtv_methods"]))
    names = [s["name"] for s in segmentation["segments"]]
    assert names == [MTV_METHODS[n] for n, m in data["mtv"]["methods"].items() if m["available"]]
    html = (out / "report.html").read_text()
    assert "MTV by method" in html and "SUV &gt;= 2.5 (scored)" in html


def test_an_empty_network_mtv_withholds_the_scores_and_says_so(crop, tiny_model, tmp_path):
    """The tiny model's network sees no tumour: the MTV is empty, which must never be scored silently."""
    out = tmp_path / "empty"
    x, y, z = crop["ras"]
    process = run_cli_here("analyze", crop["path"], "--out", out, "--model", tiny_model, "--point", x, y, z,
                           "--samples", "2", "--progress", "none")
    assert process.returncode == 0, process.stderr
    assert "scores      withheld: the MTV (network (sliding windows)) is empty" in process.stdout
    assert "response probability" not in process.stdout
    data = json.loads((out / "result.json").read_text())
    assert data["scores"]["outcome"] is None and data["scores"]["pathology"] == {}
    assert "empty" in data["mtv"]["check"]["flags"] and not data["mtv"]["check"]["valid"]
    assert any("empty" in w for w in data["warnings"])
    assert data["explanation"]["scales"] == [] and not list(out.glob("gradcam_*.nrrd"))
    html = (out / "report.html").read_text()
    assert "Withheld: the MTV" in html
    # The other methods still give the physician their references.
    assert data["mtv"]["methods"]["suv2.5"]["metrics"]["voxels"] > 0


def test_a_method_that_cannot_run_is_a_one_line_error(crop, tiny_model, tmp_path):
    x, y, z = crop["ras"]
    process = run_cli_here("analyze", crop["path"], "--out", tmp_path / "p", "--model", tiny_model, "--point", x, y, z,
                           "--mtv-method", "percist", "--progress", "none")
    assert_one_line_error(process, "liver")
    assert not (tmp_path / "p").exists()


def test_installed_models_are_listed_and_chosen_by_name(crop, tiny_model, tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(tiny_model, root / "default")
    shutil.copytree(tiny_model, root / "second")
    card = json.loads((root / "second" / "model.json").read_text())
    card["name"] = "second-model"
    card["training_data"] = {"summary": "a test cohort"}
    (root / "second" / "model.json").write_text(json.dumps(card))
    env = {"MTL_RADIOMICS_MODELS": str(root)}
    listing = run_cli_here("models", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)
    assert [(r["key"], r["default"]) for r in rows] == [("default", True), ("second", False)]
    assert rows[1]["summary"] == "a test cohort" and "segmentation" in rows[1]["tasks"]
    text = run_cli_here("models", env=env).stdout
    assert "* default" in text and "second-model" in text
    x, y, z = crop["ras"]
    for name in ("second", "second-model"):
        out = tmp_path / f"by_{name}"
        process = run_cli_here("analyze", crop["path"], "--out", out, "--model", name, "--point", x, y, z,
                               "--samples", "2", "--no-report", "--progress", "none", "--mtv-method", "suv2.5", env=env)
        assert process.returncode == 0, process.stderr
        assert json.loads((out / "result.json").read_text())["model"]["name"] == "second-model"
    assert_one_line_error(run_cli_here("analyze", crop["path"], "--out", tmp_path / "n", "--model", "nosuch",
                                       "--progress", "none", env=env), "installed models: default")

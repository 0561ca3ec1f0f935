"""The engine's small parts (``MTLRadiomicsLib.analysis.engine``), each against an independent reference.

The end-to-end tests (test_analysis.py) show that an analysis and a rescore hold together; these
decide the parts they pass through by hand: the PET voxels inside a box (every voxel centre's LPS
position computed with SimpleITK on an oblique, anisotropic grid, box faces through voxel centres),
the seed voxel of a point (clipped onto the grid), the hottest voxel of a region, the score estimate
(mean, sample SD, 4 decimals), the scores' branches (withheld, outside the training domain, no head),
result.json's MTV and model summaries, the input fingerprint and the CUDA out-of-memory fallback.
No model is trained or run here: the parts are called with small objects made for the purpose.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from MTLRadiomicsLib.analysis import engine
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume


def oblique_pet(shape=(7, 9, 11), seed=3) -> PetVolume:
    """A PET on a rotated grid with unequal spacing; SUV = a distinct value per voxel."""
    rng = np.random.default_rng(seed)
    rotation = sitk.VersorTransform(tuple(rng.normal(size=3)), float(rng.uniform(0.3, 1.0))).GetMatrix()
    suv = rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) / 10.0
    return PetVolume(suv=suv, spacing=(1.5, 2.5, 4.0), origin=(-31.0, 17.5, 240.0), direction=rotation)


def centres_lps(pet: PetVolume) -> np.ndarray:
    """(z, y, x, 3): every voxel centre's LPS position, by SimpleITK."""
    image = pet.to_sitk()
    out = np.empty(pet.shape + (3,))
    for k, j, i in np.ndindex(*pet.shape):
        out[k, j, i] = image.TransformIndexToPhysicalPoint((i, j, k))
    return out


# --------------------------------------------------------------------------- box_voxels
def test_box_voxels_are_the_voxel_centres_inside_the_box_on_an_oblique_grid():
    pet = oblique_pet()
    centres = centres_lps(pet)
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = centres[tuple(rng.integers(0, n) for n in pet.shape)], centres[tuple(rng.integers(0, n) for n in pet.shape)]
        lo, hi = np.minimum(a, b) - 3.0, np.maximum(a, b) + 3.0
        expected = np.all((centres >= lo) & (centres <= hi), axis=-1)
        got = engine.box_voxels(pet, tuple(hi), tuple(lo))            # corners in either order
        assert got.dtype == bool and got.shape == pet.shape
        assert expected.any() and not expected.all()
        np.testing.assert_array_equal(got, expected)


def test_box_faces_through_voxel_centres_keep_those_voxels():
    """An axis-aligned grid; the box's faces pass exactly through voxel centres on all six sides."""
    pet = PetVolume(suv=np.zeros((6, 7, 8), np.float32), spacing=(2.0, 3.0, 4.0), origin=(10.0, -20.0, 30.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    # x centres 10 + 2 i, y centres -20 + 3 j, z centres 30 + 4 k
    got = engine.box_voxels(pet, (12.0, -17.0, 34.0), (18.0, -11.0, 42.0))
    expected = np.zeros(pet.shape, bool)
    expected[1:4, 1:4, 1:5] = True                    # k 1..3, j 1..3, i 1..4, faces included
    np.testing.assert_array_equal(got, expected)


def test_a_flat_box_holds_the_one_plane_of_voxels_it_passes_through():
    pet = PetVolume(suv=np.zeros((5, 4, 3), np.float32), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    got = engine.box_voxels(pet, (0.0, 0.0, 4.0), (2.0, 3.0, 4.0))
    expected = np.zeros(pet.shape, bool)
    expected[2] = True
    np.testing.assert_array_equal(got, expected)


def test_a_box_beside_the_volume_holds_nothing():
    pet = oblique_pet()
    centres = centres_lps(pet).reshape(-1, 3)
    beyond = centres.max(axis=0) + 10.0
    assert not engine.box_voxels(pet, tuple(beyond), tuple(beyond + 50.0)).any()


# --------------------------------------------------------------------------- seed voxel, hottest voxel
def test_the_seed_voxel_of_a_point_is_its_nearest_voxel_clipped_onto_the_grid():
    pet = oblique_pet()
    centres = centres_lps(pet)
    for zyx in [(0, 0, 0), (6, 8, 10), (3, 4, 5), (6, 0, 10)]:
        assert engine._seed_zyx(pet, centres[zyx]) == zyx
        assert all(type(v) is int for v in engine._seed_zyx(pet, centres[zyx]))
    # points beyond every face land on the nearest face voxel
    image = pet.to_sitk()
    for index, expected in [((-3, -2, -1), (0, 0, 0)), ((13, 11, 9), (6, 8, 10)), ((-1, 4, 9), (6, 4, 0)),
                            ((11, -5, 2), (2, 0, 10))]:
        point = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in index])
        assert engine._seed_zyx(pet, point) == expected


def test_the_hottest_voxel_of_a_region_is_found_by_position():
    pet = oblique_pet()
    centres = centres_lps(pet)
    region = np.zeros(pet.shape, bool)
    region[1:3, 2:6, 4:9] = True
    zyx = np.unravel_index(int(np.argmax(np.where(region, pet.suv, -1.0))), pet.shape)
    assert pet.suv[zyx] < pet.suv.max()                  # the whole volume's hottest lies elsewhere
    np.testing.assert_allclose(engine.hottest_in(pet, region), centres[zyx], atol=1e-6)


# --------------------------------------------------------------------------- estimates
def test_an_estimate_is_the_mean_and_sample_sd_to_four_decimals():
    values = [0.12344, 0.56781, 0.3]
    mean = sum(values) / 3
    sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5          # n - 1
    estimate = engine._estimate(np.array(values, np.float32))
    assert (estimate.mean, estimate.sd, estimate.samples) == (round(mean, 4), round(sd, 4), 3)
    assert type(estimate.mean) is float and type(estimate.sd) is float and type(estimate.samples) is int


def test_one_sample_has_no_spread():
    estimate = engine._estimate(np.array([0.87654]))
    assert (estimate.mean, estimate.sd, estimate.samples) == (0.8765, 0.0, 1)


def test_the_estimate_is_computed_in_double_precision():
    """float32 samples: (1 + 1e-4) / 2 is 0.50004999... in double precision, 0.50005001 when summed in float32."""
    assert engine._estimate(np.array([1.0, 1e-4], np.float32)).mean == 0.5


def test_integer_samples_give_a_float_mean():
    estimate = engine._estimate(np.array([1, 2], dtype=np.int64))
    assert (estimate.mean, estimate.sd) == (1.5, round(2 ** 0.5 / 2, 4))


# --------------------------------------------------------------------------- analyze and rescore, in this process
SCALES = ["enc1", "enc2", "enc3", "enc4", "enc5", "dec4", "dec3", "dec2", "dec1"]
SHAPE = (30, 34, 38)
CENTRE_ZYX = (14, 16, 20)


def sphere_case(folder):
    """A PET on an axis-permuted, flipped grid: background SUV 0.8-1.2, a sphere of 123 voxels at
    SUV 8 with one voxel at 9 at its centre; written as NIfTI. Returns (path, pet, sphere, RAS point)."""
    rng = np.random.default_rng(0)
    suv = rng.uniform(0.8, 1.2, SHAPE).astype(np.float32)
    k, j, i = np.indices(SHAPE)
    sphere = ((k - CENTRE_ZYX[0]) ** 2 + (j - CENTRE_ZYX[1]) ** 2 + (i - CENTRE_ZYX[2]) ** 2) <= 9
    suv[sphere] = 8.0
    suv[CENTRE_ZYX] = 9.0
    pet = PetVolume(suv=suv, spacing=(3.0, 3.0, 3.0), origin=(-50.0, 20.0, -40.0),
                    direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    path = folder / "pet.nii.gz"
    sitk.WriteImage(pet.to_sitk(), str(path))
    x, y, z = pet.index_to_physical(tuple(float(v) for v in CENTRE_ZYX[::-1]))
    return path, pet, sphere, (-x, -y, z)


def write_mask(mask: np.ndarray, pet: PetVolume, path):
    sitk.WriteImage(pet.copy_geometry_to(sitk.GetImageFromArray(mask.astype(np.uint8))), str(path))
    return path


def read_array(path) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def options(case, tiny_model, **changes) -> AnalysisOptions:
    return AnalysisOptions(**({"point": case["ras"], "model": tiny_model, "samples": 2, "mtv_method": "suv2.5",
                               "report": False, "device": "cpu"} | changes))


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    path, pet, sphere, ras = sphere_case(tmp_path_factory.mktemp("sphere"))
    return {"path": path, "pet": pet, "sphere": sphere, "ras": ras,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "tmp": tmp_path_factory.mktemp("runs")}


@pytest.fixture
def analysed(case, tiny_model, tmp_path):
    """One analysis per test (not per module): mutation testing attributes the code a fixture runs to
    the first test that sets it up, so a shared analysis would hide what the later tests check."""
    import io
    import json

    from MTLRadiomicsLib.analysis.progress import Progress

    stream = io.StringIO()
    out = tmp_path / "analysis"
    result = engine.analyze(case["path"], out, options(case, tiny_model), progress=Progress("json", stream))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return {"out": out, "result": result, "json": json.loads((out / "result.json").read_text()), "progress": lines}


def physical(pet: PetVolume, zyx) -> np.ndarray:
    return np.asarray(pet.to_sitk().TransformContinuousIndexToPhysicalPoint([float(v) for v in zyx[::-1]]))


def test_the_mtv_and_every_heatmap_lie_on_the_pet_grid(case, analysed):
    out, pet = analysed["out"], case["pet"]
    reference = pet.to_sitk()
    mtv, image = read_array(out / "mtv.nii.gz")
    np.testing.assert_array_equal(mtv > 0, case["sphere"])
    assert mtv.dtype == np.uint8 and set(np.unique(mtv)) == {0, 1}
    assert image.GetSize() == reference.GetSize()
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    from MTLRadiomicsLib.pet_input.masks import load_mask

    np.testing.assert_array_equal(load_mask(out / "segmentation.seg.nrrd", pet) > 0, case["sphere"])
    for scale in SCALES:
        heat, image = read_array(out / f"gradcam_{scale}.nrrd")
        assert heat.dtype == np.float32 and image.GetSize() == reference.GetSize()
        np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-9)
        assert heat.min() >= 0.0 and heat.max() <= 1.0
    assert max(read_array(out / f"gradcam_{s}.nrrd")[0].max() for s in SCALES) > 0.0
    assert analysed["result"].outputs == {
        "segmentation": "segmentation.seg.nrrd", "mtv_nifti": "mtv.nii.gz", "mtv_methods": "mtv_methods.seg.nrrd",
        "mtv_probability": "mtv_probability.nrrd", **{f"gradcam_{s}": f"gradcam_{s}.nrrd" for s in SCALES}}
    assert sorted(p.name for p in out.iterdir()) == sorted(list(analysed["result"].outputs.values()) + ["result.json"])


def test_result_json_of_an_analysis_by_hand(case, analysed, tiny_model):
    data, pet = analysed["json"], case["pet"]
    assert data["command"] == "analyze" and data["device"] == "cpu"
    assert data["input"] == {"path": str(case["path"]), "format": "nifti", "sha256": case["sha256"], "files": 1}
    location = data["location"]
    assert location["method"] == "point" and location["crop_size_mm"] == [96.0, 96.0, 96.0]
    np.testing.assert_allclose(location["center_ras"], case["ras"], atol=1e-6)
    np.testing.assert_allclose(location["center_lps"], physical(pet, CENTRE_ZYX), atol=1e-6)
    # one part: the field sits at the centre of the MTV's box, which is the sphere's centre voxel
    np.testing.assert_allclose(location["field_center_lps"], physical(pet, CENTRE_ZYX), atol=1e-6)
    assert location["field_note"] == ""
    voxels = int(case["sphere"].sum())
    mean = (8.0 * (voxels - 1) + 9.0) / voxels
    metrics = data["metrics"]
    assert metrics["voxels"] == voxels == 123 and metrics["suv_max"] == 9.0
    assert metrics["mtv_ml"] == pytest.approx(voxels * 0.027, abs=1e-3)
    assert metrics["suv_mean"] == pytest.approx(mean, abs=1e-4)
    assert metrics["tlg"] == pytest.approx(mean * voxels * 0.027, abs=2e-3)
    assert metrics["lesion_suv_max"] == 9.0
    np.testing.assert_allclose(metrics["lesion_suv_max_ras"], case["ras"], atol=1e-3)
    mtv = data["mtv"]
    assert (mtv["method"], mtv["label"], mtv["fill_holes"], mtv["seed_voxel_zyx"]) == (
        "suv2.5", "SUV >= 2.5", False, list(CENTRE_ZYX))
    from MTLRadiomicsLib.mtv.methods import MTV_METHODS

    assert set(mtv["methods"]) == set(MTV_METHODS) and mtv["check"]["valid"] is True
    assert mtv["liver_reference"]["found"] is False and mtv["liver_reference"]["reason"]
    assert data["explanation"] == {"target": "outcome", "scales": SCALES,
                                   "method": "Grad-CAM, all scales from one forward and one backward pass"}
    assert data["domain"] == {"inside": True, "checked": False, "reasons": [], "facts": {}}
    assert list(data["timings_s"]) == ["load", "model", "localisation", "mtv", "metrics", "inference", "gradcam",
                                       "outputs"]
    model = data["model"]
    assert (model["name"], model["folder"], model["preprocessing"]) == (
        "tiny-random", str(tiny_model), {"spacing_mm": [3.0, 3.0, 3.0], "crop_size": [32, 32, 32]})
    assert model["intended_use"] == "Test model with random weights." and model["calibration"] == {}
    from MTLRadiomicsLib.model.model_file import load_model

    loaded = load_model(tiny_model)
    assert model["tasks"] == list(loaded.config.tasks) and model["weights_sha256"] == loaded.card.weights_sha256
    assert model["class_names"] == list(loaded.card.class_names) and model["outcome"] == loaded.card.outcome
    assert set(model) == {"name", "folder", "intended_use", "tasks", "outcome", "class_names", "preprocessing",
                          "training_data", "held_out_metrics", "weights_sha256", "engine_version_trained",
                          "calibration", "domain"}
    assert (model["training_data"], model["held_out_metrics"], model["domain"]) == ({}, {}, {})
    assert model["engine_version_trained"] == loaded.card.engine_version != ""


def test_the_scores_of_an_analysis_and_their_seed(case, analysed):
    scores = analysed["json"]["scores"]
    assert scores["seed"] == int(case["sha256"][:15], 16)
    assert scores["uncertainty"] == "mean ± sd over 2 samples, Monte-Carlo dropout"
    assert (scores["mask_source"], scores["withheld"], scores["domain"], scores["calibration"]) == (
        "predicted", "", "", "uncalibrated")
    assert scores["outcome_kind"] == "binary" and scores["outcome"]["samples"] == 2
    assert 0.0 < scores["outcome"]["mean"] < 1.0 and scores["outcome"]["sd"] > 0.0     # dropout on: samples differ
    assert scores["pathology"] and all(e["samples"] == 2 for e in scores["pathology"].values())
    assert sum(e["mean"] for e in scores["pathology"].values()) == pytest.approx(1.0, abs=2e-4)
    assert scores["survival"] is None and scores["pathology_note"] == ""


def test_progress_names_every_stage_in_order(analysed):
    lines = analysed["progress"]
    stages = [(line["stage"], line["fraction"]) for line in lines]
    assert stages[:4] == [("load", 0.02), ("model", 0.12), ("localisation", 0.2), ("mtv", 0.28)]
    assert stages[-5:] == [("metrics", 0.4), ("inference", 0.45), ("gradcam", 0.55), ("outputs", 0.8), ("done", 1.0)]
    messages = {line["stage"]: line["message"] for line in lines}
    assert messages["load"] == "reading the PET volume" and messages["model"] == "loading the model"
    assert messages["localisation"] == "locating the lesion" and messages["metrics"] == "PET metrics of the MTV"
    assert messages["inference"] == "scoring the lesion" and messages["outputs"] == "writing the outputs"
    assert messages["gradcam"] == "Grad-CAM for every scale (target: outcome)"
    assert lines[1]["message"] == "loading the model"
    assert [line["message"] for line in lines if line["stage"] == "mtv"][0] == "segmenting the MTV (SUV >= 2.5)"
    assert lines[-1]["stage"] == "done" and lines[-1]["out"] == str(analysed["out"])
    assert lines[-1]["message"] == f"results in {analysed['out']}"


def test_a_given_seed_is_used_and_recorded(case, analysed, tiny_model):
    result = engine.analyze(case["path"], case["tmp"] / "seeded", options(case, tiny_model, seed=11))
    again = engine.analyze(case["path"], case["tmp"] / "seeded2", options(case, tiny_model, seed=11))
    assert result.scores.seed == 11
    assert result.scores.outcome == again.scores.outcome and result.scores.pathology == again.scores.pathology
    assert result.scores.outcome != analysed["result"].scores.outcome          # another seed, other samples


def test_rescoring_the_unedited_mtv_gives_the_analysis_scores(case, analysed, tiny_model):
    mask = write_mask(case["sphere"], case["pet"], case["tmp"] / "same.nii.gz")
    result = engine.analyze(case["path"], case["tmp"] / "same", options(case, tiny_model), edited_mask=mask)
    assert result.scores.outcome == analysed["result"].scores.outcome
    assert result.scores.pathology == analysed["result"].scores.pathology
    assert result.metrics == analysed["result"].metrics


def test_a_rescore_scores_the_edited_mask(case, analysed, tiny_model):
    pet = case["pet"]
    half = case["sphere"].copy()
    half[:, :, CENTRE_ZYX[2] + 1:] = False                     # the sphere's half with x index <= 20
    mask_path = write_mask(half, pet, case["tmp"] / "half.nii.gz")
    out = case["tmp"] / "rescore"
    result = engine.analyze(case["path"], out, options(case, tiny_model), edited_mask=mask_path)
    data = json.loads((out / "result.json").read_text())
    assert data["command"] == "rescore" and data["scores"]["mask_source"] == "edited"
    assert data["input"]["edited_mask"] == str(mask_path) and data["input"]["edited_mask_name"] == "half.nii.gz"
    assert data["input"]["edited_mask_sha256"] == hashlib.sha256(mask_path.read_bytes()).hexdigest()
    voxels = int(half.sum())
    assert data["metrics"]["voxels"] == voxels and data["metrics"]["mtv_ml"] == pytest.approx(voxels * 0.027, abs=1e-3)
    assert data["metrics"]["suv_mean"] == pytest.approx((8.0 * (voxels - 1) + 9.0) / voxels, abs=1e-4)
    assert data["mtv"] == {"method": "edited", "label": "edited MTV (rescore)", "check": data["mtv"]["check"],
                           "methods": {}}
    where = np.argwhere(half)
    centre = physical(pet, (where.min(axis=0) + where.max(axis=0)) / 2.0)
    location = data["location"]
    assert (location["method"], location["note"]) == ("edited mask", "centre of the edited MTV's largest part")
    np.testing.assert_allclose(location["center_lps"], centre, atol=1e-6)
    np.testing.assert_allclose(location["field_center_lps"], centre, atol=1e-6)
    np.testing.assert_array_equal(read_array(out / "mtv.nii.gz")[0] > 0, half)
    assert "mtv_methods" not in result.outputs and "mtv_probability" not in result.outputs
    assert "mtv" not in result.timings_s
    assert result.scores.outcome.samples == 2 and result.scores.outcome != analysed["result"].scores.outcome


def test_the_rescore_gives_the_network_the_edited_mask_itself(case, tiny_model, monkeypatch):
    """Two masks with the same box (so the same field and crop) but other voxels: the outcome head
    and Grad-CAM are given each mask itself, on the crop's grid; the same mask twice, the same scores."""
    from MTLRadiomicsLib.analysis.inference import mask_to_crop

    pet = case["pet"]
    full = np.zeros(SHAPE, bool)
    full[10:19, 12:21, 16:25] = True
    hollow = full.copy()
    hollow[12:17, 14:19, 18:23] = False
    given, explained = [], []
    predict, cam = engine.predict, engine.gradcam_all_scales

    def predict_spy(network, crop, device, samples, method, mask_crop, *rest):
        given.append((crop, mask_crop))
        return predict(network, crop, device, samples, method, mask_crop, *rest)

    def cam_spy(network, image, target, mask=None, *rest):
        explained.append(None if mask is None else mask.detach().cpu().numpy()[0, 0])
        return cam(network, image, target, mask, *rest)

    monkeypatch.setattr(engine, "predict", predict_spy)
    monkeypatch.setattr(engine, "gradcam_all_scales", cam_spy)
    results = []
    for name, mask in (("full", full), ("hollow", hollow), ("full_again", full)):
        path = write_mask(mask, pet, case["tmp"] / f"{name}.nii.gz")
        results.append(engine.analyze(case["path"], case["tmp"] / f"box_{name}", options(case, tiny_model),
                                      edited_mask=path))
    assert results[0].location.field_center_lps == results[1].location.field_center_lps
    for (crop, mask_crop), seen, mask in zip(given, explained, (full, hollow, full)):
        expected = mask_to_crop(mask.astype(np.uint8), pet, crop)
        np.testing.assert_allclose(mask_crop, expected)
        np.testing.assert_allclose(seen, expected)
    assert not np.allclose(given[0][1], given[1][1])
    assert results[0].scores.outcome == results[2].scores.outcome
    assert results[0].scores.pathology == results[2].scores.pathology


def test_a_box_grows_the_mtv_from_its_hottest_voxel_and_keeps_it_inside(case, tiny_model):
    pet = case["pet"]
    centres = centres_lps(pet)
    # LPS corners: the sphere's voxels with z index <= 14 (the grid's z runs along -z in LPS), +- 1 mm
    inside = case["sphere"].copy()
    inside[CENTRE_ZYX[0] + 1:] = False
    points = centres[inside]
    lo, hi = points.min(axis=0) - 1.0, points.max(axis=0) + 1.0
    to_ras = (lambda p: (-p[0], -p[1], p[2]))
    result = engine.analyze(case["path"], case["tmp"] / "box", options(case, tiny_model, point=None,
                                                                      box=(to_ras(lo), to_ras(hi))))
    within = np.all((centres >= lo) & (centres <= hi), axis=-1)
    mtv = read_array(case["tmp"] / "box" / "mtv.nii.gz")[0] > 0
    np.testing.assert_array_equal(mtv, case["sphere"] & within)
    assert result.location.method == "box"
    np.testing.assert_allclose(result.location.center_lps, physical(pet, CENTRE_ZYX), atol=1e-6)   # the 9 SUV voxel
    size = hi - lo
    assert result.location.note == (f"box {size[0]:.0f} x {size[1]:.0f} x {size[2]:.0f} mm; the MTV is grown from "
                                    "its hottest voxel and kept inside it")


def test_a_point_given_in_lps_is_the_same_lesion(case, analysed, tiny_model):
    x, y, z = case["ras"]
    result = engine.analyze(case["path"], case["tmp"] / "lps", options(case, tiny_model, point=(-x, -y, z),
                                                                      point_system="lps"))
    assert result.location.center_lps == analysed["result"].location.center_lps
    assert result.metrics == analysed["result"].metrics


def test_a_point_in_the_background_withholds_the_scores(case, tiny_model):
    pet = case["pet"]
    x, y, z = physical(pet, (3, 3, 3))
    out = case["tmp"] / "background"
    result = engine.analyze(case["path"], out, options(case, tiny_model, point=(-x, -y, z)))
    scores = result.scores
    assert scores.withheld and scores.outcome is None and scores.pathology == {} and scores.seed is None
    assert result.explanation["scales"] == [] and result.explanation["note"] == "no heatmaps: the scores were withheld"
    assert not any(name.startswith("gradcam") for name in result.outputs) and result.domain == {}
    assert any(w.startswith("the point does not lie in FDG-avid tissue") for w in result.warnings)
    assert "inference" not in result.timings_s and "gradcam" not in result.timings_s


@pytest.mark.parametrize("change, message", [
    ({"point": (500.0, 500.0, 500.0)},
     "the point (500.0, 500.0, 500.0) (RAS) lies outside the PET volume; check the coordinates and --lps"),
    ({"box": ((0, 0, 0), (1, 1, 1))}, "give either --point or --box, not both"),
    ({"point_system": "XYZ"}, "the point coordinate system must be RAS or LPS"),
    ({"point": None, "box": ((500.0, 500.0, 500.0), (510.0, 510.0, 510.0))},
     "the box centre lies outside the PET volume; check the corners"),
])
def test_bad_locations_are_refused_and_write_nothing(case, tiny_model, change, message):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    out = case["tmp"] / "refused"
    with pytest.raises(MTLRadiomicsError) as error:
        engine.analyze(case["path"], out, options(case, tiny_model, **change))
    assert str(error.value) == message
    assert not out.exists()


def test_a_box_between_voxel_centres_holds_nothing(case, tiny_model):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    pet = case["pet"]
    a, b = physical(pet, (10, 10, 10)), physical(pet, (10.2, 10.2, 10.2))
    box = tuple((-p[0], -p[1], p[2]) for p in (a + 0.5 * (b - a) / np.abs(b - a) * 0.6, b + 0.5 * (b - a) / np.abs(b - a) * 0.6))
    with pytest.raises(MTLRadiomicsError, match="^the box holds no PET voxel; check the corners$"):
        engine.analyze(case["path"], case["tmp"] / "nobox", options(case, tiny_model, point=None, box=box))


def test_an_empty_edited_mask_is_refused(case, tiny_model):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    path = write_mask(np.zeros(SHAPE, bool), case["pet"], case["tmp"] / "empty.nii.gz")
    with pytest.raises(MTLRadiomicsError, match=r"^empty.nii.gz: the mask is empty \(every voxel is 0\)$"):
        engine.analyze(case["path"], case["tmp"] / "empty", options(case, tiny_model), edited_mask=path)
    assert not (case["tmp"] / "empty").exists()


def test_a_missing_model_folder_is_named(case, tmp_path):
    from MTLRadiomicsLib.errors import ModelFileError

    with pytest.raises(ModelFileError) as error:
        engine.analyze(case["path"], tmp_path / "out", options(case, tmp_path / "nowhere"))
    assert str(error.value).startswith(f"no model '{tmp_path / 'nowhere'}': give a model folder or one of the "
                                       "installed models: default (")


# --------------------------------------------------------------------------- scores, summaries, fallbacks (fakes)
def fake_loaded(kind="binary", class_names=("lung", "sarcoma"), calibration=None, outcome=None, tasks=("outcome",)):
    card = SimpleNamespace(class_names=list(class_names), calibration=calibration or {},
                           outcome=outcome if outcome is not None else {"meaning": "probability of response"})
    return SimpleNamespace(card=card, config=SimpleNamespace(outcome_kind=kind, tasks=list(tasks)))


def fake_check(withheld=""):
    return SimpleNamespace(withheld_reason=withheld)


def prediction(outcome=(0.2, 0.4), survival=None, classes=((0.9, 0.1), (0.7, 0.3))):
    return SimpleNamespace(outcome_samples=None if outcome is None else np.array(outcome),
                           survival_samples=None if survival is None else np.array(survival),
                           class_samples=None if classes is None else np.array(classes))


def test_scores_hold_every_head_with_its_estimate():
    loaded = fake_loaded(outcome={"meaning": "probability of response", "survival_meaning": "risk of death"})
    scores = engine._scores(prediction(survival=(1.0, 2.0, 3.0)), loaded, AnalysisOptions(samples=2), "edited",
                            fake_check())
    assert scores.outcome == engine.Estimate(0.3, round(0.02 ** 0.5, 4), 2)
    assert scores.survival == engine.Estimate(2.0, 1.0, 3)
    assert scores.pathology == {"lung": engine.Estimate(0.8, round(0.02 ** 0.5, 4), 2),
                                "sarcoma": engine.Estimate(0.2, round(0.02 ** 0.5, 4), 2)}
    assert (scores.outcome_kind, scores.outcome_meaning, scores.mask_source) == ("binary", "probability of response",
                                                                                 "edited")
    assert scores.survival_meaning == "risk of death" and scores.withheld == "" and scores.pathology_note == ""
    assert scores.uncertainty == "mean ± sd over 2 samples, Monte-Carlo dropout"
    assert scores.domain == "" and scores.calibration == "uncalibrated"


def test_scores_without_class_names_number_the_classes_and_tta_is_named():
    scores = engine._scores(prediction(outcome=None), fake_loaded(class_names=()),
                            AnalysisOptions(samples=5, uncertainty="tta"), "predicted", fake_check())
    assert list(scores.pathology) == ["class 0", "class 1"] and scores.outcome is None and scores.survival is None
    assert scores.uncertainty == "mean ± sd over 5 samples, test-time augmentation (flips, shifts)"
    assert scores.survival_meaning == ""


def test_scores_outside_the_domain_hide_the_pathology_and_say_so():
    from MTLRadiomicsLib.analysis.domain import DomainCheck

    outside = DomainCheck(inside=False, checked=True, reasons=["the lesion is in the thigh"])
    scores = engine._scores(prediction(), fake_loaded(calibration={"data": "fold 5"}), AnalysisOptions(samples=2),
                            "predicted", fake_check(), outside)
    assert scores.pathology == {} and scores.domain == "outside" and scores.outcome is not None
    assert scores.pathology_note == ("not shown: the lesion is outside the model's training domain, so no class the "
                                     "model knows (lung, sarcoma) can be told")
    assert scores.calibration == "temperature scaling fitted on fold 5"
    inside = engine._scores(prediction(), fake_loaded(calibration={"method": "temperature"}), AnalysisOptions(samples=2),
                            "predicted", fake_check(), DomainCheck(inside=True, checked=True))
    assert inside.domain == "inside" and set(inside.pathology) == {"lung", "sarcoma"} and inside.pathology_note == ""
    assert inside.calibration == "temperature scaling fitted on held-out data"
    unchecked = engine._scores(prediction(), fake_loaded(), AnalysisOptions(samples=2), "predicted", fake_check(),
                               DomainCheck(inside=True, checked=False))
    assert unchecked.domain == ""


def test_withheld_scores_say_why():
    scores = engine._scores(None, fake_loaded(), AnalysisOptions(), "predicted", fake_check("the MTV is empty"))
    assert (scores.withheld, scores.outcome, scores.pathology, scores.survival) == ("the MTV is empty", None, {}, None)
    nothing = engine._scores(None, fake_loaded(), AnalysisOptions(), "predicted", fake_check())
    assert nothing.withheld == "the model has no outcome or pathology head"
    kept = engine._scores(prediction(), fake_loaded(), AnalysisOptions(), "predicted", fake_check("joined"))
    assert kept.withheld == "joined"


def test_the_mtv_summary_of_an_analysis_and_of_a_rescore():
    check = SimpleNamespace(to_dict=lambda: {"valid": True})
    assert engine._mtv_summary(None, check, AnalysisOptions(), edited=True) == {
        "method": "edited", "label": "edited MTV (rescore)", "check": {"valid": True}, "methods": {}}
    mtvs = SimpleNamespace(liver=None, liver_reason="no liver in the scan", chosen="suvmax41", fill_holes=True,
                           seed_zyx=(1, 2, 3), table={"suvmax41": {"available": True}})
    assert engine._mtv_summary(mtvs, check, AnalysisOptions(), edited=False) == {
        "method": "suvmax41", "label": "41 % of SUVmax (EANM)", "fill_holes": True, "seed_voxel_zyx": [1, 2, 3],
        "check": {"valid": True}, "methods": {"suvmax41": {"available": True}},
        "liver_reference": {"found": False, "reason": "no liver in the scan"}}
    mtvs.liver = SimpleNamespace(to_dict=lambda: {"found": True, "mean": 2.1})
    assert engine._mtv_summary(mtvs, check, AnalysisOptions(), edited=False)["liver_reference"] == {"found": True,
                                                                                                  "mean": 2.1}


def test_the_cuda_out_of_memory_fallback_runs_again_on_the_cpu():
    devices, warnings = [], []
    network = torch.nn.Linear(2, 2)
    loaded = SimpleNamespace(network=network)

    def work(device):
        devices.append(device)
        if device.type == "cuda":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return "done"

    result, device = engine._on_device(loaded, torch.device("cuda"), warnings, work)
    assert (result, device.type, [d.type for d in devices]) == ("done", "cpu", ["cuda", "cpu"])
    assert warnings == ["the GPU ran out of memory; the analysis ran on the CPU"]
    assert next(network.parameters()).device.type == "cpu"


def test_other_errors_are_not_taken_for_a_lack_of_memory():
    def failing(message):
        def work(device):
            raise RuntimeError(message)
        return work

    loaded = SimpleNamespace(network=torch.nn.Linear(2, 2))
    warnings = []
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine._on_device(loaded, torch.device("cuda"), warnings, failing("shape mismatch"))
    with pytest.raises(RuntimeError, match="out of memory"):            # on the CPU there is nothing to fall back to
        engine._on_device(loaded, torch.device("cpu"), warnings, failing("DefaultCPUAllocator: out of memory"))
    assert warnings == []
    assert engine._on_device(loaded, torch.device("cpu"), warnings, lambda d: d.type) == ("cpu", torch.device("cpu"))


def test_the_fingerprint_is_the_sha256_of_the_files_in_their_order(tmp_path):
    files = []
    for name, content in (("b.dcm", b"second slice " * 5000), ("a.dcm", b"first" * 300000)):
        (tmp_path / name).write_bytes(content)
        files.append(str(tmp_path / name))
    pet = PetVolume(suv=np.zeros((2, 2, 2), np.float32), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), source=str(tmp_path / "a.dcm"), dicom_files=files)
    expected = hashlib.sha256((tmp_path / "b.dcm").read_bytes() + (tmp_path / "a.dcm").read_bytes()).hexdigest()
    assert engine.fingerprint(pet) == expected
    single = PetVolume(suv=pet.suv, spacing=pet.spacing, origin=pet.origin, direction=pet.direction,
                       source=str(tmp_path / "a.dcm"))
    assert engine.fingerprint(single) == hashlib.sha256((tmp_path / "a.dcm").read_bytes()).hexdigest()


def test_the_lesion_suv_max_is_its_voxel_and_ras_position():
    pet = oblique_pet()
    mask = np.zeros(pet.shape, bool)
    assert engine.lesion_suv_max(pet, mask) == {"lesion_suv_max": None, "lesion_suv_max_ras": None}
    pet.suv[:] = 1.0
    pet.suv[3, 4, 5] = 7.5
    mask[3, 4, 4] = True                                  # the hot voxel touches the MTV
    found = engine.lesion_suv_max(pet, mask)
    x, y, z = centres_lps(pet)[3, 4, 5]
    assert found["lesion_suv_max"] == 7.5
    assert found["lesion_suv_max_ras"] == [round(-x, 3), round(-y, 3), round(z, 3)]


def test_a_position_of_zero_is_written_without_a_sign():
    pet = PetVolume(suv=np.ones((3, 3, 3), np.float32), spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    found = engine.lesion_suv_max(pet, np.pad(np.ones((1, 1, 1), bool), ((0, 2), (0, 2), (0, 2))))
    assert [str(v) for v in found["lesion_suv_max_ras"]] == ["0.0", "0.0", "0.0"]


def test_the_stopwatch_adds_up_the_time_of_each_stage(monkeypatch):
    ticks = iter([10.0, 10.25, 20.0, 20.5, 30.0, 31.0])
    monkeypatch.setattr(engine.time, "perf_counter", lambda: next(ticks))
    clock = engine.Stopwatch()
    with clock("load"):
        pass
    with clock("model"):
        pass
    with pytest.raises(ValueError):
        with clock("load"):
            raise ValueError("a stage that fails still counts")
    assert clock.times == {"load": 1.25, "model": 0.5}


def test_a_dicom_series_gives_a_dicom_seg_unless_the_mtv_is_empty(tiny_model, tmp_path):
    from synthetic_dicom import small_pet, write_series

    files = write_series(tmp_path / "dicom")
    pet = small_pet()
    x, y, z = pet.index_to_physical((6.0, 6.0, 2.0))              # in the hot spot
    chosen = AnalysisOptions(point=(-x, -y, z), model=tiny_model, samples=2, mtv_method="suv2.5", report=False,
                             device="cpu")
    result = engine.analyze(tmp_path / "dicom", tmp_path / "seg", chosen)
    assert result.outputs["dicom_seg"] == "mtv_seg.dcm" and (tmp_path / "seg" / "mtv_seg.dcm").is_file()
    assert result.input["files"] == len(files) == 6 and result.input["format"] == "dicom"
    ordered = sorted(files, key=lambda f: float(__import__("pydicom").dcmread(f).ImagePositionPatient[2]))
    digest = hashlib.sha256(b"".join(Path(f).read_bytes() for f in ordered)).hexdigest()
    assert result.input["sha256"] == digest
    empty = engine.analyze(tmp_path / "dicom", tmp_path / "noseg",
                           AnalysisOptions(**{**chosen.__dict__, "mtv_method": "network"}))
    assert "dicom_seg" not in empty.outputs and not (tmp_path / "noseg" / "mtv_seg.dcm").exists()
    assert "no DICOM SEG written: the MTV is empty" in empty.warnings


def test_a_report_is_written_when_asked_and_explains_the_segmentation(case, tiny_model):
    out = case["tmp"] / "reported"
    result = engine.analyze(case["path"], out, options(case, tiny_model, report=True, explain="segmentation"))
    assert (result.outputs["report_pdf"], result.outputs["report_html"]) == ("report.pdf", "report.html")
    assert (out / "report.pdf").read_bytes()[:5] == b"%PDF-" and "<html" in (out / "report.html").read_text().lower()
    assert "report" in result.timings_s and result.explanation["target"] == "segmentation"
    assert json.loads((out / "result.json").read_text())["outputs"]["report_pdf"] == "report.pdf"


def test_the_domain_check_is_given_the_lesion_s_facts(monkeypatch):
    """The card's domain against the body region at the lesion's centre, the series' tracer, the MTV's
    volume and SUVmax, the PET's voxel size and the outcome head's features."""
    regions = importlib.import_module("MTLRadiomicsLib.localisation.body_region")   # the package shadows the name

    asked = []

    def region_at(pet, point):
        asked.append((pet, point))
        return SimpleNamespace(name="lower_limb", reason="below the pelvis")

    monkeypatch.setattr(regions, "body_region", region_at)
    pet = PetVolume(suv=np.ones((4, 4, 4), np.float32), spacing=(4.0, 4.0, 2.0), origin=(0.0, 0.0, 0.0),
                    direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), series={"Radiopharmaceutical": "Fluciclovine"})
    domain = {"tracer": "FDG", "body_regions": ["thorax", "abdomen"], "volume_ml": [10.0, 20.0],
              "suv_max": [5.0, 6.0], "voxel_mm": {"in_plane": [2.0, 3.0], "slice": [3.0, 3.0]},
              "features": {"mean": [0.0, 0.0], "sd": [1.0, 1.0], "max_distance": 1.0}}
    loaded = SimpleNamespace(card=SimpleNamespace(domain=domain))
    location = SimpleNamespace(center_lps=(1.0, 2.0, 3.0))
    check = engine._domain(loaded, pet, location, {"mtv_ml": 50.0, "suv_max": 9.5},
                           SimpleNamespace(features=np.array([3.0, 4.0])))
    assert asked == [(pet, (1.0, 2.0, 3.0))]
    assert check.checked and not check.inside
    assert check.reasons == [
        "the tracer is Fluciclovine, the model knows FDG only",
        "the lesion lies in the lower limb; the model was trained on thorax, abdomen lesions",
        "its volume (50 ml) lies outside the training range (10-20 ml)",
        "its SUVmax (9.5) lies outside the training range (5-6)",
        "the in-plane voxel size (4.00 mm) lies outside the training range (2.00-3.00 mm)",
        "the slice spacing (2.00 mm) lies outside the training range (3.00-3.00 mm)",
        f"the features the outcome head sees are unlike every training case (distance {12.5 ** 0.5:.2f}, training "
        "cases up to 1.00)"]
    assert check.facts["body_region_reason"] == "below the pelvis" and check.facts["voxel_mm"] == [4.0, 4.0, 2.0]
    # without a prediction there are no features to compare; a PET without series facts has no tracer
    bare = PetVolume(suv=pet.suv, spacing=(3.0, 3.0, 3.0), origin=pet.origin, direction=pet.direction)
    quiet = engine._domain(loaded, bare, location, {"mtv_ml": 15.0, "suv_max": 5.5}, None)
    assert quiet.reasons == ["the lesion lies in the lower limb; the model was trained on thorax, abdomen lesions"]
    assert quiet.facts["tracer"] == "" and "feature_distance" not in quiet.facts


def test_a_card_without_a_domain_is_not_checked(monkeypatch):
    regions = importlib.import_module("MTLRadiomicsLib.localisation.body_region")   # the package shadows the name

    monkeypatch.setattr(regions, "body_region", lambda *a: pytest.fail("no body region without a domain"))
    for domain in (None, {}):
        check = engine._domain(SimpleNamespace(card=SimpleNamespace(domain=domain)), oblique_pet(),
                               SimpleNamespace(center_lps=(0.0, 0.0, 0.0)), {"mtv_ml": 1.0}, None)
        assert (check.inside, check.checked, check.reasons, check.facts) == (True, False, [], {})


def test_a_pet_of_another_tracer_is_refused_when_read(tmp_path):
    from synthetic_dicom import edit_headers, make_lu177_xspect, write_series

    from MTLRadiomicsLib.errors import MTLRadiomicsError

    files = write_series(tmp_path / "fdg")
    pet, digest = engine.read_pet(tmp_path / "fdg", AnalysisOptions())
    assert pet.shape == (6, 12, 12) and digest == engine.fingerprint(pet) and len(pet.dicom_files) == len(files)
    edit_headers(files, make_lu177_xspect)
    with pytest.raises(MTLRadiomicsError, match="F-18 FDG"):
        engine.read_pet(tmp_path / "fdg", AnalysisOptions())


def make_model(folder, **config_changes):
    """A tiny random model (seed 0) with other heads or a card with a training domain."""
    from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config, save_model

    domain = config_changes.pop("domain", {})
    survival_meaning = config_changes.pop("survival_meaning", None)
    torch.manual_seed(0)
    outcome = {"kind": "binary", "meaning": "probability of response to treatment"}
    if survival_meaning:
        outcome["survival_meaning"] = survival_meaning
    card = ModelCard(name="tiny-variant", architecture={}, domain=domain, outcome=outcome,
                     preprocessing=Preprocessing(spacing_mm=(3.0, 3.0, 3.0), crop_size=(32, 32, 32)))
    network = MultiTaskNet(named_config("tiny", **config_changes))
    save_model(network, card, folder)
    return folder


def test_a_lesion_outside_the_training_domain_is_marked_and_its_pathology_hidden(case, tmp_path):
    model = make_model(tmp_path / "domain", domain={"volume_ml": [100.0, 200.0]})
    result = engine.analyze(case["path"], tmp_path / "out", options(case, model))
    volume = 123 * 0.027
    reason = f"its volume ({volume:.3g} ml) lies outside the training range (100-200 ml)"
    assert result.domain["checked"] is True and result.domain["inside"] is False
    assert result.domain["reasons"] == [reason]
    assert f"the scores are outside the model's training domain: {reason}" in result.warnings
    assert result.scores.domain == "outside" and result.scores.pathology == {}
    assert result.scores.pathology_note.startswith("not shown: the lesion is outside the model's training domain")
    assert result.scores.outcome is not None
    inside = engine.analyze(case["path"], tmp_path / "inside",
                            options(case, make_model(tmp_path / "wide", domain={"volume_ml": [2.0, 5.0]})))
    assert inside.scores.domain == "inside" and inside.scores.pathology and inside.domain["reasons"] == []
    assert not any("training domain" in w for w in inside.warnings)


def test_a_model_with_metric_features_and_a_survival_head_is_given_the_mtv_metrics(case, tmp_path, monkeypatch):
    from MTLRadiomicsLib.model.metric_features import metric_vector

    model = make_model(tmp_path / "metrics", metric_features=True, survival=True, survival_meaning="risk of death")
    seen = []
    predict = engine.predict

    def spy(network, crop, device, samples, method, mask_crop, features, *rest):
        seen.append(features)
        return predict(network, crop, device, samples, method, mask_crop, features, *rest)

    monkeypatch.setattr(engine, "predict", spy)
    result = engine.analyze(case["path"], tmp_path / "out", options(case, model))
    np.testing.assert_allclose(seen[0], metric_vector(result.metrics))
    assert result.scores.survival is not None and result.scores.survival.samples == 2
    assert result.scores.survival_meaning == "risk of death"


def test_a_segmentation_only_model_has_no_scores_to_explain(case, tmp_path):
    model = make_model(tmp_path / "seg", classification=False, outcome=False)
    result = engine.analyze(case["path"], tmp_path / "out", options(case, model))
    assert result.scores.withheld == "the model has no outcome or pathology head"
    assert result.explanation["note"] == "no heatmaps: the model has no score to explain"
    assert result.explanation["scales"] == [] and result.scores.seed is None
    assert result.metrics["voxels"] == 123                         # the MTV and its metrics still come


def test_seed_zero_is_a_seed(case, tiny_model):
    result = engine.analyze(case["path"], case["tmp"] / "seed0", options(case, tiny_model, seed=0))
    assert result.scores.seed == 0


def test_the_record_of_when_and_what(case, analysed):
    import re

    data = analysed["json"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", data["created"])
    assert "source" not in data["pet"] and data["pet"]["format"] == "nifti"
    assert data["pet"]["size_xyz"] == list(SHAPE[::-1]) and data["pet"]["spacing_mm"] == [3.0, 3.0, 3.0]
    from MTLRadiomicsLib import __version__

    assert data["engine_version"] == __version__
    assert data["timings_s"] == analysed["result"].timings_s and all(v >= 0 for v in data["timings_s"].values())
    assert data["warnings"] == analysed["result"].warnings


def test_an_mtv_in_two_parts_places_the_field_on_the_larger_and_says_so(case, tiny_model):
    pet = case["pet"]
    mask = case["sphere"].copy()
    mask[2:4, 2:4, 2:4] = True                                   # a small second part far from the sphere
    path = write_mask(mask, pet, case["tmp"] / "two_parts.nii.gz")
    result = engine.analyze(case["path"], case["tmp"] / "two_parts", options(case, tiny_model), edited_mask=path)
    np.testing.assert_allclose(result.location.field_center_lps, physical(pet, CENTRE_ZYX), atol=1e-6)
    assert result.location.field_note and result.location.field_note in result.warnings


def test_the_location_of_an_edited_mask_and_of_a_box_in_both_frames(case, tiny_model):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    pet = case["pet"]
    loaded = SimpleNamespace(card=SimpleNamespace(preprocessing=SimpleNamespace(crop_size=(16, 24, 32),
                                                                                spacing_mm=(2.0, 3.0, 4.0))))
    half = case["sphere"].copy()
    half[:, :, CENTRE_ZYX[2] + 1:] = False
    where = np.argwhere(half)
    centre = physical(pet, (where.min(axis=0) + where.max(axis=0)) / 2.0)
    location, within = engine._locate(pet, AnalysisOptions(), loaded, half.astype(np.uint8), [])
    assert within is None and location.method == "edited mask"
    np.testing.assert_allclose(location.center_lps, centre, atol=1e-6)
    np.testing.assert_allclose(location.center_ras, (-centre[0], -centre[1], centre[2]), atol=1e-6)
    assert location.crop_size_mm == (64.0, 72.0, 64.0)               # x, y, z: 32 x 2, 24 x 3, 16 x 4 mm
    with pytest.raises(MTLRadiomicsError, match="^the edited mask is empty: nothing to score$"):
        engine._locate(pet, AnalysisOptions(), loaded, np.zeros(SHAPE, np.uint8), [])
    hot = physical(pet, CENTRE_ZYX)
    box = ((-hot[0] - 4, -hot[1] - 4, hot[2] - 4), (-hot[0] + 4, -hot[1] + 4, hot[2] + 4))
    location, within = engine._locate(pet, AnalysisOptions(point=None, box=box), loaded, None, [])
    np.testing.assert_allclose(location.center_ras, (-hot[0], -hot[1], hot[2]), atol=1e-6)
    assert location.crop_size_mm == (64.0, 72.0, 64.0) and within.sum() == 27


def test_two_lesions_found_automatically_the_likelier_analysed_and_both_listed(case, tiny_model, tmp_path):
    pet = case["pet"]
    suv = pet.suv.copy()
    k, j, i = np.indices(SHAPE)
    small = ((k - 22) ** 2 + (j - 8) ** 2 + (i - 9) ** 2) <= 4
    suv[small] = 5.0
    path = tmp_path / "two.nii.gz"
    sitk.WriteImage(PetVolume(suv=suv, spacing=pet.spacing, origin=pet.origin, direction=pet.direction).to_sitk(),
                    str(path))
    result = engine.analyze(path, tmp_path / "out", options(case, tiny_model, point=None))
    location = result.location
    assert location.method == "automatic" and len(location.candidates) >= 2
    assert (f"{len(location.candidates)} FDG-avid candidates found; the most likely one was analysed (the others "
            "are listed in result.json); give --point to choose another") in result.warnings
    np.testing.assert_allclose(location.center_lps, location.candidates[0]["center_lps"], atol=1e-6)
    x, y, z = location.center_lps
    assert location.center_ras == (-x, -y, z) and location.crop_size_mm == (96.0, 96.0, 96.0) and location.note
    assert result.metrics["voxels"] in (123, int(small.sum()))          # one of the two lesions, whole


def test_a_single_candidate_gives_no_warning(case, tiny_model):
    result = engine.analyze(case["path"], case["tmp"] / "auto_one", options(case, tiny_model, point=None))
    assert result.location.method == "automatic" and len(result.location.candidates) == 1
    assert not any("candidates found" in w for w in result.warnings)
    np.testing.assert_allclose(result.location.center_lps, physical(case["pet"], CENTRE_ZYX), atol=3.1)


def test_meanings_missing_from_the_card_are_empty():
    loaded = fake_loaded(outcome={})
    scores = engine._scores(prediction(survival=(1.0, 2.0)), loaded, AnalysisOptions(samples=2), "predicted",
                            fake_check())
    assert scores.outcome_meaning == "" and scores.survival_meaning == ""
    without = engine._scores(prediction(), fake_loaded(outcome={"survival_meaning": "risk"}), AnalysisOptions(),
                             "predicted", fake_check())
    assert without.survival is None and without.survival_meaning == ""


def test_the_fallback_moves_the_network_to_the_cpu():
    moves = []
    loaded = SimpleNamespace(network=SimpleNamespace(to=lambda device: moves.append(device)))

    def work(device):
        if device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return 1

    assert engine._on_device(loaded, torch.device("cuda"), [], work) == (1, torch.device("cpu"))
    assert moves == [torch.device("cpu")]


def test_the_pet_is_read_with_the_users_facts_and_series(tmp_path):
    from synthetic_dicom import write_series

    from MTLRadiomicsLib.errors import MTLRadiomicsError
    from MTLRadiomicsLib.pet_input.suv import SuvOverrides

    write_series(tmp_path / "fdg")                                    # 70 kg in the headers
    plain, _ = engine.read_pet(tmp_path / "fdg", AnalysisOptions())
    heavier, _ = engine.read_pet(tmp_path / "fdg", AnalysisOptions(overrides=SuvOverrides(weight_kg=140.0)))
    np.testing.assert_allclose(heavier.suv, 2.0 * plain.suv, rtol=1e-5)     # SUV is proportional to the weight
    with pytest.raises(MTLRadiomicsError, match="1.2.3.4.5"):
        engine.read_pet(tmp_path / "fdg", AnalysisOptions(series_uid="1.2.3.4.5"))


def test_an_existing_output_folder_is_replaced_only_when_asked(case, tiny_model, tmp_path):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("an earlier run")
    with pytest.raises(MTLRadiomicsError, match="already exists; pass --overwrite"):
        engine.analyze(case["path"], out, options(case, tiny_model))
    assert (out / "old.txt").exists()
    engine.analyze(case["path"], out, options(case, tiny_model), overwrite=True)
    assert not (out / "old.txt").exists() and (out / "result.json").exists()


def test_a_kept_model_and_a_pet_reader_are_used_as_given(case, tiny_model, tmp_path):
    """A server hands its loaded model and its cache of scans; neither is read again."""
    from MTLRadiomicsLib.model.model_file import load_model

    loaded = load_model(make_model(tmp_path / "kept", domain={"volume_ml": [2.0, 5.0]}))
    reads = []

    def reader(path, chosen, captured):
        reads.append(path)
        return case["pet"], "ab" * 32

    result = engine.analyze("not a file", tmp_path / "out", options(case, tmp_path / "no model here"),
                            loaded=loaded, pet_reader=reader)
    assert reads == ["not a file"] and result.input["sha256"] == "ab" * 32
    assert result.model["folder"] == str(tmp_path / "kept") and result.scores.domain == "inside"
    assert result.scores.seed == int(("ab" * 32)[:15], 16)


def test_cuda_asked_for_without_cuda_runs_on_the_cpu_and_says_so(case, tiny_model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = engine.analyze(case["path"], case["tmp"] / "cuda", options(case, tiny_model, device="cuda"))
    assert result.device == "cpu"
    assert ("CUDA was asked for but is not available (no GPU or a CPU-only PyTorch); ran on the CPU"
            in result.warnings)


def test_the_network_mtv_reports_its_progress_and_a_report_its_stage(case, tiny_model, tmp_path):
    import io

    from MTLRadiomicsLib.analysis.progress import Progress

    stream = io.StringIO()
    engine.analyze(case["path"], tmp_path / "out", options(case, tiny_model, mtv_method="network", report=True),
                   progress=Progress("json", stream))
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mtv = [line for line in lines if line["stage"] == "mtv"]
    assert mtv[0]["message"] == "segmenting the MTV (network (sliding windows))" and len(mtv) > 1
    assert all(line["message"] for line in mtv) and {line["fraction"] for line in mtv[1:]} == {0.32}
    assert ("report", 0.88, "writing the report") in [(x["stage"], x["fraction"], x["message"]) for x in lines]


def test_an_implausible_edited_mask_is_named_as_the_edited_mtv(case, tiny_model):
    pet = case["pet"]
    background = np.zeros(SHAPE, bool)
    background[2:5, 2:5, 2:5] = True
    path = write_mask(background, pet, case["tmp"] / "background_mask.nii.gz")
    result = engine.analyze(case["path"], case["tmp"] / "background_mask", options(case, tiny_model),
                            edited_mask=path)
    assert result.scores.withheld and result.scores.outcome is None
    assert any("edited MTV" in w for w in result.warnings)


def test_models_with_one_score_head_still_score(case, tmp_path):
    from MTLRadiomicsLib.errors import MTLRadiomicsError

    classes_model = make_model(tmp_path / "c", outcome=False)
    with pytest.raises(MTLRadiomicsError) as error:              # the default target is the outcome
        engine.analyze(case["path"], tmp_path / "refused", options(case, classes_model))
    assert str(error.value) == ("the model 'tiny-variant' has no outcome head to explain; use --explain "
                                "segmentation")
    assert not (tmp_path / "refused").exists()
    only_classes = engine.analyze(case["path"], tmp_path / "classes",
                                  options(case, classes_model, explain="segmentation"))
    assert only_classes.scores.pathology and only_classes.scores.outcome is None and not only_classes.scores.withheld
    only_outcome = engine.analyze(case["path"], tmp_path / "outcome",
                                  options(case, make_model(tmp_path / "o", classification=False)))
    assert only_outcome.scores.outcome is not None and only_outcome.scores.pathology == {}


def test_test_time_augmentation_uses_the_model_card(case, tiny_model):
    result = engine.analyze(case["path"], case["tmp"] / "tta", options(case, tiny_model, uncertainty="tta"))
    assert result.scores.uncertainty == "mean ± sd over 2 samples, test-time augmentation (flips, shifts)"
    assert result.scores.outcome.samples == 2

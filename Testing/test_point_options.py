"""`analyze --lps` and `--explain segmentation` on a synthetic PET with two lesions placed so that the
same three numbers read as LPS point at one lesion and read as RAS (the default) at the other; the
lesions differ in size, so the MTV tells which one was analysed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib.cli import main
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

SPACING = (4.0, 4.0, 4.0)
ORIGIN = (-96.0, -96.0, -80.0)
SHAPE = (40, 48, 48)                                  # (z, y, x)
# LPS centre (mm) and radius (mm); B is A mirrored through the z axis (RAS <-> LPS).
LESION_A, LESION_B = ((40.0, 32.0, 0.0), 9.0), ((-40.0, -32.0, 0.0), 15.0)
NUMBERS = [str(v) for v in LESION_A[0]]              # the point as typed: A in LPS, B in RAS


def ball(centre_lps, radius) -> np.ndarray:
    k, j, i = np.indices(SHAPE)
    d2 = sum((o + n * s - c) ** 2 for o, n, s, c in zip(ORIGIN, (i, j, k), SPACING, centre_lps))
    return d2 <= radius ** 2


def volume_ml(mask: np.ndarray) -> float:
    return float(mask.sum()) * float(np.prod(SPACING)) / 1000.0


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory) -> Path:
    suv = np.ones(SHAPE, np.float32)
    for centre, radius in (LESION_A, LESION_B):
        suv[ball(centre, radius)] = 8.0
    path = tmp_path_factory.mktemp("mirrored") / "pet.nii.gz"
    sitk.WriteImage(PetVolume(suv=suv, spacing=SPACING, origin=ORIGIN,
                              direction=(1, 0, 0, 0, 1, 0, 0, 0, 1)).to_sitk(), str(path))
    return path


def analyse(pet: Path, out: Path, model: Path, *options: str) -> dict:
    status = main(["analyze", str(pet), "--out", str(out), "--model", str(model), "--samples", "2", "--no-report",
                   "--progress", "none", "--mtv-method", "suv2.5", *options])
    assert status == 0
    return json.loads((out / "result.json").read_text())


@pytest.fixture(scope="module")
def lps_run(mirrored, tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lps") / "out"
    analyse(mirrored, out, tiny_model, "--point", *NUMBERS, "--lps")
    return out


def test_lps_point_is_read_as_lps(lps_run):
    data = json.loads((lps_run / "result.json").read_text())
    assert data["location"]["center_lps"] == pytest.approx(LESION_A[0])
    assert data["location"]["center_ras"] == pytest.approx((-40.0, -32.0, 0.0))
    assert data["metrics"]["mtv_ml"] == pytest.approx(volume_ml(ball(*LESION_A)), rel=1e-6)


def test_without_lps_the_same_numbers_are_ras(mirrored, tiny_model, tmp_path):
    data = analyse(mirrored, tmp_path / "ras", tiny_model, "--point", *NUMBERS)
    assert data["location"]["center_lps"] == pytest.approx(LESION_B[0])
    assert data["metrics"]["mtv_ml"] == pytest.approx(volume_ml(ball(*LESION_B)), rel=1e-6)


def test_lps_box(mirrored, tiny_model, tmp_path):
    (x, y, z), r = LESION_A
    corners = [str(v) for v in (x - 20, y - 20, z - 20, x + 20, y + 20, z + 20)]
    data = analyse(mirrored, tmp_path / "box", tiny_model, "--box", *corners, "--lps")
    assert data["location"]["method"] == "box"
    assert np.linalg.norm(np.asarray(data["location"]["center_lps"]) - np.asarray(LESION_A[0])) <= r
    assert data["metrics"]["mtv_ml"] == pytest.approx(volume_ml(ball(*LESION_A)), rel=1e-6)


def test_explain_segmentation_explains_the_segmentation(mirrored, tiny_model, lps_run, tmp_path):
    """The same analysis with the other Grad-CAM target: the result says so and the maps differ from
    the outcome's (same input, model and point)."""
    out = tmp_path / "seg"
    data = analyse(mirrored, out, tiny_model, "--point", *NUMBERS, "--lps", "--explain", "segmentation")
    assert data["explanation"]["target"] == "segmentation"
    outcome = json.loads((lps_run / "result.json").read_text())
    assert outcome["explanation"]["target"] == "outcome"
    assert data["explanation"]["scales"] == outcome["explanation"]["scales"] != []
    assert data["scores"]["outcome"] == outcome["scores"]["outcome"]        # the target changes no score
    differ = []
    for scale in data["explanation"]["scales"]:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"gradcam_{scale}.nrrd")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(lps_run / f"gradcam_{scale}.nrrd")))
        assert a.min() >= 0.0 and a.max() <= 1.0
        differ.append(not np.allclose(a, b, atol=1e-3))
    assert sum(differ) >= len(differ) // 2, differ

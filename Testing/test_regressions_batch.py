"""`batch` analyses each case at its own row's point: two rows on one PET, each pointing at a
different lesion of a synthetic volume, must each get that lesion's location and MTV. The expected
MTVs are the spheres the test draws itself (SUV 8 on a background of 1, so SUV 2.5 is the sphere)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from MTLRadiomicsLib.cli import main
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

SPACING = (4.0, 4.0, 4.0)
ORIGIN = (-96.0, -96.0, -80.0)          # LPS mm of voxel (0, 0, 0)
SHAPE = (40, 48, 48)                    # (z, y, x)
# Two lesions far apart and of clearly different sizes: (centre voxel (z, y, x), radius mm).
LESIONS = {"small": ((14, 14, 14), 9.0), "large": ((26, 32, 32), 15.0)}


def sphere(centre_zyx, radius_mm) -> np.ndarray:
    k, j, i = np.indices(SHAPE)
    d2 = sum(((a - c) * s) ** 2 for a, c, s in zip((i, j, k), reversed(centre_zyx), SPACING))
    return d2 <= radius_mm ** 2


def ras_of(centre_zyx) -> tuple[float, float, float]:
    k, j, i = centre_zyx
    x, y, z = (o + n * s for o, n, s in zip(ORIGIN, (i, j, k), SPACING))
    return (-x, -y, z)


@pytest.fixture(scope="module")
def two_lesions(tmp_path_factory) -> Path:
    suv = np.ones(SHAPE, np.float32)
    for centre, radius in LESIONS.values():
        suv[sphere(centre, radius)] = 8.0
    path = tmp_path_factory.mktemp("two") / "two_lesions.nii.gz"
    pet = PetVolume(suv=suv, spacing=SPACING, origin=ORIGIN, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    sitk.WriteImage(pet.to_sitk(), str(path))
    return path


def test_each_row_is_analysed_at_its_own_point(two_lesions, tiny_model, tmp_path):
    manifest = tmp_path / "cases.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "pet", "point_x", "point_y", "point_z"])
        for name, (centre, _) in LESIONS.items():
            writer.writerow([name, two_lesions, *ras_of(centre)])
    out = tmp_path / "batch"
    status = main(["batch", str(manifest), "--out", str(out), "--model", str(tiny_model), "--samples", "2",
                   "--no-report", "--progress", "none", "--mtv-method", "suv2.5"])
    assert status == 0
    volume_ml = float(np.prod(SPACING)) / 1000.0
    expected = {name: sphere(c, r).sum() * volume_ml for name, (c, r) in LESIONS.items()}
    assert expected["large"] > 3 * expected["small"]           # the two answers cannot be confused
    with open(out / "summary.csv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle)}
    for name, (centre, _) in LESIONS.items():
        result = json.loads((out / name / "result.json").read_text())
        assert result["location"]["method"] == "point"
        assert result["location"]["center_ras"] == pytest.approx(ras_of(centre))
        assert result["mtv"]["seed_voxel_zyx"] == list(centre)
        assert result["metrics"]["mtv_ml"] == pytest.approx(expected[name], rel=1e-6), name
        assert float(rows[name]["mtv_ml"]) == pytest.approx(expected[name], abs=1e-3), name
        assert result["metrics"]["suv_max"] == pytest.approx(8.0)

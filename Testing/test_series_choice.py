"""Which PET series of a DICOM folder is read: `--series UID` chooses one of several; without it the
attenuation-corrected series wins over a larger uncorrected one, then the series with most images.
Each series is a small synthetic one with its own values, so the SUVs tell which was read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_one_line_error, run_cli
from synthetic_dicom import INJECTION, SERIES_START, edit_headers, small_pet

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.synth.dicom_writer import write_pet_dicom

UID_A, UID_B, UID_NAC = "1.2.826.0.1.3680043.8.498.1001", "1.2.826.0.1.3680043.8.498.1002", \
    "1.2.826.0.1.3680043.8.498.1003"


def write(folder: Path, uid: str, slices: int, scale: float, description: str) -> list[Path]:
    """A series of ``slices`` slices whose SUVs are ``scale`` times small_pet's (first slices)."""
    base = small_pet((max(slices, 6), 12, 12))
    pet = dataclasses.replace(base, suv=base.suv[:slices] * scale)
    files = write_pet_dicom(pet, folder, weight_kg=70.0, injected_dose_bq=3.7e8, injection_datetime=INJECTION,
                            series_datetime=SERIES_START, series_uid=uid)

    def describe(ds, _index):
        ds.SeriesDescription = description

    edit_headers(files, describe)
    return files


@pytest.fixture(scope="module")
def two_pet_series(tmp_path_factory) -> Path:
    """Series A (6 slices, SUV x 1) and B (8 slices, SUV x 2), both attenuation corrected."""
    root = tmp_path_factory.mktemp("two") / "study"
    write(root / "a", UID_A, 6, 1.0, "PET AC A")
    write(root / "b", UID_B, 8, 2.0, "PET AC B")
    return root


@pytest.fixture(scope="module")
def corrected_and_not(tmp_path_factory) -> Path:
    """An attenuation-corrected series (6 slices, SUV x 1) beside a larger uncorrected one (10 slices,
    SUV x 3, CorrectedImage DECY only)."""
    root = tmp_path_factory.mktemp("nac") / "study"
    write(root / "ac", UID_A, 6, 1.0, "PET AC")
    nac = write(root / "nac", UID_NAC, 10, 3.0, "PET NAC")

    def uncorrected(ds, _index):
        ds.CorrectedImage = ["DECY"]

    edit_headers(nac, uncorrected)
    return root


def test_without_series_the_larger_of_two_corrected_series_is_read(two_pet_series):
    pet = load_pet(two_pet_series)
    assert pet.series["SeriesInstanceUID"] == UID_B and pet.size[2] == 8
    assert float(pet.suv.max()) == pytest.approx(18.0, rel=1e-3)
    assert any("PET AC A" in s for s in pet.series["OtherSeriesInFolder"])


@pytest.mark.parametrize("uid, slices, suv_max", [(UID_A, 6, 9.0), (UID_B, 8, 18.0)])
def test_series_uid_chooses_the_series(two_pet_series, uid, slices, suv_max):
    pet = load_pet(two_pet_series, series_uid=uid)
    assert pet.series["SeriesInstanceUID"] == uid and pet.size[2] == slices
    assert float(pet.suv.max()) == pytest.approx(suv_max, rel=1e-3)
    assert {Path(f).parent.name for f in pet.dicom_files} == {"a" if uid == UID_A else "b"}


def test_series_option_on_the_command_line(two_pet_series):
    process = run_cli("info", two_pet_series, "--series", UID_A, "--json")
    assert process.returncode == 0, process.stderr
    summary = json.loads(process.stdout)
    assert summary["series"]["SeriesInstanceUID"] == UID_A and summary["size_xyz"][2] == 6
    assert summary["statistics"]["suv_max"] == pytest.approx(9.0, rel=1e-3)
    missing = run_cli("info", two_pet_series, "--series", "1.2.3.999")
    assert_one_line_error(missing, "series 1.2.3.999 is not in", "without --series")


def test_the_attenuation_corrected_series_wins_over_a_larger_uncorrected_one(corrected_and_not):
    pet = load_pet(corrected_and_not)
    assert pet.series["SeriesInstanceUID"] == UID_A and pet.size[2] == 6
    np.testing.assert_allclose(pet.suv, small_pet().suv, rtol=2e-4)
    assert any("PET NAC" in s for s in pet.series["OtherSeriesInFolder"])
    # Asked for by UID, the uncorrected series is refused: its values are not quantitative.
    with pytest.raises(PetInputError, match="not attenuation corrected"):
        load_pet(corrected_and_not, series_uid=UID_NAC)

"""Only F-18 FDG PET is analysed: other radionuclides, other tracers and SPECT stored as PT are refused
for analysis with one line naming what was found, while `info` still describes them."""

from __future__ import annotations

import json

import pytest
from cli_runner import assert_one_line_error, run_cli, run_cli_here
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from synthetic_dicom import edit_headers, make_lu177_xspect, radiopharmaceutical, write_series

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.errors import PetInputError
from MTLRadiomicsLib.pet_input.suv import SuvOverrides
from MTLRadiomicsLib.pet_input.tracer import check_tracer


def code(value: str, scheme: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def pet_header(name="Fluorodeoxyglucose", nuclide=("C-111A1", "SRT", "^18^Fluorine"),
               drug=None, half_life="6586.2", dose="370000000", model="Biograph Vision 600",
               description="PET WB AC") -> Dataset:
    ds = Dataset()
    ds.Modality = "PT"
    ds.Manufacturer = "SIEMENS"
    ds.ManufacturerModelName = model
    ds.SeriesDescription = description
    rp = Dataset()
    if name is not None:
        rp.Radiopharmaceutical = name
    if nuclide is not None:
        rp.RadionuclideCodeSequence = code(*nuclide)
    if drug is not None:
        rp.RadiopharmaceuticalCodeSequence = code(*drug)
    if half_life is not None:
        rp.RadionuclideHalfLife = half_life
    if dose is not None:
        rp.RadionuclideTotalDose = dose
    ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
    return ds


@pytest.mark.parametrize("header", [
    pet_header(),
    pet_header(nuclide=("77004003", "SCT", "^18^Fluorine"), drug=("35321007", "SCT", "Fluorodeoxyglucose F^18^")),
    pet_header(name="FDG -- fluorodeoxyglucose", nuclide=("C-111A1", "99SDM", "18F"),
               drug=("Y-X1743", "99SDM", "FDG -- fluorodeoxyglucose"), half_life="6588.0",
               model="Discovery ST"),
    pet_header(name="18F-FDG", nuclide=None, half_life="6586"),
])
def test_f18_fdg_is_accepted(header):
    check = check_tracer(header)
    assert check.accepted and check.refusal is None
    assert check.radionuclide == "F-18"
    check.require_fdg()                                  # does not raise


def test_no_tracer_tags_are_not_held_against_a_scan():
    for header in (None, Dataset(), pet_header(name=None, nuclide=None, half_life=None, dose=None)):
        check = check_tracer(header)
        assert check.accepted and not check.stated
        assert "not stated" in check.describe()


def test_unrecognised_tracer_text_is_not_refused():
    check = check_tracer(pet_header(name="Tracer A", nuclide=None))
    assert check.accepted and check.radiopharmaceutical == "Tracer A"


def test_lu177_xspect_stored_as_pt_is_refused_with_what_was_found():
    ds = pet_header(name=None, nuclide=None, half_life="574560", dose="7210000000", model="NM Encore2")
    check = check_tracer(ds)
    assert not check.accepted
    message = check.refusal
    assert message.startswith("not F-18 FDG PET: ")
    for fragment in ("radionuclide half-life 574560 s (6.65 days; Lu-177?)", "manufacturer model NM Encore2",
                     "injected activity 7210 MBq"):
        assert fragment in message
    assert "\n" not in message
    with pytest.raises(PetInputError, match="not F-18 FDG PET"):
        check.require_fdg()


def test_ga68_psma_is_real_pet_but_not_what_the_models_know():
    ds = pet_header(name="Ga68-PSMA-11", nuclide=("C-131A3", "SRT", "^68^Gallium"), half_life="4062.6",
                    dose="150000000")
    message = check_tracer(ds).refusal
    assert message.startswith("Ga-68 PSMA PET: the models know F-18 FDG only")
    assert "Ga68-PSMA-11" in message


def test_f18_tracer_other_than_fdg_is_refused():
    ds = pet_header(name="PSMA-1007", drug=None)
    assert check_tracer(ds).refusal.startswith("F-18 PSMA PET: the models know F-18 FDG only")
    coded = pet_header(name=None, drug=("129502002", "SCT", "Thymidine F^18^"))
    assert check_tracer(coded).refusal.startswith("F-18 FLT PET: the models know F-18 FDG only")


def test_radionuclide_code_alone_names_the_nuclide():
    ds = pet_header(name=None, nuclide=("35337001", "SCT", "^68^Gallium"), half_life=None)
    check = check_tracer(ds)
    assert check.radionuclide == "Ga-68"
    assert check.refusal.startswith("Ga-68 PET: the models know F-18 FDG only")


@pytest.mark.parametrize("half_life, accepted", [("6586.2", True), ("6700", True), ("6460", True),
                                                 ("6800", False), ("6350", False)])
def test_half_life_tolerance_is_two_percent(half_life, accepted):
    assert check_tracer(pet_header(nuclide=None, half_life=half_life)).accepted is accepted


def test_spect_in_series_description_is_refused():
    ds = pet_header(description="xSPECT Quant Lu177")
    message = check_tracer(ds).refusal
    assert message.startswith("not F-18 FDG PET: ") and "xSPECT Quant Lu177" in message


def test_spect_in_a_multi_valued_image_type_is_refused():
    ds = pet_header()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "SPECT"]
    assert "image type ORIGINAL\\PRIMARY\\RECON TOMO\\SPECT" in check_tracer(ds).refusal
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    assert check_tracer(ds).accepted


def test_respect_is_not_spect():
    assert check_tracer(pet_header(description="PET WB respect protocol")).accepted


def test_energy_window_without_511_kev_is_not_pet():
    ds = pet_header()
    window = Dataset()
    window.EnergyWindowLowerLimit, window.EnergyWindowUpperLimit = "187.2", "228.8"
    ds.EnergyWindowRangeSequence = Sequence([window])
    assert "energy window 187.2-228.8 keV" in check_tracer(ds).refusal
    window.EnergyWindowLowerLimit, window.EnergyWindowUpperLimit = "435", "650"
    assert check_tracer(ds).accepted


def test_user_stated_facts_replace_the_header():
    ds = pet_header(dose="7210000000")
    assert not check_tracer(ds).accepted
    assert check_tracer(ds, SuvOverrides(dose_mbq=370.0)).accepted
    assert "half-life 4063 s" in check_tracer(None, SuvOverrides(half_life_s=4063.0)).refusal


# ------------------------------------------------------------------ through the reader and commands
@pytest.fixture()
def lu177_folder(tmp_path):
    files = write_series(tmp_path / "lu177")
    edit_headers(files, make_lu177_xspect)
    return tmp_path / "lu177"


def test_reader_keeps_the_refusal_for_analysis(lu177_folder):
    pet = load_pet(lu177_folder)                         # info and the viewer can still read it
    assert not pet.tracer.accepted
    assert pet.summary()["tracer"]["refusal"].startswith("not F-18 FDG PET")


def test_info_describes_the_scan_and_says_why_it_would_be_refused(lu177_folder):
    process = run_cli("info", lu177_folder)
    assert process.returncode == 0, process.stderr
    out = process.stdout
    assert "NM Encore2" in out and "SUV factor" in out
    assert "refused for analysis: not F-18 FDG PET: radionuclide half-life 574560 s (6.65 days; Lu-177?)" in out
    info = json.loads(run_cli("info", lu177_folder, "--json").stdout)
    assert info["tracer"]["accepted"] is False and info["tracer"]["half_life_s"] == 574560.0


def test_analyze_refuses_in_one_line_and_writes_nothing(lu177_folder, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(run_cli_here("analyze", lu177_folder, "--out", out, "--progress", "none"),
                          "not F-18 FDG PET", "Lu-177", "NM Encore2", "7210 MBq")
    assert not out.exists()


def test_analyze_refuses_a_ga68_series(tmp_path):
    files = write_series(tmp_path / "ga68", half_life_s=4062.6)

    def ga68(ds, _index):
        rp = radiopharmaceutical(ds)
        rp.Radiopharmaceutical = "68Ga-PSMA-11"
        rp.RadionuclideCodeSequence = code("C-131A3", "SRT", "^68^Gallium")

    edit_headers(files, ga68)
    assert_one_line_error(run_cli_here("analyze", tmp_path / "ga68", "--out", tmp_path / "out", "--progress",
                                       "none"),
                          "Ga-68 PSMA PET: the models know F-18 FDG only")


def test_real_fdg_scans_are_accepted(sts001_dir, sts005_dir):
    import pydicom

    for folder in (sts001_dir / "dicom", sts005_dir / "image"):
        ds = pydicom.dcmread(sorted(folder.iterdir())[0], stop_before_pixels=True)
        check = check_tracer(ds)
        assert check.accepted, check.refusal
        assert (check.radionuclide, check.tracer) == ("F-18", "FDG")


def test_a_scan_that_is_not_fdg_says_so_before_its_suv_problem(tmp_path):
    files = write_series(tmp_path / "spect")

    def spect_without_decay_correction(ds, index):
        make_lu177_xspect(ds, index)
        ds.DecayCorrection = "NONE"

    edit_headers(files, spect_without_decay_correction)
    with pytest.raises(PetInputError) as info:
        load_pet(tmp_path / "spect")
    message = str(info.value)
    assert message.startswith("not F-18 FDG PET: radionuclide half-life 574560 s")
    assert "SUV cannot be computed either: DecayCorrection (0054,1102) is 'NONE'" in message

"""Synthetic FDG-PET generator: determinism, anatomy, ground-truth MTV, outcomes, cohort, DICOM."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.synth import (MANIFEST_COLUMNS, ORGAN_LABELS, generate_cohort,
                                   lesion_crop_case, organ_labels, sample_patient,
                                   wholebody_case, write_pet_dicom)

FULL = np.ones((3, 3, 3), dtype=bool)


def index_of(pet: PetVolume, point_lps) -> tuple[int, int, int]:
    """Array index (z, y, x) nearest to an LPS point (identity direction)."""
    ijk = [int(round((p - o) / s)) for p, o, s in zip(point_lps, pet.origin, pet.spacing)]
    return ijk[2], ijk[1], ijk[0]


def first_seeds(pathology: str, count: int, start: int = 0) -> list[int]:
    """Seeds whose drawn pathology is ``pathology``."""
    seeds, seed = [], start
    while len(seeds) < count:
        if sample_patient(seed).pathology == pathology:
            seeds.append(seed)
        seed += 1
    return seeds


@pytest.fixture(scope="module")
def lung_wholebody():
    return wholebody_case(first_seeds("lung", 1)[0])


@pytest.fixture(scope="module")
def oesophageal_wholebody():
    return wholebody_case(first_seeds("oesophageal", 1)[0])


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    manifest = generate_cohort(out, n_cases=60, seed=3, kind="crop", progress=False)
    return out, manifest


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_cases_and_other_seeds_differ():
    a, b, other = lesion_crop_case(11), lesion_crop_case(11), lesion_crop_case(12)
    assert a.pet.suv.tobytes() == b.pet.suv.tobytes()
    assert a.mask.tobytes() == b.mask.tobytes()
    assert a.pet.origin == b.pet.origin
    assert json.dumps(a.facts, sort_keys=True) == json.dumps(b.facts, sort_keys=True)
    assert (a.oracle_risk, a.response, a.time, a.event) == (b.oracle_risk, b.response, b.time, b.event)
    assert a.pet.suv.tobytes() != other.pet.suv.tobytes()
    assert a.oracle_risk != other.oracle_risk


def test_wholebody_is_deterministic_and_the_same_patient_as_the_crop(lung_wholebody):
    seed = lung_wholebody.facts["seed"]
    again = wholebody_case(seed)
    assert again.pet.suv.tobytes() == lung_wholebody.pet.suv.tobytes()
    assert again.mask.tobytes() == lung_wholebody.mask.tobytes()
    crop = lesion_crop_case(seed)
    assert crop.pathology == lung_wholebody.pathology
    assert crop.lesion_center_lps == lung_wholebody.lesion_center_lps
    assert (crop.oracle_risk, crop.response, crop.time, crop.event) == (
        lung_wholebody.oracle_risk, lung_wholebody.response, lung_wholebody.time, lung_wholebody.event)
    for key in ("true_volume_ml", "lesion_suv_base", "n_satellites", "n_nodes", "heterogeneity"):
        assert crop.facts[key] == lung_wholebody.facts[key]
    # The same lesion measured on two grids: similar SUVmax and MTV.
    assert crop.facts["suvmax"] == pytest.approx(lung_wholebody.facts["suvmax"], rel=0.25)
    assert crop.facts["mtv_ml"] == pytest.approx(lung_wholebody.facts["mtv_ml"], rel=0.35)


def test_pathology_can_be_forced_and_bad_values_are_refused():
    assert lesion_crop_case(5, pathology="lung").pathology == "lung"
    assert lesion_crop_case(5, pathology="oesophageal").pathology == "oesophageal"
    with pytest.raises(MTLRadiomicsError, match="pathology"):
        sample_patient(5, pathology="brain")
    with pytest.raises(MTLRadiomicsError, match="spacing"):
        lesion_crop_case(5, spacing_mm=(0.0, 2.0, 2.0))


# --------------------------------------------------------------------------- anatomy
def test_wholebody_geometry_and_organ_uptakes(lung_wholebody):
    pet = lung_wholebody.pet
    assert pet.spacing == (4.0, 4.0, 3.0)
    assert pet.direction == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    extent = [n * s for n, s in zip(pet.size, pet.spacing)]
    assert extent[0] >= 576 and extent[1] >= 576 and 880 <= extent[2] <= 1150
    labels = organ_labels(lung_wholebody.facts["seed"], pet)
    assert labels.shape == pet.shape
    median = {name: float(np.median(pet.suv[labels == value]))
              for name, value in ORGAN_LABELS.items() if (labels == value).any()}
    assert 1.8 <= median["liver"] <= 3.0
    assert median["lung"] < 0.8
    assert median["brain"] > 4.0
    assert median["bladder"] > 3.0
    assert 0.15 <= median["fat"] <= 0.5
    assert 0.4 <= median["muscle"] <= 1.0
    assert 1.2 <= median["blood_pool"] <= 2.3
    assert median["kidney"] > 1.5
    assert median["background"] == 0.0
    # Noise: 10-15 % CoV in the liver, measured away from its edges.
    liver = ndimage.binary_erosion(labels == ORGAN_LABELS["liver"], iterations=3)
    cov = float(pet.suv[liver].std() / pet.suv[liver].mean())
    assert 0.06 <= cov <= 0.2
    assert float(pet.suv.min()) >= 0.0


def test_wholebody_cases_vary_with_the_seed(lung_wholebody, oesophageal_wholebody):
    a, b = lung_wholebody.facts, oesophageal_wholebody.facts
    assert a["organ_suv"]["liver"] != b["organ_suv"]["liver"]
    assert a["body"]["width_scale"] != b["body"]["width_scale"]
    assert json.loads(json.dumps(a)) == a  # JSON-serialisable


# --------------------------------------------------------------------------- lesions
def test_lung_lesions_lie_inside_the_lung_field(lung_wholebody):
    labels = organ_labels(lung_wholebody.facts["seed"], lung_wholebody.pet)
    centre = index_of(lung_wholebody.pet, lung_wholebody.lesion_center_lps)
    assert labels[centre] == ORGAN_LABELS["lung"]
    for seed in range(60):
        patient = sample_patient(seed, pathology="lung")
        centre = np.array([patient.lesion_center])
        assert patient.anatomy.labels_at(centre)[0] == ORGAN_LABELS["lung"], seed
        for finding in patient.lesion.satellites:
            label = patient.anatomy.labels_at(np.array([finding.shape.centre]))[0]
            assert label == ORGAN_LABELS["lung"]


def test_oesophageal_lesions_are_elongated_along_the_oesophagus(oesophageal_wholebody):
    case = oesophageal_wholebody
    labels = organ_labels(case.facts["seed"], case.pet)
    oesophagus = np.argwhere(labels == ORGAN_LABELS["oesophagus"])
    iz, iy, ix = index_of(case.pet, case.lesion_center_lps)
    same_level = oesophagus[np.abs(oesophagus[:, 0] - iz) <= 12]
    assert same_level.size, "the oesophagus runs through the lesion's height"
    in_plane_mm = np.hypot((same_level[:, 1] - iy) * 4.0, (same_level[:, 2] - ix) * 4.0).min()
    assert in_plane_mm <= 12.0
    for seed in first_seeds("oesophageal", 4):
        crop = lesion_crop_case(seed)
        z, y, x = np.nonzero(crop.mask)
        z_extent = np.ptp(z) + 1
        assert z_extent > np.ptp(y) + 1 and z_extent > np.ptp(x) + 1, seed
        assert crop.facts["elongation"] > 1.2
        assert 30.0 <= crop.facts["extent_mm"][2] <= 85.0


def test_crop_geometry_is_64_cubed_at_2mm_around_the_lesion():
    for seed in range(4):
        crop = lesion_crop_case(seed)
        pet = crop.pet
        assert pet.shape == (64, 64, 64) and crop.mask.shape == (64, 64, 64)
        assert pet.spacing == (2.0, 2.0, 2.0)
        assert pet.suv.dtype == np.float32 and crop.mask.dtype == np.uint8
        centre = np.asarray(pet.origin) + 31.5 * 2.0
        offset = np.abs(centre - np.asarray(crop.lesion_center_lps))
        assert np.all(offset <= 4.0 + 1e-6), offset
        assert crop.mask.any() and not crop.facts["mask_touches_border"]
        mask_centre = np.argwhere(crop.mask).mean(axis=0)
        assert np.all(np.abs(mask_centre - 31.5) <= 8.0)


def test_crop_sizes_and_spacings_can_be_chosen():
    crop = lesion_crop_case(2, spacing_mm=(1.5, 1.5, 3.0), crop_size=(48, 40, 32))
    assert crop.pet.size == (48, 40, 32) and crop.pet.spacing == (1.5, 1.5, 3.0)


# --------------------------------------------------------------------------- ground-truth MTV
def test_mask_is_the_40_percent_suvmax_component_of_the_lesion():
    """Lung lesions whose threshold stands clear of the background: the mask is exactly the
    connected 40 % SUVmax region around the lesion's hottest voxel, recomputed from the image."""
    checked = 0
    for seed in first_seeds("lung", 12):
        crop = lesion_crop_case(seed)
        suv, mask = crop.pet.suv, crop.mask.astype(bool)
        if crop.facts["suvmax"] < 4.0:
            continue
        grid = np.indices(suv.shape).astype(float) * 2.0
        centre = np.asarray(crop.lesion_center_lps)[::-1] - np.asarray(crop.pet.origin)[::-1]
        distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
        near = distance <= max(crop.facts["extent_mm"]) / 2.0 + 4.0
        suvmax = float(suv[near].max())
        assert suvmax == pytest.approx(crop.facts["suvmax"], rel=1e-5)
        assert float(suv[mask].max()) == pytest.approx(suvmax, rel=1e-5)
        hottest = np.unravel_index(np.argmax(np.where(near, suv, -1.0)), suv.shape)
        components, _ = ndimage.label(suv >= 0.4 * suvmax, structure=FULL)
        expected = (components == components[hottest]) & (distance <= max(crop.facts["extent_mm"]) + 40)
        dice = 2.0 * np.sum(expected & mask) / (expected.sum() + mask.sum())
        assert dice >= 0.97, (seed, dice)
        assert crop.facts["mtv_ml"] == pytest.approx(mask.sum() * 0.008, rel=1e-6)
        checked += 1
    assert checked >= 3


def check_mask_stays_on_the_lesion(case) -> None:
    suv, mask = case.pet.suv, case.mask.astype(bool)
    suvmax = case.facts["suvmax"]
    assert float(suv[mask].max()) == pytest.approx(suvmax, rel=1e-6)
    assert np.all(suv[mask] >= 0.4 * suvmax - 1e-5)
    _, n = ndimage.label(mask, structure=FULL)
    assert n == case.facts["mask_components"] and n >= 1
    labels = organ_labels(case.facts["seed"], case.pet)
    for organ in ("brain", "bladder", "myocardium", "liver", "kidney"):
        assert not np.any(mask & (labels == ORGAN_LABELS[organ])), organ
    # The MTV is the lesion's size, not the mediastinum's (within partial-volume error).
    assert case.facts["mtv_ml"] == pytest.approx(case.facts["true_volume_ml"], rel=0.6)
    centre = index_of(case.pet, case.lesion_center_lps)
    mask_centre = np.argwhere(mask).mean(axis=0)
    spacing_zyx = np.asarray(case.pet.spacing)[::-1]
    assert np.all(np.abs(mask_centre - centre) * spacing_zyx <= 15.0)


def test_mask_stays_on_the_lesion_next_to_hot_organs(oesophageal_wholebody):
    """Mediastinal tumours sit beside blood pool and myocardium that can exceed 40 % of a low
    SUVmax; the ground truth still covers the tumour only."""
    check_mask_stays_on_the_lesion(oesophageal_wholebody)
    for seed in first_seeds("oesophageal", 6):
        check_mask_stays_on_the_lesion(lesion_crop_case(seed))


# --------------------------------------------------------------------------- outcomes
def test_outcomes_depend_on_tumour_and_peritumoral_features():
    rows = []
    for seed in range(200):
        p = sample_patient(seed)
        f = p.facts()
        rows.append([np.log(f["lesion_suv_base"]), np.log(f["true_volume_ml"]), f["heterogeneity"],
                     f["necrosis_fraction"], f["n_satellites"] + f["n_nodes"],
                     p.outcomes.oracle_risk])
    data = np.array(rows)
    design = np.column_stack([np.ones(len(data)), data[:, :5]])
    coef, *_ = np.linalg.lstsq(design, data[:, 5], rcond=None)
    residual = data[:, 5] - design @ coef
    sigma2 = residual @ residual / (len(data) - design.shape[1])
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(design.T @ design)))
    t = coef / se
    assert coef[5] > 0 and t[5] > 4, "peritumoral findings raise the risk"
    assert np.all(coef[1:5] > 0) and np.all(t[1:5] > 3), "SUV, volume, heterogeneity, necrosis"
    simple = np.polyfit(data[:, 4], data[:, 5], 1)[0]
    assert simple > 0
    peritumoral = np.array([r[4] for r in rows])
    assert set(np.unique(peritumoral)) >= {0, 1, 2}


def test_outcome_rates_are_plausible():
    outcomes = [sample_patient(seed).outcomes for seed in range(300, 500)]
    censored = 1.0 - np.mean([o.event for o in outcomes])
    assert 0.2 <= censored <= 0.5
    assert 0.3 <= np.mean([o.response for o in outcomes]) <= 0.7
    assert all(o.time > 0 for o in outcomes)


# --------------------------------------------------------------------------- cohort
def test_cohort_manifest_splits_and_images(cohort):
    out, manifest = cohort
    assert manifest == out / "manifest.csv"
    with manifest.open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == MANIFEST_COLUMNS
        rows = list(reader)
    assert len(rows) == 60 and len({r["case_id"] for r in rows}) == 60
    folds = [r["fold"] for r in rows]
    assert set(folds) == {"0", "1", "2", "3", "4", "test"}
    for pathology in ("lung", "oesophageal"):
        members = [r for r in rows if r["pathology"] == pathology]
        assert members
        assert sum(r["fold"] == "test" for r in members) == round(0.2 * len(members))
    assert all(r["response"] in ("0", "1") and r["event"] in ("0", "1") for r in rows)
    assert all(float(r["time"]) > 0 for r in rows)
    for row in rows[:3]:
        assert not Path(row["pet"]).is_absolute()
        pet = sitk.ReadImage(str(out / row["pet"]))
        mask = sitk.ReadImage(str(out / row["mask"]))
        assert pet.GetSize() == mask.GetSize() == (64, 64, 64)
        assert pet.GetSpacing() == mask.GetSpacing() == (2.0, 2.0, 2.0)
        assert np.allclose(pet.GetOrigin(), mask.GetOrigin())
        assert pet.GetPixelID() == sitk.sitkFloat32
        values, labels = sitk.GetArrayFromImage(pet), sitk.GetArrayFromImage(mask)
        assert set(np.unique(labels)) == {0, 1}
        assert values[labels > 0].min() >= 0.4 * values[labels > 0].max() - 1e-4
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert [f["case_id"] for f in facts] == [r["case_id"] for r in rows]


def test_cohort_json_reports_the_oracle(cohort):
    out, _ = cohort
    info = json.loads((out / "cohort.json").read_text())
    assert info["seed"] == 3 and info["kind"] == "crop" and info["n_cases"] == 60
    assert info["generator_version"]
    assert info["oracle_auc_response"] > 0.7
    assert info["oracle_c_index"] > 0.65
    assert sum(info["fold_sizes"].values()) == 60
    # A case is reproduced from its recorded seed.
    first = info["cases"][0]
    again = lesion_crop_case(first["seed"])
    path = out / "images" / f"{first['case_id']}_pet.nii.gz"
    stored = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    assert np.array_equal(stored, again.pet.suv)


def test_cohort_is_reproducible_and_checks_options(tmp_path, cohort):
    out, manifest = cohort
    again = generate_cohort(tmp_path / "again", n_cases=60, seed=3, progress=False)
    assert again.read_text() == manifest.read_text()
    with pytest.raises(MTLRadiomicsError, match="kind"):
        generate_cohort(tmp_path / "bad", n_cases=2, kind="slab", progress=False)
    with pytest.raises(MTLRadiomicsError, match="test_fraction"):
        generate_cohort(tmp_path / "bad", n_cases=2, test_fraction=1.0, progress=False)


def test_cohort_with_dicom_series(tmp_path):
    from MTLRadiomicsLib.pet_input.reading import load_pet

    manifest = generate_cohort(tmp_path, n_cases=2, seed=1, dicom=True, progress=False)
    with manifest.open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == MANIFEST_COLUMNS + ["dicom"]
        row = next(reader)
    from_nifti = load_pet(tmp_path / row["pet"])
    from_dicom = load_pet(tmp_path / row["dicom"])
    assert from_dicom.suv_conversion.units_in_file == "BQML"
    body = from_nifti.suv > 0.5
    assert np.max(np.abs(from_dicom.suv[body] / from_nifti.suv[body] - 1.0)) < 0.005


# --------------------------------------------------------------------------- DICOM
DICOM_VARIANTS = {
    "bqml-start-midnight": dict(units="BQML", decay_correction="START",
                                injection_datetime=dt.datetime(2024, 3, 1, 23, 40, 0),
                                series_datetime=dt.datetime(2024, 3, 2, 0, 45, 30)),
    "bqml-start": dict(units="BQML", decay_correction="START",
                       injection_datetime=dt.datetime(2024, 3, 1, 9, 0, 0),
                       series_datetime=dt.datetime(2024, 3, 1, 10, 5, 0)),
    "bqml-admin": dict(units="BQML", decay_correction="ADMIN",
                       injection_datetime=dt.datetime(2024, 3, 1, 9, 0, 0),
                       series_datetime=dt.datetime(2024, 3, 1, 10, 5, 0)),
    "gml-start": dict(units="GML", decay_correction="START",
                      injection_datetime=dt.datetime(2024, 3, 1, 9, 0, 0),
                      series_datetime=dt.datetime(2024, 3, 1, 10, 5, 0)),
}


@pytest.fixture(scope="module")
def dicom_crop():
    return lesion_crop_case(21, crop_size=(40, 36, 32))


def assert_same_pet(loaded: PetVolume, original: PetVolume) -> None:
    assert loaded.shape == original.shape
    assert np.allclose(loaded.spacing, original.spacing, atol=1e-4)
    assert np.allclose(loaded.origin, original.origin, atol=1e-3)
    assert np.allclose(loaded.direction, original.direction, atol=1e-6)
    body = original.suv > 0.5
    relative = np.abs(loaded.suv[body] / original.suv[body] - 1.0)
    assert relative.max() < 0.005, relative.max()


@pytest.mark.parametrize("variant", list(DICOM_VARIANTS))
def test_dicom_round_trip(tmp_path, dicom_crop, variant):
    from MTLRadiomicsLib.pet_input.reading import load_pet

    options = DICOM_VARIANTS[variant]
    files = write_pet_dicom(dicom_crop.pet, tmp_path / "series", weight_kg=81.5,
                            injected_dose_bq=3.1e8, **options)
    assert len(files) == dicom_crop.pet.shape[0]
    ds = pydicom.dcmread(files[0])  # a valid file: preamble, DICM, file meta
    assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.128"
    assert ds.Modality == "PT" and ds.Units == options["units"]
    assert ds.DecayCorrection == options["decay_correction"]
    assert list(ds.CorrectedImage) == ["DECY", "ATTN"]
    assert ds.PixelRepresentation == 1 and ds.BitsAllocated == 16
    rp = ds.RadiopharmaceuticalInformationSequence[0]
    assert float(rp.RadionuclideTotalDose) == pytest.approx(3.1e8)
    assert rp.RadiopharmaceuticalStartDateTime.startswith(
        options["injection_datetime"].strftime("%Y%m%d%H%M%S"))
    assert ds.SeriesDate == options["series_datetime"].strftime("%Y%m%d")
    slopes = {float(pydicom.dcmread(f, stop_before_pixels=True).RescaleSlope) for f in files[:5]}
    assert len(slopes) > 1, "each slice has its own rescale slope"
    loaded = load_pet(tmp_path / "series")
    assert_same_pet(loaded, dicom_crop.pet)
    if options["units"] == "BQML":
        bq = ds.pixel_array * float(ds.RescaleSlope)
        assert bq.max() > 100.0, "values are stored in Bq/ml"


def test_dicom_midnight_crossing_with_start_time_only(tmp_path, dicom_crop):
    """Without RadiopharmaceuticalStartDateTime the reader must put the injection on the day
    before the series."""
    from MTLRadiomicsLib.pet_input.reading import load_pet

    options = DICOM_VARIANTS["bqml-start-midnight"]
    files = write_pet_dicom(dicom_crop.pet, tmp_path, **options)
    for path in files:
        ds = pydicom.dcmread(path)
        del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime
        ds.save_as(path, enforce_file_format=True)
    loaded = load_pet(tmp_path)
    assert loaded.suv_conversion.elapsed_s == pytest.approx(65.5 * 60)
    assert_same_pet(loaded, dicom_crop.pet)


def test_dicom_keeps_an_oblique_geometry(tmp_path):
    from MTLRadiomicsLib.pet_input.reading import load_pet

    rng = np.random.default_rng(0)
    suv = rng.uniform(0.6, 9.0, size=(6, 10, 12)).astype(np.float32)
    pet = PetVolume(suv=suv, spacing=(2.5, 3.0, 3.27), origin=(-120.0, 35.5, -410.0),
                    direction=(0, 1, 0, -1, 0, 0, 0, 0, 1))
    write_pet_dicom(pet, tmp_path, injection_datetime=dt.datetime(2024, 5, 2, 10, 0),
                    series_datetime=dt.datetime(2024, 5, 2, 11, 2))
    assert_same_pet(load_pet(tmp_path), pet)


def test_dicom_writer_refuses_a_series_before_the_injection(tmp_path, dicom_crop):
    with pytest.raises(MTLRadiomicsError, match="before the injection"):
        write_pet_dicom(dicom_crop.pet, tmp_path, injection_datetime=dt.datetime(2024, 1, 2, 10),
                        series_datetime=dt.datetime(2024, 1, 2, 9))

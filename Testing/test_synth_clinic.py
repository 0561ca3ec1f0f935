"""Synthetic data that looks like the clinic: sarcoma and head-and-neck cases (whole-tumour GTV
ground truth, lesion-sized crops at native voxels), their CLI option, and the default cohorts left
bit for bit as they were."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from cli_runner import assert_one_line_error, run_cli

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.synth import (MANIFEST_COLUMNS, ORGAN_LABELS, case_seed, generate_cohort,
                                   lesion_crop_case, organ_labels, sample_patient, wholebody_case)
from MTLRadiomicsLib.synth.cases import NATIVE_IN_PLANE_MM, NATIVE_SLICE_MM
from MTLRadiomicsLib.synth.grid import Grid

# Computed before sarcoma and head and neck existed: generate_cohort(out, 6, seed=1) with the
# default options (lung and oesophageal crops) and wholebody_case(3); see cohort_digest.
DEFAULT_COHORT_DIGEST = "e03ed2b652d6163759a1f04aa05c4ff9f93a2b981a66b28a6e687031c326cd6d"
DEFAULT_WHOLEBODY_3_DIGEST = "2525ba5c29d8dbf5094756974295d291e2c193569b12594fb3d95dd10f542b86"
BIG_SEED, SMALL_SEED, NECROTIC_SEED = 29, 26, 8    # sarcoma: 1.27 l, 23 ml, 61 % necrotic


def cohort_digest(out: Path) -> str:
    """SHA-256 of the manifest, the facts, and every image's voxels and geometry."""
    digest = hashlib.sha256()
    digest.update((out / "manifest.csv").read_bytes())
    digest.update((out / "facts.jsonl").read_bytes())
    for path in sorted((out / "images").glob("*")) + sorted((out / "masks").glob("*")):
        image = sitk.ReadImage(str(path))
        digest.update(path.name.encode())
        digest.update(sitk.GetArrayFromImage(image).tobytes())
        digest.update(repr((image.GetSpacing(), image.GetOrigin(), image.GetDirection())).encode())
    return digest.hexdigest()


def grid_of(case) -> Grid:
    return Grid(shape=case.pet.shape, spacing=case.pet.spacing, origin=case.pet.origin)


@pytest.fixture(scope="module")
def necrotic_crop():
    return lesion_crop_case(NECROTIC_SEED, "sarcoma")


# --------------------------------------------------------------------------- defaults unchanged
def test_default_cohort_and_wholebody_are_bit_identical_to_before(tmp_path):
    generate_cohort(tmp_path / "c", 6, seed=1, progress=False)
    assert cohort_digest(tmp_path / "c") == DEFAULT_COHORT_DIGEST
    summary = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert set(summary["pathology_counts"]) == {"lung", "oesophageal"}
    assert summary["spacing_mm"] == [2.0, 2.0, 2.0] and "pathologies" not in summary
    case = wholebody_case(3)
    raw = case.pet.suv.tobytes() + case.mask.tobytes() + repr(case.pet.origin).encode()
    assert hashlib.sha256(raw).hexdigest() == DEFAULT_WHOLEBODY_3_DIGEST


# --------------------------------------------------------------------------- sarcoma
@pytest.mark.parametrize("seed", [SMALL_SEED, BIG_SEED, 2, 3])
def test_sarcoma_crop_holds_the_lesion_inside_the_body_at_native_voxels(seed):
    case = lesion_crop_case(seed, "sarcoma")
    facts, mask = case.facts, case.mask.astype(bool)
    sx, sy, sz = case.pet.spacing
    assert sx == sy and sx in NATIVE_IN_PLANE_MM and sz == NATIVE_SLICE_MM
    assert facts["gtv"]["ground_truth"] == "gtv_whole_tumour"
    assert mask.any() and not facts["mask_touches_border"]
    # A margin of 2-3 cm (less half a voxel of rounding) around the mask on every side.
    idx = np.argwhere(mask)
    spacing_zyx = np.array([sz, sy, sx])
    lo_mm = idx.min(axis=0) * spacing_zyx
    hi_mm = (np.array(mask.shape) - 1 - idx.max(axis=0)) * spacing_zyx
    assert np.all(lo_mm >= 20.0 - sx) and np.all(hi_mm >= 20.0 - sx), (lo_mm, hi_mm)
    assert np.all(lo_mm <= 30.0 + 2 * sx) and np.all(hi_mm <= 30.0 + 2 * sx), (lo_mm, hi_mm)
    # Inside the body: the tissue under the tumour is muscle or subcutaneous fat, never air.
    labels = organ_labels(seed, case.pet, "sarcoma")[mask]
    assert not np.any(labels == ORGAN_LABELS["background"])
    assert np.mean(np.isin(labels, [ORGAN_LABELS["muscle"], ORGAN_LABELS["fat"]])) >= 0.98
    assert facts["gtv"]["site"] in ("thigh", "calf", "upper_arm", "buttock", "trunk_wall")
    # Ground truth = the GTV: its volume is the tumour's (within a voxel shell).
    assert facts["mtv_ml"] == pytest.approx(facts["true_volume_ml"], rel=0.12)
    assert facts["mtv_ml"] == pytest.approx(mask.sum() * sx * sy * sz / 1000.0, rel=1e-6)
    assert float(case.pet.suv[mask].max()) == pytest.approx(facts["suvmax"], rel=1e-6)


def test_sarcoma_volume_range_and_crop_size_follow_the_lesion():
    big, small = lesion_crop_case(BIG_SEED, "sarcoma"), lesion_crop_case(SMALL_SEED, "sarcoma")
    assert big.facts["mtv_ml"] > 1000.0 and small.facts["mtv_ml"] < 50.0
    extent = lambda c: np.array(c.pet.size) * np.array(c.pet.spacing)  # noqa: E731
    assert np.all(extent(big) > extent(small) + 40.0)
    assert big.facts["mtv40_ml"] < big.facts["mtv_ml"]


def test_truth_mask_includes_the_necrotic_core(necrotic_crop):
    case = necrotic_crop
    lesion = sample_patient(NECROTIC_SEED, "sarcoma").lesion
    assert case.facts["necrosis_fraction"] > 0.5
    x, y, z = grid_of(case).coords()
    weight = np.broadcast_to(lesion.uptake.necrotic_weight(x, y, z), case.pet.shape)
    mask = case.mask.astype(bool)
    core = weight > 0.9
    rim = mask & (weight < 0.3)
    inside = lesion.primary.signed_distance(x, y, z) <= 0
    assert core[inside].sum() >= 0.2 * mask.sum() and rim.sum() >= 0.1 * mask.sum()
    assert np.all(mask[core & np.broadcast_to(inside, core.shape)])   # the core is in the GTV
    core_suv, rim_suv = case.pet.suv[core & mask].mean(), case.pet.suv[rim].mean()
    assert core_suv < 0.6 * rim_suv, (core_suv, rim_suv)
    # The 40 % SUVmax region leaves the necrotic core out: much smaller than the GTV.
    assert case.facts["mtv40_ml"] < 0.6 * case.facts["mtv_ml"]


def test_sarcoma_is_deterministic_and_the_same_patient_in_the_whole_body():
    crop = lesion_crop_case(SMALL_SEED, "sarcoma")
    again = lesion_crop_case(SMALL_SEED, "sarcoma")
    assert crop.pet.suv.tobytes() == again.pet.suv.tobytes() and crop.pet.origin == again.pet.origin
    body = wholebody_case(SMALL_SEED, "sarcoma")
    assert body.pet.spacing == crop.pet.spacing
    assert body.mask.any() and not body.facts["mask_touches_border"]
    assert (body.oracle_risk, body.time, body.event) == (crop.oracle_risk, crop.time, crop.event)
    assert body.facts["mtv_ml"] == pytest.approx(crop.facts["mtv_ml"], rel=0.1)
    # The whole-body grid reaches the tumour (thighs run below the default mid-thigh end).
    assert body.pet.origin[2] <= body.lesion_center_lps[2] - 40.0


def test_fixed_crop_size_and_margin_and_bad_values():
    case = lesion_crop_case(3, "sarcoma", spacing_mm=(2.0, 2.0, 2.0), crop_size=(40, 40, 40))
    assert case.pet.size == (40, 40, 40) and case.pet.spacing == (2.0, 2.0, 2.0)
    tight = lesion_crop_case(3, "sarcoma", margin_mm=5.0)
    wide = lesion_crop_case(3, "sarcoma", margin_mm=40.0)
    assert np.all(np.array(wide.pet.size) > np.array(tight.pet.size))
    with pytest.raises(MTLRadiomicsError, match="margin"):
        lesion_crop_case(3, "sarcoma", margin_mm=-1.0)
    with pytest.raises(MTLRadiomicsError, match="sarcoma"):
        sample_patient(3, "brain")


# --------------------------------------------------------------------------- head and neck
def test_head_and_neck_primary_with_nodes_in_the_neck():
    seen_nodes = 0
    for seed in range(4):
        case = lesion_crop_case(seed, "head_and_neck")
        facts, mask = case.facts, case.mask.astype(bool)
        assert facts["gtv"]["site"] in ("oropharynx", "larynx", "oral_cavity")
        assert 1.5 <= facts["true_volume_ml"] <= 62.0
        assert mask.any() and not facts["mask_touches_border"]
        labels = organ_labels(seed, case.pet)[mask]
        assert not np.any(labels == ORGAN_LABELS["background"])
        assert not np.any(labels == ORGAN_LABELS["brain"])
        grid = grid_of(case)
        for finding in facts["findings"]:  # nodes: inside the crop, outside the GTV
            index = grid.nearest_index(np.array(finding["center_lps_mm"]))
            assert finding["kind"] == "node" and not mask[index]
            assert all(0 < i < n - 1 for i, n in zip(index, case.pet.shape))
            seen_nodes += 1
    assert seen_nodes >= 1


# --------------------------------------------------------------------------- cohort and CLI
def test_cli_pathologies_option_writes_new_cases_and_refuses_unknown_names(tmp_path):
    out = tmp_path / "clinic"
    process = run_cli("synth", out, "--cases", "4", "--seed", "2", "--folds", "2",
                      "--pathologies", "sarcoma,head_and_neck", "--no-progress")
    assert process.returncode == 0, process.stderr
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert list(rows[0]) == MANIFEST_COLUMNS
    assert {r["pathology"] for r in rows} <= {"sarcoma", "head_and_neck"}
    assert all(r["response"] in ("0", "1") and float(r["time"]) > 0 for r in rows)
    summary = json.loads((out / "cohort.json").read_text())
    assert summary["pathologies"] == ["sarcoma", "head_and_neck"]
    assert "GTV" in summary["ground_truth"]["sarcoma"] and summary["spacing_mm"] is None
    facts = [json.loads(line) for line in (out / "facts.jsonl").read_text().splitlines()]
    assert all(f["gtv"]["ground_truth"] == "gtv_whole_tumour" and f["mtv40_ml"] > 0 for f in facts)
    sizes = {sitk.ReadImage(str(out / r["pet"])).GetSize() for r in rows}
    assert len(sizes) > 1   # crops sized to their lesion
    for names in ("sarcoma,brain", ","):
        assert_one_line_error(run_cli("synth", tmp_path / "x", "--pathologies", names),
                              "--pathologies")
    assert not (tmp_path / "x").exists()


def test_cohort_draws_among_the_pathologies_with_outcomes(tmp_path):
    manifest = generate_cohort(tmp_path / "c", 8, seed=5, pathologies=["sarcoma", "lung"],
                               progress=False)
    rows = list(csv.DictReader(open(manifest)))
    assert {r["pathology"] for r in rows} == {"sarcoma", "lung"}
    lung = [r for r in rows if r["pathology"] == "lung"]
    for row in lung:   # a lung case is the same whatever else the cohort holds
        index = int(row["case_id"].split("_")[1])
        assert float(row["oracle_risk"]) == pytest.approx(
            lesion_crop_case(case_seed(5, index), "lung").oracle_risk, abs=1e-6)
    risks = np.array([float(r["oracle_risk"]) for r in rows if r["pathology"] == "sarcoma"])
    assert risks.std() > 0.2


def test_realism_measures_on_a_known_image():
    """The benchmark's per-case quantities on a sphere with a hot core and a cold shell."""
    from benchmarks.synth_realism import measure

    z, y, x = np.indices((30, 30, 30)) - 14.5
    r = np.sqrt(x * x + y * y + z * z)
    truth = r <= 10.0
    core = r <= 6.0
    suv = np.where(core, 10.0, np.where(truth, 2.0, 0.5)).astype(np.float32)
    m = measure(suv, truth, (2.0, 2.0, 2.0))
    assert m["suvmax"] == 10.0 and m["volume_ml"] == pytest.approx(truth.sum() * 0.008)
    shell = float(np.mean(~core[truth]))
    assert m["below_2p5"] == pytest.approx(shell) and m["below_40"] == pytest.approx(shell)
    assert m["dice_40"] == pytest.approx(2 * core.sum() / (core.sum() + truth.sum()))
    assert m["dice_2p5"] == pytest.approx(m["dice_40"])
    values = suv[truth]
    assert m["cov"] == pytest.approx(values.std() / values.mean(), rel=1e-6)

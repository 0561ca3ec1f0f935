"""Cross-validation on real crops with a tiny configuration: every case tested once by a model that
never trained on it, pooled out-of-fold figures and files, the final model; the real cohort's
manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from training.crossval import development_folds, fold_manifest, read_rows, run_crossval
from training.sts_cohort import sarcoma_class, stratified_folds, write_sts_manifest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_PATCHES = PROJECT_ROOT / "Testing" / "data" / "tiny_patches.yaml"


def test_the_real_cohort_manifest(sts_crops_dir, tmp_path):
    path = write_sts_manifest(tmp_path / "m.csv", sts_crops_dir, n_folds=5, seed=0)
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 35 and len({r["case_id"] for r in rows}) == 35
    for row in rows:
        assert Path(row["pet"]).is_file() and Path(row["mask"]).is_file()
        assert row["pathology"] in ("MFH", "Liposarcoma", "Leiomyosarcoma", "other")
    outcomes = {r["patient_id"]: r for r in csv.DictReader(open(sts_crops_dir / "outcomes.csv"))}
    assert sum(int(r["response"]) for r in rows) == sum(int(o["lung_mets"]) for o in outcomes.values()) == 13
    assert sum(int(r["event"]) for r in rows) == 11
    assert rows[0]["time"] == outcomes[rows[0]["case_id"]]["days_dx_to_last_fu"]
    sizes = np.bincount([int(r["fold"]) for r in rows])
    assert list(sizes) == [7, 7, 7, 7, 7]
    # Stratified: lung metastases spread over the folds as evenly as they can be (13 over 5: 2 or 3).
    mets = np.bincount([int(r["fold"]) for r in rows if r["response"] == "1"], minlength=5)
    assert mets.min() >= 2 and mets.max() <= 3
    assert write_sts_manifest(tmp_path / "again.csv", sts_crops_dir).read_text() == path.read_text()


def test_stratified_folds_and_class_merging():
    keys = ["a"] * 6 + ["b"] * 4
    folds = stratified_folds(keys, 2, seed=1)
    assert sorted(np.bincount(folds)) == [5, 5]
    assert sorted(np.bincount([f for f, k in zip(folds, keys) if k == "b"])) == [2, 2]
    assert sarcoma_class("Synovial sarcoma") == "other" and sarcoma_class("MFH") == "MFH"


def test_fold_manifests_hold_out_each_fold_once(tmp_path):
    rows = [{"case_id": f"c{i}", "pet": f"p{i}.nii.gz", "mask": "", "fold": str(i % 3)} for i in range(9)]
    rows.append({"case_id": "locked", "pet": "x.nii.gz", "mask": "", "fold": "test"})
    folds = development_folds(rows)
    assert folds == [0, 1, 2]
    tested = []
    for k in folds:
        written = list(csv.DictReader(open(fold_manifest(rows, ["case_id", "pet", "mask", "fold"], folds, k,
                                                         tmp_path, tmp_path / f"f{k}.csv"))))
        test = {r["case_id"] for r in written if r["fold"] == "test"}
        validation = {r["case_id"] for r in written if r["fold"] == "0"}
        train = {r["case_id"] for r in written if r["fold"] == "1"}
        assert test == {f"c{i}" for i in range(9) if i % 3 == k}
        assert validation == {f"c{i}" for i in range(9) if i % 3 == (k + 1) % 3}
        assert not (test & train) and not (validation & train) and "locked" not in test | validation | train
        assert all(Path(r["pet"]).is_absolute() for r in written)
        tested += sorted(test)
    assert sorted(tested) == sorted(f"c{i}" for i in range(9))
    with pytest.raises(ValueError, match="two integer folds"):
        development_folds([{"fold": "0"}, {"fold": "test"}])


def test_crossval_on_real_crops_with_a_tiny_model(sts_crops_dir, tmp_path):
    full = write_sts_manifest(tmp_path / "all.csv", sts_crops_dir)
    rows, columns = read_rows(full)
    small = [r for r in rows if r["case_id"] in ("STS_002", "STS_008", "STS_019", "STS_024", "STS_035", "STS_015")]
    for i, row in enumerate(small):
        row["fold"] = str(i % 3)
    manifest = tmp_path / "six.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(small)
    out = tmp_path / "cv"
    logs: list[str] = []
    result = run_crossval(TINY_PATCHES, manifest, out, device_name="cpu", final=True, progress=False,
                          log=logs.append)
    pooled = result["pooled"]
    assert pooled["n"] == 6 and 0.0 <= pooled["dice_mean"] <= 1.0
    lo, hi = pooled["dice_ci95"]
    assert lo <= pooled["dice_mean"] <= hi
    oof = list(csv.DictReader(open(out / "oof.csv")))
    assert sorted(r["case_id"] for r in oof) == sorted(r["case_id"] for r in small)
    by_case = {r["case_id"]: int(r["fold"]) for r in oof}
    for row in small:                                  # each case tested by its own fold's model
        assert by_case[row["case_id"]] == int(row["fold"])
        trained_on = {r["case_id"] for r in csv.DictReader(open(out / f"fold_{row['fold']}" / "manifest.csv"))
                      if r["fold"] != "test"}
        assert row["case_id"] not in trained_on
    per_fold = [np.mean([float(r["dice"]) for r in oof if r["fold"] == str(k)]) for k in range(3)]
    assert pooled["dice_mean"] == pytest.approx(np.mean([float(r["dice"]) for r in oof]))   # pooled over cases
    for k in range(3):
        assert result["folds"][str(k)]["dice_mean"] == pytest.approx(per_fold[k])
    for name in ("crossval.json", "crossval.md", "dice_per_fold.png", "volumes.png"):
        assert (out / name).is_file(), name
    assert "| pooled | 6 |" in (out / "crossval.md").read_text()
    final_history = json.loads((out / "final" / "history.json").read_text())
    assert len(final_history) == result["median_best_epoch"]
    assert (out / "final" / "best" / "model.json").is_file()
    # A second call resumes: nothing is retrained, the figures are the same.
    again = run_crossval(TINY_PATCHES, manifest, out, device_name="cpu", final=True, progress=False,
                         log=logs.append)
    assert again["pooled"] == result["pooled"]
    assert sum(line.endswith(": training") for line in logs) == 3       # each fold trained once
    assert sum(line.startswith("final model") for line in logs) == 1


def test_multitask_crossval_scores_every_task_out_of_fold_from_the_folds_own_models(sts_crops_dir, tmp_path):
    """Fold k of the multi-task run starts from fold k of a segmentation run (no leakage); the
    pooled out-of-fold AUC, C-index and type accuracy equal a computation from the per-case rows."""
    from training.crossval import summarise_scores
    from training.metrics import binary_auc, concordance

    full = write_sts_manifest(tmp_path / "all.csv", sts_crops_dir)
    rows, columns = read_rows(full)
    # Four sarcoma types, two lung metastases, two deaths.
    chosen = ["STS_002", "STS_006", "STS_008", "STS_012", "STS_024", "STS_032"]
    small = [r for r in rows if r["case_id"] in chosen]
    for i, row in enumerate(small):
        row["fold"] = str(i % 3)
    manifest = tmp_path / "six.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(small)
    from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config, save_model

    for k in range(3):           # stand-ins for the folds of a segmentation cross-validation
        save_model(MultiTaskNet(named_config("tiny", norm="batch", classification=False, outcome=False)),
                   ModelCard(name=f"seg-{k}", architecture={}, preprocessing=Preprocessing((8.0,) * 3, (16,) * 3)),
                   tmp_path / "seg" / f"fold_{k}" / "run" / "best")
    logs: list[str] = []
    result = run_crossval(Path(__file__).parent / "data" / "tiny_multitask.yaml", manifest, tmp_path / "mtl",
                          device_name="cpu", progress=False, log=logs.append, init_from=tmp_path / "seg")
    starts = [line for line in logs if line.startswith("initialised")]
    assert len(starts) == 3 and all(f"seg/fold_{k}/run/best" in line for k, line in enumerate(starts))
    scored = list(csv.DictReader(open(tmp_path / "mtl" / "oof_scores.csv")))
    assert sorted(r["case_id"] for r in scored) == sorted(chosen)
    logit = np.array([float(r["outcome_logit"]) for r in scored])
    label = np.array([int(r["response"]) for r in scored])
    assert result["outcomes"]["outcome_auc"] == pytest.approx(binary_auc(logit, label))
    risk = np.array([float(r["survival_risk"]) for r in scored])
    assert result["outcomes"]["c_index"] == pytest.approx(
        concordance(risk, np.array([int(r["event"]) for r in scored]), np.array([float(r["time"]) for r in scored])))
    typed = [r for r in scored if r.get("pathology") not in (None, "")]
    assert len(typed) == 6
    logits = np.array([json.loads(r["class_logits"]) for r in typed])
    truth = np.array([int(r["pathology"]) for r in typed])
    assert result["outcomes"]["class_accuracy"] == pytest.approx(float(np.mean(logits.argmax(axis=1) == truth)))
    assert result["calibration"]["outcome_temperature"] > 0 and result["calibration"]["n"] == 6
    assert summarise_scores([], bootstrap=False) == {"n": 0}
    assert "survival C-index" in (tmp_path / "mtl" / "crossval.md").read_text()
    # The exported model carries the pooled out-of-fold figures and temperatures in its card.
    from MTLRadiomicsLib.model import load_model
    from training.export import main as export_main

    assert export_main([str(tmp_path / "mtl" / "fold_0" / "run"), "--out", str(tmp_path / "exported"),
                        "--crossval", str(tmp_path / "mtl"), "--outcome-meaning", "probability of lung metastasis",
                        "--survival-meaning", "log relative hazard of death"]) == 0
    card = load_model(tmp_path / "exported").card
    assert card.outcome["meaning"] == "probability of lung metastasis"
    assert card.outcome["survival_meaning"] == "log relative hazard of death"
    assert card.calibration["outcome_temperature"] == pytest.approx(result["calibration"]["outcome_temperature"])
    assert card.held_out_metrics["cross_validation"]["outcomes"]["outcome_auc"] == \
        pytest.approx(result["outcomes"]["outcome_auc"])

"""Training on a small synthetic cohort: losses fall, resume is exact, DDP runs in two processes,
runs leave their plots and metrics, export reloads identically, ablation writes its table."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from MTLRadiomicsLib.model import load_model
from MTLRadiomicsLib.model.losses import MultiTaskLoss
from training.checkpoint import load_checkpoint
from training.manifest import ManifestError, read_manifest, split
from training.run_config import RunConfig
from training.trainer import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    from MTLRadiomicsLib.synth import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("cohort"), n_cases=20, seed=7, progress=False)


def tiny(epochs: int = 2, **training) -> RunConfig:
    config = RunConfig.from_yaml(TINY)
    return replace(config, training=replace(config.training, epochs=epochs, **training))


@pytest.fixture(scope="session")
def trained_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = train(tiny(epochs=6, patience=50, batch_size=4), cohort, out, progress=False, log=lambda *_: None)
    return result


def test_short_training_lowers_every_loss(trained_run):
    first, last = trained_run.history[0], trained_run.history[-1]
    tasks = [k for k in first if k.startswith("train_loss_")]
    assert {"train_loss_reconstruction", "train_loss_segmentation", "train_loss_classification",
            "train_loss_outcome"} <= set(tasks)
    for key in tasks + ["train_loss"]:
        assert last[key] < first[key], key


def test_run_folder_holds_config_checkpoint_plots_and_metrics(trained_run):
    out = trained_run.out_dir
    for name in ("config.yaml", "checkpoint_last.pt", "history.json", "metrics.json", "loss_curves.png", "roc.png",
                 "best/model.json", "best/model.safetensors"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert RunConfig.from_yaml(out / "config.yaml").to_dict() == tiny(epochs=6, patience=50, batch_size=4).to_dict()
    metrics = json.loads((out / "metrics.json").read_text())
    for split_name in ("validation", "test"):
        for key in ("dice", "recon_mse", "class_auc", "class_accuracy", "outcome_auc", "outcome_accuracy"):
            assert key in metrics[split_name], (split_name, key)       # values: the test below
    card = json.loads((out / "best" / "model.json").read_text())
    assert card["held_out_metrics"]["test"] == metrics["test"]


def mann_whitney(score, label) -> float:
    pos, neg = score[label == 1], score[label == 0]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])) if len(pos) and len(neg) else None


def outputs_by_hand(network, records, config) -> dict[str, np.ndarray]:
    """Per-case figures from the network's raw outputs on the cases' lesion crops: Dice of the
    thresholded segmentation (both empty: 1), reconstruction MSE, p(class 1) and p(response)."""
    from training.trainer import validation_loaders

    network.eval()
    got: dict[str, list] = {}
    with torch.no_grad():
        for batch in validation_loaders(records, config)["lesion"]:
            out = network(batch["image"])
            for b in range(batch["image"].shape[0]):
                got.setdefault("case_id", []).append(batch["case_id"][b])
                if batch["has_mask"][b]:
                    pred, truth = out["segmentation"][b] > 0, batch["mask"][b] > 0.5          # sigmoid > 0.5
                    total = int(pred.sum() + truth.sum())
                    got.setdefault("dice", []).append(1.0 if total == 0 else 2.0 * int((pred & truth).sum()) / total)
                got.setdefault("recon", []).append(float((out["reconstruction"][b] - batch["image"][b]).pow(2).mean()))
                if batch["has_pathology"][b]:
                    logits = out["classification"][b]
                    p1 = float(torch.sigmoid(logits[0])) if logits.numel() == 1 else float(torch.softmax(logits, 0)[1])
                    got.setdefault("p1", []).append(p1)
                    got.setdefault("pathology", []).append(int(batch["pathology"][b]))
                if batch["has_response"][b]:
                    got.setdefault("p_response", []).append(float(torch.sigmoid(out["outcome"][b].reshape(()))))
                    got.setdefault("response", []).append(int(batch["response"][b]))
    return {k: np.asarray(v) for k, v in got.items()}


def test_held_out_metrics_equal_a_computation_by_hand(trained_run, cohort):
    """metrics.json's figures, recomputed from the best model's raw outputs on each split's cases:
    Dice, reconstruction MSE, pathology and outcome AUC (Mann-Whitney count) and accuracy (p > 0.5)."""
    metrics = json.loads((trained_run.out_dir / "metrics.json").read_text())
    config = tiny(epochs=6, patience=50, batch_size=4)
    best = load_model(trained_run.out_dir / "best")
    _, val_records, test_records = split(read_manifest(cohort)[0], config.training.val_fold)
    for name, records in (("validation", val_records), ("test", test_records)):
        g = outputs_by_hand(best.network, records, config)
        expected = {"dice": g["dice"].mean(), "recon_mse": g["recon"].mean(),
                    "class_auc": mann_whitney(g["p1"], g["pathology"]),
                    "class_accuracy": float(np.mean((g["p1"] > 0.5) == (g["pathology"] == 1))),
                    "outcome_auc": mann_whitney(g["p_response"], g["response"]),
                    "outcome_accuracy": float(np.mean((g["p_response"] > 0.5) == (g["response"] == 1)))}
        for key, value in expected.items():
            if value is None:
                assert metrics[name][key] is None, (name, key)
            else:
                assert metrics[name][key] == pytest.approx(value, abs=1e-5), (name, key)


def test_assess_reports_metrics_intervals_and_the_oracle(trained_run, cohort, tmp_path):
    """training.assess on every case of the cohort: its metrics equal a computation by hand, the
    oracle AUC is that of the manifest's true risk, each 95 % interval holds its estimate and is the
    same when run again; assessment.json and roc.png are written; a bad manifest exits 2."""
    from training.assess import assess, main as assess_main

    model = trained_run.out_dir / "best"
    result = assess(model, cohort, tmp_path / "assess", device_name="cpu")
    records = read_manifest(cohort)[0]
    assert result["n_cases"] == len(records) == 20
    assert json.loads((tmp_path / "assess" / "assessment.json").read_text()) == json.loads(json.dumps(result))
    assert (tmp_path / "assess" / "roc.png").stat().st_size > 1000

    best = load_model(model)
    g = outputs_by_hand(best.network, records, tiny(epochs=6, patience=50, batch_size=4))
    metrics = result["metrics"]
    assert metrics["dice"] == pytest.approx(g["dice"].mean(), abs=1e-5)
    assert metrics["outcome_auc"] == pytest.approx(mann_whitney(g["p_response"], g["response"]), abs=1e-5)
    assert metrics["class_auc"] == pytest.approx(mann_whitney(g["p1"], g["pathology"]), abs=1e-5)
    labelled = [r for r in records if r.response is not None]
    oracle = mann_whitney(-np.array([r.oracle_risk for r in labelled]), np.array([r.response for r in labelled]))
    assert result["oracle_outcome_auc"] == pytest.approx(oracle, abs=1e-6)
    assert result["outcome_auc_share_of_oracle"] == pytest.approx(metrics["outcome_auc"] / oracle)
    assert set(result["bootstrap_95"]) == {"dice", "class_auc", "outcome_auc"}
    for key, (lo, hi) in result["bootstrap_95"].items():
        assert lo - 1e-4 <= metrics[key] <= hi + 1e-4 and lo < hi, (key, lo, hi, metrics[key])
    assert assess(model, cohort, device_name="cpu")["bootstrap_95"] == result["bootstrap_95"]
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,pet,event\na,x.nii.gz,2\n")
    assert assess_main(["--model", str(model), "--manifest", str(bad), "--device", "cpu"]) == 2


def test_early_stopping_after_patience_epochs_without_improvement(cohort, tmp_path, monkeypatch):
    """With patience 2 the run stops after two epochs without a better validation value; an
    improvement resets the count; the best model is the best epoch's. The monitored values are
    fixed by hand (improvements at epochs 1 and 3 only)."""
    import training.trainer as trainer

    values = {1: 3.0, 2: 3.0, 3: 2.0}
    monkeypatch.setattr(trainer, "monitor_value", lambda name, val, epoch: values.get(epoch, 2.0))
    logs: list[str] = []
    result = train(tiny(epochs=10, patience=2), cohort, tmp_path / "es", progress=False, log=logs.append)
    assert result.epochs_run == 5 and result.best_epoch == 3
    assert [row["improved"] for row in result.history] == [True, False, True, False, False]
    assert "early stop: no improvement for 2 epochs (best epoch 3)" in logs
    state = load_checkpoint(tmp_path / "es" / "checkpoint_last.pt")
    assert state["epoch"] == 5 and state["best_epoch"] == 3 and state["bad_epochs"] == 2
    assert json.loads((tmp_path / "es" / "best" / "model.json").read_text())["training_data"]["best_epoch"] == 3


def test_monitor_value_signs():
    from training.trainer import monitor_value

    assert monitor_value("loss", {"loss": 0.7}, 3) == 0.7                  # lower is better
    assert monitor_value("dice", {"dice": 0.8}, 3) == -0.8                 # higher is better
    assert monitor_value("outcome_auc", {"outcome_auc": 0.6}, 3) == -0.6
    assert monitor_value("c_index", {"c_index": 0.55}, 3) == -0.55
    assert monitor_value("outcome_auc", {"outcome_auc": float("nan")}, 3) == float("inf")
    assert monitor_value("dice", {"loss": 1.0}, 3) == float("inf")
    assert monitor_value("loss", {}, 4) == -4.0                             # no validation: the last epoch


def test_resume_gives_the_same_next_epoch(cohort, tmp_path):
    quiet = dict(progress=False, log=lambda *_: None)
    train(tiny(epochs=2), cohort, tmp_path / "straight", **quiet)
    train(tiny(epochs=1), cohort, tmp_path / "killed", **quiet)
    train(tiny(epochs=2), cohort, tmp_path / "killed", resume=True, **quiet)
    a = load_checkpoint(tmp_path / "straight" / "checkpoint_last.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoint_last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    assert a["history"][1]["train_loss"] == b["history"][1]["train_loss"]


def test_existing_run_is_not_overwritten_without_resume(cohort, tmp_path):
    train(tiny(epochs=1), cohort, tmp_path / "run", progress=False, log=lambda *_: None)
    with pytest.raises(FileExistsError, match="--resume"):
        train(tiny(epochs=1), cohort, tmp_path / "run", progress=False, log=lambda *_: None)


def test_two_process_ddp_run_on_cpu(cohort, tmp_path):
    """Two gloo processes: each epoch the ranks load disjoint halves of the training set that together
    cover it, and both end with the same weights (those of the checkpoint)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    probe = tmp_path / "probe"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
               str(ROOT / "Testing" / "ddp_probe.py"), "--probe-out", str(probe),
               "--config", str(TINY), "--manifest", str(cohort), "--out", str(tmp_path / "ddp"), "--epochs", "2",
               "--no-progress", "--device", "cpu"]
    process = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "world size 2" in process.stdout
    state = load_checkpoint(tmp_path / "ddp" / "checkpoint_last.pt")
    assert state["epoch"] == 2
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["test"]["dice"] is not None

    n_train = len(split(read_manifest(cohort)[0], tiny().training.val_fold)[0])
    per_rank = -(-n_train // 2)                              # DistributedSampler pads to a multiple of 2
    seen = [json.loads((probe / f"rank{r}_indices.json").read_text()) for r in (0, 1)]
    assert [len(s) for s in seen] == [2 * per_rank, 2 * per_rank]
    for epoch in (0, 1):
        a, b = (s[epoch * per_rank:(epoch + 1) * per_rank] for s in seen)
        assert set(a) | set(b) == set(range(n_train)), (epoch, a, b)
        assert len(set(a) & set(b)) == 2 * per_rank - n_train, (epoch, a, b)       # only the padding repeats
    assert seen[0][:per_rank] != seen[0][per_rank:]           # reshuffled each epoch

    weights = [torch.load(probe / f"rank{r}_state.pt") for r in (0, 1)]
    assert weights[0].keys() == weights[1].keys() == state["model"].keys()
    for key, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][key]), key
        assert torch.equal(tensor, state["model"][key].cpu()), key


def test_survival_variant_reports_c_index_and_kaplan_meier(cohort, tmp_path):
    config = tiny(epochs=1)
    config = replace(config, model=config.model.with_changes(outcome_kind="survival"))
    result = train(config, cohort, tmp_path / "surv", progress=False, log=lambda *_: None)
    # The reported C-index is Harrell's, counted here pair by pair from the best model's risks on the
    # test cases: of the pairs whose shorter time is an event, the share where that case has the
    # higher risk (ties in risk count half).
    from training.evaluate import collect
    from training.trainer import validation_loaders

    best = load_model(tmp_path / "surv" / "best")
    test_records = split(read_manifest(cohort)[0], config.training.val_fold)[2]
    loader = validation_loaders(test_records, config)["lesion"]
    _, outputs = collect(best.network, loader, MultiTaskLoss(best.config), torch.device("cpu"))
    key = ("survival_risk", "survival_time", "survival_event") if "survival_risk" in outputs else \
        ("outcome_surv", "surv_time", "surv_event")
    risk, time, event = (np.asarray(outputs[k], float).ravel() for k in key)
    pairs = [(i, j) for i in range(len(time)) for j in range(len(time)) if time[i] < time[j] and event[i]]
    assert pairs
    by_hand = np.mean([1.0 if risk[i] > risk[j] else 0.5 if risk[i] == risk[j] else 0.0 for i, j in pairs])
    assert result.final["test"]["c_index"] == pytest.approx(by_hand, abs=1e-6)
    assert (tmp_path / "surv" / "kaplan_meier_test.png").exists()


def test_export_and_reload_give_identical_outputs(trained_run, tmp_path):
    from training.export import main as export_main

    assert export_main([str(trained_run.out_dir), "--out", str(tmp_path / "model"), "--name", "exported",
                        "--synthetic"]) == 0
    exported = load_model(tmp_path / "model")
    best = load_model(trained_run.out_dir / "best")
    assert exported.card.name == "exported" and "synthetic" in exported.card.intended_use
    assert exported.card.held_out_metrics["test"]
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad():
        a, b = exported.network(x), best.network(x)
    for key in ("reconstruction", "segmentation", "classification", "outcome"):
        assert torch.equal(a[key], b[key])


def test_partial_labels_in_the_manifest(cohort, tmp_path):
    rows = list(csv.DictReader(open(cohort)))
    for i, row in enumerate(rows):
        row["pet"] = str(cohort.parent / row["pet"])
        row["mask"] = str(cohort.parent / row["mask"]) if i % 2 == 0 else ""
        if i % 3 == 0:
            row["response"] = ""
    partial = tmp_path / "partial.csv"
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    records, names = read_manifest(partial)
    assert names == ["lung", "oesophageal"]
    assert sum(r.mask is None for r in records) == 10
    assert sum(r.response is None for r in records) == 7
    result = train(tiny(epochs=1), partial, tmp_path / "run", progress=False, log=lambda *_: None)
    assert result.history[0]["train_loss_segmentation"] > 0


def test_manifest_split_and_errors(cohort, tmp_path):
    records, _ = read_manifest(cohort)
    train_records, val, test = split(records, 0)
    assert test and val and train_records
    assert not {r.case_id for r in test} & {r.case_id for r in train_records + val}
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,pet,event\na,x.nii.gz,2\n")
    with pytest.raises(ManifestError, match="event must be 0 or 1"):
        read_manifest(bad)
    bad.write_text("case,image\na,x.nii.gz\n")
    with pytest.raises(ManifestError, match="lacks the columns"):
        read_manifest(bad)


def test_ablation_writes_table_one_layout(cohort, tmp_path):
    from training.ablation import main as ablation_main, table1_variants

    assert len([v for v in table1_variants() if v.features in ("-", "global", "tumour+global")]) >= 15
    code = ablation_main(["--config", str(TINY), "--manifest", str(cohort), "--out", str(tmp_path / "abl"),
                          "--folds", "0", "--epochs", "1", "--only", "4", "15", "--lambdas", "0.5"])
    assert code == 0
    table = (tmp_path / "abl" / "ablation.md").read_text()
    assert "| Tasks | T1 | T2 | T3 | T4 | Outcome features |" in table
    assert "| T4 |" in table and "| T1 + T2 + T3 + T4 |" in table and "lambda = 0.5" in table

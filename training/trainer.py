"""The training loop: epochs with augmentation, validation, early stopping, atomic checkpoints,
resume, TensorBoard, plots, and the final evaluation of the best model on validation and test."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from monai.data import DataLoader as MonaiDataLoader
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from MTLRadiomicsLib.model.losses import MultiTaskLoss
from MTLRadiomicsLib.model.model_card import ModelCard
from MTLRadiomicsLib.model.model_file import load_model, save_model
from MTLRadiomicsLib.model.network import MultiTaskNet
from training.checkpoint import load_checkpoint, save_checkpoint
from training.dataset import build_dataset
from training.distributed import DistContext, average, barrier, init_distributed, shutdown
from training.evaluate import collect, collect_whole_cases, to_device
from training.manifest import read_manifest, split
from training.plots import kaplan_meier_by_risk, loss_curves, roc_curves
from training.run_config import RunConfig

CHECKPOINT = "checkpoint_last.pt"
BEST_DIR = "best"


@dataclass
class TrainResult:
    out_dir: Path
    epochs_run: int
    best_epoch: int
    history: list[dict]
    final: dict[str, dict[str, float]]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but CUDA is not available")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def autocast_dtype(device: torch.device, amp: bool) -> Optional[torch.dtype]:
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train(config: RunConfig, manifest: str | Path, out_dir: str | Path, resume: bool = False,
          device_name: str = "auto", progress: bool = True, log=print) -> TrainResult:
    """Train ``config`` on the manifest's development folds (validation = ``val_fold``), evaluate the
    best model on validation and the locked test split, and leave a run folder:
    config.yaml, checkpoint_last.pt, best/ (safetensors + model card), history.json, metrics.json,
    loss_curves.png, roc.png or kaplan_meier.png, tensorboard/."""
    device = pick_device(device_name)
    ctx = init_distributed(device.type)
    if device.type == "cuda" and ctx.enabled:
        device = torch.device("cuda", ctx.local_rank)
    tc = config.training
    if tc.threads:
        torch.set_num_threads(tc.threads)
    out = Path(out_dir)
    try:
        return _train(config, Path(manifest), out, resume, device, ctx, progress and ctx.is_main, log)
    finally:
        shutdown(ctx)


def _train(config: RunConfig, manifest: Path, out: Path, resume: bool, device: torch.device,
           ctx: DistContext, progress: bool, log) -> TrainResult:
    tc = config.training
    checkpoint_path = out / CHECKPOINT
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if not resume and checkpoint_path.exists():
            raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        config.save(out / "config.yaml")
    barrier(ctx)

    records, class_names = read_manifest(manifest)
    if len(class_names) not in (0, config.model.n_classes) and config.model.classification:
        raise ValueError(f"the manifest has {len(class_names)} pathologies {class_names}, the model "
                         f"{config.model.n_classes} classes")
    train_records, val_records, test_records = split(records, tc.val_fold)
    if not train_records:
        raise ValueError("no training cases: every case is in the validation fold or the test split")
    if ctx.is_main:
        log(f"cases: {len(train_records)} train, {len(val_records)} validation (fold {tc.val_fold}), "
            f"{len(test_records)} test; device {device}; world size {ctx.world_size}")

    seed_everything(tc.seed)
    pre, channels = config.preprocessing, config.model.in_channels
    if tc.monitor not in MONITORS:
        raise ValueError(f"training.monitor must be one of {sorted(MONITORS)}, not {tc.monitor!r}")
    patches = tc.sampling in ("patches", "mixed")
    train_set = build_dataset(train_records, pre, channels, augment=True, cache_rate=tc.cache_rate,
                              sampling=tc.sampling, patches_per_case=tc.patches_per_case)
    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=tc.seed, drop_last=False)
    loader_class = MonaiDataLoader if patches else DataLoader      # MONAI's collate flattens the patch lists
    train_loader = loader_class(train_set, batch_size=tc.batch_size, sampler=sampler, num_workers=tc.num_workers)
    val_loader = validation_loaders(val_records, config) if val_records else None

    if config.model.metric_features and config.model.metric_center is None:
        center, scale = metric_standardisation(train_records)
        config.model = config.model.with_changes(metric_center=center, metric_scale=scale)
        if ctx.is_main:
            log("PET metric features standardised on the training cases: centre "
                + ", ".join(f"{v:.2f}" for v in center) + "; scale " + ", ".join(f"{v:.2f}" for v in scale))
    network = MultiTaskNet(config.model).to(device)
    if tc.init_weights and not resume:
        loaded, total = initialise_from(network, tc.init_weights)
        if ctx.is_main:
            log(f"initialised {loaded} of {total} tensors from {tc.init_weights}")
    criterion = MultiTaskLoss(config.model, config.loss).to(device)
    model: torch.nn.Module = network
    if ctx.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(parameter_groups(network, criterion, tc.lr, tc.head_lr), lr=tc.lr,
                                 weight_decay=tc.weight_decay)
    amp_dtype = autocast_dtype(device, tc.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    history: list[dict] = []
    start_epoch, best_loss, best_epoch, bad_epochs = 1, math.inf, 0, 0
    if resume and checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        network.load_state_dict(state["model"])
        criterion.load_state_dict(state["criterion"])
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best_loss, best_epoch, bad_epochs = float(state["best_loss"]), int(state["best_epoch"]), int(state["bad_epochs"])
        if ctx.is_main:
            log(f"resuming after epoch {start_epoch - 1} (best epoch {best_epoch})")
    writer = _tensorboard(out) if ctx.is_main else None

    stopped_early = False
    for epoch in range(start_epoch, tc.epochs + 1):
        if bad_epochs >= tc.patience:
            stopped_early = True
            break
        seed_everything(tc.seed * 100003 + epoch)
        train_set.transform.set_random_state(seed=(tc.seed * 100003 + epoch) % (2 ** 32))
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        train_losses = _train_epoch(model, criterion, optimizer, scaler, train_loader, device, amp_dtype,
                                    progress, f"epoch {epoch}/{tc.epochs}")
        train_losses = {k: average(v, ctx, device) for k, v in train_losses.items()}
        val_metrics = _validate(network, val_loader, criterion, device, amp_dtype, config) if val_loader else {}
        monitor = monitor_value(tc.monitor, val_metrics, epoch)
        improved = monitor < best_loss - 1e-6
        if improved:
            best_loss, best_epoch, bad_epochs = monitor, epoch, 0
        else:
            bad_epochs += 1
        row = {"epoch": epoch, "seconds": time.perf_counter() - started, "improved": improved}
        row |= {f"train_{k}": v for k, v in train_losses.items()}
        row |= {f"val_{k}": v for k, v in val_metrics.items()}
        history.append(row)
        if ctx.is_main:
            if improved:
                _save_best(network, config, out, class_names, epoch, val_metrics)
            save_checkpoint({"model": network.state_dict(), "criterion": criterion.state_dict(),
                             "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                             "epoch": epoch, "history": history, "best_loss": best_loss,
                             "best_epoch": best_epoch, "bad_epochs": bad_epochs}, checkpoint_path)
            (out / "history.json").write_text(json.dumps(history, indent=1))
            if writer is not None:
                for key, value in row.items():
                    if isinstance(value, (int, float)) and key != "epoch" and math.isfinite(float(value)):
                        writer.add_scalar(key.replace("_", "/", 1), float(value), epoch)
                writer.flush()
            log(_epoch_line(row))
        barrier(ctx)
    if writer is not None:
        writer.close()
    final = _final_evaluation(config, out, val_records, test_records, device, amp_dtype, ctx, history,
                              criterion) if ctx.is_main else {}
    barrier(ctx)
    if ctx.is_main and stopped_early:
        log(f"early stop: no improvement for {tc.patience} epochs (best epoch {best_epoch})")
    return TrainResult(out, len(history), best_epoch, history, final)


MONITORS = {"loss": 1.0, "loss_outcome": 1.0, "dice": -1.0, "outcome_auc": -1.0, "c_index": -1.0}  # sign: lower is better


def monitor_value(name: str, val_metrics: dict, epoch: int) -> float:
    """The early-stopping value (lower is better): the validation metric ``name`` with its sign;
    without validation cases -epoch, so that the last epoch is kept (training for a fixed number of
    epochs); +inf for an undefined metric (e.g. an AUC of a validation fold with one class)."""
    if not val_metrics:
        return -float(epoch)
    value = val_metrics.get(name)
    if value is None or not math.isfinite(float(value)):
        return math.inf
    return MONITORS[name] * float(value)


def initialise_from(network: MultiTaskNet, folder: str | Path) -> tuple[int, int]:
    """Copy every tensor of the model in ``folder`` (safetensors) whose name and shape match into
    ``network`` (fine-tuning from a pretrained model); returns (copied, tensors in the network)."""
    from safetensors.torch import load_file

    from MTLRadiomicsLib.model.model_file import read_card

    card = read_card(folder)
    state = load_file(str(Path(folder) / card.weights_file), device="cpu")
    own = network.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    own.update(matching)
    network.load_state_dict(own)
    return len(matching), len(own)


def validation_loaders(records, config: RunConfig) -> dict:
    """Loaders of the validation cases: "lesion" crops (every task's losses and metrics) and, for
    whole-case sampling, "whole" cases (sliding-window Dice)."""
    pre, channels, sampling = config.preprocessing, config.model.in_channels, config.training.sampling
    loaders = {}
    if sampling in ("patches", "mixed"):
        loaders["whole"] = MonaiDataLoader(build_dataset(records, pre, channels, augment=False, sampling="patches"),
                                           batch_size=1)
    if sampling in ("lesion", "mixed"):
        loaders["lesion"] = DataLoader(build_dataset(records, pre, channels, augment=False, sampling="lesion"),
                                       batch_size=config.training.batch_size)
    return loaders


def _validate(network, loaders: dict, criterion, device, amp_dtype, config: RunConfig) -> dict[str, float]:
    """Validation metrics: every task's losses and metrics on the lesion crops; the Dice of whole
    cases by sliding windows where the model is trained on whole cases (it replaces the crop Dice)."""
    metrics: dict[str, float] = {}
    if "lesion" in loaders:
        metrics |= collect(network, loaders["lesion"], criterion, device, amp_dtype)[0]
    if "whole" in loaders:
        metrics |= collect_whole_cases(network, loaders["whole"], config.preprocessing, device)[0]
    return metrics


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(out / "tensorboard"))


def _train_epoch(model, criterion, optimizer, scaler, loader, device, amp_dtype, progress, label) -> dict[str, float]:
    model.train()
    sums: dict[str, float] = {}
    count = 0
    for batch in tqdm(loader, desc=label, leave=False, disable=not progress, unit="batch"):
        batch = to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(batch["image"], metrics=batch.get("metrics"))
            total, parts = criterion(out, batch)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
        size = batch["image"].shape[0]
        count += size
        sums["loss"] = sums.get("loss", 0.0) + float(total.detach()) * size
        for k, v in parts.items():
            sums[f"loss_{k}"] = sums.get(f"loss_{k}", 0.0) + float(v) * size
    return {k: v / max(count, 1) for k, v in sums.items()}


def _epoch_line(row: dict) -> str:
    parts = [f"epoch {row['epoch']:>3}", f"train loss {row['train_loss']:.4f}"]
    for key, name in (("val_loss", "val loss"), ("val_dice", "Dice"), ("val_class_auc", "class AUC"),
                      ("val_outcome_auc", "outcome AUC"), ("val_c_index", "C-index")):
        if key in row and isinstance(row[key], float) and math.isfinite(row[key]):
            parts.append(f"{name} {row[key]:.3f}")
    parts.append(f"{row['seconds']:.0f} s" + (" *" if row["improved"] else ""))
    return " | ".join(parts)


def _save_best(network: MultiTaskNet, config: RunConfig, out: Path, class_names: list[str], epoch: int,
               val_metrics: dict) -> None:
    card = ModelCard(name=f"{config.model.name}-run", architecture=config.model.to_dict(),
                     preprocessing=config.preprocessing,
                     class_names=tuple(class_names) or ModelCard.__dataclass_fields__["class_names"].default,
                     outcome=_outcome_description(config),
                     training_data={"best_epoch": epoch},
                     held_out_metrics={"validation": _clean(val_metrics)})
    save_model(network, card, out / BEST_DIR)


def _outcome_description(config: RunConfig) -> dict[str, Any]:
    if config.model.outcome_kind == "binary":
        return {"kind": "binary", "meaning": "probability of response to treatment"}
    return {"kind": "survival", "meaning": "log relative hazard (higher = shorter survival)"}


def _clean(metrics: dict) -> dict:
    return {k: (float(v) if isinstance(v, (int, float)) and math.isfinite(float(v)) else None)
            for k, v in metrics.items()}


def _final_evaluation(config, out, val_records, test_records, device, amp_dtype, ctx, history, criterion):
    """Evaluate the best model on validation and test; write metrics.json and the plots."""
    loss_curves(history, out / "loss_curves.png")
    best = load_model(out / BEST_DIR, device=device)
    final: dict[str, dict[str, float]] = {}
    outputs_by_split = {}
    for name, records in (("validation", val_records), ("test", test_records)):
        if not records:
            continue
        loaders = validation_loaders(records, config)
        metrics, outputs = {}, {}
        if "lesion" in loaders:
            metrics, outputs = collect(best.network, loaders["lesion"], criterion, device, amp_dtype)
        if "whole" in loaders:
            whole_metrics, whole_outputs = collect_whole_cases(best.network, loaders["whole"], config.preprocessing,
                                                               device)
            metrics |= whole_metrics
            outputs |= whole_outputs
        final[name] = _clean(metrics)
        outputs_by_split[name] = outputs
    (out / "metrics.json").write_text(json.dumps(final, indent=2))
    curves = {}
    for name, o in outputs_by_split.items():
        if config.model.outcome_kind == "binary" and len(o.get("outcome_label", [])):
            curves[f"outcome, {name}"] = (o["outcome"], o["outcome_label"], final[name].get("outcome_auc") or math.nan)
        if len(o.get("class_label", [])):
            curves[f"pathology, {name}"] = (o["class_prob"][:, 1], o["class_label"] == 1,
                                            final[name].get("class_auc") or math.nan)
        if len(o.get("survival_time", [])):
            kaplan_meier_by_risk(o["survival_risk"], o["survival_event"], o["survival_time"],
                                 out / f"kaplan_meier_{name}.png", f"Kaplan-Meier by predicted risk ({name})")
        if config.model.outcome_kind == "survival" and len(o.get("surv_time", [])):
            kaplan_meier_by_risk(o["outcome_surv"], o["surv_event"], o["surv_time"],
                                 out / f"kaplan_meier_{name}.png", f"Kaplan-Meier by predicted risk ({name})")
    if curves:
        roc_curves(curves, out / "roc.png")
    card = best.card
    card.held_out_metrics = final
    save_model(best.network, card, out / BEST_DIR)
    return final


def metric_standardisation(records) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and standard deviation (floored at 0.1) of the PET metric features of the cases'
    reference masks: the fixed standardisation of the outcome heads' metric inputs."""
    import numpy as np

    from MTLRadiomicsLib.pet_input.masks import load_mask
    from MTLRadiomicsLib.pet_input.reading import load_pet
    from training.dataset import _metrics

    rows = []
    for record in records:
        if not record.mask:
            continue
        pet = load_pet(record.pet)
        mask = load_mask(record.mask, pet)
        if np.asarray(mask).any():
            rows.append(_metrics(pet, mask))
    if len(rows) < 2:
        raise ValueError("metric features need at least two training cases with a reference mask")
    values = np.asarray(rows, dtype=float)
    return (tuple(round(float(v), 4) for v in values.mean(0)),
            tuple(round(float(max(v, 0.1)), 4) for v in values.std(0)))


def parameter_groups(network, criterion, lr: float, head_lr: float) -> list[dict]:
    """Adam's parameter groups: the outcome, survival and pathology heads at ``head_lr`` (when
    set), everything else (and the loss weights) at ``lr``."""
    heads = [m for m in (network.outcome, network.survival, network.classification) if m is not None]
    head_ids = {id(p) for m in heads for p in m.parameters()}
    rest = [p for p in network.parameters() if id(p) not in head_ids] + list(criterion.parameters())
    if not head_lr or not head_ids:
        return [{"params": rest + [p for m in heads for p in m.parameters()], "lr": lr}]
    return [{"params": rest, "lr": lr}, {"params": [p for m in heads for p in m.parameters()], "lr": head_lr}]

"""Speed of the engine and of training, on one machine, in one run.

``python -m benchmarks.speed [--quick | --full] [--results FILE]``

1. `analyze` end to end on the real whole-body scan STS_001 (DICOM, a point in the GTV; skipped
   with a note when ../shared/data/real is absent) and on the demo sample (synthetic whole body,
   NIfTI, automatic localisation): wall time, peak memory and the time of every stage (from
   result.json), for the bundled model and for a random-weight model of the paper's size
   (`named_config('paper')`, 64³ crops at 2 mm). Each run is a fresh process, as a user runs it.
2. Grad-CAM for all nine scales from one forward and one backward pass (`gradcam_all_scales`)
   against MONAI's GradCAM called once per scale, on the same crop; times, ratio and agreement.
3. Inference throughput (voxels per second) and the FLOP rate the network reaches as a share of
   the rate of a plain stack of 3x3x3 convolutions with the same FLOPs, timed in the same run
   (FLOPs counted by torch.utils.flop_counter.FlopCounterMode for both).
4. On CUDA, when present: the same on the GPU in fp32 and with bf16 autocast.
5. Training: samples per second and the share of the time the model step (forward, loss,
   backward, optimiser step) takes, over steps of the trainer's data pipeline
   (training.dataset.build_dataset with augmentation) on a small synthetic cohort.
6. `batch` of 20 synthetic whole-body cases with `--workers 2` against one after the other
   (benchmarks.batch_speed; goal: at least 1.6 times faster).
7. The warm engine (`mtl-radiomics serve`): analyze and rescore of STS_001 (automatic
   localisation) on a running server against a fresh process each (benchmarks.warm_speed).

Results: a section of benchmarks/RESULTS.md per mode and ``speed_<mode>.json`` beside it.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from benchmarks.batch_speed import BatchBench, batch_markdown, batch_speed
from benchmarks.report import RESULTS, write_section
from benchmarks.warm_speed import WarmBench, warm_markdown, warm_speed

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / ".." / "shared" / "data" / "real" / "STS_001_wholebody"
STAGES = ("load", "model", "localisation", "mtv", "inference", "gradcam", "metrics", "outputs", "report")
DEMO_SEED = 2024


@dataclass(frozen=True)
class SpeedMode:
    name: str
    models: tuple[str, ...]              # 'bundled', 'paper', 'tiny'
    analyze_inputs: dict                 # model -> inputs ('sts_point', 'sts_auto', 'demo')
    analyze_repeats: dict                # model -> repeats
    analyze_samples: int                 # --samples of analyze (Monte-Carlo dropout passes)
    fresh_process: bool
    gradcam_models: tuple[str, ...]
    gradcam_repeats: int
    throughput_batches: dict             # model -> batch sizes
    timing_repeats: int
    train_configs: dict                  # training/configs/<name>.yaml -> steps timed
    train_cases: int
    train_cpu_batch: int = 0             # on the CPU, batches no larger than this (0: the configuration's)
    batch: Optional[BatchBench] = None   # section 6, with the first of ``models``; None: not timed
    warm: Optional[WarmBench] = None     # section 7, with the first of ``models``; None: not timed


MODES = {
    "quick": SpeedMode(
        "quick", models=("bundled", "paper"),
        analyze_inputs={"bundled": ("sts_point", "demo"), "paper": ("sts_point",)},
        analyze_repeats={"bundled": 1, "paper": 1}, analyze_samples=10, fresh_process=True,
        gradcam_models=("bundled",), gradcam_repeats=3,
        throughput_batches={"bundled": (1, 4), "paper": (1,)}, timing_repeats=3,
        train_configs={"small": 8}, train_cases=24, batch=BatchBench(20), warm=WarmBench("sts_auto")),
    "full": SpeedMode(
        "full", models=("bundled", "paper"),
        analyze_inputs={"bundled": ("sts_point", "sts_auto", "demo"), "paper": ("sts_point", "demo")},
        analyze_repeats={"bundled": 3, "paper": 1}, analyze_samples=10, fresh_process=True,
        gradcam_models=("bundled", "paper"), gradcam_repeats=1,
        throughput_batches={"bundled": (1, 4), "paper": (1, 4)}, timing_repeats=3,
        train_configs={"small": 10, "paper": 2}, train_cases=48, train_cpu_batch=2, batch=BatchBench(20),
        warm=WarmBench("sts_auto", repeats=3)),
    "smoke": SpeedMode(
        "smoke", models=("tiny",), analyze_inputs={"tiny": ("demo",)},
        analyze_repeats={"tiny": 1}, analyze_samples=2, fresh_process=False,
        gradcam_models=("tiny",), gradcam_repeats=1,
        throughput_batches={"tiny": (1,)}, timing_repeats=1,
        train_configs={"tiny": 2}, train_cases=6, batch=BatchBench(4, kind="crop", report=False),
        warm=WarmBench("demo", repeats=1)),
}
INPUT_NAMES = {"sts_point": "STS_001 DICOM, point in the GTV",
               "sts_auto": "STS_001 DICOM, automatic localisation",
               "demo": "demo sample NIfTI, automatic localisation"}


# ---------------------------------------------------------------- models


@dataclass
class BenchModel:
    """A model to time. Random models get ``mtv_method`` "suv2.5": their segmentation head is set to
    see no tumour (a random one would call half the body tumour and leak), so the time is that of
    the real pipeline (every MTV method, then the scores and heatmaps of a plausible MTV)."""

    key: str
    label: str
    folder: Path
    mtv_method: str = "network"


def prepare_models(keys: Sequence[str], folder: Path) -> dict[str, BenchModel]:
    """The models to time: the bundled one (a random small model when it is not there yet), a
    random model of the paper's size (64³ at 2 mm), a random tiny one (smoke runs)."""
    from MTLRadiomicsLib.analysis.engine import default_model_dir
    from MTLRadiomicsLib.model import ModelCard, MultiTaskNet, Preprocessing, named_config, read_card, save_model

    models = {}
    for key in keys:
        if key == "bundled" and (default_model_dir() / "model.json").exists():
            card = read_card(default_model_dir())
            models[key] = BenchModel(key, f"bundled ({card.name})", default_model_dir())
            continue
        torch.manual_seed(0)
        if key == "paper":
            config, pre, label = named_config("paper"), Preprocessing((2.0,) * 3, (64, 64, 64)), "paper size, random weights"
        elif key == "bundled":
            config, pre = named_config("small", norm="batch"), Preprocessing((3.0,) * 3, (32, 32, 32))
            label = "small, random weights (no bundled model yet)"
        else:
            config, pre, label = named_config("tiny"), Preprocessing((4.0,) * 3, (32, 32, 32)), "tiny, random weights"
        target = folder / key
        network = MultiTaskNet(config)
        with torch.no_grad():
            network.segmentation.head.bias.fill_(-30.0)
        save_model(network, ModelCard(name=f"{key}-random", architecture=config.to_dict(), preprocessing=pre), target)
        models[key] = BenchModel(key, label, target, mtv_method="suv2.5")
    return models


# ---------------------------------------------------------------- 1. analyze end to end


def gtv_point_ras() -> list[float]:
    """The centre of STS_001's GTV in RAS mm (as Slicer shows points)."""
    import SimpleITK as sitk

    from MTLRadiomicsLib import load_pet

    pet = load_pet(REAL / "dicom")
    gtv = sitk.GetArrayFromImage(sitk.ReadImage(str(REAL / "GTV_Mass_mask.nii.gz")))
    k, j, i = np.argwhere(gtv > 0).mean(axis=0)
    x, y, z = pet.index_to_physical((i, j, k))
    return [-float(x), -float(y), float(z)]


CHILD = ("import resource, sys, torch; from MTLRadiomicsLib.cli import main; rc = main(); "
         "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
         "print('PEAK_CUDA_MB', torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0, "
         "file=sys.stderr); sys.exit(rc)")


def analyze_once(args: list[str], model: Path, device: str, samples: int, fresh_process: bool,
                 mtv_method: str = "network") -> dict:
    """One analysis: wall seconds, peak resident memory (MB), peak CUDA memory and result.json."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        if fresh_process:
            command = [sys.executable, "-c", CHILD, "analyze", *args, "--out", str(out), "--model", str(model),
                       "--progress", "none", "--device", device, "--samples", str(samples),
                       "--mtv-method", mtv_method]
            start = time.perf_counter()
            process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            wall = time.perf_counter() - start
            if process.returncode != 0:
                raise RuntimeError(f"analyze failed: {process.stderr.strip()[-2000:]}")
            lines = process.stderr.splitlines()
            peak = next(int(line.split()[1]) for line in lines if line.startswith("PEAK_KB")) / 1024.0
            peak_cuda = next(float(line.split()[1]) for line in lines if line.startswith("PEAK_CUDA_MB"))
        else:
            from MTLRadiomicsLib.analysis.engine import analyze
            from MTLRadiomicsLib.analysis.options import AnalysisOptions

            point = tuple(float(v) for v in args[args.index("--point") + 1:][:3]) if "--point" in args else None
            start = time.perf_counter()
            analyze(args[0], out, AnalysisOptions(point=point, model=model, device=device, samples=samples,
                                                  mtv_method=mtv_method))
            wall = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            peak_cuda = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else 0.0
        result = json.loads((out / "result.json").read_text())
    return {"wall_s": wall, "peak_mb": peak, "peak_cuda_mb": peak_cuda, "timings_s": result["timings_s"],
            "device": result.get("device"), "warnings": result.get("warnings", [])}


def analyze_section(mode: SpeedMode, models: dict[str, BenchModel], work: Path, devices: Sequence[str],
                    log: Callable[[str], None]) -> dict:
    """Every (model, input, device) of the mode: medians over the repeats."""
    from MTLRadiomicsLib.synth import wholebody_case
    import SimpleITK as sitk

    inputs: dict[str, list[str]] = {}
    notes = []
    wanted = {i for key in models for i in mode.analyze_inputs.get(key, ())}
    if "demo" in wanted:
        demo = work / "demo_pet.nii.gz"
        sitk.WriteImage(wholebody_case(DEMO_SEED).pet.to_sitk(), str(demo))
        inputs["demo"] = [str(demo)]
    if wanted & {"sts_point", "sts_auto"}:
        if REAL.exists():
            point = gtv_point_ras()
            inputs["sts_point"] = [str(REAL / "dicom"), "--point", *(f"{v:.2f}" for v in point)]
            inputs["sts_auto"] = [str(REAL / "dicom")]
        else:
            notes.append(f"STS_001 skipped: the real data is not at {REAL.resolve()}")
    rows = []
    for key, model in models.items():
        for name in mode.analyze_inputs.get(key, ()):
            if name not in inputs:
                continue
            for device in devices:
                runs = [analyze_once(inputs[name], model.folder, device, mode.analyze_samples, mode.fresh_process,
                                     model.mtv_method)
                        for _ in range(mode.analyze_repeats.get(key, 1))]
                row = {"model": model.label, "input": INPUT_NAMES[name], "device": runs[0]["device"],
                       "wall_s": statistics.median(r["wall_s"] for r in runs),
                       "peak_mb": max(r["peak_mb"] for r in runs),
                       "peak_cuda_mb": max(r["peak_cuda_mb"] for r in runs),
                       "stages_s": {s: statistics.median(r["timings_s"].get(s, 0.0) for r in runs) for s in STAGES},
                       "repeats": len(runs)}
                rows.append(row)
                log(f"analyze {model.key} / {name} / {row['device']}: {row['wall_s']:.1f} s, "
                    f"peak {row['peak_mb']:.0f} MB")
    return {"rows": rows, "notes": notes, "samples": mode.analyze_samples, "fresh_process": mode.fresh_process}


# ---------------------------------------------------------------- shared timing helpers


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MIN_TIMED_S = 1.0      # fast calls are repeated until they add up to this


def timed(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall seconds of ``fn`` after ``warmup`` calls: at least ``repeats`` calls, and more
    until they add up to MIN_TIMED_S."""
    for _ in range(warmup):
        fn()
    synchronise(device)
    times: list[float] = []
    while len(times) < repeats or sum(times) < MIN_TIMED_S:
        start = time.perf_counter()
        fn()
        synchronise(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_pair(fn_a: Callable[[], object], fn_b: Callable[[], object], device: torch.device,
               repeats: int) -> tuple[float, float]:
    """Median seconds of two calls timed alternately (a, b, a, b, ...) after one warm-up each, so
    that both see the same machine; at least ``repeats`` each and MIN_TIMED_S in all."""
    fn_a()
    fn_b()
    synchronise(device)
    times: tuple[list[float], list[float]] = ([], [])
    while len(times[0]) < repeats or sum(times[0]) + sum(times[1]) < MIN_TIMED_S:
        for fn, out in ((fn_a, times[0]), (fn_b, times[1])):
            start = time.perf_counter()
            fn()
            synchronise(device)
            out.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


@functools.lru_cache(maxsize=1)
def demo_case():
    """The demo sample (synthetic whole body, seed 2024)."""
    from MTLRadiomicsLib.synth import wholebody_case

    return wholebody_case(DEMO_SEED)


def crop_input(model: BenchModel, device: torch.device, batch: int = 1) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model in eval mode and a crop of the demo sample's lesion at the model's grid."""
    from MTLRadiomicsLib.analysis.inference import prepare_input
    from MTLRadiomicsLib.model import load_model

    loaded = load_model(model.folder, device=device)
    case = demo_case()
    crop = prepare_input(case.pet, case.lesion_center_lps, loaded.card)
    x = crop.tensor(device)
    return loaded.network.eval(), x.expand(batch, *x.shape[1:]).contiguous()


# ---------------------------------------------------------------- 2. Grad-CAM


class OutcomeLogit(torch.nn.Module):
    """The network as a one-logit classifier of the outcome, the form MONAI's GradCAM takes."""

    def __init__(self, network: torch.nn.Module):
        super().__init__()
        self.net = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["outcome"][:, None]


def layer_name(scale: str) -> str:
    return f"net.encoder.{scale}" if scale.startswith("enc") else f"net.segmentation.{scale}"


def _unit(a: np.ndarray) -> Optional[np.ndarray]:
    span = float(a.max() - a.min())
    return (a - a.min()) / span if span > 0 else None


def gradcam_compare(model: BenchModel, device: torch.device, repeats: int) -> dict:
    """All scales in one pass against MONAI's GradCAM once per scale (each on a fresh copy of the
    network, since MONAI leaves its hooks on the modules)."""
    from monai.visualize import GradCAM

    from MTLRadiomicsLib.analysis.gradcam import gradcam_all_scales

    network, x = crop_input(model, device)
    with torch.no_grad():
        scales = list(network(x)["features"])
    ours = gradcam_all_scales(network, x, "outcome")                                   # also the warm-up
    ours_s = timed(lambda: gradcam_all_scales(network, x, "outcome"), device, repeats, warmup=0)
    identity = lambda m: m  # noqa: E731  (raw maps, no MONAI min-max flip)

    def monai_scale(scale: str) -> tuple[float, np.ndarray]:
        cam = GradCAM(nn_module=OutcomeLogit(copy.deepcopy(network)), target_layers=layer_name(scale),
                      postprocessing=identity)
        synchronise(device)
        start = time.perf_counter()
        heatmap = cam(x)
        synchronise(device)
        return time.perf_counter() - start, heatmap[0, 0].detach().float().cpu().numpy()

    monai_scale(scales[0])                                     # warm-up, as for ours
    totals, per_scale, difference, compared = [], {}, 0.0, set()
    for _ in range(repeats):
        total = 0.0
        for scale in scales:
            seconds, theirs = monai_scale(scale)
            total += seconds
            per_scale.setdefault(scale, []).append(seconds)
            a, b = _unit(ours[scale]), _unit(theirs)
            if a is not None and b is not None:
                difference = max(difference, float(np.abs(a - b).max()))
                compared.add(scale)
        totals.append(total)
    monai_s = statistics.median(totals)
    return {"model": model.label, "device": str(device), "crop": list(x.shape[2:]), "scales": scales,
            "ours_s": ours_s, "monai_s": monai_s, "monai_per_scale_s": {k: statistics.median(v) for k, v in per_scale.items()},
            "speed_up": monai_s / ours_s, "max_abs_difference": difference,
            "scales_compared": sorted(compared), "repeats": repeats}


# ---------------------------------------------------------------- 3. throughput


def count_flops(module: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted on a copy on the meta device (nothing is computed)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x.to("meta"))
    return int(counter.get_total_flops())


STACK_WIDTHS = (64, 56, 48, 40, 32, 24, 16)
STACK_TOLERANCE = 0.1


def plain_stack(target_flops: int, size: Sequence[int], batch: int,
                device: torch.device) -> tuple[torch.nn.Module, torch.Tensor]:
    """3x3x3 convolutions (width -> width, ReLU) at the crop size: the widest width (64 down to 16)
    whose whole number of layers comes within 10 % of ``target_flops`` (else the closest)."""
    voxels = int(np.prod(size)) * batch

    def layers_and_error(width: int) -> tuple[int, float]:
        per_layer = 2 * width * width * 27 * voxels
        n = max(1, int(round(target_flops / per_layer)))
        return n, abs(n * per_layer - target_flops) / target_flops

    fitting = [w for w in STACK_WIDTHS if layers_and_error(w)[1] <= STACK_TOLERANCE]
    channels = fitting[0] if fitting else min(STACK_WIDTHS, key=lambda w: layers_and_error(w)[1])
    n = layers_and_error(channels)[0]
    layers: list[torch.nn.Module] = []
    for _ in range(n):
        layers += [torch.nn.Conv3d(channels, channels, 3, padding=1), torch.nn.ReLU(inplace=True)]
    stack = torch.nn.Sequential(*layers).to(device).eval()
    return stack, torch.rand(batch, channels, *size, device=device)


def throughput(model: BenchModel, device: torch.device, batches: Sequence[int], repeats: int,
               amp_dtype: Optional[torch.dtype] = None) -> list[dict]:
    """Forward passes (eval, no grad) of the model and of the plain stack of the same FLOPs."""
    rows = []
    for batch in batches:
        network, x = crop_input(model, device, batch)
        flops = count_flops(network, x)
        stack, xs = plain_stack(flops, x.shape[2:], batch, device)
        channels = xs.shape[1]
        stack_flops = count_flops(stack, xs)

        def forward(module, inp):
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                module(inp)

        seconds, stack_seconds = timed_pair(lambda: forward(network, x), lambda: forward(stack, xs), device, repeats)
        voxels = batch * int(np.prod(x.shape[2:]))
        rows.append({"model": model.label, "device": str(device),
                     "precision": "fp32" if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
                     "batch": batch, "crop": list(x.shape[2:]), "seconds": seconds,
                     "voxels_per_s": voxels / seconds, "gflop": flops / 1e9, "gflop_per_s": flops / seconds / 1e9,
                     "stack_channels": channels, "stack_layers": len(stack) // 2, "stack_gflop": stack_flops / 1e9,
                     "stack_gflop_per_s": stack_flops / stack_seconds / 1e9,
                     "share_of_stack": (flops / seconds) / (stack_flops / stack_seconds), "repeats": repeats})
    return rows


# ---------------------------------------------------------------- 5. training


def training_speed(config_name: str, cohort: Path, steps: int, device: torch.device,
                   amp: bool, batch_limit: int = 0) -> dict:
    """Steps of the trainer's pipeline: time waiting for the batch (augmentation, collation, copy)
    vs the model step (forward, loss, backward, optimiser); the first step is a warm-up."""
    from torch.utils.data import DataLoader

    from MTLRadiomicsLib.model.losses import MultiTaskLoss
    from MTLRadiomicsLib.model.network import MultiTaskNet
    from training.dataset import build_dataset
    from training.evaluate import to_device
    from training.manifest import read_manifest
    from training.run_config import RunConfig
    from training.trainer import autocast_dtype

    config = RunConfig.from_yaml(ROOT / "training" / "configs" / f"{config_name}.yaml")
    tc = config.training
    if batch_limit and device.type == "cpu":
        tc.batch_size = min(tc.batch_size, batch_limit)
    records, _ = read_manifest(cohort)
    start = time.perf_counter()
    data = build_dataset(records, config.preprocessing, config.model.in_channels, augment=True)
    cache_s = time.perf_counter() - start
    loader = DataLoader(data, batch_size=tc.batch_size, shuffle=True, num_workers=tc.num_workers, drop_last=True)
    torch.manual_seed(0)
    network = MultiTaskNet(config.model).to(device).train()
    criterion = MultiTaskLoss(config.model, config.loss).to(device)
    optimiser = torch.optim.Adam(list(network.parameters()) + list(criterion.parameters()), lr=tc.lr)
    amp_dtype = autocast_dtype(device, amp and tc.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    iterator = iter(loader)
    data_times, model_times = [], []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        batch = to_device(batch, device)
        synchronise(device)
        t1 = time.perf_counter()
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = network(batch["image"])
            total, _ = criterion(out, batch)
        scaler.scale(total).backward()
        scaler.step(optimiser)
        scaler.update()
        synchronise(device)
        t2 = time.perf_counter()
        if step == 0:
            continue
        data_times.append(t1 - t0)
        model_times.append(t2 - t1)
    data_s, model_s = statistics.median(data_times), statistics.median(model_times)
    return {"config": f"training/configs/{config_name}.yaml", "preset": config.model.name, "device": str(device),
            "precision": "fp32" if amp_dtype is None else str(amp_dtype).replace("torch.", ""),
            "crop": list(config.preprocessing.crop_size), "spacing_mm": list(config.preprocessing.spacing_mm),
            "batch": tc.batch_size, "steps": steps, "cases_cached": len(records), "cache_s": cache_s,
            "samples_per_s": tc.batch_size / (data_s + model_s), "model_busy_share": model_s / (data_s + model_s),
            "data_s_per_step": data_s, "model_s_per_step": model_s,
            "data_s_steps": data_times, "model_s_steps": model_times,
            "loss_finite": bool(torch.isfinite(total.detach()).item())}


# ---------------------------------------------------------------- 6. batch


def batch_section(mode: SpeedMode, models: dict[str, BenchModel], work: Path, log: Callable[[str], None]) -> dict:
    """`batch` with --workers against one case after the other, with the mode's first model."""
    if mode.batch is None:
        return {}
    log("batch")
    model = models[mode.models[0]]
    return batch_speed(mode.batch, model.folder, model.mtv_method, mode.analyze_samples, work, mode.fresh_process, log)


# ---------------------------------------------------------------- 7. warm engine


def warm_section(mode: SpeedMode, models: dict[str, BenchModel], work: Path,
                 log: Callable[[str], None]) -> tuple[dict, str]:
    """The warm engine against a process per run, with the mode's first model; (figures, input)."""
    if mode.warm is None:
        return {}, ""
    log("warm engine")
    model = models[mode.models[0]]
    name = mode.warm.input if mode.warm.input != "sts_auto" or REAL.exists() else "demo"
    if name == "sts_auto":
        pet = REAL / "dicom"
    else:
        import SimpleITK as sitk

        pet = work / "warm_demo.nii.gz"
        sitk.WriteImage(demo_case().pet.to_sitk(), str(pet))
    folder = work / "warm"
    folder.mkdir(exist_ok=True)
    return (warm_speed(mode.warm, pet, None, model.folder, model.mtv_method, mode.analyze_samples, folder,
                       mode.fresh_process, log), INPUT_NAMES[name])


# ---------------------------------------------------------------- report


def analyze_markdown(a: dict) -> str:
    how = ("each run a fresh `mtl-radiomics analyze` process, Python start and imports included"
           if a["fresh_process"] else "in-process `analyze` calls; peak memory is the process's high-water mark")
    lines = [f"**1. `analyze` end to end** ({how}; `--samples {a['samples']}` Monte-Carlo dropout passes; "
             "median of the repeats; stage times in seconds from result.json):", "",
             "| input | model | device | repeats | wall (s) | peak RSS (MB) | " + " | ".join(STAGES) + " |",
             "|" + "---|" * (6 + len(STAGES))]
    for r in a["rows"]:
        lines.append(f"| {r['input']} | {r['model']} | {r['device']} | {r['repeats']} | {r['wall_s']:.1f} | "
                     f"{r['peak_mb']:.0f} | " + " | ".join(f"{r['stages_s'][s]:.2f}" for s in STAGES) + " |")
    lines += [f"\n{n}" for n in a["notes"]]
    return "\n".join(lines)


def gradcam_markdown(rows: list[dict], notes: Sequence[str]) -> str:
    lines = ["**2. Grad-CAM, all scales** (target: the outcome score; one crop of the demo sample's lesion; "
             "MONAI's `GradCAM` with identity post-processing once per scale, each on a fresh copy of the network; "
             "agreement: largest difference of the min-max scaled maps, over the scales whose maps are not flat):", "",
             "| model | device | crop | scales | one pass, all scales (s) | MONAI, once per scale (s) | ratio | "
             "max difference (scales compared) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['device']} | {'×'.join(map(str, r['crop']))} | {len(r['scales'])} | "
                     f"{r['ours_s']:.3f} | {r['monai_s']:.3f} | {r['speed_up']:.1f}× | {r['max_abs_difference']:.1e} "
                     f"({len(r['scales_compared'])}) |")
    lines += [f"\n{n}" for n in notes]
    return "\n".join(lines)


def throughput_markdown(rows: list[dict]) -> str:
    lines = ["**3. Inference throughput** (forward pass, eval mode, no gradients; FLOPs counted by "
             "`FlopCounterMode` (convolutions and matrix products); the plain stack: 3×3×3 convolutions of "
             "the given width at the crop size, as many as give the model's FLOPs, timed alternately with the model; "
             "median of the repeats):", "",
             "| model | device | precision | batch | crop | s per batch | voxels/s | GFLOP per batch | GFLOP/s | "
             "plain stack (width × layers, GFLOP) | plain stack GFLOP/s | share of plain stack |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['device']} | {r['precision']} | {r['batch']} | {'×'.join(map(str, r['crop']))} | "
                     f"{r['seconds']:.3f} | {r['voxels_per_s']:.3g} | {r['gflop']:.1f} | {r['gflop_per_s']:.1f} | "
                     f"{r['stack_channels']} × {r['stack_layers']}, {r['stack_gflop']:.1f} | "
                     f"{r['stack_gflop_per_s']:.1f} | {r['share_of_stack']:.0%} |")
    return "\n".join(lines)


def training_markdown(rows: list[dict]) -> str:
    lines = ["**5. Training** (the trainer's data pipeline: cached loading, random crops, flips, intensity "
             "scaling and noise, `DataLoader` with the configuration's workers; model step = forward, loss, "
             "backward, Adam step; the first step is not counted; medians per step):", "",
             "| configuration | device | precision | crop | batch | steps | cache fill (s) | samples/s | "
             "model busy | data s/step | model s/step |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {r['device']} | {r['precision']} | {'×'.join(map(str, r['crop']))} at "
                     f"{r['spacing_mm'][0]:g} mm | {r['batch']} | {r['steps']} | {r['cache_s']:.1f} "
                     f"({r['cases_cached']} cases) | {r['samples_per_s']:.2f} | {r['model_busy_share']:.0%} | "
                     f"{r['data_s_per_step']:.3f} | {r['model_s_per_step']:.3f} |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    cuda = result["cuda"]
    cuda_text = ("**4. CUDA:** " + cuda if isinstance(cuda, str) else
                 f"**4. CUDA ({cuda['device']}):** the GPU rows (fp32 and bf16 autocast) are in the tables.")
    parts = [analyze_markdown(result["analyze"]), gradcam_markdown(result["gradcam"], result["gradcam_notes"]),
             throughput_markdown(result["throughput"]), cuda_text, training_markdown(result["training"]),
             batch_markdown(result.get("batch") or {}, result.get("batch_model", "")),
             warm_markdown(result.get("warm") or {}, result.get("batch_model", ""), result.get("warm_input", "")),
             f"Whole run: {result['seconds']:.0f} s; one-minute load average {result['load_average_before']:.2f} "
             f"before and {result['load_average_after']:.2f} after (the run itself keeps {torch.get_num_threads()} "
             "threads busy; more means other work shared the CPU)."]
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the run


def run(mode: SpeedMode, results: Path = RESULTS, log: Callable[[str], None] = print,
        command: Optional[str] = None) -> dict:
    from MTLRadiomicsLib.synth import generate_cohort

    started = time.perf_counter()
    cpu = torch.device("cpu")
    cuda = torch.device("cuda") if torch.cuda.is_available() else None
    result: dict = {"mode": mode.name, "settings": asdict(mode), "load_average_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = prepare_models(mode.models, work / "models")
        result["models"] = {k: {"label": m.label, "folder": str(m.folder)} for k, m in models.items()}
        log("analyze end to end")
        devices = ["cpu"] + (["cuda"] if cuda else [])
        result["analyze"] = analyze_section(mode, models, work, devices, log)

        log("Grad-CAM")
        result["gradcam"], result["gradcam_notes"] = [], []
        for key in mode.gradcam_models:
            for device in [cpu] + ([cuda] if cuda else []):
                result["gradcam"].append(gradcam_compare(models[key], device, mode.gradcam_repeats))
                log(f"  {key} on {device}: {result['gradcam'][-1]['speed_up']:.1f}x")
        skipped = [models[k].label for k in mode.models if k not in mode.gradcam_models]
        if skipped:
            result["gradcam_notes"].append(f"Not timed in this mode: {', '.join(skipped)} (see the full mode).")

        log("throughput")
        result["throughput"] = []
        for key, batches in mode.throughput_batches.items():
            result["throughput"] += throughput(models[key], cpu, batches, mode.timing_repeats)
            if cuda:
                result["throughput"] += throughput(models[key], cuda, batches, mode.timing_repeats)
                result["throughput"] += throughput(models[key], cuda, batches, mode.timing_repeats, torch.bfloat16)
        result["cuda"] = ({"device": torch.cuda.get_device_name(0)} if cuda
                          else "no CUDA on this machine: CPU figures only.")

        log("training")
        cohort = generate_cohort(work / "cohort", mode.train_cases, seed=3, progress=False)
        result["training"] = []
        for name, steps in mode.train_configs.items():
            result["training"].append(training_speed(name, cohort, steps, cpu, amp=False,
                                                     batch_limit=mode.train_cpu_batch))
            if cuda:
                result["training"].append(training_speed(name, cohort, steps, cuda, amp=False))
                result["training"].append(training_speed(name, cohort, steps, cuda, amp=True))
        result["batch"] = batch_section(mode, models, work, log)
        result["batch_model"] = models[mode.models[0]].label
        result["warm"], result["warm_input"] = warm_section(mode, models, work, log)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_after"] = os.getloadavg()[0]
    body = markdown(result)
    json_path = results.parent / f"speed_{mode.name}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    try:
        shown = json_path.resolve().relative_to(ROOT)
    except ValueError:
        shown = json_path
    write_section(f"Speed ({mode.name})", body + f"\n\nAll figures: `{shown}`.\n",
                  command or f"python -m benchmarks.speed --{mode.name}", results)
    log(body)
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_const", dest="mode", const="quick",
                       help="one repeat; the paper-size model on STS_001 only and without the MONAI comparison")
    which.add_argument("--full", action="store_const", dest="mode", const="full",
                       help="every input for both models (three repeats for the bundled one), the MONAI "
                            "comparison and training for the paper-size model too (default)")
    which.add_argument("--smoke", action="store_const", dest="mode", const="smoke",
                       help="a tiny random model, in-process, one repeat: checks that the benchmark runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the RESULTS.md to write")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.speed " + " ".join(sys.argv[1:] if argv is None else argv)
    run(MODES[args.mode or "full"], args.results, log=lambda line: print(line, flush=True), command=command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

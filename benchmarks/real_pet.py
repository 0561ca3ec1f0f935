"""The MTV on real FDG-PET: every method against the clinicians' GTVs of the 35 sarcoma crops.

``python -m benchmarks.real_pet --crossval CV`` compares, on the same cases and the same seed (each
GTV's hottest voxel, as a physician clicking on the tumour):
- the synthetic-only bundled model (never trained on these patients),
- the real model, cross-validated: every case segmented by the fold model that did not see it
  (the folds of ``python -m training.crossval``, folder CV),
- every classical method of the engine (40 %, 41 %, 50 % of SUVmax, SUV >= 2.5; the
  liver-referenced one needs a liver, which no crop holds),
each with and without hole filling: Dice (mean, median, 95 % bootstrap interval of the mean), the
paired difference to the best classical method, volume agreement (Bland-Altman), and the cases
whose MTV came out empty or cut. It also times ``analyze`` end to end on the largest tumour.
Writes its section of RESULTS.md, ``real_pet.json`` and the figures ``real_pet_dice.png`` and
``real_pet_bland_altman.png`` beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from benchmarks.report import RESULTS, write_section

HERE = Path(__file__).resolve().parent
BOOTSTRAP = 2000


def bootstrap(values: np.ndarray, rounds: int = BOOTSTRAP, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    n = len(values)
    means = values[rng.integers(0, n, size=(rounds, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def case_rows(manifest: Path, crossval: Optional[Path], synthetic_model: Path, device: torch.device,
              log: Callable[[str], None]) -> list[dict]:
    """Per case: Dice, volume and empty/cut flags of every method, with and without hole filling."""
    from MTLRadiomicsLib.model.model_file import load_model
    from MTLRadiomicsLib.mtv.classical import fill_enclosed, segment_classical
    from MTLRadiomicsLib.mtv.network_mtv import segment_network_mtv
    from training.heldout_mtv import dice, hottest_seed, load_case
    from training.manifest import read_manifest

    records, _ = read_manifest(manifest)
    synthetic = load_model(synthetic_model, device=device)
    fold_models: dict[str, object] = {}
    rows = []
    for record in records:
        pet, gtv = load_case(record)
        seed_zyx, seed_lps = hottest_seed(pet, gtv)
        voxel_ml = pet.voxel_volume_ml
        row = {"case_id": record.case_id, "fold": record.fold, "gtv_ml": float(gtv.sum()) * voxel_ml,
               "methods": {}}

        def add(name: str, mask: np.ndarray, cut: bool) -> None:
            for suffix, m in (("", mask), (" + fill", fill_enclosed(mask) if mask.any() else mask)):
                row["methods"][name + suffix] = {"dice": dice(m, gtv), "ml": float(m.sum()) * voxel_ml,
                                                 "empty": not m.any(), "cut": cut}

        models = [("synthetic model (network)", synthetic)]
        if crossval is not None:
            key = str(record.fold)
            if key not in fold_models:
                fold_models[key] = load_model(crossval / f"fold_{key}" / "run" / "best", device=device)
            models.append(("real model, cross-validated (network)", fold_models[key]))
        for name, model in models:
            result = segment_network_mtv(model.network, model.card, pet, seed_lps, device)
            add(name, result.mask > 0, bool(result.cut_at_scan_end or result.reached_limit))
        for method, label in (("suvmax40", "40 % of SUVmax"), ("suvmax41", "41 % of SUVmax (EANM)"),
                              ("suvmax50", "50 % of SUVmax"), ("suv2.5", "SUV >= 2.5")):
            mask = segment_classical(pet.suv, pet.spacing, seed_zyx, method).mask > 0
            add(label, mask, touches_edge(mask))
        rows.append(row)
        best = max(row["methods"].items(), key=lambda kv: kv[1]["dice"])
        log(f"  {record.case_id}: GTV {row['gtv_ml']:.0f} ml; best {best[0]} Dice {best[1]['dice']:.2f}")
    return rows


def touches_edge(mask: np.ndarray) -> bool:
    """Whether a mask reaches a face of its array (the crop ends at the tumour there)."""
    return any(np.take(mask, i, axis=a).any() for a in range(3) for i in (0, mask.shape[a] - 1))


def summarise(rows: list[dict]) -> dict[str, dict]:
    names = list(rows[0]["methods"])
    out = {}
    for name in names:
        values = np.array([r["methods"][name]["dice"] for r in rows])
        ml = np.array([r["methods"][name]["ml"] for r in rows])
        gtv = np.array([r["gtv_ml"] for r in rows])
        diff = ml - gtv
        out[name] = {"n": len(values), "dice_mean": float(values.mean()), "dice_median": float(np.median(values)),
                     "dice_ci95": list(bootstrap(values)),
                     "empty": int(sum(r["methods"][name]["empty"] for r in rows)),
                     "cut": int(sum(r["methods"][name]["cut"] for r in rows)),
                     "mean_ml": float(ml.mean()), "volume_bias_ml": float(diff.mean()),
                     "volume_loa_ml": float(1.96 * diff.std(ddof=1))}
    return out


def paired(rows: list[dict], a: str, b: str) -> dict:
    """Mean Dice difference a - b over the same cases, with its bootstrap interval."""
    d = np.array([r["methods"][a]["dice"] - r["methods"][b]["dice"] for r in rows])
    return {"a": a, "b": b, "mean": float(d.mean()), "ci95": list(bootstrap(d))}


def time_analyze(pet: Path, model: str, point_ras: Sequence[float], extra: Sequence[str] = ()) -> float:
    """Wall seconds of one ``mtl-radiomics analyze`` process (start, imports, outputs, report)."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, "-m", "MTLRadiomicsLib.cli", "analyze", str(pet), "--out", f"{tmp}/o",
                "--model", model, "--point", *map(str, point_ras), "--progress", "none", *extra]
        start = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, cwd=HERE.parent)
        return time.perf_counter() - start


def largest_case_timing(manifest: Path, model: str) -> dict:
    from training.heldout_mtv import hottest_seed, load_case
    from training.manifest import read_manifest

    records, _ = read_manifest(manifest)
    sizes = []
    for record in records:
        pet, gtv = load_case(record)
        sizes.append((float(gtv.sum()) * pet.voxel_volume_ml, record, pet, gtv))
    ml, record, pet, gtv = max(sizes, key=lambda s: s[0])
    _, (x, y, z) = hottest_seed(pet, gtv)
    seconds = [time_analyze(Path(record.pet), model, (-x, -y, z)) for _ in range(2)]
    return {"case": record.case_id, "gtv_ml": ml, "model": model, "seconds": min(seconds), "runs": seconds}


def markdown(result: dict) -> str:
    summary, rows = result["summary"], result["rows"]
    lines = [
        "On the 35 real soft-tissue-sarcoma crops of the TCIA collection (SUV, native voxels 3.9-5.5 mm in-plane, "
        "3.27 mm slices; clinicians' GTVs 17 ml to 2.3 l), each method's MTV grown from the same seed (the GTV's "
        "hottest voxel) is compared with the GTV on the PET grid. The real model's row is cross-validated: every "
        f"case is segmented by the model of the fold that held it out ({result['crossval'] or 'no cross-validation given'}). "
        "The synthetic model never saw patient data. PERCIST (liver-referenced) is not in the table: no crop "
        "holds a liver (the engine says so and offers it on whole-body scans). \"+ fill\": holes filled in 3-D and "
        "in every axial slice. Empty: no voxel; cut: the MTV reaches the end of the crop (or, for the network, "
        "the region's size limit). Bootstrap: 2000 resamples of the cases.",
        "",
        "| method | Dice mean [95 % CI] | Dice median | empty | cut | mean MTV (ml) | volume bias (ml) | limits of agreement (ml) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in summary.items():
        lo, hi = m["dice_ci95"]
        lines.append(f"| {name} | {m['dice_mean']:.3f} [{lo:.3f}, {hi:.3f}] | {m['dice_median']:.3f} | {m['empty']} | "
                     f"{m['cut']} | {m['mean_ml']:.0f} | {m['volume_bias_ml']:+.0f} | ±{m['volume_loa_ml']:.0f} |")
    gtv = np.array([r["gtv_ml"] for r in rows])
    lines += ["", f"GTV volumes: mean {gtv.mean():.0f} ml, median {np.median(gtv):.0f} ml, range {gtv.min():.0f}-"
                  f"{gtv.max():.0f} ml (n = {len(gtv)})."]
    for p in result.get("paired", []):
        lo, hi = p["ci95"]
        lines.append(f"Paired Dice difference, {p['a']} minus {p['b']}: {p['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}].")
    timing = result.get("timing")
    if timing:
        lines.append(f"`analyze` end to end (process start to report) on the largest tumour, {timing['case']} "
                     f"(GTV {timing['gtv_ml']:.0f} ml), model `{timing['model']}`: {timing['seconds']:.1f} s "
                     f"(best of {len(timing['runs'])}).")
    lines += ["", "![Dice per method](real_pet_dice.png)", "", "![Bland-Altman](real_pet_bland_altman.png)"]
    return "\n".join(lines)


def figures(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, names = result["rows"], list(result["summary"])
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.boxplot([[r["methods"][n]["dice"] for r in rows] for n in names], vert=True)
    ax.set_xticks(range(1, len(names) + 1), [n.replace(" (network)", "\n(network)").replace(", cross", ",\ncross")
                                             for n in names], fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("Dice vs clinicians' GTV")
    ax.set_ylim(0, 1)
    ax.set_title("Real sarcoma crops (n = 35): MTV Dice per method")
    fig.tight_layout()
    fig.savefig(out / "real_pet_dice.png", dpi=110)
    plt.close(fig)
    plain = [n for n in names if not n.endswith("+ fill")]
    columns = 3
    fig, axes = plt.subplots(math.ceil(len(plain) / columns), columns, figsize=(11, 3.3 * math.ceil(len(plain) / columns)),
                             squeeze=False)
    gtv = np.array([r["gtv_ml"] for r in rows])
    for ax, name in zip(axes.ravel(), plain):
        ml = np.array([r["methods"][name]["ml"] for r in rows])
        mean, diff = (ml + gtv) / 2, ml - gtv
        ax.semilogx(np.maximum(mean, 1.0), diff, "o", alpha=0.7, markersize=4)
        bias, loa = float(diff.mean()), float(1.96 * diff.std(ddof=1))
        for value, style in ((bias, "-"), (bias + loa, "--"), (bias - loa, "--")):
            ax.axhline(value, color="grey", linestyle=style, linewidth=0.8)
        ax.set_title(f"{name}\nbias {bias:+.0f} ml, LoA ±{loa:.0f} ml", fontsize=8)
        ax.set_xlabel("mean of MTV and GTV (ml)", fontsize=7)
        ax.set_ylabel("MTV − GTV (ml)", fontsize=7)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(plain):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "real_pet_bland_altman.png", dpi=110)
    plt.close(fig)


def run(crossval: Optional[Path], out: Path, results: Path = RESULTS, timing_model: Optional[str] = None,
        log: Callable[[str], None] = print, command: str = "python -m benchmarks.real_pet") -> dict:
    from MTLRadiomicsLib.model.registry import models_root
    from training.sts_cohort import write_sts_manifest

    torch.set_num_threads(2)
    out.mkdir(parents=True, exist_ok=True)
    if crossval is not None and (crossval / "fold_0" / "manifest.csv").exists():
        manifest = crossval / "manifest_used.csv"
        _rebuild_from_crossval(crossval, manifest)
    else:
        manifest = write_sts_manifest(out / "manifest.csv")
    started = time.perf_counter()
    rows = case_rows(manifest, crossval, models_root() / "default", torch.device("cpu"), log)
    summary = summarise(rows)
    classical = [n for n in summary if "network" not in n]
    best = max(classical, key=lambda n: summary[n]["dice_mean"])
    result = {"crossval": str(crossval) if crossval else "", "rows": rows, "summary": summary,
              "best_classical": best, "seconds": round(time.perf_counter() - started, 1)}
    result["paired"] = [paired(rows, n, best) for n in summary if "network" in n]
    if timing_model:
        result["timing"] = largest_case_timing(manifest, timing_model)
    (results.parent / "real_pet.json").write_text(json.dumps(result, indent=1))
    figures(result, results.parent)
    write_section("Real PET: MTV against the clinicians' GTV", markdown(result), command, results)
    return result


def _rebuild_from_crossval(crossval: Path, out: Path) -> None:
    """The cases of the cross-validation with their original folds (fold k = the cases fold k held out)."""
    import csv

    rows, columns = [], None
    for fold_dir in sorted(crossval.glob("fold_*")):
        k = fold_dir.name.split("_")[1]
        with open(fold_dir / "manifest.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames
            rows += [dict(r, fold=k) for r in reader if r["fold"] == "test"]
    with open(out, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.real_pet", description=__doc__.split("\n")[0])
    parser.add_argument("--crossval", help="folder of `python -m training.crossval` on the real crops (the real "
                        "model's out-of-fold predictions); without it only the synthetic model and the classical "
                        "methods are compared")
    parser.add_argument("--out", default="runs/bench_real_pet", help="working folder (default runs/bench_real_pet)")
    parser.add_argument("--timing-model", help="installed model name or folder to time `analyze` with on the largest "
                        "tumour (default: none timed)")
    args = parser.parse_args(argv)
    command = "python -m benchmarks.real_pet" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in (("crossval", args.crossval), ("timing_model", args.timing_model)) if v)
    result = run(Path(args.crossval) if args.crossval else None, Path(args.out), timing_model=args.timing_model,
                 command=command)
    for name, m in result["summary"].items():
        print(f"{name:<45} Dice {m['dice_mean']:.3f} (median {m['dice_median']:.3f}), empty {m['empty']}, cut {m['cut']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

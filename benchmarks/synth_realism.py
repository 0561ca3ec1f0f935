"""How much the synthetic sarcomas look like the real ones.

``python -m benchmarks.synth_realism [--cases N] [--seed S] [--no-write]``: generates a synthetic
sarcoma cohort (``generate_cohort(kind="crop", pathologies="sarcoma")``, default 60 cases, seed
2025) and compares it with the 35 real STS crops in ../shared/data/real/sts_crops (PET in SUV and
the clinicians' GTV on the same grid). Per case, inside the ground-truth mask (the GTV): SUVmax,
volume (ml), coefficient of variation of SUV, fraction below SUV 2.5 and below 40 % of SUVmax;
and the Dice against the mask of the 40 % SUVmax region and of the SUV >= 2.5 region (each the
26-connected component of the image thresholded at that level that holds the mask's hottest
voxel). Reports median [IQR] real vs synthetic, the two-sample Kolmogorov-Smirnov distance, and
box plots (benchmarks/synth_realism.png); writes its section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, stats

from benchmarks.report import RESULTS, write_section

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real" / "sts_crops"
FIGURE = RESULTS.parent / "synth_realism.png"
CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
QUANTITIES = {  # key: (label, format)
    "suvmax": ("SUVmax in the GTV", "{:.1f}"),
    "volume_ml": ("GTV volume (ml)", "{:.0f}"),
    "cov": ("CoV of SUV in the GTV", "{:.2f}"),
    "below_2p5": ("fraction of the GTV below SUV 2.5", "{:.2f}"),
    "below_40": ("fraction of the GTV below 40 % SUVmax", "{:.2f}"),
    "dice_40": ("Dice, 40 % SUVmax region vs GTV", "{:.2f}"),
    "dice_2p5": ("Dice, SUV >= 2.5 region vs GTV", "{:.2f}"),
}


def _component(image: np.ndarray, level: float, seed: tuple[int, ...]) -> np.ndarray:
    """The 26-connected component of ``image >= level`` that holds ``seed`` (empty if below)."""
    above = image >= level
    if not above[seed]:
        return np.zeros_like(above)
    labels, _ = ndimage.label(above, structure=CONNECTIVITY)
    return labels == labels[seed]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * float(np.sum(a & b)) / total if total else 1.0


def measure(suv: np.ndarray, truth: np.ndarray, spacing_mm: tuple[float, float, float]
            ) -> dict[str, float]:
    """The compared quantities of one case: SUV (z, y, x) and its ground-truth mask (bool)."""
    values = suv[truth].astype(np.float64)
    suvmax = float(values.max())
    hottest = np.unravel_index(int(np.argmax(np.where(truth, suv, -np.inf))), suv.shape)
    return {"suvmax": suvmax,
            "volume_ml": float(truth.sum()) * float(np.prod(spacing_mm)) / 1000.0,
            "cov": float(values.std() / values.mean()),
            "below_2p5": float(np.mean(values < 2.5)),
            "below_40": float(np.mean(values < 0.4 * suvmax)),
            "dice_40": _dice(_component(suv, 0.4 * suvmax, hottest), truth),
            "dice_2p5": _dice(_component(suv, 2.5, hottest), truth)}


def _read(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(image.GetSpacing())  # type: ignore[return-value]


def real_cases(root: Path = REAL) -> Iterator[dict[str, float]]:
    for folder in sorted(root.glob("STS_*")):
        suv, spacing = _read(folder / "PET_image.nii.gz")
        mask, _ = _read(folder / "PET_mask.nii.gz")
        yield measure(suv.astype(np.float32), mask > 0, spacing)


def synthetic_cases(n_cases: int, seed: int) -> tuple[list[dict[str, float]], float, list[str]]:
    """Measures of a fresh synthetic sarcoma cohort, seconds per case, and the sites drawn."""
    import json

    from MTLRadiomicsLib.synth import generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        manifest = generate_cohort(Path(tmp) / "c", n_cases, seed=seed, kind="crop",
                                   pathologies="sarcoma", progress=False)
        per_case = (time.perf_counter() - start) / n_cases
        out, root = [], manifest.parent
        for line in (root / "facts.jsonl").read_text().splitlines():
            facts = json.loads(line)
            suv, spacing = _read(root / "images" / f"{facts['case_id']}_pet.nii.gz")
            mask, _ = _read(root / "masks" / f"{facts['case_id']}_mask.nii.gz")
            out.append(measure(suv, mask > 0, spacing) | {"site": facts["gtv"]["site"]})
    return out, per_case, [str(m.pop("site")) for m in out]


def _summary(values: np.ndarray, fmt: str) -> str:
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    return f"{fmt.format(med)} [{fmt.format(q1)}, {fmt.format(q3)}]"


def table(real: list[dict[str, float]], synth: list[dict[str, float]]) -> str:
    rows = ["| quantity | real, median [IQR] | synthetic, median [IQR] | real mean | synthetic mean "
            "| real range | synthetic range | KS distance (p) |", "|---|---|---|---|---|---|---|---|"]
    for key, (label, fmt) in QUANTITIES.items():
        r, s = np.array([c[key] for c in real]), np.array([c[key] for c in synth])
        ks = stats.ks_2samp(r, s)
        rows.append(f"| {label} | {_summary(r, fmt)} | {_summary(s, fmt)} | {fmt.format(r.mean())} "
                    f"| {fmt.format(s.mean())} | {fmt.format(r.min())}–{fmt.format(r.max())} "
                    f"| {fmt.format(s.min())}–{fmt.format(s.max())} "
                    f"| {ks.statistic:.2f} ({ks.pvalue:.2g}) |")
    return "\n".join(rows)


TAILS = {  # label: (quantity, threshold, above)
    "Dice 40 % < 0.1 (the hottest voxel in a small focus)": ("dice_40", 0.1, False),
    "Dice SUV 2.5 > 0.85": ("dice_2p5", 0.85, True),
    "over 80 % of the GTV below SUV 2.5 (low grade or ring)": ("below_2p5", 0.8, True),
    "GTV over 1 l": ("volume_ml", 1000.0, True),
    "GTV under 50 ml": ("volume_ml", 50.0, False),
}


def tails(real: list[dict[str, float]], synth: list[dict[str, float]]) -> str:
    """Shares of cases in the tails that matter for the thresholds (real vs synthetic)."""
    rows = ["| share of cases with | real | synthetic |", "|---|---|---|"]
    for label, (key, level, above) in TAILS.items():
        share = [np.mean([(c[key] > level) if above else (c[key] < level) for c in cases])
                 for cases in (real, synth)]
        rows.append(f"| {label} | {share[0]:.0%} | {share[1]:.0%} |")
    return "\n".join(rows)


DIFFERENCES = """Where they still differ (by construction of the generator, not only chance): the synthetic \
ground truth is the exact tumour extent, while the real GTVs were (reportedly, in the source \
study) drawn on MRI and registered to the PET, so real avid tumours rarely reach a Dice above \
0.85 with the SUV 2.5 region and synthetic solid ones do; the real CoV has a longer tail (cold, \
cystic centres up to CoV 1.4); the synthetic textures are sums of plane waves and the shapes \
unions of ellipsoids (smoother, more regular than real sarcomas); synthetic crops keep a 20-30 \
mm margin (the real crops about 50 mm), so statistics of the surroundings are not comparable; \
volumes stop at 2.5 l (arm, calf and trunk wall tumours are capped lower); 60 synthetic and 35 \
real cases give medians uncertain by roughly +-0.1 in the Dice rows."""


def figure(real: list[dict[str, float]], synth: list[dict[str, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(2.3 * len(QUANTITIES), 3.6))
    rng = np.random.default_rng(0)
    for ax, (key, (label, _)) in zip(axes, QUANTITIES.items()):
        data = [np.array([c[key] for c in real]), np.array([c[key] for c in synth])]
        ax.boxplot(data, widths=0.55, showfliers=False)
        for i, d in enumerate(data):
            ax.scatter(i + 1 + rng.uniform(-0.18, 0.18, d.size), d, s=7, alpha=0.6,
                       color=("tab:blue", "tab:orange")[i])
        ax.set_xticks([1, 2], [f"real\nn={data[0].size}", f"synth\nn={data[1].size}"])
        ax.set_title(label, fontsize=8, wrap=True)
        if key in ("suvmax", "volume_ml"):
            ax.set_yscale("log")
            plain = FuncFormatter(lambda v, _: f"{v:g}")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(plain if key == "suvmax" else NullFormatter())
        ax.tick_params(labelsize=7)
    fig.suptitle("Sarcoma crops: real (35 STS patients) vs synthetic", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=60, help="synthetic cases (default 60)")
    parser.add_argument("--seed", type=int, default=2025, help="cohort seed (default 2025)")
    parser.add_argument("--no-write", action="store_true",
                        help="print only; leave RESULTS.md and the figure alone")
    args = parser.parse_args(argv)
    if not REAL.exists():
        print(f"no real data at {REAL}: nothing to compare with")
        return 1
    real = list(real_cases())
    synth, per_case, sites = synthetic_cases(args.cases, args.seed)
    counts = {s: sites.count(s) for s in sorted(set(sites), key=sites.index)}
    body = (f"Real: the {len(real)} STS crops (../shared/data/real/sts_crops, clinicians' GTV). "
            f"Synthetic: {len(synth)} sarcoma crops, `generate_cohort(kind='crop', "
            f"pathologies='sarcoma', seed={args.seed})`, native voxels, ground truth the whole "
            f"tumour (sites: {', '.join(f'{k} {v}' for k, v in counts.items())}); generation "
            f"{per_case:.3f} s per case with NIfTI files. Regions for the Dice: the 26-connected "
            "component holding the GTV's hottest voxel of SUV >= 40 % SUVmax, or of SUV >= 2.5 "
            "(Dice 0 when that voxel is below 2.5). KS distance: two-sample Kolmogorov-Smirnov "
            "statistic (0 = same distribution) and its p-value.\n\n"
            + table(real, synth) + "\n\n" + tails(real, synth) + "\n\n" + DIFFERENCES
            + f"\n\nFigure: `benchmarks/{FIGURE.name}`.")
    print(body)
    if not args.no_write:
        figure(real, synth, FIGURE)
        command = "python -m benchmarks.synth_realism" + (
            f" --cases {args.cases}" if args.cases != 60 else "") + (
            f" --seed {args.seed}" if args.seed != 2025 else "")
        write_section("Synthetic data realism (sarcoma)", body, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

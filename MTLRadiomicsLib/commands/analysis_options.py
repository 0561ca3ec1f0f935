"""Options shared by `analyze`, `rescore` and `batch`: model, device, explanation, uncertainty."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.commands.pet_options import overrides_from_args
from MTLRadiomicsLib.errors import MTLRadiomicsError


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and output")
    group.add_argument("--out", required=True, metavar="DIR", help="output folder (created; see --overwrite)")
    group.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    group.add_argument("--model", metavar="NAME|DIR", help="an installed model (see 'mtl-radiomics models') or "
                       "a model folder with model.json + model.safetensors (default: the default model)")
    group.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="compute device; auto takes CUDA when present (default auto)")
    group.add_argument("--explain", choices=("outcome", "segmentation"), default="outcome",
                       help="what the Grad-CAM heatmaps explain (default outcome)")
    group.add_argument("--samples", type=int, default=10, help="samples for the score uncertainty (default 10)")
    group.add_argument("--uncertainty", choices=("mc-dropout", "tta"), default="mc-dropout",
                       help="Monte-Carlo dropout or test-time augmentation (default mc-dropout)")
    group.add_argument("--seed", type=int, metavar="N", help="random seed of the uncertainty samples (default: "
                       "derived from the input's SHA-256, so that a rerun gives the same numbers; recorded in "
                       "result.json)")
    group.add_argument("--no-report", action="store_true", help="skip report.pdf and report.html")
    group.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                       help="progress display; json prints one line per stage for front ends (default bar)")


def add_mtv_options(parser: argparse.ArgumentParser) -> None:
    from MTLRadiomicsLib.mtv.methods import MTV_METHODS

    group = parser.add_argument_group("MTV (metabolic tumour volume)")
    group.add_argument("--mtv-method", choices=list(MTV_METHODS), default="network",
                       help="the MTV the scores use: " + "; ".join(f"{k}: {v}" for k, v in MTV_METHODS.items()).replace("%", "%%")
                            + " (default network; every method's MTV is listed in result.json and the report)")
    group.add_argument("--fill-holes", action="store_true",
                       help="fill holes enclosed by the MTV (necrotic cores), in 3-D and in every axial slice")


def add_location_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lesion location (default: automatic)")
    group.add_argument("--point", type=float, nargs=3, metavar=("X", "Y", "Z"),
                       help="a point in the lesion in mm, RAS as Slicer shows it (LPS with --lps)")
    group.add_argument("--box", type=float, nargs=6, metavar=("X1", "Y1", "Z1", "X2", "Y2", "Z2"),
                       help="two opposite corners of a box around the lesion in mm (RAS, or LPS with --lps)")
    group.add_argument("--lps", action="store_true", help="--point and --box are LPS (DICOM) coordinates")


def options_from_args(args: argparse.Namespace) -> AnalysisOptions:
    if args.samples < 2:
        raise MTLRadiomicsError("--samples must be at least 2 (the uncertainty needs several samples)")
    if getattr(args, "seed", None) is not None and not 0 <= args.seed < 2 ** 63:
        raise MTLRadiomicsError("--seed must be a whole number from 0 to 2^63 - 1")
    point = tuple(args.point) if getattr(args, "point", None) else None
    box = None
    if getattr(args, "box", None):
        box = (tuple(args.box[:3]), tuple(args.box[3:]))
    return AnalysisOptions(
        point=point, box=box, point_system="LPS" if getattr(args, "lps", False) else "RAS",
        explain=args.explain, samples=args.samples, uncertainty=args.uncertainty, device=args.device,
        model=args.model or None, overrides=overrides_from_args(args),
        input_units=getattr(args, "input_units", None), series_uid=getattr(args, "series", None),
        report=not args.no_report, mtv_method=getattr(args, "mtv_method", "network"),
        fill_holes=getattr(args, "fill_holes", False), seed=getattr(args, "seed", None),
        mask_segment=getattr(args, "segment", None))

"""`mtl-radiomics analyze PET --out DIR`: the physician's result from one PET scan."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.analysis.result import outcome_label
from MTLRadiomicsLib.commands.analysis_options import (add_location_options, add_model_options, add_mtv_options,
                                                        options_from_args)
from MTLRadiomicsLib.commands.pet_options import add_pet_options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "analyze", help="segment the tumour, explain, measure and score one PET scan",
        description="Analyse a PET scan: find the lesion (a point, a box, or automatically), segment the "
                    "MTV, compute Grad-CAM heatmaps for every network scale, PET metrics and outcome "
                    "scores with uncertainty, and write segmentation.seg.nrrd, mtv.nii.gz, "
                    "gradcam_<scale>.nrrd, result.json, report.pdf/html (and mtv_seg.dcm for DICOM input), "
                    "all on the original PET grid.")
    add_pet_options(parser)
    add_location_options(parser)
    add_mtv_options(parser)
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.progress import Progress

    options = options_from_args(args)
    result = analyze(args.pet, args.out, options, Progress(args.progress), overwrite=args.overwrite)
    if args.progress != "json":
        print_summary(result, args.out)
    return 0


def print_summary(result, out: str) -> None:
    """A few lines for the terminal: where the lesion is, the scores, the metrics, the files."""
    s, m = result.scores, result.metrics
    ras = ", ".join(f"{v:.1f}" for v in result.location.center_ras)
    print(f"lesion      {result.location.method}, centre RAS ({ras}) mm")
    name = outcome_label(s.outcome_kind, s.outcome_meaning).lower()
    if s.withheld:
        print(f"scores      withheld: {s.withheld}")
    else:
        if s.domain == "outside":
            print("scores      OUTSIDE THE MODEL'S TRAINING DOMAIN (see the notes): read them with care")
        if s.outcome is not None:
            print(f"{name:<11} {s.outcome.text()}  [{s.mask_source} MTV]")
        if s.survival is not None:
            print(f"survival risk (log relative hazard) {s.survival.text()}")
        for cls, est in s.pathology.items():
            print(f"p({cls}) {est.text()}")
        if s.pathology_note:
            print(f"pathology   {s.pathology_note}")
    method = (result.mtv or {}).get("label", "")
    print(f"MTV {m['mtv_ml']:.1f} ml{f' ({method})' if method else ''}, SUVmax {m['suv_max']:.2f}, "
          f"SUVpeak {m['suv_peak']:.2f}, SUVmean {m['suv_mean']:.2f}, TLG {m['tlg']:.1f} g")
    others = [(v.get("label", k), v["metrics"]["mtv_ml"]) for k, v in (result.mtv or {}).get("methods", {}).items()
              if v.get("available") and "metrics" in v and k != (result.mtv or {}).get("method")]
    if others:
        print("other MTVs  " + ", ".join(f"{label} {ml:.1f} ml" for label, ml in others))
    for warning in result.warnings:
        print(f"note: {warning}")
    print(f"report      {out}/report.pdf" if "report_pdf" in result.outputs else f"results     {out}/result.json")

"""`mtl-radiomics report PET --out DIR`: the PDF/HTML report of an analysis folder written without one."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.commands.pet_options import add_pet_options, overrides_from_args


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--out, --overwrite and --progress of `report` (the PET options are added beside them)."""
    group = parser.add_argument_group("the analysis folder")
    group.add_argument("--out", required=True, metavar="DIR",
                       help="the folder an analyze or rescore wrote (with --no-report); the report goes into it")
    group.add_argument("--overwrite", action="store_true", help="write the report again when the folder has one")
    group.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                       help="progress display; json prints one line per stage for front ends (default bar)")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "report", help="write the PDF/HTML report of an analysis folder made with --no-report",
        description="Write report.pdf and report.html into an analysis folder that analyze or rescore wrote "
                    "with --no-report, from its result.json, mtv.nii.gz and gradcam_<scale>.nrrd and the PET it "
                    "was computed from (checked by its SHA-256; give the same SUV options as the analysis). "
                    "The report is the one the analysis would have written.")
    add_pet_options(parser)
    add_report_options(parser)
    parser.set_defaults(handler=run)


def report_options(args: argparse.Namespace) -> AnalysisOptions:
    """The PET-reading options of ``args`` (SUV overrides, units, series)."""
    return AnalysisOptions(overrides=overrides_from_args(args), input_units=getattr(args, "input_units", None),
                           series_uid=getattr(args, "series", None))


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.analysis.folder_report import report_folder
    from MTLRadiomicsLib.analysis.progress import Progress

    result = report_folder(args.pet, args.out, report_options(args), Progress(args.progress),
                           overwrite=args.overwrite)
    if args.progress != "json":
        print(f"report: {args.out}/{result.outputs['report_pdf']} and {args.out}/{result.outputs['report_html']}")
    return 0

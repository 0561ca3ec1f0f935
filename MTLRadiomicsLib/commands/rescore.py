"""`mtl-radiomics rescore PET --mask EDITED --out DIR`: scores and metrics of an edited MTV."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.commands.analysis_options import add_model_options, options_from_args
from MTLRadiomicsLib.commands.pet_options import add_pet_options


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rescore", help="re-compute metrics and scores with a physician-edited MTV",
        description="Re-compute PET metrics, outcome scores and heatmaps with an edited MTV (a mask image, "
                    ".seg.nrrd, RTSTRUCT or DICOM SEG on the PET) in place of the predicted one; writes the "
                    "same outputs as analyze, marked as edited.")
    add_pet_options(parser)
    parser.add_argument("--mask", required=True, metavar="EDITED", help="the edited MTV")
    parser.add_argument("--segment", metavar="NAME|LABEL",
                        help="the segment to use when the mask holds several: a segment name (.seg.nrrd, "
                             "DICOM SEG label or number, RTSTRUCT ROI) or a label value (label-map image); "
                             "without it such a mask is refused, listing what it holds")
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.progress import Progress
    from MTLRadiomicsLib.commands.analyze import print_summary

    options = options_from_args(args)
    result = analyze(args.pet, args.out, options, Progress(args.progress), overwrite=args.overwrite,
                     edited_mask=args.mask)
    if args.progress != "json":
        print_summary(result, args.out)
    return 0

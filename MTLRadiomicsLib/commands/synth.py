"""`mtl-radiomics synth OUT`: a deterministic synthetic FDG-PET cohort with outcomes."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.output_dir import atomic_output_dir


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="generate a synthetic PET cohort (images, MTV masks, outcomes, manifest)",
        description="Generate synthetic FDG-PET cases (lung and oesophageal tumours) with ground-truth "
                    "MTV (40 %% SUVmax) and outcomes drawn from a hidden risk, plus a CSV manifest. "
                    "The same seed gives the same cohort.")
    parser.add_argument("out", metavar="OUT", help="output folder (created)")
    parser.add_argument("--cases", type=int, default=100, help="number of cases (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--kind", choices=("crop", "wholebody"), default="crop",
                        help="crop: 64^3 lesion crops at 2 mm (training input); wholebody: whole-body "
                             "scans at clinical sampling (default crop)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of cases in the locked test split (default 0.2)")
    parser.add_argument("--dicom", action="store_true",
                        help="also write each PET as a DICOM series in Bq/ml with SUV tags")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.synth import generate_cohort

    if args.cases < 1:
        raise MTLRadiomicsError("--cases must be at least 1")
    if args.folds < 1:
        raise MTLRadiomicsError("--folds must be at least 1")
    if not 0.0 <= args.test_fraction < 1.0:
        raise MTLRadiomicsError("--test-fraction must be in [0, 1)")
    with atomic_output_dir(args.out, args.overwrite) as work:
        generate_cohort(work, n_cases=args.cases, seed=args.seed, kind=args.kind,
                        n_folds=args.folds, test_fraction=args.test_fraction, dicom=args.dicom,
                        progress=not args.no_progress)
    print(f"wrote {args.cases} {args.kind} cases to {args.out} (manifest: {args.out}/manifest.csv)")
    return 0

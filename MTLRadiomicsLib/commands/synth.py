"""`mtl-radiomics synth OUT`: a deterministic synthetic FDG-PET cohort with outcomes."""

from __future__ import annotations

import argparse

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.output_dir import atomic_output_dir

PATHOLOGY_NAMES = ("lung", "oesophageal", "sarcoma", "head_and_neck")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "synth", help="generate a synthetic PET cohort (images, ground-truth masks, outcomes, "
                      "manifest)",
        description="Generate synthetic FDG-PET cases with ground-truth masks and outcomes drawn "
                    "from a hidden risk, plus a CSV manifest. The same seed gives the same cohort. "
                    "Pathologies: lung and oesophageal tumours (ground truth: the 40 % SUVmax "
                    "MTV; 64^3 crops at 2 mm), soft-tissue sarcoma of the limbs, buttock and "
                    "trunk wall (15 ml to 2.5 l, necrotic cores up to thin rings) and head and "
                    "neck primaries with cervical nodes (ground truth for these two: the whole "
                    "tumour, as a clinician's GTV; crops hold the lesion plus 2-3 cm at native "
                    "voxels, 3.91-5.47 mm in-plane and 3.27 mm slices).")
    parser.add_argument("out", metavar="OUT", help="output folder (created)")
    parser.add_argument("--cases", type=int, default=100, help="number of cases (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--pathologies", default="lung,oesophageal", metavar="LIST",
                        help="comma-separated pathologies each case is drawn from, equally likely: "
                             f"{', '.join(PATHOLOGY_NAMES)} (default lung,oesophageal)")
    parser.add_argument("--kind", choices=("crop", "wholebody"), default="crop",
                        help="crop: lesion crops (training input; lung/oesophageal 64^3 at 2 mm, "
                             "sarcoma/head and neck sized to the lesion at native voxels); "
                             "wholebody: whole-body scans (default crop)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of cases in the locked test split (default 0.2)")
    parser.add_argument("--dicom", action="store_true",
                        help="also write each PET as a DICOM series in Bq/ml with SUV tags")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def parse_pathologies(text: str) -> tuple[str, ...]:
    """The pathologies of a comma-separated list, or a one-line MTLRadiomicsError."""
    from MTLRadiomicsLib.synth.patient import normalise_pathologies

    try:
        return normalise_pathologies(text)
    except MTLRadiomicsError as error:
        raise MTLRadiomicsError(f"--pathologies: {error}") from None


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.synth import generate_cohort

    if args.cases < 1:
        raise MTLRadiomicsError("--cases must be at least 1")
    if args.folds < 1:
        raise MTLRadiomicsError("--folds must be at least 1")
    if not 0.0 <= args.test_fraction < 1.0:
        raise MTLRadiomicsError("--test-fraction must be in [0, 1)")
    pathologies = parse_pathologies(args.pathologies)
    with atomic_output_dir(args.out, args.overwrite) as work:
        generate_cohort(work, n_cases=args.cases, seed=args.seed, kind=args.kind,
                        n_folds=args.folds, test_fraction=args.test_fraction, dicom=args.dicom,
                        progress=not args.no_progress, pathologies=pathologies)
    print(f"wrote {args.cases} {args.kind} cases ({', '.join(pathologies)}) to {args.out} "
          f"(manifest: {args.out}/manifest.csv)")
    return 0

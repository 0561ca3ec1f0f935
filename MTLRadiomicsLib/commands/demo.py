"""`mtl-radiomics demo`: the deterministic synthetic whole-body sample, written and summarised."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.output_dir import atomic_output_dir

DEMO_SEED = 2024
DEMO_MARKER = ".mtl-radiomics-demo"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="generate the synthetic whole-body sample and summarise it",
        description="Generate the deterministic synthetic whole-body FDG-PET sample (with a lung or "
                    "oesophageal tumour), write it as NIfTI with its ground-truth MTV, and write a "
                    "summary (PNG and JSON). A previous demo output in the folder is replaced.")
    parser.add_argument("--out", default="mtl-radiomics-demo", help="output folder "
                        "(default ./mtl-radiomics-demo)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"sample seed (default {DEMO_SEED})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.figures import overview_figure
    from MTLRadiomicsLib.pet_metrics import compute_metrics
    from MTLRadiomicsLib.synth import wholebody_case

    out = Path(args.out)
    replace = out.is_dir() and (out / DEMO_MARKER).exists()
    if out.exists() and not replace and (not out.is_dir() or any(out.iterdir())):
        raise MTLRadiomicsError(f"{out} exists and is not a demo output; choose another --out")
    print(f"generating the synthetic whole-body sample (seed {args.seed}) ...", flush=True)
    case = wholebody_case(args.seed)
    pet = case.pet
    metrics = compute_metrics(pet.suv, case.mask, pet.spacing)
    with atomic_output_dir(out, overwrite=True) as work:
        (work / DEMO_MARKER).write_text(f"written by mtl-radiomics {__version__} demo\n")
        sitk.WriteImage(pet.to_sitk(), str(work / "sample_pet.nii.gz"), useCompression=True)
        mask_image = pet.copy_geometry_to(sitk.GetImageFromArray(case.mask.astype(np.uint8)))
        sitk.WriteImage(mask_image, str(work / "sample_mtv_truth.nii.gz"), useCompression=True)
        summary = {
            "engine_version": __version__,
            "sample": {"seed": args.seed, "case_id": case.case_id, "pathology": case.pathology,
                       "lesion_center_lps_mm": list(case.lesion_center_lps),
                       "synthetic_facts": case.facts,
                       "outcomes": {"response": case.response, "time_months": case.time,
                                    "event": case.event, "oracle_risk": case.oracle_risk}},
            "pet": pet.summary(),
            "ground_truth_mtv_metrics": metrics.to_dict(),
        }
        (work / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        lines = [
            f"case        {case.case_id}",
            f"pathology   {case.pathology}",
            f"size        {' x '.join(map(str, pet.size))}",
            f"spacing mm  {' x '.join(f'{s:g}' for s in pet.spacing)}",
            "",
            "Ground-truth MTV (40% SUVmax)",
            f"SUVmax      {metrics.suv_max:.2f}",
            f"SUVpeak     {metrics.suv_peak:.2f}",
            f"SUVmean     {metrics.suv_mean:.2f}",
            f"MTV         {metrics.mtv_ml:.1f} ml",
            f"TLG         {metrics.tlg:.1f} g",
            "",
            "Synthetic outcome",
            f"response    {'yes' if case.response else 'no'}",
            f"survival    {case.time:.1f} months ({'event' if case.event else 'censored'})",
            "",
            "Synthetic phantom:",
            "not patient data.",
        ]
        overview_figure(pet, case.mask, work / "summary.png",
                        f"MTLRadiomics demo sample ({case.pathology} tumour)", lines)
    print(f"sample PET:  {out / 'sample_pet.nii.gz'}")
    print(f"summary:     {out / 'summary.png'} and {out / 'summary.json'}")
    return 0

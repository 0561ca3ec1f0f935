"""`mtl-radiomics demo`: the deterministic synthetic whole-body sample, analysed with the bundled model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.errors import MTLRadiomicsError

DEMO_SEED = 2024
DEMO_MARKER = ".mtl-radiomics-demo"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="analyse the synthetic whole-body sample with the bundled model",
        description="Generate the deterministic synthetic whole-body FDG-PET sample (a lung or oesophageal "
                    "tumour), analyse it with the bundled model with automatic localisation, compare the MTV "
                    "with the sample's ground truth, and print where the report is. A previous demo output "
                    "in the folder is replaced; any other folder is left alone.")
    parser.add_argument("--out", default="mtl-radiomics-demo", help="output folder (default ./mtl-radiomics-demo)")
    parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"sample seed (default {DEMO_SEED})")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default="bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from MTLRadiomicsLib.analysis.engine import analyze
    from MTLRadiomicsLib.analysis.options import AnalysisOptions
    from MTLRadiomicsLib.analysis.progress import Progress
    from MTLRadiomicsLib.output_dir import atomic_output_dir
    from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
    from MTLRadiomicsLib.synth import wholebody_case

    out = Path(args.out)
    if out.exists() and not (out / DEMO_MARKER).exists() and (not out.is_dir() or any(out.iterdir())):
        raise MTLRadiomicsError(f"{out} exists and is not a demo output; choose another --out")
    print(f"generating the synthetic whole-body sample (seed {args.seed}) ...", flush=True)
    case = wholebody_case(args.seed)
    with atomic_output_dir(out, overwrite=True) as work:
        (work / DEMO_MARKER).write_text(f"written by mtl-radiomics {__version__} demo\n")
        sample = work / "sample"
        sample.mkdir()
        pet_path = sample / "sample_pet.nii.gz"
        sitk.WriteImage(case.pet.to_sitk(), str(pet_path), useCompression=True)
        truth = case.pet.copy_geometry_to(sitk.GetImageFromArray(case.mask.astype(np.uint8)))
        sitk.WriteImage(truth, str(sample / "sample_mtv_truth.nii.gz"), useCompression=True)
        options = AnalysisOptions(model=Path(args.model) if args.model else None, device=args.device)
        result = analyze(pet_path, work / "analysis", options, Progress(args.progress))
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(work / "analysis" / "mtv.nii.gz"))) > 0
        overlap = 2.0 * np.logical_and(predicted, case.mask > 0).sum() / max(predicted.sum() + (case.mask > 0).sum(), 1)
        truth_metrics = compute_metrics(case.pet.suv, case.mask, case.pet.spacing).to_dict()
        summary = {"engine_version": __version__, "seed": args.seed, "case_id": case.case_id,
                   "pathology_truth": case.pathology, "response_truth": case.response,
                   "lesion_center_lps_truth": list(case.lesion_center_lps),
                   "dice_predicted_vs_truth": round(float(overlap), 4),
                   "metrics_predicted": result.metrics, "metrics_truth": truth_metrics,
                   "scores": json.loads(json.dumps(result.to_dict()["scores"]))}
        (work / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    s = result.scores
    best = (max(s.pathology.items(), key=lambda kv: kv[1].mean)[0] if s.pathology
            else f"not shown ({s.pathology_note.removeprefix('not shown: ')})" if s.pathology_note else "-")
    print(f"sample:   {case.pathology} tumour, ground-truth MTV {truth_metrics['mtv_ml']:.1f} ml")
    print(f"analysis: MTV {result.metrics['mtv_ml']:.1f} ml (Dice {overlap:.2f} with the truth), "
          f"response probability {s.outcome.text()}, most likely pathology {best}")
    print(f"report:   {out / 'analysis' / 'report.pdf'} (and report.html)")
    return 0

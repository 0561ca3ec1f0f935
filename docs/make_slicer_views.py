"""Draw docs/slicer_views.png: the demo case as the Slicer module shows it.

The synthetic whole-body sample (the module's Sample Data PET, ``wholebody_case(2024)``) is analysed
by the engine with the bundled model and automatic localisation, as ``mtl-radiomics demo`` does;
the module's logic brings the outputs into a headless MRML scene, and Slicer's slice pipeline draws
the axial, coronal and sagittal views through the MTV: the PET in grey, the Grad-CAM heatmap in the
module's colours, the MTV outline.

    .venv/bin/python docs/make_slicer_views.py [--out docs/slicer_views.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "MTLRadiomics"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PROJECT_ROOT / "docs" / "slicer_views.png"))
    parser.add_argument("--scale", default="enc5", help="the Grad-CAM scale shown (default enc5, the module's default)")
    args = parser.parse_args()

    import slicer

    from MTLRadiomicsLib import load_pet
    from MTLRadiomicsModuleLogic import AnalysisLogic, AnalysisRequest, ProcessState, sample_data, scene_io
    from MTLRadiomicsModuleLogic import slice_views

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        sample = sample_data.ensure_sample_pet(work / "cache")
        scene = slicer.vtkMRMLScene()
        pet = scene_io.add_pet_volume_node(scene, load_pet(sample.path), sample_data.SAMPLE_NAME)
        logic = AnalysisLogic(scene, sys.executable, PROJECT_ROOT, temp_root=work / "runs",
                              bundled_model=PROJECT_ROOT / "Resources" / "models" / "default")
        job = logic.start_analysis(AnalysisRequest(pet, device="cpu", report=False))
        state = logic.wait(job)
        if state != ProcessState.SUCCEEDED:
            raise SystemExit(f"the engine failed: {job.process.error_message()}")
        result = logic.finish(job)
        withheld = logic.scores_withheld(result)
        print(f"MTV {result.result_json['metrics']['mtv_ml']:.1f} ml; heatmaps: {sorted(result.heatmaps)}"
              + (f"; scores withheld: {withheld}" if withheld else ""))
        settings = slice_views.ViewSettings(size=(360, 360), pet_window=(0.0, 8.0), field_of_view_mm=180.0,
                                            heatmap_scale=args.scale if args.scale in result.heatmaps else None,
                                            heatmap_opacity=0.5)
        views = slice_views.render_views(scene, result, settings)
        path = slice_views.write_png(slice_views.montage(list(views.values())), args.out)
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The PDF/HTML report of a finished analysis folder, written later (``mtl-radiomics report``).

An analysis or rescore run with ``--no-report`` (the Slicer module's runs: the physician sees the
scores in the module, and the report is written when it is exported) leaves everything the report
shows in its folder: result.json, the scored MTV (mtv.nii.gz) and the Grad-CAM heatmaps
(gradcam_<scale>.nrrd), all on the PET grid. With the PET it was computed from (checked by its
SHA-256) the report drawn from them is the report the run would have written.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from MTLRadiomicsLib.analysis.library_warnings import capture_warnings
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.analysis.progress import Progress
from MTLRadiomicsLib.analysis.result import AnalysisResult
from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

REPORT_FILES = ("report.pdf", "report.html")


def _on_pet_grid(path: Path, pet: PetVolume, what: str) -> np.ndarray:
    """The (z, y, x) array of ``path``, refused unless it lies on the PET's grid."""
    if not path.is_file():
        raise MTLRadiomicsError(f"{path.parent} has no {path.name} ({what}); it is not a complete analysis folder")
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    same = (array.shape == tuple(pet.shape)
            and np.allclose(image.GetSpacing(), pet.spacing, atol=1e-4)
            and np.allclose(image.GetOrigin(), pet.origin, atol=1e-3)
            and np.allclose(image.GetDirection(), np.asarray(pet.direction).ravel(), atol=1e-5))
    if not same:
        raise MTLRadiomicsError(f"{path.name} ({what}) is not on the grid of this PET: the folder was not "
                                "computed from it")
    return array


def report_folder(pet_path: str | Path, folder: str | Path, options: Optional[AnalysisOptions] = None,
                  progress: Optional[Progress] = None, overwrite: bool = False,
                  pet_reader=None) -> AnalysisResult:
    """Write report.pdf and report.html into the analysis ``folder`` from its files and the PET at
    ``pet_path`` (read with ``options``' SUV overrides, units and series, as the analysis read it).
    Refused when the PET is not the one the result was computed from (SHA-256), when a file the
    report shows is missing or off the PET grid, and when the folder has a report already (unless
    ``overwrite``). result.json records the report files and the time they took."""
    from MTLRadiomicsLib.analysis.engine import read_pet
    from MTLRadiomicsLib.analysis.report import write_report

    folder = Path(folder).expanduser()
    options = options or AnalysisOptions()
    progress = progress or Progress("none")
    try:
        result_path = folder / "result.json"
        if not result_path.is_file():
            raise MTLRadiomicsError(f"{folder} holds no result.json: give the folder an analyze or rescore wrote")
        try:
            result = AnalysisResult.read(result_path)
        except (ValueError, KeyError, TypeError) as error:
            raise MTLRadiomicsError(f"{result_path} is not a result this engine can read ({error})") from None
        existing = [name for name in REPORT_FILES if (folder / name).exists()]
        if existing and not overwrite:
            raise MTLRadiomicsError(f"{folder} has a report already ({', '.join(existing)}); pass --overwrite "
                                    "to write it again")
        progress.stage("load", 0.05, "reading the PET volume")
        with capture_warnings([]) as captured:
            pet, sha256 = (pet_reader or read_pet)(pet_path, options, captured)
        expected = str(result.input.get("sha256", ""))
        if sha256 != expected:
            raise MTLRadiomicsError(f"{pet_path} is not the PET this analysis was computed from (its SHA-256 "
                                    f"{sha256[:12]}... differs from result.json's {expected[:12]}...)")
        progress.stage("report", 0.3, "writing the report")
        started = time.perf_counter()
        mask = _on_pet_grid(folder / result.outputs.get("mtv_nifti", "mtv.nii.gz"), pet, "the scored MTV")
        heatmaps = {scale: _on_pet_grid(folder / result.outputs.get(f"gradcam_{scale}", f"gradcam_{scale}.nrrd"),
                                        pet, f"the {scale} heatmap")
                    for scale in result.explanation.get("scales", [])}
        partial = folder / f".report.partial-{os.getpid()}"
        partial.mkdir(exist_ok=True)
        try:
            pdf, html = write_report(result, pet, mask.astype(np.uint8), heatmaps, partial)
            result.outputs |= {"report_pdf": pdf.name, "report_html": html.name}
            result.timings_s["report"] = round(time.perf_counter() - started, 4)
            result.write(partial / "result.json")
            for name in (pdf.name, html.name, "result.json"):       # the report first, the record last
                os.replace(partial / name, folder / name)
        finally:
            for leftover in partial.glob("*"):
                leftover.unlink()
            partial.rmdir()
        progress.done(f"report in {folder}", out=str(folder))
        return result
    finally:
        progress.close()

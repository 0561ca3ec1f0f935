"""`analyze` and `rescore`: PET in, MTV + heatmaps + metrics + scores + report out.

Stages: load (PET and SUV), model, localisation, inference, Grad-CAM, metrics, outputs, report.
Everything is written into a temporary folder that replaces the output folder only when complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.analysis.devices import choose_device, is_out_of_memory
from MTLRadiomicsLib.analysis.gradcam import gradcam_all_scales
from MTLRadiomicsLib.analysis.inference import mask_to_crop, predict, prepare_input
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.analysis.outputs import write_image_like, write_seg_nrrd
from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet, largest_component_near, probability_to_mask
from MTLRadiomicsLib.analysis.progress import Progress
from MTLRadiomicsLib.analysis.result import AnalysisResult, Estimate, Location, Scores
from MTLRadiomicsLib.errors import MTLRadiomicsError, ModelFileError
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.model.model_file import LoadedModel, load_model
from MTLRadiomicsLib.output_dir import atomic_output_dir, check_output_dir
from MTLRadiomicsLib.pet_input.reading import load_pet
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.model.preprocessing import mask_center_lps

MODEL_ENV = "MTL_RADIOMICS_MODEL"


def default_model_dir() -> Path:
    """The bundled model: $MTL_RADIOMICS_MODEL, else Resources/models/default beside the engine."""
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV])
    return Path(__file__).resolve().parents[2] / "Resources" / "models" / "default"


class Stopwatch:
    """Wall time per stage in seconds."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = round(self.times.get(name, 0.0) + time.perf_counter() - start, 4)


def fingerprint(pet: PetVolume) -> str:
    """SHA-256 of the input file, or of the PET slice files in order for DICOM."""
    digest = hashlib.sha256()
    files = pet.dicom_files or [pet.source]
    for name in files:
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def analyze(pet_path: str | Path, out_dir: str | Path, options: Optional[AnalysisOptions] = None,
            progress: Optional[Progress] = None, overwrite: bool = False,
            edited_mask: Optional[str | Path] = None) -> AnalysisResult:
    """Analyse one PET scan and write all outputs to ``out_dir``; with ``edited_mask`` (re-scoring)
    the given MTV replaces the predicted one for metrics and outcome scores."""
    progress = progress or Progress("none")
    try:
        return _analyze(pet_path, Path(out_dir), options or AnalysisOptions(), progress, overwrite, edited_mask)
    finally:
        progress.close()        # a bar left open would garble the error line that follows


def _analyze(pet_path: str | Path, out_dir: Path, options: AnalysisOptions, progress: Progress,
             overwrite: bool, edited_mask: Optional[str | Path]) -> AnalysisResult:
    check_output_dir(out_dir, overwrite)
    clock = Stopwatch()
    warnings: list[str] = []

    progress.stage("load", 0.02, "reading the PET volume")
    with clock("load"):
        pet = load_pet(pet_path, overrides=options.overrides, input_units=options.input_units,
                       series_uid=options.series_uid)
        source_hash = fingerprint(pet)
    progress.stage("model", 0.12, "loading the model")
    with clock("model"):
        device = choose_device(options.device, warnings)
        loaded = _load(options.model)
        loaded.network.to(device)
    progress.stage("localisation", 0.2, "locating the lesion")
    with clock("localisation"):
        mask_given = load_mask(edited_mask, pet) if edited_mask is not None else None
        location = _locate(pet, options, loaded, mask_given, warnings)
    progress.stage("inference", 0.3, "running the network")
    with clock("inference"):
        crop = prepare_input(pet, location.center_lps, loaded.card)
        mask_crop = mask_to_crop(mask_given, pet, crop) if mask_given is not None else None
        prediction, device = _predict_with_fallback(loaded, crop, device, options, mask_crop, warnings)
        if mask_given is not None:
            mask = mask_given
        else:
            mask = _predicted_mask(prediction.segmentation, crop, pet, options.threshold, warnings)
    progress.stage("gradcam", 0.55, f"Grad-CAM for every scale (target: {options.explain})")
    with clock("gradcam"):
        target_mask = None if mask_crop is None else torch.as_tensor(mask_crop[None, None], device=device)
        crop_maps = gradcam_all_scales(loaded.network, crop.tensor(device), options.explain, target_mask)
        heatmaps = {scale: np.clip(crop_to_pet(m, crop.reference, pet), 0.0, 1.0) for scale, m in crop_maps.items()}
    progress.stage("metrics", 0.7, "PET metrics of the MTV")
    with clock("metrics"):
        metrics = compute_metrics(pet.suv, mask, pet.spacing).to_dict()
    scores = _scores(prediction, loaded, options, "edited" if mask_given is not None else "predicted")
    result = AnalysisResult(
        engine_version=__version__, command="rescore" if mask_given is not None else "analyze",
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        input={"path": str(pet.source), "format": pet.source_format, "sha256": source_hash,
               "files": len(pet.dicom_files) or 1,
               **({"edited_mask": str(edited_mask)} if edited_mask is not None else {})},
        pet={k: v for k, v in pet.summary().items() if k != "source"},
        model=_model_summary(loaded),
        location=location, scores=scores, metrics=metrics,
        explanation={"target": options.explain, "method": "Grad-CAM, all scales from one forward and one backward pass",
                     "scales": list(heatmaps)},
        warnings=warnings, device=str(device))
    progress.stage("outputs", 0.8, "writing the outputs")
    with atomic_output_dir(out_dir, overwrite) as work:
        with clock("outputs"):
            result.outputs = _write_outputs(work, pet, mask, heatmaps, warnings)
        if options.report:
            progress.stage("report", 0.88, "writing the report")
            with clock("report"):
                from MTLRadiomicsLib.analysis.report import write_report

                result.timings_s = dict(clock.times)
                pdf, html = write_report(result, pet, mask, heatmaps, work)
                result.outputs |= {"report_pdf": pdf.name, "report_html": html.name}
        result.timings_s = dict(clock.times)
        result.write(work / "result.json")
    progress.done(f"results in {out_dir}", out=str(out_dir))
    return result


def _load(model_dir: Optional[Path]) -> LoadedModel:
    folder = Path(model_dir) if model_dir else default_model_dir()
    if not folder.exists():
        raise ModelFileError(f"no model at {folder}; pass --model FOLDER (a folder with model.json and "
                             "model.safetensors)")
    return load_model(folder)


def _locate(pet: PetVolume, options: AnalysisOptions, loaded: LoadedModel, mask: Optional[np.ndarray],
            warnings: list[str]) -> Location:
    from MTLRadiomicsLib.localisation import (box_center_and_size, find_candidates, lps_to_ras,
                                              point_in_volume, ras_to_lps)

    pre = loaded.card.preprocessing
    fov = tuple(float(n * s) for n, s in zip(reversed(pre.crop_size), pre.spacing_mm))
    to_lps = (lambda p: tuple(float(v) for v in p)) if options.point_system.upper() == "LPS" else ras_to_lps
    if options.point_system.upper() not in ("RAS", "LPS"):
        raise MTLRadiomicsError("the point coordinate system must be RAS or LPS")
    if mask is not None:
        if not mask.any():
            raise MTLRadiomicsError("the edited mask is empty: nothing to score")
        center = mask_center_lps(mask, pet.to_sitk())
        return Location("edited mask", center, lps_to_ras(center), fov, note="centre of the edited MTV")
    if options.point is not None and options.box is not None:
        raise MTLRadiomicsError("give either --point or --box, not both")
    if options.point is not None:
        center = to_lps(options.point)
        if not point_in_volume(pet, center):
            raise MTLRadiomicsError(f"the point {tuple(options.point)} ({options.point_system}) lies outside the PET "
                                    "volume; check the coordinates and --lps")
        return Location("point", center, lps_to_ras(center), fov)
    if options.box is not None:
        a, b = to_lps(options.box[0]), to_lps(options.box[1])
        center, size = box_center_and_size(a, b)
        if not point_in_volume(pet, center):
            raise MTLRadiomicsError("the box centre lies outside the PET volume; check the corners")
        if any(s > f for s, f in zip(size, fov)):
            warnings.append(f"the box ({' x '.join(f'{s:.0f}' for s in size)} mm) is larger than the model's "
                            f"field of view ({' x '.join(f'{f:.0f}' for f in fov)} mm); its centre is analysed")
        return Location("box", center, lps_to_ras(center), fov, note=f"box {' x '.join(f'{s:.0f}' for s in size)} mm")
    search = find_candidates(pet)
    best = search.candidates[0]
    others = [c.to_dict() for c in search.candidates]
    if len(search.candidates) > 1:
        warnings.append(f"{len(search.candidates)} FDG-avid candidates found; the most likely one was analysed "
                        "(the others are listed in result.json); give --point to choose another")
    return Location("automatic", best.center_lps, lps_to_ras(best.center_lps), fov, candidates=others,
                    excluded=[e.to_dict() for e in search.excluded], note=search.method)


def _predict_with_fallback(loaded, crop, device, options, mask_crop, warnings):
    try:
        return predict(loaded.network, crop, device, options.samples, options.uncertainty, mask_crop), device
    except RuntimeError as error:
        if device.type != "cuda" or not is_out_of_memory(error):
            raise
        warnings.append("the GPU ran out of memory; the analysis ran on the CPU")
        torch.cuda.empty_cache()
        cpu = torch.device("cpu")
        loaded.network.to(cpu)
        return predict(loaded.network, crop, cpu, options.samples, options.uncertainty, mask_crop), cpu


def _predicted_mask(probability_crop: Optional[np.ndarray], crop, pet: PetVolume, threshold: float,
                    warnings: list[str]) -> np.ndarray:
    if probability_crop is None:
        raise MTLRadiomicsError("this model has no segmentation head; give an MTV with 'rescore --mask'")
    probability = crop_to_pet(probability_crop, crop.reference, pet)
    mask = probability_to_mask(probability, threshold)
    if not mask.any():
        warnings.append("the model segmented no tumour at this location: the MTV is empty; check the location "
                        "or draw the MTV and use rescore")
        return mask
    seed = np.unravel_index(int(np.argmax(np.where(mask > 0, probability, -1.0))), mask.shape)
    mask = largest_component_near(mask, tuple(int(s) for s in seed))
    border = probability_crop.copy()
    border[1:-1, 1:-1, 1:-1] = 0
    if (border >= threshold).any():
        warnings.append("the MTV reaches the edge of the analysed region: the tumour may extend beyond the "
                        "model's field of view")
    return mask


def _estimate(values: np.ndarray) -> Estimate:
    values = np.asarray(values, dtype=float)
    return Estimate(mean=round(float(values.mean()), 4), sd=round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
                    samples=int(len(values)))


def _scores(prediction, loaded: LoadedModel, options: AnalysisOptions, mask_source: str) -> Scores:
    card = loaded.card
    kind = loaded.config.outcome_kind
    outcome = _estimate(prediction.outcome_samples) if prediction.outcome_samples is not None else Estimate(float("nan"), 0.0, 0)
    pathology = {}
    if prediction.class_samples is not None:
        names = list(card.class_names) or [f"class {i}" for i in range(prediction.class_samples.shape[1])]
        pathology = {name: _estimate(prediction.class_samples[:, i]) for i, name in enumerate(names)}
    method = ("Monte-Carlo dropout" if options.uncertainty == "mc-dropout"
              else "test-time augmentation (flips, shifts)")
    return Scores(outcome_kind=kind, outcome_meaning=str(card.outcome.get("meaning", "")), outcome=outcome,
                  pathology=pathology, uncertainty=f"mean ± sd over {options.samples} samples, {method}",
                  mask_source=mask_source)


def _model_summary(loaded: LoadedModel) -> dict:
    card = loaded.card
    return {"name": card.name, "folder": str(loaded.folder), "intended_use": card.intended_use,
            "tasks": loaded.config.tasks, "outcome": card.outcome, "class_names": list(card.class_names),
            "preprocessing": {"spacing_mm": list(card.preprocessing.spacing_mm),
                              "crop_size": list(card.preprocessing.crop_size)},
            "training_data": card.training_data, "held_out_metrics": card.held_out_metrics,
            "weights_sha256": card.weights_sha256, "engine_version_trained": card.engine_version}


def _write_outputs(work: Path, pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray],
                   warnings: list[str]) -> dict[str, str]:
    outputs = {"segmentation": write_seg_nrrd(mask, pet, work / "segmentation.seg.nrrd").name,
               "mtv_nifti": write_image_like(mask.astype(np.uint8), pet, work / "mtv.nii.gz").name}
    for scale, heatmap in heatmaps.items():
        outputs[f"gradcam_{scale}"] = write_image_like(heatmap.astype(np.float32), pet,
                                                       work / f"gradcam_{scale}.nrrd").name
    if pet.dicom_files:
        from MTLRadiomicsLib.pet_input.dicom_seg import write_dicom_seg

        if mask.any():
            outputs["dicom_seg"] = write_dicom_seg(mask, pet, work / "mtv_seg.dcm").name
        else:
            warnings.append("no DICOM SEG written: the MTV is empty")
    return outputs

"""`analyze` and `rescore`: PET in, MTV + heatmaps + metrics + scores + report out.

Stages: load (PET and SUV), model, localisation, inference, Grad-CAM, metrics, outputs, report.
Everything is written into a temporary folder that replaces the output folder only when complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from MTLRadiomicsLib import __version__
from MTLRadiomicsLib.analysis.devices import choose_device, is_out_of_memory
from MTLRadiomicsLib.analysis.domain import DomainCheck, check_domain
from MTLRadiomicsLib.analysis.field import FieldPlacement, place_field
from MTLRadiomicsLib.analysis.file_hash import edited_mask_record
from MTLRadiomicsLib.analysis.gradcam import gradcam_all_scales
from MTLRadiomicsLib.analysis.inference import mask_to_crop, predict, prepare_input
from MTLRadiomicsLib.analysis.library_warnings import CapturedWarnings, capture_warnings
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.analysis.outputs import write_image_like, write_seg_nrrd, write_segments_nrrd
from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet
from MTLRadiomicsLib.analysis.progress import Progress
from MTLRadiomicsLib.analysis.result import AnalysisResult, Estimate, Location, Scores
from MTLRadiomicsLib.errors import MTLRadiomicsError, ModelFileError
from MTLRadiomicsLib.model.model_file import LoadedModel, load_model
from MTLRadiomicsLib.model.metric_features import metric_vector
from MTLRadiomicsLib.model.registry import MODEL_ENV, default_model_dir, resolve_model  # noqa: F401
from MTLRadiomicsLib.mtv.lesion import MTV_METHODS, LesionMtvs, segment_lesion
from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics, lesion_hottest_voxel
from MTLRadiomicsLib.mtv.plausibility import MtvCheck, check_mtv, point_avidity_warning
from MTLRadiomicsLib.output_dir import atomic_output_dir, check_output_dir
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.reading import load_pet


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


def read_pet(pet_path: str | Path, options: AnalysisOptions,
             captured: Optional[CapturedWarnings] = None) -> tuple[PetVolume, str]:
    """The PET in SUV (F-18 FDG only: the models know nothing else) and its SHA-256 (:func:`fingerprint`)."""
    pet = load_pet(pet_path, overrides=options.overrides, input_units=options.input_units,
                   series_uid=options.series_uid)
    pet.tracer.require_fdg()
    return pet, fingerprint(pet)


PetReader = Callable[[str | Path, AnalysisOptions, CapturedWarnings], tuple[PetVolume, str]]


def analyze(pet_path: str | Path, out_dir: str | Path, options: Optional[AnalysisOptions] = None,
            progress: Optional[Progress] = None, overwrite: bool = False,
            edited_mask: Optional[str | Path] = None, loaded: Optional[LoadedModel] = None,
            pet_reader: Optional[PetReader] = None) -> AnalysisResult:
    """Analyse one PET scan and write all outputs to ``out_dir``; with ``edited_mask`` (re-scoring)
    the given MTV replaces the predicted one for metrics and outcome scores. ``loaded``: the model,
    already loaded (a long-lived server keeps it); None loads ``options.model``. ``pet_reader``:
    reads the PET and its SHA-256 (a server's cache of the last scans); None: :func:`read_pet`.
    Warnings of the libraries used (pydicom, ...) go into the result's warnings, not to the terminal."""
    progress = progress or Progress("none")
    try:
        with capture_warnings([]) as captured:
            return _analyze(pet_path, Path(out_dir), options or AnalysisOptions(), progress, overwrite, edited_mask,
                            captured, loaded, pet_reader)
    finally:
        progress.close()        # a bar left open would garble the error line that follows


def _analyze(pet_path: str | Path, out_dir: Path, options: AnalysisOptions, progress: Progress,
             overwrite: bool, edited_mask: Optional[str | Path], captured: CapturedWarnings,
             preloaded: Optional[LoadedModel] = None, pet_reader: Optional[PetReader] = None) -> AnalysisResult:
    check_output_dir(out_dir, overwrite)
    clock = Stopwatch()
    warnings = captured.into              # the analysis's warnings; the libraries' are added as they come

    progress.stage("load", 0.02, "reading the PET volume")
    with clock("load"):
        pet, source_hash = (pet_reader or read_pet)(pet_path, options, captured)
    progress.stage("model", 0.12, "loading the model")
    with clock("model"):
        device = choose_device(options.device, warnings)
        loaded = preloaded if preloaded is not None else _load(options.model)
        _check_explanation(loaded, options.explain)
        loaded.network.to(device)
    progress.stage("localisation", 0.2, "locating the lesion")
    with clock("localisation"):
        mask_given = load_mask(edited_mask, pet, options.mask_segment) if edited_mask is not None else None
        given_field = place_field(mask_given, pet) if mask_given is not None and mask_given.any() else None
        location, within = _locate(pet, options, loaded, mask_given, warnings, given_field)
        if location.method == "point":
            avidity = point_avidity_warning(pet.suv, _seed_zyx(pet, location.center_lps), pet.spacing,
                                            options.point_system)
            if avidity:
                warnings.append(avidity)
    mtvs: Optional[LesionMtvs] = None
    if mask_given is None:
        progress.stage("mtv", 0.28, f"segmenting the MTV ({MTV_METHODS[options.mtv_method]})")
        with clock("mtv"):
            mtvs, device = _on_device(loaded, device, warnings, lambda d: segment_lesion(
                pet, location.center_lps, options.mtv_method, loaded.network, loaded.card, d,
                fill_holes=options.fill_holes, within=within, threshold=options.threshold,
                progress=lambda text: progress.stage("mtv", 0.32, text)))
        mask, check = mtvs.mask, mtvs.check
    else:
        mask = mask_given
        check = check_mtv(mask, pet.suv, pet.spacing, _seed_zyx(pet, location.center_lps), "edited MTV")
    warnings.extend(check.warnings)

    seed = options.seed if options.seed is not None else int(source_hash[:15], 16)
    progress.stage("metrics", 0.4, "PET metrics of the MTV")
    with clock("metrics"):
        metrics = compute_metrics(pet.suv, mask, pet.spacing).to_dict()
        metrics |= lesion_suv_max(pet, mask)

    prediction, heatmaps, domain = None, {}, None
    scoring = check.valid and bool(set(loaded.config.tasks) & {"outcome", "classification"})
    if scoring:
        progress.stage("inference", 0.45, "scoring the lesion")
        with clock("inference"):
            placement = given_field if mask_given is not None else place_field(mask, pet)
            location.field_center_lps, location.field_note = placement.center_lps, placement.note
            if placement.note:
                warnings.append(placement.note)
            crop = prepare_input(pet, location.field_center_lps, loaded.card)
            mask_crop = mask_to_crop(mask, pet, crop)
            features = metric_vector(metrics) if loaded.config.metric_features else None
            prediction, device = _on_device(loaded, device, warnings, lambda d: predict(
                loaded.network, crop, d, options.samples, options.uncertainty, mask_crop, features, loaded.card,
                seed))
            domain = _domain(loaded, pet, location, metrics, prediction)
            if not domain.inside:
                warnings.append(f"the scores are outside the model's training domain: {'; '.join(domain.reasons)}")
        progress.stage("gradcam", 0.55, f"Grad-CAM for every scale (target: {options.explain})")
        with clock("gradcam"):
            target_mask = torch.as_tensor(mask_crop[None, None], device=device)
            feature_tensor = None if features is None else torch.as_tensor(features[None], device=device)
            crop_maps = gradcam_all_scales(loaded.network, crop.tensor(device), options.explain, target_mask,
                                           feature_tensor)
            heatmaps = {scale: np.clip(crop_to_pet(m, crop.reference, pet), 0.0, 1.0) for scale, m in crop_maps.items()}
    scores = _scores(prediction, loaded, options, "edited" if mask_given is not None else "predicted", check, domain)
    scores.seed = seed if prediction is not None else None
    captured.library_last()
    result = AnalysisResult(
        engine_version=__version__, command="rescore" if mask_given is not None else "analyze",
        created=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        input={"path": str(pet.source), "format": pet.source_format, "sha256": source_hash,
               "files": len(pet.dicom_files) or 1,
               **(edited_mask_record(edited_mask) if edited_mask is not None else {})},
        pet={k: v for k, v in pet.summary().items() if k != "source"},
        model=_model_summary(loaded),
        location=location, scores=scores, metrics=metrics,
        explanation={"target": options.explain, "method": "Grad-CAM, all scales from one forward and one backward pass",
                     "scales": list(heatmaps),
                     **({} if heatmaps else {"note": "no heatmaps: the scores were withheld" if not check.valid
                                             else "no heatmaps: the model has no score to explain"})},
        mtv=_mtv_summary(mtvs, check, options, mask_given is not None),
        domain=domain.to_dict() if domain is not None else {},
        warnings=warnings, device=str(device))
    progress.stage("outputs", 0.8, "writing the outputs")
    with atomic_output_dir(out_dir, overwrite) as work:
        with clock("outputs"):
            result.outputs = _write_outputs(work, pet, mask, heatmaps, warnings, mtvs)
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


def _load(model: Optional[Path | str]) -> LoadedModel:
    folder = resolve_model(model)
    if not folder.exists():
        raise ModelFileError(f"no model at {folder}; pass --model FOLDER (a folder with model.json and "
                             "model.safetensors)")
    return load_model(folder)


def _check_explanation(loaded: LoadedModel, target: str) -> None:
    """Refuse, before any work, a Grad-CAM target the model has no head for while it has scores to
    explain (a pathology-only model asked to explain the outcome)."""
    scores = bool(set(loaded.config.tasks) & {"outcome", "classification"})
    heads = {"outcome": "outcome" in loaded.config.tasks, "segmentation": "segmentation" in loaded.config.tasks}
    if scores and target in heads and not heads[target]:
        other = "segmentation" if target == "outcome" else "outcome"
        raise MTLRadiomicsError(f"the model {loaded.card.name!r} has no {target} head to explain; "
                                f"use --explain {other}")


def _locate(pet: PetVolume, options: AnalysisOptions, loaded: LoadedModel, mask: Optional[np.ndarray],
            warnings: list[str], given_field: Optional[FieldPlacement] = None
            ) -> tuple[Location, Optional[np.ndarray]]:
    """Where the lesion is (its seed point) and, for a box, the PET voxels inside the box (bool (z, y, x)).
    ``given_field``: the network's field on the edited ``mask`` (its centre is the location)."""
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
        center = (given_field or place_field(mask, pet)).center_lps
        return Location("edited mask", center, lps_to_ras(center), fov,
                        note="centre of the edited MTV's largest part"), None
    if options.point is not None and options.box is not None:
        raise MTLRadiomicsError("give either --point or --box, not both")
    if options.point is not None:
        center = to_lps(options.point)
        if not point_in_volume(pet, center):
            raise MTLRadiomicsError(f"the point {tuple(options.point)} ({options.point_system}) lies outside the PET "
                                    "volume; check the coordinates and --lps")
        return Location("point", center, lps_to_ras(center), fov), None
    if options.box is not None:
        a, b = to_lps(options.box[0]), to_lps(options.box[1])
        center, size = box_center_and_size(a, b)
        if not point_in_volume(pet, center):
            raise MTLRadiomicsError("the box centre lies outside the PET volume; check the corners")
        within = box_voxels(pet, a, b)
        if not within.any():
            raise MTLRadiomicsError("the box holds no PET voxel; check the corners")
        seed = hottest_in(pet, within)
        return Location("box", seed, lps_to_ras(seed), fov,
                        note=f"box {' x '.join(f'{s:.0f}' for s in size)} mm; the MTV is grown from its hottest "
                             "voxel and kept inside it"), within
    search = find_candidates(pet)
    best = search.candidates[0]
    others = [c.to_dict() for c in search.candidates]
    if len(search.candidates) > 1:
        warnings.append(f"{len(search.candidates)} FDG-avid candidates found; the most likely one was analysed "
                        "(the others are listed in result.json); give --point to choose another")
    return Location("automatic", best.center_lps, lps_to_ras(best.center_lps), fov, candidates=others,
                    excluded=[e.to_dict() for e in search.excluded], note=search.method), None


def box_voxels(pet: PetVolume, corner_a_lps, corner_b_lps) -> np.ndarray:
    """bool (z, y, x): the PET voxels whose centres lie inside the axis-aligned LPS box."""
    lo = np.minimum(corner_a_lps, corner_b_lps)
    hi = np.maximum(corner_a_lps, corner_b_lps)
    k, j, i = np.indices(pet.shape, sparse=True)
    d = np.asarray(pet.direction, dtype=float).reshape(3, 3) * np.asarray(pet.spacing)
    inside = np.ones(pet.shape, dtype=bool)
    for axis in range(3):
        coordinate = pet.origin[axis] + d[axis, 0] * i + d[axis, 1] * j + d[axis, 2] * k
        inside &= (coordinate >= lo[axis]) & (coordinate <= hi[axis])
    return inside


def hottest_in(pet: PetVolume, region: np.ndarray) -> tuple[float, float, float]:
    """LPS position (mm) of the hottest voxel of ``region`` (bool (z, y, x))."""
    flat = int(np.argmax(np.where(region, pet.suv, -np.inf)))
    k, j, i = np.unravel_index(flat, pet.shape)
    return pet.index_to_physical((float(i), float(j), float(k)))


def lesion_suv_max(pet: PetVolume, mask: np.ndarray) -> dict:
    """result.json's lesion SUVmax (the hottest voxel of the MTV and the voxels touching it) and its
    position in RAS mm; both None for an empty MTV."""
    hottest = lesion_hottest_voxel(pet.suv, mask)
    if hottest is None:
        return {"lesion_suv_max": None, "lesion_suv_max_ras": None}
    (k, j, i), value = hottest
    x, y, z = pet.index_to_physical((float(i), float(j), float(k)))
    return {"lesion_suv_max": value, "lesion_suv_max_ras": [round(v, 3) + 0.0 for v in (-x, -y, z)]}  # no -0.0


def _seed_zyx(pet: PetVolume, point_lps) -> tuple[int, int, int]:
    index = pet.physical_to_index(tuple(point_lps))
    return tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(reversed(index), pet.shape))  # type: ignore[return-value]


def _on_device(loaded: LoadedModel, device: torch.device, warnings: list[str], work):
    """``work(device)``; on CUDA out of memory, again on the CPU (with a warning). Returns (result, device)."""
    try:
        return work(device), device
    except RuntimeError as error:
        if device.type != "cuda" or not is_out_of_memory(error):
            raise
        warnings.append("the GPU ran out of memory; the analysis ran on the CPU")
        torch.cuda.empty_cache()
        cpu = torch.device("cpu")
        loaded.network.to(cpu)
        return work(cpu), cpu


def _estimate(values: np.ndarray) -> Estimate:
    values = np.asarray(values, dtype=float)
    return Estimate(mean=round(float(values.mean()), 4), sd=round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
                    samples=int(len(values)))


def _domain(loaded: LoadedModel, pet: PetVolume, location: Location, metrics: dict, prediction) -> DomainCheck:
    """The lesion against the card's training domain (tracer, body region, size, uptake, voxels, features)."""
    domain = loaded.card.domain or {}
    if not domain:
        return check_domain({})
    from MTLRadiomicsLib.localisation.body_region import body_region

    region = body_region(pet, location.center_lps)
    tracer = str((pet.series or {}).get("Radiopharmaceutical", "") or "")
    return check_domain(domain, tracer=tracer, region=region.name, region_reason=region.reason,
                        volume_ml=metrics.get("mtv_ml"), suv_max=metrics.get("suv_max"),
                        spacing_mm=tuple(float(v) for v in pet.spacing),
                        features=None if prediction is None else prediction.features)


def _scores(prediction, loaded: LoadedModel, options: AnalysisOptions, mask_source: str, check: MtvCheck,
            domain: Optional[DomainCheck] = None) -> Scores:
    card = loaded.card
    kind = loaded.config.outcome_kind
    outcome = survival = None
    pathology = {}
    pathology_note = ""
    if prediction is not None:
        outcome = _estimate(prediction.outcome_samples) if prediction.outcome_samples is not None else None
        survival = _estimate(prediction.survival_samples) if prediction.survival_samples is not None else None
        if prediction.class_samples is not None:
            names = list(card.class_names) or [f"class {i}" for i in range(prediction.class_samples.shape[1])]
            if domain is not None and not domain.inside:
                pathology_note = ("not shown: the lesion is outside the model's training domain, so no class the "
                                  f"model knows ({', '.join(names)}) can be told")
            else:
                pathology = {name: _estimate(prediction.class_samples[:, i]) for i, name in enumerate(names)}
    method = ("Monte-Carlo dropout" if options.uncertainty == "mc-dropout"
              else "test-time augmentation (flips, shifts)")
    withheld = check.withheld_reason
    if not withheld and prediction is None:
        withheld = "the model has no outcome or pathology head"
    calibrated = bool(card.calibration)
    return Scores(outcome_kind=kind, outcome_meaning=str(card.outcome.get("meaning", "")), outcome=outcome,
                  pathology=pathology, uncertainty=f"mean ± sd over {options.samples} samples, {method}",
                  mask_source=mask_source, withheld=withheld, survival=survival,
                  survival_meaning=str(card.outcome.get("survival_meaning", "")) if survival is not None else "",
                  pathology_note=pathology_note,
                  domain="" if domain is None or not domain.checked else ("inside" if domain.inside else "outside"),
                  calibration=(f"temperature scaling fitted on {card.calibration.get('data', 'held-out data')}"
                               if calibrated else "uncalibrated"))


def _mtv_summary(mtvs: Optional[LesionMtvs], check: MtvCheck, options: AnalysisOptions, edited: bool) -> dict:
    """result.json's "mtv": the scored method, every method side by side, the checks, the liver reference."""
    if edited:
        return {"method": "edited", "label": "edited MTV (rescore)", "check": check.to_dict(), "methods": {}}
    assert mtvs is not None
    liver = mtvs.liver.to_dict() if mtvs.liver is not None else {"found": False, "reason": mtvs.liver_reason}
    return {"method": mtvs.chosen, "label": MTV_METHODS[mtvs.chosen], "fill_holes": mtvs.fill_holes,
            "seed_voxel_zyx": list(mtvs.seed_zyx), "check": check.to_dict(), "methods": mtvs.table,
            "liver_reference": liver}


def _model_summary(loaded: LoadedModel) -> dict:
    card = loaded.card
    return {"name": card.name, "folder": str(loaded.folder), "intended_use": card.intended_use,
            "tasks": loaded.config.tasks, "outcome": card.outcome, "class_names": list(card.class_names),
            "preprocessing": {"spacing_mm": list(card.preprocessing.spacing_mm),
                              "crop_size": list(card.preprocessing.crop_size)},
            "training_data": card.training_data, "held_out_metrics": card.held_out_metrics,
            "weights_sha256": card.weights_sha256, "engine_version_trained": card.engine_version,
            "calibration": card.calibration, "domain": card.domain}


def _write_outputs(work: Path, pet: PetVolume, mask: np.ndarray, heatmaps: dict[str, np.ndarray],
                   warnings: list[str], mtvs: Optional[LesionMtvs] = None) -> dict[str, str]:
    outputs = {"segmentation": write_seg_nrrd(mask, pet, work / "segmentation.seg.nrrd").name,
               "mtv_nifti": write_image_like(mask.astype(np.uint8), pet, work / "mtv.nii.gz").name}
    if mtvs is not None and mtvs.masks:
        outputs["mtv_methods"] = write_segments_nrrd(
            {MTV_METHODS[name]: m for name, m in mtvs.masks.items()}, pet, work / "mtv_methods.seg.nrrd").name
    if mtvs is not None and mtvs.network is not None:
        outputs["mtv_probability"] = write_image_like(mtvs.network.probability, pet,
                                                      work / "mtv_probability.nrrd").name
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

"""Synthetic cases: one patient rendered as a whole-body PET or as a 2 mm crop around the lesion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.pet_input.suv import SuvConversion
from MTLRadiomicsLib.synth.anatomy import sample_anatomy
from MTLRadiomicsLib.synth.grid import IDENTITY_DIRECTION, Grid
from MTLRadiomicsLib.synth.mtv import CONNECTIVITY, threshold_mtv
from MTLRadiomicsLib.synth.patient import Patient, sample_patient, stream

WHOLEBODY_FOV_MM = (600.0, 600.0)   # transaxial field of view (x, y)
CROP_JITTER_MM = 4.0                 # the crop centre moves up to this far from the lesion


@dataclass
class SyntheticCase:
    """A rendered synthetic PET with its ground truth and outcomes.

    Attributes:
        case_id: identifier.
        pathology: "lung" or "oesophageal".
        pet: the PET in SUV with its geometry (LPS, identity direction).
        mask: uint8 (z, y, x) on the PET grid: the ground-truth MTV (40 % SUVmax region of the
            primary tumour, with satellites only where they touch it).
        lesion_center_lps: centroid of the primary tumour (mm).
        oracle_risk: the hidden true risk (linear predictor).
        response: 1 responder, 0 non-responder.
        time: survival or follow-up time (months).
        event: 1 event observed, 0 censored.
        facts: JSON-serialisable description (true and measured lesion features, findings,
            organ uptakes, scanner, outcome terms).
    """

    case_id: str
    pathology: str
    pet: PetVolume
    mask: np.ndarray
    lesion_center_lps: tuple[float, float, float]
    oracle_risk: float
    response: int
    time: float
    event: int
    facts: dict[str, Any]


def render(patient: Patient, grid: Grid, noise_rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, float]:
    """The patient's PET on ``grid``: SUV (float32 (z, y, x)), ground-truth mask (bool), SUVmax."""
    activity, _ = patient.anatomy.paint(grid)
    patient.lesion.paint(activity, grid)
    scanner = patient.scanner
    suv = scanner.add_noise(scanner.blur(activity, grid.spacing), grid.spacing, noise_rng)

    # The lesion's own blurred signal, on a sub-volume around it, bounds the threshold region.
    margin = np.asarray(scanner.margin_voxels(grid.spacing), float) * np.asarray(grid.spacing)
    lo, hi = patient.lesion.bbox()
    box = grid.index_box(lo - margin, hi + margin)
    if box is None:
        raise MTLRadiomicsError("the lesion lies outside the requested grid")
    sub = grid.sub_grid(box)
    primary = np.zeros(sub.shape, dtype=np.float32)
    patient.lesion.paint(primary, sub, findings=False)
    with_findings = primary.copy()
    patient.lesion.paint(with_findings, sub, primary=False)
    sub_mask, suvmax = threshold_mtv(suv[box], scanner.blur(primary, sub.spacing),
                                     scanner.blur(with_findings, sub.spacing))
    mask = np.zeros(grid.shape, dtype=bool)
    mask[box] = sub_mask
    return suv, mask, suvmax


def _measured(suv: np.ndarray, mask: np.ndarray, suvmax: float, grid: Grid) -> dict[str, Any]:
    values = suv[mask]
    _, n_components = ndimage.label(mask, structure=CONNECTIVITY)
    mtv = float(mask.sum()) * grid.voxel_volume_ml
    mean = float(values.mean()) if values.size else 0.0
    faces = [mask[0].any(), mask[-1].any(), mask[:, 0].any(), mask[:, -1].any(),
             mask[:, :, 0].any(), mask[:, :, -1].any()]
    return {"suvmax": round(suvmax, 5), "suvmean": round(mean, 5), "mtv_ml": round(mtv, 4),
            "tlg": round(mtv * mean, 4), "mask_voxels": int(mask.sum()),
            "mask_components": int(n_components), "mask_touches_border": bool(any(faces))}


def _case(patient: Patient, grid: Grid, suv: np.ndarray, mask: np.ndarray, suvmax: float,
          kind: str, case_id: Optional[str]) -> SyntheticCase:
    case_id = case_id or f"synth-{patient.seed}"
    facts = patient.facts()
    measured = _measured(suv, mask, suvmax, grid)
    facts.update(case_id=case_id, kind=kind, **measured)
    facts["grid"] = {"size_xyz": list(grid.size_xyz), "spacing_mm": list(grid.spacing),
                     "origin_lps_mm": [round(o, 4) for o in grid.origin]}
    pet = PetVolume(
        suv=suv, spacing=grid.spacing, origin=grid.origin, direction=IDENTITY_DIRECTION,
        source=f"synthetic:{case_id}", source_format="array",
        suv_conversion=SuvConversion(factor=1.0, method="synthetic phantom generated in SUV",
                                     units_in_file="SUV"),
        series={"patient_id": case_id, "modality": "PT", "synthetic": True,
                "description": f"synthetic FDG-PET phantom ({kind}, {patient.pathology} tumour)"})
    out = patient.outcomes
    return SyntheticCase(case_id=case_id, pathology=patient.pathology, pet=pet,
                         mask=mask.astype(np.uint8), lesion_center_lps=patient.lesion_center,
                         oracle_risk=out.oracle_risk, response=out.response, time=out.time,
                         event=out.event, facts=facts)


def _check_spacing(spacing_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != 3 or not all(0.5 <= s <= 10.0 for s in spacing):
        raise MTLRadiomicsError(f"spacing_mm must be three values in 0.5-10 mm, not {spacing_mm}")
    return spacing  # type: ignore[return-value]


def wholebody_grid(patient: Patient, spacing_mm: tuple[float, float, float]) -> Grid:
    """Head (vertex) to mid-thigh with a 600 x 600 mm transaxial field of view."""
    sx, sy, sz = spacing_mm
    nx, ny = (int(round(fov / s)) for fov, s in zip(WHOLEBODY_FOV_MM, (sx, sy)))
    z_lo, z_hi = patient.anatomy.z_range[0], 12.0
    nz = int(math.ceil((z_hi - z_lo) / sz)) + 1
    origin = (-(nx - 1) / 2.0 * sx, -(ny - 1) / 2.0 * sy, z_lo)
    return Grid(shape=(nz, ny, nx), spacing=(sx, sy, sz), origin=origin)


def wholebody_case(seed: int, pathology: Optional[str] = None,
                   spacing_mm: tuple[float, float, float] = (4.0, 4.0, 3.0), *,
                   case_id: Optional[str] = None) -> SyntheticCase:
    """A whole-body FDG-PET (vertex to mid-thigh, 600 mm field of view) of the patient ``seed``.

    Args:
        seed: patient seed (>= 0); the same seed gives the same patient, lesion and outcomes.
        pathology: "lung", "oesophageal", or None to let the seed choose.
        spacing_mm: voxel size (x, y, z) in mm.
    """
    patient = sample_patient(seed, pathology)
    grid = wholebody_grid(patient, _check_spacing(spacing_mm))
    suv, mask, suvmax = render(patient, grid, stream(patient.seed, "wholebody_noise"))
    return _case(patient, grid, suv, mask, suvmax, "wholebody", case_id)


def lesion_crop_case(seed: int, pathology: Optional[str] = None,
                     spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.0),
                     crop_size: tuple[int, int, int] = (64, 64, 64), *,
                     case_id: Optional[str] = None) -> SyntheticCase:
    """A crop of ``crop_size`` voxels (x, y, z) at ``spacing_mm`` centred on the lesion (within a
    few mm of jitter): the network's input. Same patient and outcomes as ``wholebody_case(seed)``."""
    patient = sample_patient(seed, pathology)
    spacing = _check_spacing(spacing_mm)
    size = tuple(int(n) for n in crop_size)
    if len(size) != 3 or min(size) < 8:
        raise MTLRadiomicsError(f"crop_size must be three sizes of at least 8 voxels, not {crop_size}")
    jitter = stream(patient.seed, "crop_jitter").uniform(-CROP_JITTER_MM, CROP_JITTER_MM, size=3)
    centre = np.asarray(patient.lesion_center) + jitter
    grid = Grid.centred(centre, size, spacing)  # type: ignore[arg-type]
    padded, inner = grid.padded(patient.scanner.margin_voxels(spacing))
    suv, mask, suvmax = render(patient, padded, stream(patient.seed, "crop_noise"))
    suv, mask = np.ascontiguousarray(suv[inner]), np.ascontiguousarray(mask[inner])
    return _case(patient, grid, suv, mask, suvmax, "crop", case_id)


def organ_labels(seed: int, pet: PetVolume) -> np.ndarray:
    """Organ label map (uint8 (z, y, x), values in ``ORGAN_LABELS``) of patient ``seed`` on the
    grid of ``pet`` (a synthetic case's PET, identity direction)."""
    if not np.allclose(pet.direction, IDENTITY_DIRECTION):
        raise MTLRadiomicsError("organ_labels needs a PET with identity direction")
    grid = Grid(shape=pet.shape, spacing=pet.spacing, origin=pet.origin)
    anatomy = sample_anatomy(stream(int(seed), "anatomy"))
    return anatomy.paint(grid, with_labels=True)[1]  # type: ignore[return-value]

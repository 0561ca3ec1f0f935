"""Synthetic cases: one patient rendered as a whole-body PET or as a crop around the lesion.

Lung and oesophageal: 64^3 crops at 2 mm, whole body at 4 x 4 x 3 mm, ground truth the 40 % SUVmax
region. Sarcoma and head and neck: crops that hold the whole lesion plus a 20-30 mm margin (their
size follows the lesion) at native PET voxels (in-plane 3.91, 4.69 or 5.47 mm as the scanners'
128-matrix reconstructions give, 3.27 mm slices), ground truth the whole tumour (GTV).
"""

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
from MTLRadiomicsLib.synth.patient import (GTV_SAMPLERS, Patient, normalise_pathology,
                                           sample_patient, stream)

WHOLEBODY_FOV_MM = (600.0, 600.0)   # transaxial field of view (x, y)
CROP_JITTER_MM = 4.0                 # the crop centre moves up to this far from the lesion
# Native voxels of the real sarcoma crops: 500, 600 or 700 mm field of view on 128 pixels (drawn
# with the real cohort's frequencies 9 : 5 : 21), 3.27 mm slices.
NATIVE_IN_PLANE_MM = (3.90625, 4.6875, 5.46875)
NATIVE_IN_PLANE_WEIGHTS = (9 / 35, 5 / 35, 21 / 35)
NATIVE_SLICE_MM = 3.27
CROP_MARGIN_MM = (20.0, 30.0)        # margin around a GTV lesion, drawn per side


@dataclass
class SyntheticCase:
    """A rendered synthetic PET with its ground truth and outcomes.

    Attributes:
        case_id: identifier.
        pathology: "lung", "oesophageal", "sarcoma" or "head_and_neck".
        pet: the PET in SUV with its geometry (LPS, identity direction).
        mask: uint8 (z, y, x) on the PET grid, the ground truth. Lung and oesophageal: the MTV
            (40 % SUVmax region of the primary tumour, with satellites only where they touch it).
            Sarcoma and head and neck: the GTV, the whole primary tumour (viable rim and necrotic
            core; not the nodes), voxels whose centre lies inside it; facts["mtv40_ml"] holds
            the volume of its 40 % SUVmax region.
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
           ) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any]]:
    """The patient's PET on ``grid``: SUV (float32 (z, y, x)), ground-truth mask (bool), SUVmax
    and extra measured facts (for a GTV lesion: the 40 % SUVmax region's volume, ml)."""
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
    if patient.lesion.GROUND_TRUTH == "gtv":
        mask = patient.lesion.truth_mask(grid)
        region40 = round(float(sub_mask.sum()) * grid.voxel_volume_ml, 4)
        gtv_max = float(suv[mask].max()) if mask.any() else suvmax
        return suv, mask, gtv_max, {"mtv40_ml": region40, "mtv40_suvmax": round(suvmax, 5)}
    mask = np.zeros(grid.shape, dtype=bool)
    mask[box] = sub_mask
    return suv, mask, suvmax, {}


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


def _case(patient: Patient, grid: Grid, rendered: tuple[np.ndarray, np.ndarray, float, dict],
          kind: str, case_id: Optional[str]) -> SyntheticCase:
    suv, mask, suvmax, extra = rendered
    case_id = case_id or f"synth-{patient.seed}"
    facts = patient.facts()
    measured = _measured(suv, mask, suvmax, grid)
    facts.update(case_id=case_id, kind=kind, **measured, **extra)
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


def native_spacing(seed: int) -> tuple[float, float, float]:
    """The native voxel size (x, y, z) in mm of patient ``seed``'s sarcoma / head-and-neck scan."""
    rng = stream(int(seed), "native_spacing")
    choice = int(rng.choice(len(NATIVE_IN_PLANE_MM), p=NATIVE_IN_PLANE_WEIGHTS))
    in_plane = NATIVE_IN_PLANE_MM[choice]
    return (in_plane, in_plane, NATIVE_SLICE_MM)


def _default_spacing(patient: Patient, legacy: tuple[float, float, float]
                     ) -> tuple[float, float, float]:
    return native_spacing(patient.seed) if patient.pathology in GTV_SAMPLERS else legacy


def wholebody_case(seed: int, pathology: Optional[str] = None,
                   spacing_mm: Optional[tuple[float, float, float]] = None, *,
                   case_id: Optional[str] = None) -> SyntheticCase:
    """A whole-body FDG-PET (vertex to mid-thigh, or further down for a sarcoma of the leg; 600 mm
    field of view) of the patient ``seed``.

    Args:
        seed: patient seed (>= 0); the same seed gives the same patient, lesion and outcomes.
        pathology: "lung", "oesophageal", "sarcoma", "head_and_neck", or None to let the seed
            choose between lung and oesophageal.
        spacing_mm: voxel size (x, y, z) in mm; None: 4 x 4 x 3 mm for lung and oesophageal, the
            patient's native voxels (``native_spacing``) for sarcoma and head and neck.
    """
    patient = sample_patient(seed, pathology)
    spacing = _check_spacing(spacing_mm or _default_spacing(patient, (4.0, 4.0, 3.0)))
    grid = wholebody_grid(patient, spacing)
    rendered = render(patient, grid, stream(patient.seed, "wholebody_noise"))
    return _case(patient, grid, rendered, "wholebody", case_id)


def _fitted_grid(patient: Patient, spacing: tuple[float, float, float],
                 margin_mm: Optional[float]) -> Grid:
    """A grid around the whole lesion (primary and nodes) plus a margin (mm) on every side: fixed,
    or drawn per side from ``CROP_MARGIN_MM``."""
    lo, hi = patient.lesion.bbox(halo=False)  # type: ignore[call-arg]
    if margin_mm is None:
        rng = stream(patient.seed, "crop_margin")
        lo = lo - rng.uniform(*CROP_MARGIN_MM, size=3)
        hi = hi + rng.uniform(*CROP_MARGIN_MM, size=3)
    else:
        lo, hi = lo - float(margin_mm), hi + float(margin_mm)
    return Grid.covering(lo, hi, spacing)


def lesion_crop_case(seed: int, pathology: Optional[str] = None,
                     spacing_mm: Optional[tuple[float, float, float]] = None,
                     crop_size: Optional[tuple[int, int, int]] = None, *,
                     case_id: Optional[str] = None,
                     margin_mm: Optional[float] = None) -> SyntheticCase:
    """A crop around the lesion: the network's input. Same patient and outcomes as
    ``wholebody_case(seed)``.

    Lung and oesophageal: ``crop_size`` voxels (x, y, z; default 64^3) at ``spacing_mm`` (default
    2 mm) centred on the lesion within a few mm of jitter. Sarcoma and head and neck: by default
    at the native voxels, sized to hold the whole lesion plus ``margin_mm`` (default drawn per
    side from 20-30 mm); a given ``crop_size`` centres a fixed-size crop instead.
    """
    patient = sample_patient(seed, pathology)
    gtv = patient.pathology in GTV_SAMPLERS
    spacing = _check_spacing(spacing_mm or _default_spacing(patient, (2.0, 2.0, 2.0)))
    if crop_size is None and gtv:
        if margin_mm is not None and not 0.0 <= float(margin_mm) <= 200.0:
            raise MTLRadiomicsError(f"margin_mm must be in 0-200 mm, not {margin_mm}")
        grid = _fitted_grid(patient, spacing, margin_mm)
    else:
        size = tuple(int(n) for n in (crop_size or (64, 64, 64)))
        if len(size) != 3 or min(size) < 8:
            raise MTLRadiomicsError(
                f"crop_size must be three sizes of at least 8 voxels, not {crop_size}")
        jitter = stream(patient.seed, "crop_jitter").uniform(-CROP_JITTER_MM, CROP_JITTER_MM,
                                                             size=3)
        centre = np.asarray(patient.lesion_center) + jitter
        grid = Grid.centred(centre, size, spacing)  # type: ignore[arg-type]
    padded, inner = grid.padded(patient.scanner.margin_voxels(spacing))
    suv, mask, suvmax, extra = render(patient, padded, stream(patient.seed, "crop_noise"))
    suv, mask = np.ascontiguousarray(suv[inner]), np.ascontiguousarray(mask[inner])
    if gtv:  # the GTV's SUVmax on the crop itself
        suvmax = float(suv[mask].max()) if mask.any() else suvmax
    return _case(patient, grid, (suv, mask, suvmax, extra), "crop", case_id)


def organ_labels(seed: int, pet: PetVolume, pathology: Optional[str] = None) -> np.ndarray:
    """Organ label map (uint8 (z, y, x), values in ``ORGAN_LABELS``) of patient ``seed`` on the
    grid of ``pet`` (a synthetic case's PET, identity direction). For a sarcoma patient pass
    ``pathology="sarcoma"``: its anatomy has the extended legs and the tumour bed (the tumour
    itself is labelled as the tissue it lies in)."""
    if not np.allclose(pet.direction, IDENTITY_DIRECTION):
        raise MTLRadiomicsError("organ_labels needs a PET with identity direction")
    grid = Grid(shape=pet.shape, spacing=pet.spacing, origin=pet.origin)
    if normalise_pathology(pathology) in GTV_SAMPLERS:
        anatomy = sample_patient(int(seed), pathology).anatomy
    else:
        anatomy = sample_anatomy(stream(int(seed), "anatomy"))
    return anatomy.paint(grid, with_labels=True)[1]  # type: ignore[return-value]

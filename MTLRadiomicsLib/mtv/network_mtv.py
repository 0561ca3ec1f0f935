"""The network's MTV, whatever the tumour's size: sliding windows over a region that grows until
the lesion is enclosed, then put back exactly onto the PET grid.

The region is a grid with the LPS axes at the model's spacing, anchored at the seed. It starts as one
network field of view around the seed. MONAI's ``sliding_window_inference`` (Gaussian blending,
overlap 0.5) gives the tumour probability over the region; the connected component of the seed is
the lesion. Wherever the lesion comes within ``CONTEXT_VOXELS`` of a face of the region while the
PET goes on beyond that face, the region grows on that side by half a field of view and the
inference is repeated (growing passes with overlap 0.25, the final one with 0.5). Growth stops when the
lesion is enclosed, at the ends of the scan (the lesion is then reported as cut there), or at
``MAX_EXTENT_MM`` or ``MAX_LESION_ML`` (reported as a limit: the segmentation has leaked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from MTLRadiomicsLib.model.model_card import ModelCard
from MTLRadiomicsLib.model.network import MultiTaskNet
from MTLRadiomicsLib.model.preprocessing import normalise_suv
from MTLRadiomicsLib.mtv.components import component_at
from MTLRadiomicsLib.mtv.plausibility import distance_to_mask_mm
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

OVERLAP = 0.5                 # the final pass; growing passes use GROWTH_OVERLAP (fewer windows)
GROWTH_OVERLAP = 0.25
CONTEXT_VOXELS = 4            # the lesion must stay this far from a region face that is not the scan's end
MAX_EXTENT_MM = 450.0         # no lesion is larger; a region that would grow beyond is reported
MAX_LESION_ML = 4000.0        # a component larger than this has leaked beyond one lesion: growth stops
MAX_ITERATIONS = 10
SEED_RADIUS_MM = 15.0         # a lesion whose nearest voxel is further from the seed is not the seed's
AXIS_NAMES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))  # LPS -x/+x, -y/+y, -z/+z


@dataclass
class NetworkMtv:
    """The network's MTV on the PET grid and how it was found.

    mask: uint8 (z, y, x) on the PET grid, the seed's connected component of probability >= threshold.
    probability: float32 (z, y, x) on the PET grid, 0 outside the region.
    region: the final region grid (LPS axes, model spacing); region_probability its (D, H, W) map.
    cut_at_scan_end: faces ("inferior", ...) where the lesion reaches the end of the scan.
    reached_limit: faces where the region stopped at ``MAX_EXTENT_MM`` with the lesion still touching
        ("every" when the lesion outgrew ``MAX_LESION_ML``).
    """

    mask: np.ndarray
    probability: np.ndarray
    region: sitk.Image
    region_probability: np.ndarray
    iterations: int
    windows: int
    cut_at_scan_end: list[str] = field(default_factory=list)
    reached_limit: list[str] = field(default_factory=list)
    seed_distance_mm: Optional[float] = None

    @property
    def region_size_mm(self) -> tuple[float, float, float]:
        return tuple(float(n * s) for n, s in zip(self.region.GetSize(), self.region.GetSpacing()))  # type: ignore[return-value]

    def summary(self) -> dict:
        return {"method": "sliding windows (MONAI, Gaussian blending, overlap 0.5) over a growing region",
                "region_size_mm": [round(v, 1) for v in self.region_size_mm],
                "iterations": self.iterations, "windows": self.windows,
                "cut_at_scan_end": list(self.cut_at_scan_end), "reached_limit": list(self.reached_limit),
                "seed_distance_mm": None if self.seed_distance_mm is None else round(self.seed_distance_mm, 1)}


def region_reference(seed_lps: Sequence[float], spacing_mm: Sequence[float], lo: np.ndarray,
                     hi: np.ndarray) -> sitk.Image:
    """An empty image (identity direction) whose voxel centres are seed + k * spacing for k in
    [lo, hi] per axis (x, y, z)."""
    size = [int(h - l + 1) for l, h in zip(lo, hi)]
    image = sitk.Image(size, sitk.sitkUInt8)
    image.SetSpacing([float(s) for s in spacing_mm])
    image.SetOrigin([float(c) + float(l) * float(s) for c, l, s in zip(seed_lps, lo, spacing_mm)])
    return image


def pet_bounds_lps(pet: PetVolume) -> tuple[np.ndarray, np.ndarray]:
    """Physical LPS bounding box (mm) of the PET's voxels (their outer faces), (x, y, z) each."""
    corners = np.array([pet.index_to_physical(tuple(-0.5 if c == 0 else n - 0.5 for c, n in zip(corner, pet.size)))
                        for corner in np.ndindex(2, 2, 2)])
    return corners.min(axis=0), corners.max(axis=0)


def segmentation_predictor(network: MultiTaskNet) -> Callable[[torch.Tensor], torch.Tensor]:
    """Windows (B, C, D, H, W) -> tumour probability (B, 1, D, H, W): encoder and segmentation decoder only."""
    if network.segmentation is None:
        raise ValueError("this model has no segmentation head")

    def predict(x: torch.Tensor) -> torch.Tensor:
        logits, _ = network.segmentation(network.encoder(x))
        return torch.sigmoid(logits.float())

    return predict


@torch.no_grad()
def infer_region(network: MultiTaskNet, card: ModelCard, pet_image: sitk.Image, region: sitk.Image,
                 device: torch.device, sw_batch_size: int = 4, overlap: float = OVERLAP) -> tuple[np.ndarray, int]:
    """Tumour probability (D, H, W) float32 over ``region`` and the number of windows run."""
    from monai.inferers import sliding_window_inference

    pre = card.preprocessing
    suv = sitk.GetArrayFromImage(sitk.Resample(pet_image, region, sitk.Transform(), sitk.sitkLinear, 0.0,
                                               sitk.sitkFloat32))
    x = torch.as_tensor(normalise_suv(suv, pre)[None, None], device=device)
    roi = tuple(int(s) for s in pre.crop_size)
    counter = {"windows": 0}
    predict = segmentation_predictor(network)

    def counted(batch: torch.Tensor) -> torch.Tensor:
        counter["windows"] += int(batch.shape[0])
        return predict(batch)

    network.eval()
    probability = sliding_window_inference(x, roi, sw_batch_size, counted, overlap=overlap, mode="gaussian",
                                           padding_mode="constant", cval=0.0)
    return probability[0, 0].float().cpu().numpy(), counter["windows"]


def _extent(component: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lattice steps (x, y, z) of the component's first and last voxels along each axis."""
    where = np.argwhere(component)[:, ::-1]                 # (x, y, z) array indices
    return where.min(axis=0) + lo, where.max(axis=0) + lo


def segment_network_mtv(network: MultiTaskNet, card: ModelCard, pet: PetVolume, seed_lps: Sequence[float],
                        device: torch.device, threshold: float = 0.5,
                        progress: Optional[Callable[[str], None]] = None) -> NetworkMtv:
    """The network's MTV of the lesion at ``seed_lps`` (mm), on the PET grid (see the module doc)."""
    from MTLRadiomicsLib.analysis.pet_grid import crop_to_pet

    pre = card.preprocessing
    spacing = np.asarray(pre.spacing_mm, dtype=float)
    crop_xyz = np.asarray(list(reversed(pre.crop_size)), dtype=int)
    seed = np.asarray(seed_lps, dtype=float)
    pet_lo, pet_hi = pet_bounds_lps(pet)
    lattice_lo = np.floor((pet_lo - seed) / spacing).astype(int)      # outermost lattice steps inside the PET
    lattice_hi = np.ceil((pet_hi - seed) / spacing).astype(int)
    max_steps = np.floor(MAX_EXTENT_MM / spacing).astype(int)
    lo = -(crop_xyz // 2)
    hi = lo + crop_xyz - 1
    step = np.maximum(crop_xyz // 2, 1)
    pet_image = pet.to_sitk()
    voxel_ml = float(np.prod(spacing)) / 1000.0
    windows, iterations = 0, 0
    end_tolerance = float(max(pet.spacing)) + float(spacing.max()) / 2.0
    open_faces: list[tuple[int, int]] = []
    cut_faces: list[tuple[int, int]] = []
    blocked: list[tuple[int, int]] = []
    leaked = False
    computed_at: Optional[tuple] = None
    while True:
        iterations += 1
        region = region_reference(seed, spacing, lo, hi)
        probability, n = infer_region(network, card, pet_image, region, device, overlap=GROWTH_OVERLAP)
        windows += n
        computed_at = (tuple(lo), tuple(hi))
        component = component_at(probability >= threshold, tuple(int(v) for v in (-lo)[::-1]),
                                 spacing[::-1], SEED_RADIUS_MM)
        leaked = float(component.sum()) * voxel_ml > MAX_LESION_ML
        open_faces: list[tuple[int, int]] = []               # the lesion goes on beyond the region here
        cut_faces: list[tuple[int, int]] = []                # the lesion reaches the end of the scan here
        if component.any():
            first, last = _extent(component, lo)
            for axis in range(3):
                if first[axis] * spacing[axis] <= (pet_lo - seed)[axis] + end_tolerance:
                    cut_faces.append((axis, -1))
                elif first[axis] < lo[axis] + CONTEXT_VOXELS:
                    open_faces.append((axis, -1))
                if last[axis] * spacing[axis] >= (pet_hi - seed)[axis] - end_tolerance:
                    cut_faces.append((axis, 1))
                elif last[axis] > hi[axis] - CONTEXT_VOXELS:
                    open_faces.append((axis, 1))
        grown, blocked = False, []
        for axis, side in ([] if leaked else open_faces):
            if side < 0:
                new = max(lo[axis] - step[axis], lattice_lo[axis], hi[axis] - max_steps[axis])
                at_scan_end = lo[axis] <= lattice_lo[axis]
                changed, lo[axis] = new < lo[axis], min(new, lo[axis])
            else:
                new = min(hi[axis] + step[axis], lattice_hi[axis], lo[axis] + max_steps[axis])
                at_scan_end = hi[axis] >= lattice_hi[axis]
                changed, hi[axis] = new > hi[axis], max(new, hi[axis])
            grown |= changed
            if not changed and not at_scan_end:
                blocked.append((axis, side))                 # stopped by the size limit
        if progress is not None:
            size = ' x '.join(f'{(h - l + 1) * s:.0f}' for l, h, s in zip(lo, hi, spacing))
            progress(f"network MTV: pass {iterations}, region {size} mm")
        if not grown or iterations >= MAX_ITERATIONS:
            break
    if not (leaked or blocked):                      # a leaked MTV is not refined: it will not be used
        if computed_at != (tuple(lo), tuple(hi)):    # the loop ended on a growth step
            region = region_reference(seed, spacing, lo, hi)
        probability, n = infer_region(network, card, pet_image, region, device, overlap=OVERLAP)
        windows += n
    cut = [AXIS_NAMES[axis][0 if side < 0 else 1] for axis, side in cut_faces]
    limit = [AXIS_NAMES[axis][0 if side < 0 else 1] for axis, side in (open_faces if leaked else blocked)]
    if leaked:
        limit = limit or ["every"]

    probability_pet = np.clip(crop_to_pet(probability, region, pet), 0.0, 1.0)
    seed_index = pet.physical_to_index(tuple(seed))
    seed_zyx = tuple(int(np.clip(i, 0, n - 1)) for i, n in zip(reversed(seed_index), pet.shape))
    mask_pet = component_at(probability_pet >= threshold, seed_zyx, np.asarray(pet.spacing)[::-1], SEED_RADIUS_MM)
    distance = distance_to_mask_mm(mask_pet, seed_zyx, np.asarray(pet.spacing)[::-1]) if mask_pet.any() else None
    return NetworkMtv(mask=mask_pet.astype(np.uint8), probability=probability_pet.astype(np.float32),
                      region=region, region_probability=probability, iterations=iterations, windows=windows,
                      cut_at_scan_end=cut, reached_limit=limit, seed_distance_mm=distance)

"""The network's MTV, whatever the tumour's size: sliding windows over a region that grows until
the lesion is enclosed, then put back exactly onto the PET grid.

The region is a grid with the LPS axes at the model's spacing, anchored at the seed. It starts as one
network field of view around the seed. MONAI's ``sliding_window_inference`` (Gaussian blending,
overlap 0.5) gives the tumour probability over the region; the connected component of the seed is
the lesion. Wherever the lesion comes within ``CONTEXT_VOXELS`` of a face of the region while the
PET goes on beyond that face, the region grows on that side by half a field of view and the
inference is repeated. Growth stops when the lesion is enclosed, at the ends of the scan (the lesion
is then reported as cut there) or at ``MAX_EXTENT_MM`` (reported as a limit).
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

OVERLAP = 0.5
CONTEXT_VOXELS = 4            # the lesion must stay this far from a region face that is not the scan's end
MAX_EXTENT_MM = 450.0         # no lesion is larger; a region that would grow beyond is reported
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
    reached_limit: faces where the region stopped at ``MAX_EXTENT_MM`` with the lesion still touching.
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
                 device: torch.device, sw_batch_size: int = 4) -> tuple[np.ndarray, int]:
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
    probability = sliding_window_inference(x, roi, sw_batch_size, counted, overlap=OVERLAP, mode="gaussian",
                                           padding_mode="constant", cval=0.0)
    return probability[0, 0].float().cpu().numpy(), counter["windows"]


def _touching_faces(component: np.ndarray, margin: int) -> list[tuple[int, int]]:
    """(axis xyz, side -1/+1) of the region faces the component comes within ``margin`` voxels of."""
    faces = []
    for axis_xyz in range(3):
        axis = 2 - axis_xyz                                   # arrays are (z, y, x)
        n = component.shape[axis]
        m = min(margin, n)
        low = np.take(component, range(0, m), axis=axis).any()
        high = np.take(component, range(n - m, n), axis=axis).any()
        if low:
            faces.append((axis_xyz, -1))
        if high:
            faces.append((axis_xyz, 1))
    return faces


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
    windows, iterations = 0, 0
    touching: list[tuple[int, int]] = []
    while True:
        iterations += 1
        region = region_reference(seed, spacing, lo, hi)
        probability, n = infer_region(network, card, pet_image, region, device)
        windows += n
        component = component_at(probability >= threshold, tuple(int(v) for v in (-lo)[::-1]),
                                 spacing[::-1], SEED_RADIUS_MM)
        touching = _touching_faces(component, CONTEXT_VOXELS) if component.any() else []
        grown = False
        for axis, side in touching:
            if side < 0 and lo[axis] > lattice_lo[axis] and hi[axis] - lo[axis] < max_steps[axis]:
                lo[axis] = max(lo[axis] - step[axis], lattice_lo[axis], hi[axis] - max_steps[axis])
                grown = True
            elif side > 0 and hi[axis] < lattice_hi[axis] and hi[axis] - lo[axis] < max_steps[axis]:
                hi[axis] = min(hi[axis] + step[axis], lattice_hi[axis], lo[axis] + max_steps[axis])
                grown = True
        if progress is not None:
            size = ' x '.join(f'{(h - l + 1) * s:.0f}' for l, h, s in zip(lo, hi, spacing))
            progress(f"network MTV: pass {iterations}, region {size} mm")
        if not grown or iterations >= MAX_ITERATIONS:
            break
    cut, limit = [], []
    for axis, side in touching:
        name = AXIS_NAMES[axis][0 if side < 0 else 1]
        at_end = lo[axis] <= lattice_lo[axis] if side < 0 else hi[axis] >= lattice_hi[axis]
        (cut if at_end else limit).append(name)

    probability_pet = np.clip(crop_to_pet(probability, region, pet), 0.0, 1.0)
    seed_index = pet.physical_to_index(tuple(seed))
    seed_zyx = tuple(int(np.clip(i, 0, n - 1)) for i, n in zip(reversed(seed_index), pet.shape))
    mask_pet = component_at(probability_pet >= threshold, seed_zyx, np.asarray(pet.spacing)[::-1], SEED_RADIUS_MM)
    distance = distance_to_mask_mm(mask_pet, seed_zyx, np.asarray(pet.spacing)[::-1]) if mask_pet.any() else None
    return NetworkMtv(mask=mask_pet.astype(np.uint8), probability=probability_pet.astype(np.float32),
                      region=region, region_probability=probability, iterations=iterations, windows=windows,
                      cut_at_scan_end=cut, reached_limit=limit, seed_distance_mm=distance)

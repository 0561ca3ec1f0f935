"""Run the network on a crop around the lesion: point estimates and their uncertainty.

The crop is taken at the model card's spacing and size, on a grid with the LPS axes, centred on the
lesion. Uncertainty comes from Monte-Carlo dropout (dropout layers active, everything else in
evaluation mode) or from test-time augmentation (left-right flips and one-voxel shifts); the
segmentation is the deterministic prediction (dropout off), and the dropout masks are drawn from a
generator seeded by the caller, so that an analysis is reproducible to the last digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from MTLRadiomicsLib.model.model_card import ModelCard
from MTLRadiomicsLib.model.network import MultiTaskNet
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume
from MTLRadiomicsLib.model.preprocessing import crop_reference, normalise_suv, resample_to

UNCERTAINTY_METHODS = ("mc-dropout", "tta")


@dataclass
class CropInput:
    """Network input around the lesion. ``image`` (C, D, H, W) normalised; ``reference`` the crop grid."""

    image: np.ndarray
    reference: sitk.Image
    center_lps: tuple[float, float, float]

    def tensor(self, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(self.image[None], dtype=torch.float32, device=device)


@dataclass
class Prediction:
    """Network outputs on the crop grid.

    segmentation: (D, H, W) probability, deterministic pass; outcome_samples: (N,) response
    probability (binary) or log hazard (survival); survival_samples: (N,) log hazard of a survival
    head beside a binary outcome; class_samples: (N, K) class probabilities; box: (6,) or None,
    centre and size as fractions of the crop; features: (n,) what the outcome head saw in the
    deterministic pass (for the domain check)."""

    segmentation: Optional[np.ndarray]
    outcome_samples: Optional[np.ndarray]
    class_samples: Optional[np.ndarray]
    box: Optional[np.ndarray]
    survival_samples: Optional[np.ndarray] = None
    features: Optional[np.ndarray] = None


def prepare_input(pet: PetVolume, center_lps: Sequence[float], card: ModelCard) -> CropInput:
    """Crop, resample (linear) and normalise the PET around ``center_lps`` as the card says."""
    pre = card.preprocessing
    reference = crop_reference(center_lps, pre.spacing_mm, pre.crop_size)
    suv = resample_to(pet.to_sitk(), reference)
    return CropInput(image=normalise_suv(suv, pre)[None], reference=reference,
                     center_lps=tuple(float(c) for c in center_lps))


def mask_to_crop(mask: np.ndarray, pet: PetVolume, crop: CropInput) -> np.ndarray:
    """A mask on the PET grid as a soft (0-1) mask on the crop grid, (D, H, W) float32."""
    image = pet.copy_geometry_to(sitk.GetImageFromArray(mask.astype(np.float32)))
    return np.clip(resample_to(image, crop.reference), 0.0, 1.0)


def _outcome_value(raw: torch.Tensor, kind: str, temperature: float = 1.0) -> torch.Tensor:
    return torch.sigmoid(raw / temperature) if kind == "binary" else raw


def _class_probabilities(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    logits = logits / temperature
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def temperatures(card: Optional[ModelCard]) -> tuple[float, float]:
    """(outcome, class) temperatures of the card's calibration (1, 1 when uncalibrated)."""
    calibration = (card.calibration if card is not None else {}) or {}
    return (float(calibration.get("outcome_temperature", 1.0) or 1.0),
            float(calibration.get("class_temperature", 1.0) or 1.0))


def _enable_dropout(network: torch.nn.Module, on: bool) -> None:
    for module in network.modules():
        if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout3d)):
            module.train(on)


@torch.no_grad()
def predict(network: MultiTaskNet, crop: CropInput, device: torch.device, samples: int = 10,
            method: str = "mc-dropout", mask_crop: Optional[np.ndarray] = None,
            metrics: Optional[np.ndarray] = None, card: Optional[ModelCard] = None,
            seed: Optional[int] = None) -> Prediction:
    """Deterministic segmentation plus ``samples`` stochastic passes for the scores.

    ``mask_crop`` (D, H, W) replaces the predicted segmentation in the outcome head (re-scoring);
    ``metrics`` (4,): the PET metric features of the scored MTV (models with metric features);
    ``card``: its calibration temperatures are applied to the probabilities; ``seed``: the dropout
    masks' random seed (the global random state is left as it was); None: unseeded."""
    if method not in UNCERTAINTY_METHODS:
        raise ValueError(f"uncertainty method must be one of {UNCERTAINTY_METHODS}")
    network.eval()
    kind = network.config.outcome_kind
    t_outcome, t_class = temperatures(card)
    x = crop.tensor(device)
    mask = None if mask_crop is None else torch.as_tensor(mask_crop[None, None], device=device)
    m = None if metrics is None else torch.as_tensor(np.asarray(metrics, np.float32)[None], device=device)
    out = network(x, mask=mask, metrics=m)
    segmentation = torch.sigmoid(out["segmentation"])[0, 0].cpu().numpy() if "segmentation" in out else None
    box = out["detection"][0].cpu().numpy() if "detection" in out else None
    features = out["outcome_features"][0].float().cpu().numpy() if "outcome_features" in out else None

    collected: dict[str, list] = {"outcome": [], "survival": [], "classes": []}

    def collect(batch: dict) -> None:
        if "outcome" in batch:
            collected["outcome"].append(_outcome_value(batch["outcome"].float(), kind, t_outcome))
        if "survival" in batch:
            collected["survival"].append(batch["survival"].float())
        if "classification" in batch:
            collected["classes"].append(_class_probabilities(batch["classification"].float(), t_class))

    if method == "mc-dropout":
        _enable_dropout(network, True)
        devices = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices, enabled=seed is not None):
                if seed is not None:
                    torch.manual_seed(int(seed))
                for start in range(0, samples, 4):
                    n = min(4, samples - start)
                    collect(network(x.expand(n, *x.shape[1:]),
                                    mask=None if mask is None else mask.expand(n, *mask.shape[1:]),
                                    metrics=None if m is None else m.expand(n, -1)))
        finally:
            _enable_dropout(network, False)
    else:
        for k in range(samples):
            flip, shift = k % 2 == 1, (k // 2) % 3 - 1
            xs = _augment(x, flip, shift)
            ms = None if mask is None else _augment(mask, flip, shift)
            collect(network(xs, mask=ms, metrics=m))

    def stacked(name: str) -> Optional[np.ndarray]:
        return torch.cat(collected[name]).cpu().numpy() if collected[name] else None

    return Prediction(segmentation=segmentation, outcome_samples=stacked("outcome"),
                      class_samples=stacked("classes"), box=box, survival_samples=stacked("survival"),
                      features=features)


def _augment(x: torch.Tensor, flip: bool, shift: int) -> torch.Tensor:
    """Left-right flip (x axis, last dimension) and a shift of ``shift`` voxels along it."""
    if flip:
        x = torch.flip(x, dims=[-1])
    if shift:
        x = torch.roll(x, shifts=shift, dims=-1)
    return x

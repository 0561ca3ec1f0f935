"""MONAI datasets of lesion crops: loading (cached) and augmentation (random, per epoch).

A case is loaded once through the engine (PET in SUV, mask onto the PET grid), cropped around the
lesion at the model's spacing with a margin for random shifts, and normalised; MONAI then crops the
network input from it with random shifts and flips.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
import SimpleITK as sitk
import torch
from monai.data import CacheDataset
from monai.transforms import (CenterSpatialCropd, Compose, MapTransform, RandAffined, RandCropByPosNegLabeld,
                              RandFlipd, RandGaussianNoised, RandScaleIntensityd, RandSpatialCropd,
                              SpatialPadd, Transform)

from MTLRadiomicsLib import load_pet
from MTLRadiomicsLib.pet_input.masks import load_mask
from MTLRadiomicsLib.model.model_card import Preprocessing
from MTLRadiomicsLib.model.preprocessing import extract_crop, hottest_point_lps, mask_center_lps, normalise_suv
from training.manifest import CaseRecord

SHIFT_MARGIN = 4        # voxels loaded beyond the crop on each side, for random shifts
SAMPLINGS = ("lesion", "patches", "mixed")
PATCHES_PER_CASE = 4    # "patches": windows drawn from each case per epoch (2 on the tumour, 1 beside it)


class LoadCase(Transform):
    """CaseRecord -> dict of arrays: image (C, D, H, W) normalised, mask (1, D, H, W) uint8 and
    labels with has_* flags. The crop is ``crop_size + 2 * margin`` voxels."""

    def __init__(self, preprocessing: Preprocessing, in_channels: int, margin: int):
        self.pre = preprocessing
        self.in_channels = in_channels
        self.margin = margin

    def __call__(self, record: CaseRecord) -> dict[str, Any]:
        pet = load_pet(record.pet)
        image = pet.to_sitk()
        mask = load_mask(record.mask, pet) if record.mask else None
        if record.center_lps is not None:
            center = record.center_lps
        elif mask is not None:
            center = mask_center_lps(mask, image)
        else:
            center = hottest_point_lps(pet.suv, image)
        size = [s + 2 * self.margin for s in self.pre.crop_size]
        suv = extract_crop(image, center, self.pre.spacing_mm, size)
        channels = [normalise_suv(suv, self.pre)]
        if self.in_channels == 2:
            if not record.ct:
                raise ValueError(f"case {record.case_id}: the model takes PET + CT but the manifest has no ct")
            ct = extract_crop(sitk.ReadImage(record.ct, sitk.sitkFloat32), center, self.pre.spacing_mm, size)
            channels.append((np.clip(ct, -1000.0, 1000.0) / 1000.0).astype(np.float32))
        item = _labels(record, mask is not None)
        item["image"] = np.stack(channels)
        item["metrics"] = _metrics(pet, mask)
        if mask is not None:
            mask_image = pet.copy_geometry_to(sitk.GetImageFromArray(mask))
            item["mask"] = extract_crop(mask_image, center, self.pre.spacing_mm, size, nearest=True)[None]
        else:
            item["mask"] = np.zeros([1] + size, dtype=np.uint8)
        return item


class LoadWholeCase(LoadCase):
    """CaseRecord -> the whole case on an LPS grid at the model's spacing covering the PET:
    image (C, D, H, W) normalised, mask (1, D, H, W) uint8 (zeros without a mask), labels, and
    ``reference`` facts (origin, spacing, size) to map predictions back."""

    def __call__(self, record: CaseRecord) -> dict[str, Any]:
        from MTLRadiomicsLib.mtv.network_mtv import pet_bounds_lps

        pet = load_pet(record.pet)
        image = pet.to_sitk()
        lo, hi = pet_bounds_lps(pet)
        spacing = np.asarray(self.pre.spacing_mm, dtype=float)
        size = np.maximum(np.ceil((hi - lo) / spacing).astype(int), 1)
        center = (lo + hi) / 2.0
        crop = [int(n) for n in size[::-1]]
        suv = extract_crop(image, center, self.pre.spacing_mm, crop)
        if self.in_channels == 2:
            raise ValueError("whole-case sampling takes PET only")
        mask = load_mask(record.mask, pet) if record.mask else None
        item = _labels(record, mask is not None)
        item["image"] = normalise_suv(suv, self.pre)[None]
        item["metrics"] = _metrics(pet, mask)
        if mask is not None:
            mask_image = pet.copy_geometry_to(sitk.GetImageFromArray(mask))
            item["mask"] = extract_crop(mask_image, center, self.pre.spacing_mm, crop, nearest=True)[None]
        else:
            item["mask"] = np.zeros([1] + crop, dtype=np.uint8)
        return item


def _metrics(pet, mask) -> np.ndarray:
    """The PET metric features (4,) of the case's reference mask on the PET grid (zeros without one)."""
    from MTLRadiomicsLib.model.metric_features import N_METRIC_FEATURES, metric_vector
    from MTLRadiomicsLib.mtv.pet_metrics import compute_metrics

    if mask is None or not np.asarray(mask).any():
        return np.zeros(N_METRIC_FEATURES, np.float32)
    return metric_vector(compute_metrics(pet.suv, mask, pet.spacing).to_dict())


def _labels(record: CaseRecord, has_mask: bool) -> dict[str, Any]:
    return {
        "case_id": record.case_id,
        "has_mask": has_mask,
        "pathology": record.pathology if record.pathology is not None else 0,
        "has_pathology": record.pathology is not None,
        "response": float(record.response) if record.response is not None else 0.0,
        "has_response": record.response is not None,
        "time": float(record.time) if record.time is not None else 0.0,
        "event": int(record.event) if record.event is not None else 0,
        "has_survival": record.time is not None and record.event is not None,
    }


class AddBox(MapTransform):
    """Box target (6,) from the mask: centre (z, y, x) and size as fractions of the crop."""

    def __init__(self) -> None:
        super().__init__(keys=["mask"])

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        mask = np.asarray(d["mask"])[0] > 0
        shape = np.asarray(mask.shape, dtype=np.float32)
        if mask.any():
            where = np.argwhere(mask)
            lo, hi = where.min(axis=0), where.max(axis=0) + 1
            box = np.concatenate([(lo + hi) / 2.0 / shape, (hi - lo) / shape]).astype(np.float32)
            d["has_box"] = bool(d["has_mask"])
        else:
            box = np.zeros(6, np.float32)
            d["has_box"] = False
        d["box"] = box
        return d


class ToTensors(MapTransform):
    """Arrays and labels to tensors of fixed dtypes (image float32, mask float32)."""

    def __init__(self) -> None:
        super().__init__(keys=["image"])

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        d["image"] = torch.as_tensor(np.asarray(d["image"]), dtype=torch.float32)
        d["mask"] = torch.as_tensor(np.asarray(d["mask"]), dtype=torch.float32)
        d["box"] = torch.as_tensor(d["box"], dtype=torch.float32)
        d["metrics"] = torch.as_tensor(np.asarray(d["metrics"]), dtype=torch.float32)
        for key in ("has_mask", "has_pathology", "has_response", "has_survival", "has_box"):
            d[key] = torch.tensor(bool(d[key]))
        d["pathology"] = torch.tensor(int(d["pathology"]))
        d["response"] = torch.tensor(float(d["response"]))
        d["time"] = torch.tensor(float(d["time"]))
        d["event"] = torch.tensor(int(d["event"]))
        return d


class SegmentationOnly(MapTransform):
    """Patches drawn anywhere in a case train the segmentation (and reconstruction) only: their
    pathology, outcome and survival labels are switched off (those heads see the lesion crop)."""

    def __init__(self) -> None:
        super().__init__(keys=["image"])

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        d["has_pathology"] = d["has_response"] = d["has_survival"] = False
        return d


class AsList(Transform):
    """One item as a list of one, so that it batches with the patch lists."""

    def __call__(self, data: Any) -> list:
        return data if isinstance(data, list) else [data]


class MixedDataset(torch.utils.data.ConcatDataset):
    """Per case and epoch: ``PATCHES_PER_CASE`` windows for the segmentation and one lesion crop for
    every task (sampling "mixed"). ``transform.set_random_state`` reaches both parts."""

    def __init__(self, patches: CacheDataset, lesion: CacheDataset):
        super().__init__([patches, lesion])
        self.transform = _BothTransforms(patches.transform, lesion.transform)


class _BothTransforms:
    def __init__(self, *transforms: Compose):
        self.transforms = transforms

    def set_random_state(self, seed: int) -> None:
        for offset, transform in enumerate(self.transforms):
            transform.set_random_state(seed=(seed + offset) % (2 ** 32))


def build_dataset(records: list[CaseRecord], preprocessing: Preprocessing, in_channels: int,
                  augment: bool, cache_rate: float = 1.0, num_workers: int = 0,
                  sampling: str = "lesion", patches_per_case: int = PATCHES_PER_CASE):
    """A CacheDataset: loading and cropping cached; shifts, flips, intensity scaling and noise
    drawn anew each time when ``augment``.

    ``sampling`` "lesion": one crop around the lesion (its mask's centre) per case; "patches": the
    whole case is loaded and each item is a list of ``patches_per_case`` windows, two centred on
    tumour voxels for one beside them (segmentation of lesions larger than the field of view).
    Without ``augment``, "patches" gives the whole case (padded to the crop size at least) for
    sliding-window validation. "mixed" (training only): both, as a ``MixedDataset`` whose patches
    train the segmentation and whose lesion crops train every task."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, not {sampling!r}")
    crop = list(preprocessing.crop_size)
    keys = ["image", "mask"]
    if sampling == "mixed":
        if not augment:
            raise ValueError("mixed sampling is for training; validate with 'patches' and 'lesion'")
        patches = build_dataset(records, preprocessing, in_channels, True, cache_rate, num_workers, "patches",
                                patches_per_case)
        patches.transform = Compose([*patches.transform.transforms[:-1], SegmentationOnly(),
                                     patches.transform.transforms[-1]])
        lesion = build_dataset(records, preprocessing, in_channels, True, cache_rate, num_workers, "lesion")
        lesion.transform = Compose([*lesion.transform.transforms, AsList()])
        return MixedDataset(patches, lesion)
    if sampling == "patches":
        steps: list = [LoadWholeCase(preprocessing, in_channels, 0), SpatialPadd(keys, spatial_size=crop)]
        if augment:
            steps += [
                RandCropByPosNegLabeld(keys, label_key="mask", spatial_size=crop, pos=2, neg=1,
                                       num_samples=patches_per_case),
                RandAffined(keys, prob=0.3, rotate_range=(0.2, 0.2, 0.2), scale_range=(0.1, 0.1, 0.1),
                            mode=("bilinear", "nearest"), padding_mode="zeros"),
                RandFlipd(keys, prob=0.5, spatial_axis=2),
                RandScaleIntensityd("image", factors=0.15, prob=0.5),
                RandGaussianNoised("image", prob=0.3, std=0.01),
            ]
        steps += [AddBox(), ToTensors()]
        return CacheDataset(records, transform=Compose(steps), cache_rate=cache_rate,
                            num_workers=num_workers, progress=False, copy_cache=True)
    steps = [LoadCase(preprocessing, in_channels, SHIFT_MARGIN)]
    if augment:
        steps += [
            RandSpatialCropd(keys, roi_size=crop, random_size=False),
            RandFlipd(keys, prob=0.5, spatial_axis=2),                 # left-right
            RandScaleIntensityd("image", factors=0.1, prob=0.5),
            RandGaussianNoised("image", prob=0.3, std=0.01),
        ]
    else:
        steps.append(CenterSpatialCropd(keys, roi_size=crop))
    steps += [AddBox(), ToTensors()]
    return CacheDataset(records, transform=Compose(steps), cache_rate=cache_rate,
                        num_workers=num_workers, progress=False, copy_cache=True)

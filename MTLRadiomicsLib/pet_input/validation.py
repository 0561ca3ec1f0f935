"""Checks that refuse what is not a usable 3-D PET volume in SUV, with one-line reasons."""

from __future__ import annotations

import numpy as np

from MTLRadiomicsLib.errors import PetInputError

MIN_SLICES = 4               # fewer voxels than this along an axis: a 2-D image, not a volume
NEGATIVE_SUV_LIMIT = -1.0    # SUV below this in more than NEGATIVE_FRACTION of voxels: not PET
NEGATIVE_FRACTION = 0.005
CT_AIR_LIMIT = -500.0        # Hounsfield-like air values
MAX_PLAUSIBLE_SUV = 500.0    # FDG SUVs stay far below this; larger values are Bq/ml or counts


def check_dimensions(size_xyz: tuple[int, ...], what: str) -> None:
    """Refuse 2-D, 4-D and empty images. ``size_xyz`` is the image size in SimpleITK order."""
    if len(size_xyz) == 4:
        raise PetInputError(
            f"{what} is 4-D ({'x'.join(map(str, size_xyz))}: dynamic or multi-frame PET); "
            "export one static frame as a 3-D volume")
    if len(size_xyz) != 3:
        raise PetInputError(f"{what} is {len(size_xyz)}-D; a 3-D PET volume is needed")
    if min(size_xyz) == 0:
        raise PetInputError(f"{what} is empty (size {'x'.join(map(str, size_xyz))})")
    if min(size_xyz) < MIN_SLICES:
        raise PetInputError(
            f"{what} has size {'x'.join(map(str, size_xyz))}: a 2-D image or a few slices, not a "
            f"3-D PET volume (at least {MIN_SLICES} voxels per axis)")


def check_spacing(spacing: tuple[float, ...], what: str) -> None:
    """Refuse zero, negative or absurd voxel sizes (mm)."""
    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        raise PetInputError(f"{what} has invalid voxel spacing {tuple(spacing)} mm")
    if max(spacing) > 50.0:
        raise PetInputError(f"{what} has voxel spacing {tuple(spacing)} mm, too coarse for PET")


def check_suv_values(suv: np.ndarray, what: str) -> None:
    """Refuse NaN/inf, empty, CT-like, strongly negative or non-SUV magnitudes."""
    finite = np.isfinite(suv)
    if not finite.all():
        bad = int((~finite).sum())
        raise PetInputError(f"{what} has {bad} NaN or infinite voxels; fix or re-export the image")
    vmax, vmin = float(suv.max()), float(suv.min())
    air_fraction = float((suv < CT_AIR_LIMIT).mean())
    if air_fraction > 0.05:
        raise PetInputError(
            f"{what} looks like CT in Hounsfield units ({air_fraction:.0%} of voxels below "
            f"{CT_AIR_LIMIT:g}); give the PET series, not the CT")
    if vmax <= 0.0:
        raise PetInputError(f"{what} holds no positive uptake (maximum {vmax:g}): the image is empty")
    negative_fraction = float((suv < NEGATIVE_SUV_LIMIT).mean())
    if negative_fraction > NEGATIVE_FRACTION:
        raise PetInputError(
            f"{what} has {negative_fraction:.1%} of voxels with SUV below {NEGATIVE_SUV_LIMIT:g} "
            f"(minimum {vmin:g}): not a PET volume in SUV")
    if vmax > MAX_PLAUSIBLE_SUV:
        raise PetInputError(
            f"{what} reaches {vmax:g}, far above any FDG SUV: the values look like Bq/ml or counts; "
            "pass --input-units bqml with --weight, --dose and --decay-corrected-to to convert them")

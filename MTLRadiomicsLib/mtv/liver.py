"""The PERCIST liver reference: a 3 cm sphere in the right liver lobe, found automatically.

The PET is re-oriented to LPS axes (x towards the patient's Left, y Posterior, z Superior),
averaged in blocks of about 7 mm and smoothed (5 mm Gaussian). The liver's interior is the
largest homogeneous region of moderate uptake (local SD below 10 % of the local mean over 3 cm,
smoothed SUV 1-4.5) right of the midline of a trunk-wide body part; the liver is the smoothed SUV
within 0.75-1.4 x that region's median, connected to it and opened (thin bridges to neighbouring
organs cut). It must hold 800-4000 ml and have lung above its dome. The sphere goes where the
right part of the liver is deepest, away from its border and from hotter tissue; its mean and
(sample) SD are of the unsmoothed SUV on the original grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from MTLRadiomicsLib.localisation.body import Body, find_body, smooth
from MTLRadiomicsLib.localisation.geometry import OrientedPet
from MTLRadiomicsLib.localisation.organ_rules import HEAD_WIDTH_MM
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

RADIUS_MM = 15.0               # the reference sphere: 3 cm diameter
SEARCH_VOXEL_MM = 7.0          # the search runs on block means of about this size (mm)
SMOOTHING_MM = 5.0             # Gaussian sigma before the liver is looked for
WINDOW_MM = 30.0               # homogeneity: SD of the smoothed SUV in a cube of this edge
HOMOGENEITY_CV = 0.10          # liver interior: local SD below this fraction of the local mean
UPTAKE_SUV = (1.0, 4.5)        # liver-like smoothed SUV
MIN_CORE_ML = 50.0             # the homogeneous interior is at least this large
BAND = (0.75, 1.4)             # the liver: smoothed SUV within these fractions of its level
OPENINGS_MM = (12.0, 16.0, 20.0, 25.0)  # opening radii, tried until the liver is not too big
LIVER_ML = (800.0, 4000.0)     # a liver (about 1-3.5 l), with any touching organ of its uptake
LIVER_TARGET_ML = 3500.0       # the opening grows until the region is no larger than this
SPHERE_BAND = (0.8, 1.25)      # sphere voxels: smoothed SUV within these fractions of the level
HOT_FACTOR = 1.5               # hotter tissue: smoothed SUV above this x level ...
HOT_MARGIN_MM = 10.0           # ... is kept at least this far from the sphere
BORDER_MARGIN_MM = 5.0         # the sphere keeps this far from the liver's border
LUNG_RATIO = 0.5               # lung above the dome: smoothed SUV below this x level
LUNG_SEARCH_MM = 60.0          # ... within this height above the dome
MAX_SPHERE_CV = 0.3            # SD / mean in the sphere beyond this: not normal liver


@dataclass
class LiverReference:
    """Mean and sample SD of the SUV (g/ml) over the voxels whose centres lie in a sphere
    (centre LPS mm, radius mm) in the right liver lobe; ``voxels``: their number."""

    mean: float
    sd: float
    center_lps: tuple[float, float, float]
    radius_mm: float
    voxels: int
    note: str

    @property
    def percist_threshold(self) -> float:
        """PERCIST threshold, SUV: 1.5 x liver mean + 2 x liver SD."""
        return 1.5 * self.mean + 2.0 * self.sd

    def to_dict(self) -> dict:
        out = asdict(self)
        out["center_lps"] = [float(v) for v in self.center_lps]
        out["percist_threshold"] = self.percist_threshold
        return out


def find_liver_reference(pet: PetVolume) -> tuple[LiverReference | None, str]:
    """The liver reference sphere of a PET (any direction matrix), or (None, reason) when the
    field of view holds no liver or the candidate is implausible."""
    oriented = OrientedPet.from_pet(pet)
    suv = np.nan_to_num(oriented.suv, nan=0.0, posinf=0.0, neginf=0.0)
    factors = np.maximum(1, np.floor(SEARCH_VOXEL_MM / oriented.spacing_zyx)).astype(int)
    coarse = _block_mean(suv, factors)
    spacing_zyx = oriented.spacing_zyx * factors
    spacing_xyz = tuple(float(s) for s in spacing_zyx[::-1])
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    body = find_body(smooth(coarse, spacing_xyz), spacing_xyz)  # type: ignore[arg-type]
    heavy = smooth(coarse, spacing_xyz, SMOOTHING_MM)  # type: ignore[arg-type]

    core, level = _homogeneous_core(heavy, body, spacing_zyx, voxel_ml)
    if core is None:
        return None, ("no liver in the field of view: no large homogeneous region of moderate "
                      f"uptake (SUV {UPTAKE_SUV[0]:g}-{UPTAKE_SUV[1]:g}) on the patient's right")
    width, side = _trunk_position(body, _nearest_voxel(core))
    if width < HEAD_WIDTH_MM or side >= 0.0:
        where = ("narrower than a trunk" if width < HEAD_WIDTH_MM
                 else "on the patient's left of the trunk")
        return None, (f"no liver in the field of view: the candidate region lies in a body "
                      f"part {width:.0f} mm wide, {where}")
    liver = _liver_region(heavy, body.mask, core, level, spacing_zyx, voxel_ml)
    volume = float(liver.sum()) * voxel_ml
    if not LIVER_ML[0] <= volume <= LIVER_ML[1]:
        return None, (f"no plausible liver: the candidate region of uptake {level:.1f} SUV holds "
                      f"{volume:.0f} ml, outside {LIVER_ML[0]:.0f}-{LIVER_ML[1]:.0f} ml")
    centre = _sphere_centre(heavy, body.mask, liver, level, spacing_zyx)
    if centre is None:
        return None, ("no plausible liver: no place in it for a 3 cm sphere away from its "
                      "border and from hotter tissue")
    if not _lung_above(heavy, body.mask, liver, centre, level, spacing_zyx):
        return None, (f"no liver confirmed: the candidate region ({volume:.0f} ml) has no lung "
                      "above it; the field of view may cut the liver")
    full = tuple(int(c * f + (f - 1) // 2) for c, f in zip(centre, factors))
    sphere = _ball(suv.shape, full, oriented.spacing_zyx, RADIUS_MM)
    values = suv[sphere].astype(np.float64)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    if mean <= 0 or sd / mean > MAX_SPHERE_CV:
        return None, (f"no plausible liver: the reference sphere is too heterogeneous "
                      f"(SD {sd:.2f} for mean {mean:.2f} SUV)")
    note = (f"3 cm sphere in the right liver lobe (liver about {volume:.0f} ml, smoothed "
            f"uptake {level:.2f} SUV); mean and SD of the unsmoothed SUV")
    return LiverReference(mean=mean, sd=sd, center_lps=oriented.to_physical(full),
                          radius_mm=RADIUS_MM, voxels=int(sphere.sum()), note=note), ""


def _homogeneous_core(heavy: np.ndarray, body: Body, spacing_zyx: np.ndarray, voxel_ml: float
                      ) -> tuple[np.ndarray | None, float]:
    """The largest homogeneous region of liver-like uptake right of the body midline (bool
    (z, y, x)) and its median smoothed SUV; (None, 0) when there is none."""
    size = [max(3, int(np.rint(WINDOW_MM / s)) | 1) for s in spacing_zyx]
    mean = ndimage.uniform_filter(heavy, size, mode="nearest")
    square = ndimage.uniform_filter(heavy * heavy, size, mode="nearest")
    sd = np.sqrt(np.maximum(square - mean * mean, 0.0))
    homogeneous = (body.mask & (mean >= UPTAKE_SUV[0]) & (mean <= UPTAKE_SUV[1])
                   & (sd < HOMOGENEITY_CV * mean))
    labels, n = ndimage.label(homogeneous)
    if n == 0:
        return None, 0.0
    where = np.nonzero(labels)
    numbers = labels[where]
    counts = np.bincount(numbers, minlength=n + 1).astype(float)
    centroids = np.stack([np.bincount(numbers, weights=w, minlength=n + 1) for w in where], axis=1)
    centroids[1:] /= counts[1:, None]
    best, best_size = 0, MIN_CORE_ML
    for number in range(1, n + 1):
        x_rel, _ = body.relative_position(centroids[number] * spacing_zyx)
        if x_rel < 0.0 and counts[number] * voxel_ml >= best_size:
            best, best_size = number, counts[number] * voxel_ml
    if best == 0:
        return None, 0.0
    core = labels == best
    return core, float(np.median(heavy[core]))


def _liver_region(heavy: np.ndarray, body_mask: np.ndarray, core: np.ndarray, level: float,
                  spacing_zyx: np.ndarray, voxel_ml: float) -> np.ndarray:
    """The liver: smoothed SUV within ``BAND`` x level, opened, connected to the core; the
    opening radius grows until the region is no larger than a liver can be."""
    band = body_mask & (heavy >= BAND[0] * level) & (heavy <= BAND[1] * level)
    labels, _ = ndimage.label(band)
    band &= np.isin(labels, np.unique(labels[core & band]))
    box = _box(band, np.ceil(max(OPENINGS_MM) / spacing_zyx).astype(int) + 1)
    local_band, local_core = band[box], core[box]
    depth = ndimage.distance_transform_edt(np.pad(local_band, 1), sampling=spacing_zyx)[
        1:-1, 1:-1, 1:-1]
    region = local_band
    for radius in OPENINGS_MM:
        kept = depth > radius
        parts, _ = ndimage.label(kept)
        kept = np.isin(parts, np.unique(parts[kept & local_core]))
        if not kept.any():
            break
        reach = ndimage.distance_transform_edt(~kept, sampling=spacing_zyx)
        region = local_band & (reach <= radius)
        if float(region.sum()) * voxel_ml <= LIVER_TARGET_ML:
            break
    out = np.zeros(band.shape, bool)
    out[box] = region
    return out


def _sphere_centre(heavy: np.ndarray, body_mask: np.ndarray, liver: np.ndarray, level: float,
                   spacing_zyx: np.ndarray) -> tuple[int, int, int] | None:
    """Index (z, y, x) where the right part of the liver is deepest: the sphere keeps clear of
    the liver's border, of non-liver uptake inside it and of hotter tissue nearby."""
    pad = np.ceil((RADIUS_MM + HOT_MARGIN_MM + BORDER_MARGIN_MM) / spacing_zyx).astype(int) + 1
    box = _box(liver, pad)
    local = heavy[box]
    allowed = liver[box] & (local >= SPHERE_BAND[0] * level) & (local <= SPHERE_BAND[1] * level)
    hot = body_mask[box] & (local > HOT_FACTOR * level)
    if hot.any():
        allowed &= ndimage.distance_transform_edt(~hot, sampling=spacing_zyx) > HOT_MARGIN_MM
    depth = ndimage.distance_transform_edt(np.pad(allowed, 1), sampling=spacing_zyx)[
        1:-1, 1:-1, 1:-1]
    need = RADIUS_MM + BORDER_MARGIN_MM
    x_centre = np.nonzero(liver[box])[2].mean()
    right = np.zeros_like(allowed)
    right[:, :, : int(np.floor(x_centre)) + 1] = True
    for where in (right, np.ones_like(allowed)):
        candidate = np.where(where, depth, 0.0)
        index = np.unravel_index(int(np.argmax(candidate)), candidate.shape)
        if candidate[index] >= need:
            return tuple(int(i + s.start) for i, s in zip(index, box))  # type: ignore[return-value]
    return None


def _nearest_voxel(mask: np.ndarray) -> tuple[int, int, int]:
    """The voxel (z, y, x) of a non-empty mask nearest its centroid."""
    where = np.argwhere(mask)
    nearest = np.argmin(((where - where.mean(axis=0)) ** 2).sum(axis=1))
    return tuple(int(v) for v in where[nearest])  # type: ignore[return-value]


def _trunk_position(body: Body, centre: tuple[int, int, int]) -> tuple[float, float]:
    """Width (mm) of the body part (axial slice) holding ``centre``, 0 when the part runs off
    both sides of the field of view (a crop), and the centre's offset from the part's midline in
    half-widths (+ = Left)."""
    k, j, i = centre
    labels, _ = ndimage.label(body.mask[k])
    columns = np.flatnonzero((labels == labels[j, i]).any(axis=0)) if labels[j, i] else []
    if len(columns) == 0 or (columns[0] == 0 and columns[-1] == labels.shape[1] - 1):
        return 0.0, 0.0
    half = (columns[-1] - columns[0] + 1) / 2.0
    return float(2.0 * half * body.spacing[0]), float((i - (columns[0] + columns[-1]) / 2.0) / half)


def _lung_above(heavy: np.ndarray, body_mask: np.ndarray, liver: np.ndarray,
                centre: tuple[int, int, int], level: float, spacing_zyx: np.ndarray) -> bool:
    """Whether lung (smoothed SUV below ``LUNG_RATIO`` x level, inside the body) lies within
    ``LUNG_SEARCH_MM`` above the liver's dome, over a 2 cm wide column through the sphere centre."""
    k, j, i = centre
    hy, hx = (max(1, int(np.rint(10.0 / s))) for s in spacing_zyx[1:])
    rows = slice(max(j - hy, 0), j + hy + 1)
    columns = slice(max(i - hx, 0), i + hx + 1)
    in_liver = liver[:, rows, columns].any(axis=(1, 2))
    above = np.flatnonzero(~in_liver[k:])
    if above.size == 0:
        return False
    dome = k + int(above[0])
    top = min(dome + int(np.ceil(LUNG_SEARCH_MM / spacing_zyx[0])), heavy.shape[0])
    inside = body_mask[dome:top, rows, columns]
    counts = inside.sum(axis=(1, 2))
    profile = (heavy[dome:top, rows, columns] * inside).sum(axis=(1, 2))[counts > 0]
    profile = profile / counts[counts > 0]
    return bool(profile.size) and float(profile.min()) < LUNG_RATIO * level


def _block_mean(suv: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Mean SUV over blocks of ``factors`` voxels (z, y, x); a partial last block is dropped."""
    if np.all(factors == 1):
        return suv
    n = (np.asarray(suv.shape) // factors) * factors
    blocks = suv[: n[0], : n[1], : n[2]].reshape(n[0] // factors[0], factors[0], n[1] // factors[1],
                                                 factors[1], n[2] // factors[2], factors[2])
    return blocks.mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)


def _box(mask: np.ndarray, pad: np.ndarray) -> tuple[slice, slice, slice]:
    """Bounding box (z, y, x) of a non-empty mask, padded by ``pad`` voxels per axis."""
    where = np.argwhere(mask)
    lo = np.maximum(where.min(axis=0) - pad, 0)
    hi = np.minimum(where.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _ball(shape: tuple[int, ...], centre: tuple[int, int, int], spacing_zyx: np.ndarray,
          radius_mm: float) -> np.ndarray:
    """Voxels (bool (z, y, x)) whose centres lie within ``radius_mm`` of the voxel ``centre``."""
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    distance2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grids, centre, spacing_zyx))
    return distance2 <= radius_mm ** 2

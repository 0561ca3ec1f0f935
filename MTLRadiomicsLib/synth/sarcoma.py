"""Soft-tissue sarcoma: a large, lobulated, heterogeneous tumour in a limb (thigh most often, calf,
upper arm), the buttock or the trunk wall; 15 ml to 2.5 l; a viable rim around a necrotic core of
any size, up to a thin avid ring around a centre near background; hot foci of higher grade.

Ground truth: the whole tumour (GTV = viable rim + necrotic core), see ``gtv_lesion``.
The anatomy must come from ``limbs.extend_limbs`` (legs to the ankle, long bones). LPS mm, SUV.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from MTLRadiomicsLib.synth.anatomy import Anatomy
from MTLRadiomicsLib.synth.gtv_lesion import GtvLesion, Halo, TumourUptake
from MTLRadiomicsLib.synth.lesions import LATENT_CORRELATION, LATENT_NAMES, CosineTexture
from MTLRadiomicsLib.synth.placement import (build_shape, check_points, fits, hot_foci,
                                             local_lobes, union_volume_ml)
from MTLRadiomicsLib.synth.sarcoma_sites import PLACERS
from MTLRadiomicsLib.synth.shapes import Ellipsoid, Union

SITE_WEIGHTS = {"thigh": 0.60, "buttock": 0.12, "calf": 0.11, "upper_arm": 0.09, "trunk_wall": 0.08}
SITE_MAX_ML = {"thigh": 2500.0, "buttock": 2000.0, "calf": 900.0, "upper_arm": 450.0,
               "trunk_wall": 700.0}
# GTV volume: log-normal around the median, wider below it than above (as the real cohort),
# clipped to [min, the site's maximum].
VOLUME_MEDIAN_ML, VOLUME_LOG_SD_BELOW, VOLUME_LOG_SD_ABOVE, VOLUME_MIN_ML = 390.0, 1.4, 0.85, 14.0
# Uptake. High grade: peak (viable uptake plus the hottest focus, SUV) log-normal (median, log sd,
# clipped to min-max), viable uptake a share of it. Low grade (myxoid-like): viable uptake 0.8-2
# SUV, hot foci give the SUVmax.
LOW_GRADE_FRACTION = 0.22
HIGH_GRADE_PEAK = (16.0, 0.5, 4.0, 26.0)
HIGH_GRADE_RATIO = (0.3, 0.75)
LOW_GRADE_PEAK = (10.0, 0.5, 3.2, 22.0)
LOW_GRADE_VIABLE = (0.8, 2.0)
HETEROGENEITY = (0.35, 0.45)         # texture amplitude = a + b * Phi(latent)
# Necrosis: P = Phi(slope * latent + size slope * log(V / size ml)); its volume share in
# [lo, hi] via Phi(latent + noise - shift); the viable rim is at least MIN_RIM_MM thick.
NECROSIS_LATENT_SLOPE, NECROSIS_SIZE_SLOPE, NECROSIS_SIZE_ML = 0.8, 0.5, 150.0
NECROSIS_FRACTION, NECROSIS_FRACTION_SHIFT = (0.05, 0.75), 0.8
MIN_RIM_MM = 5.0
CORE_SUV = (0.4, 1.8)
# Peritumoral reactive halo (outside the GTV): probability, thickness (mm), uptake at the surface.
HALO_PROBABILITY, HALO_MM, HALO_SUV = 0.85, (5.0, 20.0), (1.5, 3.5)
def _shape_local(rng: np.random.Generator, site: str, volume_ml: float
                 ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Semi-axes (radial, tangential, axial) and lobes scaled to ``volume_ml``."""
    if site == "trunk_wall":
        semi = np.array([rng.uniform(0.45, 0.7), 1.0, rng.uniform(0.9, 1.4)])
    else:
        semi = np.array([1.0, rng.uniform(1.0, 1.35), rng.uniform(1.1, 2.1)])
    lobes = local_lobes(rng, semi, int(rng.integers(1, 6)))
    scale = (volume_ml / union_volume_ml(semi, lobes)) ** (1.0 / 3.0)
    return semi * scale, [(o * scale, s * scale) for o, s in lobes]


def sample_sarcoma(rng: np.random.Generator, anatomy: Anatomy) -> GtvLesion:
    """Draw one sarcoma (its site, shape, uptake) in ``anatomy`` (extended by ``extend_limbs``)."""
    latent_values = np.linalg.cholesky(LATENT_CORRELATION) @ rng.normal(size=len(LATENT_NAMES))
    latent = dict(zip(LATENT_NAMES, (float(v) for v in latent_values)))
    sites = list(SITE_WEIGHTS)
    site = sites[int(rng.choice(len(sites), p=list(SITE_WEIGHTS.values())))]
    name = "right" if rng.uniform() < 0.5 else "left"
    size = latent["size"]
    log_sd = VOLUME_LOG_SD_BELOW if size < 0 else VOLUME_LOG_SD_ABOVE
    volume = float(np.clip(VOLUME_MEDIAN_ML * np.exp(log_sd * size),
                           VOLUME_MIN_ML, SITE_MAX_ML[site]))
    semi, lobes = _shape_local(rng, site, volume)
    for attempt in range(240):
        if attempt and attempt % 60 == 0:  # no room: a smaller tumour
            semi, lobes = semi * 0.85, [(o * 0.85, s * 0.85) for o, s in lobes]
        centre, rotation, forbidden = PLACERS[site](rng, anatomy, name, semi)
        if fits(anatomy, check_points(centre, rotation, semi, lobes), forbidden):
            break
    main, lobe_shapes = build_shape(centre, rotation, semi, lobes)
    uptake, low_grade = _sample_uptake(rng, latent, main, lobe_shapes, volume)
    halo = None
    if rng.uniform() < HALO_PROBABILITY:
        r_eq = (3.0 * volume * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
        thickness = min(float(rng.uniform(*HALO_MM)), anatomy.body["fat_mm"] + 2.0, r_eq)
        halo = Halo(uptake.shape, thickness, float(rng.uniform(*HALO_SUV)),
                    anatomy.uptakes["muscle"], CosineTexture.sample(rng, centre, 10, (10.0, 30.0)))
    return GtvLesion(pathology="sarcoma", site=site, main=main, lobes=lobe_shapes, uptake=uptake,
                     findings=[], latent=latent, details={"side": name, "low_grade": low_grade},
                     halo=halo)


def _sample_uptake(rng: np.random.Generator, latent: dict[str, float], main: Ellipsoid,
                   lobes: list[Ellipsoid], volume_ml: float) -> tuple[TumourUptake, bool]:
    """Viable uptake, hot foci, texture and necrosis of a sarcoma (SUV, mm); and whether it is
    of the low-grade (myxoid-like) kind."""
    r_eq = (3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    low_grade = rng.uniform() < LOW_GRADE_FRACTION
    median, log_sd, lo, hi = LOW_GRADE_PEAK if low_grade else HIGH_GRADE_PEAK
    peak = float(np.clip(median * np.exp(log_sd * latent["suv"]), lo, hi))
    if low_grade:
        viable = float(rng.uniform(*LOW_GRADE_VIABLE))
    else:
        viable = peak * float(rng.uniform(*HIGH_GRADE_RATIO))
    heterogeneity = float(HETEROGENEITY[0] + HETEROGENEITY[1] * ndtr(latent["heterogeneity"]))
    p_necrosis = float(ndtr(NECROSIS_LATENT_SLOPE * latent["necrosis"]
                            + NECROSIS_SIZE_SLOPE * np.log(volume_ml / NECROSIS_SIZE_ML)))
    rim = np.inf
    if rng.uniform() < p_necrosis:
        lo_f, hi_f = NECROSIS_FRACTION
        fraction = float(lo_f + (hi_f - lo_f) * ndtr(latent["necrosis"] + rng.normal(0.0, 0.7)
                                                     - NECROSIS_FRACTION_SHIFT))
        semi_gm = float(np.prod(main.semi_axes) ** (1.0 / 3.0))
        rim = max(MIN_RIM_MM, semi_gm * (1.0 - fraction ** (1.0 / 3.0)))
    necrotic = np.isfinite(rim)
    n_foci = 1 + min(int(rng.poisson(0.6)), 3)
    sigma = (float(np.clip(0.08 * r_eq, 4.0, 10.0)), float(np.clip(0.2 * r_eq, 6.0, 16.0)))
    where = (0.7, 0.95) if necrotic else (0.0, 0.85)   # in the rim of a necrotic tumour
    foci = hot_foci(rng, main, n_foci, peak, viable, where, sigma)
    centre = np.asarray(main.centre)
    wavelength = (float(np.clip(0.5 * r_eq, 20.0, 35.0)), float(np.clip(1.2 * r_eq, 40.0, 90.0)))
    return TumourUptake(shape=Union([main, *lobes]), viable_suv=float(viable),
                        heterogeneity=heterogeneity,
                        texture=CosineTexture.sample(rng, centre, 24, wavelength),
                        boundary=CosineTexture.sample(rng, centre, 10, wavelength),
                        rim_mm=float(rim), core_suv=float(rng.uniform(*CORE_SUV)),
                        edge_mm=float(rng.uniform(4.0, 12.0)),
                        edge_level=float(rng.uniform(0.45, 0.9)), foci=foci,
                        ceiling=1.2 * peak), bool(low_grade)

"""Ranking of the FDG-avid regions left after the physiological uptake: how lesion-like each is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from MTLRadiomicsLib.localisation.body import Body
from MTLRadiomicsLib.localisation.regions import Region, shell_background

CONTRAST_WEIGHT = 1.0
PEAK_WEIGHT = 0.5
VOLUME_WEIGHT = 0.1
DIFFUSE_ML = 20.0              # a region at least this large ...
DIFFUSE_PEAK = 1.6             # ... whose SUVmax stays below this multiple of the threshold ...
DIFFUSE_PENALTY = 3.0          # ... is diffuse organ uptake and is ranked this much lower


@dataclass
class Features:
    """What the score is made of."""

    peak: float          # smoothed SUVmax
    background: float    # median smoothed SUV in a shell around the region
    volume_ml: float
    contrast: float      # peak / background


def features(region: Region, smoothed: np.ndarray, body: Body) -> Features:
    shell = shell_background(region, smoothed, body.mask)
    background = max(shell, 0.5 * body.background_suv, 0.05)
    peak = region.suv_max
    return Features(peak=peak, background=background, volume_ml=region.volume_ml,
                    contrast=peak / background)


def score(f: Features, threshold: float) -> float:
    """Higher = more lesion-like: a log-linear mix of the contrast to the surrounding tissue (the
    main term: a lesion stands out from what is around it, a noisy patch of liver does not), the
    SUVmax above the threshold and, weakly, the volume; diffuse organ uptake is pushed down."""
    value = (CONTRAST_WEIGHT * np.log(f.contrast) + PEAK_WEIGHT * np.log(f.peak / threshold)
             + VOLUME_WEIGHT * np.log(max(f.volume_ml, 0.1)))
    if is_diffuse(f, threshold):
        value -= DIFFUSE_PENALTY
    return float(value)


def is_diffuse(f: Features, threshold: float) -> bool:
    """A large region whose uptake hardly rises above the threshold: a warm organ (liver,
    stomach, spleen, bowel) cut by the threshold; a lesion's uptake climbs well above its edge."""
    return f.volume_ml >= DIFFUSE_ML and f.peak < DIFFUSE_PEAK * threshold

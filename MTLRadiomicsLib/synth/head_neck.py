"""Head and neck cancer: a primary in the oropharynx, larynx or oral cavity (about 2-60 ml) with
0-3 FDG-avid cervical lymph nodes along the jugular chain.

Ground truth: the whole primary tumour (GTV-P, viable + necrotic), see ``gtv_lesion``; the nodes
are findings (painted, listed in the facts, not in the mask). LPS mm, SUV.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from MTLRadiomicsLib.synth.anatomy import ORGAN_LABELS, Anatomy
from MTLRadiomicsLib.synth.gtv_lesion import GtvLesion, TumourUptake
from MTLRadiomicsLib.synth.lesions import LATENT_CORRELATION, LATENT_NAMES, CosineTexture, Finding
from MTLRadiomicsLib.synth.placement import (build_shape, check_points, fits, frame, hot_foci,
                                             local_lobes, union_volume_ml)
from MTLRadiomicsLib.synth.shapes import Ellipsoid, Union

SITE_WEIGHTS = {"oropharynx": 0.5, "larynx": 0.3, "oral_cavity": 0.2}
# Nominal centre ranges (x, y, z) in mm; x, y scale with the organ size, z with the height.
SITE_BOXES = {"oropharynx": ((-12, 12), (-14, -2), (-185, -165)),
              "larynx": ((-6, 6), (-26, -14), (-240, -215)),
              "oral_cavity": ((-15, 15), (-50, -35), (-175, -160))}
HN_LABELS = frozenset(ORGAN_LABELS[n] for n in ("fat", "muscle", "gland", "airway"))
NODE_LABELS = frozenset(ORGAN_LABELS[n] for n in ("fat", "muscle", "gland"))


def _centre(rng: np.random.Generator, anatomy: Anatomy, site: str) -> np.ndarray:
    organ, h = anatomy.body["organ_scale"], anatomy.body["height_scale"]
    (x0, x1), (y0, y1), (z0, z1) = SITE_BOXES[site]
    return np.array([rng.uniform(x0, x1) * organ, rng.uniform(y0, y1) * organ,
                     rng.uniform(z0, z1) * h])


def _nodes(rng: np.random.Generator, anatomy: Anatomy, primary: Union, centre: np.ndarray,
           viable_suv: float, count: int) -> list[Finding]:
    """``count`` cervical nodes (radius 5-13 mm), ipsilateral to a lateral primary."""
    organ, h = anatomy.body["organ_scale"], anatomy.body["height_scale"]
    side0 = np.sign(centre[0]) if abs(centre[0]) > 4.0 else (1.0 if rng.uniform() < 0.5 else -1.0)
    findings: list[Finding] = []
    for _ in range(count):
        for _attempt in range(60):
            side = side0 if rng.uniform() < 0.8 else -side0
            radius = float(rng.uniform(5.0, 13.0))
            position = np.array([side * rng.uniform(22.0, 36.0) * organ, rng.uniform(-8.0, 12.0),
                                 rng.uniform(-280.0, -185.0) * h])
            if abs(position[2] - centre[2]) > 90.0:
                continue
            shape = Ellipsoid(position, radius * rng.uniform(0.8, 1.2, size=3))
            gap = float(primary.signed_distance(*(np.array([c]) for c in position))[0]) - radius
            if gap < 3.0 or any(np.linalg.norm(position - np.asarray(f.shape.centre))
                                < radius + max(f.shape.semi_axes) + 3.0 for f in findings):
                continue
            points = check_points(position, np.eye(3), np.asarray(shape.semi_axes), [], (0.8,))
            if not fits(anatomy, points, [], NODE_LABELS):
                continue
            uptake = min(max(viable_suv * rng.uniform(0.4, 0.9), rng.uniform(2.5, 4.5)),
                         0.95 * viable_suv + 1.0)
            findings.append(Finding("node", shape, float(uptake), gap))
            break
    return findings


def sample_head_neck(rng: np.random.Generator, anatomy: Anatomy) -> GtvLesion:
    """Draw one head-and-neck primary with its nodes in ``anatomy``."""
    latent_values = np.linalg.cholesky(LATENT_CORRELATION) @ rng.normal(size=len(LATENT_NAMES))
    latent = dict(zip(LATENT_NAMES, (float(v) for v in latent_values)))
    sites = list(SITE_WEIGHTS)
    site = sites[int(rng.choice(len(sites), p=list(SITE_WEIGHTS.values())))]
    volume = float(np.clip(np.exp(np.log(12.0) + 0.9 * latent["size"]), 2.0, 60.0))
    semi = np.array([1.0, rng.uniform(0.8, 1.2), rng.uniform(0.9, 1.5)])
    lobes = local_lobes(rng, semi, int(rng.integers(0, 4)), away_from_bone=False)
    scale = (volume / union_volume_ml(semi, lobes)) ** (1.0 / 3.0)
    semi, lobes = semi * scale, [(o * scale, s * scale) for o, s in lobes]
    for attempt in range(200):
        if attempt and attempt % 50 == 0:
            semi, lobes = semi * 0.85, [(o * 0.85, s * 0.85) for o, s in lobes]
        centre = _centre(rng, anatomy, site)
        rotation = frame(rng.normal(size=3) + [0, 0, 3.0], rng.normal(size=3))
        if fits(anatomy, check_points(centre, rotation, semi, lobes), [], HN_LABELS):
            break
    main, lobe_shapes = build_shape(centre, rotation, semi, lobes)
    shape = Union([main, *lobe_shapes])
    peak = float(np.clip(np.exp(np.log(11.0) + 0.45 * latent["suv"]), 4.0, 28.0))
    viable = peak * float(rng.uniform(0.55, 0.9))
    rim = np.inf
    if volume > 12.0 and rng.uniform() < ndtr(latent["necrosis"]):
        fraction = float(rng.uniform(0.1, 0.4))
        rim = max(3.0, float(np.prod(semi) ** (1 / 3)) * (1.0 - fraction ** (1.0 / 3.0)))
    radius = float(np.prod(semi) ** (1.0 / 3.0))
    foci = hot_foci(rng, main, int(rng.integers(0, 2)), peak, viable, (0.0, 0.7),
                    (max(3.0, 0.2 * radius), max(4.0, 0.4 * radius)))
    uptake = TumourUptake(shape=shape, viable_suv=viable,
                          heterogeneity=float(0.1 + 0.2 * ndtr(latent["heterogeneity"])),
                          texture=CosineTexture.sample(rng, centre, 12, (6.0, 18.0)),
                          boundary=CosineTexture.sample(rng, centre, 8, (6.0, 18.0)),
                          rim_mm=float(rim), core_suv=float(rng.uniform(0.8, 2.0)),
                          edge_mm=float(rng.uniform(3.0, 6.0)),
                          edge_level=float(rng.uniform(0.6, 0.9)), foci=foci, ceiling=peak)
    spread = float(np.exp(-0.1 + 0.75 * latent["spread"]))
    nodes = _nodes(rng, anatomy, shape, np.asarray(main.centre), viable,
                   min(int(rng.poisson(0.9 * spread)), 3))
    return GtvLesion(pathology="head_and_neck", site=site, main=main, lobes=lobe_shapes,
                     uptake=uptake, findings=nodes, latent=latent)

"""One synthetic patient, grid-free: anatomy, tumour, scanner, acquisition facts and outcomes.

Everything is drawn from independent random streams of the patient seed, so the anatomy, the
lesion and the outcomes are the same whichever grid the patient is later rendered on.

Pathologies: "lung" and "oesophageal" (ground truth: the 40 % SUVmax region, ``mtv``), "sarcoma"
and "head_and_neck" (ground truth: the whole tumour, as a clinician's GTV, ``gtv_lesion``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.synth.anatomy import Anatomy, sample_anatomy
from MTLRadiomicsLib.synth.gtv_lesion import GtvLesion
from MTLRadiomicsLib.synth.head_neck import sample_head_neck
from MTLRadiomicsLib.synth.lesions import PATHOLOGIES, Lesion, sample_lesion
from MTLRadiomicsLib.synth.limbs import extend_limbs, with_tumour_bed
from MTLRadiomicsLib.synth.outcomes import Outcomes, risk_features, sample_outcomes
from MTLRadiomicsLib.synth.sarcoma import sample_sarcoma
from MTLRadiomicsLib.synth.scanner import Scanner, sample_scanner

GENERATOR_VERSION = "1.0"
STREAMS = {"pathology": 0, "anatomy": 1, "lesion": 2, "scanner": 3, "outcomes": 4,
           "acquisition": 5, "wholebody_noise": 10, "crop_noise": 11, "crop_jitter": 12,
           "native_spacing": 13, "crop_margin": 14}
GTV_SAMPLERS: dict[str, Callable[[np.random.Generator, Anatomy], GtvLesion]] = {
    "sarcoma": sample_sarcoma, "head_and_neck": sample_head_neck}
ALL_PATHOLOGIES = PATHOLOGIES + tuple(GTV_SAMPLERS)
# Scans of the new pathologies: older scanners, 128-matrix reconstructions (the real sarcoma
# crops' noise is correlated over about 7 mm): resolution and noise-grain FWHM ranges in mm.
GTV_SCANNER_FWHM_MM = (7.0, 9.0)
GTV_SCANNER_GRAIN_MM = (6.5, 8.0)
GTV_SCANNER_NOISE = (0.12, 0.18)   # liver CoV (the real crops' muscle is noisier than 10-15 %)
_ALIASES = {"lung": "lung", "oesophageal": "oesophageal", "esophageal": "oesophageal",
            "oesophagus": "oesophageal", "esophagus": "oesophageal", "sarcoma": "sarcoma",
            "sts": "sarcoma", "soft_tissue_sarcoma": "sarcoma", "head_and_neck": "head_and_neck",
            "head-and-neck": "head_and_neck", "hn": "head_and_neck", "hnc": "head_and_neck"}


def stream(seed: int, name: str) -> np.random.Generator:
    """The patient's random stream ``name`` (no hashing: SeedSequence([seed, stream id]))."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[name]]))


def normalise_pathology(pathology: Optional[str]) -> Optional[str]:
    if pathology is None:
        return None
    key = str(pathology).strip().lower()
    if key not in _ALIASES:
        raise MTLRadiomicsError(f"unknown pathology {pathology!r}; use one of "
                                + ", ".join(ALL_PATHOLOGIES))
    return _ALIASES[key]


def normalise_pathologies(pathologies: Optional[Sequence[str] | str]) -> tuple[str, ...]:
    """The distinct pathologies of a list (or a comma-separated string), in the given order;
    None gives the default ("lung", "oesophageal")."""
    if pathologies is None:
        return PATHOLOGIES
    items = pathologies.split(",") if isinstance(pathologies, str) else list(pathologies)
    names: list[str] = []
    for item in items:
        if not str(item).strip():
            continue
        name = normalise_pathology(item)
        if name is not None and name not in names:
            names.append(name)
    if not names:
        raise MTLRadiomicsError("give at least one pathology, e.g. lung,oesophageal")
    return tuple(names)


def draw_pathology(seed: int, choices: Sequence[str] = PATHOLOGIES) -> str:
    """The pathology patient ``seed`` gets when it is drawn among ``choices`` (equally likely)."""
    return str(choices[int(stream(int(seed), "pathology").integers(0, len(choices)))])


@dataclass
class Patient:
    """A synthetic patient (all positions LPS mm, uptakes SUV)."""

    seed: int
    pathology: str
    anatomy: Anatomy
    lesion: Lesion | GtvLesion
    scanner: Scanner
    outcomes: Outcomes
    measures: dict[str, Any]      # grid-free primary-tumour measures
    acquisition: dict[str, float]  # weight, injected dose, uptake time

    @property
    def lesion_center(self) -> tuple[float, float, float]:
        return tuple(float(c) for c in self.measures["centroid"])  # type: ignore[return-value]

    def facts(self) -> dict[str, Any]:
        """JSON-serialisable description of everything drawn for this patient."""
        lesion, m = self.lesion, self.measures
        return {
            "generator_version": GENERATOR_VERSION,
            "seed": int(self.seed),
            "pathology": self.pathology,
            "lesion_suv_base": round(lesion.suv, 4),
            "true_volume_ml": round(m["volume_ml"], 4),
            "equivalent_radius_mm": round(m["equivalent_radius_mm"], 3),
            "extent_mm": [round(m[f"extent_{a}_mm"], 2) for a in "xyz"],
            "elongation": round(m["elongation"], 4),
            "lobulation": round(m["lobulation"], 4),
            "n_lobes": len(lesion.lobes),
            "heterogeneity": round(lesion.heterogeneity, 4),
            "necrosis": lesion.necrosis is not None,
            "necrosis_fraction": round(m["necrosis_fraction"], 4),
            "necrosis_relative_uptake": round(lesion.necrosis_level, 4),
            "n_satellites": len(lesion.satellites),
            "n_nodes": len(lesion.nodes),
            "findings": [f.to_dict() for f in lesion.findings],
            "latent_traits": {k: round(v, 4) for k, v in lesion.latent.items()},
            "outcome": self.outcomes.to_dict(),
            "scanner": self.scanner.to_dict(),
            "organ_suv": {k: round(v, 4) for k, v in self.anatomy.uptakes.items()},
            "body": {k: round(v, 4) for k, v in self.anatomy.body.items()},
            "acquisition": dict(self.acquisition),
            **({"gtv": self.lesion.facts()} if isinstance(self.lesion, GtvLesion) else {}),
        }


def _sample_gtv_lesion(seed: int, anatomy: Anatomy, pathology: str) -> tuple[GtvLesion, Anatomy]:
    """A sarcoma or head-and-neck primary and the anatomy it lies in (limbs extended and the body
    outline grown over a sarcoma)."""
    if pathology == "sarcoma":
        anatomy = extend_limbs(anatomy)
    lesion = GTV_SAMPLERS[pathology](stream(seed, "lesion"), anatomy)
    if pathology == "sarcoma":
        anatomy = with_tumour_bed(anatomy, lesion.primary, float(lesion.bbox()[0][2]))
    return lesion, anatomy


def sample_patient(seed: int, pathology: Optional[str] = None,
                   choices: Sequence[str] = PATHOLOGIES) -> Patient:
    """Draw the patient of ``seed``; ``pathology`` None lets the seed choose among ``choices``
    (default lung or oesophageal)."""
    seed = int(seed)
    if seed < 0:
        raise MTLRadiomicsError(f"seed must be >= 0, not {seed}")
    drawn = draw_pathology(seed, normalise_pathologies(choices))
    pathology = normalise_pathology(pathology) or drawn
    anatomy = sample_anatomy(stream(seed, "anatomy"))
    scanner_rng = stream(seed, "scanner")
    if pathology in GTV_SAMPLERS:
        lesion, anatomy = _sample_gtv_lesion(seed, anatomy, pathology)
        scanner = sample_scanner(scanner_rng, anatomy.uptakes["liver"], GTV_SCANNER_FWHM_MM,
                                 GTV_SCANNER_GRAIN_MM, GTV_SCANNER_NOISE)
        risk_suv = lesion.peak_suv
    else:
        lesion = sample_lesion(stream(seed, "lesion"), anatomy, pathology)
        scanner = sample_scanner(scanner_rng, anatomy.uptakes["liver"])
        risk_suv = lesion.suv
    measures = lesion.true_measures()
    features = risk_features(risk_suv, measures["volume_ml"], lesion.heterogeneity,
                             measures["necrosis_fraction"], len(lesion.satellites),
                             len(lesion.nodes))
    outcomes = sample_outcomes(features, pathology, stream(seed, "outcomes"))
    acq_rng = stream(seed, "acquisition")
    weight = anatomy.body["weight_kg"]
    acquisition = {"weight_kg": round(weight, 2),
                   "injected_dose_bq": round(weight * acq_rng.uniform(3.0, 4.5) * 1e6, -3),
                   "injection_clock_s": round(float(acq_rng.uniform(7.5, 16.0)) * 3600.0, 0),
                   "uptake_time_s": round(float(acq_rng.uniform(55.0, 75.0)) * 60.0, 0)}
    return Patient(seed=seed, pathology=pathology, anatomy=anatomy, lesion=lesion, scanner=scanner,
                   outcomes=outcomes, measures=measures, acquisition=acquisition)

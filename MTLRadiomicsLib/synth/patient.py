"""One synthetic patient, grid-free: anatomy, tumour, scanner, acquisition facts and outcomes.

Everything is drawn from independent random streams of the patient seed, so the anatomy, the
lesion and the outcomes are the same whichever grid the patient is later rendered on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from MTLRadiomicsLib.errors import MTLRadiomicsError
from MTLRadiomicsLib.synth.anatomy import Anatomy, sample_anatomy
from MTLRadiomicsLib.synth.lesions import PATHOLOGIES, Lesion, sample_lesion
from MTLRadiomicsLib.synth.outcomes import Outcomes, risk_features, sample_outcomes
from MTLRadiomicsLib.synth.scanner import Scanner, sample_scanner

GENERATOR_VERSION = "1.0"
STREAMS = {"pathology": 0, "anatomy": 1, "lesion": 2, "scanner": 3, "outcomes": 4,
           "acquisition": 5, "wholebody_noise": 10, "crop_noise": 11, "crop_jitter": 12}
_ALIASES = {"lung": "lung", "oesophageal": "oesophageal", "esophageal": "oesophageal",
            "oesophagus": "oesophageal", "esophagus": "oesophageal"}


def stream(seed: int, name: str) -> np.random.Generator:
    """The patient's random stream ``name`` (no hashing: SeedSequence([seed, stream id]))."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), STREAMS[name]]))


def normalise_pathology(pathology: Optional[str]) -> Optional[str]:
    if pathology is None:
        return None
    key = str(pathology).strip().lower()
    if key not in _ALIASES:
        raise MTLRadiomicsError(f"unknown pathology {pathology!r}; use 'lung' or 'oesophageal'")
    return _ALIASES[key]


@dataclass
class Patient:
    """A synthetic patient (all positions LPS mm, uptakes SUV)."""

    seed: int
    pathology: str
    anatomy: Anatomy
    lesion: Lesion
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
        }


def sample_patient(seed: int, pathology: Optional[str] = None) -> Patient:
    """Draw the patient of ``seed``; ``pathology`` None lets the seed choose (lung or oesophageal)."""
    seed = int(seed)
    if seed < 0:
        raise MTLRadiomicsError(f"seed must be >= 0, not {seed}")
    drawn = PATHOLOGIES[int(stream(seed, "pathology").integers(0, 2))]
    pathology = normalise_pathology(pathology) or drawn
    anatomy = sample_anatomy(stream(seed, "anatomy"))
    lesion = sample_lesion(stream(seed, "lesion"), anatomy, pathology)
    measures = lesion.true_measures()
    scanner = sample_scanner(stream(seed, "scanner"), anatomy.uptakes["liver"])
    features = risk_features(lesion.suv, measures["volume_ml"], lesion.heterogeneity,
                             measures["necrosis_fraction"], len(lesion.satellites), len(lesion.nodes))
    outcomes = sample_outcomes(features, pathology, stream(seed, "outcomes"))
    acq_rng = stream(seed, "acquisition")
    weight = anatomy.body["weight_kg"]
    acquisition = {"weight_kg": round(weight, 2),
                   "injected_dose_bq": round(weight * acq_rng.uniform(3.0, 4.5) * 1e6, -3),
                   "injection_clock_s": round(float(acq_rng.uniform(7.5, 16.0)) * 3600.0, 0),
                   "uptake_time_s": round(float(acq_rng.uniform(55.0, 75.0)) * 60.0, 0)}
    return Patient(seed=seed, pathology=pathology, anatomy=anatomy, lesion=lesion, scanner=scanner,
                   outcomes=outcomes, measures=measures, acquisition=acquisition)

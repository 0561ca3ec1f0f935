"""Hidden outcome model: a linear risk of tumour and peritumoral features, and the outcomes it drives.

oracle_risk = sum_i w_i * standardised feature_i + pathology offset + case noise (N(0, 0.5^2)).
Features are standardised with ``FEATURE_NORMS`` (lung and oesophageal) or the pathology's own
``PATHOLOGY_FEATURE_NORMS`` (sarcoma, head and neck; their SUV feature is the peak uptake).
Response ~ Bernoulli(sigmoid(-k * risk)); survival ~ Weibull with hazard proportional to
exp(risk), censored by the end of follow-up (60 months) and by random drop-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
from scipy.stats import rankdata

# Population mean and sd of each feature over the generator's cases (fixed, for standardising).
FEATURE_NORMS: dict[str, tuple[float, float]] = {
    "log_suv": (2.02, 0.48),
    "log_volume_ml": (2.57, 1.07),
    "heterogeneity": (0.19, 0.087),
    "necrosis_fraction": (0.076, 0.108),
    "n_peritumoral": (0.98, 1.17),
}
RISK_WEIGHTS: dict[str, float] = {
    "log_suv": 0.35,
    "log_volume_ml": 0.45,
    "heterogeneity": 0.30,
    "necrosis_fraction": 0.25,
    "n_peritumoral": 0.50,
}
# Sarcomas and head-and-neck tumours are standardised against their own population (their
# volumes and uptakes lie on another scale), so the risk stays centred within each pathology.
PATHOLOGY_FEATURE_NORMS: dict[str, dict[str, tuple[float, float]]] = {
    "sarcoma": {"log_suv": (2.65, 0.46), "log_volume_ml": (5.74, 1.04),
                "heterogeneity": (0.58, 0.13), "necrosis_fraction": (0.25, 0.23),
                "n_peritumoral": (0.0, 1.0)},
    "head_and_neck": {"log_suv": (2.22, 0.49), "log_volume_ml": (2.52, 0.85),
                      "heterogeneity": (0.20, 0.057), "necrosis_fraction": (0.12, 0.17),
                      "n_peritumoral": (1.0, 1.04)},
}
PATHOLOGY_OFFSET = {"lung": 0.0, "oesophageal": 0.15, "sarcoma": 0.1, "head_and_neck": -0.1}
CASE_NOISE_SD = 0.5
RESPONSE_SLOPE = 1.5          # k in P(response) = sigmoid(-k * risk)
WEIBULL_SHAPE = 1.3
WEIBULL_SCALE_MONTHS = 30.0   # at risk 0
FOLLOW_UP_MONTHS = 60.0
DROPOUT_MEAN_MONTHS = 65.0


@dataclass
class Outcomes:
    """Outcomes of one patient and the risk that drew them."""

    oracle_risk: float
    response_probability: float
    response: int
    time: float          # months
    event: int
    terms: dict[str, float]

    def to_dict(self) -> dict[str, object]:
        return {"oracle_risk": round(self.oracle_risk, 6),
                "response_probability": round(self.response_probability, 6),
                "response": self.response, "time_months": round(self.time, 4), "event": self.event,
                "risk_terms": {k: round(v, 6) for k, v in self.terms.items()}}


def risk_features(suv: float, volume_ml: float, heterogeneity: float, necrosis_fraction: float,
                  n_satellites: int, n_nodes: int) -> dict[str, float]:
    """The raw features the risk is built from (SUV, ml, fraction, counts)."""
    return {"log_suv": float(np.log(suv)), "log_volume_ml": float(np.log(max(volume_ml, 1e-3))),
            "heterogeneity": float(heterogeneity), "necrosis_fraction": float(necrosis_fraction),
            "n_peritumoral": float(n_satellites + n_nodes)}


def feature_norms(pathology: str) -> dict[str, tuple[float, float]]:
    """(mean, sd) of each risk feature that ``pathology`` is standardised with."""
    return {**FEATURE_NORMS, **PATHOLOGY_FEATURE_NORMS.get(pathology, {})}


def sample_outcomes(features: Mapping[str, float], pathology: str,
                    rng: np.random.Generator) -> Outcomes:
    """Draw risk, response and survival for one patient from its features."""
    norms = feature_norms(pathology)
    terms = {name: weight * (features[name] - norms[name][0]) / norms[name][1]
             for name, weight in RISK_WEIGHTS.items()}
    terms["pathology"] = PATHOLOGY_OFFSET[pathology]
    terms["case_noise"] = float(rng.normal(0.0, CASE_NOISE_SD))
    risk = float(sum(terms.values()))
    p_response = float(1.0 / (1.0 + np.exp(RESPONSE_SLOPE * risk)))
    u_response, u_death, u_dropout = rng.uniform(size=3)
    response = int(u_response < p_response)
    death = WEIBULL_SCALE_MONTHS * (-np.log(u_death) * np.exp(-risk)) ** (1.0 / WEIBULL_SHAPE)
    censor = min(FOLLOW_UP_MONTHS, -DROPOUT_MEAN_MONTHS * np.log(u_dropout))
    censor = max(censor, 1.0)
    event = int(death <= censor)
    time = float(min(death, censor))
    return Outcomes(oracle_risk=risk, response_probability=p_response, response=response,
                    time=time, event=event, terms={k: float(v) for k, v in terms.items()})


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for ``label`` == 1 (Mann-Whitney, ties count half)."""
    score, label = np.asarray(score, float), np.asarray(label).astype(bool)
    n_pos, n_neg = int(label.sum()), int((~label).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def concordance_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C: share of comparable pairs where the higher risk fails first (ties count half)."""
    time, risk = np.asarray(time, float), np.asarray(risk, float)
    event = np.asarray(event).astype(bool)
    comparable = event[:, None] & (time[:, None] < time[None, :])
    if not comparable.any():
        return float("nan")
    higher = risk[:, None] > risk[None, :]
    tied = risk[:, None] == risk[None, :]
    return float((np.sum(comparable & higher) + 0.5 * np.sum(comparable & tied)) / comparable.sum())

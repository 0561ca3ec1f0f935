"""Does the model know this kind of lesion? The scan and the lesion against the model's training domain.

A model card's ``domain`` records what the model was trained on: tracer, tumour types, body regions,
the range of lesion volumes and SUVmax, voxel sizes, and statistics of the features its outcome head
sees (per-feature mean and standard deviation, and the largest distance among its training cases).
At analysis each fact is checked; every one that fails is a reason, in plain words, and the lesion
is then "outside the model's training domain": the scores are marked so, and the pathology is not
shown as if it could be told (a tumour unlike every class the model knows has no near-certain class).
A card without a domain is not checked (and says so).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np

VOLUME_MARGIN = 2.0          # a lesion up to 2x smaller or larger than any training lesion is inside
SUV_MARGIN = 1.5             # likewise for SUVmax (1.5x)
SPACING_MARGIN = 1.25        # voxel sizes up to 25 % beyond the training range are inside
FEATURE_MARGIN = 1.5         # deep features: up to 1.5x the largest training distance


@dataclass
class DomainCheck:
    """``inside``: every recorded fact fits (True also when the card records no domain: then
    ``checked`` is False); ``reasons``: one sentence per fact that does not fit; ``facts``: the
    lesion's values that were compared."""

    inside: bool
    checked: bool
    reasons: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def summary(self) -> str:
        if not self.checked:
            return "the model card records no training domain: not checked"
        if self.inside:
            return "inside the model's training domain"
        return "outside the model's training domain: " + "; ".join(self.reasons)


def feature_distance(features: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> float:
    """Root-mean-square standardised distance of a feature vector to the training mean."""
    z = (np.asarray(features, float) - np.asarray(mean, float)) / np.maximum(np.asarray(sd, float), 1e-6)
    return float(np.sqrt(np.mean(z ** 2)))


def check_domain(domain: dict, *, tracer: str = "", region: str = "unknown", region_reason: str = "",
                 volume_ml: Optional[float] = None, suv_max: Optional[float] = None,
                 spacing_mm: Optional[tuple[float, float, float]] = None,
                 features: Optional[np.ndarray] = None) -> DomainCheck:
    """Check one lesion against a card's ``domain`` (see the module doc for the keys)."""
    if not domain:
        return DomainCheck(inside=True, checked=False)
    reasons: list[str] = []
    facts: dict[str, Any] = {"body_region": region, "body_region_reason": region_reason}
    known_tracer = str(domain.get("tracer", "")).upper()
    if tracer and known_tracer and known_tracer not in tracer.upper().replace("-", "").replace(" ", "") \
            and not ("FDG" in known_tracer and "FLUORODEOXYGLUCOSE" in tracer.upper()):
        reasons.append(f"the tracer is {tracer}, the model knows {domain['tracer']} only")
    facts["tracer"] = tracer
    regions = list(domain.get("body_regions") or [])
    if regions and region != "unknown" and region not in regions:
        reasons.append(f"the lesion lies in the {region.replace('_', ' ')}; the model was trained on "
                       f"{', '.join(r.replace('_', ' ') for r in regions)} lesions")
    for name, value, key, margin, unit in (("volume", volume_ml, "volume_ml", VOLUME_MARGIN, "ml"),
                                           ("SUVmax", suv_max, "suv_max", SUV_MARGIN, "")):
        low_high = domain.get(key)
        if value is None or not low_high:
            continue
        facts[key] = value
        low, high = float(low_high[0]), float(low_high[1])
        if value < low / margin or value > high * margin:
            reasons.append(f"its {name} ({value:.3g}{' ' + unit if unit else ''}) lies outside the training range "
                           f"({low:.3g}-{high:.3g}{' ' + unit if unit else ''})")
    voxel = domain.get("voxel_mm") or {}
    if spacing_mm is not None and voxel:
        in_plane, through = max(spacing_mm[0], spacing_mm[1]), spacing_mm[2]
        facts["voxel_mm"] = [round(float(v), 3) for v in spacing_mm]
        for label, value, key in (("in-plane voxel size", in_plane, "in_plane"), ("slice spacing", through, "slice")):
            if key in voxel:
                low, high = (float(v) for v in voxel[key])
                if value < low / SPACING_MARGIN or value > high * SPACING_MARGIN:
                    reasons.append(f"the {label} ({value:.2f} mm) lies outside the training range "
                                   f"({low:.2f}-{high:.2f} mm)")
    stats = domain.get("features") or {}
    if features is not None and stats.get("mean") and len(stats["mean"]) == len(features):
        distance = feature_distance(features, stats["mean"], stats["sd"])
        limit = FEATURE_MARGIN * float(stats["max_distance"])
        facts["feature_distance"] = round(distance, 3)
        facts["feature_distance_limit"] = round(limit, 3)
        if distance > limit:
            reasons.append(f"the features the outcome head sees are unlike every training case (distance "
                           f"{distance:.2f}, training cases up to {float(stats['max_distance']):.2f})")
    return DomainCheck(inside=not reasons, checked=True, reasons=reasons, facts=facts)

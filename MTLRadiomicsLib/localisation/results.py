"""What a lesion search returns: ranked candidates, the physiological uptake left out, and the
method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from MTLRadiomicsLib.localisation.geometry import Point, lps_to_ras


def _mm(point: Point) -> list[float]:
    return [round(float(v), 2) for v in point]


@dataclass
class LesionCandidate:
    """One FDG-avid region that may be the lesion.

    Attributes:
        rank: 1 = most likely lesion.
        center_lps: centre of the region's bounding box (mm, LPS).
        peak_lps: position of the region's SUVmax voxel (mm, LPS).
        suv_max: highest SUV in the region (unsmoothed, g/ml).
        volume_ml: volume of the region above the uptake threshold.
        bbox_lps: the bounding box's minimum and maximum corners (mm, LPS, voxel edges).
        score: ranking score; higher = more likely a lesion.
    """

    rank: int
    center_lps: Point
    peak_lps: Point
    suv_max: float
    volume_ml: float
    bbox_lps: tuple[Point, Point]
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "center_lps": _mm(self.center_lps),
                "center_ras": _mm(lps_to_ras(self.center_lps)), "peak_lps": _mm(self.peak_lps),
                "peak_ras": _mm(lps_to_ras(self.peak_lps)), "suv_max": round(self.suv_max, 3),
                "volume_ml": round(self.volume_ml, 2),
                "bbox_lps": [_mm(self.bbox_lps[0]), _mm(self.bbox_lps[1])],
                "score": round(self.score, 4)}


@dataclass
class ExcludedRegion:
    """Physiological uptake recognised and left out of the ranking.

    Attributes:
        organ: 'brain', 'bladder', 'heart' or 'kidney'.
        center_lps: centre of its bounding box (mm, LPS).
        suv_max: highest SUV in it (g/ml).
        volume_ml: volume above the uptake threshold.
    """

    organ: str
    center_lps: Point
    suv_max: float
    volume_ml: float

    def to_dict(self) -> dict[str, Any]:
        return {"organ": self.organ, "center_lps": _mm(self.center_lps),
                "center_ras": _mm(lps_to_ras(self.center_lps)), "suv_max": round(self.suv_max, 3),
                "volume_ml": round(self.volume_ml, 2)}


@dataclass
class CandidateSearch:
    """Result of ``find_candidates``.

    Attributes:
        candidates: ranked lesion candidates (rank 1 first).
        excluded: physiological uptake recognised and left out.
        threshold_suv: the uptake threshold the regions were cut at.
        method: one sentence describing the search, for result files.
    """

    candidates: list[LesionCandidate]
    excluded: list[ExcludedRegion] = field(default_factory=list)
    threshold_suv: float = 0.0
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "threshold_suv": round(self.threshold_suv, 3),
                "candidates": [c.to_dict() for c in self.candidates],
                "excluded": [e.to_dict() for e in self.excluded]}

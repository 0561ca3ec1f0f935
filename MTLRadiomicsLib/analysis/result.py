"""The analysis result: everything `result.json` holds, as dataclasses."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class Estimate:
    """A score with its uncertainty: mean and standard deviation over the samples."""

    mean: float
    sd: float
    samples: int

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


@dataclass
class Scores:
    """Model outputs. ``outcome_kind`` 'binary': ``outcome`` is the response probability (0-1);
    'survival': ``outcome`` is the log relative hazard (risk; higher = shorter survival).
    ``pathology``: class name -> probability estimate. ``uncertainty``: how the sd was obtained."""

    outcome_kind: str
    outcome_meaning: str
    outcome: Optional[Estimate]
    pathology: dict[str, Estimate]
    uncertainty: str
    mask_source: str = "predicted"            # or "edited" (rescore)
    withheld: str = ""                        # why there are no scores (an implausible MTV), or ""
    survival: Optional[Estimate] = None       # log relative hazard of a survival head beside the outcome
    survival_meaning: str = ""
    pathology_note: str = ""                  # why no pathology is shown (outside the training domain)
    domain: str = ""                          # "inside" / "outside" the model's training domain; "" unchecked
    calibration: str = ""                     # how the probabilities were calibrated
    seed: Optional[int] = None                # random seed of the uncertainty samples

    @property
    def valid(self) -> bool:
        return not self.withheld


@dataclass
class Location:
    """Where the analysed lesion is and how it was found."""

    method: str                              # "point", "box" or "automatic"
    center_lps: tuple[float, float, float]
    center_ras: tuple[float, float, float]
    crop_size_mm: tuple[float, float, float]
    candidates: list[dict] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)
    note: str = ""
    field_center_lps: Optional[tuple[float, float, float]] = None   # where the network's fixed field was placed
    field_note: str = ""                     # what of the MTV did not place the field


@dataclass
class AnalysisResult:
    """The JSON-serialisable result of `analyze` or `rescore`."""

    engine_version: str
    command: str                             # "analyze" or "rescore"
    created: str
    input: dict[str, Any]                    # path, format, fingerprint (sha256), series facts
    pet: dict[str, Any]                      # PetVolume.summary() without the statistics duplicates
    model: dict[str, Any]                    # model card summary
    location: Location
    scores: Scores
    metrics: dict[str, float]                # SUVmax, SUVpeak, SUVmean, MTV ml, TLG, voxels
    explanation: dict[str, Any]              # target, scales, files
    mtv: dict[str, Any] = field(default_factory=dict)        # scored method, every method, checks, liver
    domain: dict[str, Any] = field(default_factory=dict)     # the lesion against the training domain
    outputs: dict[str, str] = field(default_factory=dict)     # name -> file name in the output folder
    timings_s: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_json_default))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AnalysisResult":
        d = dict(data)
        d["location"] = Location(**d["location"])
        s = dict(d["scores"])
        s["outcome"] = Estimate(**s["outcome"]) if s.get("outcome") else None
        s["survival"] = Estimate(**s["survival"]) if s.get("survival") else None
        s["pathology"] = {k: Estimate(**v) for k, v in s["pathology"].items()}
        d["scores"] = Scores(**s)
        return cls(**d)

    @classmethod
    def read(cls, path: str | Path) -> "AnalysisResult":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def outcome_label(kind: str, meaning: str = "") -> str:
    """What the outcome score is, for tables: the card's meaning for a binary outcome other than
    response ("Probability of lung metastasis"), else "Response probability"; survival: the risk."""
    if kind != "binary":
        return "Risk (log relative hazard)"
    meaning = (meaning or "").strip()
    if not meaning or "response" in meaning.lower():
        return "Response probability"
    return meaning[0].upper() + meaning[1:]


def optional_round(value: Optional[float], digits: int = 4) -> Optional[float]:
    return None if value is None else round(float(value), digits)

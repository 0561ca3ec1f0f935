"""Read a cohort manifest (CSV) into case records with per-task label flags.

Columns (the format `mtl-radiomics synth` writes): case_id, pet, mask, pathology, response, time,
event, oracle_risk, fold. Only case_id and pet are required; an empty cell means "no label" for
that task. Optional: ct (second channel), center_x/center_y/center_z (lesion centre, LPS mm, used
when there is no mask). Paths are relative to the manifest's folder. fold is an integer for
development cases or "test" for the locked test split.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

REQUIRED = ("case_id", "pet")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the row and column."""


@dataclass
class CaseRecord:
    case_id: str
    pet: str
    mask: Optional[str] = None
    ct: Optional[str] = None
    pathology: Optional[int] = None
    response: Optional[int] = None
    time: Optional[float] = None
    event: Optional[int] = None
    oracle_risk: Optional[float] = None
    fold: Optional[str] = None
    center_lps: Optional[tuple[float, float, float]] = None
    extra: dict = field(default_factory=dict)

    @property
    def is_test(self) -> bool:
        return self.fold == "test"


def _cell(row: dict, key: str) -> Optional[str]:
    value = row.get(key)
    if value is None:
        return None
    value = value.strip()
    return value if value and value.lower() not in ("nan", "na", "none") else None


def _number(row: dict, key: str, line: int, kind=float) -> Optional[float]:
    value = _cell(row, key)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ManifestError(f"manifest line {line}: {key}={value!r} is not a number") from None
    if not math.isfinite(number):
        return None
    return kind(number) if kind is int else number


def read_manifest(path: str | Path, class_names: Optional[list[str]] = None) -> tuple[list[CaseRecord], list[str]]:
    """Records and the class names (sorted pathology names found, unless given)."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"manifest {path} does not exist")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ManifestError(f"manifest {path} has no cases")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise ManifestError(f"manifest {path} lacks the columns {missing}")
    names = class_names or sorted({_cell(r, "pathology") for r in rows if _cell(r, "pathology")})
    records = []
    root = path.parent
    for line, row in enumerate(rows, start=2):
        pathology_name = _cell(row, "pathology")
        if pathology_name is not None and pathology_name not in names:
            raise ManifestError(f"manifest line {line}: pathology {pathology_name!r} not in {names}")
        event = _number(row, "event", line, int)
        response = _number(row, "response", line, int)
        for key, value in (("event", event), ("response", response)):
            if value not in (None, 0, 1):
                raise ManifestError(f"manifest line {line}: {key} must be 0 or 1, not {value}")
        center = [_number(row, f"center_{a}", line) for a in "xyz"]
        records.append(CaseRecord(
            case_id=_cell(row, "case_id") or f"row{line}",
            pet=str(root / _cell(row, "pet")) if _cell(row, "pet") else "",
            mask=str(root / _cell(row, "mask")) if _cell(row, "mask") else None,
            ct=str(root / _cell(row, "ct")) if _cell(row, "ct") else None,
            pathology=names.index(pathology_name) if pathology_name is not None else None,
            response=response, time=_number(row, "time", line), event=event,
            oracle_risk=_number(row, "oracle_risk", line), fold=_cell(row, "fold"),
            center_lps=tuple(center) if all(c is not None for c in center) else None))  # type: ignore[arg-type]
        if not records[-1].pet:
            raise ManifestError(f"manifest line {line}: the pet column is empty")
    return records, names


def split(records: list[CaseRecord], val_fold: int) -> tuple[list[CaseRecord], list[CaseRecord], list[CaseRecord]]:
    """Train (other folds), validation (``val_fold``) and locked test records."""
    test = [r for r in records if r.is_test]
    val = [r for r in records if not r.is_test and r.fold is not None and r.fold == str(val_fold)]
    train = [r for r in records if not r.is_test and r not in val]
    return train, val, test

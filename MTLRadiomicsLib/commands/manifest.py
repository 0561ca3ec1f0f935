"""The manifest of `batch`: a CSV with one scan per row.

Columns: ``pet`` (required; relative paths are read from the manifest's folder), ``case_id`` (the
name of the case's folder in --out; without the column: case0001, case0002, ...), optional
``point_x``, ``point_y``, ``point_z`` (RAS mm), and optional SUV columns named like the SUV options
(``weight``, ``dose``, ``input_units``, ``injection_time``, ``scan_time``, ``half_life``,
``decay_corrected_to``, ``series``) whose non-empty values replace the option for that row.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterable

from MTLRadiomicsLib.errors import MTLRadiomicsError

PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")
PLAIN_NAME_RULE = "letters, digits, '-', '_' and '.', not starting with '.'"
RESERVED_NAMES = {"summary.csv", "summary.csv.tmp"}       # files batch writes beside the case folders
RESERVED_SHARD_NAME = re.compile(r"summary_shard_\d+_of_\d+\.(csv|json)(\.tmp)?\Z")     # and those of --shard


def is_reserved(case_id: str) -> bool:
    """True for the names of the files batch writes beside the case folders."""
    return case_id in RESERVED_NAMES or bool(RESERVED_SHARD_NAME.match(case_id))


def read_cases(manifest: Path) -> list[dict[str, Any]]:
    """The manifest's cases: case_id, pet (a Path), point (RAS mm or None), row (the stripped values)
    and line. A case_id that is not a plain name, a repeated one, or a missing column is refused."""
    if not manifest.exists():
        raise MTLRadiomicsError(f"manifest {manifest} does not exist")
    with open(manifest, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [(reader.line_num, row) for row in reader]
    if not rows or "pet" not in (reader.fieldnames or []):
        raise MTLRadiomicsError(f"{manifest}: a CSV with at least the columns case_id and pet is needed")
    has_ids = "case_id" in (reader.fieldnames or [])
    cases, seen = [], set()
    for number, (line, raw) in enumerate(rows, start=1):
        row = {str(k).strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        case_id = row["case_id"] if has_ids else f"case{number:04d}"
        where = f"{manifest}, row {number} (line {line})"
        if not PLAIN_NAME.match(case_id) or is_reserved(case_id):
            raise MTLRadiomicsError(f"{where}: case_id {case_id!r} is not a plain folder name ({PLAIN_NAME_RULE}"
                                    f"{'; ' + case_id + ' is taken by batch' if is_reserved(case_id) else ''})")
        if case_id in seen:
            raise MTLRadiomicsError(f"{where}: case_id {case_id!r} appears twice")
        seen.add(case_id)
        if not row["pet"]:
            raise MTLRadiomicsError(f"{where}: the pet column is empty")
        pet = Path(row["pet"]).expanduser()
        point = None
        if all(row.get(f"point_{a}") for a in "xyz"):
            try:
                point = tuple(float(row[f"point_{a}"]) for a in "xyz")
            except ValueError:
                raise MTLRadiomicsError(f"{where}: point_x, point_y, point_z must be numbers (mm)") from None
        cases.append({"case_id": case_id, "pet": pet if pet.is_absolute() else manifest.parent / pet,
                      "point": point, "row": row, "line": line})
    return cases


def row_options(args: argparse.Namespace, row: dict[str, str], actions: Iterable[argparse.Action]) -> argparse.Namespace:
    """A copy of ``args`` in which the row's non-empty SUV columns replace the options of the same name.

    A value that is no number where one is needed, or not among the choices, raises a one-line error
    naming the column."""
    from MTLRadiomicsLib.commands.pet_options import overrides_from_args

    values = vars(args).copy()
    for action in actions:
        text = row.get(action.dest, "")
        if not text:
            continue
        column = f"manifest column {action.dest}"
        try:
            value = action.type(text) if callable(action.type) else text
        except ValueError:
            raise MTLRadiomicsError(f"{column}: {text!r} is not a number") from None
        if action.choices and value not in action.choices:
            raise MTLRadiomicsError(f"{column}: {text!r} is not one of {', '.join(action.choices)}")
        values[action.dest] = value
        try:
            overrides_from_args(argparse.Namespace(**values))
        except MTLRadiomicsError as error:
            raise MTLRadiomicsError(f"{column} ({text!r}): {error}") from None
    return argparse.Namespace(**values)


def case_key(row: dict[str, str], options: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of the case's manifest row and of the analysis options: a finished case whose key
    differs is analysed again."""
    def digest(value: Any) -> str:
        return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()

    return {"row_sha256": digest(row), "options_sha256": digest(options)}

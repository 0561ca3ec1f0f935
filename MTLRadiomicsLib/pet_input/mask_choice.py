"""Choosing one segment (or label) of a mask file that holds several: ``--segment NAME|LABEL``."""

from __future__ import annotations

from typing import Optional

from MTLRadiomicsLib.errors import MaskInputError

MAX_LISTED = 6       # segments named in an error line; the rest are counted


def voxels_text(count: int) -> str:
    return f"{count} voxel{'' if count == 1 else 's'}"


def names_listing(names: list[str]) -> str:
    """'GTV, CTV, BODY', cut after MAX_LISTED names."""
    more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more


def listing(found: dict[str, int]) -> str:
    """'GTV (5095 voxels), node (8 voxels)', cut after MAX_LISTED entries."""
    parts = [f"{name} ({voxels_text(count)})" for name, count in list(found.items())[:MAX_LISTED]]
    if len(found) > MAX_LISTED:
        parts.append(f"and {len(found) - MAX_LISTED} more")
    return ", ".join(parts)


def choose_segment(found: dict[str, int], wanted: Optional[str], where: str, kind: str = "segment",
                   aliases: Optional[dict[str, str]] = None) -> str:
    """The key of ``found`` (segment name or label value -> voxel count) to use.

    ``wanted`` (from --segment) names it, or matches one of ``aliases`` (e.g. a segment number);
    without it the only non-empty entry is taken, and several are refused, listing each with its
    voxel count.
    """
    metavar = "LABEL" if kind == "label" else "NAME"
    if wanted is not None:
        key = wanted if wanted in found else (aliases or {}).get(wanted)
        if key is None:
            raise MaskInputError(f"{where}: no {kind} {wanted!r}; it holds {listing(found)}")
        return key
    filled = [name for name, count in found.items() if count > 0]
    if len(filled) == 1:
        return filled[0]
    if not filled:
        raise MaskInputError(f"{where}: every {kind} is empty ({listing(found)})")
    raise MaskInputError(f"{where} holds {len(filled)} {kind}s: {listing(found)}; "
                         f"choose one with --segment {metavar}")

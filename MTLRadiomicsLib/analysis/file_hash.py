"""SHA-256 fingerprints of the files an analysis read, so that a result names exactly what it used."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file; for a folder, of its files' relative names and contents in name order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for name in files:
        if path.is_dir():
            digest.update(str(name.relative_to(path)).encode() + b"\0")
        with open(name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def edited_mask_record(path: str | Path) -> dict[str, str]:
    """result.json's ``input`` entries for a rescore's mask: its path, file name and SHA-256."""
    path = Path(path).expanduser()
    return {"edited_mask": str(path), "edited_mask_name": path.name, "edited_mask_sha256": sha256_of(path)}

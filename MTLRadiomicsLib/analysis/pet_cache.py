"""The last PET scans read, kept by a long-lived engine: a rescore of the scan just analysed (and a
second analysis of it) does not read and hash the DICOM series again.

A scan is reused while its files are unchanged (every file's size and modification time) and the
options that shape its reading (SUV overrides, input units, series) are the same; the library
warnings its reading gave are given again, so that result.json is the same as after a fresh read.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from MTLRadiomicsLib.analysis.engine import read_pet
from MTLRadiomicsLib.analysis.library_warnings import CapturedWarnings
from MTLRadiomicsLib.analysis.options import AnalysisOptions
from MTLRadiomicsLib.pet_input.pet_volume import PetVolume

MAX_SCANS = 2


def files_stamp(path: Path) -> tuple:
    """(name, size, modification time) of the file, or of every file below the folder."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        files = [path]
    stamp = []
    for name in files:
        try:
            info = os.stat(name)
        except OSError:
            continue
        stamp.append((str(name), info.st_size, info.st_mtime_ns))
    return tuple(stamp)


@dataclass
class _Scan:
    stamp: tuple
    pet: PetVolume
    sha256: str
    warnings: list[tuple[Any, ...]] = field(default_factory=list)


class PetCache:
    """A reader for :func:`MTLRadiomicsLib.analysis.engine.analyze` (``pet_reader``) that keeps the
    last ``size`` scans."""

    def __init__(self, size: int = MAX_SCANS):
        self.size = size
        self.reads = 0
        self._scans: OrderedDict[tuple, _Scan] = OrderedDict()

    def __call__(self, pet_path: str | Path, options: AnalysisOptions,
                 captured: CapturedWarnings) -> tuple[PetVolume, str]:
        path = Path(pet_path).expanduser()
        key = (str(pet_path), str(path.resolve()), repr(options.overrides), options.input_units, options.series_uid)
        stamp = files_stamp(path) if path.exists() else ()
        scan = self._scans.get(key)
        if scan is not None and stamp and scan.stamp == stamp:
            self._scans.move_to_end(key)
            for call in scan.warnings:
                captured.add(*call)
            return scan.pet, scan.sha256
        heard: list[tuple[Any, ...]] = []
        add = captured.add

        def recorded(*call: Any) -> None:
            heard.append(call)
            add(*call)

        captured.add = recorded  # type: ignore[method-assign]
        try:
            pet, sha256 = read_pet(pet_path, options, captured)
        finally:
            del captured.add                       # the class's own method again
        self.reads += 1
        self._scans.pop(key, None)
        if stamp:
            self._scans[key] = _Scan(stamp, pet, sha256, heard)
            while len(self._scans) > self.size:
                self._scans.popitem(last=False)
        return pet, sha256

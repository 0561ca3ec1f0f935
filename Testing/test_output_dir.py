"""Output folders: written completely or not at all, with the permissions the user's umask gives."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from MTLRadiomicsLib.output_dir import atomic_output_dir


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of ``folder`` and of everything below it, by relative path."""
    found = {".": stat.S_IMODE(folder.stat().st_mode)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = stat.S_IMODE(path.stat().st_mode)
    return found


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Run the test under the given umask and restore the previous one afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_output_folder_follows_the_umask(tmp_path, umask):
    final = tmp_path / "out"
    with atomic_output_dir(final) as work:
        (work / "result.json").write_text("{}")
        (work / "sub").mkdir()
        (work / "sub" / "a.txt").write_text("a")
        private = work / "private.tmp"            # as a library writing through tempfile.mkstemp would
        private.write_text("x")
        private.chmod(0o600)
    found = modes(final)
    folder_mode, file_mode = 0o777 & ~umask, 0o666 & ~umask
    assert found == {".": folder_mode, "sub": folder_mode, "result.json": file_mode,
                     "sub/a.txt": file_mode, "private.tmp": file_mode}


def test_replaced_output_folder_follows_the_umask(tmp_path, umask):
    final = tmp_path / "out"
    final.mkdir(mode=0o700)
    (final / "old.txt").write_text("old")
    with atomic_output_dir(final, overwrite=True) as work:
        (work / "new.txt").write_text("new")
    assert modes(final) == {".": 0o777 & ~umask, "new.txt": 0o666 & ~umask}

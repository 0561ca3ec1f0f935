"""Write an output folder completely or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from MTLRadiomicsLib.errors import MTLRadiomicsError


def check_output_dir(final: Path, overwrite: bool) -> None:
    """Refuse an existing, non-empty folder unless ``overwrite``; refuse a file in its place."""
    if final.exists() and not final.is_dir():
        raise MTLRadiomicsError(f"{final} exists and is not a folder; choose another --out")
    if final.is_dir() and any(final.iterdir()) and not overwrite:
        raise MTLRadiomicsError(f"{final} already exists; pass --overwrite to replace it or choose "
                                "another --out")


def current_umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the permissions a plain mkdir/open would have given.

    ``tempfile`` creates private (0700/0600) entries; colleagues sharing the output must be able to
    read it as the user's umask allows: folders 0777 & ~umask, files 0666 & ~umask."""
    mask = current_umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, folders, files in os.walk(folder):
        for names, mode in ((folders, 0o777 & ~mask), (files, 0o666 & ~mask)):
            for name in names:
                path = os.path.join(root, name)
                if not os.path.islink(path):            # a link's target is not ours to change
                    os.chmod(path, mode)


@contextlib.contextmanager
def atomic_output_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it replaces ``final`` in one rename.

    On any error the temporary folder is removed and ``final`` is left as it was. The folder and its
    contents get the permissions of the user's umask (see ``apply_umask``).
    """
    final = Path(final).expanduser().absolute()
    check_output_dir(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield work
        apply_umask(work)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{work.name.rsplit('-', 1)[-1]}")
        final.rename(old)
    work.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

"""Write-then-rename, so an interrupted run never leaves a file or folder that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

from geneface.errors import UsageError


def _temp_sibling(path: Path) -> Path:
    # Same folder keeps the final rename atomic (one file system); the suffix is kept so
    # that writers which pick a format from the extension still do.
    return path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")


def _appeared(path: Path) -> UsageError:
    # geneface.core.outputs refused an existing target before the work started; one that
    # appeared meanwhile (another run) is not replaced behind the user's back either.
    return UsageError(f"{path}: appeared while this run was writing it; not replacing it (pass --overwrite)")


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it to `path` only if the block succeeds.

    `overwrite=False` refuses to replace a file that exists when the block ends (final
    outputs pass the user's `--overwrite`; bookkeeping files keep the default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        yield tmp
        if not overwrite and path.exists():
            raise _appeared(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_directory(path: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it becomes `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _appeared(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    os.replace(tmp, path)

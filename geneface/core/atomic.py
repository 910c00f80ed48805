"""Write-then-rename, so an interrupted run never leaves a file or folder that looks complete.

A partial's name says who owns it: `.NAME.partial-HOST-PID-RANDOM[.ext]` (HOST: six hex digits
of this machine's name). A run killed in a way that gives it no chance to clean up (SIGKILL,
a power cut) leaves its partial behind; the next write of the same output removes partials of
that output whose owner, on this machine, is no longer alive (`sweep_stale`). A partial of
a live process, of another machine (a shared folder) or of the older naming is never touched.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterator

from geneface.errors import UsageError

# Which machine a partial's pid belongs to: a pid means nothing on another host sharing the folder.
HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]


def _partial(path: Path, stem: str, suffix: str) -> Path:
    # Same folder keeps the final rename atomic (one file system); the suffix is kept so
    # that writers which pick a format from the extension still do.
    return path.with_name(f".{stem}.partial-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def sweep_stale(path: Path, stem: str, suffix: str = "") -> list[Path]:
    """Remove the partials of output `path` (named from `stem` and `suffix`) that a dead process
    of this machine left; return them. A reused pid only keeps a stale partial a while longer."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    own = re.compile(rf"\.{re.escape(stem)}\.partial-([0-9a-f]{{6}})-(\d+)-[0-9a-f]{{8}}{re.escape(suffix)}")
    removed = []
    for entry in path.parent.glob(glob.escape(f".{stem}.partial-") + "*"):
        match = own.fullmatch(entry.name)
        if match is None or match[1] != HOST or _alive(int(match[2])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed


def sweep_partials(path: Path) -> list[Path]:
    """`sweep_stale` for output `path` whichever writer makes it (a file's partial keeps its
    extension, a folder's does not): what `geneface.core.outputs` runs before any work."""
    path = Path(path)
    removed = sweep_stale(path, path.stem, path.suffix)
    if path.suffix:
        removed += sweep_stale(path, path.name)
    return removed


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
    sweep_stale(path, path.stem, path.suffix)
    tmp = _partial(path, path.stem, path.suffix)
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
    sweep_stale(path, path.name)
    tmp = _partial(path, path.name, "")
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

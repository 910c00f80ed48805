"""One writer at a time per output: an advisory lock file `.NAME.lock` beside the output.

The operating system drops the lock when its process ends, however it ends (crash, kill -9),
so a lock left by a dead run never blocks the next one: no stale-lock guessing by pid or age.
The file holds the owner's pid, for the message the loser gets. It is removed on release;
a run that opened the file just before that re-checks that the path still names the file it
locked, so two runs can never both hold "the" lock through two different files.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from geneface.errors import OutputBusyError

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


def lock_path(out: Path) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def _owner(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def output_lock(out: Path, what: str = "run") -> Iterator[None]:
    """Hold the lock of output `out` for the block; OutputBusyError at once if another
    process holds it (`what` names the kind of run in the message)."""
    path = lock_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise OutputBusyError(f"{out}: another {what} ({_owner(path)}) is writing it; wait for it to "
                                  "finish or choose another output")
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:  # removed by the holder we were waiting behind
            same = False
        if same:
            break
        os.close(fd)  # locked a file its holder has just removed: take the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still holding the lock, so nobody else is using it
        os.close(fd)

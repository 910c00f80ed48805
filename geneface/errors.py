"""Exceptions the CLI turns into a one-line message and an exit code.

The exit-code rule, written once (README and ARCHITECTURE.md repeat this table):

| code | when | raised as |
| --- | --- | --- |
| 0 | success | |
| 2 | bad input the user can fix: arguments, spec, plugin name, an output path that exists, is an input, is the wrong type or cannot be written; an input that is missing, unreadable, truncated, not media, without an audio track or a face, at the wrong fps, with NaN values; a bad, foreign or pickled checkpoint; stages that do not connect | `UsageError` and its subclasses (`SpecError`, `PluginError`, `DatasetError`), `MediaError`, `CheckpointError`, `StageMismatchError`, `TrackingError` |
| 1 | a runtime failure that is not a bad input: a batch in which some items failed, the speech engine failing, a full disk or an I/O error while writing | `GenefaceError` itself; `OSError` and `MemoryError` raised while working |
| 130 | interrupted (Ctrl-C) | `KeyboardInterrupt` |
| 143 | terminated (SIGTERM: `timeout`, `docker stop`, systemd), handled as Ctrl-C is: partial outputs removed, one line | `Terminated` (the CLI raises it from its SIGTERM handler) |
| 141 | the reader of a pipe we write to closed it (`geneface stream --raw -` read by `head -c 1000`): one line, the shell's code for a tool ended by SIGPIPE | `PipeClosedError` |
| 1 | a bug: `error: internal error: <exception>` (`--debug` shows the traceback) | anything else |

`exit_status(exc)` applies the rule; the CLI and its worker processes all call it.
"""

from __future__ import annotations

import errno
from typing import Optional

# OSErrors that are the machine's, not a bug: disk full, quota, I/O failure, permissions
# or a read-only file system met mid-run, too many open files.
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM,
                   errno.EMFILE, errno.ENFILE}


class GenefaceError(Exception):
    """A failure the user can act on; the message says what and where. Exit 1: runtime."""

    exit_code = 1


class UsageError(GenefaceError):
    """Bad arguments, a bad spec or an input file that does not exist or has the wrong shape."""

    exit_code = 2


class SpecError(UsageError):
    """A pipeline spec that does not parse or does not validate; names the key path."""


class PluginError(UsageError):
    """Unknown, duplicate or unavailable plugin."""


class MediaError(GenefaceError):
    """A media file that cannot be decoded (unreadable, truncated, no audio track ...) or encoded."""

    exit_code = 2


class CheckpointError(GenefaceError):
    """A checkpoint that is corrupt, truncated, a pickle, has NaN weights or is meant for another plugin."""

    exit_code = 2


class StageMismatchError(GenefaceError):
    """Two stages whose data do not connect (shape, width or rate): the spec or input to fix."""

    exit_code = 2


class OutputBusyError(UsageError):
    """Another run is writing the same output right now (two commands given one output)."""


class PipeClosedError(GenefaceError):
    """The reader of a pipe we write frames to closed it: the run stops, saying where it got to."""

    exit_code = 141  # 128 + SIGPIPE: what a shell reports for a Unix tool ended by a closed pipe


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program happens to be so that it unwinds as Ctrl-C does
    (every `with` block cleans up: partial outputs removed); exit 143 (128 + SIGTERM)."""


def exit_status(exc: BaseException) -> tuple[int, Optional[str]]:
    """(exit code, one-line message) for an exception that ended a command.

    The message is None for a bug (anything the table above does not name): the caller
    reports it as an internal error, or re-raises it under --debug.
    """
    if isinstance(exc, GenefaceError):
        # One line, even when it quotes a library's multi-line message (torch's missing keys).
        return exc.exit_code, " ".join(str(exc).split())
    if isinstance(exc, Terminated):
        return 143, "terminated (SIGTERM)"
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(exc, MemoryError):
        return 1, "out of memory"
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
        # A full disk or a failing device mid-run: the machine's, not a bug and not the input.
        where = f"{exc.filename}: " if exc.filename else ""
        return 1, f"{where}{exc.strerror or exc}"
    return 1, None


def one_line(exc: BaseException) -> str:
    """An exception as one line, for a report that goes on past it (one failed item of a
    batch): the message of a geneface error, else `Type: message`."""
    text = str(exc) if isinstance(exc, GenefaceError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__

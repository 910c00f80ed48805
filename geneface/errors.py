"""Exceptions the CLI turns into a one-line message and an exit code.

Every error a user can cause derives from GenefaceError; the CLI prints its message and
exits with `exit_code` (2 for usage and spec errors, 1 for runtime failures). Anything else
is a bug and is reported as such.
"""

from __future__ import annotations


class GenefaceError(Exception):
    """A failure the user can act on; the message says what and where."""

    exit_code = 1


class UsageError(GenefaceError):
    """Bad arguments, a bad spec or an input file that does not exist or has the wrong shape."""

    exit_code = 2


class SpecError(UsageError):
    """A pipeline spec that does not parse or does not validate; names the key path."""


class PluginError(UsageError):
    """Unknown, duplicate or unavailable plugin."""


class MediaError(GenefaceError):
    """A media file that cannot be decoded or written."""


class CheckpointError(GenefaceError):
    """A checkpoint that is corrupt, truncated or meant for another plugin."""


class StageMismatchError(GenefaceError):
    """Two stages whose data do not connect (shape, width or rate)."""

"""The errors of checkpoint reading and writing: each names the file at fault."""

from __future__ import annotations

from xinit.errors import XinitError


class CheckpointError(XinitError, ValueError):
    """A checkpoint file cannot be read or written (the message names the file)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would run code when loaded; it was refused without running anything."""


class CheckpointWriteError(CheckpointError):
    """A file could not be written (the message says where and why); any earlier file at
    that path is left as it was."""

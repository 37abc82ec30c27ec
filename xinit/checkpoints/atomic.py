"""Atomic writes: a temporary file in the destination folder, synced, then renamed over the
target; stale temporaries of killed writers cleaned up; destinations checked first."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import CheckpointWriteError

# ---- atomic writes -----------------------------------------------------------------------
# Temporary files of a write are named ``.xinit-tmp-<pid>-<random>-<name>`` in the target's
# folder, so those a killed process left behind can be recognised and removed later.
TMP_PREFIX = ".xinit-tmp-"
_TMP_PATTERN = re.compile(r"^\.xinit-tmp-(\d+)-[0-9a-f]{8}-")
_TMP_NAME_KEEP = 64  # characters of the target's name kept in the temporary file's name


def _process_start() -> float:
    """When this process started (wall clock): /proc's entry for it, else xinit's import."""
    try:
        return os.stat(f"/proc/{os.getpid()}").st_ctime
    except OSError:
        return _IMPORTED_AT


_IMPORTED_AT = time.time()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of writes that a killed process left in ``folder``: only
    names of xinit's pattern, written by a process that no longer runs, and older than this
    process. Returns the files removed."""
    removed = []
    started = _process_start()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_PATTERN.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            if not entry.is_file(follow_symlinks=False) or entry.stat().st_mtime >= started:
                continue
            if _pid_alive(int(match.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def check_destination(path: str | os.PathLike) -> Path:
    """Refuse, before any work, a path that cannot be written as a file: empty, a folder,
    a name longer than the file system allows, a read-only existing file, or a folder that
    is missing and cannot be made or cannot be written. Returns the path."""
    text = os.fspath(path)
    if not text:
        raise CheckpointWriteError("cannot write to an empty path: name the output file")
    path = Path(text)
    folder = path.parent
    try:
        limit = os.pathconf(folder if os.path.isdir(folder) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    size = len(os.fsencode(path.name))
    if size > limit:
        shown = text if len(text) <= 80 else f"{text[:40]}...{text[-30:]}"
        raise CheckpointWriteError(
            f"cannot write {shown}: the file name has {size} bytes; this file system allows {limit}"
        )
    if text.endswith((os.sep, "/")) or os.path.isdir(path):
        raise CheckpointWriteError(f"cannot write {text}: it is a folder, not a file name")
    if path.exists() and not stat.S_IMODE(path.stat().st_mode) & 0o222:
        raise CheckpointWriteError(
            f"cannot write {text}: the existing file is read-only "
            f"(mode {stat.S_IMODE(path.stat().st_mode):04o}); make it writable to replace it"
        )
    return path


class _Recorded:
    """A binary file that remembers the OS error of a failed write: some writers (torch's
    zip writer) replace it with a message of their own (``unexpected pos``)."""

    def __init__(self, f) -> None:
        self.f, self.error = f, None

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as err:
            self.error = err
            raise

    def fileno(self) -> int:
        return self.f.fileno()

    def tell(self) -> int:
        return self.f.tell()


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, sync it, then rename
    it onto ``path``: a crash never leaves a half-written ``path``. On any error the
    temporary file is removed, ``path`` is left as it was, and :class:`CheckpointWriteError`
    says where and why. An existing file's mode is kept; a new file gets the umask's.
    Temporary files an earlier killed write left in the folder are removed first."""
    path = check_destination(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointWriteError(f"cannot write {path}: cannot make its folder: {err}") from err
    remove_stale_temporaries(folder)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name[:_TMP_NAME_KEEP]}"
    try:
        # O_EXCL: never follow or reuse an existing name; 0o666 lets the umask decide
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as err:
        raise CheckpointWriteError(
            f"cannot write {path}: cannot create a file in {folder}: {err.strerror or err}"
        ) from err
    recorded = None
    try:
        with os.fdopen(fd, "wb") as f:
            recorded = _Recorded(f)
            write(recorded)
            recorded.flush()
            os.fsync(f.fileno())
            if mode is not None:
                os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if not isinstance(err, Exception) or isinstance(err, CheckpointWriteError):
            raise
        if recorded is not None and recorded.error is not None:
            err = recorded.error  # the OS's reason, not the writer's rewording of it
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CheckpointWriteError(
            f"cannot write {path}: {type(err).__name__}: {why.strip()} (nothing was changed)"
        ) from err
    return path

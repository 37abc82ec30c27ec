"""Atomic writes: a temporary file in the destination folder, synced, then renamed over the
target; stale temporaries of killed writers cleaned up; destinations checked first."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
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


def _unnamed_file(folder: Path) -> int | None:
    """A file in ``folder`` with no name yet (Linux's ``O_TMPFILE``), or None where the
    platform, the file system or a missing ``/proc`` does not allow one: a writer killed
    before :func:`_link` leaves nothing behind, since the kernel frees the unnamed file."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_RDWR, 0o666)  # read back by _named_copy
    except OSError:  # EOPNOTSUPP, EISDIR (old kernels), EINVAL: the named fallback
        return None


def _link(fd: int, path: Path) -> bool:
    """Give the unnamed file ``fd`` its name: linked straight to ``path`` when it does not
    exist, else to a temporary name then renamed over it (replacing is atomic only so).
    False when the link is refused, so the caller falls back to a named copy."""
    source = f"/proc/self/fd/{fd}"
    try:
        folder = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        # a dir_fd makes os.link call linkat(AT_SYMLINK_FOLLOW), which names the file itself
        os.link(source, path.name, dst_dir_fd=folder, follow_symlinks=True)
        return True
    except FileExistsError:
        tmp = _temporary_name(path)
        try:
            os.link(source, tmp.name, dst_dir_fd=folder, follow_symlinks=True)
        except OSError:
            return False
    except OSError:
        return False
    finally:
        os.close(folder)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def _write_synced(fd: int, write: Callable[[Any], None], mode: int | None) -> None:
    """Run ``write`` on the open file ``fd`` (left open), flush and sync it, and give it
    ``mode``; an OS error the writer rewords is raised as the OS gave it."""
    recorded = None
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            recorded = _Recorded(f)
            write(recorded)
            recorded.flush()
            os.fsync(f.fileno())
            if mode is not None:
                os.fchmod(f.fileno(), mode)
    except Exception as err:
        if recorded is not None and recorded.error is not None and recorded.error is not err:
            raise recorded.error from err
        raise


def _named_copy(fd: int, path: Path) -> Path:
    """Copy the unnamed file ``fd`` into a named temporary file beside ``path`` (the link was
    refused) and return its name."""
    tmp, out_fd = _named_temporary(path)
    try:
        with os.fdopen(out_fd, "wb") as out, os.fdopen(os.dup(fd), "rb") as src:
            src.seek(0)
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fchmod(out.fileno(), stat.S_IMODE(os.fstat(fd).st_mode))
            os.fsync(out.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _temporary_name(path: Path) -> Path:
    """A fresh temporary name beside ``path`` that says whose it is, for
    :func:`remove_stale_temporaries`."""
    keep = path.name[:_TMP_NAME_KEEP]
    return path.parent / f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{keep}"


def _named_temporary(path: Path) -> tuple[Path, int]:
    """Create and open the named temporary file of a write to ``path`` (O_EXCL: never
    following or reusing a name; 0o666 lets the umask decide)."""
    tmp = _temporary_name(path)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        return tmp, os.open(tmp, flags, 0o666)
    except OSError as err:
        raise CheckpointWriteError(
            f"cannot write {path}: cannot create a file in {path.parent}: {err.strerror or err}"
        ) from err


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(binary_file)`` on a temporary file beside ``path``, sync it, then name
    it ``path``: a crash never leaves a half-written ``path``. On Linux the temporary file
    has no name until it is complete (``O_TMPFILE``, then ``linkat``), so a killed writer
    leaves nothing; elsewhere it is a named file renamed over ``path``, and the temporary
    files an earlier killed write left in the folder are removed first. On any error the
    temporary file is removed, ``path`` is left as it was, and :class:`CheckpointWriteError`
    says where and why. An existing file's mode is kept; a new file gets the umask's."""
    path = check_destination(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointWriteError(f"cannot write {path}: cannot make its folder: {err}") from err
    remove_stale_temporaries(folder)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else None
    fd = _unnamed_file(folder)
    tmp = None
    try:
        if fd is None:
            tmp, fd = _named_temporary(path)
        _write_synced(fd, write, mode)
        if tmp is None and not _link(fd, path):
            tmp = _named_copy(fd, path)
        if tmp is not None:
            os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if not isinstance(err, Exception) or isinstance(err, CheckpointWriteError):
            raise
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise CheckpointWriteError(
            f"cannot write {path}: {type(err).__name__}: {why.strip()} (nothing was changed)"
        ) from err
    finally:
        if fd is not None:
            os.close(fd)
    return path

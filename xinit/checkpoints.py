"""Checkpoint files, read and written safely: Paddle ``.pdparams``, PyTorch ``.pt``/``.pth``,
safetensors and Flax msgpack.

A checkpoint is held as a flat ``{name: numpy array}`` in the names and layout of the
framework that wrote it (its *convention*); :func:`xinit.port` converts between conventions.

* **Loading never runs code from a file.** A ``.pdparams`` is a pickle: it is read with a
  restricted unpickler that can build numpy arrays, dtypes and plain containers and nothing
  else; any other global (``os.system``, ``builtins.eval``, ...) is refused with
  :class:`UnsafeCheckpointError` naming it, before anything is called. PyTorch files are read
  with ``torch.load(weights_only=True)``; safetensors and msgpack cannot hold code.
* **Writes are atomic**: the file is written to a temporary file in the same folder, synced,
  then renamed over the target, so a crash never leaves a half-written checkpoint.
* A truncated or corrupted file raises :class:`CheckpointError` naming the file.

Formats (from the suffix unless ``format=`` is given): one per framework, named after it,
read and written by ``xinit.backends.<name>.checkpoint`` (``SUFFIXES``, ``read``, ``write``);
safetensors, the neutral format, is handled here:

========== ====================== ==================================================
format      suffixes               contents
========== ====================== ==================================================
paddle      .pdparams              ``paddle.save`` of a state dict (pickle protocol 4)
torch       .pt .pth .bin          ``torch.save`` of a state dict
safetensors .safetensors           the neutral format (``xinit.state_dict`` names)
flax        .msgpack .flax         ``flax.serialization`` msgpack of the nested pure dict
========== ====================== ==================================================
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import io
import os
import pickle
import re
import secrets
import stat
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xinit.backends import FRAMEWORKS
from xinit.backends import part as backend_part

# One format per framework, named after it, its reader/writer in
# ``xinit.backends.<name>.checkpoint``; plus safetensors, the neutral format, handled here.
NEUTRAL_FORMAT = "safetensors"
FORMATS = (*FRAMEWORKS, NEUTRAL_FORMAT)
SUFFIXES = {
    **{suffix: name for name in FRAMEWORKS for suffix in backend_part(name, "checkpoint").SUFFIXES},
    ".safetensors": NEUTRAL_FORMAT,
}
# The naming/layout convention each format's files use (see xinit.port).
CONVENTION = {**{name: name for name in FRAMEWORKS}, NEUTRAL_FORMAT: "neutral"}
# Keys paddle.save adds next to the tensors (defined with Paddle's format, kept here too).
PADDLE_NAME_TABLE = backend_part("paddle", "checkpoint").PADDLE_NAME_TABLE
PADDLE_BIG_PARAMS = backend_part("paddle", "checkpoint").PADDLE_BIG_PARAMS


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or written (the message names the file)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would run code when loaded; it was refused without running anything."""


def detect_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The checkpoint format of ``path``: ``format`` if given, else from the suffix."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"unknown checkpoint format {format!r}; accepted: {FORMATS}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"{os.fspath(path)}: cannot tell the checkpoint format from the suffix {suffix!r}; "
            f"pass format= one of {FORMATS} (known suffixes: {', '.join(SUFFIXES)})"
        )
    return SUFFIXES[suffix]


# ---- atomic writes -----------------------------------------------------------------------
# Temporary files of a write are named ``.xinit-tmp-<pid>-<random>-<name>`` in the target's
# folder, so those a killed process left behind can be recognised and removed later.
TMP_PREFIX = ".xinit-tmp-"
_TMP_PATTERN = re.compile(r"^\.xinit-tmp-(\d+)-[0-9a-f]{8}-")
_TMP_NAME_KEEP = 64  # characters of the target's name kept in the temporary file's name


class CheckpointWriteError(CheckpointError):
    """A file could not be written (the message says where and why); any earlier file at
    that path is left as it was."""


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


# ---- the restricted unpickler ------------------------------------------------------------
def _eval_data(*args, **kwargs):
    """Stands in for ``eval`` in Paddle's pickle of a bare DenseTensor, which is
    ``eval('data', {'data': ndarray})``: returns the array, evaluates nothing."""
    if (
        not kwargs
        and len(args) == 2
        and args[0] == "data"
        and isinstance(args[1], dict)
        and isinstance(args[1].get("data"), np.ndarray)
    ):
        return args[1]["data"]
    shown = repr(args[0])[:60] if args else ""
    raise UnsafeCheckpointError(
        f"refused to load: the pickle calls builtins.eval({shown}, ...), which is not the form "
        "Paddle uses for a tensor (nothing was evaluated)"
    )


def _codecs_encode(*args, **kwargs):
    """``_codecs.encode`` as protocol-2 pickles of bytes use it (``latin1``), nothing else."""
    text = args[0] if args else None
    encoding = args[1] if len(args) > 1 else kwargs.get("encoding", "utf-8")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or len(args) > 2:
        raise UnsafeCheckpointError("refused to load: _codecs.encode with unexpected arguments")
    return text.encode("latin1")


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as r
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as r
    return r


def _scalar():
    try:
        from numpy._core.multiarray import scalar as s
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar as s
    return s


_SAFE_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("builtins", "tuple"): lambda: tuple,  # Paddle's reduce of a tensor: tuple([(name, arr)])
    ("builtins", "list"): lambda: list,
    ("builtins", "dict"): lambda: dict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
    ("builtins", "eval"): lambda: _eval_data,  # never evaluates: see _eval_data
    ("_codecs", "encode"): lambda: _codecs_encode,
}
# numpy dtype classes (numpy.dtypes.Float32DType, ...) appear in some numpy-2 pickles.
_SAFE_MODULE_PREFIXES = ("numpy.dtypes",)


class RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes and containers only; refuses every other global."""

    def find_class(self, module: str, name: str):
        # Python 2 names, as protocol 2 pickles write them (__builtin__.eval -> builtins.eval)
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        factory = _SAFE_GLOBALS.get((module, name))
        if factory is not None:
            return factory()
        if module in _SAFE_MODULE_PREFIXES and name.endswith("DType"):
            import numpy.dtypes

            value = getattr(numpy.dtypes, name, None)
            if isinstance(value, type) and issubclass(value, np.dtype):
                return value
        raise UnsafeCheckpointError(
            f"refused to load: the pickle asks for the global {module}.{name}, which a "
            "checkpoint of arrays does not need (loading it could run code)"
        )

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(f"refused to load: persistent id {pid!r} in the pickle")


def safe_unpickle(data: bytes | Any) -> Any:
    """Unpickle ``data`` (bytes or a binary file) with :class:`RestrictedUnpickler`."""
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return RestrictedUnpickler(f, encoding="latin1").load()


# ---- flattening ----------------------------------------------------------------------------
def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}`` (keys become strings)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": x}`` -> ``{"a": {"b": x}}``; a name that is also a prefix is an error."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".")
        node = tree
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(
                    f"{name!r}: {'.'.join(parts[: i + 1])!r} is both a leaf and a prefix"
                )
            node = child
        if parts[-1] in node:
            raise ValueError(f"{name!r} is both a leaf and a prefix")
        node[parts[-1]] = value
    return tree


def _to_numpy_tree(obj: Any, where: str) -> Any:
    if isinstance(obj, np.ndarray):
        return obj
    if isinstance(obj, np.generic):
        return np.asarray(obj)
    if isinstance(obj, Mapping):
        return {k: _to_numpy_tree(v, where) for k, v in obj.items()}
    if isinstance(obj, (int, float, bool)):
        return np.asarray(obj)
    return obj


# ---- reading -----------------------------------------------------------------------------
def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.numpy import load

    return load(path.read_bytes())


def _reader(fmt: str) -> Callable[[Path], Any]:
    return _read_safetensors if fmt == NEUTRAL_FORMAT else backend_part(fmt, "checkpoint").read


def load_checkpoint(path: str | os.PathLike, *, format: str | None = None) -> dict[str, np.ndarray]:
    """Read a checkpoint file into a flat ``{name: numpy array}`` in the file's own names and
    layout (nested dicts flattened with dots, e.g. ``state_dict.conv1.weight``).

    Raises :class:`UnsafeCheckpointError` for a file that would run code,
    :class:`CheckpointError` for a truncated or corrupted one, ``FileNotFoundError``.
    """
    path = Path(path)
    fmt = detect_format(path, format)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {os.fspath(path)!r}")
    try:
        raw = _reader(fmt)(path)
    except CheckpointError as err:
        if os.fspath(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from None
    except ImportError:
        raise
    except Exception as err:  # noqa: BLE001 - every reader's own error means a bad file
        kind = type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable {fmt} checkpoint (truncated or corrupted?): {kind}: {err}"
        ) from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors; found {type(raw).__name__}")
    flat = flatten(_to_numpy_tree(raw, os.fspath(path)))
    bad = [k for k, v in flat.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(
            f"{path}: entries that are not arrays: "
            + ", ".join(f"{k} ({type(flat[k]).__name__})" for k in bad[:10])
        )
    return flat


# ---- writing -----------------------------------------------------------------------------
def _arrays(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from .state import as_numpy

    out = {}
    for key, value in state.items():
        array = as_numpy(value)
        out[str(key)] = array if array.flags.c_contiguous else array.copy(order="C")
    return out


def safetensors_bytes(
    state: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> bytes:
    """``state`` as a safetensors file, the same bytes for the same arrays and metadata:
    the header's keys are sorted (safetensors itself orders the metadata at random)."""
    import json

    from safetensors.numpy import save

    blob = save(dict(state), metadata=dict(metadata) if metadata else None)
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data that follows stays 8-byte aligned
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def _write_safetensors(state: dict[str, np.ndarray], f) -> None:
    f.write(safetensors_bytes(state))


def _writer(fmt: str) -> Callable[[dict[str, np.ndarray], Any], None]:
    return _write_safetensors if fmt == NEUTRAL_FORMAT else backend_part(fmt, "checkpoint").write


def save_checkpoint(
    state: Mapping[str, Any], path: str | os.PathLike, *, format: str | None = None
) -> Path:
    """Write a flat ``{name: array or tensor}`` atomically, as ``format``'s own tools write
    it (``paddle.load``, ``torch.load``, ``safetensors`` and ``flax.serialization`` read the
    files back). A Flax file holds the nested dict ``nnx.to_pure_dict(nnx.state(model))``
    has, dotted names split into levels."""
    fmt = detect_format(path, format)
    arrays = _arrays(state)
    writer = _writer(fmt)
    return atomic_write(path, lambda f: writer(arrays, f))


__all__ = [
    "load_checkpoint",
    "save_checkpoint",
    "detect_format",
    "atomic_write",
    "check_destination",
    "remove_stale_temporaries",
    "safetensors_bytes",
    "CheckpointWriteError",
    "safe_unpickle",
    "RestrictedUnpickler",
    "CheckpointError",
    "UnsafeCheckpointError",
    "FORMATS",
    "SUFFIXES",
    "CONVENTION",
    "PADDLE_NAME_TABLE",
    "PADDLE_BIG_PARAMS",
    "flatten",
    "unflatten",
]

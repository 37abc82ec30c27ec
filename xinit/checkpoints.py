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
from dataclasses import dataclass
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


# ---- read limits -------------------------------------------------------------------------
# A checkpoint holds its tensors' bytes (nothing xinit reads compresses them), so the data a
# file yields is bounded by its size. Reading stops with CheckpointError, before allocating,
# when the bytes it would create exceed SIZE_FACTOR times the file's size (tied weights and
# per-array overhead fit in that), or MIN_LIMIT for tiny files; ``max_bytes=`` overrides it.
SIZE_FACTOR = 4
MIN_LIMIT = 1 << 20  # bytes
MAX_ENTRIES = 200_000  # flattened names (the largest models have some 10^4 tensors)
MAX_DEPTH = 64  # nesting of dicts in a checkpoint (real ones have 1 to 3 levels)


def default_max_bytes(path: str | os.PathLike) -> int:
    """The default read limit of ``path``: ``SIZE_FACTOR`` x its size, at least ``MIN_LIMIT``."""
    return max(SIZE_FACTOR * os.path.getsize(path), MIN_LIMIT)


class ReadBudget:
    """Counts the bytes a reader is about to create and refuses to pass ``max_bytes``."""

    def __init__(self, path: str | os.PathLike, max_bytes: int, why: str = ""):
        self.path, self.max_bytes, self.used = os.fspath(path), int(max_bytes), 0
        self.why = why or f"{SIZE_FACTOR}x the file's size"

    def charge(self, nbytes: int, what: str) -> None:
        """Account for ``nbytes`` about to be allocated for ``what``; refuse past the limit."""
        self.used += int(nbytes)
        if self.used > self.max_bytes:
            raise CheckpointError(
                f"{self.path}: {what} would bring the data read to {self.used:,} bytes, over "
                f"the limit of {self.max_bytes:,} bytes ({self.why}); "
                "refused before allocating. Pass max_bytes= (xinit port --max-bytes) if the "
                "file is trusted"
            )


def _unbounded(path: str | os.PathLike = "") -> ReadBudget:
    return ReadBudget(path, 1 << 62)


# ---- plain dtypes --------------------------------------------------------------------------
# The only dtypes a checkpoint array may have: bool, ints, uints, floats and complex, built
# from these type codes, never from pickled dtype state (which can hide object fields).
PLAIN_CODES = frozenset(
    ["b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"]
)


def plain_dtype(code: Any, where: str = "") -> np.dtype:
    """The numpy dtype of a whitelisted type code (``"f4"``, ``"<i8"``), else refused."""
    if isinstance(code, bytes):
        code = code.decode("latin1")
    text = code if isinstance(code, str) else ""
    order, body = (text[0], text[1:]) if text[:1] in ("<", ">", "|", "=") else ("=", text)
    if body not in PLAIN_CODES:
        raise UnsafeCheckpointError(
            f"refused to load{where}: dtype {code!r} is not a plain numeric type "
            f"(accepted: {', '.join(sorted(PLAIN_CODES))})"
        )
    dtype = np.dtype(body)
    return dtype.newbyteorder(order) if order in ("<", ">") else dtype


def check_plain(array: np.ndarray, key: str) -> None:
    """Refuse an array whose dtype is not plain numeric (object, structured, sub-array)."""
    dt = array.dtype
    if dt.hasobject or dt.fields is not None or dt.subdtype is not None or dt.kind not in "biufc":
        raise UnsafeCheckpointError(
            f"{key}: dtype {dt!r} is not a plain numeric type (bool, int, uint, float, "
            "complex); refused"
        )


class _PickledDType:
    """Stands in for ``numpy.dtype`` in a pickle: a whitelisted code and a byte order only."""

    def __init__(self, code: Any, align: Any = False, copy: Any = True):
        self.refused: str | None = None  # why, if the array using it is to be refused
        try:
            self.dtype = plain_dtype(code)
        except UnsafeCheckpointError:
            self.dtype = np.dtype("u1")
            self.refused = f"dtype {code!r} is not a plain numeric type"

    def __setstate__(self, state: Any) -> None:
        ok = (
            isinstance(state, tuple)
            and len(state) >= 5
            and state[1] in ("<", ">", "|", "=")
            and state[2] is None  # no sub-array
            and state[3] is None  # no field names
            and state[4] is None  # no fields
        )
        if not ok:
            self.refused = (
                "its pickled dtype carries fields or a sub-array (it could hide objects); "
                "only plain numeric dtypes are accepted"
            )
            return
        if state[1] in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


def _as_dtype(value: Any) -> np.dtype:
    if isinstance(value, _PickledDType):
        return value.dtype
    raise UnsafeCheckpointError(f"refused to load: {type(value).__name__} where a dtype belongs")


def _count(shape: Any, what: str) -> int:
    """The element count of a declared shape: non-negative ints, product in Python ints."""
    if not isinstance(shape, (tuple, list)) or len(shape) > 32:
        raise CheckpointError(f"{what}: bad shape {shape!r}")
    count = 1
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise CheckpointError(f"{what}: bad shape {shape!r}")
        count *= n
    return count


class _PickledArray(np.ndarray):
    """What numpy's ``_reconstruct`` makes while unpickling: its ``__setstate__`` checks the
    dtype, the shape and that the data holds exactly the declared bytes, and charges them to
    the read budget before numpy builds the array."""

    def __setstate__(self, state: Any) -> None:
        budget = self.__dict__.pop("_budget", None) or _unbounded()
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointError("bad array state in the pickle")
        shape, dtype, fortran, data = state[-4:]
        if isinstance(dtype, _PickledDType) and dtype.refused:
            self.__dict__["refused"] = dtype.refused  # refused by key once the key is known
            return
        dtype = _as_dtype(dtype)
        if isinstance(data, str):  # protocol 2 pickles of Python 2 strings
            budget.charge(len(data), "an array's data")
            data = data.encode("latin1")
        if not isinstance(data, (bytes, bytearray)):
            raise UnsafeCheckpointError(
                f"refused to load: array data is a {type(data).__name__}, not bytes "
                "(object arrays are not accepted)"
            )
        nbytes = _count(shape, "an array") * dtype.itemsize
        if nbytes != len(data):
            raise CheckpointError(
                f"an array declares shape {tuple(shape)} {dtype} ({nbytes:,} bytes) but holds "
                f"{len(data):,} bytes"
            )
        budget.charge(nbytes, f"an array of shape {tuple(shape)}")
        super().__setstate__((1, tuple(shape), dtype, bool(fortran), data))


@dataclass(frozen=True)
class Refused:
    """An array the unpickler would not build (its reason), reported under its key."""

    reason: str


class _NDArrayName:
    """``numpy.ndarray`` in a pickle: allowed as the class ``_reconstruct`` is given, refused
    as a call (it makes arrays of any size, or with zero strides, from a few bytes)."""

    def __call__(self, *args, **kwargs):
        raise UnsafeCheckpointError(
            "refused to load: the pickle calls numpy.ndarray(...) directly (numpy itself "
            "pickles arrays with _reconstruct; a direct call can declare any size or strides)"
        )


_NDARRAY = _NDArrayName()


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


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as r
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct as r
    return r


def _safe_scalar(dtype: Any, data: Any = None) -> np.generic:
    """``numpy.core.multiarray.scalar``: one value of a plain dtype from exactly its bytes."""
    dtype = _as_dtype(dtype)
    if isinstance(data, str):
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise UnsafeCheckpointError("refused to load: a numpy scalar without its exact bytes")
    return np.frombuffer(data, dtype)[0]


_CONTAINERS: dict[tuple[str, str], Callable[[], type]] = {
    ("collections", "OrderedDict"): lambda: __import__("collections").OrderedDict,
    ("builtins", "tuple"): lambda: tuple,  # Paddle's reduce of a tensor: tuple([(name, arr)])
    ("builtins", "list"): lambda: list,
    ("builtins", "dict"): lambda: dict,
    ("builtins", "set"): lambda: set,
    ("builtins", "frozenset"): lambda: frozenset,
}
# numpy dtype classes (numpy.dtypes.Float32DType, ...) appear in some numpy-2 pickles.
_SAFE_MODULE_PREFIXES = ("numpy.dtypes",)


class RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays of plain dtypes and plain containers only; refuses every other
    global. Every array, string and container it builds is charged to a :class:`ReadBudget`
    first, so a small file cannot inflate (memo references, zero strides) past the limit."""

    def __init__(self, file, *, budget: ReadBudget | None = None, **kwargs):
        super().__init__(file, **kwargs)
        self.budget = budget or _unbounded()

    def _reconstruct(self, cls: Any, shape: Any = None, code: Any = None) -> np.ndarray:
        if cls is not _NDARRAY:
            raise UnsafeCheckpointError(
                f"refused to load: _reconstruct of {type(cls).__name__}, not numpy.ndarray"
            )
        array = _numpy_reconstruct()(_PickledArray, (0,), b"b")  # filled by __setstate__
        array.__dict__["_budget"] = self.budget
        return array

    def _encode(self, *args, **kwargs) -> bytes:
        if args and isinstance(args[0], str):
            self.budget.charge(len(args[0]), "a string's bytes")
        return _codecs_encode(*args, **kwargs)

    def _container(self, kind: type) -> Callable[..., Any]:
        def make(*args, **kwargs):
            if kwargs or len(args) > 1:
                raise UnsafeCheckpointError(f"refused to load: {kind.__name__} with keywords")
            if args:
                try:
                    size = len(args[0])
                except TypeError:
                    size = 0
                self.budget.charge(16 * size, f"a {kind.__name__} of {size} items")
            return kind(*args)

        return make

    def find_class(self, module: str, name: str):
        # Python 2 names, as protocol 2 pickles write them (__builtin__.eval -> builtins.eval)
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        numpy_core = module in ("numpy._core.multiarray", "numpy.core.multiarray")
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return _PickledDType
        if numpy_core and name == "_reconstruct":
            return self._reconstruct
        if numpy_core and name == "scalar":
            return _safe_scalar
        if (module, name) == ("builtins", "eval"):
            return _eval_data  # never evaluates: see _eval_data
        if (module, name) == ("_codecs", "encode"):
            return self._encode
        if (module, name) in _CONTAINERS:
            return self._container(_CONTAINERS[module, name]())
        if module in _SAFE_MODULE_PREFIXES and name.endswith("DType"):
            import numpy.dtypes

            value = getattr(numpy.dtypes, name, None)
            if isinstance(value, type) and issubclass(value, np.dtype):
                code = np.dtype(value.type).str if hasattr(value, "type") else ""
                return lambda *args, **kwargs: _PickledDType(code)
        raise UnsafeCheckpointError(
            f"refused to load: the pickle asks for the global {module}.{name}, which a "
            "checkpoint of arrays does not need (loading it could run code)"
        )

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(f"refused to load: persistent id {pid!r} in the pickle")


def safe_unpickle(data: bytes | Any, *, budget: ReadBudget | None = None) -> Any:
    """Unpickle ``data`` (bytes or a binary file) with :class:`RestrictedUnpickler`; arrays
    come back as plain ``numpy.ndarray`` of plain numeric dtypes."""
    f = io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
    return _plain_arrays(RestrictedUnpickler(f, encoding="latin1", budget=budget).load())


def _plain_arrays(obj: Any, depth: int = 0, seen: dict | None = None) -> Any:
    """The unpickled tree with every :class:`_PickledArray` as a plain ndarray (dicts,
    lists and tuples rebuilt once each, however often referenced; nesting deeper than
    ``MAX_DEPTH`` or a cycle is refused)."""
    seen = {} if seen is None else seen
    if isinstance(obj, np.ndarray):
        if type(obj) is np.ndarray:
            return obj
        refused = obj.__dict__.get("refused")
        return Refused(refused) if refused else obj.view(np.ndarray)
    if not isinstance(obj, (dict, list, tuple)):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if depth >= MAX_DEPTH:
        raise CheckpointError(
            f"containers nested deeper than {MAX_DEPTH} levels (or a container that holds "
            "itself); not a checkpoint of arrays"
        )
    if isinstance(obj, dict):
        out: Any = type(obj)((k, _plain_arrays(v, depth + 1, seen)) for k, v in obj.items())
    else:
        items = [_plain_arrays(v, depth + 1, seen) for v in obj]
        out = items if isinstance(obj, list) else tuple(items)
    seen[id(obj)] = out
    return out


# ---- flattening ----------------------------------------------------------------------------
def flatten(tree: Mapping, prefix: str = "", *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}`` (keys become strings).

    Two entries that become the same name (``"a.b"`` next to ``{"a": {"b": ...}}``, or the
    keys ``1`` and ``"1"``) raise :class:`CheckpointError` naming both; so does a dict that
    holds itself or nesting deeper than ``max_depth``."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def visit(node: Mapping, name: str, shown: str, depth: int, active: tuple) -> None:
        if depth > max_depth or id(node) in active:
            raise CheckpointError(
                f"{shown or 'the checkpoint'}: dicts nested deeper than {max_depth} levels "
                "or a dict that holds itself; not a checkpoint of arrays"
            )
        for key, value in node.items():
            full = f"{name}.{key}" if name else str(key)
            where = f"{shown}[{key!r}]"
            if isinstance(value, Mapping):
                visit(value, full, where, depth + 1, (*active, id(node)))
                continue
            if len(out) >= MAX_ENTRIES:
                raise CheckpointError(
                    f"more than {MAX_ENTRIES:,} entries (shared dicts repeated?); "
                    "not a checkpoint of arrays"
                )
            if full in out:
                raise CheckpointError(
                    f"two entries both become the key {full!r}: {origin[full]} and {where}; "
                    "rename one (neither was dropped)"
                )
            out[full], origin[full] = value, where

    visit(tree, prefix, "", 0, ())
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


def _leaf_arrays(flat: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars and Python numbers as 0-d arrays; everything else unchanged."""
    out = {}
    for key, value in flat.items():
        if isinstance(value, np.generic) or (
            isinstance(value, (int, float, bool)) and not isinstance(value, np.ndarray)
        ):
            value = np.asarray(value)
        out[key] = value
    return out


class LoadedCheckpoint(dict):
    """``{name: numpy array}`` as read from a file, with ``notes``: what the reader changed
    (a wrapper unwrapped, bfloat16 widened), for reports to show."""

    notes: list[str]

    def __init__(self, *args, notes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = list(notes or [])


# Entries a training script wraps a state dict in ({"state_dict": ..., "epoch": 3}).
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def unwrap(tree: Any, notes: list[str]) -> Any:
    """The state dict inside a training wrapper (``{"state_dict": {...}, "epoch": 3,
    "arch": "resnet18"}``, ``{"model": {...}}``), one note per level unwrapped. A dict that
    holds arrays at its top level is a state dict already and is returned as it is."""
    for _ in range(3):
        if not isinstance(tree, Mapping) or any(
            isinstance(v, np.ndarray) and v.ndim > 0 for v in tree.values()
        ):
            return tree
        key = next((k for k in WRAPPER_KEYS if isinstance(tree.get(k), Mapping)), None)
        if key is None:
            return tree
        aside = [str(k) for k in tree if k != key]
        shown = ", ".join(aside[:5]) + (", ..." if len(aside) > 5 else "")
        notes.append(
            f"unwrapped the checkpoint's {key!r} entry"
            + (f" (left aside: {shown})" if aside else "")
        )
        tree = tree[key]
    return tree


# ---- reading -----------------------------------------------------------------------------
# safetensors dtype names -> numpy (BF16 is widened to float32: numpy has no bfloat16).
SAFETENSORS_DTYPES = {
    "BOOL": "b1", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
    "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4",
    "F64": "<f8",
}  # fmt: skip
SAFETENSORS_MAX_HEADER = 100 << 20


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (as their uint16 bit patterns) widened exactly to float32."""
    return (bits.astype("<u4") << 16).view("<f4").astype(np.float32)


def _read_safetensors(path: Path, budget: ReadBudget, notes: list[str]) -> dict[str, Any]:
    """The safetensors file at ``path``, its header checked against the file's bytes before
    any array is made (dtype, shape, offsets inside the data, sizes that match)."""
    import json
    import struct

    budget.charge(path.stat().st_size, "the file itself")  # its arrays are views of it
    data = bytearray(path.stat().st_size)
    with open(path, "rb") as f:
        got = f.readinto(data)
    if got < 8:
        raise CheckpointError(f"{path}: {got} bytes, too short for a safetensors header")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > min(len(data) - 8, SAFETENSORS_MAX_HEADER):
        raise CheckpointError(f"{path}: header of {size:,} bytes in a {len(data):,}-byte file")
    header = json.loads(bytes(data[8 : 8 + size]))
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    body = memoryview(data)[8 + size :]
    out: dict[str, Any] = {}
    widened = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            kind = entry.get("dtype") if isinstance(entry, dict) else entry
            raise CheckpointError(f"{name}: unsupported safetensors dtype {kind!r}")
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
        count = _count(entry.get("shape"), name)
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= len(body)
            or offsets[1] - offsets[0] != count * dtype.itemsize
        ):
            raise CheckpointError(
                f"{name}: data_offsets {offsets!r} do not hold shape {entry.get('shape')} "
                f"{entry['dtype']} inside the {len(body):,} data bytes"
            )
        array = np.frombuffer(body, dtype, count, offsets[0]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            budget.charge(4 * count, f"{name} widened from bfloat16")
            array = bf16_to_float32(array)
            widened.append(name)
        out[name] = array
    if widened:
        notes.append(f"{len(widened)} bfloat16 tensors widened exactly to float32")
    return out


def _reader(fmt: str) -> Callable[[Path, ReadBudget, list[str]], Any]:
    return _read_safetensors if fmt == NEUTRAL_FORMAT else backend_part(fmt, "checkpoint").read


def load_checkpoint(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    max_bytes: int | None = None,
    unwrap_wrappers: bool = False,
    limit_reason: str = "",
) -> LoadedCheckpoint:
    """Read a checkpoint file into a flat ``{name: numpy array}`` in the file's own names and
    layout (nested dicts flattened with dots, e.g. ``state_dict.conv1.weight``).

    Reading is bounded: the arrays (and strings, containers) a file yields may total at
    most ``max_bytes``, by default ``SIZE_FACTOR`` x the file's size (at least
    ``MIN_LIMIT``); declared sizes are checked before anything is allocated. Arrays have
    plain numeric dtypes only (``limit_reason`` says where a given ``max_bytes`` comes from,
    for the error). ``unwrap_wrappers=True`` takes the state dict out of a
    training wrapper (``{"state_dict": ..., "epoch": 3}``) and says so in ``.notes``.

    Raises :class:`UnsafeCheckpointError` for a file that would run code or hides objects,
    :class:`CheckpointError` for a truncated, corrupted, oversized or unreadable one,
    ``FileNotFoundError``.
    """
    path = Path(path)
    fmt = detect_format(path, format)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {os.fspath(path)!r}")
    limit = default_max_bytes(path) if max_bytes is None else int(max_bytes)
    why = limit_reason if max_bytes is not None and limit_reason else ""
    if max_bytes is not None and not why:
        why = "max_bytes"
    budget, notes = ReadBudget(path, limit, why), []
    try:
        raw = _reader(fmt)(path, budget, notes)
    except CheckpointError as err:
        if os.fspath(path) in str(err):
            raise
        raise type(err)(f"{path}: {err}") from None
    except ImportError:
        raise
    except OSError as err:  # permissions, a folder, I/O: not a damaged file
        raise CheckpointError(f"{path}: cannot read the file: {err.strerror or err}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a checkpoint") from None
    except Exception as err:  # noqa: BLE001 - every reader's own error means a bad file
        kind = type(err).__name__
        raise CheckpointError(
            f"{path}: not a readable {fmt} checkpoint (truncated or corrupted?): {kind}: {err}"
        ) from None
    if unwrap_wrappers and fmt != "flax":
        raw = unwrap(raw, notes)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors; found {type(raw).__name__}")
    try:
        flat = _leaf_arrays(flatten(raw))
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    refused = [k for k, v in flat.items() if isinstance(v, Refused)]
    if refused:
        raise UnsafeCheckpointError(
            f"{path}: refused to load " + "; ".join(f"{k}: {flat[k].reason}" for k in refused[:5])
        )
    bad = [k for k, v in flat.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise CheckpointError(
            f"{path}: entries that are not arrays: "
            + ", ".join(f"{k} ({type(flat[k]).__name__})" for k in bad[:10])
        )
    total = 0
    for key, array in flat.items():
        check_plain(array, f"{path}: {key}")
        total += array.nbytes
    if total > limit:  # one array under many names: every name is a copy downstream
        raise CheckpointError(
            f"{path}: its {len(flat)} entries hold {total:,} bytes, over the limit of "
            f"{limit:,} bytes ({budget.why}; the same array under many names?); pass "
            "max_bytes= (xinit port --max-bytes) if the file is trusted"
        )
    return LoadedCheckpoint(flat, notes=notes)


# ---- writing -----------------------------------------------------------------------------
def _arrays(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from .state import as_numpy

    out: dict[str, np.ndarray] = {}
    origin: dict[str, Any] = {}
    for key, value in state.items():
        if str(key) in out:
            raise CheckpointError(
                f"the keys {origin[str(key)]!r} and {key!r} both become the name {str(key)!r}; "
                "rename one (nothing was written)"
            )
        origin[str(key)] = key
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
    "unwrap",
    "LoadedCheckpoint",
    "ReadBudget",
    "default_max_bytes",
    "plain_dtype",
    "check_plain",
    "SIZE_FACTOR",
    "MIN_LIMIT",
]

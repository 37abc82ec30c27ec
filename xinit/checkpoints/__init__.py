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
  then named as the target, so a crash never leaves a half-written checkpoint (on Linux the
  temporary file has no name until then, so a killed writer leaves nothing at all).
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

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xinit.backends import FRAMEWORKS
from xinit.backends import part as backend_part

from .atomic import (  # noqa: F401 - the package's names
    TMP_PREFIX,
    atomic_write,
    check_destination,
    remove_stale_temporaries,
)
from .errors import (  # noqa: F401 - re-exported
    CheckpointError,
    CheckpointWriteError,
    UnsafeCheckpointError,
)
from .limits import (  # noqa: F401 - the package's names
    MAX_DEPTH,
    MAX_ENTRIES,
    MIN_LIMIT,
    PLAIN_CODES,
    SIZE_FACTOR,
    ReadBudget,
    Refused,
    _count,
    check_plain,
    default_max_bytes,
    plain_dtype,
)
from .safe_pickle import (  # noqa: F401 - the package's names
    RestrictedUnpickler,
    safe_unpickle,
)
from .safetensors import (  # noqa: F401 - the package's names
    SAFETENSORS_DTYPES,
    _read_safetensors,
    _write_safetensors,
    bf16_to_float32,
    safetensors_bytes,
)
from .tree import (  # noqa: F401 - the package's names
    WRAPPER_KEYS,
    LoadedCheckpoint,
    _leaf_arrays,
    flatten,
    unflatten,
    unwrap,
)

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


def detect_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The checkpoint format of ``path``: ``format`` if given, else from the suffix."""
    if format is not None:
        if format not in FORMATS:
            raise CheckpointError(f"unknown checkpoint format {format!r}; accepted: {FORMATS}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise CheckpointError(
            f"{os.fspath(path)}: cannot tell the checkpoint format from the suffix {suffix!r}; "
            f"pass format= one of {FORMATS} (known suffixes: {', '.join(SUFFIXES)})"
        )
    return SUFFIXES[suffix]


# ---- reading -----------------------------------------------------------------------------
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
    from xinit.parammap import contiguous
    from xinit.state import as_numpy

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
        try:
            check_plain(array, repr(str(key)))  # object arrays would pickle code into the file
        except UnsafeCheckpointError as err:
            raise CheckpointWriteError(f"cannot write {err} (nothing was written)") from None
        out[str(key)] = contiguous(array)
    return out


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

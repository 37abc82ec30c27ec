"""Read limits and plain dtypes: what a checkpoint may make a reader allocate, checked
before allocating, and the only dtypes its arrays may have."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import CheckpointError, UnsafeCheckpointError

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

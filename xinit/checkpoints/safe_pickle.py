"""The restricted unpickler: a pickle of arrays and containers is read without running any
code from the file (every global outside a short list is refused, naming it)."""

from __future__ import annotations

import _compat_pickle
import io
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import CheckpointError, UnsafeCheckpointError
from .limits import (
    _NDARRAY,
    MAX_DEPTH,
    ReadBudget,
    Refused,
    _as_dtype,
    _PickledArray,
    _PickledDType,
    _unbounded,
)


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

"""Paddle's checkpoint format: ``.pdparams`` (``paddle.save`` of a state dict, a pickle).

Needs no framework: files are read with :func:`xinit.checkpoints.safe_unpickle`, which builds
numpy arrays of plain dtypes and plain containers only, within a read budget, and written as
``paddle.save`` writes them.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".pdparams", ".pdopt")

# Keys paddle.save adds next to the tensors.
PADDLE_NAME_TABLE = "StructuredToParameterName@@"
PADDLE_BIG_PARAMS = "UnpackBigParamInfor@@"  # typos: disable-line (Paddle's spelling)


def _join_slices(obj: dict, key: Any, info: Any, budget) -> np.ndarray:
    """One tensor paddle.save split into flat slices, joined after checking that the slices
    exist, are 1-d arrays and hold exactly ``OriginShape``'s elements."""
    from xinit.checkpoints import CheckpointError, Refused, UnsafeCheckpointError, _count

    where = f"{PADDLE_BIG_PARAMS}[{key!r}]"
    if not isinstance(info, Mapping) or not isinstance(info.get("slices"), (list, tuple)):
        raise CheckpointError(f"{where}: expected {{'OriginShape': ..., 'slices': [...]}}")
    shape = tuple(info.get("OriginShape", ()) or ())
    count = _count(shape, where)
    names = list(info["slices"])
    if len(set(map(str, names))) != len(names):
        raise CheckpointError(f"{where}: a slice is listed twice")
    parts = []
    for name in names:
        part = obj.pop(name, None)
        if isinstance(part, tuple) and len(part) == 2:
            part = part[1]
        if isinstance(part, Refused):
            raise UnsafeCheckpointError(f"{where}: slice {name!r}: {part.reason}")
        if not isinstance(part, np.ndarray) or part.ndim != 1:
            raise CheckpointError(f"{where}: slice {name!r} is missing or not a 1-d array")
        parts.append(part)
    if sum(p.size for p in parts) != count or len({p.dtype for p in parts}) > 1:
        raise CheckpointError(
            f"{where}: slices hold {sum(p.size for p in parts):,} values of "
            f"{sorted({str(p.dtype) for p in parts})}; OriginShape {shape} needs {count:,}"
        )
    budget.charge(sum(p.nbytes for p in parts), f"{where} joined")
    return np.concatenate(parts).reshape(shape)


def read(path: Path, budget=None, notes: list[str] | None = None) -> dict[str, Any]:
    """The state dict in ``path``: arrays under their structured names, Paddle's extra keys
    dropped and tensors split over several slices joined again."""
    from xinit.checkpoints import CheckpointError, ReadBudget, safe_unpickle

    budget = budget or ReadBudget(path, 1 << 62)
    with open(path, "rb") as f:
        obj = safe_unpickle(f, budget=budget)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: a .pdparams should hold a dict; found {type(obj).__name__}")
    obj = dict(obj)
    obj.pop(PADDLE_NAME_TABLE, None)
    big = obj.pop(PADDLE_BIG_PARAMS, None)
    if big:  # protocol 2/3 files split tensors of over 1 GiB into flat slices
        if not isinstance(big, Mapping):
            raise CheckpointError(f"{path}: {PADDLE_BIG_PARAMS} is not a dict")
        for key, info in big.items():
            obj[key] = _join_slices(obj, key, info, budget)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]  # Paddle's pickled Tensor: (name, array)
        out[key] = value
    return out


def write(state: dict[str, np.ndarray], f) -> None:
    """What paddle.save writes for a state dict: the arrays, plus the name table paddle.load
    consults to turn them back into tensors (structured name -> parameter name)."""
    obj: dict[str, Any] = dict(state)
    obj[PADDLE_NAME_TABLE] = {k: k for k in state}
    pickle.dump(obj, f, protocol=4)

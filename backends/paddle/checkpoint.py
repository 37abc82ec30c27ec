"""Paddle's checkpoint format: ``.pdparams`` (``paddle.save`` of a state dict, a pickle).

Needs no framework: files are read with :func:`xinit.checkpoints.safe_unpickle`, which builds
numpy arrays and plain containers only, and written as ``paddle.save`` writes them.
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


def read(path: Path) -> dict[str, Any]:
    """The state dict in ``path``: arrays under their structured names, Paddle's extra keys
    dropped and tensors split over several slices joined again."""
    from xinit.checkpoints import CheckpointError, safe_unpickle

    with open(path, "rb") as f:
        obj = safe_unpickle(f)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: a .pdparams should hold a dict; found {type(obj).__name__}")
    obj = dict(obj)
    obj.pop(PADDLE_NAME_TABLE, None)
    big = obj.pop(PADDLE_BIG_PARAMS, None)
    if big:  # protocol 2/3 files split tensors of over 1 GiB into flat slices
        for key, info in big.items():
            parts = [obj.pop(name) for name in info["slices"]]
            obj[key] = np.concatenate(parts).reshape(info["OriginShape"])
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

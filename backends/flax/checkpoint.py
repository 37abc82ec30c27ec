"""Flax's checkpoint format: ``flax.serialization`` msgpack of the nested pure dict
(``.msgpack``, ``.flax``), the tree ``nnx.to_pure_dict(nnx.state(model))`` has.

Importing this module imports nothing heavy; ``read`` and ``write`` import flax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".msgpack", ".flax")


def read(path: Path, budget=None, notes: list[str] | None = None) -> dict[str, Any]:
    """The nested dict in ``path`` (the caller flattens it with dots and checks the total
    against the read budget: msgpack stores arrays' bytes as they are)."""
    from flax import serialization

    return serialization.msgpack_restore(path.read_bytes())


def write(state: dict[str, np.ndarray], f) -> None:
    """The flat ``state``, dotted names split into levels, as msgpack."""
    from flax import serialization

    from xinit.checkpoints import unflatten

    f.write(serialization.msgpack_serialize(unflatten(state)))

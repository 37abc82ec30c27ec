"""Sharded parameters (docs/scale.md): each rank or device computes only its box of the
single-device init. The adapter's part is the :class:`Sharding` hooks; :func:`box_values`
computes a box in any layout."""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from xinit.distributions import (
    ConstantDist,
    DiracDist,
    Distribution,
    EyeDist,
    OrthogonalDist,
)
from xinit.errors import XinitError

from .blocked_copy import copy_into


class Sharding:
    """How an adapter finds and fills sharded parameters (torch DTensor, Paddle dist tensors,
    JAX ``NamedSharding``): all optional; without them a parameter is never sharded."""

    name: str  # the framework (the adapter sets it)

    def sharded_leaf(self, layer: Any, name: str) -> Any | None:
        """The native parameter ``name`` of ``layer`` when it is sharded, else None."""
        return None

    def sharded_native(self, holder: Any) -> Any | None:
        """``holder`` (a native parameter) when it is sharded, else None."""
        return None

    def fill_shards(self, holder, dist, shape, perm, *, seed: int, path: str, rng: str) -> None:
        """Fill each local shard of sharded ``holder`` with its block of the single-device
        init of neutral ``shape`` (``perm``: neutral -> native axes)."""
        raise NotImplementedError(f"the {self.name} adapter cannot fill sharded parameters")


BAND = 1 << 20  # neutral values computed at a time for a transposed box (4 MB of scratch)
_BANDS = threading.local()


def _band_scratch(n: int) -> np.ndarray:
    """A float32 buffer of at least ``n`` values: up to :data:`BAND` one kept per thread and
    reused (a band freed after every shard would leave holes between the shards in the
    allocator's heap); a longer one (one neutral row above BAND) for this call only."""
    if n > BAND:
        return np.empty(n, np.float32)
    buf = getattr(_BANDS, "buf", None)
    if buf is None:
        buf = _BANDS.buf = np.empty(BAND, np.float32)
    return buf


class ShardingError(XinitError, ValueError):
    """A sharded parameter xinit cannot fill shard by shard (placement, generator or law)."""


def box_values(
    dist: Distribution,
    shape: tuple[int, ...],
    perm: tuple[int, ...] | None,
    offset: tuple[int, ...],
    size: tuple[int, ...],
    *,
    seed: int,
    path: str,
    rng: str,
    where: str,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The native-layout box ``[offset, offset + size)`` of the parameter at ``path`` (neutral
    ``shape``; ``perm`` neutral -> native axes): exactly that block of the single-process
    init, computed without the rest. ``where`` names the sharding for errors. ``out``: a
    float32 array of shape ``size`` to write into (C-contiguous when ``perm`` is None).

    A transposed box (Flax and Paddle kernels) is computed in bands of at most :data:`BAND`
    neutral values, each written transposed into ``out``: the scratch is one band, never a
    second shard."""
    from xinit.rng import keyed_box

    if rng != "xinit":
        raise ShardingError(
            f"{path}: sharded over {where}: rng={rng!r} would draw each shard with its own "
            "generator, so values would depend on the world size; use rng='xinit'"
        )
    size = tuple(int(n) for n in size)
    if isinstance(dist, ConstantDist):
        if out is None:
            return np.full(size, dist.value, np.float32)
        out[...] = dist.value
        return out
    if isinstance(dist, (DiracDist, EyeDist, OrthogonalDist)):
        raise ShardingError(
            f"{path}: sharded over {where}: {dist.describe()} is constructed from the whole "
            "tensor, which xinit does not build on one rank; initialise it before sharding"
        )
    if perm is None or perm == tuple(range(len(perm))):
        return keyed_box(dist, shape, seed, path, offset, size, out=out)
    out = np.empty(size, np.float32) if out is None else out
    if 0 in size:
        return out
    n_off, n_size = [0] * len(perm), [0] * len(perm)
    for j, axis in enumerate(perm):  # native axis j is neutral axis perm[j]
        n_off[axis], n_size[axis] = int(offset[j]), size[j]
    inner = math.prod(n_size[1:])
    rows = max(1, BAND // inner)  # neutral axis-0 rows per band
    scratch = _band_scratch(min(rows, n_size[0]) * inner)
    lead = [slice(None)] * perm.index(0)  # native axes before the one neutral axis 0 is
    for r0 in range(0, n_size[0], rows):
        r1 = min(r0 + rows, n_size[0])
        band = scratch[: (r1 - r0) * inner].reshape(r1 - r0, *n_size[1:])
        keyed_box(dist, shape, seed, path, (n_off[0] + r0, *n_off[1:]), band.shape, out=band)
        copy_into(out[(*lead, slice(r0, r1))], band.transpose(perm))
    return out

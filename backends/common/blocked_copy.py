"""A one-pass copy of a strided (transposed) numpy view that stays in cache: how adapters
write a transposed layout (Flax and Paddle kernels, sharded boxes) without a temporary."""

from __future__ import annotations

import numpy as np

SLAB = 32  # rows per slab of a blocked copy (a slab of a ResNet kernel stays in L2)
SMALL_COPY = 1 << 16  # bytes: below this a strided copy stays in cache anyway


def copy_into(out: np.ndarray, src: np.ndarray) -> None:
    """Copy numpy ``src`` (any strides: a transposed view of another module's memory) into
    ``out`` of the same shape, one pass, no temporary.

    numpy copies a transposed view in the destination's order, so every read lands on a new
    cache line of the source and a ResNet kernel moves at ~0.5 GB/s. Copying it in slabs of
    ``SLAB`` along the source's outermost axis keeps each slab's source in cache (~4 GB/s
    here). Other layouts (already in order, small, or outermost axis short) copy directly.
    """
    if src.ndim < 2 or src.nbytes <= SMALL_COPY or abs(src.strides[-1]) == src.itemsize:
        np.copyto(out, src)
        return
    strides = [abs(s) if n > 1 else 0 for s, n in zip(src.strides, src.shape)]
    axis = strides.index(max(strides))
    if src.shape[axis] < 2 * SLAB:
        np.copyto(out, src)
        return
    index = [slice(None)] * src.ndim
    for start in range(0, src.shape[axis], SLAB):
        index[axis] = slice(start, start + SLAB)
        np.copyto(out[tuple(index)], src[tuple(index)])

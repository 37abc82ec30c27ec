"""Parameter maps: where each neutral parameter of a layer lives in a framework's module.

A lowering (``backends/<framework>/lowerings.py``) returns, beside the native module, a
:data:`ParamMap` ``{neutral leaf: (Leaf, ...)}``. Each :class:`Leaf` names one native tensor
(relative to the layer, e.g. ``"weight"``, ``"kernel"``, ``"q_proj.weight"``) and says how
it is laid out from the neutral (PyTorch) tensor:

1. ``part``: the slice ``(axis, start, stop)`` of the neutral tensor this leaf holds (one
   neutral tensor split over several native ones, as PyTorch's packed ``in_proj_weight`` is
   Paddle's ``q_proj``/``k_proj``/``v_proj``); None for the whole tensor;
2. ``perm``: the axis permutation from that (sliced) neutral tensor to the native layout
   (Paddle Linear ``(1, 0)``, Flax conv kernels ``(2, 3, 1, 0)``); None for the same layout;
3. ``shape``: the native shape, when the native tensor is a reshape of the permuted one (Flax
   attention kernels ``(in, heads, head_dim)``); None for no reshape;
4. ``into``: the slice ``(axis, start, stop)`` of the *native* tensor this neutral piece
   fills, with ``full`` its whole native shape (several neutral tensors packed into one
   native tensor: the reverse of ``part``); None when the piece is the whole native tensor.

An empty tuple means the framework keeps no counterpart (Paddle and Flax BatchNorm have no
``num_batches_tracked``). A lowering may also name native tensors that are no leaf of the
map (:class:`Extra`): second names of the same tensors (Paddle's RNNs save each weight under
two keys) and constants the framework keeps where the neutral spec has nothing.
Everything here is numpy: the same maps drive building, state, transfer, port and apply,
with or without the framework installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Leaf:
    """One native tensor holding (part of) a neutral parameter; see the module docstring."""

    name: str
    perm: tuple[int, ...] | None = None
    part: tuple[int, int, int] | None = None
    shape: tuple[int, ...] | None = None
    into: tuple[int, int, int] | None = None
    full: tuple[int, ...] | None = None

    def __post_init__(self):
        if (self.into is None) != (self.full is None):
            raise ValueError(f"Leaf {self.name!r}: into= and full= go together")

    def piece_shape(self, neutral_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of this leaf's piece in the native layout (before ``into`` packing)."""
        shape = list(neutral_shape)
        if self.part is not None:
            axis, start, stop = self.part
            shape[axis] = stop - start
        if self.perm is not None:
            shape = [shape[i] for i in self.perm]
        if self.shape is not None:
            if math.prod(self.shape) != math.prod(shape):
                raise ValueError(
                    f"Leaf {self.name!r}: native shape {self.shape} does not hold {tuple(shape)}"
                )
            return tuple(self.shape)
        return tuple(shape)

    def native_shape(self, neutral_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of the whole native tensor this leaf names."""
        return tuple(self.full) if self.full is not None else self.piece_shape(neutral_shape)

    @property
    def relaid(self) -> bool:
        """Whether the native values are not the neutral tensor as it is."""
        return any(x is not None for x in (self.perm, self.part, self.shape, self.into))


ParamMap = Mapping[str, tuple[Leaf, ...]]


@dataclass(frozen=True)
class Extra:
    """A native tensor of a layer that is no leaf of its parameter map: a second name of the
    leaf (or extra) named ``of``, or, when ``of`` is None, a constant of ``shape`` filled with
    ``fill`` (Paddle's bias-free RNN cells keep frozen zero biases). Checkpoints of the
    framework hold them; ``xinit.port`` reads them (a second name that differs from its tensor
    is an error) and writes them, so the framework's own loader finds every key it saves."""

    of: str | None = None
    shape: tuple[int, ...] = ()
    fill: float = 0.0


Extras = Mapping[str, Extra]


def same(name: str) -> tuple[Leaf, ...]:
    """The common case: one native tensor named ``name``, in the neutral layout."""
    return (Leaf(name),)


def contiguous(array: np.ndarray) -> np.ndarray:
    """C-contiguous, keeping 0-d arrays 0-d (``np.ascontiguousarray`` makes them 1-d)."""
    array = np.asarray(array)
    return array if array.flags.c_contiguous else array.copy(order="C")


def _slice(ndim: int, where: tuple[int, int, int]) -> tuple[slice, ...]:
    axis, start, stop = where
    index = [slice(None)] * ndim
    index[axis] = slice(start, stop)
    return tuple(index)


def piece(array: np.ndarray, leaf: Leaf) -> np.ndarray:
    """Leaf ``leaf``'s piece of neutral ``array`` in the native layout: a view where numpy
    can give one (slices and permutations are views; copy before handing it on)."""
    if leaf.part is not None:
        array = array[_slice(array.ndim, leaf.part)]
    if leaf.perm is not None:
        array = array.transpose(leaf.perm)
    if leaf.shape is not None:
        array = array.reshape(leaf.shape)
    return array


def unpiece(native: np.ndarray, leaf: Leaf, neutral_shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`piece`: leaf ``leaf``'s native tensor back to its neutral slice."""
    if leaf.into is not None:
        native = native[_slice(native.ndim, leaf.into)]
    shape = list(neutral_shape)
    if leaf.part is not None:
        axis, start, stop = leaf.part
        shape[axis] = stop - start
    if leaf.shape is not None:
        permuted = [shape[i] for i in leaf.perm] if leaf.perm is not None else shape
        native = native.reshape(permuted)
    if leaf.perm is not None:
        native = native.transpose(np.argsort(leaf.perm))
    return native


def to_native(array: np.ndarray, leaves: tuple[Leaf, ...]) -> dict[str, np.ndarray]:
    """A neutral tensor as its native tensors ``{leaf name: C-contiguous array}``.

    Packed leaves (``into``) come back as their whole native tensor with only this tensor's
    slice filled (zeros elsewhere); :func:`pack` merges several such pieces."""
    out: dict[str, np.ndarray] = {}
    for leaf in leaves:
        value = piece(array, leaf)
        if leaf.into is not None:
            whole = np.zeros(leaf.full, array.dtype)
            whole[_slice(len(leaf.full), leaf.into)] = value
            value = whole
        out[leaf.name] = contiguous(value)
    return out


def pack(into: dict[str, np.ndarray], name: str, leaf: Leaf, value: np.ndarray) -> None:
    """Write one neutral piece into ``into[name]``, allocating a packed tensor when needed."""
    if leaf.into is None:
        into[name] = contiguous(value)
        return
    whole = into.get(name)
    if whole is None:
        whole = into[name] = np.zeros(leaf.full, value.dtype)
    whole[_slice(len(leaf.full), leaf.into)] = value


def to_neutral(
    natives: Mapping[str, np.ndarray], leaves: tuple[Leaf, ...], shape: tuple[int, ...]
) -> np.ndarray:
    """The neutral tensor of ``shape`` from its native tensors ``{leaf name: array}``."""
    if len(leaves) == 1 and leaves[0].part is None:
        leaf = leaves[0]
        return unpiece(natives[leaf.name], leaf, shape)
    first = natives[leaves[0].name]
    out = np.empty(shape, first.dtype)
    for leaf in leaves:
        target = out[_slice(len(shape), leaf.part)] if leaf.part is not None else out
        target[...] = unpiece(natives[leaf.name], leaf, shape)
    return out


def check_cover(name: str, leaves: tuple[Leaf, ...], shape: tuple[int, ...]) -> None:
    """Raise unless the leaves' ``part`` slices tile the neutral tensor exactly once."""
    if not leaves or all(leaf.part is None for leaf in leaves):
        if len(leaves) > 1:
            raise ValueError(f"{name}: {len(leaves)} native leaves each claim the whole tensor")
        return
    axes = {leaf.part[0] for leaf in leaves if leaf.part is not None}
    if len(axes) != 1 or any(leaf.part is None for leaf in leaves):
        raise ValueError(f"{name}: split leaves must all slice one axis")
    axis = axes.pop()
    spans = sorted((leaf.part[1], leaf.part[2]) for leaf in leaves)
    edge = 0
    for start, stop in spans:
        if start != edge or stop <= start:
            raise ValueError(f"{name}: leaves {spans} do not tile axis {axis} of {shape}")
        edge = stop
    if edge != shape[axis]:
        raise ValueError(f"{name}: leaves {spans} do not tile axis {axis} of {shape}")


__all__ = [
    "Leaf",
    "ParamMap",
    "Extra",
    "Extras",
    "same",
    "piece",
    "unpiece",
    "to_native",
    "to_neutral",
    "pack",
]

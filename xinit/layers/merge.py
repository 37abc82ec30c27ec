"""Layers that merge several inputs: ``Add``, ``Mul``, ``Sub``, ``Div``, ``Concat``, ``MatMul``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dim


# ---- merges and resizing (graph nodes) ----------------------------------------------------
def broadcast_shape(who: str, shapes, names=None) -> tuple[int, ...]:
    """numpy's broadcast of ``shapes`` (aligned on the right, sizes equal or 1); SpecError
    naming each input's shape otherwise."""
    names = names or [f"input {i}" for i in range(len(shapes))]
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(-rank, 0):
        sizes = {s[axis] for s in shapes if len(s) >= -axis} - {1}
        if len(sizes) > 1:
            listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
            raise SpecError(f"{who} needs shapes that broadcast; got {listed}")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


@dataclass(frozen=True)
class Merge(Layer):
    """A parameter-free node of several inputs (a graph's ``add``, ``mul``, ``sub``, ``div``,
    ``concat``). ``merge_shape`` infers the output shape from the input shapes (numpy's
    broadcasting for the arithmetic ones); one input passes through."""

    def inputs_taken(self):
        return (1, None)

    def output_shape(self, shape):
        return self.merge_shape([tuple(shape)])

    def merge_shape(self, shapes, names=None) -> tuple[int, ...]:
        return broadcast_shape(self.kind, shapes, names)

    def merge_channels(self, channels: list[int | None]) -> int | None:
        known = {c for c in channels if c is not None}
        if len(known - {1}) > 1:
            raise SpecError(f"{self.kind} needs equal channel counts (or 1); got {channels}")
        return max(known) if known else None


@kinds.layer(
    example=lambda: kinds.Example(Add(), ((2, 3, 4, 4), (2, 3, 1, 1))),
)
@dataclass(frozen=True)
class Add(Merge):
    """Element-wise sum of the inputs (broadcast as numpy's)."""

    kind: ClassVar[str] = "add"


@kinds.layer(
    example=lambda: kinds.Example(Mul(), ((2, 3, 4, 4), (2, 3, 1, 1))),
)
@dataclass(frozen=True)
class Mul(Merge):
    """Element-wise product of the inputs (broadcast as numpy's: an SE block's
    (N, C, H, W) · (N, C, 1, 1))."""

    kind: ClassVar[str] = "mul"


@dataclass(frozen=True)
class _Binary(Layer):
    """Arithmetic on exactly two inputs, in order, broadcast as numpy's."""

    def inputs_taken(self):
        return (2, 2)

    def channels(self, c):
        return None  # the node's two inputs: known only with their shapes

    def output_shape(self, shape):
        return broadcast_shape(self.kind, [tuple(s) for s in shape])


@kinds.layer(
    example=lambda: kinds.Example(Sub(), ((2, 3, 4, 4), (2, 1, 4, 4))),
)
@dataclass(frozen=True)
class Sub(_Binary):
    """input 0 - input 1 (broadcast as numpy's)."""

    kind: ClassVar[str] = "sub"


@kinds.layer(
    example=lambda: kinds.Example(Div(), ((2, 3, 4, 4), (2, 3, 1, 1))),
)
@dataclass(frozen=True)
class Div(_Binary):
    """input 0 / input 1 (broadcast as numpy's)."""

    kind: ClassVar[str] = "div"


@kinds.layer(
    example=lambda: kinds.Example(MatMul(), ((2, 3, 4, 5), (2, 3, 5, 6))),
)
@dataclass(frozen=True)
class MatMul(Layer):
    """``torch.matmul(a, b)`` of the two inputs on the neutral arrays: a 1-d operand is a
    vector, the last two dims multiply and the ones before them broadcast."""

    kind: ClassVar[str] = "matmul"

    def inputs_taken(self):
        return (2, 2)

    def channels(self, c):
        return None

    def output_shape(self, shape):
        a, b = (tuple(s) for s in shape)
        if not a or not b:
            raise SpecError(f"MatMul takes arrays of 1 or more dims; got {a} and {b}")
        left, right = (1, *a) if len(a) == 1 else a, (*b, 1) if len(b) == 1 else b
        if left[-1] != right[-2]:
            raise SpecError(f"MatMul: {a} @ {b}: {left[-1]} columns against {right[-2]} rows")
        batch = broadcast_shape(self.kind, [left[:-2], right[:-2]])
        return (
            *batch,
            *(() if len(a) == 1 else (left[-2],)),
            *(() if len(b) == 1 else (right[-1],)),
        )


@kinds.layer(
    example=lambda: kinds.Example(Concat(1), ((2, 3, 4, 4), (2, 2, 4, 4))),
)
@dataclass(frozen=True)
class Concat(Merge):
    """Concatenation along neutral (channel-first) dim ``dim``, as ``torch.cat``: all other
    sizes must be equal."""

    kind: ClassVar[str] = "concat"
    dim: int = 1

    def merge_shape(self, shapes, names=None):
        names = names or [f"input {i}" for i in range(len(shapes))]
        ranks = {len(s) for s in shapes}
        listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
        if len(ranks) > 1:
            raise SpecError(f"concat needs inputs of one rank; got {listed}")
        d = _dim(self.dim, len(shapes[0]), "concat")
        rest = {tuple(s[:d]) + tuple(s[d + 1 :]) for s in shapes}
        if len(rest) > 1:
            raise SpecError(f"concat along dim {self.dim} needs equal other sizes; got {listed}")
        out = list(shapes[0])
        out[d] = sum(s[d] for s in shapes)
        return tuple(out)

    def merge_channels(self, channels):
        if self.dim in (2, -1):  # a sequence's features (N, L, D), or an image's H or W
            return None  # unknown without the rank
        if self.dim != 1:
            return super().merge_channels(channels)
        return None if None in channels else sum(channels)

"""Layers that merge several inputs: ``Add``, ``Mul``, ``Concat``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dim


# ---- merges and resizing (graph nodes) ----------------------------------------------------
@dataclass(frozen=True)
class Merge(Layer):
    """A parameter-free node of several inputs (a graph's ``add``, ``concat``, ``mul``).
    ``merge_shape`` infers the output shape from the input shapes; one input passes through."""

    def inputs_taken(self):
        return (1, None)

    def output_shape(self, shape):
        return self.merge_shape([tuple(shape)])

    def merge_shape(self, shapes, names=None) -> tuple[int, ...]:
        names = names or [f"input {i}" for i in range(len(shapes))]
        first = tuple(shapes[0])
        for shape in shapes[1:]:
            if tuple(shape) != first:
                listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
                raise SpecError(f"{self.kind} needs equal shapes; got {listed}")
        return first

    def merge_channels(self, channels: list[int | None]) -> int | None:
        known = {c for c in channels if c is not None}
        if len(known) > 1:
            raise SpecError(f"{self.kind} needs equal channel counts; got {channels}")
        return known.pop() if known else None


@kinds.layer(
    example=lambda: kinds.Example(Add(), ((2, 3, 4, 4), (2, 3, 4, 4))),
)
@dataclass(frozen=True)
class Add(Merge):
    """Element-wise sum of the inputs (equal shapes)."""

    kind: ClassVar[str] = "add"


@kinds.layer(
    example=lambda: kinds.Example(Mul(), ((2, 3, 4, 4), (2, 3, 4, 4))),
)
@dataclass(frozen=True)
class Mul(Merge):
    """Element-wise product of the inputs (equal shapes)."""

    kind: ClassVar[str] = "mul"


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
        if self.dim != 1:
            return super().merge_channels(channels)
        return None if None in channels else sum(channels)

"""Sequence lengths and the attention masks made of them: the position of a maximum, a
running sum, a comparison with a number, and the additive mask of keys past a length (what
ABINet's ``_get_length`` and ``_get_mask`` compute between its language passes).

Graphs carry floating arrays, so indices and truth values travel as floats of the input's
dtype (exact for counts below 2^24 in float32); every dim is neutral (batch = dim 0).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dim, _positive_int
from .channelwise import _finite_number
from .ops import _int

# op -> (x, value) -> bool array, on any framework's tensors
COMPARE_OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _not_batch_dim(obj, dim: int, shape) -> int:
    d = _dim(dim, len(shape), type(obj).__name__)
    if d == 0:
        raise SpecError(f"{type(obj).__name__}: dim {dim} is the batch of input {tuple(shape)}")
    return d


@kinds.layer(example=lambda: kinds.Example(ArgMax(-1), ((2, 5, 7),)))
@dataclass(frozen=True)
class ArgMax(Layer):
    """``x.argmax(dim)``: the index of the largest value along neutral ``dim`` (the first on
    a tie), the dim dropped; as a float of x's dtype."""

    kind: ClassVar[str] = "argmax"
    dim: int = -1

    def __post_init__(self):
        _int(self, dim=self.dim)

    def channels(self, c):
        return None

    def output_shape(self, shape):
        d = _not_batch_dim(self, self.dim, shape)
        return (*shape[:d], *shape[d + 1 :])


@kinds.layer(example=lambda: kinds.Example(CumSum(1), ((2, 5, 3),)))
@dataclass(frozen=True)
class CumSum(Layer):
    """``x.cumsum(dim)``: the running sum along neutral ``dim``."""

    kind: ClassVar[str] = "cumsum"
    dim: int = 1

    def __post_init__(self):
        _int(self, dim=self.dim)

    def channels(self, c):
        return c

    def output_shape(self, shape):
        _not_batch_dim(self, self.dim, shape)
        return tuple(shape)


@kinds.layer(example=lambda: kinds.Example(Compare("gt", 0.25), ((2, 3, 4),)))
@dataclass(frozen=True)
class Compare(Layer):
    """``x <op> value`` with a number, 1.0 where true and 0.0 where not, in x's dtype:
    ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``."""

    kind: ClassVar[str] = "compare"
    op: str = "eq"
    value: float = 0.0

    def __post_init__(self):
        if self.op not in COMPARE_OPS:
            raise SpecError(f"Compare.op must be one of {tuple(COMPARE_OPS)}; got {self.op!r}")
        _finite_number(self, value=self.value)

    def test(self, x):
        """The comparison on ``x``, any framework's array: its bool array."""
        return COMPARE_OPS[self.op](x, self.value)


@kinds.layer(example=lambda: kinds.Example(LengthMask(5, diagonal=True), ((3,),)))
@dataclass(frozen=True)
class LengthMask(Layer):
    """Lengths (N,) in, the additive attention mask (N, 1, size, size) out, in the lengths'
    dtype: -inf where key j >= length[n] (and, ``diagonal``, where j is the query i itself:
    a token never sees its own input, as ABINet's language model), 0 elsewhere; the 1
    broadcasts over the heads. A row masked whole gives NaN in a softmax: keep lengths >= 2
    with ``diagonal`` (ABINet clips them to [2, size])."""

    kind: ClassVar[str] = "length_mask"
    size: int
    diagonal: bool = False

    def __post_init__(self):
        _positive_int(self, size=self.size)
        if not isinstance(self.diagonal, bool):
            raise SpecError(f"LengthMask.diagonal must be True or False; got {self.diagonal!r}")

    def channels(self, c):
        return None

    def eye(self):
        """The (size, size) bool numpy array blocked whatever the length: the diagonal with
        ``diagonal``, else nothing."""
        import numpy as np

        return np.eye(self.size, dtype=bool) if self.diagonal else np.zeros((self.size,) * 2, bool)

    def output_shape(self, shape):
        if len(shape) != 1:
            raise SpecError(f"LengthMask takes lengths (N,); got shape {tuple(shape)}")
        return (shape[0], 1, self.size, self.size)

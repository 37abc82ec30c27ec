"""Fixed (not learned) position encodings: the sinusoid table of "Attention Is All You Need"
added to a sequence, as VisionLAN's and ABINet's ``PositionalEncoding`` do."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _positive_int


@functools.lru_cache(maxsize=16)
def sinusoid_table(num_positions: int, dim: int):
    """The (1, num_positions, dim) float32 table: position p, feature j holds
    sin(p / 10000^(2⌊j/2⌋/dim)) for even j, cos of it for odd j, computed in float64."""
    import numpy as np

    angle = np.arange(num_positions)[:, None] / np.power(10000, 2 * (np.arange(dim) // 2) / dim)
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    table = table.astype(np.float32)[None]
    table.flags.writeable = False
    return table


@kinds.layer(
    example=lambda: kinds.Example(SinusoidPositions(8, 4), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class SinusoidPositions(Layer):
    """``x + table[:, :L]`` for a sequence x (N, L, dim) with L <= ``num_positions``: the
    fixed sinusoid table (:func:`sinusoid_table`). A constant the spec computes: no
    parameter and no state key (PaddleOCR saves it as the buffer ``pos_table``)."""

    kind: ClassVar[str] = "sinusoid_positions"
    num_positions: int
    dim: int

    def __post_init__(self):
        _positive_int(self, num_positions=self.num_positions, dim=self.dim)

    def channels(self, c):
        return c

    def table(self, length: int):
        """The table's first ``length`` positions, (1, length, dim) float32 numpy."""
        return sinusoid_table(self.num_positions, self.dim)[:, :length]

    def output_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 3 or shape[2] != self.dim or shape[1] > self.num_positions:
            raise SpecError(
                f"SinusoidPositions({self.num_positions}, {self.dim}) takes a sequence "
                f"(N, L <= {self.num_positions}, {self.dim}); got shape {shape}"
            )
        return shape

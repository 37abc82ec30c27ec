"""Layout-only layers: ``Flatten``, ``Reshape``, ``Permute``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dim, _set


@kinds.layer(
    channel_free=True,
    example=lambda: kinds.Example(Flatten(), ((2, 3, 2, 2),)),
)
@dataclass(frozen=True)
class Flatten(Layer):
    """Flattens dims ``start_dim..end_dim`` in channel-first order (``nn.Flatten``; by
    default all but the batch dim)."""

    kind: ClassVar[str] = "flatten"
    start_dim: int = 1
    end_dim: int = -1

    def channels(self, c):
        return c if self.start_dim >= 2 else None  # else it depends on the spatial size

    def output_shape(self, shape):
        n = len(shape)
        if self.start_dim == 1 and self.end_dim == -1:
            self._need_rank(shape, (2, 3, 4, 5))
        start, end = _dim(self.start_dim, n, "Flatten"), _dim(self.end_dim, n, "Flatten")
        if start > end:
            raise SpecError(f"Flatten: start_dim {self.start_dim} after end_dim {self.end_dim}")
        return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


@kinds.layer(
    example=lambda: kinds.Example(Reshape((4, 6)), ((2, 3, 2, 4),)),
)
@dataclass(frozen=True)
class Reshape(Layer):
    """``x.reshape(N, *shape)``: the dims after the batch, channel-first order; one may be -1."""

    kind: ClassVar[str] = "reshape"
    shape: tuple[int, ...] = ()

    def __post_init__(self):
        _set(self, shape=tuple(int(d) for d in self.shape))
        if not self.shape or sum(d == -1 for d in self.shape) > 1 or min(self.shape) < -1:
            raise SpecError(f"Reshape: shape {self.shape} needs sizes >= 1 and at most one -1")

    def channels(self, c):
        return None

    def output_shape(self, shape):
        total, known = math.prod(shape[1:]), math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if known == 0 or total % known:
                raise SpecError(f"Reshape: {tuple(shape)} cannot be viewed as (N, *{self.shape})")
            return (shape[0], *(total // known if d == -1 else d for d in self.shape))
        if known != total:
            raise SpecError(f"Reshape: {tuple(shape)} has {total} values per sample, not {known}")
        return (shape[0], *self.shape)


@kinds.layer(
    example=lambda: kinds.Example(Permute((0, 2, 1)), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class Permute(Layer):
    """``x.permute(*dims)`` on the channel-first (neutral) dims, batch included."""

    kind: ClassVar[str] = "permute"
    dims: tuple[int, ...] = ()

    def __post_init__(self):
        _set(self, dims=tuple(int(d) for d in self.dims))
        if sorted(self.dims) != list(range(len(self.dims))):
            raise SpecError(f"Permute: dims {self.dims} is not a permutation of 0..n-1")

    def channels(self, c):
        return c if self.dims[:2] == (0, 1) else None

    def output_shape(self, shape):
        if len(shape) != len(self.dims):
            raise SpecError(f"Permute{self.dims} needs a {len(self.dims)}-d input; got {shape}")
        return tuple(shape[d] for d in self.dims)

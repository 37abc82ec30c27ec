"""Pooling: max, average, adaptive average and adaptive max, with PyTorch's output-size rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dims_of, _set, _tuple


# ---- pooling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool(Layer):
    kernel_size: int | tuple[int, ...] = 2
    stride: int | tuple[int, ...] | None = None  # defaults to kernel_size, as in PyTorch
    padding: int | tuple[int, ...] = 0
    ceil_mode: bool = False
    dims: int | None = None

    def __post_init__(self):
        n = _dims_of(self.kernel_size, self.dims)
        if n not in (1, 2, 3):
            raise SpecError(f"{type(self).__name__} supports 1 to 3 spatial dims; got {n}")
        k = _tuple(self.kernel_size, n, "kernel_size")
        s = k if self.stride is None else _tuple(self.stride, n, "stride")
        p = _tuple(self.padding, n, "padding")
        _set(self, dims=n, kernel_size=k, stride=s, padding=p)
        if min(k) < 1 or min(s) < 1 or min(p) < 0:
            raise SpecError(f"{type(self).__name__}: kernel/stride must be >= 1, padding >= 0")
        if any(2 * pi > ki for pi, ki in zip(p, k)):
            raise SpecError(
                f"{type(self).__name__}: padding {p} must be at most half the kernel {k}"
            )

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        spatial = []
        for size, k, s, p in zip(shape[2:], self.kernel_size, self.stride, self.padding):
            if size + 2 * p < k:
                raise SpecError(
                    f"{type(self).__name__}: kernel {self.kernel_size} is larger than the padded "
                    f"input {tuple(shape)} with padding {self.padding}"
                )
            out = pool_out(size, k, s, p, self.ceil_mode)
            spatial.append(out)
        return (shape[0], shape[1], *spatial)


def pool_out(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length, including ceil_mode's 'last window starts inside' rule."""
    num = size + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


@kinds.layer(
    example=lambda: kinds.Example(MaxPool(2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class MaxPool(_Pool):
    kind: ClassVar[str] = "max_pool"


@kinds.layer(
    example=lambda: kinds.Example(AvgPool(2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pool; ``count_include_pad`` as PyTorch (Paddle's ``exclusive`` is its negation)."""

    kind: ClassVar[str] = "avg_pool"
    count_include_pad: bool = True


@dataclass(frozen=True)
class _AdaptivePool(Layer):
    """PyTorch's adaptive pooling: window i of an axis of n spans
    [floor(i·n/o), ceil((i+1)·n/o))."""

    output_size: int | tuple[int, ...] = 1
    dims: int | None = None

    def __post_init__(self):
        n = _dims_of(self.output_size, self.dims)
        _set(self, dims=n, output_size=_tuple(self.output_size, n, "output_size"))
        if min(self.output_size) < 1:
            name = type(self).__name__
            raise SpecError(f"{name}.output_size must be >= 1; got {self.output_size}")

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        return (shape[0], shape[1], *self.output_size)


@kinds.layer(
    example=lambda: kinds.Example(AdaptiveAvgPool(1), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class AdaptiveAvgPool(_AdaptivePool):
    kind: ClassVar[str] = "adaptive_avg_pool"


@kinds.layer(
    example=lambda: kinds.Example(AdaptiveMaxPool((2, 3)), ((2, 3, 5, 7),)),
)
@dataclass(frozen=True)
class AdaptiveMaxPool(_AdaptivePool):
    kind: ClassVar[str] = "adaptive_max_pool"

"""Convolutions: ``Conv`` and ``ConvTranspose`` (PyTorch's layouts and default init)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..fans import compute_fans
from ..initializers import (
    Initializer,
)
from .base import _TORCH_DEFAULT, Layer, ParamSpec, SpecError, _dims_of, _positive_int, _set, _tuple


# ---- convolutions --------------------------------------------------------------------------
@kinds.layer(
    weight_role="conv",
    params=("weight", "bias"),
    channels="in_channels",
    example=lambda: kinds.Example(Conv(4, 6, 3, padding=1, groups=2), ((2, 4, 5, 5),)),
)
@dataclass(frozen=True)
class Conv(Layer):
    """N-d convolution (PyTorch's ConvNd): weight (out, in/groups, *k)."""

    kind: ClassVar[str] = "conv"
    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, ...]
    stride: int | tuple[int, ...] = 1
    padding: int | tuple[int, ...] = 0
    dilation: int | tuple[int, ...] = 1
    groups: int = 1
    bias: bool = True
    dims: int | None = None
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, in_channels=self.in_channels, out_channels=self.out_channels)
        _positive_int(self, groups=self.groups)
        n = _dims_of(self.kernel_size, self.dims)
        if n not in (1, 2, 3):
            raise SpecError(f"{type(self).__name__} supports 1 to 3 spatial dims; got {n}")
        _set(
            self,
            dims=n,
            kernel_size=_tuple(self.kernel_size, n, "kernel_size"),
            stride=_tuple(self.stride, n, "stride"),
            padding=_tuple(self.padding, n, "padding"),
            dilation=_tuple(self.dilation, n, "dilation"),
        )
        for name, value in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if value % self.groups:
                raise SpecError(
                    f"{type(self).__name__}: groups={self.groups} does not divide {name}={value}"
                )
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise SpecError(f"{type(self).__name__}: kernel, stride and dilation must be >= 1")
        if min(self.padding) < 0:
            raise SpecError(f"{type(self).__name__}: padding must be >= 0")

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    role: ClassVar[str] = "conv"

    def channels(self, c):
        self._take_channels(self.in_channels, c)
        return self.out_channels

    def _params(self):
        w = self.weight_shape
        fans = compute_fans(w, self.role)  # once, for the weight and its bias
        init = self.weight_init or _TORCH_DEFAULT
        out = [ParamSpec("weight", w, self.role, init, self.kind, fans=fans)]
        if self.bias:
            n_out = self.out_channels
            init = self.bias_init or _TORCH_DEFAULT
            out.append(ParamSpec("bias", (n_out,), "vector", init, self.kind, fans=fans))
        return tuple(out)

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        self._need_channels(shape, self.in_channels)
        spatial = []
        for size, k, s, p, d in zip(
            shape[2:], self.kernel_size, self.stride, self.padding, self.dilation
        ):
            span = d * (k - 1) + 1
            if size + 2 * p < span:
                raise SpecError(
                    f"{type(self).__name__}: kernel {self.kernel_size} (dilation {self.dilation}) "
                    f"is larger than the padded input {tuple(shape)} with padding {self.padding}"
                )
            spatial.append((size + 2 * p - span) // s + 1)
        return (shape[0], self.out_channels, *spatial)


@kinds.layer(
    weight_role="conv_transpose",
    params=("weight", "bias"),
    channels="in_channels",
    example=lambda: kinds.Example(ConvTranspose(4, 3, 3, stride=2), ((2, 4, 4, 4),)),
)
@dataclass(frozen=True)
class ConvTranspose(Conv):
    """N-d transposed convolution (PyTorch's ConvTransposeNd): weight (in, out/groups, *k)."""

    kind: ClassVar[str] = "conv_transpose"
    role: ClassVar[str] = "conv_transpose"
    output_padding: int | tuple[int, ...] = 0

    def __post_init__(self):
        super().__post_init__()
        _set(self, output_padding=_tuple(self.output_padding, self.dims, "output_padding"))
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if not 0 <= op < max(s, d):
                raise SpecError(
                    f"ConvTranspose: output_padding {self.output_padding} must be smaller than "
                    f"stride {self.stride} or dilation {self.dilation}"
                )

    @property
    def weight_shape(self):
        return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        self._need_channels(shape, self.in_channels)
        spatial = []
        for size, k, s, p, d, op in zip(
            shape[2:],
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.output_padding,
        ):
            out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
            if out < 1:
                raise SpecError(
                    f"ConvTranspose: padding {self.padding} leaves no output for input "
                    f"{tuple(shape)}"
                )
            spatial.append(out)
        return (shape[0], self.out_channels, *spatial)


def Conv1d(*args, **kw) -> Conv:  # noqa: N802 - PyTorch-style constructor names
    return Conv(*args, dims=1, **kw)


def Conv2d(*args, **kw) -> Conv:  # noqa: N802
    return Conv(*args, dims=2, **kw)


def Conv3d(*args, **kw) -> Conv:  # noqa: N802
    return Conv(*args, dims=3, **kw)


def ConvTranspose2d(*args, **kw) -> ConvTranspose:  # noqa: N802
    return ConvTranspose(*args, dims=2, **kw)

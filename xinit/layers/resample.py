"""Resampling: ``Upsample`` (nearest, bilinear)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError

UPSAMPLE_MODES = ("nearest", "bilinear")


@kinds.layer(
    aliases=("interpolate",),
    example=lambda: kinds.Example(Upsample(scale_factor=2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Upsample(Layer):
    """Resize the spatial dims, with PyTorch's ``F.interpolate`` meaning in every framework.

    ``size`` (output sizes) or ``scale_factor`` (output = floor(input * factor)). ``nearest``
    takes source index ``floor(i * in / out)`` and needs integer multiples; ``bilinear``
    (2-d) samples at ``(i + 0.5) * in / out - 0.5`` clamped at 0, or with ``align_corners``
    at ``i * (in - 1) / (out - 1)``.
    """

    kind: ClassVar[str] = "upsample"
    scale_factor: float | tuple[float, ...] | None = None
    size: int | tuple[int, ...] | None = None
    mode: str = "nearest"
    align_corners: bool = False

    def __post_init__(self):
        if (self.size is None) == (self.scale_factor is None):
            raise SpecError("Upsample takes exactly one of size and scale_factor")
        if self.mode not in UPSAMPLE_MODES:
            raise SpecError(f"Upsample.mode must be one of {UPSAMPLE_MODES}; got {self.mode!r}")
        if self.align_corners and self.mode != "bilinear":
            raise SpecError("Upsample: align_corners applies to mode='bilinear' only")
        for v in (self.size, self.scale_factor):
            values = v if isinstance(v, tuple) else (v,)
            if v is not None and not all(isinstance(x, (int, float)) and x > 0 for x in values):
                raise SpecError(f"Upsample: sizes and factors must be positive; got {v!r}")

    def out_sizes(self, sizes: tuple[int, ...]) -> tuple[int, ...]:
        n = len(sizes)
        if self.size is not None:
            size = self.size if isinstance(self.size, tuple) else (self.size,) * n
            if len(size) != n:
                raise SpecError(f"Upsample: size {self.size} for {n} spatial dims")
            return tuple(int(s) for s in size)
        f = self.factors(n)
        return tuple(int(math.floor(s * k)) for s, k in zip(sizes, f))

    def factors(self, n: int) -> tuple[float, ...] | None:
        """The scale factors per spatial dim (None: ``size`` given)."""
        if self.scale_factor is None:
            return None
        f = self.scale_factor
        f = tuple(f) if isinstance(f, tuple) else (f,) * n
        if len(f) != n:
            raise SpecError(f"Upsample: scale_factor {self.scale_factor} for {n} spatial dims")
        return tuple(float(x) for x in f)

    def output_shape(self, shape):
        self._need_rank(shape, (4,) if self.mode == "bilinear" else (3, 4, 5))
        sizes = tuple(shape[2:])
        out = self.out_sizes(sizes)
        if self.mode == "nearest":
            for n, o in zip(sizes, out):
                if o % n and n % o:
                    raise SpecError(
                        f"Upsample(mode='nearest') needs integer multiples: {n} -> {o} "
                        f"(input shape {tuple(shape)})"
                    )
        return (shape[0], shape[1], *out)

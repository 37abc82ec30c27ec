"""Element-wise layers with a learned value per channel: ``PReLU`` and ``LayerScale``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..initializers import Constant, Initializer
from .base import Layer, ParamSpec, SpecError, _positive_int


def _finite_number(obj, **kw) -> None:
    for k, v in kw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise SpecError(f"{type(obj).__name__}.{k} must be a finite number; got {v!r}")


@kinds.layer(
    params=("weight",),
    example=lambda: kinds.Example(PReLU(3), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class PReLU(Layer):
    """PyTorch's ``nn.PReLU``: max(0, x) + weight · min(0, x), with one slope shared by every
    channel (``num_parameters=1``) or one per channel of axis 1 (``num_parameters=C``);
    slopes start at ``init`` (0.25, PyTorch's and Paddle's default)."""

    kind: ClassVar[str] = "prelu"
    num_parameters: int = 1
    init: float = 0.25
    weight_init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, num_parameters=self.num_parameters)
        _finite_number(self, init=self.init)

    def channels(self, c):
        if self.num_parameters > 1:
            self._take_channels(self.num_parameters, c)
        return c

    def _params(self):
        init = self.weight_init or Constant(float(self.init))
        return (ParamSpec("weight", (self.num_parameters,), "vector", init, self.kind),)

    def output_shape(self, shape):
        if self.num_parameters > 1:
            if len(shape) < 2:
                raise SpecError(
                    f"PReLU with {self.num_parameters} slopes needs an (N, C, *) input; got "
                    f"shape {tuple(shape)}"
                )
            self._need_channels(shape, self.num_parameters)
        return tuple(shape)


@kinds.layer(
    params=("gamma",),
    example=lambda: kinds.Example(LayerScale(6), ((2, 3, 6),)),
)
@dataclass(frozen=True)
class LayerScale(Layer):
    """A learned per-channel multiplier ``x * gamma`` (CaiT/timm's ``LayerScale``, ConvNeXt's
    layer scale), ``gamma`` starting at ``init_value`` (timm's 1e-5). ``spatial`` counts the
    axes after the channel axis: 0 for features last (timm's (N, L, C), ``gamma`` (C,)), 2
    for (N, C, H, W) images (torchvision's ``layer_scale`` (C, 1, 1)); ``gamma`` has that
    neutral shape, so ``x * gamma`` broadcasts as PyTorch's."""

    kind: ClassVar[str] = "layer_scale"
    num_features: int
    init_value: float = 1e-5
    spatial: int = 0
    init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, num_features=self.num_features)
        _finite_number(self, init_value=self.init_value)
        if self.spatial not in (0, 1, 2, 3):
            raise SpecError(f"LayerScale.spatial must be 0, 1, 2 or 3; got {self.spatial!r}")

    @property
    def shape(self) -> tuple[int, ...]:
        """The neutral shape of ``gamma``: (C,) then one 1 per spatial axis."""
        return (self.num_features,) + (1,) * self.spatial

    def channels(self, c):
        if self.spatial:
            self._take_channels(self.num_features, c)
        return c

    def _params(self):
        init = self.init or Constant(float(self.init_value))
        return (ParamSpec("gamma", self.shape, "vector", init, self.kind),)

    def output_shape(self, shape):
        shape = tuple(shape)
        if self.spatial:
            if len(shape) != self.spatial + 2 or shape[1] != self.num_features:
                raise SpecError(
                    f"LayerScale({self.num_features}, spatial={self.spatial}) scales the "
                    f"channels of an (N, C, {self.spatial} spatial) input; got shape {shape}"
                )
        elif len(shape) < 2 or shape[-1] != self.num_features:
            raise SpecError(
                f"LayerScale({self.num_features}) scales the last axis; got input shape {shape}"
            )
        return shape

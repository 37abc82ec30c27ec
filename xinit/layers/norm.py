"""Normalisation: ``BatchNorm`` over channels; Layer-, RMS- and GroupNorm over features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..initializers import (
    Initializer,
    Ones,
    Zeros,
)
from .base import Layer, ParamSpec, SpecError, _positive_int, _set


# ---- normalisation, dense, embedding -------------------------------------------------------
@kinds.layer(
    params=("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    optional=("num_batches_tracked",),
    buffers=("running_mean", "running_var", "num_batches_tracked"),
    aliases=("bn", "batchnorm1d", "batchnorm2d", "batchnorm3d"),
    channels="num_features",
    example=lambda: kinds.Example(BatchNorm(4), ((2, 4, 3, 3),)),
)
@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation. ``momentum`` is PyTorch's (weight of the new batch statistic);
    each framework gets its own convention (Paddle's and Flax's momentum is ``decay``).

    ``train_stats``: the running-statistics rule in training mode. ``"native"`` (default):
    each framework's own BatchNorm class and rule (Paddle and Flax store the biased batch
    variance, PyTorch the unbiased one). ``"torch"``: PyTorch's rule, exactly, everywhere
    (Paddle and Flax build xinit's subclass of their BatchNorm). Eval mode is the same.
    """

    kind: ClassVar[str] = "batchnorm"
    num_features: int
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True
    dims: int = 2
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    train_stats: str = "native"

    TRAIN_STATS: ClassVar[tuple[str, ...]] = ("native", "torch")

    def __post_init__(self):
        _positive_int(self, num_features=self.num_features)
        if self.dims not in (1, 2, 3):
            raise SpecError(f"BatchNorm.dims must be 1, 2 or 3; got {self.dims!r}")
        if not 0.0 <= self.momentum <= 1.0:
            raise SpecError(f"BatchNorm.momentum must be in [0, 1]; got {self.momentum!r}")
        if not self.eps > 0:
            raise SpecError(f"BatchNorm.eps must be positive; got {self.eps!r}")
        if self.train_stats not in self.TRAIN_STATS:
            raise SpecError(
                f"BatchNorm.train_stats must be one of {self.TRAIN_STATS}; got {self.train_stats!r}"
            )

    @property
    def decay(self) -> float:
        """The weight of the running value, ``1 - momentum``: Paddle's and Flax's momentum."""
        return 1.0 - self.momentum

    @staticmethod
    def momentum_from_decay(decay: float) -> float:
        """The neutral momentum of a Paddle/Flax ``momentum`` (``1 - decay``, rounded to 12
        decimals so that 1 - 0.9 reads back as 0.1, not 0.09999999999999998)."""
        return round(1.0 - float(decay), 12)

    def channels(self, c):
        self._take_channels(self.num_features, c)
        return c

    def _params(self):
        c, k = (self.num_features,), self.kind
        out = []
        if self.affine:
            out += [
                ParamSpec("weight", c, "vector", self.weight_init or Ones(), k),
                ParamSpec("bias", c, "vector", self.bias_init or Zeros(), k),
            ]
        out += [
            ParamSpec("running_mean", c, "vector", Zeros(), k, trainable=False),
            ParamSpec("running_var", c, "vector", Ones(), k, trainable=False),
            ParamSpec(
                "num_batches_tracked", (), "vector", Zeros(), k, trainable=False, dtype="int64"
            ),
        ]
        return tuple(out)

    def output_shape(self, shape):
        ranks = (2, 3) if self.dims == 1 else (self.dims + 2,)
        self._need_rank(shape, ranks)
        self._need_channels(shape, self.num_features)
        return tuple(shape)


# ---- normalisation over features (sequences and groups) -----------------------------------
def _norm_shape(value, who: str) -> tuple[int, ...]:
    shape = (value,) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if not shape or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    ):
        raise SpecError(
            f"{who}.normalized_shape must be a positive int or tuple of them; got {value!r}"
        )
    return shape


def _need_positive(obj, eps) -> None:
    if eps is not None and not eps > 0:
        raise SpecError(f"{type(obj).__name__}.eps must be positive; got {eps!r}")


@dataclass(frozen=True)
class _FeatureNorm(Layer):
    """A norm over the trailing neutral dims ``normalized_shape`` (PyTorch's layout: the
    last dims of (N, *, *normalized_shape), whatever the framework holds inside)."""

    normalized_shape: int | tuple[int, ...] = ()

    def channels(self, c):
        return c  # over the last dims: (N, D) checks in output_shape, (N, L, D) has no channel

    def output_shape(self, shape):
        n = self.normalized_shape
        if len(shape) < len(n) + 1 or tuple(shape[-len(n) :]) != n:
            raise SpecError(
                f"{type(self).__name__} normalizes over the last dims {n}; got input shape "
                f"{tuple(shape)}"
            )
        return tuple(shape)


@kinds.layer(
    params=("weight", "bias"),
    aliases=("ln",),
    example=lambda: kinds.Example(LayerNorm(6), ((2, 3, 6),)),
)
@dataclass(frozen=True)
class LayerNorm(_FeatureNorm):
    """PyTorch's ``nn.LayerNorm``: (x - mean) / sqrt(var + eps) over the last dims, biased
    variance, then weight (ones) and bias (zeros) of shape ``normalized_shape``."""

    kind: ClassVar[str] = "layernorm"
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None

    def __post_init__(self):
        _set(self, normalized_shape=_norm_shape(self.normalized_shape, "LayerNorm"))
        _need_positive(self, self.eps)

    def _params(self):
        n, k = self.normalized_shape, self.kind
        if not self.elementwise_affine:
            return ()
        out = [ParamSpec("weight", n, "vector", self.weight_init or Ones(), k)]
        if self.bias:
            out.append(ParamSpec("bias", n, "vector", self.bias_init or Zeros(), k))
        return tuple(out)


@kinds.layer(
    params=("weight",),
    example=lambda: kinds.Example(RMSNorm(6), ((2, 3, 6),)),
)
@dataclass(frozen=True)
class RMSNorm(_FeatureNorm):
    """PyTorch's ``nn.RMSNorm``: x / sqrt(mean(x**2) + eps) over the last dims, times weight
    (ones); ``eps=None`` is the machine epsilon of the input's dtype, as PyTorch."""

    kind: ClassVar[str] = "rmsnorm"
    eps: float | None = None
    elementwise_affine: bool = True
    weight_init: Initializer | None = None

    def __post_init__(self):
        _set(self, normalized_shape=_norm_shape(self.normalized_shape, "RMSNorm"))
        _need_positive(self, self.eps)

    def _params(self):
        if not self.elementwise_affine:
            return ()
        n = self.normalized_shape
        return (ParamSpec("weight", n, "vector", self.weight_init or Ones(), self.kind),)

    def eps_for(self, dtype: str = "float32") -> float:
        """The eps used on ``dtype`` input (PyTorch's ``finfo(dtype).eps`` when None)."""
        import numpy as np

        return float(np.finfo(dtype).eps) if self.eps is None else float(self.eps)


@kinds.layer(
    params=("weight", "bias"),
    aliases=("gn",),
    example=lambda: kinds.Example(GroupNorm(2, 4), ((2, 4, 3, 3),)),
)
@dataclass(frozen=True)
class GroupNorm(Layer):
    """PyTorch's ``nn.GroupNorm`` on (N, C, *): channels split into ``num_groups`` contiguous
    groups, each normalised over its channels and all positions; per-channel weight/bias."""

    kind: ClassVar[str] = "groupnorm"
    num_groups: int
    num_channels: int
    eps: float = 1e-5
    affine: bool = True
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, num_groups=self.num_groups, num_channels=self.num_channels)
        if self.num_channels % self.num_groups:
            raise SpecError(
                f"GroupNorm: num_groups {self.num_groups} does not divide num_channels "
                f"{self.num_channels}"
            )
        _need_positive(self, self.eps)

    def channels(self, c):
        self._take_channels(self.num_channels, c)
        return c

    def _params(self):
        if not self.affine:
            return ()
        c, k = (self.num_channels,), self.kind
        return (
            ParamSpec("weight", c, "vector", self.weight_init or Ones(), k),
            ParamSpec("bias", c, "vector", self.bias_init or Zeros(), k),
        )

    def output_shape(self, shape):
        if len(shape) < 2:
            raise SpecError(f"GroupNorm expects an (N, C, *) input; got shape {tuple(shape)}")
        self._need_channels(shape, self.num_channels)
        return tuple(shape)

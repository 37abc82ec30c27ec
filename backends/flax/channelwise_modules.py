"""xinit's Flax modules of the per-sample norms and per-channel learned layers, on
channel-last images (layout "channels"): LayerNorm2d, InstanceNorm with running statistics,
PReLU with one slope per channel, LayerScale."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from xinit import layers as L

from .modules import _filled, _initial_or, initializer


class LayerNorm2d(nnx.LayerNorm):
    """timm's/torchvision's channels-first ``LayerNorm2d``: on channel-last images an
    ``nnx.LayerNorm`` over the last axis, with the exact (two-pass) variance as PyTorch's."""

    def __init__(self, spec: L.LayerNorm2d, initial=None):
        affine = spec.elementwise_affine
        super().__init__(
            spec.num_channels,
            epsilon=spec.eps,
            use_scale=affine,
            use_bias=affine and spec.bias,
            scale_init=initializer(initial, "scale"),
            bias_init=initializer(initial, "bias"),
            use_fast_variance=False,
            rngs=nnx.Rngs(0),
        )
        self.spec = spec


class InstanceNorm(nnx.Module):
    """PyTorch's InstanceNorm with running statistics on channel-last images (nnx's own keeps
    none): ``scale``/``bias`` and BatchNorm's ``mean``/``var``. Training: each sample's
    statistics, the running ones moved by their batch average (unbiased variance); eval
    (``use_running_average``): the running ones, as PyTorch's."""

    def __init__(self, spec: L.InstanceNorm, initial=None):
        self.spec = spec
        c, affine = (spec.num_features,), spec.affine
        self.scale = nnx.Param(_initial_or(initial, "scale", c, 1.0)) if affine else None
        self.bias = nnx.Param(_initial_or(initial, "bias", c, 0.0)) if affine else None
        self.mean = nnx.BatchStat(_filled(c, 0.0))
        self.var = nnx.BatchStat(_filled(c, 1.0))
        self.use_running_average = False

    def __call__(self, x):
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(1, x.ndim - 1))
            mean = x.mean(axes, keepdims=True)
            var = ((x - mean) ** 2).mean(axes, keepdims=True)
            n = int(np.prod(x.shape[1:-1]))
            m = self.spec.momentum
            unbiased = var * (n / max(n - 1, 1))
            self.mean[...] = (1 - m) * self.mean[...] + m * mean.mean(0).reshape(-1)
            self.var[...] = (1 - m) * self.var[...] + m * unbiased.mean(0).reshape(-1)
        y = (x - mean) * jax.lax.rsqrt(var + self.spec.eps)
        if self.scale is not None:
            y = y * self.scale[...] + self.bias[...]
        return y


class PReLU(nnx.PReLU):
    """``nnx.PReLU`` whose ``negative_slope`` is 0-d (one slope) or (C,) (one per channel of
    a channel-last input: ``nnx.PReLU`` itself has one slope)."""

    def __init__(self, spec, initial=None):
        super().__init__()
        shape = () if spec.num_parameters == 1 else (spec.num_parameters,)
        self.negative_slope = nnx.Param(_initial_or(initial, "negative_slope", shape, spec.init))
        self.spec = spec


class LayerScale(nnx.Module):
    """``x * gamma``: a learned per-channel multiplier on the channels, held last."""

    def __init__(self, spec, initial=None):
        shape = (spec.num_features,)
        self.gamma = nnx.Param(_initial_or(initial, "gamma", shape, spec.init_value))
        self.spec = spec

    def __call__(self, x):
        return x * self.gamma[...]

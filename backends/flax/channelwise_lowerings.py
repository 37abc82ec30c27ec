"""Flax's lowering of the per-sample norms and per-channel learned layers (``instancenorm``,
``layernorm2d``, ``prelu``, ``layer_scale``; registered by ``lowerings.py``): nnx's own layers
where they fit, else xinit's (``channelwise_modules.py``). Nothing here imports
``lowerings.py``, which imports it."""

from __future__ import annotations

import numpy as np

from xinit import layers as L
from xinit.errors import DefaultsError
from xinit.initializers import Constant
from xinit.parammap import Leaf

from ..registry import NO_LAYER_SCALE, Lowering
from .lowering_base import _SCALE, BATCHNORM_LEAVES, _modules, _nnx, _Norm


def _channelwise_modules():
    from . import channelwise_modules

    return channelwise_modules


class InstanceNorm(_Norm):
    """``nnx.InstanceNorm`` on channel-last images (``scale``/``bias``, both or none; the
    exact two-pass variance); it keeps no running statistics, so PyTorch's get xinit's layer
    (``channelwise_modules.InstanceNorm``), with BatchNorm's ``mean``/``var``."""

    layout = "channels"
    leaves = BATCHNORM_LEAVES
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().InstanceNorm(spec.num_features, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        if spec.track_running_stats:
            return _channelwise_modules().InstanceNorm(spec, initial)
        nnx, init = _nnx(), _modules().initializer
        return nnx.InstanceNorm(
            spec.num_features,
            epsilon=spec.eps,
            use_bias=spec.affine,
            use_scale=spec.affine,
            scale_init=init(initial, "scale"),
            bias_init=init(initial, "bias"),
            use_fast_variance=False,
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().InstanceNorm, _channelwise_modules().InstanceNorm)

    def read(self, m):
        if isinstance(m, _channelwise_modules().InstanceNorm):
            return m.spec
        if m.use_scale != m.use_bias or tuple(np.atleast_1d(m.feature_axes)) != (-1,):
            return None  # one of scale/bias, or features not last: no neutral InstanceNorm
        return L.InstanceNorm(m.num_features, m.epsilon, affine=m.use_scale)


class LayerNorm2d(_Norm):
    """On channel-last images a LayerNorm over the channels is ``nnx.LayerNorm`` over the last
    axis: xinit's subclass of it (exact variance), whose default is ``nnx.LayerNorm``'s."""

    layout = "channels"
    leaves = _SCALE
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().LayerNorm(spec.num_channels, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        return _channelwise_modules().LayerNorm2d(spec, initial)

    def natives(self):
        return (_channelwise_modules().LayerNorm2d,)

    def read(self, m):
        return m.spec


class PReLU(Lowering):
    """``nnx.PReLU``: one 0-d ``negative_slope``; xinit's subclass holds one per channel
    (channel-last) for ``num_parameters > 1``, which nnx's own layer cannot."""

    takes_initial = True

    def params(self, spec):
        shape = () if spec.num_parameters == 1 else None
        return {"weight": (Leaf("negative_slope", shape=shape),)}

    def layout_for(self, spec):
        return "any" if spec.num_parameters == 1 else "channels"

    def default_rule(self, spec, param):
        src = "flax/nnx/nn/activations.py PReLU (negative_slope_init=0.01)"
        return Constant(0.01), None, "negative_slope_init = 0.01", src

    def native_default(self, spec, seed):
        if spec.num_parameters != 1:
            raise DefaultsError(f"nnx.PReLU has one slope; {spec!r} has one per channel")
        return _nnx().PReLU()

    def build(self, spec, device, initial=None):
        return _channelwise_modules().PReLU(spec, initial)

    def natives(self):
        return (_nnx().PReLU,)

    def read(self, m):
        if isinstance(m, _channelwise_modules().PReLU):
            return m.spec
        n = int(np.size(m.negative_slope[...]))  # 0-d: one slope; nnx's default init 0.01
        return L.PReLU(n, 0.01)


class LayerScale(Lowering):
    """xinit's ``gamma`` multiplier; on channel-last images a (C, 1, ...) ``gamma`` is held
    as (C,)."""

    takes_initial = True

    def params(self, spec):
        return {"gamma": (Leaf("gamma", shape=(spec.num_features,) if spec.spatial else None),)}

    def layout_for(self, spec):
        return "channels" if spec.spatial else "sequence"

    def default_missing(self, spec):
        return NO_LAYER_SCALE

    def build(self, spec, device, initial=None):
        return _channelwise_modules().LayerScale(spec, initial)

    def natives(self):
        return (_channelwise_modules().LayerScale,)

    def read(self, m):
        return m.spec

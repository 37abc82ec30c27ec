"""Paddle's lowering of the per-sample norms and per-channel learned layers (``instancenorm``,
``layernorm2d``, ``prelu``, ``layer_scale``; registered by ``lowerings.py``): Paddle's own
layers where they fit, else xinit's (``modules.py``). Nothing here imports ``lowerings.py``,
which imports it."""

from __future__ import annotations

from xinit import layers as L
from xinit.initializers import Constant

from ..registry import NO_LAYER_SCALE, Lowering
from .lowering_base import BATCHNORM_LEAVES, _affine, _modules, _Norm, _paddle, _seeded


class InstanceNorm(_Norm):
    """Paddle's ``nn.InstanceNorm{1,2,3}D``: ``scale``/``bias`` by default (both or none), no
    running statistics (its momentum is unused); PyTorch's running statistics get xinit's
    layer (``modules.InstanceNorm``), with BatchNorm's ``_mean``/``_variance``."""

    leaves = {"weight": "scale", **BATCHNORM_LEAVES}

    def native_default(self, spec, seed):
        return getattr(_seeded(seed), f"InstanceNorm{spec.dims}D")(spec.num_features)

    def build(self, spec, device):
        if spec.track_running_stats:
            return _modules().InstanceNorm(spec)
        nn = _paddle().nn
        cls = (nn.InstanceNorm1D, nn.InstanceNorm2D, nn.InstanceNorm3D)[spec.dims - 1]
        weight = _modules()._placeholder() if spec.affine else False
        return cls(spec.num_features, spec.eps, spec.decay, weight, _affine(spec.affine))

    def natives(self):
        from paddle.nn.layer.norm import _InstanceNormBase

        return (_InstanceNormBase, _modules().InstanceNorm)

    def read(self, m):
        if isinstance(m, _modules().InstanceNorm):
            return m.spec
        dims = {"InstanceNorm1D": 1, "InstanceNorm3D": 3}.get(type(m).__name__, 2)
        affine = m.scale is not None
        momentum = L.InstanceNorm.momentum_from_decay(m._momentum)
        return L.InstanceNorm(m._num_features, m._epsilon, momentum, affine, dims=dims)


class LayerNorm2d(_Norm):
    """xinit's layer (Paddle has no channels-first LayerNorm); its default is
    ``nn.LayerNorm``'s (Constant(1) weight, Constant(0) bias)."""

    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(spec.num_channels)

    def build(self, spec, device):
        return _modules().LayerNorm2d(spec)

    def natives(self):
        return (_modules().LayerNorm2d,)

    def read(self, m):
        return m.spec


class PReLU(Lowering):
    leaves = {"weight": "_weight"}

    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/activation.py PReLU (init=0.25)"
        return Constant(0.25), None, "Constant(init=0.25)", src

    def native_default(self, spec, seed):
        return _seeded(seed).PReLU(spec.num_parameters)

    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.PReLU(spec.num_parameters, spec.init, weight_attr=weight)

    def natives(self):
        return (_paddle().nn.PReLU,)

    def read(self, m):
        if m._num_parameters > 1 and m._data_format not in ("NC", "NCL", "NCHW", "NCDHW"):
            return None  # slopes on the last axis: not PyTorch's channel axis
        return L.PReLU(m._num_parameters, float(m._init))


class LayerScale(Lowering):
    def default_missing(self, spec):
        return NO_LAYER_SCALE

    def build(self, spec, device):
        return _modules().LayerScale(spec)

    def natives(self):
        return (_modules().LayerScale,)

    def read(self, m):
        return m.spec

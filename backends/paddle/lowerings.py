"""One lowering per layer kind for PaddlePaddle: the native ``paddle.nn`` layer and its map.

Paddle's Linear weight is stored ``(in, out)`` (the transpose of the neutral one); BatchNorm
is Paddle's own (names ``_mean``/``_variance``, no step counter, momentum 1 - neutral).
Weights are built with a zero fill (``modules._placeholder``) that xinit overwrites,
skipping Paddle's own random default init.
"""

from __future__ import annotations

import math

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import Normal, XavierUniform, Zeros
from xinit.parammap import Leaf

from ..common.functional import ARRAY_FUNCTIONS
from ..common.recurrent import register_recurrent
from ..registry import (
    BARE_PARAMETER,
    Lowering,
    Registry,
    param_of,
    register_builders,
)
from .attention_lowerings import (
    MultiheadAttention,
    ScaledDotProductAttention,
    WindowAttention,
    WindowAttentionV2,
)
from .channelwise_lowerings import InstanceNorm, LayerNorm2d, LayerScale, PReLU
from .lowering_base import _ZERO, BATCHNORM_LEAVES, _affine, _modules, _Norm, _paddle, _seeded
from .recurrent_lowerings import _Recurrent


def layout(role: str, ndim: int) -> tuple[int, ...] | None:
    """Paddle's layout of each fan role: Linear ``(in, out)``; everything else as PyTorch."""
    return (1, 0) if role == "linear" else None


REGISTRY = Registry("paddle", layout)


def _padding(m) -> tuple[int, ...] | int:
    """A Paddle conv's symmetric explicit padding as PyTorch's, else 0 (SAME/VALID and
    asymmetric paddings have no PyTorch equivalent; they do not decide any parameter)."""
    pad = getattr(m, "_updated_padding", None)
    if getattr(m, "_padding_algorithm", "EXPLICIT") != "EXPLICIT" or not isinstance(pad, list):
        return 0
    n = len(m._kernel_size)
    if len(pad) == n and all(isinstance(p, int) for p in pad):
        return tuple(pad)
    return 0


def _bias(spec):
    return None if spec.bias else False  # None: Paddle's default bias (zeros), False: none


@REGISTRY.register("conv")
class Conv(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/conv.py _ConvNd._get_default_param_initializer"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        r = math.prod(spec.kernel_size)
        n = spec.in_channels * r  # the FULL C_in: groups are ignored
        text = "Normal(0, √(2/(C_in·∏k))) with the full C_in (groups ignored)"
        return Normal(0.0, math.sqrt(2.0 / n)), Fans(n, spec.out_channels * r), text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"Conv{spec.dims}D")
        return cls(spec.in_channels, spec.out_channels, list(spec.kernel_size), groups=spec.groups)

    def build(self, spec, device):
        nn, m = _paddle().nn, _modules()
        cls = (nn.Conv1D, nn.Conv2D, nn.Conv3D)[spec.dims - 1]
        return cls(
            spec.in_channels,
            spec.out_channels,
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            list(spec.dilation),
            spec.groups,
            weight_attr=m._placeholder(),
            bias_attr=_bias(spec),
        )

    def natives(self):
        from paddle.nn.layer.conv import _ConvNd

        return (_ConvNd,)

    def read(self, m):
        return L.Conv(
            m._in_channels,
            m._out_channels,
            tuple(m._kernel_size),
            tuple(m._stride),
            _padding(m),
            tuple(m._dilation),
            m._groups,
            m.bias is not None,
        )


@REGISTRY.register("conv_transpose")
class ConvTranspose(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/conv.py (transposed: no default, so XavierUniform)"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        text = "XavierUniform on [C_in, C_out/g, *k]: fan_in = (C_out/g)·∏k, fan_out = C_in·∏k"
        return XavierUniform(), param_of(spec, "weight").fans, text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"Conv{spec.dims}DTranspose")
        return cls(spec.in_channels, spec.out_channels, list(spec.kernel_size), groups=spec.groups)

    def build(self, spec, device):
        nn, m = _paddle().nn, _modules()
        cls = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)[spec.dims - 1]
        padded = any(op >= s for op, s in zip(spec.output_padding, spec.stride))
        if padded:  # PyTorch allows output_padding < max(stride, dilation); Paddle < stride
            cls = m.PADDED_TRANSPOSE[spec.dims - 1]
        module = cls(
            spec.in_channels,
            spec.out_channels,
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            [0] * spec.dims if padded else list(spec.output_padding),
            groups=spec.groups,  # keywords: 1-D takes (groups, dilation), 2-D/3-D swap them
            dilation=list(spec.dilation),
            weight_attr=m._placeholder(),
            bias_attr=_bias(spec),
        )
        if padded:
            module.spec = spec
        return module

    def natives(self):
        nn = _paddle().nn
        return (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)

    def read(self, m):
        return L.ConvTranspose(
            m._in_channels,
            m._out_channels,
            tuple(m._kernel_size),
            tuple(m._stride),
            _padding(m),
            tuple(m._dilation),
            m._groups,
            m.bias is not None,
        )


@REGISTRY.register("batchnorm")
class BatchNorm(_Norm):
    """``paddle.nn.BatchNorm1D/2D/3D`` with Paddle's momentum (``spec.decay``, the weight of
    the running value) and its own training rule (biased running variance); with
    ``train_stats="torch"`` xinit's subclass of the same class (``modules.TORCH_BATCHNORM``)."""

    leaves = BATCHNORM_LEAVES

    def native_default(self, spec, seed):
        return _seeded(seed).BatchNorm2D(spec.num_features)

    def build(self, spec, device):
        nn = _paddle().nn
        native = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)
        torch_rule = spec.train_stats == "torch"
        cls = (_modules().TORCH_BATCHNORM if torch_rule else native)[spec.dims - 1]
        affine = _affine(spec.affine)
        return cls(
            spec.num_features,
            momentum=spec.decay,
            epsilon=spec.eps,
            weight_attr=affine,
            bias_attr=affine,
        )

    def natives(self):
        from paddle.nn.layer.norm import _BatchNormBase

        return (_BatchNormBase, _paddle().nn.BatchNorm)

    def read(self, m):
        if (m.weight is None) != (m.bias is None):  # one of the two: no neutral BatchNorm
            return None
        nn = _paddle().nn
        dims = 1 if isinstance(m, nn.BatchNorm1D) else 3 if isinstance(m, nn.BatchNorm3D) else 2
        return L.BatchNorm(
            int(m._mean.shape[0]),
            m._epsilon,
            L.BatchNorm.momentum_from_decay(m._momentum),
            m.weight is not None,
            dims,
            train_stats="torch" if isinstance(m, _modules()._TorchStats) else "native",
        )


def fused_activation(m) -> str | None:
    """The activation a ``paddle.nn.BatchNorm(C, act=...)`` applies inside its forward (None
    for any other layer): neutrally a BatchNorm followed by that activation, so parity
    compares the layer's output before it, as every other framework's BatchNorm gives it."""
    act = getattr(m, "_act", None)
    return act if isinstance(act, str) and act else None


@REGISTRY.register("linear")
class Linear(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/common.py Linear (ParamAttr default: XavierUniform)"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        text = "XavierUniform on [in, out]: U(±√(6/(in+out)))"
        return XavierUniform(), Fans(spec.in_features, spec.out_features), text, src

    def native_default(self, spec, seed):
        return _seeded(seed).Linear(spec.in_features, spec.out_features)

    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.Linear(
            spec.in_features, spec.out_features, weight_attr=weight, bias_attr=_bias(spec)
        )

    def natives(self):
        return (_paddle().nn.Linear,)

    def read(self, m):
        n_in, n_out = (int(d) for d in m.weight.shape)  # stored (in, out)
        return L.Linear(n_in, n_out, m.bias is not None)


@REGISTRY.register("embedding")
class Embedding(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/common.py Embedding (XavierUniform default)"
        text = "XavierUniform on [num, dim]: U(±√(6/(num+dim)))"
        return XavierUniform(), Fans(spec.num_embeddings, spec.embedding_dim), text, src

    def native_default(self, spec, seed):
        return _seeded(seed).Embedding(spec.num_embeddings, spec.embedding_dim)

    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.Embedding(spec.num_embeddings, spec.embedding_dim, weight_attr=weight)

    def natives(self):
        return (_paddle().nn.Embedding,)

    def read(self, m):
        return L.Embedding(m._num_embeddings, m._embedding_dim)


@REGISTRY.register("max_pool")
class MaxPool(Lowering):
    def build(self, spec, device):
        if spec.ceil_mode:
            return _modules().CeilPool(spec)
        nn = _paddle().nn
        cls = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D)[spec.dims - 1]
        return cls(list(spec.kernel_size), list(spec.stride), list(spec.padding))


@REGISTRY.register("avg_pool")
class AvgPool(Lowering):
    def build(self, spec, device):
        if spec.ceil_mode:
            return _modules().CeilPool(spec)
        nn = _paddle().nn
        cls = (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)[spec.dims - 1]
        return cls(
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            exclusive=not spec.count_include_pad,
        )


@REGISTRY.register("adaptive_avg_pool")
class AdaptiveAvgPool(Lowering):
    def build(self, spec, device):
        nn = _paddle().nn
        cls = (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)[spec.dims - 1]
        return cls(spec.output_size[0] if spec.dims == 1 else list(spec.output_size))


@REGISTRY.register("layernorm")
class LayerNorm(_Norm):
    """Paddle keeps LayerNorm's weight and bias flattened to ``(prod(normalized_shape),)``."""

    def params(self, spec):
        flat = (math.prod(spec.normalized_shape),)
        shape = flat if len(spec.normalized_shape) > 1 else None
        return {p.name: (Leaf(p.name, shape=shape),) for p in spec.params()}

    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(math.prod(spec.normalized_shape))

    def build(self, spec, device):
        return _paddle().nn.LayerNorm(
            list(spec.normalized_shape),
            spec.eps,
            weight_attr=_affine(spec.elementwise_affine),
            bias_attr=_affine(spec.elementwise_affine and spec.bias),
        )

    def natives(self):
        return (_paddle().nn.LayerNorm,)

    def read(self, m):
        if m.weight is None and m.bias is not None:  # a bias alone: no neutral LayerNorm
            return None
        affine = m.weight is not None
        bias = m.bias is not None if affine else True
        return L.LayerNorm(tuple(m._normalized_shape), m._epsilon, affine, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(Lowering):
    def default_missing(self, spec):
        note = (
            "paddle.nn has no RMSNorm layer, only the function rms_norm(x, shape, weight); "
            "xinit's own layer sets weight to ones"
        )
        return note, "python/paddle/nn/functional/norm.py rms_norm"

    def build(self, spec, device):
        return _modules().RMSNorm(spec)

    def natives(self):
        return (_modules().RMSNorm,)

    def read(self, m):
        return m.spec


@REGISTRY.register("groupnorm")
class GroupNorm(_Norm):
    def native_default(self, spec, seed):
        return _seeded(seed).GroupNorm(spec.num_groups, spec.num_channels)

    def build(self, spec, device):
        return _paddle().nn.GroupNorm(
            spec.num_groups,
            spec.num_channels,
            spec.eps,
            weight_attr=_affine(spec.affine),
            bias_attr=_affine(spec.affine),
        )

    def natives(self):
        return (_paddle().nn.GroupNorm,)

    def read(self, m):
        if (m.weight is None) != (m.bias is None):  # one of the two: no neutral GroupNorm
            return None
        return L.GroupNorm(m._num_groups, m._num_channels, m._epsilon, m.weight is not None)


# The per-sample norms and per-channel learned layers: their lowering lives in
# channelwise_lowerings.py.
REGISTRY.register("instancenorm")(InstanceNorm)
REGISTRY.register("layernorm2d")(LayerNorm2d)
REGISTRY.register("prelu")(PReLU)
REGISTRY.register("layer_scale")(LayerScale)


# The attention kinds: their lowering lives in attention_lowerings.py.
REGISTRY.register("multihead_attention")(MultiheadAttention)
REGISTRY.register("sdpa")(ScaledDotProductAttention)
REGISTRY.register("window_attention")(WindowAttention)
REGISTRY.register("window_attention_v2")(WindowAttentionV2)


@REGISTRY.register("learned_parameter")
class LearnedParameter(Lowering):
    """The native layer is the Paddle parameter itself: the enclosing container adds it
    under the node's name (the state-dict key ``cls_token``) and applies ``op``."""

    def default_missing(self, spec):
        return BARE_PARAMETER

    def build(self, spec, device):
        return _modules().learned_parameter(spec)


@REGISTRY.register("learned_tensor")
class LearnedTensor(LearnedParameter):
    """The Paddle parameter itself, on the enclosing container under the node's name (state
    key ``scale``), which hands the tensor on as the node's value (``op = "tensor"``)."""


# The recurrent kinds: their Paddle lowering lives in recurrent_lowerings.py.
LSTM, GRU, RNN = register_recurrent(REGISTRY, _Recurrent)


def _function(spec, function):
    return _modules().Function(spec, function)


def _hardsigmoid(s):
    if s.is_default:
        return _paddle().nn.Hardsigmoid()
    return _function(s, lambda s, x: _F().hardsigmoid(x, s.slope, s.offset))


def _clip(s):
    if s.min is not None and s.max is not None:
        return _paddle().nn.Hardtanh(s.min, s.max)
    return _function(s, lambda s, x: _paddle().clip(x, s.min, s.max))


def _F():
    return _paddle().nn.functional


def _reduce(s, x):
    return getattr(_paddle(), s.op)(x, axis=list(s.axes(x.ndim)), keepdim=s.keepdim)


def _pad(s, x):
    """PyTorch's pads (last dim first) as Paddle takes them: constant mode every dim, first dim
    first; the other modes the spatial dims of NCL/NCHW/NCDHW, last dim first (as PyTorch)."""
    if s.mode == "constant":
        full = [w for pair in s.widths(x.ndim) for w in pair]
        return _F().pad(x, full, mode="constant", value=s.value)
    spatial = list(s.pads) + [0] * (2 * (x.ndim - 2) - len(s.pads))
    fmt = {3: "NCL", 4: "NCHW", 5: "NCDHW"}[x.ndim]
    return _F().pad(x, spatial, mode=s.mode, data_format=fmt)


def _sinusoid_positions(s, x):
    return x + _paddle().to_tensor(s.table(x.shape[1]), dtype=x.dtype, place=x.place)


def _length_mask(s, lengths):
    """LengthMask: -inf where key j >= the length (or is the query, ``diagonal``), else 0."""
    paddle = _paddle()
    steps = paddle.arange(s.size, dtype=lengths.dtype)
    eye = paddle.to_tensor(s.eye(), place=lengths.place)
    blocked = paddle.logical_or((steps >= lengths.unsqueeze(1)).unsqueeze(1), eye)
    zeros = paddle.zeros(blocked.shape, dtype=lengths.dtype)
    return paddle.where(blocked, paddle.full_like(zeros, float("-inf")), zeros).unsqueeze(1)


def _channel_shuffle(s, x):
    n, c, *rest = x.shape
    g = s.groups
    y = x.reshape([n, g, c // g, *rest]).transpose([0, 2, 1, *range(3, x.ndim + 1)])
    return y.reshape([n, c, *rest])


def _adaptive_max_pool(s):
    nn = _paddle().nn
    cls = (nn.AdaptiveMaxPool1D, nn.AdaptiveMaxPool2D, nn.AdaptiveMaxPool3D)[s.dims - 1]
    return cls(s.output_size[0] if s.dims == 1 else list(s.output_size))


# The element-wise activations: kind -> the paddle.nn layer for a spec (one line a kind, as
# timm's create_act.py; a tracer reads the same table).
ACTIVATIONS = {
    "relu": lambda s: _paddle().nn.ReLU(),
    "leaky_relu": lambda s: _paddle().nn.LeakyReLU(s.negative_slope),
    "gelu": lambda s: _paddle().nn.GELU(approximate=s.approximate == "tanh"),
    "silu": lambda s: _paddle().nn.Silu(),
    "sigmoid": lambda s: _paddle().nn.Sigmoid(),
    "tanh": lambda s: _paddle().nn.Tanh(),
    "hardswish": lambda s: _paddle().nn.Hardswish(),
    "hardsigmoid": _hardsigmoid,
    "relu6": lambda s: _paddle().nn.ReLU6(),
    "clip": _clip,
    "identity": lambda s: _paddle().nn.Identity(),
}

# The functional glue with no paddle.nn class: kind -> function (spec, *inputs) -> output,
# computed by modules.Function (a tracer reads the same table).
FUNCTIONS = {
    **ARRAY_FUNCTIONS,
    "reduce": _reduce,
    "matmul": lambda s, a, b: _paddle().matmul(a, b),
    "pad": _pad,
    "channel_shuffle": _channel_shuffle,
    "sinusoid_positions": _sinusoid_positions,
    "argmax": lambda s, x: _paddle().argmax(x, axis=s.dim).astype(x.dtype),
    "cumsum": lambda s, x: _paddle().cumsum(x, axis=s.dim),
    "compare": lambda s, x: s.test(x).astype(x.dtype),
    "length_mask": _length_mask,
}

# Parameter-free layers: the native layer from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        **ACTIVATIONS,
        **{
            kind: lambda s, function=function: _function(s, function)
            for kind, function in FUNCTIONS.items()
        },
        "softmax": lambda s: _paddle().nn.Softmax(s.dim),
        "log_softmax": lambda s: _paddle().nn.LogSoftmax(s.dim),
        "adaptive_max_pool": _adaptive_max_pool,
        "flatten": lambda s: _paddle().nn.Flatten(s.start_dim, s.end_dim),
        "reshape": lambda s: _modules().Reshape(s.shape),
        "permute": lambda s: _modules().Permute(s.dims),
        "dropout": lambda s: _paddle().nn.Dropout(s.p, mode=s.mode),
        "stochastic_depth": lambda s: _modules().StochasticDepth(s.p),
        "add": lambda s: _modules().Merge(s),
        "mul": lambda s: _modules().Merge(s),
        "sub": lambda s: _modules().Merge(s),
        "div": lambda s: _modules().Merge(s),
        "concat": lambda s: _modules().Merge(s),
        "upsample": lambda s: _modules().Upsample(s),
        "select": lambda s: _modules().Select(s.dim, s.index),
        "position_ids": lambda s: _modules().PositionIds(),
    },
)

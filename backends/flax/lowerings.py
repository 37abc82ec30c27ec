"""One lowering per layer kind for Flax NNX: the native module and its parameter map.

Flax holds kernels channel-last: Linear ``(in, out)``, Conv ``(*k, in/groups, out)``,
ConvTranspose ``(*k, in, out/groups)``; the leaves are ``kernel``, ``scale`` (norms),
``embedding``, and BatchNorm's ``mean``/``var`` (no step counter). Layers with parameters
take ``initial`` and create each parameter with the value xinit drew for it
(``modules.initializer``); a parameter it has no value for gets a zero placeholder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import (
    LecunNormal,
    VarianceScaling,
    Zeros,
)
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
from .lowering_base import _SCALE, BATCHNORM_LEAVES, _modules, _nnx, _Norm
from .recurrent_lowerings import RecurrentLowering


def layout(role: str, ndim: int) -> tuple[int, ...] | None:
    """Flax's layout of each fan role, as a permutation of the neutral (PyTorch) axes."""
    if role == "linear":
        return (1, 0)
    if role == "conv":  # (out, in/g, *k) -> (*k, in/g, out)
        return (*range(2, ndim), 1, 0)
    if role == "conv_transpose":  # (in, out/g, *k) -> (*k, in, out/g)
        return (*range(2, ndim), 0, 1)
    return None


REGISTRY = Registry("flax", layout)


_KERNEL_SOURCE = "flax/nnx/nn/linear.py default_kernel_init = lecun_normal() (linen: the same)"


class _Kernel(Lowering):
    """Dense and convolutions: ``lecun_normal`` kernels (fans from the kernel Flax holds),
    zero biases."""

    def kernel_fans(self, spec) -> tuple[Fans, str]:
        return param_of(spec, "weight").fans, ""

    def default_rule(self, spec, param):
        if param == "bias":
            return Zeros(), None, "zeros_init()", _KERNEL_SOURCE
        fans, text = self.kernel_fans(spec)
        rule = f"lecun_normal: truncated ±2σ', variance-corrected to 1/fan_in, {text}"
        return LecunNormal(), fans, rule, _KERNEL_SOURCE


def _ints(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _padding(m, n: int) -> tuple[int, ...] | int:
    """An nnx conv's symmetric explicit padding as PyTorch's, else 0 ('SAME', 'VALID' and
    asymmetric paddings have no PyTorch equivalent; they decide no parameter)."""
    pad = m.padding
    if isinstance(pad, int):
        return pad
    if isinstance(pad, (tuple, list)) and len(pad) == n:
        pairs = [p if isinstance(p, (tuple, list)) else (p, p) for p in pad]
        if all(len(p) == 2 and p[0] == p[1] for p in pairs):
            return tuple(int(p[0]) for p in pairs)
    return 0


_KERNEL = {"weight": "kernel"}


@REGISTRY.register("conv")
class Conv(_Kernel):
    layout = "channels"
    leaves = _KERNEL
    takes_initial = True

    def kernel_fans(self, spec):
        return param_of(spec, "weight").fans, "fan_in = (C_in/g)·∏k (kernel (*k, C_in/g, C_out))"

    def native_default(self, spec, seed):
        i, o, k = spec.in_channels, spec.out_channels, spec.kernel_size
        return _nnx().Conv(i, o, k, feature_group_count=spec.groups, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        nnx, init = _nnx(), _modules().initializer
        return nnx.Conv(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            strides=spec.stride,
            padding=[(p, p) for p in spec.padding],
            kernel_dilation=spec.dilation,
            feature_group_count=spec.groups,
            use_bias=spec.bias,
            kernel_init=init(initial, "kernel"),
            bias_init=init(initial, "bias"),
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Conv,)

    def read(self, m):
        k = tuple(m.kernel_size)
        return L.Conv(
            m.in_features,
            m.out_features,
            k,
            _ints(m.strides or 1, len(k)),
            _padding(m, len(k)),
            _ints(m.kernel_dilation or 1, len(k)),
            m.feature_group_count,
            m.use_bias,
        )


@REGISTRY.register("conv_transpose")
class ConvTranspose(_Kernel):
    layout = "channels"
    leaves = _KERNEL
    takes_initial = True

    def kernel_fans(self, spec):
        r = math.prod(spec.kernel_size)
        text = "fan_in = C_in·∏k (kernel (*k, C_in, C_out))"
        return Fans(spec.in_channels * r, spec.out_channels * r), text

    def default_missing(self, spec):
        if spec.groups != 1:
            note = "flax ConvTranspose has no groups (feature_group_count) argument"
            return note, "flax/nnx/nn/linear.py ConvTranspose"
        return None

    def native_default(self, spec, seed):
        if self.default_missing(spec):
            raise ValueError(self.default_missing(spec)[0])
        i, o, k = spec.in_channels, spec.out_channels, spec.kernel_size
        return _nnx().ConvTranspose(i, o, k, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        return _modules().ConvTranspose(spec, initial)

    def natives(self):
        return (_nnx().ConvTranspose, _modules().ConvTranspose)

    def read(self, m):
        if isinstance(m, _modules().ConvTranspose):
            return m.spec
        if m.transpose_kernel:  # kernel (*k, out, in): not the layout this map describes
            return None
        k = tuple(m.kernel_size)  # nnx's own padding and strides differ from PyTorch's
        return L.ConvTranspose(m.in_features, m.out_features, k, bias=m.use_bias)


@REGISTRY.register("batchnorm")
class BatchNorm(_Norm):
    """``nnx.BatchNorm`` over the channel-last axis with nnx's momentum (``spec.decay``, the
    weight of the running value) and its own training rule (biased running variance); with
    ``train_stats="torch"`` xinit's subclass (``modules.TorchBatchNorm``)."""

    layout = "channels"
    leaves = BATCHNORM_LEAVES
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().BatchNorm(spec.num_features, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        cls = _modules().TorchBatchNorm if spec.train_stats == "torch" else _nnx().BatchNorm
        return _modules().norm_layer(
            cls,
            spec.num_features,
            initial,
            spec.affine,
            spec.affine,
            momentum=spec.decay,
            epsilon=spec.eps,
        )

    def natives(self):
        return (_nnx().BatchNorm,)

    def read(self, m):
        if m.axis not in (-1,) or m.use_scale != m.use_bias:  # not the map described here
            return None
        return L.BatchNorm(
            m.num_features,
            m.epsilon,
            L.BatchNorm.momentum_from_decay(m.momentum),
            m.use_scale,
            train_stats="torch" if isinstance(m, _modules().TorchBatchNorm) else "native",
        )


@dataclass(frozen=True)
class LinearGeneral(L.Linear):
    """A ``linear`` layer read from ``nnx.LinearGeneral``: the neutral (out, in) weight of
    ``in = prod(in_shape)``, ``out = prod(out_shape)``, held as the kernel
    ``(*in_shape, *out_shape)`` (the (in, out) matrix reshaped) and the bias ``out_shape``,
    as Flax's ``kernel_init_wrap`` reshapes the 2-d kernel it draws."""

    in_shape: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()
    axis: tuple[int, ...] = (-1,)  # the input axes it contracts (the forward only)


@REGISTRY.register("linear")
class Linear(_Kernel):
    """``nnx.Linear``, and ``nnx.LinearGeneral`` without batch axes (:class:`LinearGeneral`:
    the same layer, its tensors reshaped); lecun_normal with fan_in = in either way, since
    Flax flattens a general kernel to (prod in, prod out) before drawing it."""

    layout = "sequence"
    leaves = _KERNEL
    takes_initial = True

    def kernel_fans(self, spec):
        return Fans(spec.in_features, spec.out_features), "fan_in = in"

    def params(self, spec):
        if not isinstance(spec, LinearGeneral):
            return super().params(spec)
        out = {"weight": (Leaf("kernel", (1, 0), shape=(*spec.in_shape, *spec.out_shape)),)}
        if spec.bias:
            out["bias"] = (Leaf("bias", shape=spec.out_shape),)
        return out

    def native_default(self, spec, seed):
        if isinstance(spec, LinearGeneral):
            return _nnx().LinearGeneral(
                spec.in_shape, spec.out_shape, axis=spec.axis, rngs=_nnx().Rngs(seed)
            )
        return _nnx().Linear(spec.in_features, spec.out_features, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        nnx, init = _nnx(), _modules().initializer
        if isinstance(spec, LinearGeneral):  # a read spec, built again: values drawn after
            return nnx.LinearGeneral(
                spec.in_shape, spec.out_shape, axis=spec.axis, use_bias=spec.bias, rngs=nnx.Rngs(0)
            )
        return nnx.Linear(
            spec.in_features,
            spec.out_features,
            use_bias=spec.bias,
            kernel_init=init(initial, "kernel"),
            bias_init=init(initial, "bias"),
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Linear, _nnx().LinearGeneral)

    def read(self, m):
        if not isinstance(m, _nnx().LinearGeneral):
            return L.Linear(m.in_features, m.out_features, m.use_bias)
        if m.batch_axis:  # one kernel per batch index: no neutral layer, its tensors as stored
            return None
        i, o = tuple(m.in_features), tuple(m.out_features)
        return LinearGeneral(
            math.prod(i), math.prod(o), m.use_bias, in_shape=i, out_shape=o, axis=tuple(m.axis)
        )


@REGISTRY.register("embedding")
class Embedding(Lowering):
    layout = "sequence"
    leaves = {"weight": "embedding"}
    takes_initial = True

    def default_rule(self, spec, param):
        src = "flax/nnx/nn/linear.py default_embed_init (linen: the same)"
        text = "variance_scaling(1, 'fan_in', 'normal', out_axis=0): N(0, 1/dim), untruncated"
        fans = Fans(spec.embedding_dim, spec.embedding_dim)
        return VarianceScaling(1.0, "fan_in", "normal"), fans, text, src

    def native_default(self, spec, seed):
        n, dim = spec.num_embeddings, spec.embedding_dim
        return _nnx().Embed(n, dim, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        m = _modules()
        init = m.initializer(initial, "embedding")
        rngs = _nnx().Rngs(0)
        return _nnx().Embed(spec.num_embeddings, spec.embedding_dim, embedding_init=init, rngs=rngs)

    def natives(self):
        return (_nnx().Embed,)

    def read(self, m):
        return L.Embedding(m.num_embeddings, m.features)


@REGISTRY.register("layernorm")
class LayerNorm(_Norm):
    """``nnx.LayerNorm`` over the last dim. Over several dims, xinit's module: nnx keeps its
    scale and bias 1-D, where the neutral map has them in ``normalized_shape``."""

    layout = "sequence"
    leaves = _SCALE
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().LayerNorm(math.prod(spec.normalized_shape), rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        if len(spec.normalized_shape) > 1:
            return _modules().LayerNorm(spec, initial)
        affine = spec.elementwise_affine
        (features,) = spec.normalized_shape
        return _modules().norm_layer(
            _nnx().LayerNorm, features, initial, affine, affine and spec.bias, epsilon=spec.eps
        )

    def natives(self):
        return (_nnx().LayerNorm, _modules().LayerNorm)

    def read(self, m):
        if isinstance(m, _modules().FeatureNorm):
            return m.spec
        if not m.use_scale and m.use_bias:  # a bias alone: no neutral LayerNorm
            return None
        bias = m.use_bias if m.use_scale else True
        return L.LayerNorm(m.num_features, m.epsilon, m.use_scale, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(_Norm):
    """``nnx.RMSNorm`` over the last dim with the spec's eps. xinit's module over several
    dims (nnx's scale is 1-D) and for ``eps=None``, PyTorch's machine epsilon of the input's
    dtype, which a fixed ``epsilon`` cannot follow."""

    layout = "sequence"
    leaves = _SCALE
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().RMSNorm(math.prod(spec.normalized_shape), rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        if len(spec.normalized_shape) > 1 or spec.eps is None:
            return _modules().RMSNorm(spec, initial)
        (features,) = spec.normalized_shape
        return _modules().norm_layer(
            _nnx().RMSNorm, features, initial, spec.elementwise_affine, None, epsilon=spec.eps
        )

    def natives(self):
        return (_nnx().RMSNorm, _modules().RMSNorm)

    def read(self, m):
        if isinstance(m, _modules().FeatureNorm):
            return m.spec
        return L.RMSNorm(m.num_features, m.epsilon, m.use_scale)


@REGISTRY.register("groupnorm")
class GroupNorm(_Norm):
    """``nnx.GroupNorm``: contiguous channel groups on the channel-last axis, statistics over
    every position of a sample, as PyTorch's."""

    layout = "channels"
    leaves = _SCALE
    takes_initial = True

    def native_default(self, spec, seed):
        n, g = spec.num_channels, spec.num_groups
        return _nnx().GroupNorm(n, num_groups=g, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        return _modules().norm_layer(
            _nnx().GroupNorm,
            spec.num_channels,
            initial,
            spec.affine,
            spec.affine,
            num_groups=spec.num_groups,
            epsilon=spec.eps,
        )

    def natives(self):
        return (_nnx().GroupNorm,)

    def read(self, m):
        if m.use_scale != m.use_bias:  # one of the two: no neutral GroupNorm
            return None
        return L.GroupNorm(m.num_groups, m.num_groups * m.group_size, m.epsilon, m.use_scale)


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
    """The native layer is the ``nnx.Param`` itself (its op in the metadata): the enclosing
    container holds it as the attribute named as the node (``cls_token``) and applies it."""

    layout = "sequence"
    takes_initial = True

    def default_missing(self, spec):
        return BARE_PARAMETER

    def build(self, spec, device, initial=None):
        return _modules().learned_parameter(spec, initial)


@REGISTRY.register("learned_tensor")
class LearnedTensor(LearnedParameter):
    """The ``nnx.Param`` itself, on the enclosing container under the node's name, whose value
    the container hands on as it is: neutral, no batch axis (``layouts.plan_graph`` keeps it
    so, and an element-wise node broadcasts it onto channel-last images)."""

    layout = "neutral"


@REGISTRY.register("select")
class Select(Lowering):
    layout = "neutral"

    def build(self, spec, device):
        return _modules().Select(spec)


@REGISTRY.register("position_ids")
class PositionIds(Lowering):
    layout = "neutral"

    def build(self, spec, device):
        return _modules().PositionIds()


# The recurrent kinds: their Flax lowering lives in recurrent_lowerings.py.
LSTM, GRU, RNN = register_recurrent(REGISTRY, RecurrentLowering)


@REGISTRY.register("flatten")
class Flatten(Lowering):
    """Flattening all but the batch dim reads a channel-last image in channel-first order
    (so a following Linear's weights are PyTorch's); any other flatten is a neutral reshape."""

    def build(self, spec, device):
        whole = (spec.start_dim, spec.end_dim) == (1, -1)
        return _modules().Flatten() if whole else _modules().Neutral(spec)

    def layout_for(self, spec):
        return "channels" if (spec.start_dim, spec.end_dim) == (1, -1) else "neutral"


def _jax():
    import jax

    return jax


def _jnp():
    import jax.numpy as jnp

    return jnp


def _hardsigmoid(s, x):
    if s.is_default:
        return _jax().nn.hard_sigmoid(x)
    return _jnp().clip(x * s.slope + s.offset, 0.0, 1.0)


def _reduce(s, x):
    return getattr(_jnp(), s.op)(x, axis=s.axes(x.ndim), keepdims=s.keepdim)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _pad(s, x):
    extra = {"constant_values": s.value} if s.mode == "constant" else {}
    return _jnp().pad(x, s.widths(x.ndim), mode=_PAD_MODES[s.mode], **extra)


def _length_mask(s, lengths):
    """LengthMask: -inf where key j >= the length (or is the query, ``diagonal``), else 0."""
    jnp = _jnp()
    steps = jnp.arange(s.size, dtype=lengths.dtype)
    blocked = (steps >= lengths[:, None])[:, None, :] | jnp.asarray(s.eye())
    return jnp.where(blocked, jnp.asarray(-jnp.inf, lengths.dtype), jnp.zeros((), lengths.dtype))[
        :, None
    ]


def _dropout(s):
    cls = _modules().DownscaleDropout if s.mode == "downscale_in_infer" else _nnx().Dropout
    return cls(s.p, rngs=_nnx().Rngs(dropout=0))


# The element-wise activations: kind -> the function (spec, x) -> y of jax (one line a kind,
# as timm's create_act.py; a tracer reads the same table). They share one module type.
ACTIVATIONS = {
    "relu": lambda s, x: _jax().nn.relu(x),
    "leaky_relu": lambda s, x: _jax().nn.leaky_relu(x, s.negative_slope),
    "gelu": lambda s, x: _jax().nn.gelu(x, approximate=s.approximate == "tanh"),
    "silu": lambda s, x: _jax().nn.silu(x),
    "sigmoid": lambda s, x: _jax().nn.sigmoid(x),
    "tanh": lambda s, x: _jax().numpy.tanh(x),
    "hardswish": lambda s, x: _jax().nn.hard_swish(x),
    "hardsigmoid": _hardsigmoid,
    "relu6": lambda s, x: _jax().nn.relu6(x),
    "clip": lambda s, x: _jnp().clip(x, s.min, s.max),
    "identity": lambda s, x: x,
}

# The functional glue: kind -> (spec, *inputs) -> output, on the neutral arrays except where
# LAYOUTS says (a tracer reads the same table); the module type is the activations'.
FUNCTIONS = {
    **ARRAY_FUNCTIONS,
    "softmax": lambda s, x: _jax().nn.softmax(x, axis=s.dim),
    "log_softmax": lambda s, x: _jax().nn.log_softmax(x, axis=s.dim),
    "reduce": _reduce,
    "matmul": lambda s, a, b: _jnp().matmul(a, b, precision="highest"),
    "pad": _pad,
    "channel_shuffle": lambda s, x: _modules().channel_shuffle(s, x),
    "sinusoid_positions": lambda s, x: x + _jnp().asarray(s.table(x.shape[1]), x.dtype),
    "argmax": lambda s, x: _jnp().argmax(x, axis=s.dim).astype(x.dtype),
    "cumsum": lambda s, x: _jnp().cumsum(x, axis=s.dim),
    "compare": lambda s, x: s.test(x).astype(x.dtype),
    "length_mask": _length_mask,
}

# Parameter-free layers: the native module from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        "max_pool": lambda s: _modules().Pool(s),
        "avg_pool": lambda s: _modules().Pool(s),
        "adaptive_avg_pool": lambda s: _modules().AdaptiveAvgPool(s),
        "adaptive_max_pool": lambda s: _modules().AdaptiveAvgPool(s),
        "reshape": lambda s: _modules().Neutral(s),
        "permute": lambda s: _modules().Neutral(s),
        "dropout": _dropout,
        "stochastic_depth": lambda s: _modules().StochasticDepth(s.p, rngs=_nnx().Rngs(dropout=0)),
        "add": lambda s: _modules().Merge(s),
        "mul": lambda s: _modules().Merge(s),
        "sub": lambda s: _modules().Merge(s),
        "div": lambda s: _modules().Merge(s),
        "concat": lambda s: _modules().Merge(s),
        "upsample": lambda s: _modules().Upsample(s),
        **{
            kind: lambda s, function=function: _modules().Activation(s, function)
            for kind, function in {**ACTIVATIONS, **FUNCTIONS}.items()
        },
    },
)

# How the parameter-free modules hold activations (see Lowering.layout); the rest are "any"
# (element-wise, or a scalar op: the input's layout).
for _kind, _layout in {
    "max_pool": "channels",
    "avg_pool": "channels",
    "adaptive_avg_pool": "channels",
    "adaptive_max_pool": "channels",
    "upsample": "channels",
    "channel_shuffle": "channels",
    "reshape": "neutral",
    "permute": "neutral",
    "softmax": "neutral",
    "log_softmax": "neutral",
    "reduce": "neutral",
    "matmul": "neutral",
    "split": "neutral",
    "slice": "neutral",
    "pad": "neutral",
    "sinusoid_positions": "neutral",
    "argmax": "neutral",
    "cumsum": "neutral",
    "compare": "neutral",
    "length_mask": "neutral",
}.items():
    REGISTRY[_kind].layout = _layout

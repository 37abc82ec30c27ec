"""One lowering per layer kind for Flax NNX: the native module and its parameter map.

Flax holds kernels channel-last: Linear ``(in, out)``, Conv ``(*k, in/groups, out)``,
ConvTranspose ``(*k, in, out/groups)``; the leaves are ``kernel``, ``scale`` (norms),
``embedding``, and BatchNorm's ``mean``/``var`` (no step counter). Layers with parameters
take ``initial`` and create each parameter with the value xinit drew for it
(``modules.initializer``); a parameter it has no value for gets a zero placeholder.
"""

from __future__ import annotations

import math
from itertools import accumulate

import numpy as np

from xinit import layers as L
from xinit.errors import DefaultsError
from xinit.fans import Fans
from xinit.initializers import (
    Constant,
    LecunNormal,
    Ones,
    VarianceScaling,
    Zeros,
)
from xinit.parammap import Leaf

from ..common.recurrent import register_recurrent
from ..registry import (
    BARE_PARAMETER,
    NO_LAYER_SCALE,
    Lowering,
    Registry,
    param_of,
    register_builders,
)
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


def _nnx():
    from flax import nnx

    return nnx


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


class _Norm(Lowering):
    """Norm layers: scale (and running variance) ones, the rest zeros."""

    def default_rule(self, spec, param):
        if param == "num_batches_tracked":
            return None  # Flax keeps no step counter
        src = "flax/nnx/nn/normalization.py"
        if param in ("weight", "running_var"):
            return Ones(), None, "ones", src
        return Zeros(), None, "zeros", src


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


def _modules():
    from . import modules

    return modules


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
    leaves = {
        "weight": "scale",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    }
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


@REGISTRY.register("linear")
class Linear(_Kernel):
    layout = "sequence"
    leaves = _KERNEL
    takes_initial = True

    def kernel_fans(self, spec):
        return Fans(spec.in_features, spec.out_features), "fan_in = in"

    def native_default(self, spec, seed):
        return _nnx().Linear(spec.in_features, spec.out_features, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        nnx, init = _nnx(), _modules().initializer
        return nnx.Linear(
            spec.in_features,
            spec.out_features,
            use_bias=spec.bias,
            kernel_init=init(initial, "kernel"),
            bias_init=init(initial, "bias"),
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Linear,)

    def read(self, m):
        return L.Linear(m.in_features, m.out_features, m.use_bias)


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


_SCALE = {"weight": "scale"}


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


# ---- per-sample norms and per-channel learned layers (InstanceNorm, LayerNorm2d, PReLU,
# LayerScale): one block, kept together
@REGISTRY.register("instancenorm")
class InstanceNorm(_Norm):
    """``nnx.InstanceNorm`` on channel-last images (``scale``/``bias``, both or none; the
    exact two-pass variance); it keeps no running statistics, so PyTorch's get xinit's layer
    (``modules.InstanceNorm``), with BatchNorm's ``mean``/``var``."""

    layout = "channels"
    leaves = BatchNorm.leaves
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().InstanceNorm(spec.num_features, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        if spec.track_running_stats:
            return _modules().InstanceNorm(spec, initial)
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
        return (_nnx().InstanceNorm, _modules().InstanceNorm)

    def read(self, m):
        if isinstance(m, _modules().InstanceNorm):
            return m.spec
        if m.use_scale != m.use_bias or tuple(np.atleast_1d(m.feature_axes)) != (-1,):
            return None  # one of scale/bias, or features not last: no neutral InstanceNorm
        return L.InstanceNorm(m.num_features, m.epsilon, affine=m.use_scale)


@REGISTRY.register("layernorm2d")
class LayerNorm2d(_Norm):
    """On channel-last images a LayerNorm over the channels is ``nnx.LayerNorm`` over the last
    axis: xinit's subclass of it (exact variance), whose default is ``nnx.LayerNorm``'s."""

    layout = "channels"
    leaves = _SCALE
    takes_initial = True

    def native_default(self, spec, seed):
        return _nnx().LayerNorm(spec.num_channels, rngs=_nnx().Rngs(seed))

    def build(self, spec, device, initial=None):
        return _modules().LayerNorm2d(spec, initial)

    def natives(self):
        return (_modules().LayerNorm2d,)

    def read(self, m):
        return m.spec


@REGISTRY.register("prelu")
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
        return _modules().PReLU(spec, initial)

    def natives(self):
        return (_nnx().PReLU,)

    def read(self, m):
        if isinstance(m, _modules().PReLU):
            return m.spec
        n = int(np.size(m.negative_slope[...]))  # 0-d: one slope; nnx's default init 0.01
        return L.PReLU(n, 0.01)


@REGISTRY.register("layer_scale")
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
        return _modules().LayerScale(spec, initial)

    def natives(self):
        return (_modules().LayerScale,)

    def read(self, m):
        return m.spec


def _heads(spec, name: str, rows: int, part: tuple[int, int, int] | None, heads=None) -> Leaf:
    """One (in, H, D) ``LinearGeneral`` kernel: a neutral (E, in) block, transposed, heads split
    (``heads``: the key/value heads of grouped-query attention)."""
    return Leaf(name, (1, 0), part=part, shape=(rows, heads or spec.num_heads, spec.head_dim))


_MHA_SOURCE = (
    "flax/nnx/nn/attention.py MultiHeadAttention (kernel_init = default_kernel_init = "
    "lecun_normal(), bias_init = zeros_init()); flax/nnx/nn/linear.py LinearGeneral "
    "kernel_init_wrap (flattens the kernel to (prod in, prod out) for the initializer)"
)


@REGISTRY.register("multihead_attention")
class MultiheadAttention(Lowering):
    """``nnx.MultiHeadAttention``: ``query``/``key``/``value`` kernels (in, H, D) and ``out``
    kernel (H, D, E), the neutral packed rows (or PyTorch's separate ``q/k/v_proj_weight``
    with kdim/vdim) transposed and split by head. Takes and returns the neutral (N, L, E)."""

    layout = "sequence"

    def default_rule(self, spec, param):
        """``nnx.MultiHeadAttention``: ``LinearGeneral`` kernels, flattened to 2-d before
        ``lecun_normal`` sees them: (E, H·D) for query/key/value, (H·D, E) for out."""
        e = spec.embed_dim
        if param == "in_proj_weight":
            text = (
                "lecun_normal on each (E, H, D) query/key/value kernel, seen as (E, H·D): fan_in E"
            )
            return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
        if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
            n = param_of(spec, param).shape[1]
            text = f"lecun_normal on the ({n}, H, D) kernel, seen as ({n}, H·D): fan_in {n}"
            return LecunNormal(), Fans(n, e), text, _MHA_SOURCE
        if param == "out_proj.weight":
            text = "lecun_normal on the (H, D, E) out kernel, seen as (H·D, E): fan_in H·D = E"
            return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
        return Zeros(), None, "zeros_init()", _MHA_SOURCE

    def default_missing(self, spec):
        if (spec.kdim or spec.embed_dim) != (spec.vdim or spec.embed_dim):
            note = "nnx.MultiHeadAttention has one in_kv_features for key and value (kdim != vdim)"
            return note, "flax/nnx/nn/attention.py MultiHeadAttention(in_kv_features=)"
        return None

    def native_default(self, spec, seed):
        if self.default_missing(spec):
            raise ValueError(self.default_missing(spec)[0])
        e, kv = spec.embed_dim, spec.kdim or spec.embed_dim
        return _nnx().MultiHeadAttention(
            spec.num_heads, e, num_kv_heads=spec.kv_heads, in_kv_features=kv, rngs=_nnx().Rngs(seed)
        )

    def params(self, spec):
        e, h, d = spec.embed_dim, spec.num_heads, spec.head_dim
        names = ("query", "key", "value")
        if spec.packed:
            out = {
                "in_proj_weight": tuple(
                    _heads(spec, f"{n}.kernel", e, (0, i * e, (i + 1) * e))
                    for i, n in enumerate(names)
                )
            }
        else:
            rows = (e, spec.key_features, spec.value_features)
            heads = (h, spec.kv_heads, spec.kv_heads)
            out = {
                f"{p}_proj_weight": (_heads(spec, f"{n}.kernel", r, None, k),)
                for p, n, r, k in zip("qkv", names, rows, heads)
            }
        out["out_proj.weight"] = (Leaf("out.kernel", (1, 0), shape=(h, d, e)),)
        if spec.bias:
            ends = [0, *accumulate(spec.proj_rows)]
            out["in_proj_bias"] = tuple(
                Leaf(f"{n}.bias", part=(0, ends[i], ends[i + 1]), shape=(rows // d, d))
                for i, (n, rows) in enumerate(zip(names, spec.proj_rows))
            )
            out["out_proj.bias"] = (Leaf("out.bias"),)
        return out

    def build(self, spec, device):
        return _modules().Attention(spec)

    def natives(self):
        return (_nnx().MultiHeadAttention,)

    def read(self, m):
        if isinstance(m, _modules().Attention):
            return m.spec
        e = m.in_features
        if m.qkv_features != e or m.out_features != e or m.normalize_qk:
            return None
        kv = m.in_kv_features
        return L.MultiheadAttention(
            e, m.num_heads, m.use_bias, kdim=kv, vdim=kv, num_kv_heads=m.num_kv_heads
        )


@REGISTRY.register("sdpa")
class ScaledDotProductAttention(Lowering):
    layout = "sequence"

    def build(self, spec, device):
        return _modules().ScaledDotProductAttention(spec)


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
    "identity": lambda s, x: x,
}

# Parameter-free layers: the native module from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        "max_pool": lambda s: _modules().Pool(s),
        "avg_pool": lambda s: _modules().Pool(s),
        "adaptive_avg_pool": lambda s: _modules().AdaptiveAvgPool(s),
        "reshape": lambda s: _modules().Neutral(s),
        "permute": lambda s: _modules().Neutral(s),
        "dropout": lambda s: _nnx().Dropout(s.p, rngs=_nnx().Rngs(dropout=0)),
        "add": lambda s: _modules().Merge(s),
        "mul": lambda s: _modules().Merge(s),
        "concat": lambda s: _modules().Merge(s),
        "upsample": lambda s: _modules().Upsample(s),
        **{
            kind: lambda s, function=function: _modules().Activation(s, function)
            for kind, function in ACTIVATIONS.items()
        },
    },
)

# How the parameter-free modules hold activations (see Lowering.layout); the rest are "any".
for _kind, _layout in {
    "max_pool": "channels",
    "avg_pool": "channels",
    "adaptive_avg_pool": "channels",
    "upsample": "channels",
    "reshape": "neutral",
    "permute": "neutral",
}.items():
    REGISTRY[_kind].layout = _layout

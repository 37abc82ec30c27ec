"""Layer specs: frozen dataclasses that know their parameters and infer their output shape.

Shapes include the batch dimension and are channel-first (N, C, *spatial), whatever the
backend. Parameter shapes are in the neutral (PyTorch) layout and carry a role for fans and
a default initializer (PyTorch's defaults, the neutral convention).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import ClassVar

from . import kinds
from .errors import XinitError
from .fans import Fans, compute_fans
from .initializers import (
    Initializer,
    KaimingUniform,
    Normal,
    Ones,
    Uniform,
    XavierUniform,
    Zeros,
)

_TORCH_DEFAULT = KaimingUniform(a=math.sqrt(5.0))  # U(+-1/sqrt(fan_in)) for weight and bias


class SpecError(XinitError, ValueError):
    """A spec that cannot run; the message names the layer path and the shapes involved."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter or buffer of a layer, in neutral terms."""

    name: str  # neutral leaf name: weight, bias, running_mean, running_var, num_batches_tracked
    shape: tuple[int, ...]
    role: str  # fan role: linear, conv, conv_transpose, embedding, vector
    init: Initializer
    kind: str  # the owning layer's neutral kind
    fans: Fans | None = None  # fans for fan-based inits (a bias uses its weight's)
    trainable: bool = True
    dtype: str = "float32"
    layer: Layer | None = field(default=None, repr=False, compare=False)  # the owning spec

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def owner(self, path: str) -> str:
        """The layer path of this parameter's full ``path``; a leaf name may be dotted
        (``out_proj.weight`` of attention), so the path is cut at the name, not the last dot;
        an empty name (a learned-parameter node's) is the layer path itself."""
        if not self.name:
            return path
        if path == self.name:
            return ""
        if path.endswith("." + self.name):
            return path[: -len(self.name) - 1]
        return path.rpartition(".")[0]


def _tuple(value, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) for v in value):
        raise SpecError(f"{what} must be an int or a tuple of {n} ints; got {value!r}")
    return value


def _dims_of(kernel, dims: int | None) -> int:
    if dims is not None:
        return dims
    return len(kernel) if isinstance(kernel, (tuple, list)) else 2


class Layer:
    """Base of layer specs. ``kind`` is the neutral kind policies match on."""

    kind: ClassVar[str] = ""

    def params(self) -> tuple[ParamSpec, ...]:
        """Parameters and buffers (neutral names, shapes, roles, default initializers)."""
        cached = self.__dict__.get("_params_cache")  # specs are frozen: compute once
        if cached is None:
            cached = tuple(replace(p, layer=self) for p in self._params())
            object.__setattr__(self, "_params_cache", cached)
        return cached

    def _params(self) -> tuple[ParamSpec, ...]:
        return ()

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)

    def inputs_taken(self) -> tuple[int, int | None]:
        """(fewest, most) inputs a graph node of this layer takes (None: no limit); a layer
        of several inputs gets their shapes as a tuple in :meth:`output_shape`."""
        return (1, 1)

    def channels(self, c: int | None) -> int | None:
        """The channel (feature) count out, given ``c`` in (None: unknown), for the check a
        build can make without an input size; SpecError when ``c`` is not what it takes."""
        return c

    def _take_channels(self, need: int, c: int | None) -> None:
        if c is not None and need != c:
            raise SpecError(f"{type(self).__name__} expects {need} input channels but receives {c}")

    def _need_rank(self, shape, ranks, what="input") -> None:
        if len(shape) not in ranks:
            raise SpecError(
                f"{type(self).__name__} expects a {'/'.join(map(str, ranks))}-d {what} "
                f"(N, C, ...); got shape {tuple(shape)}"
            )

    def _need_channels(self, shape, channels) -> None:
        if shape[1] != channels:
            raise SpecError(
                f"{type(self).__name__} expects {channels} input channels; got {shape[1]} "
                f"(input shape {tuple(shape)})"
            )


def inputs_text(lo: int, hi: int | None) -> str:
    """``one input``, ``2 inputs``, ``1 to 3 inputs``, ``1 or more inputs``: for errors."""
    if hi == 1:
        return "one input"
    if hi is None:
        return f"{lo} or more inputs"
    return f"{lo} inputs" if lo == hi else f"{lo} to {hi} inputs"


def _dim(dim: int, ndim: int, who: str) -> int:
    if not -ndim <= dim < ndim:
        raise SpecError(f"{who}: dim {dim} is out of range for a {ndim}-d input")
    return dim % ndim


def _set(obj, **kw) -> None:
    for k, v in kw.items():
        object.__setattr__(obj, k, v)


def _positive_int(obj, **kw) -> None:
    for k, v in kw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(f"{type(obj).__name__}.{k} must be a positive int; got {v!r}")


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


@kinds.layer(
    weight_role="linear",
    params=("weight", "bias"),
    aliases=("dense",),
    channels="in_features",
    example=lambda: kinds.Example(Linear(5, 3), ((2, 5),)),
)
@dataclass(frozen=True)
class Linear(Layer):
    """Fully connected layer on the last dim of (N, ..., in_features): weight (out, in).

    ``conv1d``: the PyTorch build is Hugging Face's ``Conv1D`` (GPT-2's ``c_attn``,
    ``c_proj``, ``c_fc``), which stores the weight (in, out); the neutral weight stays
    (out, in) and Paddle and Flax store (in, out) anyway, so only torch's map differs."""

    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    conv1d: bool = False

    def __post_init__(self):
        _positive_int(self, in_features=self.in_features, out_features=self.out_features)

    def channels(self, c):
        self._take_channels(self.in_features, c)
        return self.out_features

    def _params(self):
        w = (self.out_features, self.in_features)
        fans = compute_fans(w, "linear")
        init = self.weight_init or _TORCH_DEFAULT
        out = [ParamSpec("weight", w, "linear", init, self.kind, fans=fans)]
        if self.bias:
            init = self.bias_init or _TORCH_DEFAULT
            out.append(ParamSpec("bias", (self.out_features,), "vector", init, self.kind, fans))
        return tuple(out)

    def output_shape(self, shape):
        """Applied to the last dim, as ``torch.nn.Linear``: (*, in) -> (*, out)."""
        if len(shape) < 2:
            raise SpecError(f"Linear expects at least a 2-d input (N, ..., {self.in_features})")
        if shape[-1] != self.in_features:
            nd = len(shape) > 2
            raise SpecError(
                f"Linear expects {self.in_features} input features"
                f"{' in the last dim' if nd else ''}; got {shape[-1]} (input shape "
                f"{tuple(shape)}){' (add a Flatten before it?)' if nd else ''}"
            )
        return (*shape[:-1], self.out_features)


@kinds.layer(
    weight_role="embedding",
    params=("weight",),
    aliases=("embed",),
    channel_free=True,
    example=lambda: kinds.Example(Embedding(10, 4), ((2, 5),), ids=10),
)
@dataclass(frozen=True)
class Embedding(Layer):
    """Lookup table (num_embeddings, embedding_dim) on integer input (N, L) -> (N, L, D)."""

    kind: ClassVar[str] = "embedding"
    num_embeddings: int
    embedding_dim: int
    weight_init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim)

    def channels(self, c):
        return None  # integer ids in, (N, L, D) out: no channel axis to follow

    def _params(self):
        shape = (self.num_embeddings, self.embedding_dim)
        return (ParamSpec("weight", shape, "embedding", self.weight_init or Normal(), self.kind),)

    def output_shape(self, shape):
        return (*shape, self.embedding_dim)


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


# ---- attention -----------------------------------------------------------------------------
ATTENTION_MASKS = ("attn_mask", "key_padding_mask")  # the extra inputs, in this order


@kinds.layer(
    weight_role="linear",
    params=(
        "in_proj_weight",
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ),
    aliases=("mha", "attention"),
    example=lambda: kinds.Example(MultiheadAttention(8, 2), ((2, 3, 8),)),
)
@dataclass(frozen=True)
class MultiheadAttention(Layer):
    """PyTorch's ``nn.MultiheadAttention`` (batch first) on (N, L, E) queries.

    Parameters as PyTorch names them: with ``kdim``/``vdim`` equal to ``embed_dim`` (or None)
    the packed (3E, E) ``in_proj_weight`` (rows q, k, v); otherwise ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim); then ``in_proj_bias`` (3E,)
    and ``out_proj``. Defaults as PyTorch: Xavier-uniform on the packed matrix (fan_out 3E)
    or on each separate projection, zero biases, ``out_proj.weight`` U(±1/√E).

    A graph node takes (query) for self-attention, (query, key_value) or (query, key, value),
    followed by the masks the spec asks for, in the order of :data:`ATTENTION_MASKS`:
    ``attn_mask`` (L, S) or (N·num_heads, L, S), ``key_padding_mask`` (N, S). As PyTorch:
    a bool mask is True where attention is NOT allowed, a float mask is added to the scores.
    ``is_causal`` masks key j > query i itself (no mask input needed; combined with an
    ``attn_mask`` when both are given)."""

    kind: ClassVar[str] = "multihead_attention"
    embed_dim: int
    num_heads: int
    bias: bool = True
    kdim: int | None = None
    vdim: int | None = None
    attn_mask: bool = False
    key_padding_mask: bool = False
    is_causal: bool = False

    def __post_init__(self):
        _positive_int(self, embed_dim=self.embed_dim, num_heads=self.num_heads)
        for name in ("kdim", "vdim"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(self, **{name: value})
                if value == self.embed_dim:  # one spelling of the same layer (equal specs)
                    _set(self, **{name: None})
        if self.embed_dim % self.num_heads:
            raise SpecError(
                f"MultiheadAttention: embed_dim {self.embed_dim} is not divisible by num_heads "
                f"{self.num_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def key_features(self) -> int:
        """The key input's feature count (``kdim``, else ``embed_dim``)."""
        return self.kdim or self.embed_dim

    @property
    def value_features(self) -> int:
        """The value input's feature count (``vdim``, else ``embed_dim``)."""
        return self.vdim or self.embed_dim

    @property
    def packed(self) -> bool:
        """Whether q, k, v are one packed ``in_proj_weight`` (PyTorch's _qkv_same_embed_dim)."""
        return self.kdim is None and self.vdim is None

    @property
    def masks(self) -> tuple[str, ...]:
        """The mask inputs this node takes, in input order."""
        return tuple(m for m in ATTENTION_MASKS if getattr(self, m))

    def inputs_taken(self):
        n = len(self.masks)
        return (1 + n, 3 + n)

    def split_inputs(self, xs) -> tuple:
        """``(query, key, value, attn_mask, key_padding_mask)`` from a node's inputs (arrays or
        shapes): 1 to 3 sequences, then the masks; key defaults to query, value to key, an
        absent mask is None."""
        xs = list(xs)
        n = len(xs) - len(self.masks)
        if not 1 <= n <= 3:
            what = inputs_text(*self.inputs_taken())
            masks = "".join(", " + m for m in self.masks)
            raise SpecError(
                f"MultiheadAttention takes {what} (query[, key[, value]]{masks}); got {len(xs)}"
            )
        q = xs[0]
        k = xs[1] if n > 1 else q
        v = xs[2] if n > 2 else k
        given = dict(zip(self.masks, xs[n:]))
        return q, k, v, given.get("attn_mask"), given.get("key_padding_mask")

    def score_shape(self, mask: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The shape mask ``mask`` (of ``shape``) takes to broadcast against the attention
        scores (N, H, L, S), as PyTorch reads it: (L, S) -> (1, 1, L, S), (N·H, L, S) ->
        (N, H, L, S) (batch-major), key_padding_mask (N, S) -> (N, 1, 1, S)."""
        shape = tuple(int(d) for d in shape)
        if mask == "key_padding_mask":
            return (shape[0], 1, 1, shape[1])
        if len(shape) == 2:
            return (1, 1, *shape)
        return (shape[0] // self.num_heads, self.num_heads, shape[1], shape[2])

    def channels(self, c):
        return None  # (N, L, E): the checked size is the last, in output_shape

    def _params(self):
        e, k = self.embed_dim, self.kind
        packed = compute_fans((3 * e, e), "linear")
        if self.packed:
            out = [ParamSpec("in_proj_weight", (3 * e, e), "linear", XavierUniform(), k, packed)]
        else:  # torch: xavier_uniform_ on each projection, its own fans
            out = [
                ParamSpec(
                    f"{n}_proj_weight",
                    (e, d),
                    "linear",
                    XavierUniform(),
                    k,
                    compute_fans((e, d), "linear"),
                )
                for n, d in (("q", e), ("k", self.key_features), ("v", self.value_features))
            ]
        if self.bias:  # one (3E,) vector either way: the packed matrix's fans
            out.append(ParamSpec("in_proj_bias", (3 * e,), "vector", Zeros(), k, packed))
        fans = compute_fans((e, e), "linear")
        out.append(ParamSpec("out_proj.weight", (e, e), "linear", _TORCH_DEFAULT, k, fans))
        if self.bias:
            out.append(ParamSpec("out_proj.bias", (e,), "vector", Zeros(), k, fans))
        return tuple(out)

    def output_shape(self, shape):
        """(N, L, E) out; checks the query, key, value and mask shapes of the node's inputs."""
        multi = bool(shape) and all(isinstance(s, (tuple, list)) for s in shape)
        shapes = [tuple(s) for s in shape] if multi else [tuple(shape)]
        q, k, v, attn, pad = self.split_inputs(shapes)
        n_seq = len(shapes) - len(self.masks)
        names = (("query",), ("query", "key_value"), ("query", "key", "value"))[n_seq - 1]
        listed = ", ".join(f"{name} {s}" for name, s in zip((*names, *self.masks), shapes))
        e = self.embed_dim
        if len(q) != 3 or q[-1] != e:
            raise SpecError(
                f"MultiheadAttention expects an (N, L, E={e}) query; got shape {q}"
                + (f" (inputs: {listed})" if multi else "")
            )
        for what, s, d in (("key", k, self.key_features), ("value", v, self.value_features)):
            if len(s) != 3 or s[-1] != d:
                flag = "kdim" if what == "key" else "vdim"
                raise SpecError(
                    f"MultiheadAttention expects an (N, S, {flag}={d}) {what}; got shape {s} "
                    f"(inputs: {listed})"
                )
        if k[0] != q[0] or v[0] != q[0] or v[1] != k[1]:
            raise SpecError(
                f"MultiheadAttention: query, key and value need one batch size and key/value "
                f"one length; got {listed}"
            )
        n, length, s_len, h = q[0], q[1], k[1], self.num_heads
        if attn is not None and attn not in ((length, s_len), (n * h, length, s_len)):
            raise SpecError(
                f"MultiheadAttention: attn_mask must be (L, S) = {(length, s_len)} or "
                f"(N*num_heads, L, S) = {(n * h, length, s_len)}; got {attn} (inputs: {listed})"
            )
        if pad is not None and pad != (n, s_len):
            raise SpecError(
                f"MultiheadAttention: key_padding_mask must be (N, S) = {(n, s_len)}; got {pad} "
                f"(inputs: {listed})"
            )
        return q


# ---- transformer pieces: attention core, learned tokens and positions, token picks ---------
@kinds.layer(
    example=lambda: kinds.Example(ScaledDotProductAttention(2), ((2, 3, 12),)),
)
@dataclass(frozen=True)
class ScaledDotProductAttention(Layer):
    """The parameter-free core of self-attention on a packed (N, L, 3E) input, as timm's
    ``Attention`` and GPT-2's ``c_attn`` produce it (rows q, k, v of one Linear): split into
    ``num_heads`` heads of E/num_heads, softmax(q k^T / sqrt(head_dim)) v (``causal``: each
    position sees itself and the ones before), heads joined again: (N, L, E). With a qkv
    Linear before it and an output Linear after it, its parameters are plain ``linear``."""

    kind: ClassVar[str] = "sdpa"
    num_heads: int
    causal: bool = False

    def __post_init__(self):
        _positive_int(self, num_heads=self.num_heads)

    def embed_dim(self, packed: int) -> int:
        """E from the packed width 3E; SpecError when 3E cannot be split into heads."""
        if packed % 3 or (packed // 3) % self.num_heads:
            raise SpecError(
                f"ScaledDotProductAttention expects a packed q, k, v width 3E with E divisible "
                f"by num_heads={self.num_heads}; got {packed}"
            )
        return packed // 3

    def channels(self, c):
        return None if c is None else self.embed_dim(c)

    def output_shape(self, shape):
        if len(shape) != 3:
            raise SpecError(
                f"ScaledDotProductAttention expects a packed (N, L, 3E) sequence; got shape "
                f"{tuple(shape)}"
            )
        return (shape[0], shape[1], self.embed_dim(shape[-1]))


LEARNED_OPS = ("add", "prepend")


@kinds.layer(
    params=("",),
    aliases=("learned", "parameter"),
    example=lambda: kinds.Example(LearnedParameter((1, 3, 4)), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class LearnedParameter(Layer):
    """A learned tensor as a node of a container (ViT's ``cls_token``, ``pos_embed``).

    Its single parameter has an empty leaf name, so its path is the node's: a node named
    ``cls_token`` is the state-dict key ``cls_token``, a parameter of the container itself
    as timm registers it. ``shape`` is the whole parameter, batch axis 1 first. ``op`` is
    what the node does to its input (N, L, *rest): ``"prepend"`` concatenates the parameter
    (1, T, *rest), broadcast over the batch, before the sequence, giving (N, T + L, *rest)
    (a class token); ``"add"`` adds the parameter (1, L, *rest) (positions). Default init
    N(0, 0.02), as torchvision's ViT gives its positions."""

    kind: ClassVar[str] = "learned_parameter"
    needs_container: ClassVar[bool] = True  # its parameter lives on the enclosing container
    shape: tuple[int, ...]
    op: str = "add"
    init: Initializer | None = None

    def __post_init__(self):
        shape = (self.shape,) if isinstance(self.shape, int) else tuple(self.shape)
        if (
            len(shape) < 2
            or shape[0] != 1
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        ):
            raise SpecError(
                f"LearnedParameter.shape must be (1, L, *rest) with positive sizes (axis 0 is "
                f"broadcast over the batch); got {self.shape!r}"
            )
        _set(self, shape=shape)
        if self.op not in LEARNED_OPS:
            raise SpecError(f"LearnedParameter.op must be one of {LEARNED_OPS}; got {self.op!r}")

    def channels(self, c):
        return c  # the feature (last) size is kept

    def _params(self):
        init = self.init or Normal(0.0, 0.02)
        return (ParamSpec("", self.shape, "vector", init, self.kind),)

    def output_shape(self, shape):
        p, shape = self.shape, tuple(shape)
        if len(shape) != len(p):
            raise SpecError(
                f"LearnedParameter (op={self.op!r}) of shape {p} needs a {len(p)}-d input; got "
                f"shape {shape}"
            )
        if self.op == "add":
            if shape[1:] != p[1:]:
                raise SpecError(
                    f"LearnedParameter (op='add') of shape {p} does not match input {shape}: "
                    f"{p[1]} positions for {shape[1]} tokens"
                    if shape[2:] == p[2:]
                    else f"LearnedParameter (op='add') of shape {p} does not match input {shape}"
                )
            return shape
        if shape[2:] != p[2:]:
            raise SpecError(
                f"LearnedParameter (op='prepend') of shape {p} cannot be put before input "
                f"{shape}: the sizes after the sequence axis differ"
            )
        return (shape[0], shape[1] + p[1], *shape[2:])


@kinds.layer(
    example=lambda: kinds.Example(Select(1, 0), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class Select(Layer):
    """``x.select(dim, index)``: one index of neutral dim ``dim``, that dim removed (ViT's
    class-token pooling ``x[:, 0]``)."""

    kind: ClassVar[str] = "select"
    dim: int = 1
    index: int = 0

    def __post_init__(self):
        for name in ("dim", "index"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(f"Select.{name} must be an int; got {value!r}")
        if self.dim == 0:
            raise SpecError("Select: dim 0 is the batch")

    def channels(self, c):
        return None

    def output_shape(self, shape):
        d = _dim(self.dim, len(shape), "Select")
        if d == 0:
            raise SpecError(f"Select: dim {self.dim} is the batch of input {tuple(shape)}")
        if not -shape[d] <= self.index < shape[d]:
            raise SpecError(
                f"Select: index {self.index} is out of range for dim {self.dim} of input "
                f"{tuple(shape)}"
            )
        return (*shape[:d], *shape[d + 1 :])

    def position(self, size: int) -> int:
        """The index in ``0 .. size - 1`` (a negative index counts from the end)."""
        return self.index % size


@kinds.layer(
    example=lambda: kinds.Example(PositionIds(8), ((2, 5),), ids=8),
)
@dataclass(frozen=True)
class PositionIds(Layer):
    """Token ids (N, L) in, their positions ``arange(L)`` for every sample out (N, L): what
    GPT-2 feeds its position embedding ``wpe``. ``num_positions`` (the table's size), when
    given, bounds L."""

    kind: ClassVar[str] = "position_ids"
    num_positions: int | None = None

    def __post_init__(self):
        if self.num_positions is not None:
            _positive_int(self, num_positions=self.num_positions)

    def channels(self, c):
        return None

    def output_shape(self, shape):
        if len(shape) != 2:
            raise SpecError(f"PositionIds expects token ids (N, L); got shape {tuple(shape)}")
        if self.num_positions is not None and shape[1] > self.num_positions:
            raise SpecError(
                f"PositionIds: {shape[1]} tokens exceed the {self.num_positions} positions "
                f"(input shape {tuple(shape)})"
            )
        return tuple(shape)


# ---- recurrent -----------------------------------------------------------------------------
RNN_BIASES = (True, False, "ih", "hh")
_RNN_LEAF = re.compile(r"^(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")


@dataclass(frozen=True)
class _Recurrent(Layer):
    """A stack of recurrent layers with PyTorch's parameters (``nn.LSTM``/``nn.GRU``), on a
    batch-first (N, L, input_size) sequence; the output is the last layer's sequence (N, L,
    hidden_size * directions) alone: a graph node yields one array, so the final states
    (h_n, c_n) are not returned.

    Parameters, per layer ``k`` and direction (``_reverse`` for the backward one), in
    PyTorch's state-dict order: ``weight_ih_l{k}`` (G·H, in_k) with role ``rnn_input``,
    ``weight_hh_l{k}`` (G·H, H) with role ``rnn_recurrent``, ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` (G·H,); the G gate blocks are stacked along dim 0 in PyTorch's order;
    ``in_0 = input_size``, deeper layers take H·directions. Default init: PyTorch's
    U(±1/√H) on every one of them. No leaf is named ``weight``, so a policy rule for these
    layers names its leaves: ``Rule(init, kind="lstm", param="weight_hh*")`` (recurrent
    kernels), ``param="weight_ih*"`` (input kernels), ``param="*"`` (all); a plain
    ``Rule(init, kind="lstm")`` selects nothing and warns, listing the leaves.

    ``bias``: True (both biases, PyTorch), False (none), or ``"ih"``/``"hh"``: that bias
    alone, the other one zero in the math. Flax's own cells have one bias per gate
    (``nnx.LSTMCell`` the recurrent one, ``nnx.GRUCell`` the input one); specs read from
    them are one-bias specs, which PyTorch's modules cannot build.
    """

    gates: ClassVar[int] = 0
    gate_names: ClassVar[tuple[str, ...]] = ()
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool | str = True
    bidirectional: bool = False

    def __post_init__(self):
        _positive_int(self, input_size=self.input_size, hidden_size=self.hidden_size)
        _positive_int(self, num_layers=self.num_layers)
        if not any(self.bias is b or (isinstance(b, str) and self.bias == b) for b in RNN_BIASES):
            raise SpecError(
                f"{type(self).__name__}.bias must be True, False, 'ih' or 'hh'; got {self.bias!r}"
            )
        if not isinstance(self.bidirectional, bool):
            raise SpecError(
                f"{type(self).__name__}.bidirectional must be a bool; got {self.bidirectional!r}"
            )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions

    def has_bias(self, side: str) -> bool:
        """Whether the layer has the ``"ih"`` or ``"hh"`` bias."""
        return self.bias is True or self.bias == side

    def layer_input(self, k: int) -> int:
        """The input size of layer ``k``: ``input_size``, then H·directions."""
        return self.input_size if k == 0 else self.output_size

    def cells(self) -> tuple[tuple[int, str], ...]:
        """``(layer, suffix)`` of every cell in PyTorch's order: ("", "_reverse") per layer."""
        suffixes = ("", "_reverse")[: self.directions]
        return tuple((k, s) for k in range(self.num_layers) for s in suffixes)

    @staticmethod
    def leaf_parts(name: str) -> tuple[str, int, bool] | None:
        """``"weight_ih_l1_reverse"`` -> ``("weight_ih", 1, True)``; None for other names."""
        m = _RNN_LEAF.match(name)
        return None if m is None else (f"{m[1]}_{m[2]}", int(m[3]), m[4] is not None)

    def channels(self, c):
        return self.output_size  # features of (N, L, D) in; the input's checked in output_shape

    def _params(self):
        g, h, kind = self.gates, self.hidden_size, self.kind
        bound = 1.0 / math.sqrt(h)
        init = Uniform(-bound, bound)
        out = []
        for k, sfx in self.cells():
            w_ih, w_hh = (g * h, self.layer_input(k)), (g * h, h)
            f_ih, f_hh = compute_fans(w_ih, "rnn_input"), compute_fans(w_hh, "rnn_recurrent")
            out.append(ParamSpec(f"weight_ih_l{k}{sfx}", w_ih, "rnn_input", init, kind, f_ih))
            out.append(ParamSpec(f"weight_hh_l{k}{sfx}", w_hh, "rnn_recurrent", init, kind, f_hh))
            for side, fans in (("ih", f_ih), ("hh", f_hh)):
                if self.has_bias(side):
                    out.append(
                        ParamSpec(f"bias_{side}_l{k}{sfx}", (g * h,), "vector", init, kind, fans)
                    )
        return tuple(out)

    def output_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.input_size:
            raise SpecError(
                f"{type(self).__name__} expects a batch-first (N, L, input_size={self.input_size}) "
                f"sequence; got shape {tuple(shape)}"
            )
        return (shape[0], shape[1], self.output_size)

    def shape_hint(self, name: str, shape: tuple[int, ...]) -> str:
        """Why a tensor of ``shape`` does not fit leaf ``name``: a gate count that is another
        recurrent kind's (a GRU's 3 gates for an LSTM's 4), or another hidden size."""
        h = self.hidden_size
        if not shape or shape[0] % h or shape[0] // h == self.gates:
            return ""
        n = shape[0] // h
        return (
            f" ({n} gate blocks of hidden size {h}; {type(self).__name__} has {self.gates}: "
            f"{', '.join(self.gate_names)})"
        )


@kinds.layer(
    params=("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
    channels="input_size",
    example=lambda: kinds.Example(LSTM(4, 3), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class LSTM(_Recurrent):
    """PyTorch's ``nn.LSTM(batch_first=True)``: 4 gates (i, f, g, o); see :class:`_Recurrent`."""

    kind: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")


@kinds.layer(
    params=("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
    channels="input_size",
    example=lambda: kinds.Example(GRU(4, 3), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class GRU(_Recurrent):
    """PyTorch's ``nn.GRU(batch_first=True)``: 3 gates (r, z, n), with b_hn inside
    r ⊙ (W_hn h + b_hn); see :class:`_Recurrent`."""

    kind: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")


# ---- activations and shape-only layers -----------------------------------------------------
@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(ReLU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class ReLU(Layer):
    kind: ClassVar[str] = "relu"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(LeakyReLU(0.2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class LeakyReLU(Layer):
    kind: ClassVar[str] = "leaky_relu"
    negative_slope: float = 0.01


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(GELU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class GELU(Layer):
    """Exact (erf) GELU by default, as PyTorch; ``approximate="tanh"`` for the tanh form."""

    kind: ClassVar[str] = "gelu"
    approximate: str = "none"

    def __post_init__(self):
        if self.approximate not in ("none", "tanh"):
            raise SpecError(f"GELU.approximate must be 'none' or 'tanh'; got {self.approximate!r}")


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(SiLU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class SiLU(Layer):
    kind: ClassVar[str] = "silu"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Sigmoid(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Sigmoid(Layer):
    kind: ClassVar[str] = "sigmoid"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Tanh(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Tanh(Layer):
    kind: ClassVar[str] = "tanh"


@kinds.layer(activation=True, example=lambda: kinds.Example(Hardswish(), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Hardswish(Layer):
    """x · relu6(x + 3) / 6 (MobileNetV3's activation, PyTorch's ``nn.Hardswish``)."""

    kind: ClassVar[str] = "hardswish"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Identity(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Identity(Layer):
    kind: ClassVar[str] = "identity"


@kinds.layer(
    example=lambda: kinds.Example(Dropout(0.3), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Dropout(Layer):
    kind: ClassVar[str] = "dropout"
    p: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.p < 1.0:
            raise SpecError(f"Dropout.p must be in [0, 1); got {self.p!r}")


@kinds.layer(
    channel_free=True,
    example=lambda: kinds.Example(Flatten(), ((2, 3, 2, 2),)),
)
@dataclass(frozen=True)
class Flatten(Layer):
    """Flattens dims ``start_dim..end_dim`` in channel-first order (``nn.Flatten``; by
    default all but the batch dim)."""

    kind: ClassVar[str] = "flatten"
    start_dim: int = 1
    end_dim: int = -1

    def channels(self, c):
        return c if self.start_dim >= 2 else None  # else it depends on the spatial size

    def output_shape(self, shape):
        n = len(shape)
        if self.start_dim == 1 and self.end_dim == -1:
            self._need_rank(shape, (2, 3, 4, 5))
        start, end = _dim(self.start_dim, n, "Flatten"), _dim(self.end_dim, n, "Flatten")
        if start > end:
            raise SpecError(f"Flatten: start_dim {self.start_dim} after end_dim {self.end_dim}")
        return (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])


@kinds.layer(
    example=lambda: kinds.Example(Reshape((4, 6)), ((2, 3, 2, 4),)),
)
@dataclass(frozen=True)
class Reshape(Layer):
    """``x.reshape(N, *shape)``: the dims after the batch, channel-first order; one may be -1."""

    kind: ClassVar[str] = "reshape"
    shape: tuple[int, ...] = ()

    def __post_init__(self):
        _set(self, shape=tuple(int(d) for d in self.shape))
        if not self.shape or sum(d == -1 for d in self.shape) > 1 or min(self.shape) < -1:
            raise SpecError(f"Reshape: shape {self.shape} needs sizes >= 1 and at most one -1")

    def channels(self, c):
        return None

    def output_shape(self, shape):
        total, known = math.prod(shape[1:]), math.prod(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if known == 0 or total % known:
                raise SpecError(f"Reshape: {tuple(shape)} cannot be viewed as (N, *{self.shape})")
            return (shape[0], *(total // known if d == -1 else d for d in self.shape))
        if known != total:
            raise SpecError(f"Reshape: {tuple(shape)} has {total} values per sample, not {known}")
        return (shape[0], *self.shape)


@kinds.layer(
    example=lambda: kinds.Example(Permute((0, 2, 1)), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class Permute(Layer):
    """``x.permute(*dims)`` on the channel-first (neutral) dims, batch included."""

    kind: ClassVar[str] = "permute"
    dims: tuple[int, ...] = ()

    def __post_init__(self):
        _set(self, dims=tuple(int(d) for d in self.dims))
        if sorted(self.dims) != list(range(len(self.dims))):
            raise SpecError(f"Permute: dims {self.dims} is not a permutation of 0..n-1")

    def channels(self, c):
        return c if self.dims[:2] == (0, 1) else None

    def output_shape(self, shape):
        if len(shape) != len(self.dims):
            raise SpecError(f"Permute{self.dims} needs a {len(self.dims)}-d input; got {shape}")
        return tuple(shape[d] for d in self.dims)


# ---- pooling -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Pool(Layer):
    kernel_size: int | tuple[int, ...] = 2
    stride: int | tuple[int, ...] | None = None  # defaults to kernel_size, as in PyTorch
    padding: int | tuple[int, ...] = 0
    ceil_mode: bool = False
    dims: int | None = None

    def __post_init__(self):
        n = _dims_of(self.kernel_size, self.dims)
        if n not in (1, 2, 3):
            raise SpecError(f"{type(self).__name__} supports 1 to 3 spatial dims; got {n}")
        k = _tuple(self.kernel_size, n, "kernel_size")
        s = k if self.stride is None else _tuple(self.stride, n, "stride")
        p = _tuple(self.padding, n, "padding")
        _set(self, dims=n, kernel_size=k, stride=s, padding=p)
        if min(k) < 1 or min(s) < 1 or min(p) < 0:
            raise SpecError(f"{type(self).__name__}: kernel/stride must be >= 1, padding >= 0")
        if any(2 * pi > ki for pi, ki in zip(p, k)):
            raise SpecError(
                f"{type(self).__name__}: padding {p} must be at most half the kernel {k}"
            )

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        spatial = []
        for size, k, s, p in zip(shape[2:], self.kernel_size, self.stride, self.padding):
            if size + 2 * p < k:
                raise SpecError(
                    f"{type(self).__name__}: kernel {self.kernel_size} is larger than the padded "
                    f"input {tuple(shape)} with padding {self.padding}"
                )
            out = pool_out(size, k, s, p, self.ceil_mode)
            spatial.append(out)
        return (shape[0], shape[1], *spatial)


def pool_out(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length, including ceil_mode's 'last window starts inside' rule."""
    num = size + 2 * p - k
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


@kinds.layer(
    example=lambda: kinds.Example(MaxPool(2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class MaxPool(_Pool):
    kind: ClassVar[str] = "max_pool"


@kinds.layer(
    example=lambda: kinds.Example(AvgPool(2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class AvgPool(_Pool):
    """Average pool; ``count_include_pad`` as PyTorch (Paddle's ``exclusive`` is its negation)."""

    kind: ClassVar[str] = "avg_pool"
    count_include_pad: bool = True


@kinds.layer(
    example=lambda: kinds.Example(AdaptiveAvgPool(1), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class AdaptiveAvgPool(Layer):
    kind: ClassVar[str] = "adaptive_avg_pool"
    output_size: int | tuple[int, ...] = 1
    dims: int | None = None

    def __post_init__(self):
        n = _dims_of(self.output_size, self.dims)
        _set(self, dims=n, output_size=_tuple(self.output_size, n, "output_size"))
        if min(self.output_size) < 1:
            raise SpecError(f"AdaptiveAvgPool.output_size must be >= 1; got {self.output_size}")

    def output_shape(self, shape):
        self._need_rank(shape, (self.dims + 2,))
        return (shape[0], shape[1], *self.output_size)


# ---- merges and resizing (graph nodes) ----------------------------------------------------
@dataclass(frozen=True)
class Merge(Layer):
    """A parameter-free node of several inputs (a graph's ``add``, ``concat``, ``mul``).
    ``merge_shape`` infers the output shape from the input shapes; one input passes through."""

    def inputs_taken(self):
        return (1, None)

    def output_shape(self, shape):
        return self.merge_shape([tuple(shape)])

    def merge_shape(self, shapes, names=None) -> tuple[int, ...]:
        names = names or [f"input {i}" for i in range(len(shapes))]
        first = tuple(shapes[0])
        for shape in shapes[1:]:
            if tuple(shape) != first:
                listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
                raise SpecError(f"{self.kind} needs equal shapes; got {listed}")
        return first

    def merge_channels(self, channels: list[int | None]) -> int | None:
        known = {c for c in channels if c is not None}
        if len(known) > 1:
            raise SpecError(f"{self.kind} needs equal channel counts; got {channels}")
        return known.pop() if known else None


@kinds.layer(
    example=lambda: kinds.Example(Add(), ((2, 3, 4, 4), (2, 3, 4, 4))),
)
@dataclass(frozen=True)
class Add(Merge):
    """Element-wise sum of the inputs (equal shapes)."""

    kind: ClassVar[str] = "add"


@kinds.layer(
    example=lambda: kinds.Example(Mul(), ((2, 3, 4, 4), (2, 3, 4, 4))),
)
@dataclass(frozen=True)
class Mul(Merge):
    """Element-wise product of the inputs (equal shapes)."""

    kind: ClassVar[str] = "mul"


@kinds.layer(
    example=lambda: kinds.Example(Concat(1), ((2, 3, 4, 4), (2, 2, 4, 4))),
)
@dataclass(frozen=True)
class Concat(Merge):
    """Concatenation along neutral (channel-first) dim ``dim``, as ``torch.cat``: all other
    sizes must be equal."""

    kind: ClassVar[str] = "concat"
    dim: int = 1

    def merge_shape(self, shapes, names=None):
        names = names or [f"input {i}" for i in range(len(shapes))]
        ranks = {len(s) for s in shapes}
        listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
        if len(ranks) > 1:
            raise SpecError(f"concat needs inputs of one rank; got {listed}")
        d = _dim(self.dim, len(shapes[0]), "concat")
        rest = {tuple(s[:d]) + tuple(s[d + 1 :]) for s in shapes}
        if len(rest) > 1:
            raise SpecError(f"concat along dim {self.dim} needs equal other sizes; got {listed}")
        out = list(shapes[0])
        out[d] = sum(s[d] for s in shapes)
        return tuple(out)

    def merge_channels(self, channels):
        if self.dim != 1:
            return super().merge_channels(channels)
        return None if None in channels else sum(channels)


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


def upsample_matrix(spec: Upsample, n: int, o: int, factor: float | None):
    """The (o, n) float64 numpy matrix of one axis of ``spec``'s resize (PyTorch's rule):
    output[i] = sum_j M[i, j] * input[j]. The same matrix serves all three frameworks."""
    import numpy as np

    ratio = (1.0 / factor) if factor else n / o  # torch: 1/scale_factor when one is given
    i = np.arange(o, dtype=np.float64)
    m = np.zeros((o, n), np.float64)
    if spec.mode == "nearest":
        src = np.minimum(np.floor(i * np.float32(ratio)).astype(np.int64), n - 1)
        m[np.arange(o), src] = 1.0
        return m
    if spec.align_corners:
        src = i * ((n - 1) / (o - 1)) if o > 1 else np.zeros(o)
    else:
        src = np.maximum((i + 0.5) * ratio - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    np.add.at(m, (np.arange(o), lo), 1.0 - frac)
    np.add.at(m, (np.arange(o), hi), frac)
    return m


# The spec-backed kinds (the whole table, native-only kinds too: xinit.kinds.names()).
LAYER_KINDS = tuple(k for k in kinds.names() if kinds.get(k).spec is not None)

__all__ = [
    "SpecError",
    "ParamSpec",
    "Layer",
    "Conv",
    "ConvTranspose",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose2d",
    "BatchNorm",
    "Linear",
    "Embedding",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
    "MultiheadAttention",
    "ScaledDotProductAttention",
    "LearnedParameter",
    "Select",
    "PositionIds",
    "LSTM",
    "GRU",
    "RNN_BIASES",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "Hardswish",
    "Identity",
    "Dropout",
    "Flatten",
    "Reshape",
    "Permute",
    "MaxPool",
    "AvgPool",
    "AdaptiveAvgPool",
    "Merge",
    "Add",
    "Mul",
    "Concat",
    "Upsample",
    "upsample_matrix",
    "pool_out",
    "LAYER_KINDS",
]

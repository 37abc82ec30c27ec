"""What each framework does by default, as data: a catalogue of xinit initializers.

For PyTorch, PaddlePaddle and Flax NNX (Flax Linen initialises exactly as NNX does; where
Linen differs, in BatchNorm state and RNG keying, the conventions table says so), every
parameter of every supported layer kind maps to the xinit initializer and the resolved
distribution that the framework's **own** default layer uses, computed from the layer's
logical dims (in, out, groups, kernel). ``tests/test_defaults.py`` is the judge: it builds
each framework's native default layers and tests their measured statistics against this file.

* :func:`catalogue` - the records for one layer (every framework, every parameter);
* :func:`default_entry` / :func:`default_init` - one record / one distribution;
* :class:`Default` - ``xinit.init.Default("torch")``: a framework's defaults as an initializer
  usable for any parameter of a spec (so a Paddle or Flax model can get PyTorch's init);
* :data:`CONVENTIONS` - BatchNorm momentum/eps/running variance, LayerNorm eps, layouts,
  truncated-normal bounds, pooling defaults, RNG seeding;
* :func:`native_defaults` and :func:`plot_defaults` - build the native layers (lazily
  importing the framework) and plot what they actually produce.

Nothing here imports a framework at module import time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .distributions import ConstantDist, Distribution, NormalDist, TruncNormalDist, UniformDist
from .fans import Fans
from .initializers import (
    Initializer,
    KaimingUniform,
    LecunNormal,
    Normal,
    Ones,
    Uniform,
    VarianceScaling,
    XavierUniform,
    Zeros,
)

FRAMEWORKS = ("torch", "paddle", "flax")
LAYERS = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "batchnorm",
    "layernorm",
    "embedding",
)
_ALIASES = {
    "dense": "linear",
    "conv": "conv2d",
    "conv_transpose": "conv_transpose2d",
    "batchnorm1d": "batchnorm",
    "batchnorm2d": "batchnorm",
    "batchnorm3d": "batchnorm",
    "bn": "batchnorm",
    "ln": "layernorm",
    "embed": "embedding",
}
_DEPTHWISE = {
    "depthwise_conv1d": "conv1d",
    "depthwise_conv2d": "conv2d",
    "depthwise_conv3d": "conv3d",
}

# neutral parameter names of each layer kind, in state-dict order (torch names)
_PARAMS = {
    "linear": ("weight", "bias"),
    "conv": ("weight", "bias"),
    "conv_transpose": ("weight", "bias"),
    "embedding": ("weight",),
    "batchnorm": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
    "layernorm": ("weight", "bias"),
}
_NATIVE_NAMES = {
    "torch": {},
    "paddle": {"running_mean": "_mean", "running_var": "_variance"},
    "flax": {
        ("linear", "weight"): "kernel",
        ("conv", "weight"): "kernel",
        ("conv_transpose", "weight"): "kernel",
        ("embedding", "weight"): "embedding",
        ("batchnorm", "weight"): "scale",
        ("layernorm", "weight"): "scale",
        "running_mean": "mean",
        "running_var": "var",
    },
}
_SQRT5 = math.sqrt(5.0)


# ---- layer dims --------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDims:
    """A layer's logical dims, all the catalogue needs.

    ``in_features``/``out_features`` are C_in/C_out for convolutions, in/out for linear,
    ``num_embeddings``/``embedding_dim`` for embeddings and the feature count (twice) for
    norm layers. ``kernel`` has one entry per spatial dim (empty for non-conv layers).
    """

    layer: str
    in_features: int
    out_features: int
    kernel: tuple[int, ...] = ()
    groups: int = 1

    def __post_init__(self):
        layer = canonical_layer(self.layer)
        object.__setattr__(self, "layer", layer)
        for name in ("in_features", "out_features", "groups"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{layer}: {name} must be a positive int; got {v!r}")
        n = self.spatial
        kernel = self.kernel
        if isinstance(kernel, int) and not isinstance(kernel, bool):
            kernel = (kernel,) * n
        kernel = tuple(kernel)
        if n == 0:
            kernel = ()
        elif len(kernel) != n or not all(isinstance(k, int) and k >= 1 for k in kernel):
            raise ValueError(f"{layer}: kernel must be an int or {n} positive ints; got {kernel!r}")
        object.__setattr__(self, "kernel", kernel)
        if self.kind in ("conv", "conv_transpose"):
            for name in ("in_features", "out_features"):
                if getattr(self, name) % self.groups:
                    raise ValueError(
                        f"{layer}: groups={self.groups} does not divide "
                        f"{name}={getattr(self, name)}"
                    )
        elif self.groups != 1:
            raise ValueError(f"{layer} has no groups; got groups={self.groups}")
        if self.kind in ("batchnorm", "layernorm") and self.in_features != self.out_features:
            raise ValueError(
                f"{layer}: one feature count; got in={self.in_features}, out={self.out_features}"
            )

    @property
    def kind(self) -> str:
        """The neutral kind (as ``ParamSpec.kind``): linear, conv, conv_transpose, ..."""
        if self.layer.startswith("conv_transpose"):
            return "conv_transpose"
        if self.layer.startswith("conv"):
            return "conv"
        return self.layer

    @property
    def spatial(self) -> int:
        return int(self.layer[-2]) if self.layer.startswith("conv") else 0

    @property
    def receptive(self) -> int:
        return math.prod(self.kernel)

    def describe(self) -> str:
        if self.kind in ("batchnorm", "layernorm"):
            return f"{self.layer}({self.in_features})"
        if self.kind in ("linear", "embedding"):
            return f"{self.layer}({self.in_features}, {self.out_features})"
        k = "x".join(map(str, self.kernel))
        g = f", groups={self.groups}" if self.groups != 1 else ""
        return f"{self.layer}({self.in_features}, {self.out_features}, k={k}{g})"

    def neutral_shape(self, param: str) -> tuple[int, ...]:
        """Shape of ``param`` in the neutral (PyTorch) layout."""
        i, o, g, k = self.in_features, self.out_features, self.groups, self.kernel
        if param == "num_batches_tracked":
            return ()
        if param != "weight":
            return (o,)
        if self.kind == "linear":
            return (o, i)
        if self.kind == "conv":
            return (o, i // g, *k)
        if self.kind == "conv_transpose":
            return (i, o // g, *k)
        if self.kind == "embedding":
            return (i, o)
        return (o,)

    def role(self, param: str) -> str:
        if param != "weight" or self.kind in ("batchnorm", "layernorm"):
            return "vector"
        return self.kind


def canonical_layer(name: str) -> str:
    """The catalogue's name for a layer kind (accepts a few aliases: dense, bn, embed, ...)."""
    if not isinstance(name, str):
        raise ValueError(f"layer must be a name such as 'conv2d'; got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in LAYERS:
        raise ValueError(
            f"unknown layer kind {name!r}; accepted: {LAYERS} (and {tuple(_ALIASES)}, "
            f"{tuple(_DEPTHWISE)})"
        )
    return key


def dims(
    layer: str,
    in_features: int,
    out_features: int | None = None,
    kernel: int | tuple[int, ...] = 3,
    groups: int = 1,
) -> LayerDims:
    """Convenience constructor: ``dims("conv2d", 64, 128, 3, groups=4)``.

    ``depthwise_conv2d`` (and 1d/3d) sets ``groups = in_features``; ``out_features`` defaults
    to ``in_features``. Norm layers have one feature count: ``out_features`` when given (the
    norm that follows an in->out layer), else ``in_features``.
    """
    key = str(layer).strip().lower().replace("-", "_")
    if key in _DEPTHWISE:
        layer, groups = _DEPTHWISE[key], in_features
    out = in_features if out_features is None else out_features
    canon = canonical_layer(layer)
    if canon in ("batchnorm", "layernorm"):  # the norm after an in->out layer: out features
        in_features = out
    if not canon.startswith("conv"):
        kernel = ()
    return LayerDims(canon, in_features, out, kernel, groups)


def as_dims(layer: Any) -> LayerDims:
    """LayerDims from a LayerDims, an xinit layer spec, or a dict of LayerDims fields."""
    if isinstance(layer, LayerDims):
        return layer
    if isinstance(layer, dict):
        return dims(**layer)
    from . import layers as L

    if isinstance(layer, L.ConvTranspose):
        return LayerDims(
            f"conv_transpose{layer.dims}d",
            layer.in_channels,
            layer.out_channels,
            tuple(layer.kernel_size),
            layer.groups,
        )
    if isinstance(layer, L.Conv):
        return LayerDims(
            f"conv{layer.dims}d",
            layer.in_channels,
            layer.out_channels,
            tuple(layer.kernel_size),
            layer.groups,
        )
    if isinstance(layer, L.Linear):
        return LayerDims("linear", layer.in_features, layer.out_features)
    if isinstance(layer, L.Embedding):
        return LayerDims("embedding", layer.num_embeddings, layer.embedding_dim)
    if isinstance(layer, L.BatchNorm):
        return LayerDims("batchnorm", layer.num_features, layer.num_features)
    kind = getattr(layer, "kind", None)
    if kind == "layernorm":
        shape = getattr(layer, "normalized_shape", None) or getattr(layer, "num_features", None)
        n = shape if isinstance(shape, int) else math.prod(shape)
        return LayerDims("layernorm", n, n)
    raise ValueError(
        f"cannot read layer dims from {type(layer).__name__}: expected LayerDims, a dict, or an "
        "xinit Conv/ConvTranspose/Linear/Embedding/BatchNorm spec"
    )


# ---- the catalogue -----------------------------------------------------------------------
@dataclass(frozen=True)
class DefaultEntry:
    """One framework's default for one parameter of one layer."""

    framework: str
    dims: LayerDims
    param: str  # neutral (PyTorch) name: weight, bias, running_mean, running_var, ...
    native_name: str  # the framework's own leaf name (kernel, scale, _mean, ...)
    native_shape: tuple[int, ...]
    initializer: Initializer | None  # the xinit initializer the framework's default equals
    fans: Fans | None  # the fans the framework's own rule uses (None: not fan-based)
    distribution: Distribution | None  # None when the framework cannot build this layer
    rule: str  # the framework's rule, in words
    source: str = ""  # where the rule lives in the framework's source
    trainable: bool = True
    note: str = ""

    @property
    def layer(self) -> str:
        return self.dims.layer

    @property
    def id(self) -> str:
        """``framework-layer-param``, e.g. ``paddle-conv2d-weight``."""
        return f"{self.framework}-{self.layer}-{self.param}"

    @property
    def supported(self) -> bool:
        return self.distribution is not None

    @property
    def neutral_shape(self) -> tuple[int, ...]:
        return self.dims.neutral_shape(self.param)

    @property
    def std(self) -> float | None:
        return None if self.distribution is None else float(self.distribution.std)

    @property
    def mean(self) -> float | None:
        return None if self.distribution is None else float(self.distribution.mean)

    def record(self) -> dict[str, Any]:
        """A JSON-able dict (keys framework, layer, param, distribution, std, ...)."""
        d = self.distribution
        return {
            "framework": self.framework,
            "layer": self.layer,
            "param": self.param,
            "native_name": self.native_name,
            "native_shape": list(self.native_shape),
            "distribution": short(d),
            "std": self.std,
            "mean": self.mean,
            "law": _law(d),
            "initializer": None if self.initializer is None else repr(self.initializer),
            "fan_in": None if self.fans is None else self.fans.fan_in,
            "fan_out": None if self.fans is None else self.fans.fan_out,
            "rule": self.rule,
            "source": self.source,
            "trainable": self.trainable,
            "dims": {
                "in": self.dims.in_features,
                "out": self.dims.out_features,
                "kernel": list(self.dims.kernel),
                "groups": self.dims.groups,
            },
            "note": self.note,
        }


def short(dist: Distribution | None) -> str:
    """Compact text: ``U(±0.04167)``, ``N(0, 0.05893²)``, ``TN(0, σ=0.09474, ±0.1895)``."""
    if dist is None:
        return "n/a"
    if isinstance(dist, ConstantDist):
        return f"Const({dist.value:g})"
    if isinstance(dist, UniformDist):
        if math.isclose(dist.low, -dist.high):
            return f"U(±{dist.high:.4g})"
        return f"U({dist.low:.4g}, {dist.high:.4g})"
    if isinstance(dist, NormalDist):
        return f"N({dist.mu:g}, {dist.sigma:.4g}²)"
    if isinstance(dist, TruncNormalDist):
        if math.isclose(dist.low - dist.mu, dist.mu - dist.high):
            return f"TN({dist.mu:g}, σ={dist.sigma:.4g}, ±{dist.high - dist.mu:.4g})"
        return f"TN({dist.mu:g}, σ={dist.sigma:.4g}, [{dist.low:.4g}, {dist.high:.4g}])"
    return dist.describe()


def _law(dist: Distribution | None) -> dict[str, Any] | None:
    if dist is None:
        return None
    out: dict[str, Any] = {"type": type(dist).__name__}
    for name in getattr(dist, "__dataclass_fields__", {}):
        out[name] = float(getattr(dist, name))
    return out


def _conv_fans(d: LayerDims) -> Fans:
    """PyTorch's (= Paddle's = JAX's) fans of a conv weight (C_out, C_in/g, *k)."""
    r = d.receptive
    return Fans((d.in_features // d.groups) * r, d.out_features * r)


def _convt_fans_torch(d: LayerDims) -> Fans:
    """Fans of a transposed-conv weight (C_in, C_out/g, *k) read as dim0=out, dim1=in."""
    r = d.receptive
    return Fans((d.out_features // d.groups) * r, d.in_features * r)


def _weight_fans(d: LayerDims) -> Fans:
    if d.kind == "linear":
        return Fans(d.in_features, d.out_features)
    if d.kind == "conv":
        return _conv_fans(d)
    return _convt_fans_torch(d)


_FAN_TEXT = {
    "linear": "fan_in = in",
    "conv": "fan_in = (C_in/g)·∏k",
    "conv_transpose": "fan_in = (C_out/g)·∏k",
}


def _torch(d: LayerDims, param: str):
    """(initializer, fans, rule, source) for PyTorch."""
    kind = d.kind
    if kind in ("linear", "conv", "conv_transpose"):
        fans = _weight_fans(d)
        src = {
            "linear": "torch/nn/modules/linear.py Linear.reset_parameters",
            "conv": "torch/nn/modules/conv.py _ConvNd.reset_parameters",
            "conv_transpose": "torch/nn/modules/conv.py _ConvNd.reset_parameters",
        }[kind]
        if param == "weight":
            rule = f"kaiming_uniform_(a=√5) = U(±1/√fan_in), {_FAN_TEXT[kind]}"
            return KaimingUniform(a=_SQRT5), fans, rule, src
        bound = 1.0 / math.sqrt(fans.fan_in)
        return (
            Uniform(-bound, bound),
            fans,
            f"U(±1/√fan_in) with the weight's {_FAN_TEXT[kind]}",
            src,
        )
    if kind == "embedding":
        return Normal(0.0, 1.0), None, "normal_(0, 1)", "torch/nn/modules/sparse.py"
    src = {
        "batchnorm": "torch/nn/modules/batchnorm.py",
        "layernorm": "torch/nn/modules/normalization.py",
    }[kind]
    if param in ("weight", "running_var"):
        return Ones(), None, "ones", src
    return Zeros(), None, "zeros", src


def _paddle(d: LayerDims, param: str):
    kind = d.kind
    if kind == "linear":
        src = "python/paddle/nn/layer/common.py Linear (ParamAttr default: XavierUniform)"
        if param == "weight":
            rule = "XavierUniform on [in, out]: U(±√(6/(in+out)))"
            return XavierUniform(), Fans(d.in_features, d.out_features), rule, src
        return Zeros(), None, "Constant(0)", src
    if kind == "conv":
        src = "python/paddle/nn/layer/conv.py _ConvNd._get_default_param_initializer"
        if param == "weight":
            n = d.in_features * d.receptive  # the FULL C_in: groups are ignored
            rule = "Normal(0, √(2/(C_in·∏k))) with the full C_in (groups ignored)"
            fans = Fans(n, d.out_features * d.receptive)
            return Normal(0.0, math.sqrt(2.0 / n)), fans, rule, src
        return Zeros(), None, "Constant(0)", src
    if kind == "conv_transpose":
        src = "python/paddle/nn/layer/conv.py (transposed: no default, so XavierUniform)"
        if param == "weight":
            rule = "XavierUniform on [C_in, C_out/g, *k]: fan_in = (C_out/g)·∏k, fan_out = C_in·∏k"
            return XavierUniform(), _convt_fans_torch(d), rule, src
        return Zeros(), None, "Constant(0)", src
    if kind == "embedding":
        src = "python/paddle/nn/layer/common.py Embedding (XavierUniform default)"
        rule = "XavierUniform on [num, dim]: U(±√(6/(num+dim)))"
        return XavierUniform(), Fans(d.in_features, d.out_features), rule, src
    src = "python/paddle/nn/layer/norm.py"
    if param == "num_batches_tracked":
        raise KeyError(param)
    if param in ("weight", "running_var"):
        return Ones(), None, "Constant(1)", src
    return Zeros(), None, "Constant(0)", src


def _flax(d: LayerDims, param: str):
    kind = d.kind
    if kind in ("linear", "conv", "conv_transpose"):
        src = "flax/nnx/nn/linear.py default_kernel_init = lecun_normal() (linen: the same)"
        if param == "bias":
            return Zeros(), None, "zeros_init()", src
        if kind == "linear":
            fans, text = Fans(d.in_features, d.out_features), "fan_in = in"
        elif kind == "conv":
            fans, text = _conv_fans(d), "fan_in = (C_in/g)·∏k (kernel (*k, C_in/g, C_out))"
        else:
            r = d.receptive
            fans = Fans(d.in_features * r, d.out_features * r)
            text = "fan_in = C_in·∏k (kernel (*k, C_in, C_out))"
        rule = f"lecun_normal: truncated ±2σ', variance-corrected to 1/fan_in, {text}"
        return LecunNormal(), fans, rule, src
    if kind == "embedding":
        src = "flax/nnx/nn/linear.py default_embed_init (linen: the same)"
        rule = "variance_scaling(1, 'fan_in', 'normal', out_axis=0): N(0, 1/dim), untruncated"
        return (
            VarianceScaling(1.0, "fan_in", "normal"),
            Fans(d.out_features, d.out_features),
            rule,
            src,
        )
    src = "flax/nnx/nn/normalization.py"
    if param == "num_batches_tracked":
        raise KeyError(param)
    if param in ("weight", "running_var"):
        return Ones(), None, "ones", src
    return Zeros(), None, "zeros", src


_RULES = {"torch": _torch, "paddle": _paddle, "flax": _flax}


def _native_shape(framework: str, d: LayerDims, param: str) -> tuple[int, ...]:
    shape = d.neutral_shape(param)
    if param != "weight" or framework == "torch":
        return shape
    if d.kind == "linear" and framework in ("paddle", "flax"):
        return (d.in_features, d.out_features)
    if framework == "flax" and d.kind == "conv":
        return (*d.kernel, d.in_features // d.groups, d.out_features)
    if framework == "flax" and d.kind == "conv_transpose":
        return (*d.kernel, d.in_features, d.out_features)
    return shape


def _native_name(framework: str, d: LayerDims, param: str) -> str:
    names = _NATIVE_NAMES[framework]
    return names.get((d.kind, param), names.get(param, param))


def _check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; accepted: {FRAMEWORKS}")
    return framework


def params_of(framework: str, layer: Any) -> tuple[str, ...]:
    """Neutral names of the parameters (and buffers) ``framework``'s layer has."""
    d = as_dims(layer)
    names = _PARAMS[d.kind]
    if _check_framework(framework) != "torch":
        names = tuple(n for n in names if n != "num_batches_tracked")
    return names


def default_entry(framework: str, layer: Any, param: str) -> DefaultEntry:
    """The catalogue record for ``param`` (neutral name) of ``layer`` in ``framework``.

    ``layer`` is a :class:`LayerDims`, an xinit layer spec or a dict of LayerDims fields.
    """
    _check_framework(framework)
    d = as_dims(layer)
    if param not in params_of(framework, d):
        raise ValueError(
            f"{framework} {d.layer} has no parameter {param!r}; it has {params_of(framework, d)}"
        )
    native_shape = _native_shape(framework, d, param)
    native_name = _native_name(framework, d, param)
    trainable = param in ("weight", "bias")
    if framework == "flax" and d.kind == "conv_transpose" and d.groups != 1:
        return DefaultEntry(
            framework,
            d,
            param,
            native_name,
            native_shape,
            None,
            None,
            None,
            "unsupported",
            "flax/nnx/nn/linear.py ConvTranspose",
            trainable,
            note="flax ConvTranspose has no groups (feature_group_count) argument",
        )
    init, fans, rule, source = _RULES[framework](d, param)
    dist = init.resolve(d.neutral_shape(param) or (1,), d.role(param), fans)
    return DefaultEntry(
        framework,
        d,
        param,
        native_name,
        native_shape,
        init,
        fans,
        dist,
        rule,
        source,
        trainable,
    )


def default_init(framework: str, layer_kind: str, param: str, layer: Any) -> Distribution:
    """The distribution ``framework``'s default gives ``param`` of ``layer``.

    ``layer_kind`` is a catalogue layer name (``"conv2d"``; a neutral kind such as ``"conv"``
    is accepted and takes the dims of ``layer``); ``layer`` is a LayerDims, an xinit layer spec
    or a dict. A Distribution is returned (not a bare initializer) because the fans a framework
    uses are not always the neutral ones (Flax ConvTranspose, Paddle grouped convs).
    """
    d = as_dims(layer)
    if layer_kind not in (d.kind, d.layer) and canonical_layer(layer_kind) != d.layer:
        raise ValueError(f"layer_kind {layer_kind!r} does not match the layer dims {d.describe()}")
    entry = default_entry(framework, d, param)
    if entry.distribution is None:
        raise ValueError(f"{entry.id}: {entry.note}")
    return entry.distribution


def catalogue(
    layer: Any,
    in_features: int | None = None,
    out_features: int | None = None,
    kernel: int | tuple[int, ...] = 3,
    groups: int = 1,
    *,
    frameworks: tuple[str, ...] | list[str] = FRAMEWORKS,
) -> list[DefaultEntry]:
    """All records for one layer: every framework, every parameter (parameter-major order).

    ``catalogue("conv2d", 64, 128, 3, groups=4)`` or ``catalogue(xinit.layers.Conv(...))``.
    """
    if isinstance(layer, str):
        if in_features is None:
            raise ValueError(f"catalogue({layer!r}) needs in_features")
        d = dims(layer, in_features, out_features, kernel, groups)
    else:
        d = as_dims(layer)
    for fw in frameworks:
        _check_framework(fw)
    out = []
    for param in _PARAMS[d.kind]:
        for fw in frameworks:
            if param in params_of(fw, d):
                out.append(default_entry(fw, d, param))
    return out


def records(entries: list[DefaultEntry], reference: str | None = None) -> list[dict[str, Any]]:
    """JSON-able records; with ``reference``, each gets ``ratio`` = std / reference's std."""
    ref = {(e.dims, e.param): e.std for e in entries if e.framework == reference}
    out = []
    for e in entries:
        rec = e.record()
        if reference is not None:
            rec["reference"] = reference
            rec["ratio"] = std_ratio(e.std, ref.get((e.dims, e.param)))
        out.append(rec)
    return out


def std_ratio(std: float | None, ref: float | None) -> float | None:
    if std is None or ref is None or ref == 0.0:
        return None
    return std / ref


# ---- tables -------------------------------------------------------------------------------
def _cell(entry: DefaultEntry | None, ref: DefaultEntry | None, sep: str) -> str:
    if entry is None:
        return "-"
    if entry.distribution is None:
        return f"n/a ({entry.note})"
    name = f"[{entry.native_name}] " if entry.native_name != entry.param else ""
    text = f"{name}{short(entry.distribution)}"
    if entry.distribution.random:
        text += f"{sep}std {entry.std:.4g}"
    if ref is not None and ref is not entry and ref.distribution is not None:
        ratio = std_ratio(entry.std, ref.std)
        if ratio is not None:
            text += f"{sep}×{ratio:.3g}"
        elif not entry.distribution.random and not ref.distribution.random:
            text += f"{sep}{'=' if entry.distribution == ref.distribution else '≠'}"
    return text


def table_rows(
    entries: list[DefaultEntry], reference: str | None = None, sep: str = " · "
) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(frameworks, rows): one row per (layer, param), one cell per framework."""
    frameworks = list(dict.fromkeys(e.framework for e in entries))
    by_key: dict[tuple[LayerDims, str], dict[str, DefaultEntry]] = {}
    for e in entries:
        by_key.setdefault((e.dims, e.param), {})[e.framework] = e
    rows = []
    for (d, param), cells in by_key.items():
        ref = cells.get(reference) if reference else None
        label = d.layer
        if d.groups != 1:
            label += " (depthwise)" if d.groups == d.in_features else f" (groups={d.groups})"
        rows.append((label, param, [_cell(cells.get(fw), ref, sep) for fw in frameworks]))
    return frameworks, rows


def _layers_of(entries: list[DefaultEntry]) -> str:
    return ", ".join(dict.fromkeys(e.dims.describe() for e in entries))


def to_markdown(entries: list[DefaultEntry], reference: str | None = None) -> str:
    """A Markdown table: rows layer x parameter, columns frameworks."""
    frameworks, rows = table_rows(entries, reference)
    ref = f"; ×: std relative to {reference}" if reference else ""
    lines = [
        f"Default initialisation of {_layers_of(entries)}{ref}; [name]: the framework's own "
        "parameter name.",
        "",
        "| layer | param | " + " | ".join(frameworks) + " |",
        "|---|---|" + "---|" * len(frameworks),
    ]
    for layer, param, cells in rows:
        lines.append(f"| {layer} | {param} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_rich(entries: list[DefaultEntry], reference: str | None = None):
    """A rich Table (imported lazily) of the same content as :func:`to_markdown`."""
    from rich.markup import escape
    from rich.table import Table

    frameworks, rows = table_rows(entries, reference, sep="\n")
    ref = f" (× = std / {reference}'s)" if reference else ""
    table = Table(title=f"framework defaults: {_layers_of(entries)}{ref}", show_lines=True)
    table.add_column("layer", style="bold", overflow="fold")
    table.add_column("param", overflow="fold")
    for fw in frameworks:
        table.add_column(fw, overflow="fold")
    for layer, param, cells in rows:
        table.add_row(layer, param, *(escape(c) for c in cells))
    return table


def conventions_markdown(items: list[Convention] | None = None) -> str:
    items = list(CONVENTIONS) if items is None else items
    lines = ["| topic | torch | paddle | flax | note |", "|---|---|---|---|---|"]
    for c in items:
        cells = [c.topic, c.torch, c.paddle, c.flax, c.note]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def conventions_rich(items: list[Convention] | None = None):
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="conventions around initialisation", show_lines=True)
    for col in ("topic", "torch", "paddle", "flax", "note"):
        table.add_column(col, style="bold" if col == "topic" else None, overflow="fold")
    for c in list(CONVENTIONS) if items is None else items:
        table.add_row(*(escape(x) for x in (c.topic, c.torch, c.paddle, c.flax, c.note)))
    return table


# ---- Default: a framework's defaults as an initializer -------------------------------------
_KIND_TO_LAYER = {"linear", "conv", "conv_transpose", "embedding", "batchnorm", "layernorm"}


def _dims_from_param(param, framework: str) -> LayerDims:
    layer = getattr(param, "layer", None)
    kind = getattr(param, "kind", None)
    if kind not in _KIND_TO_LAYER:
        raise ValueError(
            f"Default({framework!r}) does not know layer kind {kind!r} of parameter "
            f"{getattr(param, 'name', '?')!r}; known kinds: {sorted(_KIND_TO_LAYER)}"
        )
    if layer is not None:
        d = as_dims(layer)
        if d.kind != kind:
            raise ValueError(f"param kind {kind!r} does not match its layer {d.describe()}")
        return d
    shape, name = tuple(param.shape), param.name
    if name == "weight" and kind == "linear" and len(shape) == 2:
        return LayerDims("linear", shape[1], shape[0])
    if name == "weight" and kind == "embedding" and len(shape) == 2:
        return LayerDims("embedding", shape[0], shape[1])
    if kind in ("batchnorm", "layernorm") and len(shape) == 1:
        return LayerDims(kind, shape[0], shape[0])
    if kind in ("batchnorm",) and name == "num_batches_tracked":
        return LayerDims(kind, 1, 1)
    raise ValueError(
        f"Default({framework!r}) needs the owning layer of {kind} parameter {name!r} "
        f"(shape {shape}) to know its in/out channels, kernel and groups: pass a ParamSpec from "
        "layer.params()"
    )


@dataclass(frozen=True)
class Default(Initializer):
    """A framework's own default initialisation, for any parameter of a spec.

    ``xinit.init.Default("torch")`` resolves a conv weight to U(±1/√fan_in), a Paddle-default
    conv weight to N(0, 2/(C_in·∏k)), and so on, using the :class:`xinit.layers.ParamSpec`
    (its ``kind``, ``name`` and owning ``layer``). The ``fans`` argument is ignored: the
    framework's own fan rule is the point. Sampled by any backend, it gives e.g. a Paddle or
    Flax model exactly PyTorch's default statistics.
    """

    framework: str

    def __post_init__(self):
        _check_framework(self.framework)

    def resolve(self, shape, role="linear", fans=None, *, param=None) -> Distribution:
        if param is None:
            raise ValueError(
                f"Default({self.framework!r}) needs the parameter spec: "
                "resolve(shape, role, param=layer_param); a framework's default depends on the "
                "layer kind, the parameter name and the layer's dims"
            )
        name = param.name
        if name == "num_batches_tracked":
            return ConstantDist(0.0)  # a counter, 0 in every framework that has one
        d = _dims_from_param(param, self.framework)
        entry = default_entry(self.framework, d, name)
        if entry.distribution is None:
            raise ValueError(f"Default({self.framework!r}) for {entry.id}: {entry.note}")
        if tuple(shape) != entry.neutral_shape:
            raise ValueError(
                f"Default({self.framework!r}): {d.kind} parameter {name!r} of {d.describe()} has "
                f"neutral shape {entry.neutral_shape}; got shape {tuple(shape)}"
            )
        return entry.distribution

    def _resolve(self, shape, role, fans):  # pragma: no cover - resolve() is overridden
        raise ValueError(f"Default({self.framework!r}) needs param=")


# ---- conventions -------------------------------------------------------------------------
@dataclass(frozen=True)
class Convention:
    """One convention around initialisation, per framework: text plus, where one exists, a
    machine-readable value that ``tests/test_defaults.py`` measures."""

    key: str
    topic: str
    torch: str
    paddle: str
    flax: str
    note: str = ""
    values: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def value(self, framework: str) -> Any:
        for fw, v in self.values:
            if fw == framework:
                return v
        raise KeyError(f"convention {self.key!r} has no value for {framework!r}")

    def text(self, framework: str) -> str:
        return getattr(self, _check_framework(framework))

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "topic": self.topic,
            "torch": self.torch,
            "paddle": self.paddle,
            "flax": self.flax,
            "note": self.note,
            "values": dict(self.values),
        }


def _v(torch, paddle, flax) -> tuple[tuple[str, Any], ...]:
    return (("torch", torch), ("paddle", paddle), ("flax", flax))


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        "layout.linear",
        "Linear weight layout",
        "weight (out, in)",
        "weight [in, out]",
        "kernel (in, out)",
        "paddle and flax are transposed relative to torch",
    ),
    Convention(
        "layout.conv",
        "Conv weight layout",
        "weight (C_out, C_in/g, *k)",
        "weight [C_out, C_in/g, *k]",
        "kernel (*k, C_in/g, C_out) (HWIO)",
        "groups: torch/paddle `groups`, flax `feature_group_count`",
    ),
    Convention(
        "layout.conv_transpose",
        "ConvTranspose weight layout",
        "weight (C_in, C_out/g, *k)",
        "weight [C_in, C_out/g, *k]",
        "kernel (*k, C_in, C_out); no groups; (*k, C_out, C_in) if transpose_kernel=True",
    ),
    Convention(
        "layout.activations",
        "Activation layout",
        "NCHW",
        "NCHW (data_format='NCHW')",
        "NHWC; BatchNorm normalises axis=-1",
    ),
    Convention(
        "names.batchnorm",
        "BatchNorm state names",
        "weight, bias; buffers running_mean, running_var, num_batches_tracked",
        "weight, bias, _mean, _variance (all Parameters; _mean/_variance stop_gradient)",
        "nnx: scale, bias (Param), mean, var (BatchStat); linen: params{scale, bias}, "
        "batch_stats{mean, var}",
    ),
    Convention(
        "bn.momentum_meaning",
        "BatchNorm momentum meaning",
        "new = (1-m)·old + m·batch",
        "new = m·old + (1-m)·batch",
        "new = m·old + (1-m)·batch",
        "torch m = 1 - paddle/flax m",
    ),
    Convention(
        "bn.momentum",
        "BatchNorm momentum default",
        "0.1",
        "0.9",
        "0.99",
        values=_v(0.1, 0.9, 0.99),
    ),
    Convention(
        "bn.new_batch_weight",
        "BatchNorm weight of a new batch in the running stats",
        "0.1",
        "0.1",
        "0.01",
        "torch and paddle defaults agree; flax is 10x slower",
        values=_v(0.1, 0.1, 0.01),
    ),
    Convention(
        "bn.eps",
        "BatchNorm eps",
        "1e-5",
        "1e-5 (epsilon)",
        "1e-5 (epsilon)",
        values=_v(1e-5, 1e-5, 1e-5),
    ),
    Convention(
        "bn.running_var",
        "BatchNorm running variance estimator",
        "unbiased (÷(n-1))",
        "biased (÷n)",
        "biased (÷n)",
        "normalisation in training uses the biased variance everywhere",
        values=_v("unbiased", "biased", "biased"),
    ),
    Convention(
        "bn.mode",
        "BatchNorm train/eval switch",
        "module.train() / .eval()",
        "layer.train() / .eval(); use_global_stats overrides",
        "nnx: use_running_average (default False), model.eval() sets True; linen: "
        "use_running_average must be given, batch_stats mutable",
    ),
    Convention(
        "ln.eps",
        "LayerNorm eps",
        "1e-5",
        "1e-5 (epsilon)",
        "1e-6 (epsilon)",
        values=_v(1e-5, 1e-5, 1e-6),
    ),
    Convention(
        "conv.padding",
        "Conv default padding",
        "0",
        "0",
        "'SAME'",
        values=_v(0, 0, "SAME"),
    ),
    Convention(
        "init.bias",
        "Default bias of Linear/Conv",
        "U(±1/√fan_in) with the weight's fan_in",
        "0",
        "0",
    ),
    Convention(
        "init.truncated_normal",
        "Truncated-normal bounds",
        "trunc_normal_(mean=0, std=1, a=-2, b=2): absolute [a, b], no variance correction",
        "TruncatedNormal(mean=0, std=1, a=-2, b=2): absolute [a, b], no correction",
        "truncated_normal(stddev=0.01, lower=-2, upper=2): bounds in stddevs, no correction; "
        "lecun/he/glorot_normal: ±2σ' with σ' = σ/0.8796 (variance-corrected)",
        "so torch/paddle trunc_normal(std=0.02) is effectively untruncated, jax's is cut at ±0.04",
        values=_v("absolute", "absolute", "stddevs"),
    ),
    Convention(
        "init.normal_meaning",
        "'normal' in He/Glorot/LeCun initializers",
        "untruncated (kaiming_normal_, xavier_normal_)",
        "untruncated (KaimingNormal, XavierNormal)",
        "truncated (he_normal, glorot_normal, lecun_normal); variance_scaling 'normal' is "
        "untruncated",
    ),
    Convention(
        "pool.stride",
        "Pooling stride default",
        "kernel_size",
        "kernel_size",
        "1 (strides=None)",
        values=_v("kernel", "kernel", 1),
    ),
    Convention(
        "pool.avg_count_include_pad",
        "Average pool counts padding",
        "yes (count_include_pad=True)",
        "no (exclusive=True)",
        "yes (count_include_pad=True)",
        "3x3/s2/p1 on ones: torch/flax corner 0.444, paddle 1.0",
        values=_v(True, False, True),
    ),
    Convention(
        "pool.ceil_mode",
        "ceil_mode and the edge window",
        "ceil_mode=True; a last window starting in the right padding is dropped; the divisor "
        "counts cells inside input+padding",
        "ceil_mode=True, but a last window starting in the right padding is KEPT: an extra "
        "output of 0 (avg, exclusive=False), NaN (avg, exclusive=True) or -FLT_MAX (max)",
        "no ceil_mode: emulate with explicit (low, high) padding",
        "5x5 input, k=2, s=2, padding=1, ceil_mode=True: torch 3x3, paddle 3.3.1 4x4",
        values=_v("drop", "keep", "none"),
    ),
    Convention(
        "rng.seeding",
        "RNG seeding",
        "torch.manual_seed(s): one global generator, drawn in build order",
        "paddle.seed(s): one global generator, drawn in build order",
        "nnx: nnx.Rngs(s), a counter per stream, drawn in build order; linen: init(key), keys "
        "folded with the module path (not sibling order)",
        "native draws differ bitwise between frameworks; use rng='xinit' for identical values",
    ),
    Convention(
        "rng.build_order",
        "Values depend on build order",
        "yes",
        "yes",
        "nnx yes; linen no (path-keyed)",
        values=_v(True, True, True),
    ),
    Convention(
        "rng.norm_consumes",
        "Norm layers consume RNG draws",
        "no",
        "no",
        "nnx BatchNorm/LayerNorm advance rngs.params by 2 despite constant init",
        values=_v(0, 0, 2),
    ),
    Convention(
        "embedding.padding_idx",
        "Embedding padding_idx row",
        "zeroed at init",
        "zeroed at init",
        "no padding_idx",
    ),
    Convention(
        "fans.2d",
        "Fans of a 2-D tensor in the framework's init functions",
        "(fan_in, fan_out) = (shape[1], shape[0])",
        "(shape[0], shape[1])",
        "(shape[-2], shape[-1]); Embed uses out_axis=0 so fan_in = dim",
        "an embedding table gets fan_in = dim (torch, flax) or num (paddle)",
    ),
)


def conventions() -> list[Convention]:
    return list(CONVENTIONS)


def convention(key: str) -> Convention:
    for c in CONVENTIONS:
        if c.key == key:
            return c
    raise KeyError(f"no convention {key!r}; known: {[c.key for c in CONVENTIONS]}")


# ---- native layers: what the frameworks actually produce -----------------------------------
def native_defaults(framework: str, layer: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Build ``framework``'s own default layer and return its state, native names and layout.

    Imports the framework now. Seeds its global generator (torch, paddle) or ``nnx.Rngs``.
    """
    d = as_dims(layer)
    builder = {"torch": _native_torch, "paddle": _native_paddle, "flax": _native_flax}
    return builder[_check_framework(framework)](d, seed)


def _native_torch(d: LayerDims, seed: int) -> dict[str, np.ndarray]:
    import torch

    nn = torch.nn
    torch.manual_seed(seed)
    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    if d.kind == "linear":
        m = nn.Linear(i, o)
    elif d.kind == "conv":
        m = getattr(nn, f"Conv{d.spatial}d")(i, o, k, groups=g)
    elif d.kind == "conv_transpose":
        m = getattr(nn, f"ConvTranspose{d.spatial}d")(i, o, k, groups=g)
    elif d.kind == "embedding":
        m = nn.Embedding(i, o)
    elif d.kind == "batchnorm":
        m = nn.BatchNorm2d(i)
    else:
        m = nn.LayerNorm(i)
    return {name: t.detach().cpu().numpy() for name, t in m.state_dict().items()}


def _native_paddle(d: LayerDims, seed: int) -> dict[str, np.ndarray]:
    import paddle

    nn = paddle.nn
    paddle.seed(seed)
    i, o, k, g = d.in_features, d.out_features, list(d.kernel), d.groups
    if d.kind == "linear":
        m = nn.Linear(i, o)
    elif d.kind == "conv":
        m = getattr(nn, f"Conv{d.spatial}D")(i, o, k, groups=g)
    elif d.kind == "conv_transpose":
        m = getattr(nn, f"Conv{d.spatial}DTranspose")(i, o, k, groups=g)
    elif d.kind == "embedding":
        m = nn.Embedding(i, o)
    elif d.kind == "batchnorm":
        m = nn.BatchNorm2D(i)
    else:
        m = nn.LayerNorm(i)
    return {name: np.array(t.numpy()) for name, t in m.state_dict().items()}


def _native_flax(d: LayerDims, seed: int) -> dict[str, np.ndarray]:
    from flax import nnx

    rngs = nnx.Rngs(seed)
    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    if d.kind == "linear":
        m = nnx.Linear(i, o, rngs=rngs)
    elif d.kind == "conv":
        m = nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs)
    elif d.kind == "conv_transpose":
        if g != 1:
            raise ValueError("flax ConvTranspose has no groups (feature_group_count) argument")
        m = nnx.ConvTranspose(i, o, k, rngs=rngs)
    elif d.kind == "embedding":
        m = nnx.Embed(i, o, rngs=rngs)
    elif d.kind == "batchnorm":
        m = nnx.BatchNorm(i, rngs=rngs)
    else:
        m = nnx.LayerNorm(i, rngs=rngs)
    out = {}
    for path, leaf in nnx.to_flat_state(nnx.state(m)):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        out[".".join(map(str, path))] = np.asarray(value)
    return out


def density(dist: Distribution, x: np.ndarray) -> np.ndarray:
    """The analytic probability density of ``dist`` at ``x`` (for plots)."""
    x = np.asarray(x, dtype=float)
    if isinstance(dist, UniformDist):
        inside = (x >= dist.low) & (x <= dist.high)
        return np.where(inside, 1.0 / (dist.high - dist.low), 0.0)
    if isinstance(dist, NormalDist):
        z = (x - dist.mu) / dist.sigma
        return np.exp(-0.5 * z * z) / (dist.sigma * math.sqrt(2.0 * math.pi))
    if isinstance(dist, TruncNormalDist):
        z = (x - dist.mu) / dist.sigma
        a, b = dist._ab()
        mass = 0.5 * (math.erf(b / math.sqrt(2.0)) - math.erf(a / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / (dist.sigma * math.sqrt(2.0 * math.pi) * mass)
        return np.where((x >= dist.low) & (x <= dist.high), pdf, 0.0)
    raise TypeError(f"no density for {dist!r}")


def plot_defaults(
    layer: Any,
    path: str,
    *,
    frameworks: tuple[str, ...] | list[str] | None = None,
    param: str = "weight",
    seed: int = 0,
    bins: int = 120,
) -> list[dict[str, Any]]:
    """Overlaid histograms of ``param`` as each installed framework's own default layer draws
    it, with the catalogue's analytic densities; written to ``path`` (PNG, Agg backend).

    Returns one summary dict per plotted framework (measured and catalogue std).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from xinit.backends import available

    d = as_dims(layer)
    installed = available()
    fws = [fw for fw in (frameworks or FRAMEWORKS) if fw in installed]
    if not fws:
        raise ImportError("no framework installed to draw from: pip install 'xinit[torch]'")
    colors = {"torch": "#ee4c2c", "paddle": "#2932e1", "flax": "#2b9348"}
    drawn = []
    for fw in fws:
        entry = default_entry(fw, d, param)
        if entry.distribution is None or not entry.distribution.random:
            continue
        values = native_defaults(fw, d, seed)[entry.native_name].ravel().astype(np.float64)
        drawn.append((fw, entry, values))
    if not drawn:
        raise ValueError(f"no framework draws {param!r} of {d.describe()} at random")
    span = max(float(np.max(np.abs(v))) for _, _, v in drawn) * 1.05
    grid = np.linspace(-span, span, 1201)
    fig, ax = plt.subplots(figsize=(8.0, 5.6), dpi=110)
    summary = []
    for fw, entry, values in drawn:
        color = colors.get(fw)
        measured = float(values.std())
        ax.hist(
            values,
            bins=bins,
            range=(-span, span),
            density=True,
            alpha=0.35,
            color=color,
            label=f"{fw} measured (n={values.size}, std {measured:.4g})",
        )
        ax.plot(
            grid,
            density(entry.distribution, grid),
            color=color,
            lw=1.6,
            label=f"{fw} catalogue {short(entry.distribution)}, std {entry.std:.4g}",
        )
        summary.append(
            {"framework": fw, "measured_std": measured, "std": entry.std, "n": int(values.size)}
        )
    ax.set_title(f"default {param} of {d.describe()}: native layers vs catalogue")
    ax.set_xlabel(f"{param} value")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return summary


__all__ = [
    "FRAMEWORKS",
    "LAYERS",
    "LayerDims",
    "dims",
    "as_dims",
    "canonical_layer",
    "DefaultEntry",
    "default_entry",
    "default_init",
    "catalogue",
    "records",
    "params_of",
    "short",
    "std_ratio",
    "table_rows",
    "to_markdown",
    "to_rich",
    "conventions_markdown",
    "conventions_rich",
    "Default",
    "Convention",
    "CONVENTIONS",
    "conventions",
    "convention",
    "native_defaults",
    "density",
    "plot_defaults",
]

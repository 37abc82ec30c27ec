"""The defaults catalogue: what each framework's own default layer draws, as xinit initializers.

For every parameter of every supported layer kind, each framework in
:data:`xinit.backends.FRAMEWORKS` maps to the xinit initializer and the resolved distribution
that the framework's **own** default layer uses, computed from the layer's logical dims (in,
out, groups, kernel). The rules themselves live with each framework
(``backends/<framework>/defaults.py``: :func:`rule`); native names and layouts come from the
framework's lowerings (``backends/<framework>/lowerings.py``), the same parameter maps that
building, state and port read, so the catalogue copies neither. ``tests/test_defaults.py``
builds each framework's native default layers and tests their measured statistics against it.

* :func:`catalogue` - the records for one layer (every framework, every parameter);
* :func:`default_entry` / :func:`default_init` - one record / one distribution;
* :class:`Default` - ``xinit.init.Default("torch")``: a framework's defaults as an initializer
  usable for any parameter of a spec (so a Paddle or Flax model can get PyTorch's init).

Nothing here imports a framework.
"""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any

from xinit import kinds
from xinit import layers as L
from xinit import transformer as T
from xinit.backends import FRAMEWORKS, part
from xinit.blocks import param_specs
from xinit.distributions import ConstantDist, Distribution
from xinit.errors import DefaultsError, FrameworkError
from xinit.fans import Fans
from xinit.graph import Graph
from xinit.initializers import Initializer
from xinit.parammap import Leaf

from .laws import law, short, std_ratio

# The catalogue's layer names: a neutral kind, with the spatial dims of convolutions spelled out.
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
    "groupnorm",
    "embedding",
    "rmsnorm",
    "multihead_attention",
    "lstm",
    "gru",
)
_NORMS = ("batchnorm", "layernorm", "groupnorm", "rmsnorm")  # one feature count, no fans
_RECURRENT = {"lstm": L.LSTM, "gru": L.GRU}  # in = input size, out = hidden size
_ONE_COUNT = (*_NORMS, "multihead_attention")  # layers with a single feature count
_DEPTHWISE = {
    "depthwise_conv1d": "conv1d",
    "depthwise_conv2d": "conv2d",
    "depthwise_conv3d": "conv3d",
}
# Blocks: layers made of the layers above (xinit.transformer's graphs; PyTorch's class names),
# whose rows are their children's rows (see "blocks" below); in = d_model, out = the
# feed-forward width, heads = nhead.
_BLOCK_CLASS = {
    "transformer_encoder_layer": "TransformerEncoderLayer",
    "transformer_decoder_layer": "TransformerDecoderLayer",
    "transformer": "Transformer",
}
BLOCKS = tuple(_BLOCK_CLASS)
_BLOCK_ALIASES = {
    "transformer_encoder": "transformer_encoder_layer",
    "encoder_layer": "transformer_encoder_layer",
    "transformer_decoder": "transformer_decoder_layer",
    "decoder_layer": "transformer_decoder_layer",
}


def _kind_of_layer(layer: str) -> str:
    """The neutral kind of a catalogue layer name: conv2d -> conv, conv_transpose1d -> ..."""
    if layer.startswith("conv_transpose"):
        return "conv_transpose"
    if layer.startswith("conv"):
        return "conv"
    return layer


def _aliases() -> dict[str, str]:
    """Alias -> catalogue layer: a bare conv kind means its 2-d layer (catalogue data); the
    other aliases are the kinds table's (sorted per kind, for a stable error message)."""
    out: dict[str, str] = {}
    for kind in dict.fromkeys(_kind_of_layer(layer) for layer in LAYERS):
        if kind not in LAYERS:
            out[kind] = f"{kind}2d"
        for alias in sorted(kinds.get(kind).aliases):
            out[alias] = kinds.canonical(alias)
    return {**out, **_BLOCK_ALIASES}


_ALIASES = _aliases()


def _squash(name: str) -> str:
    """A name without case, spaces, dashes or underscores: ``MultiHeadAttention``,
    ``multi-head attention`` and ``multihead_attention`` all squash to the same key."""
    return "".join(c for c in name.lower() if c.isalnum())


def _squashed() -> dict[str, str]:
    """Squashed name -> catalogue layer, for every layer name and alias."""
    out = {_squash(layer): layer for layer in (*LAYERS, *BLOCKS)}
    for alias, layer in _ALIASES.items():
        out.setdefault(_squash(alias), layer)
    return out


_SQUASHED = _squashed()


# ---- layer dims --------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDims:
    """A layer's logical dims, all the catalogue needs.

    ``in_features``/``out_features`` are C_in/C_out for convolutions, in/out for linear,
    ``num_embeddings``/``embedding_dim`` for embeddings, input/hidden size for one layer and
    direction of an LSTM or GRU, and the feature count (twice) for norm layers and
    attention (the embed dim E). ``kernel`` has one entry per spatial dim (empty for
    non-conv layers); ``heads`` is attention's head count (1 for other layers),
    ``kdim``/``vdim`` its key and value input sizes (None: E).
    """

    layer: str
    in_features: int
    out_features: int
    kernel: tuple[int, ...] = ()
    groups: int = 1
    heads: int = 1
    kdim: int | None = None
    vdim: int | None = None

    def __post_init__(self):
        layer = canonical_layer(self.layer)
        object.__setattr__(self, "layer", layer)
        for name in ("in_features", "out_features", "groups", "heads"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DefaultsError(f"{layer}: {name} must be a positive int; got {v!r}")
        n = self.spatial
        kernel = self.kernel
        if isinstance(kernel, int) and not isinstance(kernel, bool):
            kernel = (kernel,) * n
        kernel = tuple(kernel)
        if n == 0:
            kernel = ()
        elif len(kernel) != n or not all(isinstance(k, int) and k >= 1 for k in kernel):
            raise DefaultsError(
                f"{layer}: kernel must be an int or {n} positive ints; got {kernel!r}"
            )
        object.__setattr__(self, "kernel", kernel)
        if self.kind in ("conv", "conv_transpose"):
            for name in ("in_features", "out_features"):
                if getattr(self, name) % self.groups:
                    raise DefaultsError(
                        f"{layer}: groups={self.groups} does not divide "
                        f"{name}={getattr(self, name)}"
                    )
        elif self.kind == "groupnorm":
            if self.in_features % self.groups:
                raise DefaultsError(
                    f"{layer}: groups={self.groups} does not divide {self.in_features} channels"
                )
        elif self.groups != 1:
            raise DefaultsError(f"{layer} has no groups; got groups={self.groups}")
        if self.kind in _ONE_COUNT and self.in_features != self.out_features:
            raise DefaultsError(
                f"{layer}: one feature count; got in={self.in_features}, out={self.out_features}"
            )
        if self.kind == "multihead_attention" or self.block_class:
            if self.in_features % self.heads:
                raise DefaultsError(
                    f"{layer}: heads={self.heads} does not divide the embed dim {self.in_features}"
                )
        elif self.heads != 1:
            raise DefaultsError(f"{layer} has no heads; got heads={self.heads}")
        for name in ("kdim", "vdim"):
            v = getattr(self, name)
            if v is None:
                continue
            if self.kind != "multihead_attention":
                raise DefaultsError(f"{layer} has no {name}; got {name}={v!r}")
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise DefaultsError(f"{layer}: {name} must be a positive int; got {v!r}")
            if v == self.in_features:  # the same layer as None (PyTorch's packed weight)
                object.__setattr__(self, name, None)

    @property
    def block_class(self) -> str:
        """PyTorch's class name of a block (``TransformerEncoderLayer``); "" for a layer."""
        return _BLOCK_CLASS.get(self.layer, "")

    @property
    def key_features(self) -> int:
        """Attention's key input size (``kdim``, else E)."""
        return self.kdim or self.in_features

    @property
    def value_features(self) -> int:
        """Attention's value input size (``vdim``, else E)."""
        return self.vdim or self.in_features

    @property
    def kind(self) -> str:
        """The neutral kind (as ``ParamSpec.kind``): linear, conv, conv_transpose, ..."""
        return _kind_of_layer(self.layer)

    @property
    def spatial(self) -> int:
        return int(self.layer[-2]) if self.layer.startswith("conv") else 0

    @property
    def receptive(self) -> int:
        return math.prod(self.kernel)

    @property
    def weight_fans(self) -> Fans:
        """The weight's fans as PyTorch's init reads the neutral layout (dim 0 = out, dim 1 =
        in, times the kernel): a transposed conv's (C_in, C_out/g, *k) weight has fan_in =
        (C_out/g)·∏k. Each framework's rule starts from these or says why it differs."""
        r = self.receptive
        if self.kind == "linear":
            return Fans(self.in_features, self.out_features)
        if self.kind == "conv":
            return Fans((self.in_features // self.groups) * r, self.out_features * r)
        if self.kind == "conv_transpose":
            return Fans((self.out_features // self.groups) * r, self.in_features * r)
        raise DefaultsError(f"{self.layer} has no fan-based weight")

    def describe(self) -> str:
        if self.block_class:
            return (
                f"{self.layer}(d_model={self.in_features}, nhead={self.heads}, "
                f"dim_feedforward={self.out_features})"
            )
        if self.kind in _RECURRENT:
            return f"{self.layer}(input={self.in_features}, hidden={self.out_features})"
        if self.kind == "multihead_attention":
            kv = "".join(f", {n}={getattr(self, n)}" for n in ("kdim", "vdim") if getattr(self, n))
            return f"{self.layer}(E={self.in_features}, heads={self.heads}{kv})"
        if self.kind == "groupnorm":
            return f"groupnorm({self.in_features}, groups={self.groups})"
        if self.kind in _NORMS:
            return f"{self.layer}({self.in_features})"
        if self.kind in ("linear", "embedding"):
            return f"{self.layer}({self.in_features}, {self.out_features})"
        k = "x".join(map(str, self.kernel))
        g = f", groups={self.groups}" if self.groups != 1 else ""
        return f"{self.layer}({self.in_features}, {self.out_features}, k={k}{g})"

    def neutral_shape(self, param: str) -> tuple[int, ...]:
        """Shape of ``param`` in the neutral (PyTorch) layout: the layer spec's."""
        return _param_spec(self, param).shape

    def role(self, param: str) -> str:
        """The fan role of ``param``: the layer spec's (``vector`` for biases and norms)."""
        return _param_spec(self, param).role


def canonical_layer(name: str) -> str:
    """The catalogue's name for a layer kind. Accepts the kinds' aliases (dense, bn, ln,
    embed, mha, attention, ...) and any spelling that differs only in case, spaces, dashes
    or underscores (``MultiHeadAttention``, ``LayerNorm``, ``conv-transpose2d``)."""
    if not isinstance(name, str):
        raise DefaultsError(f"layer must be a name such as 'conv2d'; got {name!r}")
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key in LAYERS or key in BLOCKS:
        return key
    found = _SQUASHED.get(_squash(name))
    if found is not None:
        return found
    names = [*LAYERS, *BLOCKS, *_ALIASES, *_DEPTHWISE]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DefaultsError(
        f"unknown layer kind {name!r}{hint} Accepted: {', '.join((*LAYERS, *BLOCKS))} "
        f"(aliases: {', '.join([*_ALIASES, *_DEPTHWISE])})"
    )


def is_block(layer: str) -> bool:
    """Whether ``layer`` (any accepted name) is a block (a transformer layer), not a layer."""
    key = str(layer).strip().lower().replace("-", "_")
    return key not in _DEPTHWISE and canonical_layer(layer) in BLOCKS


def one_feature_count(layer: str) -> bool:
    """Whether catalogue layer ``layer`` (any accepted name) has a single feature count
    (norms, attention) rather than in and out counts."""
    key = str(layer).strip().lower().replace("-", "_")
    return key not in _DEPTHWISE and canonical_layer(layer) in _ONE_COUNT


def dims(
    layer: str,
    in_features: int,
    out_features: int | None = None,
    kernel: int | tuple[int, ...] = 3,
    groups: int = 1,
    heads: int | None = None,
) -> LayerDims:
    """Convenience constructor: ``dims("conv2d", 64, 128, 3, groups=4)``,
    ``dims("mha", 512, heads=8)``.

    ``depthwise_conv2d`` (and 1d/3d) sets ``groups = in_features``; ``out_features`` defaults
    to ``in_features``. Norm layers and attention have one feature count: ``out_features``
    when given (the norm that follows an in->out layer), else ``in_features``. ``kernel`` is
    kept for convolutions only and ``heads`` (default 1) for attention and blocks only, so
    one call pattern serves every layer. A block (``dims("transformer_encoder_layer", 512,
    heads=8)``) takes d_model, then the feed-forward width (default 4·d_model).
    """
    key = str(layer).strip().lower().replace("-", "_")
    if key in _DEPTHWISE:
        layer, groups = _DEPTHWISE[key], in_features
    out = in_features if out_features is None else out_features
    canon = canonical_layer(layer)
    if canon in BLOCKS and out_features is None:
        out = 4 * in_features
    if canon in _ONE_COUNT:  # the norm after an in->out layer: out features
        in_features = out
    if not canon.startswith("conv"):
        kernel = ()
    heads = (heads or 1) if canon == "multihead_attention" or canon in BLOCKS else 1
    return LayerDims(canon, in_features, out, kernel, groups, heads)


def as_dims(layer: Any) -> LayerDims:
    """LayerDims from a LayerDims, an xinit layer spec, or a dict of LayerDims fields."""
    if isinstance(layer, LayerDims):
        return layer
    if isinstance(layer, dict):
        return dims(**layer)
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
    if isinstance(layer, Graph) and layer.kind in BLOCKS:
        return _block_dims(layer)
    if isinstance(layer, L.Linear):
        return LayerDims("linear", layer.in_features, layer.out_features)
    if isinstance(layer, L.Embedding):
        return LayerDims("embedding", layer.num_embeddings, layer.embedding_dim)
    if isinstance(layer, L.BatchNorm):
        return LayerDims("batchnorm", layer.num_features, layer.num_features)
    kind = getattr(layer, "kind", None)
    if kind == "groupnorm":
        return LayerDims("groupnorm", layer.num_channels, layer.num_channels, (), layer.num_groups)
    if kind in ("layernorm", "rmsnorm"):
        shape = getattr(layer, "normalized_shape", None) or getattr(layer, "num_features", None)
        n = shape if isinstance(shape, int) else math.prod(shape)
        return LayerDims(kind, n, n)
    if kind == "multihead_attention":
        e = layer.embed_dim
        return LayerDims(kind, e, e, heads=layer.num_heads, kdim=layer.kdim, vdim=layer.vdim)
    if kind in _RECURRENT:  # layer 0, one direction: deeper tensors see _recurrent_dims
        return LayerDims(kind, layer.input_size, layer.hidden_size)
    raise DefaultsError(
        f"cannot read layer dims from {type(layer).__name__}: expected LayerDims, a dict, or an "
        "xinit Conv/ConvTranspose/Linear/Embedding/BatchNorm/LayerNorm/GroupNorm/RMSNorm/"
        "MultiheadAttention/LSTM/GRU spec or an xinit.transformer layer"
    )


# ---- the catalogue -----------------------------------------------------------------------
@dataclass(frozen=True)
class DefaultEntry:
    """One framework's default for one parameter of one layer.

    ``leaves`` are the framework's own tensors holding the parameter, ``(name, shape)`` each:
    one for most layers, several where one neutral tensor is several native ones (PyTorch's
    packed ``in_proj_weight`` is Paddle's ``q_proj``/``k_proj``/``v_proj`` weights); each
    leaf is drawn from ``distribution`` on its own.
    """

    framework: str
    dims: LayerDims
    param: str  # neutral (PyTorch) name: weight, bias, running_mean, running_var, ...
    leaves: tuple[tuple[str, tuple[int, ...]], ...]  # (native name, native shape) each
    initializer: Initializer | None  # the xinit initializer the framework's default equals
    fans: Fans | None  # the fans the framework's own rule uses (None: not fan-based)
    distribution: Distribution | None  # None when the framework cannot build this layer
    rule: str  # the framework's rule, in words
    source: str = ""  # where the rule lives in the framework's source
    trainable: bool = True
    note: str = ""  # why unsupported; for a block, what the framework's block does (or lacks)

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
    def native_names(self) -> tuple[str, ...]:
        """The framework's own names of the tensors holding this parameter."""
        return tuple(name for name, _ in self.leaves)

    @property
    def native_name(self) -> str:
        """The native name, or several as one label: ``{q_proj,k_proj,v_proj}.weight``."""
        return native_label(self.native_names)

    @property
    def native_shape(self) -> tuple[int, ...]:
        """The native shape of each leaf (the leaves of one parameter share one shape)."""
        return self.leaves[0][1]

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
            "native_names": list(self.native_names),
            "distribution": short(d),
            "std": self.std,
            "mean": self.mean,
            "law": law(d),
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
                "heads": self.dims.heads,
            },
            "note": self.note,
        }


def native_label(names: tuple[str, ...]) -> str:
    """One label for several native names: a shared dotted suffix and prefix are written once
    (``{q_proj,k_proj,v_proj}.weight``, ``self_attn.{q_proj,k_proj,v_proj}.weight``);
    different suffixes are joined with ``+``."""
    if len(names) == 1:
        return names[0]
    heads = [n.rpartition(".") for n in names]
    if len({tail for _, _, tail in heads}) == 1 and all(dot for _, dot, _ in heads):
        parts = [head.split(".") for head, _, _ in heads]
        shared = 0  # leading path segments every name has (a block's child path)
        while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
            shared += 1
        lead = "".join(f"{seg}." for seg in parts[0][:shared])
        inner = ",".join(".".join(p[shared:]) for p in parts)
        return f"{lead}{{{inner}}}.{heads[0][2]}"
    return "+".join(names)


# ---- names and layouts: read from the lowerings ------------------------------------------
def _rules(framework: str):
    """``backends/<framework>/defaults.py``: the framework's ``rule``, ``unsupported`` and
    ``native_defaults``."""
    return part(framework, "defaults")


@functools.lru_cache(maxsize=256)
def _spec(d: LayerDims) -> L.Layer | None:
    """The xinit layer spec with dims ``d`` (a block's: its graph)."""
    if d.block_class:
        return _block_graph(d)
    if d.kind == "linear":
        return L.Linear(d.in_features, d.out_features)
    if d.kind == "conv":
        return L.Conv(d.in_features, d.out_features, d.kernel, groups=d.groups)
    if d.kind == "conv_transpose":
        return L.ConvTranspose(d.in_features, d.out_features, d.kernel, groups=d.groups)
    if d.kind == "embedding":
        return L.Embedding(d.in_features, d.out_features)
    if d.kind == "batchnorm":
        return L.BatchNorm(d.in_features)
    if d.kind == "layernorm":
        return L.LayerNorm(d.in_features)
    if d.kind == "groupnorm":
        return L.GroupNorm(d.groups, d.in_features)
    if d.kind == "rmsnorm":
        return L.RMSNorm(d.in_features)
    if d.kind == "multihead_attention":
        return L.MultiheadAttention(d.in_features, d.heads, kdim=d.kdim, vdim=d.vdim)
    if d.kind in _RECURRENT:
        return _RECURRENT[d.kind](d.in_features, d.out_features)
    return None


@functools.lru_cache(maxsize=256)
def _own_spec(framework: str, d: LayerDims) -> L.Layer | None:
    """The spec of ``framework``'s own default layer with dims ``d`` where it is not the
    neutral one (Flax's recurrent cells keep one bias per gate, in their own layout): its
    defaults module's ``own_layer``; else :func:`_spec`."""
    own = getattr(_rules(framework), "own_layer", None)
    spec = own(d) if own is not None else None
    return spec if spec is not None else _spec(d)


def _param_spec(d: LayerDims, param: str) -> L.ParamSpec:
    """The neutral ParamSpec ``param`` of the layer spec with dims ``d``."""
    if d.block_class and param in _block_params(d):
        return _block_params(d)[param]
    spec = _spec(d)
    for p in () if spec is None else spec.params():
        if p.name == param:
            return p
    raise DefaultsError(f"{d.describe()} has no parameter {param!r}")


def _leaves(framework: str, d: LayerDims, param: str) -> tuple[Leaf, ...]:
    """Where ``param`` of ``d`` lives in ``framework``'s module (its lowering's parameter map:
    one leaf or several); empty when the framework keeps no counterpart (Paddle/Flax
    ``num_batches_tracked``, the second bias of Flax's recurrent cells) or the layer has no
    such parameter (attention's packed ``in_proj_weight`` or separate ``q/k/v_proj_weight``,
    by kdim/vdim)."""
    registry = part(framework, "lowerings").REGISTRY
    spec = _own_spec(framework, d)
    if spec is None:
        name = registry[d.kind].leaves.get(param, param)
        return () if name is None else (Leaf(name),)
    return tuple(registry.param_map(spec).get(param, ()))


# ---- blocks: a block's rows are its children's ---------------------------------------------
# A block (a transformer layer) is not a layer kind: xinit.transformer builds it as a graph of
# attention, linear and layernorm layers named as PyTorch's children. Its rows are those
# layers' rows under the child's path (the framework's own child names: Paddle's decoder has
# ``cross_attn``), then each framework's ``block_rule`` says what its own block does beyond
# its children (PyTorch's nn.Transformer: Xavier on every >1-d parameter). No rule is copied.
@functools.lru_cache(maxsize=64)
def _block_graph(d: LayerDims) -> Graph:
    """The neutral graph of block ``d``, PyTorch's child names (nn.Transformer: one encoder
    and one decoder layer, each stack with its final norm; every layer of a stack alike)."""
    e, h, f = d.in_features, d.heads, d.out_features
    if d.layer == "transformer_encoder_layer":
        return T.TransformerEncoderLayer(e, h, f)
    if d.layer == "transformer_decoder_layer":
        return T.TransformerDecoderLayer(e, h, f)
    encoder = T.TransformerEncoder(T.TransformerEncoderLayer(e, h, f), 1, L.LayerNorm(e))
    decoder = T.TransformerDecoder(T.TransformerDecoderLayer(e, h, f), 1, L.LayerNorm(e))
    nodes = [("encoder", encoder, "src"), ("decoder", decoder, ("tgt", "encoder"))]
    return Graph(nodes, inputs=("src", "tgt"), kind="transformer")


@functools.lru_cache(maxsize=64)
def _block_params(d: LayerDims) -> dict[str, L.ParamSpec]:
    """Dotted path -> ParamSpec of every parameter of block ``d``, in PyTorch's order."""
    return param_specs(_block_graph(d))


def _block_dims(graph: Graph) -> LayerDims:
    """The dims of an ``xinit.transformer`` encoder or decoder layer made with the
    catalogue's options (bias, PyTorch's names); the others are refused, not guessed."""
    attn, ff = graph.node("self_attn"), graph.node("linear1")
    d = LayerDims(graph.kind, attn.embed_dim, ff.out_features, heads=attn.num_heads)
    if tuple(param_specs(graph)) != tuple(_block_params(d)):
        raise DefaultsError(
            f"the catalogue has {d.describe()} with bias and PyTorch's child names; this "
            f"{graph.kind} has parameters {tuple(param_specs(graph))}"
        )
    return d


def _child(d: LayerDims, param: str) -> tuple[L.ParamSpec, str, LayerDims]:
    """(ParamSpec, child path, child dims) of ``param`` of block ``d``."""
    spec = _block_params(d).get(param)
    if spec is None:
        raise DefaultsError(f"{d.describe()} has no parameter {param!r}")
    return spec, spec.owner(param), as_dims(spec.layer)


def _block_params_of(framework: str, d: LayerDims) -> tuple[str, ...]:
    """The paths of block ``d`` whose child has the parameter in ``framework``."""
    out = []
    for path in _block_params(d):
        spec, _, child = _child(d, path)
        if spec.name in params_of(framework, child):
            out.append(path)
    return tuple(out)


def _block_entry(framework: str, d: LayerDims, param: str) -> DefaultEntry:
    """The record of ``param`` of block ``d``: its child's record, under the child's native
    path, with what the framework's block does beyond its children."""
    spec, owner, child = _child(d, param)
    e = default_entry(framework, child, spec.name)
    rules = _rules(framework)
    prefix = ".".join(rules.CHILD_NAMES.get(name, name) for name in owner.split("."))
    leaves = tuple((f"{prefix}.{name}", shape) for name, shape in e.leaves)
    if e.distribution is None:
        return DefaultEntry(
            framework, d, param, leaves, None, None, None, e.rule, e.source, e.trainable, e.note
        )
    own = (e.initializer, e.fans, e.rule, e.source)
    init, fans, rule, source = rules.block_rule(d, param, child.kind, spec.shape, own)
    dist = init.resolve(spec.shape or (1,), spec.role, fans)
    note = rules.block_note(d)
    return DefaultEntry(
        framework, d, param, leaves, init, fans, dist, rule, source, e.trainable, note
    )


def check_framework(framework: str) -> str:
    """``framework`` if it is one of :data:`FRAMEWORKS`, else a ValueError naming them."""
    if framework not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {framework!r}; accepted: {FRAMEWORKS}")
    return framework


# ---- the catalogue -----------------------------------------------------------------------
def params_of(framework: str, layer: Any) -> tuple[str, ...]:
    """Neutral names of the parameters (and buffers) ``framework``'s layer has."""
    d = as_dims(layer)
    check_framework(framework)
    if d.block_class:
        return _block_params_of(framework, d)
    return tuple(p for p in kinds.get(d.kind).params if _leaves(framework, d, p))


def default_entry(framework: str, layer: Any, param: str) -> DefaultEntry:
    """The catalogue record for ``param`` (neutral name) of ``layer`` in ``framework``.

    ``layer`` is a :class:`LayerDims`, an xinit layer spec or a dict of LayerDims fields.
    """
    check_framework(framework)
    d = as_dims(layer)
    if d.block_class and param in params_of(framework, d):
        return _block_entry(framework, d, param)
    if param not in params_of(framework, d):
        raise DefaultsError(
            f"{framework} {d.layer} has no parameter {param!r}; it has {params_of(framework, d)}"
        )
    neutral_shape = d.neutral_shape(param)
    native = tuple(
        (leaf.name, leaf.native_shape(neutral_shape)) for leaf in _leaves(framework, d, param)
    )
    trainable = param in ("weight", "bias")
    rules = _rules(framework)
    missing = rules.unsupported(d)
    if missing is not None:
        note, source = missing
        return DefaultEntry(
            framework, d, param, native, None, None, None, "unsupported", source, trainable, note
        )
    init, fans, rule, source = rules.rule(d, param)
    dist = init.resolve(neutral_shape or (1,), d.role(param), fans)
    return DefaultEntry(framework, d, param, native, init, fans, dist, rule, source, trainable)


def default_init(framework: str, layer_kind: str, param: str, layer: Any) -> Distribution:
    """The distribution ``framework``'s default gives ``param`` of ``layer``.

    ``layer_kind`` is a catalogue layer name (``"conv2d"``; a neutral kind such as ``"conv"``
    is accepted and takes the dims of ``layer``); ``layer`` is a LayerDims, an xinit layer spec
    or a dict. A Distribution is returned (not a bare initializer) because the fans a framework
    uses are not always the neutral ones (Flax ConvTranspose, Paddle grouped convs).
    """
    d = as_dims(layer)
    if layer_kind not in (d.kind, d.layer) and canonical_layer(layer_kind) != d.layer:
        raise DefaultsError(
            f"layer_kind {layer_kind!r} does not match the layer dims {d.describe()}"
        )
    entry = default_entry(framework, d, param)
    if entry.distribution is None:
        raise DefaultsError(f"{entry.id}: {entry.note}")
    return entry.distribution


def catalogue(
    layer: Any,
    in_features: int | None = None,
    out_features: int | None = None,
    kernel: int | tuple[int, ...] = 3,
    groups: int = 1,
    *,
    heads: int | None = None,
    frameworks: tuple[str, ...] | list[str] = FRAMEWORKS,
) -> list[DefaultEntry]:
    """All records for one layer: every framework, every parameter (parameter-major order).

    ``catalogue("conv2d", 64, 128, 3, groups=4)``, ``catalogue("mha", 512, heads=8)``,
    ``catalogue("transformer_encoder_layer", 512, 2048, heads=8)`` or
    ``catalogue(xinit.layers.Conv(...))``.
    """
    if isinstance(layer, str):
        if in_features is None:
            raise DefaultsError(f"catalogue({layer!r}) needs in_features")
        d = dims(layer, in_features, out_features, kernel, groups, heads)
    else:
        d = as_dims(layer)
    for fw in frameworks:
        check_framework(fw)
    out = []
    names = tuple(_block_params(d)) if d.block_class else kinds.get(d.kind).params
    for param in names:
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


# ---- Default: a framework's defaults as an initializer -------------------------------------
_KIND_TO_LAYER = frozenset(_kind_of_layer(layer) for layer in LAYERS)  # kinds Default knows


def _dims_from_param(param, framework: str) -> LayerDims:
    layer = getattr(param, "layer", None)
    kind = getattr(param, "kind", None)
    if kind not in _KIND_TO_LAYER:
        raise DefaultsError(
            f"Default({framework!r}) does not know layer kind {kind!r} of parameter "
            f"{getattr(param, 'name', '?')!r}; known kinds: {sorted(_KIND_TO_LAYER)}"
        )
    if layer is not None:
        d = as_dims(layer)
        if d.kind != kind:
            raise DefaultsError(f"param kind {kind!r} does not match its layer {d.describe()}")
        return d
    shape, name = tuple(param.shape), param.name
    if name == "weight" and kind == "linear" and len(shape) == 2:
        return LayerDims("linear", shape[1], shape[0])
    if name == "weight" and kind == "embedding" and len(shape) == 2:
        return LayerDims("embedding", shape[0], shape[1])
    if kind in _NORMS and len(shape) == 1:
        return LayerDims(kind, shape[0], shape[0])
    if kind in ("batchnorm",) and name == "num_batches_tracked":
        return LayerDims(kind, 1, 1)
    raise DefaultsError(
        f"Default({framework!r}) needs the owning layer of {kind} parameter {name!r} "
        f"(shape {shape}) to know its in/out channels, kernel and groups: pass a ParamSpec from "
        "layer.params()"
    )


def _recurrent_dims(param, d: LayerDims) -> tuple[LayerDims, str]:
    """A recurrent tensor (``weight_ih_l2_reverse``) as the catalogue's one-layer one-direction
    layer it has the defaults of (input = layer 2's input size) and its name there."""
    parts = L.LSTM.leaf_parts(param.name)
    if parts is None:
        raise DefaultsError(f"{d.kind} has no parameter {param.name!r}")
    base, k, _ = parts
    layer = getattr(param, "layer", None)
    n_in = layer.layer_input(k) if layer is not None else d.in_features
    return LayerDims(d.kind, n_in, d.out_features), f"{base}_l0"


def _dims_from_weight(shape: tuple[int, ...], role: str, framework: str) -> LayerDims:
    """The layer a weight of neutral ``shape`` and ``role`` belongs to (groups 1): a conv
    weight ``(out, in, *k)``, a transposed one ``(in, out, *k)``, linear ``(out, in)``,
    embedding ``(num, dim)``."""
    n = len(shape) - 2
    if role == "linear" and n == 0:
        return LayerDims("linear", shape[1], shape[0])
    if role == "embedding" and n == 0:
        return LayerDims("embedding", shape[0], shape[1])
    if role == "conv" and 1 <= n <= 3:
        return LayerDims(f"conv{n}d", shape[1], shape[0], shape[2:])
    if role == "conv_transpose" and 1 <= n <= 3:
        return LayerDims(f"conv_transpose{n}d", shape[0], shape[1], shape[2:])
    raise DefaultsError(
        f"Default({framework!r}) cannot tell a layer from role {role!r} and shape {shape}: "
        "a weight of role linear or embedding (2-d) or conv/conv_transpose (3-5-d) can be "
        "sampled from its shape; other parameters need param=layer.params()[...]"
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
        check_framework(self.framework)

    def resolve(self, shape, role="linear", fans=None, *, param=None) -> Distribution:
        """The default law of ``param`` (a ParamSpec); without one, of the weight of the
        layer that ``role`` and the neutral ``shape`` describe (groups taken as 1). A
        recurrent layer's deeper or backward tensors take their layer's own input size; a
        bias the framework's own layer lacks (Flax's cells keep one per gate) is zero."""
        if param is None:
            d, name = _dims_from_weight(tuple(shape), role, self.framework), "weight"
        else:
            name = param.name
            if name == "num_batches_tracked":
                return ConstantDist(0.0)  # a counter, 0 in every framework that has one
            d = _dims_from_param(param, self.framework)
            if d.kind in _RECURRENT:
                d, name = _recurrent_dims(param, d)
                if name not in params_of(self.framework, d):
                    return ConstantDist(0.0)  # absent in its math: zero
        entry = default_entry(self.framework, d, name)
        if entry.distribution is None:
            raise DefaultsError(f"Default({self.framework!r}) for {entry.id}: {entry.note}")
        shape = tuple(shape)
        # a norm's ones/zeros fit any normalized_shape (LayerNorm((4, 8)) is layernorm(32))
        same = math.prod(shape) == math.prod(entry.neutral_shape) and d.kind in _NORMS
        if shape != entry.neutral_shape and not same:
            raise DefaultsError(
                f"Default({self.framework!r}): {d.kind} parameter {name!r} of {d.describe()} has "
                f"neutral shape {entry.neutral_shape}; got shape {tuple(shape)}"
            )
        return entry.distribution

    def _resolve(self, shape, role, fans):  # pragma: no cover - resolve() is overridden
        raise DefaultsError(f"Default({self.framework!r}) needs param=")


__all__ = [
    "FRAMEWORKS",
    "LAYERS",
    "BLOCKS",
    "LayerDims",
    "dims",
    "as_dims",
    "canonical_layer",
    "one_feature_count",
    "is_block",
    "check_framework",
    "DefaultEntry",
    "default_entry",
    "default_init",
    "catalogue",
    "records",
    "params_of",
    "native_label",
    "Default",
]

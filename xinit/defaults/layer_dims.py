"""The catalogue's layer vocabulary: layer names and aliases, and :class:`LayerDims`, the
numbers that name one layer on the command line (in, out, kernel, groups, heads), each with
the xinit layer spec it stands for (:func:`spec_of`). The frameworks' rules read that spec
(its lowerings), never the dims' fields."""

from __future__ import annotations

import difflib
import functools
import math
from dataclasses import dataclass
from typing import Any

from xinit import kinds
from xinit import layers as L
from xinit import transformer as T
from xinit.blocks import param_specs
from xinit.errors import DefaultsError
from xinit.graph import Graph

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


@functools.lru_cache(maxsize=256)
def spec_of(d: LayerDims) -> L.Layer | None:
    """The xinit layer spec with dims ``d`` (a block's: its graph)."""
    if d.block_class:
        return block_graph(d)
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


def _param_spec(d: LayerDims, param: str) -> L.ParamSpec:
    """The neutral ParamSpec ``param`` of the layer spec with dims ``d``."""
    if d.block_class and param in block_params(d):
        return block_params(d)[param]
    spec = spec_of(d)
    for p in () if spec is None else spec.params():
        if p.name == param:
            return p
    raise DefaultsError(f"{d.describe()} has no parameter {param!r}")


# ---- blocks: a block's rows are its children's ---------------------------------------------
# A block (a transformer layer) is not a layer kind: xinit.transformer builds it as a graph of
# attention, linear and layernorm layers named as PyTorch's children. Its rows are those
# layers' rows under the child's path (the framework's own child names: Paddle's decoder has
# ``cross_attn``), then each framework's ``block_rule`` says what its own block does beyond
# its children (PyTorch's nn.Transformer: Xavier on every >1-d parameter). No rule is copied.
@functools.lru_cache(maxsize=64)
def block_graph(d: LayerDims) -> Graph:
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
def block_params(d: LayerDims) -> dict[str, L.ParamSpec]:
    """Dotted path -> ParamSpec of every parameter of block ``d``, in PyTorch's order."""
    return param_specs(block_graph(d))


def _block_dims(graph: Graph) -> LayerDims:
    """The dims of an ``xinit.transformer`` encoder or decoder layer made with the
    catalogue's options (bias, PyTorch's names); the others are refused, not guessed."""
    attn, ff = graph.node("self_attn"), graph.node("linear1")
    d = LayerDims(graph.kind, attn.embed_dim, ff.out_features, heads=attn.num_heads)
    if tuple(param_specs(graph)) != tuple(block_params(d)):
        raise DefaultsError(
            f"the catalogue has {d.describe()} with bias and PyTorch's child names; this "
            f"{graph.kind} has parameters {tuple(param_specs(graph))}"
        )
    return d


__all__ = [
    "LAYERS",
    "BLOCKS",
    "LayerDims",
    "dims",
    "as_dims",
    "canonical_layer",
    "one_feature_count",
    "is_block",
    "spec_of",
]

"""The catalogue's layer names: each a spec factory whose numbers (in, out, kernel, groups,
heads: what ``xinit defaults`` takes) are the spec's own fields, and back.

``layer_spec("conv2d", 64, 128, 3)`` is ``layers.Conv(64, 128, 3, dims=2)``;
``layer_numbers(spec)`` reads the numbers back from the spec's fields (the CLI's JSON
``dims``); the frameworks' rules read the spec itself (its lowerings). Blocks (transformer
layers) are :mod:`.blocks`' registrations.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xinit import kinds
from xinit import layers as L
from xinit.errors import DefaultsError
from xinit.graph import Graph

from .blocks import BLOCKS, block_of, block_params, describe_block


@dataclass(frozen=True)
class LayerName:
    """One catalogue layer name: ``make`` builds its spec, ``fields`` map the catalogue's
    numbers (``in``, ``out``, ``kernel``, ``groups``, ``heads``, ``kdim``, ``vdim``) onto the
    spec's own fields; a name without ``out`` has one feature count (norms, attention)."""

    name: str
    make: Callable[..., L.Layer]
    fields: tuple[tuple[str, str], ...]
    text: str  # how a layer of this name is described, from its numbers
    spatial: int = 0  # a convolution's spatial dims (conv2d: 2)

    @property
    def kind(self) -> str:
        return self.make.func.kind if isinstance(self.make, functools.partial) else self.make.kind

    def field(self, number: str) -> str | None:
        return dict(self.fields).get(number)

    @property
    def one_count(self) -> bool:
        return self.field("out") is None


_CONV_FIELDS = (
    ("in", "in_channels"),
    ("out", "out_channels"),
    ("kernel", "kernel_size"),
    ("groups", "groups"),
)


def _conv(name: str, cls: type, n: int) -> LayerName:
    """The row of an n-d (transposed) convolution: the spec with ``dims=n``."""
    text = "{name}({in}, {out}, k={k}{g})"
    return LayerName(name, functools.partial(cls, dims=n), _CONV_FIELDS, text, n)


_PAIR = "{name}({in}, {out})"
_ONE = "{name}({in})"
_FEATURES = (("in", "num_features"),)
_RNN = "{name}(input={in}, hidden={out})"
_ROWS = (
    LayerName("linear", L.Linear, (("in", "in_features"), ("out", "out_features")), _PAIR),
    *(_conv(f"conv{n}d", L.Conv, n) for n in (1, 2, 3)),
    *(_conv(f"conv_transpose{n}d", L.ConvTranspose, n) for n in (1, 2, 3)),
    LayerName("batchnorm", L.BatchNorm, (("in", "num_features"),), _ONE),
    LayerName("layernorm", L.LayerNorm, (("in", "normalized_shape"),), _ONE),
    LayerName(
        "groupnorm",
        L.GroupNorm,
        (("in", "num_channels"), ("groups", "num_groups")),
        "{name}({in}, groups={groups})",
    ),
    LayerName(
        "embedding", L.Embedding, (("in", "num_embeddings"), ("out", "embedding_dim")), _PAIR
    ),
    LayerName("rmsnorm", L.RMSNorm, (("in", "normalized_shape"),), _ONE),
    LayerName(
        "multihead_attention",
        L.MultiheadAttention,
        (("in", "embed_dim"), ("heads", "num_heads"), ("kdim", "kdim"), ("vdim", "vdim")),
        "{name}(E={in}, heads={heads}{kv})",
    ),
    LayerName("lstm", L.LSTM, (("in", "input_size"), ("out", "hidden_size")), _RNN),
    LayerName("gru", L.GRU, (("in", "input_size"), ("out", "hidden_size")), _RNN),
    LayerName("rnn", L.RNN, (("in", "input_size"), ("out", "hidden_size")), _RNN),
    # torch's InstanceNorm has no parameters by default: the catalogue's row is the affine one
    LayerName("instancenorm", functools.partial(L.InstanceNorm, affine=True), _FEATURES, _ONE),
    LayerName("layernorm2d", L.LayerNorm2d, (("in", "num_channels"),), _ONE),
    LayerName("prelu", L.PReLU, (("in", "num_parameters"),), _ONE),
    LayerName("layer_scale", L.LayerScale, _FEATURES, _ONE),
)
NAMES: dict[str, LayerName] = {row.name: row for row in _ROWS}
LAYERS = tuple(NAMES)  # the catalogue's layer names, in table order
_DEPTHWISE = {f"depthwise_conv{n}d": f"conv{n}d" for n in (1, 2, 3)}


def _aliases() -> dict[str, str]:
    """Alias -> catalogue name: a bare conv kind means its 2-d layer; the other aliases are
    the kinds table's (sorted per kind, for a stable error message) and the blocks'."""
    out: dict[str, str] = {}
    for kind in dict.fromkeys(row.kind for row in _ROWS):
        if kind not in NAMES:
            out[kind] = f"{kind}2d"
        for alias in sorted(kinds.get(kind).aliases):
            out[alias] = kinds.canonical(alias)
    for block in BLOCKS.values():
        out.update(dict.fromkeys(block.aliases, block.name))
    return out


def _squash(name: str) -> str:
    """A name without case, spaces, dashes or underscores: ``MultiHeadAttention``,
    ``multi-head attention`` and ``multihead_attention`` all squash to the same key."""
    return "".join(c for c in name.lower() if c.isalnum())


def canonical_layer(name: str) -> str:
    """The catalogue's name for a layer or block. Accepts the kinds' aliases (dense, bn, ln,
    embed, mha, attention, ...) and any spelling that differs only in case, spaces, dashes
    or underscores (``MultiHeadAttention``, ``LayerNorm``, ``conv-transpose2d``)."""
    if not isinstance(name, str):
        raise DefaultsError(f"layer must be a name such as 'conv2d'; got {name!r}")
    aliases = _aliases()
    known = (*LAYERS, *BLOCKS)
    key = name.strip().lower().replace("-", "_")
    key = aliases.get(key, key)
    if key in known:
        return key
    squashed = {_squash(layer): layer for layer in known}
    for alias, layer in aliases.items():
        squashed.setdefault(_squash(alias), layer)
    found = squashed.get(_squash(name))
    if found is not None:
        return found
    close = difflib.get_close_matches(key, [*known, *aliases, *_DEPTHWISE], n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DefaultsError(
        f"unknown layer kind {name!r}{hint} Accepted: {', '.join(known)} "
        f"(aliases: {', '.join([*aliases, *_DEPTHWISE])})"
    )


def _key(layer: str) -> str:
    return str(layer).strip().lower().replace("-", "_")


def is_block(layer: str) -> bool:
    """Whether ``layer`` (any accepted name) is a block (a transformer layer), not a layer."""
    return _key(layer) not in _DEPTHWISE and canonical_layer(layer) in BLOCKS


def is_depthwise(layer: str) -> bool:
    """Whether ``layer`` names a depthwise convolution (``depthwise_conv2d``: groups = in,
    out = in unless given)."""
    return _key(layer) in _DEPTHWISE


def one_feature_count(layer: str) -> bool:
    """Whether catalogue layer ``layer`` (any accepted name) has a single feature count
    (norms, attention) rather than in and out counts."""
    if _key(layer) in _DEPTHWISE or is_block(layer):
        return False
    return NAMES[canonical_layer(layer)].one_count


def layer_spec(
    layer: str,
    in_features: int,
    out_features: int | None = None,
    kernel: int | tuple[int, ...] = 3,
    groups: int = 1,
    heads: int | None = None,
    kdim: int | None = None,
    vdim: int | None = None,
) -> Any:
    """The spec a catalogue name and its numbers stand for: ``layer_spec("conv2d", 64, 128,
    3, groups=4)`` is ``layers.Conv(64, 128, 3, groups=4, dims=2)``, ``layer_spec("mha",
    512, heads=8)`` ``layers.MultiheadAttention(512, 8)``, a block's its graph.

    ``depthwise_conv2d`` (and 1d/3d) sets ``groups = in_features``; ``out_features`` defaults
    to ``in_features``. Norm layers and attention have one feature count: ``out_features``
    when given (the norm that follows an in->out layer), else ``in_features``. A number the
    layer does not have (kernel, groups, heads) is not used, so one call pattern serves every
    layer; ``kdim``/``vdim`` (attention's key and value sizes) are refused by a layer without
    them. A block takes d_model, then the feed-forward width (default 4·d_model)."""
    if _key(layer) in _DEPTHWISE:
        layer, groups = _DEPTHWISE[_key(layer)], in_features
    name = canonical_layer(layer)
    out = in_features if out_features is None else out_features
    if name in BLOCKS:
        block = BLOCKS[name]
        if out_features is None:
            out = block.out_per_in * in_features
        return block.graph(in_features, out, heads or 1)
    row = NAMES[name]
    numbers = {"in": out if row.one_count else in_features, "out": out}
    numbers.update(kernel=kernel, groups=groups, heads=heads or 1)
    if row.field("groups") is None and groups != 1:
        raise DefaultsError(f"{name} has no groups; got groups={groups}")
    for number, value in (("kdim", kdim), ("vdim", vdim)):
        if value is not None:
            if row.field(number) is None:
                raise DefaultsError(f"{name} has no {number} (attention's only); got {value}")
            numbers[number] = value
    return row.make(**{f: numbers[n] for n, f in row.fields if n in numbers})


def as_spec(layer: Any) -> Any:
    """A catalogue layer: an xinit layer spec, a registered block's graph, or a dict of
    :func:`layer_spec`'s arguments."""
    if isinstance(layer, dict):
        return layer_spec(**layer)
    if isinstance(layer, Graph):
        block_of(layer)  # refused here when the catalogue has no such block
        return layer
    if isinstance(layer, L.Layer):
        _row(layer)
        return layer
    raise DefaultsError(
        f"the catalogue takes an xinit layer spec (layers.Conv(16, 32, 3), ...), an "
        f"xinit.transformer layer or a dict of layer_spec's arguments; got {type(layer).__name__}"
    )


def _row(spec: L.Layer) -> LayerName:
    for row in _ROWS:
        if row.kind == spec.kind and row.spatial in (0, getattr(spec, "dims", 0)):
            return row
    kind = kinds.get(spec.kind) if spec.kind in kinds.names() else None
    channels = kind.channels if kind is not None and kind.params else None
    if channels is not None:  # a kind with parameters and no row: one count, its channels
        return LayerName(spec.kind, type(spec), (("in", channels),), _ONE)
    raise DefaultsError(
        f"the catalogue has no {spec.kind} layer; it knows {', '.join(LAYERS)} and the blocks "
        f"{', '.join(BLOCKS)}"
    )


def layer_name(spec: Any) -> str:
    """The catalogue's name of a spec: ``conv2d``, ``conv_transpose1d``, ``linear``, a block's."""
    return spec.kind if isinstance(spec, Graph) else _row(spec).name


def layer_numbers(spec: Any) -> dict[str, Any]:
    """The catalogue's numbers of a spec, read from its fields: in, out (= in for one count),
    kernel (a list; empty but for convolutions), groups and heads (1 where none); kdim and
    vdim where an attention layer sets them."""
    if isinstance(spec, Graph):
        numbers = dict(block_of(spec)[1])
        return {"in": numbers["in"], "out": numbers["out"], "kernel": [], "groups": 1, **numbers}
    row = _row(spec)
    value = {n: getattr(spec, f) for n, f in row.fields}
    count = value["in"]
    count = count if isinstance(count, int) else math.prod(count)  # LayerNorm((4, 8)): 32
    return {
        "in": count,
        "out": value.get("out", count),
        "kernel": list(value.get("kernel", ())),
        "groups": value.get("groups", 1),
        "heads": value.get("heads", 1),
        **{n: value[n] for n in ("kdim", "vdim") if value.get(n) is not None},
    }


def param_spec(spec: Any, param: str) -> L.ParamSpec:
    """The neutral ParamSpec ``param`` of a catalogue layer (a block's: by its path)."""
    found = block_params(spec) if isinstance(spec, Graph) else {p.name: p for p in spec.params()}
    if param not in found:
        raise DefaultsError(f"{describe(spec)} has no parameter {param!r}")
    return found[param]


def describe(spec: Any) -> str:
    """``conv2d(64, 128, k=3x3, groups=4)``, ``multihead_attention(E=512, heads=8)``, ...:
    how tables and errors name a catalogue layer."""
    if isinstance(spec, Graph):
        block, numbers = block_of(spec)
        return describe_block(block, numbers)
    row, n = _row(spec), layer_numbers(spec)
    kv = "".join(f", {f}={getattr(spec, f)}" for f in ("kdim", "vdim") if getattr(spec, f, None))
    g = f", groups={n['groups']}" if n["groups"] != 1 else ""
    k = "x".join(map(str, n["kernel"]))
    return row.text.format(name=row.name, k=k, g=g, kv=kv, **n)


__all__ = [
    "LAYERS",
    "NAMES",
    "LayerName",
    "canonical_layer",
    "one_feature_count",
    "is_block",
    "is_depthwise",
    "layer_spec",
    "as_spec",
    "layer_name",
    "layer_numbers",
    "describe",
    "param_spec",
]

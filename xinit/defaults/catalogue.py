"""The defaults catalogue: what each framework's own default layer draws, as xinit initializers.

For every parameter of every supported layer kind, each framework in
:data:`xinit.backends.FRAMEWORKS` maps to the xinit initializer and the resolved distribution
that the framework's **own** default layer uses. A layer is an xinit layer spec
(``layers.Conv(64, 128, 3)``, or by its catalogue name: ``layer_spec("conv2d", 64, 128, 3)``)
or a registered block's graph (:mod:`.blocks`), and everything
else is read from that spec's lowering in the framework (``backends/<framework>/
lowerings.py``): the rule (``Lowering.default_rule``, ``default_missing``), the framework's
own default layer (``native_default``, ``default_spec``) and the native names and layouts,
the same parameter maps that building, state and port read, so the catalogue copies none.
What a framework's own block adds lives in ``backends/<framework>/defaults.py``.
``tests/defaults/test_defaults_measured.py`` builds each framework's native default layers and
tests their measured statistics against it.

* :func:`catalogue` - the records for one layer (every framework, every parameter);
* :func:`default_entry` / :func:`default_init` - one record / one distribution;
* :class:`Default` - ``xinit.init.Default("torch")``: a framework's defaults as an initializer
  usable for any parameter of a spec (so a Paddle or Flax model can get PyTorch's init).

Nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

from xinit import kinds
from xinit import layers as L
from xinit.backends import FRAMEWORKS, part
from xinit.distributions import ConstantDist, Distribution
from xinit.errors import DefaultsError, FrameworkError
from xinit.graph import Graph
from xinit.initializers import Initializer
from xinit.native import enclosing_block
from xinit.parammap import Leaf

from .blocks import block_of, block_params
from .entry import DefaultEntry
from .layer_names import (
    NAMES,
    as_spec,
    canonical_layer,
    describe,
    layer_name,
    layer_spec,
    param_spec,
)

_NORMS = ("batchnorm", "layernorm", "groupnorm", "rmsnorm")  # one feature count, no fans
_RECURRENT = ("lstm", "gru", "rnn")


# ---- names and layouts: read from the lowerings ------------------------------------------
def _rules(framework: str):
    """``backends/<framework>/defaults.py``: what the framework's own blocks do beyond their
    layers (``block_rule``, ``block_note``, ``CHILD_NAMES``)."""
    return part(framework, "defaults")


def lowering(framework: str, kind: str):
    """``framework``'s lowering of layer kind ``kind``: it carries the framework's default
    rule and its own default layer for that kind (``Lowering.default_rule``, ...)."""
    return part(framework, "lowerings").REGISTRY[kind]


@functools.lru_cache(maxsize=256)
def _own_spec(framework: str, spec: L.Layer) -> L.Layer | None:
    """The spec of ``framework``'s own default layer for ``spec``: the lowering's
    ``default_spec`` (Flax's recurrent cells keep one bias per gate, in their own layout)."""
    return lowering(framework, spec.kind).default_spec(spec)


def _leaves(framework: str, spec: L.Layer, param: str) -> tuple[Leaf, ...]:
    """Where ``param`` of ``spec`` lives in ``framework``'s module (its lowering's parameter
    map: one leaf or several); empty when the framework keeps no counterpart (Paddle/Flax
    ``num_batches_tracked``, the second bias of Flax's recurrent cells) or the layer has no
    such parameter (attention's packed ``in_proj_weight`` or separate ``q/k/v_proj_weight``,
    by kdim/vdim)."""
    registry = part(framework, "lowerings").REGISTRY
    return tuple(registry.param_map(_own_spec(framework, spec)).get(param, ()))


def _aliases(framework: str, spec: L.Layer, names: set[str]) -> tuple[str, ...]:
    """Second names the framework saves for the native tensors ``names`` (its lowering's
    extras: Paddle's RNNs keep ``weight_ih_l0`` beside ``0.cell.weight_ih``)."""
    registry = part(framework, "lowerings").REGISTRY
    extras = registry.extras(_own_spec(framework, spec))
    return tuple(name for name, extra in extras.items() if extra.of in names)


# ---- blocks: a block's rows are its children's ---------------------------------------------
# A block (a registered graph, .blocks) is not a layer kind: its rows are its child layers'
# rows under the child's path (the framework's own child names: Paddle's decoder has
# ``cross_attn``), then each framework's ``block_rule`` says what its own block does beyond
# its children (PyTorch's nn.Transformer: Xavier on every >1-d parameter). No rule is copied.
def _block_params_of(framework: str, graph: Graph) -> tuple[str, ...]:
    """The paths of block ``graph`` whose child has the parameter in ``framework``."""
    return tuple(
        path
        for path, spec in block_params(graph).items()
        if spec.name in params_of(framework, spec.layer)
    )


def _block_entry(framework: str, graph: Graph, param: str) -> DefaultEntry:
    """The record of ``param`` of block ``graph``: its child's record, under the child's
    native path, with what the framework's block does beyond its children."""
    spec = param_spec(graph, param)
    owner, child = spec.owner(param), spec.layer
    e = default_entry(framework, child, spec.name)
    rules, (block, _) = _rules(framework), block_of(graph)
    prefix = ".".join(rules.CHILD_NAMES.get(name, name) for name in owner.split("."))
    leaves = tuple((f"{prefix}.{name}", shape) for name, shape in e.leaves)
    if e.distribution is None:
        return DefaultEntry(
            framework, graph, param, leaves, None, None, None, e.rule, e.source, e.trainable, e.note
        )
    own = (e.initializer, e.fans, e.rule, e.source)
    init, fans, rule, source = rules.block_rule(block, param, child.kind, spec.shape, own)
    dist = init.resolve(spec.shape or (1,), spec.role, fans)
    note = rules.block_note(block)
    return DefaultEntry(
        framework, graph, param, leaves, init, fans, dist, rule, source, e.trainable, note
    )


def check_framework(framework: str) -> str:
    """``framework`` if it is one of :data:`FRAMEWORKS`, else a ValueError naming them."""
    if framework not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {framework!r}; accepted: {FRAMEWORKS}")
    return framework


# ---- the catalogue -----------------------------------------------------------------------
def params_of(framework: str, layer: Any) -> tuple[str, ...]:
    """Neutral names of the parameters (and buffers) ``framework``'s layer has."""
    spec = as_spec(layer)
    check_framework(framework)
    if isinstance(spec, Graph):
        return _block_params_of(framework, spec)
    return tuple(p for p in kinds.get(spec.kind).params if _leaves(framework, spec, p))


def default_entry(framework: str, layer: Any, param: str) -> DefaultEntry:
    """The catalogue record for ``param`` (neutral name) of ``layer`` in ``framework``.

    ``layer`` is an xinit layer spec (``layers.Conv(16, 32, 3)``), a registered block's graph
    (``xinit.transformer.TransformerEncoderLayer(512, 8)``) or a dict of :func:`layer_spec`'s
    arguments.
    """
    check_framework(framework)
    spec = as_spec(layer)
    if isinstance(spec, Graph) and param in params_of(framework, spec):
        return _block_entry(framework, spec, param)
    if param not in params_of(framework, spec):
        raise DefaultsError(
            f"{framework} {layer_name(spec)} has no parameter {param!r}; it has "
            f"{params_of(framework, spec)}"
        )
    p = param_spec(spec, param)
    native = tuple(
        (leaf.name, leaf.native_shape(p.shape)) for leaf in _leaves(framework, spec, param)
    )
    trainable = p.trainable  # a buffer (running statistics) is not
    aliases = _aliases(framework, spec, {name for name, _ in native})
    own = lowering(framework, spec.kind)
    missing = own.default_missing(spec)
    if missing is not None:
        note, source = missing
        return DefaultEntry(
            framework, spec, param, native, None, None, None, "unsupported", source, trainable, note
        )
    found = own.default_rule(spec, param)
    if found is None:
        raise DefaultsError(
            f"the {framework} lowering of {spec.kind!r} states no default rule for {param!r} "
            "(Lowering.default_rule)"
        )
    init, fans, rule, source = found
    dist = init.resolve(p.shape or (1,), p.role, fans)
    return DefaultEntry(
        framework, spec, param, native, init, fans, dist, rule, source, trainable, "", aliases
    )


def default_init(framework: str, layer_kind: str, param: str, layer: Any) -> Distribution:
    """The distribution ``framework``'s default gives ``param`` of ``layer``.

    ``layer_kind`` is a catalogue layer name (``"conv2d"``; a neutral kind such as ``"conv"``
    is accepted and takes the dims of ``layer``); ``layer`` is an xinit layer spec, a block's
    graph or a dict. A Distribution is returned (not a bare initializer) because the fans a
    framework uses are not always the neutral ones (Flax ConvTranspose, Paddle grouped convs).
    """
    spec = as_spec(layer)
    name = layer_name(spec)
    if layer_kind not in (spec.kind, name) and canonical_layer(layer_kind) != name:
        raise DefaultsError(f"layer_kind {layer_kind!r} does not match the layer {describe(spec)}")
    entry = default_entry(framework, spec, param)
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

    ``catalogue(xinit.layers.Conv(64, 128, 3))``, or by a catalogue name and its numbers:
    ``catalogue("conv2d", 64, 128, 3, groups=4)``, ``catalogue("mha", 512, heads=8)``,
    ``catalogue("transformer_encoder_layer", 512, 2048, heads=8)``.
    """
    if isinstance(layer, str):
        if in_features is None:
            raise DefaultsError(f"catalogue({layer!r}) needs in_features")
        spec = layer_spec(layer, in_features, out_features, kernel, groups, heads)
    else:
        spec = as_spec(layer)
    for fw in frameworks:
        check_framework(fw)
    out = []
    names = tuple(block_params(spec)) if isinstance(spec, Graph) else kinds.get(spec.kind).params
    for param in names:
        for fw in frameworks:
            if param in params_of(fw, spec):
                out.append(default_entry(fw, spec, param))
    return out


# ---- Default: a framework's defaults as an initializer -------------------------------------
_KNOWN_KINDS = frozenset(row.kind for row in NAMES.values())  # kinds Default knows


def _spec_from_param(param, framework: str) -> L.Layer:
    layer = getattr(param, "layer", None)
    kind = getattr(param, "kind", None)
    # a kind with no catalogue row of its own is known by its layer's channels trait
    known = kind in kinds.names() and kinds.get(kind)
    by_trait = layer is not None and known and known.params and known.channels
    if kind not in _KNOWN_KINDS and not by_trait:
        registry = part(framework, "lowerings").REGISTRY
        missing = registry[kind].default_missing(layer) if layer and kind in registry else None
        why = f": {missing[0]}" if missing else f"; known kinds: {sorted(_KNOWN_KINDS)}"
        raise DefaultsError(
            f"Default({framework!r}) does not know layer kind {kind!r} of parameter "
            f"{getattr(param, 'name', '?')!r}{why}"
        )
    if layer is not None:
        if layer.kind != kind:
            raise DefaultsError(f"param kind {kind!r} does not match its layer {describe(layer)}")
        return layer
    shape, name = tuple(param.shape), param.name
    if name == "weight" and kind == "linear" and len(shape) == 2:
        return L.Linear(shape[1], shape[0])
    if name == "weight" and kind == "embedding" and len(shape) == 2:
        return L.Embedding(shape[0], shape[1])
    if kind in _NORMS and len(shape) == 1:
        return layer_spec(kind, shape[0])
    if kind in ("batchnorm",) and name == "num_batches_tracked":
        return L.BatchNorm(1)
    raise DefaultsError(
        f"Default({framework!r}) needs the owning layer of {kind} parameter {name!r} "
        f"(shape {shape}) to know its in/out channels, kernel and groups: pass a ParamSpec from "
        "layer.params()"
    )


def _recurrent_layer(param, spec: L.Layer) -> tuple[L.Layer, str]:
    """A recurrent tensor (``weight_ih_l2_reverse``) as the catalogue's one-layer one-direction
    layer it has the defaults of (input = layer 2's input size) and its name there."""
    parts = L.LSTM.leaf_parts(param.name)
    if parts is None:
        raise DefaultsError(f"{spec.kind} has no parameter {param.name!r}")
    base, k, _ = parts
    # one layer, one direction; proj_size, the nonlinearity and the Flax cell it was read
    # from (OptimizedLSTMCell's stacked law) are kept
    one = dataclasses.replace(
        spec, input_size=spec.layer_input(k), num_layers=1, bidirectional=False
    )
    cell = getattr(spec, "_xinit_flax_cell", None)
    if cell is not None:
        object.__setattr__(one, "_xinit_flax_cell", cell)
    return one, f"{base}_l0"


def _spec_from_weight(shape: tuple[int, ...], role: str, framework: str) -> L.Layer:
    """The layer a weight of neutral ``shape`` and ``role`` belongs to (groups 1): a conv
    weight ``(out, in, *k)``, a transposed one ``(in, out, *k)``, linear ``(out, in)``,
    embedding ``(num, dim)``."""
    n = len(shape) - 2
    if role == "linear" and n == 0:
        return L.Linear(shape[1], shape[0])
    if role == "embedding" and n == 0:
        return L.Embedding(shape[0], shape[1])
    if role == "conv" and 1 <= n <= 3:
        return L.Conv(shape[1], shape[0], shape[2:])
    if role == "conv_transpose" and 1 <= n <= 3:
        return L.ConvTranspose(shape[0], shape[1], shape[2:])
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

    def no_default(self, param) -> str:
        """Why the framework has no default for ``param`` (a ParamSpec), "" when it has one:
        a tensor of a native class no framework layer is (kind ""), or of a kind whose
        lowering says the framework has no such layer (a bare learned parameter).
        :func:`xinit.apply` leaves such a parameter as it is, and says why."""
        kind, layer = param.kind, param.layer
        if not kind:
            owner = getattr(layer, "module_type", "") or "a class xinit does not know"
            return (
                f"a tensor held by {owner}, a class that is no layer of {self.framework}'s, "
                "so the model's own code initialises it"
            )
        if layer is None:
            return ""
        registry = part(self.framework, "lowerings").REGISTRY
        missing = registry[kind].default_missing(layer) if kind in registry else None
        return missing[0] if missing else ""

    def resolve(self, shape, role="linear", fans=None, *, param=None) -> Distribution:
        """The default law of ``param`` (a ParamSpec); without one, of the weight of the
        layer that ``role`` and the neutral ``shape`` describe (groups taken as 1). A
        recurrent layer's deeper or backward tensors take their layer's own input size; a
        bias the framework's own layer lacks (Flax's cells keep one per gate) is zero. A
        layer read inside a framework block that re-initialises its children (torch's
        ``nn.Transformer``) gets what that block gives (its ``block_rule``)."""
        if param is None:
            spec, name = _spec_from_weight(tuple(shape), role, self.framework), "weight"
        else:
            name = param.name
            if name == "num_batches_tracked":
                return ConstantDist(0.0)  # a counter, 0 in every framework that has one
            spec = _spec_from_param(param, self.framework)
            if spec.kind in _RECURRENT:
                spec, name = _recurrent_layer(param, spec)
                if name not in params_of(self.framework, spec):
                    return ConstantDist(0.0)  # absent in its math: zero
        entry = default_entry(self.framework, spec, name)
        if entry.distribution is None:
            raise DefaultsError(f"Default({self.framework!r}) for {entry.id}: {entry.note}")
        shape = tuple(shape)
        # a norm's ones/zeros fit any normalized_shape (LayerNorm((4, 8)) is layernorm(32))
        same = math.prod(shape) == math.prod(entry.neutral_shape) and spec.kind in _NORMS
        if shape != entry.neutral_shape and not same:
            raise DefaultsError(
                f"Default({self.framework!r}): {spec.kind} parameter {name!r} of "
                f"{describe(spec)} has neutral shape {entry.neutral_shape}; got shape "
                f"{tuple(shape)}"
            )
        block = enclosing_block(param.layer) if getattr(param, "layer", None) else None
        if block is not None and block.framework == self.framework:
            own = (entry.initializer, entry.fans, entry.rule, entry.source)
            rule = _rules(self.framework).block_rule
            init, fans, _, _ = rule(block, name, param.kind, shape, own)
            if init is not entry.initializer:
                return init.resolve(shape, param.role, fans)
        return entry.distribution

    def _resolve(self, shape, role, fans):  # pragma: no cover - resolve() is overridden
        raise DefaultsError(f"Default({self.framework!r}) needs param=")


__all__ = [
    "FRAMEWORKS",
    "check_framework",
    "default_entry",
    "default_init",
    "catalogue",
    "params_of",
    "Default",
]

"""The defaults catalogue: what each framework's own default layer draws, as xinit initializers.

For every parameter of every supported layer kind, each framework in
:data:`xinit.backends.FRAMEWORKS` maps to the xinit initializer and the resolved distribution
that the framework's **own** default layer uses. A layer named by its dims (``dims("conv2d",
64, 128, 3)``) stands for an xinit layer spec (:func:`~.layer_dims.spec_of`), and everything
else is read from that spec's lowering in the framework (``backends/<framework>/
lowerings.py``): the rule (``Lowering.default_rule``, ``default_missing``), the framework's
own default layer (``native_default``, ``default_spec``) and the native names and layouts,
the same parameter maps that building, state and port read, so the catalogue copies none.
What a framework's own block adds lives in ``backends/<framework>/defaults.py``.
``tests/test_defaults.py`` builds each framework's native default layers and tests their
measured statistics against it.

* :func:`catalogue` - the records for one layer (every framework, every parameter);
* :func:`default_entry` / :func:`default_init` - one record / one distribution;
* :class:`Default` - ``xinit.init.Default("torch")``: a framework's defaults as an initializer
  usable for any parameter of a spec (so a Paddle or Flax model can get PyTorch's init).

Nothing here imports a framework.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from xinit import kinds
from xinit import layers as L
from xinit.backends import FRAMEWORKS, part
from xinit.distributions import ConstantDist, Distribution
from xinit.errors import DefaultsError, FrameworkError
from xinit.initializers import Initializer
from xinit.native import enclosing_block
from xinit.parammap import Leaf

from .entry import DefaultEntry
from .layer_dims import (
    _NORMS,
    _RECURRENT,
    LAYERS,
    LayerDims,
    _kind_of_layer,
    as_dims,
    block_params,
    canonical_layer,
    dims,
    spec_of,
)


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
def _own_spec(framework: str, d: LayerDims) -> L.Layer | None:
    """The spec of ``framework``'s own default layer with dims ``d``: the lowering's
    ``default_spec`` (Flax's recurrent cells keep one bias per gate, in their own layout)."""
    return lowering(framework, d.kind).default_spec(spec_of(d))


def _leaves(framework: str, d: LayerDims, param: str) -> tuple[Leaf, ...]:
    """Where ``param`` of ``d`` lives in ``framework``'s module (its lowering's parameter map:
    one leaf or several); empty when the framework keeps no counterpart (Paddle/Flax
    ``num_batches_tracked``, the second bias of Flax's recurrent cells) or the layer has no
    such parameter (attention's packed ``in_proj_weight`` or separate ``q/k/v_proj_weight``,
    by kdim/vdim)."""
    registry = part(framework, "lowerings").REGISTRY
    return tuple(registry.param_map(_own_spec(framework, d)).get(param, ()))


# ---- blocks: a block's rows are its children's ---------------------------------------------
# A block (a transformer layer) is not a layer kind: xinit.transformer builds it as a graph of
# attention, linear and layernorm layers named as PyTorch's children. Its rows are those
# layers' rows under the child's path (the framework's own child names: Paddle's decoder has
# ``cross_attn``), then each framework's ``block_rule`` says what its own block does beyond
# its children (PyTorch's nn.Transformer: Xavier on every >1-d parameter). No rule is copied.
def _child(d: LayerDims, param: str) -> tuple[L.ParamSpec, str, LayerDims]:
    """(ParamSpec, child path, child dims) of ``param`` of block ``d``."""
    spec = block_params(d).get(param)
    if spec is None:
        raise DefaultsError(f"{d.describe()} has no parameter {param!r}")
    return spec, spec.owner(param), as_dims(spec.layer)


def _block_params_of(framework: str, d: LayerDims) -> tuple[str, ...]:
    """The paths of block ``d`` whose child has the parameter in ``framework``."""
    out = []
    for path in block_params(d):
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
    spec, own = spec_of(d), lowering(framework, d.kind)
    missing = own.default_missing(spec)
    if missing is not None:
        note, source = missing
        return DefaultEntry(
            framework, d, param, native, None, None, None, "unsupported", source, trainable, note
        )
    found = own.default_rule(spec, param)
    if found is None:
        raise DefaultsError(
            f"the {framework} lowering of {d.kind!r} states no default rule for {param!r} "
            "(Lowering.default_rule)"
        )
    init, fans, rule, source = found
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
    names = tuple(block_params(d)) if d.block_class else kinds.get(d.kind).params
    for param in names:
        for fw in frameworks:
            if param in params_of(fw, d):
                out.append(default_entry(fw, d, param))
    return out


# ---- Default: a framework's defaults as an initializer -------------------------------------
_KIND_TO_LAYER = frozenset(_kind_of_layer(layer) for layer in LAYERS)  # kinds Default knows


def _dims_from_param(param, framework: str) -> LayerDims:
    layer = getattr(param, "layer", None)
    kind = getattr(param, "kind", None)
    if kind not in _KIND_TO_LAYER:
        registry = part(framework, "lowerings").REGISTRY
        missing = registry[kind].default_missing(layer) if layer and kind in registry else None
        why = f": {missing[0]}" if missing else f"; known kinds: {sorted(_KIND_TO_LAYER)}"
        raise DefaultsError(
            f"Default({framework!r}) does not know layer kind {kind!r} of parameter "
            f"{getattr(param, 'name', '?')!r}{why}"
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

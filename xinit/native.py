"""Live modules in neutral terms: the layers of a torch, paddle or flax module with their
specs, and every trainable parameter with its neutral path, kind, role and shape.

A module built by xinit is read through its spec. Any other module is read layer by layer:
each native layer class a lowering claims (``Lowering.natives``) is read back into its layer
spec (``Lowering.read``, the inverse of building), so its parameters go through the same
parameter maps as a built module's: names and layouts come from the layer kind, never from
shapes, and a square weight is never transposed by guess. A layer of a class no lowering
reads (ViT's ``cls_token`` on the model, Swin's ``relative_position_bias_table``, layer
scale) contributes the tensors it holds itself, as stored (:class:`OwnTensors`): learned
parameters that move by name with no layout change, and persistent buffers, which are state
(saved, transferred, never initialised). Non-persistent buffers are not state and are left
out. A framework block that re-initialises its children after building them (torch's
``nn.Transformer``) marks the layers read inside it, so ``Default(framework)`` gives what the
framework gives (:class:`Enclosing`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import join
from .distributions import Distribution
from .errors import XinitError
from .fans import compute_fans
from .layers import Layer, ParamSpec
from .parammap import Leaf


class NativeModelError(XinitError, TypeError):
    """A native model xinit cannot read in neutral terms: the layers at fault, by path and
    class."""


@dataclass(frozen=True)
class OwnTensors(Layer):
    """The parameters and persistent buffers a native layer of a class no lowering reads
    holds itself (``tensors``: the adapter's ``OwnTensor`` records), each under its own name
    and in its stored layout. Its kind is empty: no framework default exists for the class
    (``Default`` leaves them as they are); a policy selects them by path or glob. Fan roles
    are PyTorch's reading of a shape (2-d linear, 3- to 5-d conv-like), a bias taking its
    weight's fans, so a fan-based rule means what ``torch.nn.init`` would."""

    module_type: str  # the native class, for reports
    tensors: tuple = ()

    def _params(self):
        roles = {t.name: _shape_role(t.shape) if t.trainable else "vector" for t in self.tensors}
        weight = next((t for t in self.tensors if t.name == "weight"), None)
        fans = None
        if weight is not None and roles["weight"] in ("linear", "conv"):
            fans = compute_fans(weight.shape, roles["weight"])
        return tuple(
            ParamSpec(
                t.name,
                t.shape,
                roles[t.name],
                None,
                "",
                fans=fans if t.name == "bias" else None,
                trainable=t.trainable,
                dtype=t.dtype,
            )
            for t in self.tensors
        )

    def leaf_map(self) -> dict[str, tuple[Leaf, ...]]:
        """Every tensor under its own name, as stored: no lowering says otherwise."""
        return {t.name: (Leaf(t.name),) for t in self.tensors}


def _shape_role(shape: tuple[int, ...]) -> str:
    """PyTorch's reading of a bare tensor's shape (``_calculate_fan_in_and_fan_out``)."""
    if len(shape) == 2:
        return "linear"
    return "conv" if 3 <= len(shape) <= 5 else "vector"


@dataclass(frozen=True)
class Enclosing:
    """A framework's own block that re-initialises the layers read inside it (torch's
    ``nn.Transformer``: Xavier on every >1-d parameter). ``name`` is its block in the
    defaults catalogue (``transformer``), which ``Default(framework)`` asks the framework's
    ``block_rule`` about."""

    framework: str
    name: str
    path: str  # where the block sits in the model


def enclosing_block(spec: Layer) -> Enclosing | None:
    """The framework block around a layer read from a native model, if one re-initialises it."""
    return spec.__dict__.get("_xinit_enclosing")


def _native_blocks(adapter) -> dict[type, str]:
    """The framework's own blocks that re-initialise their children (class -> catalogue row),
    from ``backends/<framework>/defaults.py``'s ``native_blocks`` where it has one."""
    from xinit.backends import part

    blocks = getattr(part(adapter.name, "defaults"), "native_blocks", None)
    return blocks() if blocks is not None else {}


def read_layers(module: Any, adapter=None) -> list[tuple[str, Any, Layer]]:
    """``(path, native layer, layer spec)`` for every layer of a native ``module`` that holds
    parameters or persistent buffers: read back through the lowerings, or, for a class no
    lowering reads, the tensors it holds itself (:class:`OwnTensors`)."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    blocks = _native_blocks(adapter)
    out, inside, enclosing = [], set(), {}
    for path, sub in adapter.named_layers(module):
        parts = path.split(".") if path else []
        parents = [".".join(parts[:i]) for i in range(len(parts))]
        if any(p in inside for p in parents):
            continue  # part of a layer already read (its own children)
        adapter.check_layer(path, sub)
        block = next((blocks[c] for c in type(sub).__mro__ if c in blocks), None)
        if block is not None:
            enclosing[path] = Enclosing(adapter.name, block, path)
        lowering = adapter.lowerings.lowering_of(sub)
        spec = lowering.read(sub) if lowering is not None else None
        if spec is not None:
            inside.add(path)
        else:
            own = tuple(adapter.own_state(sub))
            if not own:
                continue
            spec = OwnTensors(type(sub).__name__, own)
        around = next((enclosing[p] for p in reversed(parents) if p in enclosing), None)
        if around is not None:
            object.__setattr__(spec, "_xinit_enclosing", around)  # a cache beside the fields
        out.append((path, sub, spec))
    return out


def layers_of(module: Any, adapter=None) -> list[tuple[str, Any, Layer]]:
    """``(path, native layer, layer spec)`` for every layer of ``module``: through its spec
    when xinit built it, else read back (:func:`read_layers`)."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    spec = getattr(module, "_xinit_spec", None)
    if spec is not None:
        return list(adapter.native_layers(module, spec))
    return read_layers(module, adapter)


def param_table(layers) -> dict[str, ParamSpec]:
    """Neutral path -> ParamSpec of every parameter and buffer of ``layers``."""
    return {join(path, ps.name): ps for path, _, spec in layers for ps in spec.params()}


@dataclass(frozen=True)
class Slot:
    """One trainable parameter of a live module, in neutral terms, and where it lives."""

    path: str  # neutral dotted path
    native: str  # the framework's dotted name(s) ("+"-joined when split over several)
    module_type: str  # the owning layer's class name
    spec: ParamSpec
    adapter: Any = field(repr=False, compare=False)
    layer: Any = field(default=None, repr=False, compare=False)  # built: the native layer
    leaves: tuple = field(default=(), repr=False, compare=False)  # built: its parameter map
    holder: Any = field(default=None, repr=False, compare=False)  # native: a NativeParam

    def read(self) -> np.ndarray:
        """The current value, numpy in the neutral layout."""
        if self.holder is not None:
            return self.adapter.read_neutral(self.holder)
        return self.adapter.read_param(self.layer, self.leaves, self.spec.shape)

    def fill(self, dist: Distribution, *, seed: int, rng: str) -> None:
        """Draw ``dist``, seeded by the neutral path, into the native tensor(s)."""
        if self.holder is not None:
            self.adapter.sample_into(self.holder, dist, seed=seed, rng=rng)
            return
        device = self.adapter.tensor_device(self.adapter.tensor(self.layer, self.leaves[0].name))
        self.adapter.fill_param(
            self.layer,
            self.leaves,
            dist,
            self.spec,
            seed=seed,
            path=self.path,
            device=device,
            rng=rng,
        )


def slots(module: Any, adapter=None) -> dict[str, Slot]:
    """Neutral path -> :class:`Slot` for every trainable parameter of ``module``, in
    registration order; through the spec's maps when xinit built it."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    built = getattr(module, "_xinit_spec", None) is not None
    layers = layers_of(module, adapter)
    out = {}
    for layer_path, native, layer in layers:
        if isinstance(layer, OwnTensors) and adapter.native_kind(native):
            continue  # a known kind that gave no spec: its kind's layout, below
        pmap = adapter.param_map(layer)
        for ps in layer.params():
            leaves = pmap[ps.name]
            if not ps.trainable or not leaves:
                continue
            path = join(layer_path, ps.name)
            name = "+".join(join(layer_path, leaf.name) for leaf in leaves)
            out[path] = Slot(path, name, type(native).__name__, ps, adapter, native, leaves)
    if built:
        return out
    # a native model: parameters of a known kind's layer that gave no spec (Flax's
    # ConvTranspose with transpose_kernel), as the adapter finds them through the kind
    natives = native_param_specs(module, adapter)
    read = {lp for lp, _, spec in layers if not isinstance(spec, OwnTensors)}
    for path, (ps, p) in natives.items():
        parts = path.split(".")
        if path not in out and not any(".".join(parts[:i]) in read for i in range(len(parts))):
            out[path] = Slot(path, p.native, p.module_type, ps, adapter, holder=p)
    order = {path: i for i, path in enumerate(natives)}  # registration order
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def native_param_specs(module: Any, adapter=None) -> dict[str, tuple[ParamSpec, Any]]:
    """Neutral path -> (ParamSpec, NativeParam) for every parameter of a native module, read
    layer by layer through the adapter (no spec needed)."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    natives = list(adapter.native_params(module))
    weight_fans = {}
    for p in natives:
        if p.leaf == "weight" and p.role in ("linear", "conv", "conv_transpose"):
            weight_fans[p.layer] = compute_fans(p.shape, p.role)
    out: dict[str, tuple[ParamSpec, Any]] = {}
    for p in natives:
        if p.path in out:
            raise ValueError(
                f"two parameters of this {adapter.name} module map to the neutral name {p.path!r} "
                f"({out[p.path][1].native} and {p.native})"
            )
        fans = weight_fans.get(p.layer) if p.leaf == "bias" else None
        spec = ParamSpec(p.leaf, p.shape, p.role, None, p.kind, fans=fans)
        out[p.path] = (spec, p)
    return out


def neutral_values(module: Any) -> dict[str, np.ndarray]:
    """Neutral path -> numpy value (neutral layout) of every trainable parameter."""
    return {path: slot.read() for path, slot in slots(module).items()}


__all__ = ["Slot", "slots", "native_param_specs", "neutral_values"]

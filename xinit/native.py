"""Live modules in neutral terms: the layers of a torch, paddle or flax module with their
specs, and every trainable parameter with its neutral path, kind, role and shape.

A module built by xinit is read through its spec. Any other module is read layer by layer:
each native layer class a lowering claims (``Lowering.natives``) is read back into its layer
spec (``Lowering.read``, the inverse of building), so its parameters go through the same
parameter maps as a built module's: names and layouts come from the layer kind, never from
shapes, and a square weight is never transposed by guess. A native class that holds
parameters and that no lowering reads is listed by path and class, never guessed
(:class:`NativeModelError`); :func:`xinit.apply` alone also accepts such parameters, read by
their shape as PyTorch reads fans.
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


class NativeModelError(XinitError, TypeError):
    """A native model xinit cannot read in neutral terms: the layers at fault, by path and
    class."""


def read_layers(module: Any, adapter=None, *, strict: bool = True) -> list[tuple[str, Any, Layer]]:
    """``(path, native layer, layer spec)`` for every layer of a native ``module`` that holds
    parameters or buffers, read back through the lowerings. With ``strict``, a layer holding
    parameters that no lowering reads raises :class:`NativeModelError` naming every one."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    out, unknown, inside = [], [], set()
    for path, sub in adapter.named_layers(module):
        parts = path.split(".") if path else []
        if any(".".join(parts[:i]) in inside for i in range(len(parts))):
            continue  # part of a layer already read (its own children)
        adapter.check_layer(path, sub)
        lowering = adapter.lowerings.lowering_of(sub)
        spec = lowering.read(sub) if lowering is not None else None
        if spec is not None:
            out.append((path, sub, spec))
            inside.add(path)
            continue
        own = adapter.own_parameters(sub)
        if own:
            what = f" (kind {lowering.kind!r}, which has no spec to read yet)" if lowering else ""
            unknown.append(f"{path or '<root>'}: {type(sub).__name__}{what} holds {', '.join(own)}")
    if unknown and strict:
        raise NativeModelError(
            f"cannot read this {adapter.name} model in neutral terms: {len(unknown)} layer(s) "
            "hold parameters of a class no lowering reads (register a lowering whose natives() "
            "lists the class and whose read() gives its spec):\n  " + "\n  ".join(unknown)
        )
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
    layers = layers_of(module, adapter) if built else read_layers(module, adapter, strict=False)
    out = {}
    for layer_path, native, layer in layers:
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
    # a native model: parameters of layers no lowering reads, as the adapter finds them
    natives = native_param_specs(module, adapter)
    read = {lp for lp, _, _ in layers}
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

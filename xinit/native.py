"""Live modules in neutral terms: every trainable parameter of a torch, paddle or flax module
with its neutral path, kind, role and shape, ready to be read or drawn into.

A module built by xinit is read through its spec's parameter maps (the lowerings'), so a
parameter split over several native tensors is still one neutral parameter, and a draw gives
exactly what ``xinit.build`` gives the same path. Any other module is read layer by layer
through the adapter (``Backend.native_params``): known layer classes map to their kinds
through the lowering registry, and their leaves to neutral names and layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import join
from .distributions import Distribution
from .fans import compute_fans
from .layers import ParamSpec


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
    spec = getattr(module, "_xinit_spec", None)
    if spec is None:
        return {
            path: Slot(path, p.native, p.module_type, ps, adapter, holder=p)
            for path, (ps, p) in native_param_specs(module, adapter).items()
        }
    out = {}
    for layer_path, native, layer in adapter.native_layers(module, spec):
        pmap = adapter.param_map(layer)
        for ps in layer.params():
            leaves = pmap[ps.name]
            if not ps.trainable or not leaves:
                continue
            path = join(layer_path, ps.name)
            name = "+".join(join(layer_path, leaf.name) for leaf in leaves)
            out[path] = Slot(path, name, type(native).__name__, ps, adapter, native, leaves)
    return out


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

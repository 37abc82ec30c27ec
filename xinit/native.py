"""Native modules in neutral terms: every parameter of a torch, paddle or flax module (built
by xinit or not) with its neutral path, kind, role and shape, read through the adapters."""

from __future__ import annotations

from typing import Any

from .fans import compute_fans
from .layers import ParamSpec


def native_param_specs(module: Any, adapter=None) -> dict[str, tuple[ParamSpec, Any]]:
    """Neutral path -> (ParamSpec, NativeParam) for every parameter of a native module."""
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


def neutral_values(module: Any) -> dict[str, Any]:
    """Neutral path -> numpy value (neutral layout) of every parameter of a native module."""
    from xinit.backends import backend_of

    adapter = backend_of(module)
    return {p.path: adapter.read_neutral(p) for p in adapter.native_params(module)}


__all__ = ["native_param_specs", "neutral_values"]

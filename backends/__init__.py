"""Backend adapters, one module per framework, loaded lazily by name."""

from __future__ import annotations

import importlib
import importlib.util
import sys

from .base import Backend

BACKENDS = {"torch": "torch", "paddle": "paddle", "flax": "flax"}
_FRAMEWORK_MODULE = {"torch": "torch", "paddle": "paddle", "flax": "flax.nnx"}
_CACHE: dict[str, Backend] = {}


def available() -> list[str]:
    """Backends whose framework is installed (without importing it)."""
    out = []
    for name, mod in _FRAMEWORK_MODULE.items():
        top = mod.split(".")[0]
        if importlib.util.find_spec(top) is not None:
            out.append(name)
    return out


def get_backend(name: str | Backend) -> Backend:
    """The adapter for ``name`` ('torch', 'paddle' or 'flax'), importing its framework now."""
    if isinstance(name, Backend):
        return name
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; accepted: {tuple(BACKENDS)}")
    if name not in _CACHE:
        top = _FRAMEWORK_MODULE[name].split(".")[0]
        if importlib.util.find_spec(top) is None:
            raise ImportError(
                f"backend {name!r} needs its framework, which is not installed: "
                f"pip install 'xinit[{name}]'"
            )
        module = importlib.import_module(f"{__name__}.{BACKENDS[name]}")
        _CACHE[name] = module.ADAPTER
    return _CACHE[name]


def backend_of(module) -> Backend:
    """The adapter whose framework ``module`` belongs to (only frameworks already imported)."""
    for name in BACKENDS:
        if _FRAMEWORK_MODULE[name].split(".")[0] in sys.modules:
            adapter = get_backend(name)
            if adapter.owns(module):
                return adapter
    raise TypeError(
        f"{type(module).__name__} is not a torch.nn.Module, paddle.nn.Layer or flax nnx.Module"
    )


__all__ = ["Backend", "BACKENDS", "available", "get_backend", "backend_of"]

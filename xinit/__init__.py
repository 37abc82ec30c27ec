"""xinit: one framework-neutral spec of network blocks and their initialisation.

``import xinit`` loads numpy only; each backend imports its framework when first asked for.
"""

from __future__ import annotations

import importlib

from . import initializers as init
from .initializers import gain
from .sampling import sample

__version__ = "0.1.0"

# Public names served lazily from their modules, so the core import stays light.
_LAZY = {
    "models": ("xinit.models", None),
    "layers": ("xinit.layers", None),
    "blocks": ("xinit.blocks", None),
    "build": ("xinit.build", "build"),
    "run": ("xinit.build", "run"),
    "summary": ("xinit.summary", "summary"),
    "Sequential": ("xinit.blocks", "Sequential"),
    "Residual": ("xinit.blocks", "Residual"),
}


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xinit' has no attribute {name!r}")


__all__ = ["init", "gain", "sample", "__version__", *_LAZY]

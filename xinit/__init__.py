"""xinit: one framework-neutral spec of network blocks and their initialisation.

``import xinit`` is nearly free: the public names below load their module on first use
(the core itself needs numpy only), and each backend imports its framework when first asked.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# Public names served lazily from their modules, so the core import stays light.
_LAZY = {
    "init": ("xinit.init", None),
    "gain": ("xinit.initializers", "gain"),
    "sample": ("xinit.sampling", "sample"),
    "models": ("xinit.models", None),
    "layers": ("xinit.layers", None),
    "blocks": ("xinit.blocks", None),
    "build": ("xinit.build", "build"),
    "run": ("xinit.build", "run"),
    "summary": ("xinit.summary", "summary"),
    "Sequential": ("xinit.blocks", "Sequential"),
    "Residual": ("xinit.blocks", "Residual"),
    "state_dict": ("xinit.state", "state_dict"),
    "load_state_dict": ("xinit.state", "load_state_dict"),
    "transfer": ("xinit.state", "transfer"),
    "port": ("xinit.port", "port"),
    "parity": ("xinit.check", "parity"),
    "apply": ("xinit.apply", "apply"),
    "Policy": ("xinit.policy", "Policy"),
    "Rule": ("xinit.policy", "Rule"),
    "presets": ("xinit.presets", None),
}


class _Package(types.ModuleType):
    """Keeps ``xinit.build``, ``xinit.apply``, ``xinit.summary`` the public functions: Python
    otherwise rebinds the package attribute to the same-named submodule when that submodule is
    first imported directly (``from xinit.apply import Report``)."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _LAZY.get(name, ("", None))[1] is not None:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xinit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]

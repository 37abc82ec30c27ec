"""The framework adapters, one folder each, loaded lazily by name.

``FRAMEWORKS`` is the one list of frameworks: the CLI, state, port, the defaults catalogue and
the tests read it. Each folder ``backends/<name>/`` holds everything that knows its framework:
``__init__.py`` (light: what it requires, its pip extra, its parity tolerance), ``adapter.py``
(the :class:`Backend`: tensors, devices, RNG), ``lowerings.py`` (one lowering per layer kind,
with parameter maps), ``modules.py`` (native modules xinit needs), ``checkpoint.py`` (the
native checkpoint format) and ``defaults.py`` (the framework's default init, as data, and the
builder of its own default layers). Adding a framework is one folder plus one entry here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from xinit.errors import FrameworkError, FrameworkNotInstalledError

from .common.protocol import Backend

FRAMEWORKS = ("torch", "paddle", "flax")
_CACHE: dict[str, Backend] = {}


def info(name: str) -> ModuleType:
    """The light package ``xinit.backends.<name>`` (its ``REQUIRES``, ``EXTRA``, ...)."""
    if name not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {name!r}; accepted: {FRAMEWORKS}")
    return importlib.import_module(f"{__name__}.{name}")


def part(name: str, module: str) -> ModuleType:
    """``xinit.backends.<name>.<module>`` (``lowerings``, ``checkpoint``, ``defaults``, ...)."""
    info(name)
    return importlib.import_module(f"{__name__}.{name}.{module}")


def installed(name: str) -> bool:
    """Whether framework ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(info(name).REQUIRES) is not None


def available() -> list[str]:
    """Backends whose framework is installed (without importing it)."""
    return [name for name in FRAMEWORKS if installed(name)]


def get_backend(name: str | Backend) -> Backend:
    """The adapter for ``name`` ('torch', 'paddle' or 'flax'), importing its framework now."""
    if isinstance(name, Backend):
        return name
    if name not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {name!r}; accepted: {FRAMEWORKS}")
    if name not in _CACHE:
        if not installed(name):
            raise FrameworkNotInstalledError(
                f"framework {name!r} is not installed: pip install 'xinit[{info(name).EXTRA}]'"
            )
        _CACHE[name] = part(name, "adapter").ADAPTER
    return _CACHE[name]


def backend_of(module) -> Backend:
    """The adapter whose framework ``module`` belongs to (only frameworks already imported)."""
    for name in FRAMEWORKS:
        if info(name).REQUIRES in sys.modules:
            adapter = get_backend(name)
            if adapter.owns(module):
                return adapter
    raise TypeError(
        f"{type(module).__name__} is not a torch.nn.Module, paddle.nn.Layer or flax nnx.Module"
    )


__all__ = [
    "Backend",
    "FRAMEWORKS",
    "available",
    "installed",
    "get_backend",
    "backend_of",
    "info",
    "part",
]

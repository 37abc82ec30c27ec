"""``xinit.init``: every initializer, by the name users write (``xinit.init.KaimingNormal``).

The initializers themselves live in :mod:`xinit.initializers` (re-exported here eagerly: pure
numpy, cheap) and ``gain`` with them. :class:`~xinit.defaults.catalogue.Default` (a
framework's own defaults as an initializer) lives in the defaults catalogue, which reads the
backends' lowerings: importing it costs ~90 ms, so it is loaded on first use of
``xinit.init.Default`` (or ``from xinit.init import Default``). Nothing the catalogue imports
imports this module, so there is no cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import initializers
from .initializers import *  # noqa: F403 - every initializer, by name

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ below loads it on first use
    from .defaults.catalogue import Default


def __getattr__(name: str):
    if name == "Default":
        from .defaults.catalogue import Default

        globals()["Default"] = Default
        return Default
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = [*initializers.__all__, "Default"]

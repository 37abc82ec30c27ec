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

from .initializers import (
    BiasPrior,
    Constant,
    Dirac,
    Eye,
    Initializer,
    KaimingNormal,
    KaimingUniform,
    LecunNormal,
    LecunUniform,
    Normal,
    Ones,
    Orthogonal,
    TruncatedNormal,
    Uniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
    Zeros,
    gain,
)

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


__all__ = [
    "Initializer",
    "Constant",
    "Zeros",
    "Ones",
    "Normal",
    "Uniform",
    "TruncatedNormal",
    "VarianceScaling",
    "XavierUniform",
    "XavierNormal",
    "KaimingUniform",
    "KaimingNormal",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "Dirac",
    "Eye",
    "BiasPrior",
    "gain",
    "Default",
]

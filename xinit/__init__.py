"""xinit: one framework-neutral spec of network blocks and their initialisation.

``import xinit`` loads numpy only; each backend imports its framework when first asked for.
"""

from __future__ import annotations

from . import initializers as init
from .initializers import gain
from .sampling import sample

__version__ = "0.1.0"

__all__ = ["init", "gain", "sample", "__version__"]

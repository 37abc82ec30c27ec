"""What each framework does by default, as data: a catalogue of xinit initializers.

For every framework in :data:`xinit.backends.FRAMEWORKS` (PyTorch, PaddlePaddle, Flax NNX;
Flax Linen initialises as NNX does, and where it differs, in BatchNorm state and RNG keying,
the conventions say so), every parameter of every supported layer kind maps to the xinit
initializer and distribution that the framework's own default layer uses. The package splits
that into:

* :mod:`.catalogue` - layer dims, the records (:func:`catalogue`, :func:`default_entry`,
  :func:`default_init`) and :class:`Default`, the defaults as an initializer; each
  framework's rules live in ``backends/<framework>/defaults.py``;
* :mod:`.conventions` - BatchNorm momentum/eps/running variance, LayerNorm eps, layouts,
  truncated-normal bounds, pooling defaults, RNG seeding (:data:`CONVENTIONS`);
* :mod:`.render` - compact text, Markdown and rich tables, densities;
* :mod:`.native` - the frameworks' own default layers, built (:func:`native_defaults`) and
  plotted (:func:`plot_defaults`).

``tests/test_defaults.py`` is the judge: it builds each framework's native default layers and
tests their measured statistics against the catalogue. Nothing here imports a framework at
import time.
"""

from __future__ import annotations

from .catalogue import (
    FRAMEWORKS,
    LAYERS,
    Default,
    DefaultEntry,
    LayerDims,
    as_dims,
    canonical_layer,
    catalogue,
    check_framework,
    default_entry,
    default_init,
    dims,
    params_of,
    records,
)
from .conventions import CONVENTIONS, Convention, convention_record, conventions
from .laws import short, std_ratio
from .native import native_defaults, plot_defaults
from .render import (
    conventions_markdown,
    conventions_rich,
    density,
    table_rows,
    to_markdown,
    to_rich,
)

__all__ = [
    "FRAMEWORKS",
    "LAYERS",
    "LayerDims",
    "dims",
    "as_dims",
    "canonical_layer",
    "check_framework",
    "DefaultEntry",
    "default_entry",
    "default_init",
    "catalogue",
    "records",
    "params_of",
    "short",
    "std_ratio",
    "table_rows",
    "to_markdown",
    "to_rich",
    "conventions_markdown",
    "conventions_rich",
    "Default",
    "Convention",
    "CONVENTIONS",
    "conventions",
    "convention_record",
    "native_defaults",
    "density",
    "plot_defaults",
]

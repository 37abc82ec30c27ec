"""What each framework does by default, as data: a catalogue of xinit initializers.

For every framework in :data:`xinit.backends.FRAMEWORKS` (PyTorch, PaddlePaddle, Flax NNX;
Flax Linen initialises as NNX does except its GRUCell and OptimizedLSTMCell, whose recurrent
kernels are per gate: the Flax rows' source says what Linen draws; BatchNorm state and RNG
keying differ too, the conventions say so), every parameter of every supported layer kind maps
to the xinit initializer and distribution that the framework's own default layer uses. The
package splits that into:

* :mod:`.layer_names` - the layer names, each a spec factory whose numbers (in, out, kernel,
  groups, heads) are the spec's own fields (:func:`layer_spec`, :func:`layer_numbers`);
* :mod:`.blocks` - the blocks (transformer layers), each one :func:`register_block` call;
* :mod:`.entry` - one record (:class:`DefaultEntry`) and its JSON form;
* :mod:`.catalogue` - the records (:func:`catalogue`, :func:`default_entry`,
  :func:`default_init`) and :class:`Default`, the defaults as an initializer; each rule is
  the framework's lowering's for that kind (``Lowering.default_rule``, ``native_default``);
  what a framework's blocks add lives in ``backends/<framework>/defaults.py``;
* :mod:`.conventions` - BatchNorm momentum/eps/running variance, LayerNorm eps, layouts,
  truncated-normal bounds, pooling defaults, RNG seeding (:data:`CONVENTIONS`);
* :mod:`.render` - compact text, Markdown and rich tables, densities;
* :mod:`.native` - the frameworks' own default layers, built (:func:`native_defaults`) and
  plotted (:func:`plot_defaults`).

``tests/defaults/test_defaults_measured.py`` is the judge: it builds each framework's native default
layers and tests their measured statistics against the catalogue. Nothing here imports a
framework at import time.
"""

from __future__ import annotations

import importlib

from .blocks import *  # noqa: F403
from .catalogue import *  # noqa: F403 - the package re-exports each part's public names
from .conventions import *  # noqa: F403
from .entry import *  # noqa: F403
from .laws import *  # noqa: F403
from .layer_names import *  # noqa: F403
from .native import *  # noqa: F403
from .render import *  # noqa: F403

# (``catalogue`` and ``conventions`` name functions here, as they always did, not the modules)
__all__ = [
    name
    for part in (
        *("blocks", "layer_names", "entry", "catalogue"),
        *("conventions", "laws", "native", "render"),
    )
    for name in importlib.import_module(f"{__name__}.{part}").__all__
]

"""The Backend protocol every adapter fulfils, one base class per feature.

An adapter translates; it never decides. Distributions, fans, layouts and names are decided
in the neutral core; an adapter knows only (1) how to make, read and fill its framework's
tensors, (2) its native layout of each parameter role, and (3) how to build each layer kind.

What an adapter (``backends/<name>/adapter.py``) gives, feature by feature (``abstract``: it
must; ``optional``: the feature is refused without it):

==================  ===========================================================================
feature             the adapter gives
==================  ===========================================================================
identity            ``name``, ``owns(module)`` (abstract), ``lowerings`` (its ``REGISTRY``)
tensors / draws     ``devices``, ``from_numpy``, ``to_numpy``, ``draw`` (abstract); ``in_place``
                    with ``fill``, ``view_numpy``, ``host_array``, ``tensor_device``,
                    ``sample_later`` (:mod:`.tensors`)
building            ``make_sequential`` (abstract); ``steps_cls``, ``residual_cls``,
                    ``graph_cls``; ``materialize``, ``builds_with_values`` (:mod:`.building`)
tensors by name     ``children_attr``, ``tensor_types``, ``write`` (needed by build, state
                    and transfer); ``child``, ``write_array`` where faster (:mod:`.leaves`)
running             ``trace``, ``forward`` (abstract); ``trace_shapes`` (:mod:`.running`)
native models       ``named_layers``, ``own_state``, ``native_params``, ``assign``
                    (optional: ``xinit.apply`` and reading models xinit did not build);
                    ``check_layer``, ``holder_device`` (:mod:`.native_models`)
sharding            ``sharded_leaf``, ``sharded_native``, ``fill_shards`` (optional)
                    (:mod:`.sharding`)
diagnostics         ``signal_pass`` (optional: ``xinit.diagnose``, ``xinit.lsuv``)
                    (:mod:`.diagnostics`)
==================  ===========================================================================
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from .building import Building
from .diagnostics import Diagnostics
from .leaves import LeafAccess
from .native_models import NativeModels
from .running import Running
from .sharding import Sharding
from .tensors import Tensors

__all__ = ["Backend"]


class Backend(Tensors, Building, LeafAccess, Running, NativeModels, Sharding, Diagnostics):
    """A framework adapter: every feature's base class; subclasses implement the abstract
    primitives, and the optional ones of the features their framework supports."""

    name: str = ""

    @abstractmethod
    def owns(self, module: Any) -> bool:
        """Whether ``module`` is a module (or tensor) of this framework."""

"""Building: a native module from a spec through the registered lowerings, every parameter
drawn by the init plan. An adapter implements :meth:`Building.make_sequential` and names its
container classes; lowerings that create parameters with their values get them through
:class:`InitialValues`."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from xinit.blocks import Residual, Sequential, check_channels, join
from xinit.distributions import Distribution
from xinit.graph import Graph
from xinit.layers import Layer, ParamSpec
from xinit.memory import check_allocation
from xinit.parammap import Leaf
from xinit.plan import PlanItem, init_plan
from xinit.rng import check_rng, check_seed

from .containers import graph_layout
from .progress import progress
from .sharding import ShardingError

Initial = Callable[[str, tuple[int, ...]], Any]
"""``initial(native leaf name, native shape)``: the leaf's drawn native value, or None."""


class Building(ABC):
    """Making the native tree (layers from the lowerings, containers from the adapter's
    classes) and filling it with the plan's draws."""

    name: str  # the framework (the adapter sets it)

    def make_layer(self, layer: Layer, device: str, initial: Initial | None = None) -> Any:
        """The native module of one layer spec, from its registered lowering. A lowering
        that ``takes_initial`` gets ``initial`` and creates its parameters with their drawn
        values; the values of any other are drawn afterwards (:meth:`initialize`)."""
        lowering = self.lowerings[layer.kind]
        if initial is not None and lowering.takes_initial:
            return lowering.build(layer, device, initial=initial)
        return lowering.build(layer, device)

    builds_with_values: bool = False  # lowerings create parameters with their values (Flax)

    @abstractmethod
    def make_sequential(self, children: dict[str, Any], steps: list[str]) -> Any:
        """A container applying ``steps`` (child names, possibly repeated) in order."""

    steps_cls: type | None = None  # the adapter's container for steps that reuse a child
    residual_cls: type | None = None  # the adapter's residual container

    def make_residual(
        self,
        children: dict[str, Any],
        body: list[str],
        shortcut: str | None,
        activation: str | None,
    ) -> Any:
        """A container computing ``activation(body(x) + shortcut(x))``."""
        return self.residual_cls(children, body, shortcut, activation)

    graph_cls: type | None = None  # the adapter's graph container

    def make_graph(self, children: dict[str, Any], layout: dict) -> Any:
        """A container running a graph's nodes (see :func:`graph_layout`)."""
        return self.graph_cls(children, layout)

    def drawn_natively(self, leaves: tuple[Leaf, ...], role: str, ndim: int) -> bool:
        """Whether the parameter is one native tensor in its role's layout: then the
        framework draws it in place, in its own shape (what ``rng="native"`` promises)."""
        if len(leaves) != 1:
            return False
        leaf = leaves[0]
        plain = leaf.part is None and leaf.shape is None and leaf.into is None
        return plain and leaf.perm == self.layout(role, ndim)

    def fill_param(
        self,
        layer: Any,
        leaves: tuple[Leaf, ...],
        dist: Distribution,
        ps: ParamSpec,
        *,
        seed: int,
        path: str,
        device: str,
        rng: str,
    ) -> None:
        """Draw ``dist`` for neutral parameter ``ps`` at ``path`` into its native leaves (a
        sharded leaf shard by shard: each shard's block of the single-device init)."""
        if not leaves:
            return
        holder = self.sharded_leaf(layer, leaves[0].name)
        if holder is not None:
            if not self.drawn_natively(leaves, ps.role, len(ps.shape)):
                raise ShardingError(
                    f"{path}: a sharded parameter split over several native tensors or "
                    f"reshaped ({', '.join(leaf.name for leaf in leaves)}) cannot be filled "
                    "shard by shard"
                )
            perm = leaves[0].perm
            return self.fill_shards(
                holder, dist, tuple(ps.shape), perm, seed=seed, path=path, rng=rng
            )
        if self.drawn_natively(leaves, ps.role, len(ps.shape)):
            name = leaves[0].name
            target = self.tensor(layer, name) if self.in_place else None
            value = self.sample(
                dist, ps.shape, ps.role, seed=seed, path=path, device=device, rng=rng, out=target
            )
            if value is not target:
                self.assign_leaf(layer, name, value)
            return
        neutral = self.sample_neutral(dist, ps.shape, ps.role, seed=seed, path=path, rng=rng)
        self.write_param(layer, leaves, neutral, device)

    def _build_node(self, spec, device: str, path: str, layers: dict, values=None) -> Any:
        if isinstance(spec, Layer):
            initial = values.for_layer(path) if values is not None else None
            native = self.make_layer(spec, device, initial)
            layers[path] = (native, spec)
            return native
        kids = {
            name: self._build_node(child, device, join(path, name), layers, values)
            for name, child in spec.children
        }
        if isinstance(spec, Sequential):
            return self.make_sequential(kids, [n for n, _ in spec.steps])
        if isinstance(spec, Residual):
            return self.make_residual(
                kids,
                [n for n, _ in spec.body.steps],
                spec.shortcut_name if spec.shortcut is not None else None,
                spec.activation_name if spec.activation is not None else None,
            )
        if isinstance(spec, Graph):
            return self.make_graph(kids, graph_layout(spec))
        raise TypeError(f"not a spec: {spec!r}")

    def build(
        self,
        spec,
        *,
        seed: int = 0,
        device: str = "cpu",
        rng: str = "native",
        policy=None,
    ) -> Any:
        """A native module for ``spec`` with every parameter initialised by xinit.

        The init plan is computed once (each initializer resolved once) and the native
        layers are collected while building, so nothing is walked or resolved twice.
        """
        self.check_device(device)
        check_rng(rng)
        check_seed(seed)
        if getattr(spec, "needs_container", False):
            raise TypeError(
                f"a {type(spec).__name__} is a parameter of its container: build it inside a "
                "Sequential or Graph"
            )
        check_channels(spec)
        check_allocation(build_bytes(spec), f"building {type(spec).__name__} in {self.name}")
        plan = init_plan(spec, policy)
        layers: dict[str, tuple[Any, Layer]] = {}
        values = None
        if self.builds_with_values:
            values = InitialValues(self, plan, seed=seed, device=device, rng=rng)
        module = self._build_node(spec, device, "", layers, values)
        module = self.materialize(module, layers, device)
        self.attach_spec(module, spec)
        if values is not None:
            plan = [item for item in plan if item.path not in values.taken]
        self.initialize(layers, plan, seed=seed, device=device, rng=rng)
        return module

    def materialize(self, module: Any, layers: dict, device: str) -> Any:
        """Hook after construction (torch builds on the meta device and allocates here;
        ``layers`` is updated if the native layer objects change)."""
        return module

    def attach_spec(self, module: Any, spec) -> None:
        object.__setattr__(module, "_xinit_spec", spec)

    def initialize(
        self, layers: dict, plan: list[PlanItem], *, seed=0, device="cpu", rng="native"
    ) -> None:
        """Draw every planned parameter into the native layers collected by the build."""
        with progress(sum(item.param.numel for item in plan), f"{self.name}: init") as advance:
            for item in plan:
                native, layer = layers[item.layer]
                leaves = self.param_map(layer)[item.param.name]
                self.fill_param(
                    native,
                    leaves,
                    item.dist,
                    item.param,
                    seed=seed,
                    path=item.path,
                    device=device,
                    rng=rng,
                )
                advance(item.param.numel)


def build_bytes(spec) -> int:
    """Bytes a build of ``spec`` allocates: every parameter and buffer, plus the largest
    one once more for the values drawn before they are written."""
    from xinit.blocks import param_specs

    sizes = [math.prod(ps.shape) * np.dtype(ps.dtype).itemsize for ps in param_specs(spec).values()]
    return sum(sizes) + max(sizes, default=0)


class InitialValues:
    """The init plan's values, drawn when a lowering asks for them while it constructs a
    layer, so each parameter is created once with its final value (no zero placeholder
    put on the device and then replaced: a third of a Flax ResNet build).

    Only parameters the framework draws in its own layout (:meth:`Backend.drawn_natively`)
    are offered, each drawn as :meth:`Backend.fill_param` would (:meth:`Backend.sample`,
    started up front by :meth:`Backend.sample_later`), so values are the same; what no
    lowering takes is drawn by ``initialize``.
    """

    def __init__(self, backend: Building, plan: list[PlanItem], *, seed, device, rng):
        self.backend = backend
        self.by_layer: dict[str, dict[str, PlanItem]] = {}
        self.taken: set[str] = set()  # paths of the plan items handed out
        self.started: dict[str, Callable[[], Any]] = {}  # path -> finish its draw
        for item in plan:
            ps = item.param
            leaves = backend.param_map(ps.layer)[ps.name]
            if leaves and backend.drawn_natively(leaves, ps.role, len(ps.shape)):
                self.by_layer.setdefault(item.layer, {})[leaves[0].name] = item
                self.started[item.path] = backend.sample_later(
                    item.dist, ps.shape, ps.role, seed=seed, path=item.path, device=device, rng=rng
                )

    def for_layer(self, path: str) -> Initial | None:
        """The ``initial`` of the layer at ``path`` (None: nothing of it is offered)."""
        table = self.by_layer.get(path)
        if not table:
            return None

        def initial(name: str, shape: tuple[int, ...]) -> Any:
            item = table.get(name)
            if item is None or item.path in self.taken:
                return None
            ps = item.param
            if self.backend.native_shape(ps.shape, ps.role) != tuple(shape):
                return None
            self.taken.add(item.path)
            return self.started.pop(item.path)()

        return initial

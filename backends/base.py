"""The Backend protocol every adapter fulfils, and the logic all adapters share.

An adapter translates; it never decides. Distributions, fans, layouts and names are decided
in the neutral core; an adapter knows only (1) how to make, read and fill its framework's
tensors, (2) its native layout of each parameter role, and (3) how to build each layer kind.
"""

from __future__ import annotations

import contextlib
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xinit import kinds, parammap
from xinit.blocks import Residual, Sequential, check_channels, children, join
from xinit.distributions import (
    ConstantDist,
    DiracDist,
    Distribution,
    EyeDist,
    NormalDist,
    OrthogonalDist,
    construct,
)
from xinit.graph import Graph
from xinit.layers import Layer, ParamSpec
from xinit.memory import check_allocation
from xinit.parammap import Leaf, ParamMap, contiguous
from xinit.plan import PlanItem, init_plan
from xinit.rng import (
    RNG_MODES,
    check_rng,
    check_seed,
    derive_seed,
    keyed_normal_draw,
)

from .registry import Registry

__all__ = [
    "Backend",
    "OutputRecorder",
    "NativeParam",
    "SignalPass",
    "RNG_MODES",
    "progress",
    "contiguous",
    "copy_into",
    "inverse",
]


PROGRESS_MIN_ELEMENTS = 1 << 26  # show a progress bar from 64 Mi values (256 MB fp32) up


@contextlib.contextmanager
def progress(total: int, label: str):
    """Yield ``advance(n)``; a rich progress bar on stderr when the work is large."""
    if total < PROGRESS_MIN_ELEMENTS:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class StepsLogic:
    """Forward of a container whose steps may reuse a child; subclasses give ``_child``."""

    def _run_steps(self, x):
        for name in self._xinit_steps:
            x = self._child(name)(x)
        return x


class ResidualLogic:
    """Forward of ``activation(body(x) + shortcut(x))``; subclasses give ``_child``."""

    def _run_residual(self, x):
        out = x
        for name in self._xinit_body:
            out = self._child(name)(out)
        out = out + (self._child(self._xinit_shortcut)(x) if self._xinit_shortcut else x)
        return self._child(self._xinit_activation)(out) if self._xinit_activation else out


class GraphLogic:
    """Forward of a graph: nodes in topological order, each on its inputs' values; the
    outputs as one value, a tuple or a dict. Subclasses give ``_child``; ``_call`` is the
    hook a framework that records outputs (Flax) overrides."""

    def _run_graph(self, *xs):
        if len(xs) != len(self._xinit_inputs):
            raise TypeError(f"the graph takes inputs {self._xinit_inputs}; got {len(xs)}")
        env = dict(zip(self._xinit_inputs, xs))
        for name, refs in self._xinit_nodes:
            env[name] = self._call(name, [_resolve(env, r) for r in refs])
        outs = [_resolve(env, ref) for _, ref in self._xinit_outputs]
        if self._xinit_returns == "single":
            return outs[0]
        if self._xinit_returns == "tuple":
            return tuple(outs)
        return {key: v for (key, _), v in zip(self._xinit_outputs, outs)}

    def _call(self, name, args):
        return self._child(name)(*args)


def _resolve(env: dict, ref: str):
    node, _, key = ref.partition(".")
    return env[node][key] if key else env[node]


def graph_layout(spec) -> dict:
    """The plain data a native graph container keeps: node inputs in execution order, the
    graph's input names, its outputs and how it returns them."""
    return {
        "nodes": [(name, tuple(spec.inputs_of(name))) for name in spec.order],
        "inputs": tuple(spec.inputs),
        "outputs": tuple(spec.outputs),
        "returns": spec.returns,
    }


def map_arrays(fn: Callable[[Any], Any], value: Any, leaf: type | tuple = ()) -> Any:
    """``fn`` applied to every array of a nested tuple/list/dict (a graph's inputs or
    outputs), keeping the structure; ``leaf`` types are arrays even if iterable."""
    if isinstance(value, dict):
        return {k: map_arrays(fn, v, leaf) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and not isinstance(value, leaf or ()):
        return tuple(map_arrays(fn, v, leaf) for v in value)
    return fn(value)


def array_leaves(value: Any) -> list:
    """The arrays of a nested tuple/dict output (a graph's several outputs), in order."""
    out: list = []
    map_arrays(out.append, value)
    return out


def as_args(x: Any) -> tuple:
    """A module's positional inputs: a tuple/list is several, anything else one."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def set_mode(module: Any, train: bool) -> None:
    """Training or eval mode, for frameworks with separate ``train()`` and ``eval()`` calls."""
    if train:
        module.train()
    else:
        module.eval()


SLAB = 32  # rows per slab of a blocked copy (a slab of a ResNet kernel stays in L2)
SMALL_COPY = 1 << 16  # bytes: below this a strided copy stays in cache anyway


def copy_into(out: np.ndarray, src: np.ndarray) -> None:
    """Copy numpy ``src`` (any strides: a transposed view of another module's memory) into
    ``out`` of the same shape, one pass, no temporary.

    numpy copies a transposed view in the destination's order, so every read lands on a new
    cache line of the source and a ResNet kernel moves at ~0.5 GB/s. Copying it in slabs of
    ``SLAB`` along the source's outermost axis keeps each slab's source in cache (~4 GB/s
    here). Other layouts (already in order, small, or outermost axis short) copy directly.
    """
    if src.ndim < 2 or src.nbytes <= SMALL_COPY or abs(src.strides[-1]) == src.itemsize:
        np.copyto(out, src)
        return
    strides = [abs(s) if n > 1 else 0 for s, n in zip(src.strides, src.shape)]
    axis = strides.index(max(strides))
    if src.shape[axis] < 2 * SLAB:
        np.copyto(out, src)
        return
    index = [slice(None)] * src.ndim
    for start in range(0, src.shape[axis], SLAB):
        index[axis] = slice(start, start + SLAB)
        np.copyto(out[tuple(index)], src[tuple(index)])


def build_bytes(spec) -> int:
    """Bytes a build of ``spec`` allocates: every parameter and buffer, plus the largest
    one once more for the values drawn before they are written."""
    from xinit.blocks import param_specs

    sizes = [math.prod(ps.shape) * np.dtype(ps.dtype).itemsize for ps in param_specs(spec).values()]
    return sum(sizes) + max(sizes, default=0)


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


class LayerTracker:
    """Which layer a traced forward was in when it failed: a native model's own error (an
    input too small for a conv) becomes one line naming the layer path and class."""

    def __init__(self):
        self.entered: list[tuple[str, Any]] = []
        self.done: set[str] = set()

    def enter(self, path: str, layer: Any) -> None:
        self.entered.append((path, layer))

    def leave(self, path: str) -> None:
        self.done.add(path)

    def error(self, err: BaseException) -> ValueError:
        """The innermost layer entered and not left, named, with the error's first line."""
        path, layer = next(
            ((p, m) for p, m in reversed(self.entered) if p not in self.done), ("", None)
        )
        what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return ValueError(f"layer {path or '<root>'} ({type(layer).__name__}): {what}")


class Backend(ABC):
    """A framework adapter. Subclasses implement the abstract primitives only."""

    name: str = ""

    @abstractmethod
    def owns(self, module: Any) -> bool:
        """Whether ``module`` is a module (or tensor) of this framework."""

    # ---- devices and tensors ------------------------------------------------------------
    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this framework sees: ``"cpu"`` and ``"gpu"`` where available."""

    def check_device(self, device: str) -> None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu'; got {device!r}")
        if device not in self.devices():
            raise RuntimeError(f"{self.name} sees no {device!r} device (it sees {self.devices()})")

    @abstractmethod
    def from_numpy(self, array: np.ndarray, device: str = "cpu") -> Any:
        """A native tensor holding ``array`` (already in native layout)."""

    @abstractmethod
    def to_numpy(self, tensor: Any) -> np.ndarray:
        """A numpy copy of a native tensor (native layout)."""

    def view_numpy(self, tensor: Any) -> np.ndarray:
        """Numpy over the tensor's own memory where the framework allows it (CPU), else a copy:
        for reads that are consumed at once, such as a transfer."""
        return self.to_numpy(tensor)

    # ---- layouts ------------------------------------------------------------------------
    lowerings: Registry  # this framework's lowering per layer kind (backends/<name>/lowerings.py)

    def layout(self, role: str, ndim: int) -> tuple[int, ...] | None:
        """Axis permutation from the neutral layout of fan role ``role`` to this framework's
        (None: the same), as the lowerings' parameter maps lay parameters out by default."""
        return self.lowerings.layout(role, ndim)

    def param_map(self, spec: Layer) -> ParamMap:
        """Where each neutral parameter of layer ``spec`` lives in this framework's module."""
        return self.lowerings.param_map(spec)

    def to_native(self, array: np.ndarray, role: str) -> np.ndarray:
        perm = self.layout(role, array.ndim)
        return array if perm is None else np.ascontiguousarray(array.transpose(perm))

    def to_neutral(self, array: np.ndarray, role: str) -> np.ndarray:
        perm = self.layout(role, array.ndim)
        return array if perm is None else np.ascontiguousarray(array.transpose(inverse(perm)))

    def native_shape(self, shape: tuple[int, ...], role: str) -> tuple[int, ...]:
        perm = self.layout(role, len(shape))
        return tuple(shape) if perm is None else tuple(shape[i] for i in perm)

    # ---- sampling -----------------------------------------------------------------------
    @abstractmethod
    def draw(self, dist: Distribution, shape: tuple[int, ...], seed: int, device: str) -> Any:
        """Sample a Normal/Uniform/TruncNormal law with this framework's own RNG, seeded."""

    in_place: bool = False  # draw() and fill() can write into an existing tensor

    def fill(self, out: Any, value: float) -> Any:
        raise NotImplementedError

    def full(self, shape: tuple[int, ...], value: float, device: str) -> Any:
        return self.from_numpy(np.full(shape, value, dtype=np.float32), device)

    def sample(
        self,
        dist: Distribution,
        shape: tuple[int, ...],
        role: str,
        *,
        seed: int = 0,
        path: str = "",
        device: str = "cpu",
        rng: str = "native",
        out: Any = None,
    ) -> Any:
        """A native tensor (native layout) drawn from ``dist`` for a parameter of neutral shape.

        ``out``: an existing native tensor of the native shape that adapters able to draw in
        place (``in_place``) fill directly, saving a temporary and a copy.

        ``rng="native"`` draws with the framework's generator seeded from ``(seed, path)``;
        ``rng="xinit"`` computes the values with xinit's keyed generator, identical everywhere.
        """
        check_rng(rng)
        shape = tuple(int(s) for s in shape)
        if isinstance(dist, ConstantDist):
            if out is not None and self.in_place:
                return self.fill(out, dist.value)
            return self.full(self.native_shape(shape, role), dist.value, device)
        if isinstance(dist, (DiracDist, EyeDist)):
            return self.from_numpy(self.to_native(construct(dist, shape), role), device)
        if isinstance(dist, OrthogonalDist):
            if rng == "xinit":
                draw = keyed_normal_draw(seed, path)
            else:
                s = derive_seed(seed, path)
                std = NormalDist(0.0, 1.0)
                draw = lambda sh: self.to_numpy(self.draw(std, sh, s, "cpu"))  # noqa: E731
            return self.from_numpy(self.to_native(construct(dist, shape, draw), role), device)
        native_shape = self.native_shape(shape, role)
        if rng == "xinit":  # the whole tensor as one box: a transposed layout in bands
            values = box_values(
                dist,
                shape,
                self.layout(role, len(shape)),
                (0,) * len(shape),
                native_shape,
                seed=seed,
                path=path,
                rng=rng,
                where="one device",
                out=self.host_array(native_shape),
            )
            return self.from_numpy(values, device)
        if out is not None and self.in_place:
            return self.draw(dist, native_shape, derive_seed(seed, path), device, out=out)
        return self.draw(dist, native_shape, derive_seed(seed, path), device)

    def host_array(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A float32 host array that :meth:`from_numpy` takes without a copy, or None."""
        return None

    def sample_later(self, dist, shape, role, **kw) -> Callable[[], Any]:
        """Start what :meth:`sample` (same arguments, no ``out``) computes and return a
        function giving its result. Adapters whose framework computes asynchronously (JAX)
        launch the work now so that it overlaps building; by default it runs when called."""
        return lambda: self.sample(dist, shape, role, **kw)

    def sample_neutral(self, dist, shape, role, **kw) -> np.ndarray:
        """Like :meth:`sample`, returned as numpy in neutral layout."""
        return self.to_neutral(self.to_numpy(self.sample(dist, shape, role, **kw)), role)

    # ---- building -----------------------------------------------------------------------
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
    children_attr = ""  # the native attribute holding a module's named children

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

    def child(self, module: Any, name: str) -> Any:
        """The named direct child of a native container."""
        try:
            return getattr(module, self.children_attr)[name]
        except (KeyError, AttributeError):
            raise KeyError(f"{type(module).__name__} has no child {name!r}") from None

    tensor_types: tuple[type, ...] = ()  # what get_value accepts as a parameter or buffer

    def get_value(self, module: Any, leaf: str) -> Any:
        """The native tensor of leaf ``leaf`` of ``module``; the empty leaf of a learned-
        parameter node, whose native layer is the parameter itself, is that parameter."""
        value = getattr(module, leaf, None) if leaf else module
        if not isinstance(value, self.tensor_types):
            raise KeyError(f"{type(module).__name__} has no tensor {leaf!r}")
        return value

    def set_value(self, module: Any, leaf: str, value: Any) -> None:
        """Overwrite the leaf parameter/buffer ``leaf`` of ``module`` with a native tensor of
        the same shape (never reshaped)."""
        target = self.get_value(module, leaf)
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(
                f"{leaf}: shape {tuple(value.shape)} does not match {tuple(target.shape)}"
            )
        self.write(target, value)

    def write(self, target: Any, value: Any) -> None:
        """Copy ``value`` into the native tensor ``target`` in place."""
        raise NotImplementedError

    def write_array(
        self, layer: Any, name: str, array: np.ndarray, device: str | None = None
    ) -> None:
        """Copy numpy ``array`` (native layout, native shape) into native tensor ``name`` of
        ``layer``, on ``device`` (None: where the tensor is). ``array`` may have any strides,
        be read-only and be another module's memory (a transfer's view): adapters copy it
        once, straight into the target, where their framework allows; by default through a
        native tensor."""
        if device is None:
            device = self.tensor_device(self.tensor(layer, name))
        self.assign_leaf(layer, name, self.tensor_of(array, device))

    def reshape(self, tensor: Any, shape: tuple[int, ...]) -> Any:
        return tensor.reshape(shape)

    def tensor_of(self, array: np.ndarray, device: str = "cpu") -> Any:
        """A native tensor of exactly ``array``'s shape (0-d stays 0-d)."""
        tensor = self.from_numpy(contiguous(array), device)
        if tuple(tensor.shape) != tuple(array.shape):
            tensor = self.reshape(tensor, tuple(array.shape))
        return tensor

    def submodule(self, module: Any, path: str) -> Any:
        for part in path.split(".") if path else ():
            module = self.child(module, part)
        return module

    def tensor(self, layer: Any, name: str) -> Any:
        """The native tensor ``name`` (a parameter map's leaf name, maybe dotted) of ``layer``."""
        owner, _, leaf = name.rpartition(".")
        return self.get_value(self.submodule(layer, owner), leaf)

    def assign_leaf(self, layer: Any, name: str, value: Any) -> None:
        """Overwrite the native tensor ``name`` of ``layer`` with ``value`` (same shape)."""
        owner, _, leaf = name.rpartition(".")
        self.set_value(self.submodule(layer, owner), leaf, value)

    def native_layers(self, module: Any, spec) -> Iterator[tuple[str, Any, Layer]]:
        """``(path, native layer module, layer spec)`` for every layer of ``spec``, walking the
        native tree once, parents before children."""

        def visit(node, native, path):
            if isinstance(node, Layer):
                yield path, native, node
                return
            for name, child in children(node):
                yield from visit(child, self.child(native, name), join(path, name))

        yield from visit(spec, module, "")

    def read_param(
        self, layer: Any, leaves: tuple[Leaf, ...], shape: tuple[int, ...], *, view: bool = False
    ) -> np.ndarray:
        """A neutral parameter of ``layer`` as numpy in the neutral layout, from its native
        leaves. ``view=True`` may return a view of the module's memory (a transfer's read)."""
        read = self.view_numpy if view else self.to_numpy
        natives = {leaf.name: read(self.tensor(layer, leaf.name)) for leaf in leaves}
        return parammap.to_neutral(natives, leaves, shape)

    def write_param(
        self, layer: Any, leaves: tuple[Leaf, ...], array: np.ndarray, device: str | None = None
    ) -> None:
        """Write neutral numpy ``array`` into its native leaves of ``layer`` (on ``device``;
        None: where each leaf is)."""
        packed: dict[str, np.ndarray] = {}
        for leaf in leaves:
            value = parammap.piece(array, leaf)  # a view where numpy can: copied once below
            if leaf.into is None:
                self.write_array(layer, leaf.name, value, device)
                continue
            if leaf.name not in packed:
                packed[leaf.name] = self.to_numpy(self.tensor(layer, leaf.name))
            parammap.pack(packed, leaf.name, leaf, value)
        for name, value in packed.items():
            self.write_array(layer, name, value, device)

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

    # ---- running ------------------------------------------------------------------------
    @abstractmethod
    def trace(self, module: Any, x: np.ndarray) -> dict[str, np.ndarray]:
        """Eval-mode forward recording every submodule's output (dotted path -> channel-first
        numpy; "" is the whole model). A module applied twice reports its last call."""

    def float64(self, module: Any):
        """A context in which ``module`` computes in float64 (its float32 parameters and
        buffers cast, restored exactly on exit): the reference run that measures float32
        rounding for :func:`xinit.parity`."""
        raise NotImplementedError(f"{self.name}: no float64 run")

    def trace_shapes(self, module: Any, x: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Like :meth:`trace`, the channel-first output shape of every submodule only. An
        adapter whose framework can infer shapes without computing (Flax) does so."""
        return {path: tuple(v.shape) for path, v in self.trace(module, x).items()}

    @abstractmethod
    def forward(self, module: Any, x: np.ndarray, train: bool) -> np.ndarray:
        """A gradient-free forward of channel-first numpy ``x`` in training or eval mode,
        leaving the module in the mode it was in; channel-first numpy out."""

    def run(self, module: Any, x: np.ndarray, device: str | None = None) -> np.ndarray:
        """Eval-mode, gradient-free forward of channel-first numpy ``x``; channel-first out."""
        return self.forward(module, x, train=False)

    def run_train(self, module: Any, x: np.ndarray) -> np.ndarray:
        """One training-mode forward without gradients (BatchNorm uses the batch statistics
        and updates its running ones); the module's mode is restored."""
        return self.forward(module, x, train=True)

    # ---- native models (xinit.apply): any module, xinit-built or not -------------------------
    def native_kind(self, module: Any) -> str:
        """The neutral kind of a native layer object ("" when no lowering claims its class)."""
        return self.lowerings.kind_of(module)

    def neutral_leaf(self, kind: str, native: str) -> str:
        """The neutral name of native leaf ``native`` of a ``kind`` layer (kernel -> weight)."""
        return self.lowerings[kind].neutral_leaf(native) if kind in self.lowerings else native

    # ---- sharded parameters (docs/scale.md) --------------------------------------------
    def sharded_leaf(self, layer: Any, name: str) -> Any | None:
        """The native parameter ``name`` of ``layer`` when it is sharded, else None."""
        return None

    def sharded_native(self, holder: Any) -> Any | None:
        """``holder`` (a native parameter) when it is sharded, else None."""
        return None

    def fill_shards(self, holder, dist, shape, perm, *, seed: int, path: str, rng: str) -> None:
        """Fill each local shard of sharded ``holder`` with its block of the single-device
        init of neutral ``shape`` (``perm``: neutral -> native axes)."""
        raise NotImplementedError(f"the {self.name} adapter cannot fill sharded parameters")

    def named_layers(self, module: Any) -> Iterator[tuple[str, Any]]:
        """``(dotted path, submodule)`` for ``module`` ("") and every submodule once, parents
        before children, in registration order."""
        raise NotImplementedError(f"the {self.name} adapter cannot walk native modules")

    def check_layer(self, path: str, layer: Any) -> None:
        """Raise TypeError, naming the parameter, when ``layer``'s own parameters cannot be read
        (torch: on the meta device, or lazy and uninitialised). By default all can."""
        return None

    def own_parameters(self, layer: Any) -> list[str]:
        """Names of the parameters and buffers ``layer`` holds itself (not its children's)."""
        raise NotImplementedError(f"the {self.name} adapter cannot walk native modules")

    def native_params(self, module: Any):
        """Every parameter of ``module`` once, as :class:`NativeParam` (registration order)."""
        raise NotImplementedError(f"the {self.name} adapter cannot enumerate native parameters")

    def assign(self, holder: Any, value: Any) -> None:
        """Overwrite native parameter ``holder`` with native tensor ``value`` (same numel)."""
        raise NotImplementedError(f"the {self.name} adapter cannot write native parameters")

    def tensor_device(self, tensor: Any) -> str:
        """``"cpu"`` or ``"gpu"``: where native tensor ``tensor`` lives."""
        return "cpu"

    def holder_device(self, holder: Any) -> str:
        """``"cpu"`` or ``"gpu"``: where native parameter ``holder`` lives."""
        return self.tensor_device(holder)

    def native_param(
        self,
        layer: str,
        kind: str,
        leaf: str,
        native_leaf: str,
        holder: Any,
        native_shape: tuple[int, ...],
        module_type: str,
        perm: tuple[int, ...] | None = None,
    ) -> NativeParam:
        """Describe one native parameter in neutral terms.

        ``perm`` is the neutral -> native axis permutation; by default the adapter's
        :meth:`layout` of the parameter's role for a known ``kind``, and none (the tensor as
        stored) for a layer class xinit does not know.
        """
        native_shape = tuple(int(d) for d in native_shape)
        ndim = len(native_shape)
        role = native_role(kind, leaf, ndim)
        if perm is None and kind:
            perm = self.layout(role, ndim)
        shape = tuple(native_shape[i] for i in inverse(perm)) if perm else native_shape
        if role == "vector" and ndim != 1:  # multi-dim norm scales, 0-d or >5-d tensors
            shape = (int(np.prod(native_shape, dtype=np.int64)),)
        return NativeParam(
            path=f"{layer}.{leaf}" if layer else leaf,
            native=f"{layer}.{native_leaf}" if layer else native_leaf,
            layer=layer,
            kind=kind,
            leaf=leaf,
            role=role,
            shape=shape,
            native_shape=native_shape,
            perm=tuple(perm) if perm else None,
            module_type=module_type,
            holder=holder,
        )

    def read_neutral(self, param: NativeParam) -> np.ndarray:
        """The current value of a native parameter as numpy in the neutral layout and shape."""
        value = self.to_numpy(param.holder).reshape(param.native_shape)
        if param.perm is not None:
            value = np.ascontiguousarray(value.transpose(inverse(param.perm)))
        return value.reshape(param.shape)

    def sample_into(
        self, param: NativeParam, dist: Distribution, *, seed: int = 0, rng: str = "native"
    ) -> None:
        """Draw ``dist`` for ``param`` (seeded by its neutral path) and write it in place."""
        holder = self.sharded_native(param.holder)
        if holder is not None:
            perm = param.perm
            expected = tuple(param.shape[i] for i in perm) if perm else tuple(param.shape)
            if expected != tuple(param.native_shape):
                raise ShardingError(
                    f"{param.path}: sharded tensor of shape {param.native_shape} is read as "
                    f"{param.shape}: a reshaped parameter cannot be filled shard by shard"
                )
            return self.fill_shards(
                holder, dist, param.shape, perm, seed=seed, path=param.path, rng=rng
            )
        device = self.holder_device(param.holder)
        nd = len(param.shape)
        if param.perm == self.layout(param.role, nd):  # the role's layout: what build() draws
            same = self.in_place and tuple(param.holder.shape) == tuple(param.native_shape)
            target = param.holder if same else None
            value = self.sample(
                dist,
                param.shape,
                param.role,
                seed=seed,
                path=param.path,
                device=device,
                rng=rng,
                out=target,
            )
            if value is target:
                return
        else:  # a layout the role does not imply (unknown class, transposed kernels)
            neutral = self.sample_neutral(
                dist, param.shape, param.role, seed=seed, path=param.path, rng=rng
            )
            if param.perm is not None:
                neutral = np.ascontiguousarray(neutral.transpose(param.perm))
            value = self.from_numpy(neutral, device)
        self.assign(param.holder, value)

    # ---- diagnostics (xinit.diagnose, xinit.lsuv) ----------------------------------------
    def signal_pass(self, module: Any, x: np.ndarray, *, train: bool = True) -> SignalPass:
        """One forward of channel-first ``x`` recording the channel moments of every
        submodule's output (each call), then one backward pass of ``sum(y**2)`` (``y`` the
        model's output) recording those of each output's gradient and the std of each
        parameter's gradient. The module's mode and its running statistics are left as they
        were, and no ``.grad`` is written."""
        raise NotImplementedError(f"the {self.name} adapter cannot run a diagnostic pass")

    def scale_param(self, param: NativeParam, factor: float) -> None:
        """Multiply native parameter ``param`` by ``factor`` in place (layout-independent)."""
        self.assign(
            param.holder,
            self.from_numpy(
                self.to_numpy(param.holder) * np.float32(factor), self.holder_device(param.holder)
            ),
        )


@dataclass(frozen=True)
class SignalPass:
    """What :meth:`Backend.signal_pass` measured, in neutral terms.

    Moments are ``(channel means, channel variances)`` over every axis but the neutral
    channel axis 1 (population variance), one pair per call of the submodule, in call
    order; paths are the native module's dotted submodule paths ("" is the whole model).
    """

    outputs: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    output_grads: dict[str, list[tuple[np.ndarray, np.ndarray] | None]]  # None: no gradient
    param_grads: dict[str, float]  # neutral parameter path -> std of its gradient
    kinds: dict[str, str]  # submodule path -> neutral kind ("" when unknown)
    loss: float


class OutputRecorder:
    """Per-path output moments, and output-gradient moments, for :meth:`Backend.signal_pass`
    with forward hooks. A tensor seen before (a container's output is its last child's, a
    shared ReLU's) is measured once, its gradient too.

    ``moments(tensor)`` gives (channel means, channel variances); ``watch(tensor, fn)``
    registers ``fn(grad)`` on a tensor that takes part in the backward pass, returning
    whether it did.
    """

    def __init__(self, moments: Callable, watch: Callable):
        self._moments, self._watch = moments, watch
        self.outputs: dict[str, list] = {}
        self._grads: dict[str, dict[int, tuple]] = {}
        self._seen: dict[int, tuple] = {}  # id -> (tensor kept alive, moments, grad targets)

    def record(self, path: str, out: Any) -> None:
        calls = self.outputs.setdefault(path, [])
        entry = self._seen.get(id(out))
        if entry is None:
            targets: list[tuple[str, int]] = []
            if not self._watch(out, lambda g, targets=targets: self._gradient(targets, g)):
                targets = None
            entry = self._seen[id(out)] = (out, self._moments(out), targets)
        calls.append(entry[1])
        if entry[2] is not None:
            entry[2].append((path, len(calls) - 1))

    def _gradient(self, targets, grad) -> None:
        moments = self._moments(grad)
        for path, call in targets:
            self._grads.setdefault(path, {})[call] = moments

    def output_grads(self) -> dict[str, list]:
        return {k: [v.get(i) for i in range(len(self.outputs[k]))] for k, v in self._grads.items()}


Initial = Callable[[str, tuple[int, ...]], Any]
"""``initial(native leaf name, native shape)``: the leaf's drawn native value, or None."""


class InitialValues:
    """The init plan's values, drawn when a lowering asks for them while it constructs a
    layer, so each parameter is created once with its final value (no zero placeholder
    put on the device and then replaced: a third of a Flax ResNet build).

    Only parameters the framework draws in its own layout (:meth:`Backend.drawn_natively`)
    are offered, each drawn as :meth:`Backend.fill_param` would (:meth:`Backend.sample`,
    started up front by :meth:`Backend.sample_later`), so values are the same; what no
    lowering takes is drawn by ``initialize``.
    """

    def __init__(self, backend: Backend, plan: list[PlanItem], *, seed, device, rng):
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


def native_role(kind: str, leaf: str, ndim: int) -> str:
    """The fan role of a native parameter: the layer's weight role for a known weight, a
    vector for 1-d tensors and norm scales, and for a parameter of a class xinit does not know
    PyTorch's reading of its shape (2-d: linear; 3- to 5-d: conv-like) so fans are torch's."""
    role = kinds.weight_role(kind)
    if leaf == "weight" and role is not None and ndim >= 2:
        return role
    if ndim == 1 or kind:
        return "vector"
    if ndim == 2:
        return "linear"
    return "conv" if 3 <= ndim <= 5 else "vector"


@dataclass(frozen=True)
class NativeParam:
    """One parameter of a native module in neutral terms (see :meth:`Backend.native_param`)."""

    path: str  # neutral dotted path: layer path + neutral leaf name
    native: str  # the framework's own dotted name (flax: ``...kernel``; paddle BN: same)
    layer: str  # dotted path of the owning layer
    kind: str  # neutral kind of the owning layer ("" when unknown)
    leaf: str  # neutral leaf name (weight, bias, ...)
    role: str  # fan role
    shape: tuple[int, ...]  # neutral shape
    native_shape: tuple[int, ...]
    perm: tuple[int, ...] | None  # neutral -> native axis permutation (None: same layout)
    module_type: str  # the owning layer's class name
    holder: Any = field(repr=False, compare=False)  # the native parameter object


# ---- sharded parameters: each rank / device computes only its box of the whole ------------
BAND = 1 << 20  # neutral values computed at a time for a transposed box (4 MB of scratch)
_BANDS = threading.local()


def _band_scratch(n: int) -> np.ndarray:
    """A float32 buffer of at least ``n`` values: up to :data:`BAND` one kept per thread and
    reused (a band freed after every shard would leave holes between the shards in the
    allocator's heap); a longer one (one neutral row above BAND) for this call only."""
    if n > BAND:
        return np.empty(n, np.float32)
    buf = getattr(_BANDS, "buf", None)
    if buf is None:
        buf = _BANDS.buf = np.empty(BAND, np.float32)
    return buf


class ShardingError(ValueError):
    """A sharded parameter xinit cannot fill shard by shard (placement, generator or law)."""


def box_values(
    dist: Distribution,
    shape: tuple[int, ...],
    perm: tuple[int, ...] | None,
    offset: tuple[int, ...],
    size: tuple[int, ...],
    *,
    seed: int,
    path: str,
    rng: str,
    where: str,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The native-layout box ``[offset, offset + size)`` of the parameter at ``path`` (neutral
    ``shape``; ``perm`` neutral -> native axes): exactly that block of the single-process
    init, computed without the rest. ``where`` names the sharding for errors. ``out``: a
    float32 array of shape ``size`` to write into (C-contiguous when ``perm`` is None).

    A transposed box (Flax and Paddle kernels) is computed in bands of at most :data:`BAND`
    neutral values, each written transposed into ``out``: the scratch is one band, never a
    second shard."""
    from xinit.rng import keyed_box

    if rng != "xinit":
        raise ShardingError(
            f"{path}: sharded over {where}: rng={rng!r} would draw each shard with its own "
            "generator, so values would depend on the world size; use rng='xinit'"
        )
    size = tuple(int(n) for n in size)
    if isinstance(dist, ConstantDist):
        if out is None:
            return np.full(size, dist.value, np.float32)
        out[...] = dist.value
        return out
    if isinstance(dist, (DiracDist, EyeDist, OrthogonalDist)):
        raise ShardingError(
            f"{path}: sharded over {where}: {dist.describe()} is constructed from the whole "
            "tensor, which xinit does not build on one rank; initialise it before sharding"
        )
    if perm is None or perm == tuple(range(len(perm))):
        return keyed_box(dist, shape, seed, path, offset, size, out=out)
    out = np.empty(size, np.float32) if out is None else out
    if 0 in size:
        return out
    n_off, n_size = [0] * len(perm), [0] * len(perm)
    for j, axis in enumerate(perm):  # native axis j is neutral axis perm[j]
        n_off[axis], n_size[axis] = int(offset[j]), size[j]
    inner = math.prod(n_size[1:])
    rows = max(1, BAND // inner)  # neutral axis-0 rows per band
    scratch = _band_scratch(min(rows, n_size[0]) * inner)
    lead = [slice(None)] * perm.index(0)  # native axes before the one neutral axis 0 is
    for r0 in range(0, n_size[0], rows):
        r1 = min(r0 + rows, n_size[0])
        band = scratch[: (r1 - r0) * inner].reshape(r1 - r0, *n_size[1:])
        keyed_box(dist, shape, seed, path, (n_off[0] + r0, *n_off[1:]), band.shape, out=band)
        copy_into(out[(*lead, slice(r0, r1))], band.transpose(perm))
    return out

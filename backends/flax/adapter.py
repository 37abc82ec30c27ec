"""Flax NNX adapter: nnx modules in NHWC with HWIO kernels, jax.random sampling."""

from __future__ import annotations

import contextlib
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit.blocks import input_channels
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.parammap import contiguous
from xinit.rng import derive_seed

from ..common.blocked_copy import copy_into
from ..common.diagnostics import SignalPass
from ..common.native_models import OwnTensor
from ..common.protocol import Backend
from ..common.running import array_leaves, as_args, map_arrays, set_mode
from ..common.sharding import box_values
from . import layouts
from .lowerings import REGISTRY
from .modules import (
    _TRACE,
    Graph,
    Residual,
    Steps,
    _channel_first_shape,
    _channel_last_shape,
)

EXACT_MIN = 1 << 20  # parameters this large get a sampler of their own shape


@functools.cache
def _sampler(kind: str, size: int | tuple[int, ...]):
    """A jitted draw of one law (parameters traced; ``size``, a length or a shape, static)."""
    size = size if isinstance(size, tuple) else (size,)

    def normal(key, mu, sigma, _a, _b):
        return jax.random.normal(key, size, jnp.float32) * sigma + mu

    def uniform(key, low, high, _a, _b):
        return jax.random.uniform(key, size, jnp.float32, low, high)

    def truncated_normal(key, mu, sigma, lo, hi):
        return jax.random.truncated_normal(key, lo, hi, size, jnp.float32) * sigma + mu

    return jax.jit(
        {"normal": normal, "uniform": uniform, "truncated_normal": truncated_normal}[kind]
    )


def _in_eval(module) -> bool:
    """Whether ``module`` is in eval mode: its first BatchNorm or Dropout tells."""
    for _, sub in nnx.iter_modules(module):
        for flag in ("use_running_average", "deterministic"):
            value = getattr(sub, flag, None)
            if isinstance(value, bool):
                return value
    return False


ALIGN = 64  # bytes: jax's CPU client adopts host memory aligned so, and copies the rest


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array whose memory ``jax.device_put`` can adopt without a copy
    (``np.empty`` gives 16-byte alignment: half of a ResNet's tensors were copied again)."""
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _items(node) -> list:
    """``(name, value)`` pairs held by a module (attribute-assignment order), a list, a tuple
    or a dict: the edges of an NNX module graph; nothing for any other value."""
    if isinstance(node, nnx.Module):
        return [(k, v) for k, v in vars(node).items() if not k.startswith("_pytree__")]
    if isinstance(node, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return [(str(k), v) for k, v in node.items()]
    return []


def _variable(module, leaf: str):
    """Variable ``leaf`` of ``module``; the empty leaf of a learned-parameter node, whose
    native layer is the ``nnx.Param`` itself, is that variable."""
    if not leaf:
        return module
    return vars(module).get(leaf) if isinstance(module, nnx.Module) else None


def _device(device: str):
    return jax.devices("gpu")[0] if device == "gpu" else jax.devices("cpu")[0]


class FlaxBackend(Backend):
    lowerings = REGISTRY
    steps_cls, residual_cls, graph_cls = Steps, Residual, Graph
    name = "flax"

    def owns(self, module) -> bool:
        return isinstance(module, (nnx.Module, jax.Array))

    def devices(self) -> list[str]:
        try:
            gpu = len(jax.devices("gpu")) > 0
        except RuntimeError:
            gpu = False
        return ["cpu", "gpu"] if gpu else ["cpu"]

    def from_numpy(self, array, device="cpu"):
        # device_put of the numpy array itself: jnp.asarray first would compile a copy per shape
        return jax.device_put(contiguous(array), _device(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return np.asarray(jax.device_get(tensor))

    def host_array(self, shape):
        return _aligned_empty(tuple(shape), np.dtype(np.float32))

    def full(self, shape, value, device):
        return jax.device_put(np.full(shape, value, np.float32), _device(device))

    def draw(self, dist, shape, seed, device):
        return self._launch(dist, shape, seed, device)()

    def _launch(self, dist, shape, seed, device):
        """Start drawing (JAX computes asynchronously) and return a function that finishes
        the draw: the native array of ``shape``."""
        self.check_device(device)
        key = jax.random.key(seed)
        shape = tuple(int(s) for s in shape)
        n = math.prod(shape)
        if isinstance(dist, NormalDist):
            kind, args = "normal", (dist.mu, dist.sigma, 0.0, 0.0)
        elif isinstance(dist, UniformDist):
            kind, args = "uniform", (dist.low, dist.high, 0.0, 0.0)
        elif isinstance(dist, TruncNormalDist):
            lo, hi = (dist.low - dist.mu) / dist.sigma, (dist.high - dist.mu) / dist.sigma
            kind, args = "truncated_normal", (dist.mu, dist.sigma, lo, hi)
        else:
            raise TypeError(f"flax cannot draw {dist!r}")
        params = tuple(np.float32(a) for a in args)
        target = _device(device)
        with jax.default_device(target):
            if n >= EXACT_MIN:  # few such shapes: compile for it, no waste and no host copy
                value = _sampler(kind, shape)(key, *params)
                return lambda: value
            # Smaller ones share one compiled sampler per (law, bucketed size): XLA compiles
            # cost ~1 s each here, and a ResNet has dozens of distinct parameter shapes.
            step = max(1024, 1 << max((n - 1).bit_length() - 3, 0))  # 8 sizes per octave
            bucket = -(-n // step) * step  # at most 12.5% more values drawn than needed
            flat = _sampler(kind, bucket)(key, *params)
        if device == "cpu":  # the host view itself: device_put adopts it, no copy
            return lambda: jax.device_put(np.asarray(flat)[:n].reshape(shape), target)
        return lambda: flat[:n].reshape(shape)

    def sample_later(self, dist, shape, role, *, seed=0, path="", device="cpu", rng="native"):
        """Framework-drawn laws are launched now: building the modules overlaps the draws
        (as Flax's own initialisers overlap), instead of waiting for each in turn."""
        if rng != "native" or not isinstance(dist, (NormalDist, UniformDist, TruncNormalDist)):
            return super().sample_later(
                dist, shape, role, seed=seed, path=path, device=device, rng=rng
            )
        native = self.native_shape(tuple(int(s) for s in shape), role)
        return self._launch(dist, native, derive_seed(seed, path), device)

    # ---- building -----------------------------------------------------------------------
    builds_with_values = True  # each nnx.Param is created once, with its drawn value

    def make_layer(self, spec, device, initial=None):
        with jax.default_device(_device(device)):
            module = super().make_layer(spec, device, initial)
        layout = self.lowerings[spec.kind].layout_for(spec)
        if isinstance(module, nnx.Variable):  # a learned-parameter node: tagged in its metadata
            held = layouts.physical(layout)
            module.set_metadata(_xinit_needs=held, _xinit_gives=held)
            return module
        return layouts.mark(module, layout)

    def make_sequential(self, children, steps):
        return self.steps_cls(children, steps)

    def child(self, module, name):
        """A submodule, or the ``nnx.Param`` of a learned-parameter node (its native layer)."""
        value = vars(module).get(name)
        node = isinstance(value, nnx.Variable) and hasattr(value, "xinit_op")
        if not (isinstance(value, nnx.Module) or node):
            raise KeyError(f"{type(module).__name__} has no child {name!r}")
        return value

    def get_value(self, module, leaf):
        value = _variable(module, leaf)
        if not isinstance(value, nnx.Variable):
            raise KeyError(f"{type(module).__name__} has no variable {leaf!r}")
        return value.get_value()

    def set_value(self, module, leaf, value):
        var = _variable(module, leaf)
        if not isinstance(var, nnx.Variable):
            raise KeyError(f"{type(module).__name__} has no variable {leaf!r}")
        if tuple(var.get_value().shape) != tuple(value.shape):
            raise ValueError(
                f"{leaf}: shape {tuple(value.shape)} does not match {tuple(var.get_value().shape)}"
            )
        var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))

    def write_array(self, layer, name, array, device=None):
        """A fresh host array filled in one (blocked) copy, then put on the device. On CPU
        ``device_put`` takes a numpy array's memory without copying: handing it ``array``
        itself would let the Flax model alias another module's (or the caller's) memory."""
        owner, _, leaf = name.rpartition(".")
        var = _variable(self.submodule(layer, owner), leaf)
        if not isinstance(var, nnx.Variable):
            raise KeyError(f"{type(layer).__name__} has no variable {name!r}")
        old = var.get_value()
        if tuple(old.shape) != array.shape:
            raise ValueError(f"{leaf}: shape {array.shape} does not match {tuple(old.shape)}")
        out = _aligned_empty(array.shape, np.dtype(old.dtype))
        copy_into(out, array)
        device = device or self.tensor_device(old)
        var.set_value(jax.device_put(out, _device(device)))

    def attach_spec(self, module, spec):
        module._xinit_spec = spec
        module._xinit_in_channels = input_channels(spec)  # checks direct calls (NHWC)

    @contextlib.contextmanager
    def float64(self, module):
        state = jax.tree.map(lambda a: a, nnx.state(module))  # a snapshot of the arrays
        wide = jax.tree.map(
            lambda a: np.asarray(a, np.float64) if getattr(a, "dtype", None) == np.float32 else a,
            state,
        )
        with jax.enable_x64(True):
            nnx.update(module, wide)
            try:
                yield module
            finally:
                nnx.update(module, state)

    def trace(self, module, x):
        if getattr(module, "_xinit_spec", None) is None:
            return self._trace_native(module, x)
        paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_modules(module)}
        _TRACE.append({})
        try:
            out = self.run(module, x)
        finally:
            seen = _TRACE.pop()
        result = {
            paths[k]: np.asarray(layouts.to_neutral(v, held))
            for k, (v, held) in seen.items()
            if k in paths
        }
        if isinstance(out, np.ndarray):  # a graph's tuple or dict: its nodes are recorded
            result[""] = out
        return result

    def _trace_native(self, module, x):
        """A model xinit did not build: every submodule's last output through Flax's own
        ``nnx.capture`` of method outputs (``__call__``), channel-first."""
        was_eval = _in_eval(module)
        set_mode(module, False)
        try:
            capture = nnx.capture(module, nnx.Intermediate, method_outputs=nnx.Intermediate)
            first, held = self._native_layouts(module)
            y, captured = capture(layouts.from_neutral(jnp.asarray(x), first))
        finally:
            set_mode(module, not was_eval)
        result = {}
        for key, var in nnx.to_flat_state(captured):
            if key[-1] != "__call__":
                continue
            value = var.get_value()
            value = value[-1] if isinstance(value, (tuple, list)) else value  # the last call
            path = ".".join(map(str, key[:-1]))
            result[path] = np.asarray(layouts.to_neutral(_first(value), held.get(path) or first))
        result[""] = np.asarray(layouts.to_neutral(_first(y), held.get("") or first))
        return result

    def _native_layouts(self, module) -> tuple[str, dict[str, str | None]]:
        """How a model xinit did not build holds each submodule's output: the layout of its
        layer kind (a convolution's image channel-last, a Dense's or an attention's sequence
        as it is); an element-wise or unknown module, the last known layout before it in
        assignment order; a module holding others, its last layer's. Also the layout the
        model takes (its first layer's; channel-last when none says)."""
        held: dict[str, str | None] = {}
        cur = None
        for path, m in self.named_layers(module):
            kind = self.native_kind(m)
            if kind:
                cur = layouts.physical(self.lowerings[kind].layout) or cur
            held[path] = cur
        first = next((lay for lay in held.values() if lay), layouts.CHANNELS)
        for path in sorted(held, key=len, reverse=True):  # a container: its last descendant's
            inner = [p for p in held if p.startswith(path + ".") or (path == "" and p)]
            if inner and held[inner[-1]]:
                held[path] = held[inner[-1]]
        return first, held

    def trace_shapes(self, module, x):
        """Every submodule's output shape by JAX's abstract evaluation: nothing is compiled."""
        paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_modules(module)}
        (first,) = layouts.root_inputs(module, 1)
        shape = np.shape(x) if first == layouts.NEUTRAL else _channel_last_shape(np.shape(x))
        x = jax.ShapeDtypeStruct(shape, np.asarray(x).dtype)
        held: dict = {}

        def forward(x):
            _TRACE.append({})
            try:
                y = module(x)
            finally:
                seen = _TRACE.pop()
            held.update({k: lay for k, (_, lay) in seen.items()})
            return y, {k: v for k, (v, _) in seen.items() if k in paths}

        was_eval = _in_eval(module)
        module.eval()
        try:
            y, seen = jax.eval_shape(forward, x)
        finally:
            if not was_eval:
                module.train()

        def neutral(shape, layout):
            return (
                tuple(int(n) for n in shape)
                if layout == layouts.NEUTRAL
                else (_channel_first_shape(shape))
            )

        result = {paths[k]: neutral(v.shape, held.get(k)) for k, v in seen.items()}
        if hasattr(y, "shape"):  # a graph's tuple or dict: its nodes are recorded
            result[""] = neutral(y.shape, layouts.gives(module, first))
        return result

    def forward(self, module, x, train):
        was_eval = _in_eval(module)
        set_mode(module, train)
        try:
            args = as_args(x)
            held = layouts.root_inputs(module, len(args))
            y = module(*[layouts.from_neutral(jnp.asarray(a), h) for a, h in zip(args, held)])
        finally:
            set_mode(module, not was_eval)
        y = layouts.root_outputs(module, y, held[0])
        return map_arrays(np.asarray, y)

    # ---- native models (xinit.apply) ----------------------------------------------------
    def named_layers(self, module):
        """Modules in attribute-assignment order, through lists, tuples and dicts
        (``nnx.Sequential``'s ``layers.0``), each once."""
        seen: set[int] = set()

        def visit(node, path):
            if isinstance(node, nnx.Module):
                if id(node) in seen:
                    return
                seen.add(id(node))
                yield ".".join(path), node
            for name, value in _items(node):
                if isinstance(value, (nnx.Module, list, tuple, dict)):
                    yield from visit(value, [*path, name])

        yield from visit(module, [])

    def native_kind(self, module):
        """As the lowerings claim classes, except ``nnx.LinearGeneral`` with batch axes: one
        kernel per batch index is no linear layer, so its tensors are read as stored."""
        if isinstance(module, nnx.LinearGeneral) and module.batch_axis:
            return ""
        return super().native_kind(module)

    def own_state(self, layer):
        """``nnx.Param`` (trainable) and ``nnx.BatchStat`` variables; caches, RNG state and
        intermediates are not state."""
        out = []
        for name, var in vars(layer).items():
            if isinstance(var, (nnx.Param, nnx.BatchStat)):
                value = var.get_value()
                shape = tuple(int(d) for d in value.shape)
                trainable = isinstance(var, nnx.Param)
                out.append(OwnTensor(name, shape, np.dtype(value.dtype).name, trainable))
        return out

    def native_params(self, module):
        """Every ``nnx.Param`` once, in attribute-assignment order (batch stats excluded).
        Leaf names become neutral (kernel/scale/embedding -> weight) on known layers, and
        kernels are read through the layer's layout (HWIO -> OIHW)."""
        seen: set[int] = set()

        def visit(node, path: list[str], owner, kind: str):
            if isinstance(node, nnx.Module):
                if id(node) in seen:
                    return
                seen.add(id(node))
                owner, kind = node, self.native_kind(node)
            for name, value in _items(node):
                if isinstance(value, nnx.Param):
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                    leaf = self.neutral_leaf(kind, name) if kind and owner is node else name
                    shape = tuple(value.get_value().shape)
                    perm = None
                    flipped = isinstance(node, nnx.ConvTranspose) and node.transpose_kernel
                    if flipped and name == "kernel":  # (*k, out, in)
                        perm = (*range(2, len(shape)), 1, 0)
                    yield self.native_param(
                        ".".join(path),
                        kind if owner is node else "",
                        leaf,
                        name,
                        value,
                        shape,
                        type(owner).__name__,
                        perm,
                    )
                elif isinstance(value, (nnx.Module, list, tuple, dict)):
                    yield from visit(value, [*path, name], owner, kind)

        yield from visit(module, [], module, self.native_kind(module))

    def assign(self, holder, value):
        old = holder.get_value()
        holder.set_value(jnp.asarray(value, dtype=old.dtype).reshape(old.shape))

    def tensor_device(self, tensor):
        devices = tensor.devices() if hasattr(tensor, "devices") else ()
        return "gpu" if {d.platform for d in devices} & {"gpu", "cuda", "rocm"} else "cpu"

    def holder_device(self, holder):
        return self.tensor_device(holder.get_value())

    # ---- diagnostics (xinit.diagnose) ---------------------------------------------------
    def signal_pass(self, module, x, *, train=True):
        """The containers' recorder (``_record``) adds a zero probe to each call's output;
        the gradient with respect to the probe is that output's gradient. A first abstract
        pass (nothing computed) finds the probes' shapes."""
        kinds = {".".join(map(str, p)): self.native_kind(m) for p, m in nnx.iter_modules(module)}
        params = list(self.native_params(module))
        native_paths = [p.native for p in params]
        (first,) = layouts.root_inputs(module, 1)
        xl = layouts.from_neutral(jnp.asarray(np.ascontiguousarray(x)), first)
        recorders = []

        def loss_fn(model, probes):
            paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_modules(model)}
            recorder = _Recorder(paths, probes)
            recorders.append(recorder)
            _TRACE.append(recorder)
            try:
                y = model(xl)
            finally:
                _TRACE.pop()
            loss = sum(jnp.sum(jnp.square(t.astype(jnp.float32))) for t in array_leaves(y))
            return loss, (y, recorder.moments)

        was_eval = _in_eval(module)
        saved = nnx.state(module, nnx.BatchStat)
        try:
            module.eval()  # shapes only (no batch statistics to update while abstract)
            graphdef, state = nnx.split(module)
            jax.eval_shape(lambda s: loss_fn(nnx.merge(graphdef, s), None), state)
            shapes = recorders[0].shapes
            probes = {key: jnp.zeros(shape, jnp.float32) for key, shape in shapes.items()}
            set_mode(module, train)
            grad = nnx.value_and_grad(
                loss_fn, argnums=(nnx.DiffState(0, nnx.Param), 1), has_aux=True
            )
            (loss, (y, seen)), (g_values, g_probes) = grad(module, probes)
        finally:
            set_mode(module, not was_eval)
            nnx.update(module, saved)
        flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(g_values)}
        outputs: dict[str, list] = {}
        output_grads: dict[str, list] = {}
        for (path, _call), (mean, var) in seen.items():
            outputs.setdefault(path, []).append((np.asarray(mean), np.asarray(var)))
        for (path, _call), g in g_probes.items():
            output_grads.setdefault(path, []).append(_moments_np(g))
        if hasattr(y, "ndim"):  # a graph's several outputs: their nodes are recorded
            outputs[""] = [_moments_np(y)]
            output_grads[""] = [_moments_np(2 * y.astype(jnp.float32))]
        param_grads = {}
        for p, native in zip(params, native_paths):
            g = flat.get(native)
            g = getattr(g, "get_value", lambda g=g: g)()
            param_grads[p.path] = float(jnp.std(g)) if g is not None else float("nan")
        return SignalPass(outputs, output_grads, param_grads, kinds, float(loss))

    # ---- sharded parameters (NamedSharding on a Mesh) -----------------------------------
    def sharded_leaf(self, layer, name):
        owner, _, leaf = name.rpartition(".")
        var = _variable(self.submodule(layer, owner), leaf)
        return self.sharded_native(var) if isinstance(var, nnx.Variable) else None

    def sharded_native(self, holder):
        return holder if _is_sharded(holder.get_value()) else None

    def fill_shards(self, holder, dist, shape, perm, *, seed, path, rng):
        """Computed shard by shard, keeping the array's sharding (each device's block of the
        single-device init)."""
        _fill_sharded(holder, dist, tuple(shape), perm, seed=seed, path=path, rng=rng)


class _Recorder:
    """A ``_TRACE`` recorder: each call's output plus its probe (when probing), and the
    output's channel moments, keyed by (module path, call index)."""

    def __init__(self, paths: dict[int, str], probes: dict | None):
        self.paths, self.probes = paths, probes
        self.moments: dict[tuple[str, int], tuple] = {}
        self.shapes: dict[tuple[str, int], tuple[int, ...]] = {}
        self.calls: dict[str, int] = {}

    def __call__(self, module, out):
        path = self.paths.get(id(module))
        if path is None:
            return out
        call = self.calls.get(path, 0)
        self.calls[path] = call + 1
        key = (path, call)
        if self.probes is not None:
            out = out + self.probes[key]
        out32 = out.astype(jnp.float32)
        axes = tuple(range(out.ndim - 1))
        mean = out32.mean(axes)
        var = jnp.square(out32 - mean).mean(axes)
        self.moments[key] = (mean, var)
        self.shapes[key] = tuple(out.shape)
        return out


def _moments_np(t) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis, channel-last) mean and population variance, as numpy."""
    t = jnp.asarray(t, jnp.float32)
    t = t.reshape(-1, 1) if t.ndim < 2 else t
    axes = tuple(range(t.ndim - 1))
    mean = t.mean(axes)
    return np.asarray(mean), np.asarray(jnp.square(t - mean).mean(axes))


ADAPTER = FlaxBackend()


def _is_sharded(value) -> bool:
    """Whether a jax array is laid over several devices (a NamedSharding on a Mesh, ...)."""
    sharding = getattr(value, "sharding", None)
    return sharding is not None and len(sharding.device_set) > 1


def _fill_sharded(var, dist, shape, perm, *, seed: int, path: str, rng: str) -> None:
    """Replace ``var``'s value by the keyed init built shard by shard on its own sharding:
    each addressable shard is its box of the single-device values, computed on its own."""
    old = var.get_value()
    sharding, native = old.sharding, tuple(old.shape)
    where = getattr(sharding, "spec", None)
    where = f"{type(sharding).__name__} {where if where is not None else sharding}"

    def shard(index: tuple[slice, ...]) -> np.ndarray:
        bounds = [sl.indices(n) for sl, n in zip(index, native)]
        offset = tuple(a for a, _, _ in bounds)
        size = tuple(max(b - a, 0) for a, b, _ in bounds)
        # aligned float32: the CPU client adopts it, so the shard is the only copy
        out = _aligned_empty(size, np.dtype(np.float32))
        values = box_values(
            dist, shape, perm, offset, size, seed=seed, path=path, rng=rng, where=where, out=out
        )
        return values if old.dtype == np.float32 else values.astype(old.dtype)

    var.set_value(jax.make_array_from_callback(native, sharding, shard))


def _first(out):
    """A module's output as parity compares it: a tuple's (LSTM state, several heads) first,
    as the torch and Paddle adapters take it."""
    return out[0] if isinstance(out, (tuple, list)) else out

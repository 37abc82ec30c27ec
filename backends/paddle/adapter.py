"""PaddlePaddle adapter: paddle.nn layers, Paddle's own samplers under a per-parameter seed."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import paddle

from xinit import kinds
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.parammap import contiguous

from ..common.blocked_copy import copy_into
from ..common.diagnostics import OutputRecorder, SignalPass
from ..common.native_models import OwnTensor
from ..common.protocol import Backend
from ..common.running import LayerTracker, array_leaves, as_args, map_arrays, set_mode
from ..common.sharding import ShardingError, box_values
from .lowerings import REGISTRY, fused_activation
from .modules import Graph, Residual, Steps

nn = paddle.nn

# Paddle's current device and its global generator are process-wide, and Paddle 3.3 draws
# take no generator argument: seeding, drawing and restoring (and making layers, whose own
# default init consumes the generator) happen under this lock, one thread at a time.
_GLOBAL_STATE = threading.RLock()


@contextlib.contextmanager
def _on(device: str):
    with _GLOBAL_STATE:
        previous = paddle.get_device()
        paddle.set_device("gpu:0" if device == "gpu" else "cpu")
        try:
            yield
        finally:
            paddle.set_device(previous)


def _place(device: str):
    return paddle.CUDAPlace(0) if device == "gpu" else paddle.CPUPlace()


@contextlib.contextmanager
def _seeded(seed: int, device: str):
    """Seed Paddle's global generator for one draw, then restore it (it has no generator
    arg); holds :data:`_GLOBAL_STATE` throughout, so concurrent draws cannot interleave."""
    with _GLOBAL_STATE:
        state = paddle.get_rng_state()
        previous = paddle.get_device()
        paddle.set_device("gpu:0" if device == "gpu" else "cpu")
        paddle.seed(seed)
        try:
            yield
        finally:
            paddle.set_device(previous)
            paddle.set_rng_state(state)


def _activation(act: str):
    """A forward post-hook applying Paddle's named activation ``act`` (as its fused layers do)."""
    from paddle.base import dygraph_utils

    def hook(_m, _inp, out):
        return dygraph_utils._append_activation_in_dygraph(out, act=act)

    return hook


def _cast(module, dtype: str) -> None:
    """``module.to(dtype=)`` leaving uninitialised buffers (an RNN's dropout state) alone:
    Paddle's cast fails on them."""
    empty = [
        (layer, name, layer._buffers.pop(name))
        for _, layer in module.named_sublayers(include_self=True)
        for name, b in list(layer._buffers.items())
        if b is not None and not b._is_initialized()
    ]
    try:
        module.to(dtype=dtype)
    finally:
        for layer, name, b in empty:
            layer._buffers[name] = b


class PaddleBackend(Backend):
    lowerings = REGISTRY
    steps_cls, residual_cls, children_attr = Steps, Residual, "_sub_layers"
    graph_cls = Graph
    tensor_types = (paddle.Tensor,)
    name = "paddle"

    def owns(self, module) -> bool:
        return isinstance(module, (paddle.nn.Layer, paddle.Tensor))

    def devices(self) -> list[str]:
        gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        return ["cpu", "gpu"] if gpu else ["cpu"]

    def from_numpy(self, array, device="cpu"):
        return paddle.to_tensor(contiguous(array), place=_place(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.numpy()  # already a copy, detached from the tensor's memory

    def view_numpy(self, tensor) -> np.ndarray:
        if tensor.place.is_cpu_place():
            return np.from_dlpack(tensor.detach())  # zero-copy; .numpy() copies at ~2 GB/s
        return tensor.numpy()

    def draw(self, dist, shape, seed, device):
        self.check_device(device)
        shape = list(shape)
        with _seeded(seed, device):
            if isinstance(dist, NormalDist):
                return paddle.normal(dist.mu, dist.sigma, shape)
            if isinstance(dist, UniformDist):
                return paddle.uniform(shape, "float32", dist.low, dist.high)
            if isinstance(dist, TruncNormalDist):
                init = paddle.nn.initializer.TruncatedNormal(
                    dist.mu, dist.sigma, dist.low, dist.high
                )
                return paddle.create_parameter(shape, "float32", default_initializer=init)
        raise TypeError(f"paddle cannot draw {dist!r}")

    # ---- building -----------------------------------------------------------------------
    def make_layer(self, spec, device, initial=None):
        with _on(device):
            return super().make_layer(spec, device, initial)

    def reshape(self, tensor, shape):
        return tensor.reshape(list(shape))

    def make_sequential(self, children, steps):
        plain = not any(isinstance(c, paddle.Tensor) for c in children.values())
        if plain and len(set(steps)) == len(steps):
            return nn.Sequential(*children.items())
        return self.steps_cls(children, steps)

    def child(self, module, name):
        """A sublayer, or the parameter of a learned-parameter node (the native layer of such
        a node is the parameter itself, added to the container)."""
        found = module._sub_layers.get(name)
        if found is None and name in getattr(module, "_xinit_param_ops", ()):
            found = module._parameters[name]
        if found is None:
            raise KeyError(f"{type(module).__name__} has no child {name!r}")
        return found

    def write(self, target, value):
        target.set_value(value)

    def write_array(self, layer, name, array, device=None):
        """CPU tensors: numpy copies ``array`` into the tensor's memory seen through DLPack
        (one copy; ``to_tensor`` then ``set_value`` made two)."""
        target = self.tensor(layer, name)
        if not target.place.is_cpu_place() or tuple(target.shape) != array.shape:
            return super().write_array(layer, name, array, device)
        try:
            view = np.from_dlpack(target.detach())
        except (BufferError, TypeError, RuntimeError):  # a dtype numpy lacks (bfloat16)
            return super().write_array(layer, name, array, device)
        if not view.flags.writeable:
            return super().write_array(layer, name, array, device)
        copy_into(view, array)

    def trace(self, module, x):
        outputs, handles, fused, where = {}, [], [], LayerTracker()
        for path, sub in [("", module), *module.named_sublayers()]:

            def hook(m, _inp, out, path=path):
                where.leave(path)
                if isinstance(out, tuple) and out and not isinstance(m, Graph):
                    out = out[0]  # LSTM, GRU, MultiHeadAttention: their first output
                if isinstance(out, paddle.Tensor):  # a graph's tuple or dict: nodes report
                    outputs[path] = np.array(out.numpy())

            handles.append(sub.register_forward_pre_hook(lambda m, _i, p=path: where.enter(p, m)))
            handles.append(sub.register_forward_post_hook(hook))
            act = fused_activation(sub)
            if act is not None:  # BatchNorm(act=): recorded before, then applied as Paddle does
                fused.append((sub, act))
                sub._act = None
                handles.append(sub.register_forward_post_hook(_activation(act)))
        try:
            self.run(module, x)
        except (RuntimeError, ValueError) as err:  # a shape the model cannot take: name the layer
            raise where.error(err) from err
        finally:
            for h in handles:
                h.remove()
            for sub, act in fused:
                sub._act = act
        return outputs

    @contextlib.contextmanager
    def float64(self, module):
        floats = [t for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()]
        if any(t.dtype != paddle.float32 for t in floats):  # restored as float32 on exit
            raise NotImplementedError("paddle: float64 run of a model with non-float32 weights")
        _cast(module, "float64")
        try:
            yield module
        finally:
            _cast(module, "float32")  # float32 -> float64 -> float32 is exact

    def forward(self, module, x, train):
        was_training = module.training
        param = next(iter(module.parameters()), None)
        place = param.place if param is not None else paddle.CPUPlace()
        set_mode(module, train)
        try:
            with paddle.no_grad():
                args = [paddle.to_tensor(np.ascontiguousarray(a), place=place) for a in as_args(x)]
                out = module(*args)
        finally:
            set_mode(module, was_training)
        return map_arrays(lambda t: np.array(t.numpy()), out)

    # ---- native models (xinit.apply) ----------------------------------------------------
    def named_layers(self, module):
        yield from module.named_sublayers(include_self=True)

    def own_state(self, layer):
        """Parameters, then the buffers ``state_dict`` keeps (``persistable=False`` ones not)."""
        transient = getattr(layer, "_non_persistable_buffer_names_set", set())
        out = [_own(n, p, True) for n, p in layer.named_parameters(include_sublayers=False)]
        buffers = layer.named_buffers(include_sublayers=False)
        return out + [_own(n, b, False) for n, b in buffers if n not in transient]

    def native_params(self, module):
        """Every parameter once; a BatchNorm's ``_mean``/``_variance`` (running statistics,
        buffers in the neutral view) are left out."""
        seen: set[int] = set()
        for layer, sub in module.named_sublayers(include_self=True):
            kind = self.native_kind(sub)
            buffers = kinds.get(kind).buffers if kind else ()
            for leaf, p in sub.named_parameters(include_sublayers=False):
                if id(p) in seen or self.neutral_leaf(kind, leaf) in buffers:
                    continue
                seen.add(id(p))
                yield self.native_param(layer, kind, leaf, leaf, p, p.shape, type(sub).__name__)

    def assign(self, holder, value):
        value = value.reshape(list(holder.shape))
        if value.dtype != holder.dtype:
            value = value.astype(holder.dtype)
        holder.set_value(value)

    def tensor_device(self, tensor):
        return "gpu" if tensor.place.is_gpu_place() else "cpu"

    # ---- diagnostics (xinit.diagnose) ---------------------------------------------------
    def signal_pass(self, module, x, *, train=True):
        def watch(t, fn):
            if t.stop_gradient:
                return False
            t.register_hook(lambda g: fn(g))  # a None return keeps Paddle's gradient as it is
            return True

        recorder = OutputRecorder(_channel_moments, watch)
        kinds, handles = {}, []

        def on_output(path):
            def hook(_m, _inp, out):
                if isinstance(out, paddle.Tensor):
                    recorder.record(path, out)

            return hook

        for path, sub in module.named_sublayers(include_self=True):
            kinds[path] = self.native_kind(sub)
            handles.append(sub.register_forward_post_hook(on_output(path)))
        params = [p for p in self.native_params(module) if not p.holder.stop_gradient]
        frozen = [p for p in module.parameters() if p.stop_gradient] + list(module.buffers())
        saved = [(t, t.numpy()) for t in frozen]
        was_training = module.training
        place = params[0].holder.place if params else paddle.CPUPlace()
        set_mode(module, train)
        try:
            y = module(paddle.to_tensor(np.ascontiguousarray(x), place=place))
            loss = sum(t.astype("float32").square().sum() for t in array_leaves(y))
            found = paddle.grad(loss, [p.holder for p in params], allow_unused=True)
        finally:
            set_mode(module, was_training)
            for h in handles:
                h.remove()
            for t, value in saved:
                t.set_value(value)
        stds = [_population_std(g) if g is not None else None for g in found]
        return SignalPass(
            outputs=recorder.outputs,
            output_grads=recorder.output_grads(),
            param_grads={
                p.path: s if s is not None else float("nan") for p, s in zip(params, stds)
            },
            kinds=kinds,
            loss=float(loss),
        )

    # ---- sharded parameters (auto-parallel dist tensors: shard_tensor, shard_layer) -------
    def sharded_leaf(self, layer, name):
        return self.sharded_native(self.tensor(layer, name))

    def sharded_native(self, holder):
        return holder if _is_dist(holder) else None

    def fill_shards(self, holder, dist, shape, perm, *, seed, path, rng):
        """A dist tensor gets this rank's local value filled with its box of the
        single-process init."""
        _fill_dist(holder, dist, tuple(shape), perm, seed=seed, path=path, rng=rng)


def _population_std(t) -> float:
    """``t.std(unbiased=False)`` in float32, bit for bit, with ``square`` for Paddle's
    ``pow(x, 2)``: Paddle's CPU pow made the gradients' stds a third of a ResNet's diagnose."""
    t = t.astype("float32")
    centred = t - t.mean()
    n = paddle.to_tensor(float(t.size), dtype="float32")
    return float((centred.square().sum() / n).sqrt())


def _channel_moments(t) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (axis 1) mean and population variance, as float32 numpy."""
    t = t.detach().astype("float64")
    if t.ndim < 2:
        t = t.reshape([-1, 1])
    # One pass in float64 (exact enough for E[x^2] - E[x]^2): about 2x faster than the mean
    # and a second pass over the centred tensor.
    axes, n = [0, *range(2, t.ndim)], int(np.prod(t.shape)) // t.shape[1]
    mean = t.sum(axis=axes) / n
    var = (t.square().sum(axis=axes) / n - mean * mean).clip(min=0)
    return mean.astype("float32").numpy(), var.astype("float32").numpy()


ADAPTER = PaddleBackend()


def _is_dist(tensor) -> bool:
    """Whether ``tensor`` is an auto-parallel dist tensor (``paddle.distributed.shard_tensor``)."""
    is_dist = getattr(tensor, "is_dist", None)
    return isinstance(tensor, paddle.Tensor) and is_dist is not None and bool(is_dist())


def _dist_box(tensor, full, path: str, where: str) -> tuple[list[int], list[int]] | None:
    """This rank's ``(offset, size)`` in dist ``tensor`` of global shape ``full`` (None: the
    rank is not in its mesh).

    Paddle splits a tensor dim over a mesh dim of n processes into chunks of ceil(dim / n)
    (the last ones shorter or empty), as ``balanced_split`` in its checkpoint code and the
    local shapes it allocates; the result is checked against the local value's shape."""
    mesh, placements = tensor.process_mesh, list(tensor.placements)
    shape, nd = [int(n) for n in full], len(full)
    split_by: dict[int, int] = {}  # tensor dim -> the mesh dim it is split over
    for m, placement in enumerate(placements):
        if type(placement) is paddle.distributed.Replicate:
            continue
        d = placement.get_dim() % max(nd, 1) if type(placement) is paddle.distributed.Shard else -1
        # Partial (a pending sum), a co-shard (one tensor dim over several mesh dims: Paddle
        # hands it back as a bare Placement) or a split factor: not a plain block
        if d < 0 or d in split_by or placement.get_split_factor() != 1:
            raise ShardingError(
                f"{path}: placement {placement} on mesh dimension {m} ({where}): xinit computes "
                "Shard(d) (each tensor dimension over one mesh dimension, no split factor) and "
                "Replicate() only"
            )
        split_by[d] = m
    ids = np.asarray(mesh.process_ids).reshape(list(mesh.shape))
    hits = np.argwhere(ids == paddle.distributed.get_rank())
    if not len(hits):
        return None
    offset, size = [0] * nd, list(shape)
    for d, m in split_by.items():
        chunk = -(-shape[d] // int(mesh.shape[m]))
        lo = min(int(hits[0][m]) * chunk, shape[d])
        offset[d], size[d] = lo, min(lo + chunk, shape[d]) - lo
    return offset, size


def _allocate_lazy(tensor, full: list[int], path: str, where: str) -> None:
    """Allocate this rank's part of a dist parameter made under ``paddle.LazyGuard`` (Paddle's
    lazy hook: its own init of the local value). Paddle 3.3.1 then gives an unevenly split
    parameter a wrong global shape (local rows x ranks: 6 and 4 for 5 rows over 2 ranks), so
    an uneven split is refused before anything is allocated."""
    mesh = tensor.process_mesh
    for m, placement in enumerate(tensor.placements):
        if type(placement) is paddle.distributed.Shard and full[placement.get_dim()] % int(
            mesh.shape[m]
        ):
            raise ShardingError(
                f"{path}: made under paddle.LazyGuard and split unevenly ({full} over {where}): "
                "Paddle's lazy init gives such a parameter a wrong global shape; build it "
                "without LazyGuard or split it evenly"
            )
    if getattr(tensor, "_init_func", None) is None:
        raise ShardingError(
            f"{path}: the local value of this dist tensor ({where}) is not allocated"
        )
    tensor.initialize()


def _fill_dist(tensor, dist, shape, perm, *, seed: int, path: str, rng: str) -> None:
    """Fill this rank's local value of dist ``tensor`` with its box of the whole init: on CPU
    float32 written in place through DLPack, otherwise cast and set."""
    mesh = tensor.process_mesh
    where = (
        f"ProcessMesh shape {list(mesh.shape)} ids {list(mesh.process_ids)} with placements "
        f"{list(tensor.placements)}"
    )
    full = [shape[i] for i in perm] if perm else list(shape)
    if list(tensor.shape) != full:
        raise ShardingError(
            f"{path}: dist tensor's global shape {list(tensor.shape)} is not the parameter's {full}"
        )
    box = _dist_box(tensor, full, path, where)
    if box is None:  # this rank holds no part of it
        return
    offset, size = box
    if not tensor._is_initialized():  # made under paddle.LazyGuard: nothing allocated yet
        _allocate_lazy(tensor, full, path, where)
    local = tensor._local_value()
    if list(local.shape) != size:
        raise ShardingError(
            f"{path}: local value {list(local.shape)} is not the {size} its {where} gives"
        )
    view = None
    if local.place.is_cpu_place() and local.dtype == paddle.float32:
        view = np.from_dlpack(local.detach())
        view = view if view.flags.writeable and view.flags.c_contiguous else None
    values = box_values(
        dist, shape, perm, offset, size, seed=seed, path=path, rng=rng, where=where, out=view
    )
    if values is view:
        return
    value = paddle.to_tensor(values, place=local.place)
    local.set_value(value if local.dtype == paddle.float32 else value.astype(local.dtype))


def _own(name: str, tensor, trainable: bool) -> OwnTensor:
    dtype = str(tensor.dtype).rpartition(".")[2]  # paddle.float32 -> float32
    return OwnTensor(name, tuple(int(d) for d in tensor.shape), dtype, trainable)

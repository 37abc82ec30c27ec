"""PyTorch adapter: torch.nn modules, nn.init-style sampling with per-parameter generators."""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict

import numpy as np
import torch

from xinit.blocks import check_channels
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.parammap import contiguous

from ..common.diagnostics import OutputRecorder, SignalPass
from ..common.native_models import OwnTensor
from ..common.protocol import Backend
from ..common.running import LayerTracker, array_leaves, as_args, map_arrays
from ..common.sharding import ShardingError, box_values
from .lowerings import REGISTRY
from .modules import Graph, Residual, Steps


def _dev(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)  # not a DTensor or another subclass


def _same_memory_layout(target: torch.Tensor, array: np.ndarray) -> bool:
    """Whether ``array`` can be copied into CPU tensor ``target`` as one memcpy by numpy:
    both C-contiguous, same dtype. torch's ``copy_`` splits a large copy over its threads,
    which on a busy machine waits for the slowest (a ResNet-50 transfer took 7x longer)."""
    return (
        type(target) in _PLAIN_TENSORS
        and target.device.type == "cpu"
        and array.flags.c_contiguous
        and target.is_contiguous()
        and _NUMPY_OF.get(target.dtype) == array.dtype
        and hasattr(torch.autograd.graph, "increment_version")  # torch >= 2.1
    )


_NUMPY_OF = {
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.float16: np.dtype(np.float16),
    torch.int64: np.dtype(np.int64),
    torch.int32: np.dtype(np.int32),
}


class TorchBackend(Backend):
    lowerings = REGISTRY
    steps_cls, residual_cls, children_attr = Steps, Residual, "_modules"
    graph_cls = Graph
    tensor_types = (torch.Tensor,)
    name = "torch"

    def owns(self, module) -> bool:
        return isinstance(module, (torch.nn.Module, torch.Tensor))

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def from_numpy(self, array, device="cpu"):
        return torch.from_numpy(contiguous(array)).to(_dev(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def full(self, shape, value, device):
        return torch.full(shape, float(value), dtype=torch.float32, device=_dev(device))

    in_place = True

    def fill(self, out, value):
        with torch.no_grad():
            return out.fill_(value)

    def draw(self, dist, shape, seed, device, out=None):
        self.check_device(device)
        dev = _dev(device)
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        if out is None:
            out = torch.empty(shape, dtype=torch.float32, device=dev)
        with torch.no_grad():
            if isinstance(dist, NormalDist):
                return out.normal_(dist.mu, dist.sigma, generator=gen)
            if isinstance(dist, UniformDist):
                return out.uniform_(dist.low, dist.high, generator=gen)
            if isinstance(dist, TruncNormalDist):
                return torch.nn.init.trunc_normal_(
                    out, dist.mu, dist.sigma, dist.low, dist.high, generator=gen
                )
        raise TypeError(f"torch cannot draw {dist!r}")

    # ---- building -----------------------------------------------------------------------
    def build(self, spec, *, device="cpu", **kw):
        """As :meth:`Backend.build`; ``device="meta"`` gives the module's structure alone on
        PyTorch's meta device (nothing allocated or drawn): shard it, ``to_empty`` it, then
        ``xinit.apply(policy, module, rng="xinit")`` gives each rank its block of the init."""
        if device != "meta":
            return super().build(spec, device=device, **kw)
        if getattr(spec, "needs_container", False):
            return super().build(spec, **kw)  # its error
        check_channels(spec)
        module = self._build_node(spec, "cpu", "", {})  # make_layer builds on meta
        self.attach_spec(module, spec)
        return module

    def make_layer(self, spec, device, initial=None):
        # Built on the meta device: no memory and no default init; xinit draws every
        # parameter once in materialize/initialize (half the work of init-then-overwrite).
        with torch.device("meta"):
            return super().make_layer(spec, device, initial)

    def materialize(self, module, layers, device):
        module = module.to_empty(device=_dev(device))  # the layer objects stay the same
        for path, (native, layer) in list(layers.items()):
            if isinstance(native, torch.nn.Parameter):  # a learned-parameter node: replaced
                layers[path] = (module.get_parameter(path), layer)
        with torch.no_grad():
            for _path, (native, layer) in layers.items():
                leaves = self.param_map(layer)
                for ps in layer.params():
                    if not ps.trainable:  # buffers: running stats and counters, from the spec
                        start = layer.buffer_value(ps.name)  # an index the spec computes
                        for leaf in leaves[ps.name]:
                            buffer = self.tensor(native, leaf.name)
                            if start is None:
                                buffer.fill_(ps.init.resolve((1,), "vector").value)
                            else:
                                buffer.copy_(torch.tensor(start))
        return module

    def make_sequential(self, children, steps):
        plain = not any(isinstance(c, torch.nn.Parameter) for c in children.values())
        if plain and len(set(steps)) == len(steps):
            return torch.nn.Sequential(OrderedDict(children))
        return self.steps_cls(children, steps)

    def child(self, module, name):
        """A submodule, or the parameter of a learned-parameter node (the native layer of
        such a node is its ``nn.Parameter``, registered on the container)."""
        found = module._modules.get(name)
        if found is None and name in getattr(module, "_xinit_param_ops", ()):
            found = module._parameters[name]
        if found is None:
            raise KeyError(f"{type(module).__name__} has no child {name!r}")
        return found

    def write(self, target, value):
        with torch.no_grad():
            target.copy_(value)

    def write_array(self, layer, name, array, device=None):
        """One copy from ``array``'s own memory (any strides: a transposed view of another
        module's tensor), so nothing is copied twice: numpy's memcpy where both lie alike
        (:func:`_same_memory_layout`), else one ``copy_``; torch's autograd version counter
        moves as with ``load_state_dict``. Read-only sources (Flax's views) are only read:
        torch's warning about them does not apply."""
        target = self.tensor(layer, name)
        if tuple(target.shape) != array.shape:
            return super().write_array(layer, name, array, device)
        if _same_memory_layout(target, array):
            np.copyto(target.detach().numpy(), array)
            torch.autograd.graph.increment_version(target)  # as copy_ would: autograd sees it
            return
        if array.flags.writeable:
            source = torch.from_numpy(array)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The given NumPy array is not writ")
                source = torch.from_numpy(array)
        with torch.no_grad():
            target.copy_(source)

    def trace(self, module, x):
        from .trace_timm import fused_activation

        outputs, handles, where, fused = {}, [], LayerTracker(), set()
        for path, sub in module.named_modules():

            def hook(m, _inp, out, path=path):
                where.leave(path)
                if isinstance(out, tuple) and out and not isinstance(m, Graph):
                    out = out[0]  # LSTM, GRU, MultiheadAttention: their first output
                if path in fused:  # recorded as its activation began
                    return
                if isinstance(out, torch.Tensor):  # a graph's tuple or dict: its nodes report
                    outputs[path] = out.detach().cpu().numpy().copy()  # in-place ops come after

            handles.append(sub.register_forward_pre_hook(lambda m, _i, p=path: where.enter(p, m)))
            handles.append(sub.register_forward_hook(hook))
            act = fused_activation(sub)
            if act is not None:  # timm's BatchNormAct2d: its output before the act, the norm's
                fused.add(path)
                handles.append(act.register_forward_pre_hook(_record_input(outputs, path)))
        try:
            self.run(module, x)
        except RuntimeError as err:  # a shape the model cannot take: name the layer
            raise where.error(err) from err
        finally:
            for h in handles:
                h.remove()
        return outputs

    @contextlib.contextmanager
    def float64(self, module):
        tensors = [*module.parameters(), *module.buffers()]
        cast = [t for t in tensors if t.dtype == torch.float32]
        for t in cast:
            t.data = t.data.double()
        try:
            yield module
        finally:
            for t in cast:
                t.data = t.data.float()  # float32 -> float64 -> float32 is exact

    def forward(self, module, x, train):
        was_training = module.training
        param = next(module.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        module.train(train)
        try:
            with torch.no_grad():
                args = [torch.from_numpy(np.ascontiguousarray(a)).to(dev) for a in as_args(x)]
                out = module(*args)
        finally:
            module.train(was_training)
        return map_arrays(lambda t: t.detach().cpu().numpy(), out)

    # ---- native models (xinit.apply) ----------------------------------------------------
    def named_layers(self, module):
        yield from module.named_modules()

    def check_layer(self, path, layer):
        for leaf, p in layer.named_parameters(recurse=False):
            where = f"{path}.{leaf}" if path else leaf
            if isinstance(p, torch.nn.parameter.UninitializedParameter):
                raise TypeError(f"{where} is uninitialised (lazy module): run a forward first")
            if p.is_meta:
                raise TypeError(f"{where} is on the meta device: call module.to_empty() first")

    def own_state(self, layer):
        """Parameters, then the buffers ``state_dict`` keeps (``persistent=False`` ones not)."""
        transient = getattr(layer, "_non_persistent_buffers_set", set())
        out = [_own(n, p, True) for n, p in layer.named_parameters(recurse=False)]
        buffers = layer.named_buffers(recurse=False)
        return out + [_own(n, b, False) for n, b in buffers if n not in transient]

    def native_params(self, module):
        """Every ``nn.Parameter`` once (shared ones under their first name); buffers excluded."""
        seen: set[int] = set()
        for layer, sub in module.named_modules():
            self.check_layer(layer, sub)
            kind = self.native_kind(sub)
            for leaf, p in sub.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield self.native_param(layer, kind, leaf, leaf, p, p.shape, type(sub).__name__)

    def assign(self, holder, value):
        with torch.no_grad():
            holder.copy_(value.reshape(holder.shape))

    def tensor_device(self, tensor):
        return "gpu" if tensor.is_cuda else "cpu"

    # ---- diagnostics (xinit.diagnose) ---------------------------------------------------
    def signal_pass(self, module, x, *, train=True):
        def watch(t, fn):
            return t.requires_grad and t.register_hook(fn) is not None

        recorder = OutputRecorder(_channel_moments, watch)
        kinds, handles = {}, []

        def on_output(path):
            def hook(_m, _inp, out):
                if isinstance(out, torch.Tensor):
                    recorder.record(path, out)

            return hook

        for path, sub in module.named_modules():
            kinds[path] = self.native_kind(sub)
            handles.append(sub.register_forward_hook(on_output(path)))
        params = [p for p in self.native_params(module) if p.holder.requires_grad]
        buffers = [(b, b.detach().clone()) for b in module.buffers()]
        was_training = module.training
        device = params[0].holder.device if params else torch.device("cpu")
        module.train(train)
        try:
            with torch.enable_grad():
                y = module(torch.from_numpy(np.ascontiguousarray(x)).to(device))
                loss = sum(t.float().square().sum() for t in array_leaves(y))  # all outputs
                found = torch.autograd.grad(loss, [p.holder for p in params], allow_unused=True)
        finally:
            module.train(was_training)
            for h in handles:
                h.remove()
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
        stds = [g.float().std(correction=0) if g is not None else None for g in found]
        return SignalPass(
            outputs=recorder.outputs,
            output_grads=recorder.output_grads(),
            param_grads={
                p.path: float(s) if s is not None else float("nan") for p, s in zip(params, stds)
            },
            kinds=kinds,
            loss=float(loss.detach()),
        )

    # ---- sharded parameters (DTensor, FSDP2 fully_shard) --------------------------------
    def sharded_leaf(self, layer, name):
        target = self.tensor(layer, name)
        return target if _is_dtensor(target) else None

    def sharded_native(self, holder):
        return holder if _is_dtensor(holder) else None

    def fill_shards(self, holder, dist, shape, perm, *, seed, path, rng):
        """A DTensor parameter gets its local shard's box of the single-process init."""
        _fill_dtensor(holder, dist, tuple(shape), perm, seed=seed, path=path, rng=rng)


def _record_input(outputs: dict, path: str):
    """A forward pre-hook that records its module's input as layer ``path``'s output."""

    def hook(_m, args):
        outputs[path] = args[0].detach().cpu().numpy().copy()

    return hook


def _channel_moments(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (axis 1) mean and population variance, as float32 numpy."""
    t = t.detach().float()
    if t.ndim < 2:
        t = t.reshape(-1, 1)
    if t.device.type == "cpu":
        # BatchNorm's own one-pass statistics kernel: the channel means and biased variances
        # (on CPU it returns the variance itself), 4-7x faster than var_mean over (N, *spatial)
        mean, var = torch.batch_norm_update_stats(t, None, None, 0.0)
    else:
        var, mean = torch.var_mean(t, dim=[0, *range(2, t.ndim)], correction=0)
    return mean.cpu().numpy(), var.cpu().numpy()


ADAPTER = TorchBackend()


def _is_dtensor(tensor) -> bool:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (FSDP2's parameters)."""
    if tensor is None or type(tensor) in (torch.Tensor, torch.nn.Parameter):
        return False
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed
        return False
    return isinstance(tensor, DTensor)


def _fill_dtensor(param, dist, shape, perm, *, seed: int, path: str, rng: str) -> None:
    """Fill this rank's local shard of DTensor ``param`` with its box of the whole init."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    mesh, placements = param.device_mesh, tuple(param.placements)
    where = f"mesh {tuple(mesh.shape)} with placements {placements}"
    for dim, placement in enumerate(placements):
        if type(placement) not in (Shard, Replicate):  # Partial, _StridedShard, custom
            raise ShardingError(
                f"{path}: placement {placement!r} on mesh dimension {dim} ({where}): xinit "
                "computes the shards of Shard(d) and Replicate() only"
            )
    if mesh.get_coordinate() is None:  # this rank is not in the mesh: it holds nothing
        return
    size, offset = compute_local_shape_and_global_offset(param.shape, mesh, placements)
    with torch.no_grad():
        local = param.to_local()
        if tuple(local.shape) != tuple(size):
            raise ShardingError(
                f"{path}: local shard {tuple(local.shape)} is not the {tuple(size)} its {where} "
                "gives"
            )
        direct = (
            perm is None
            and local.device.type == "cpu"
            and local.dtype == torch.float32
            and local.is_contiguous()
        )
        out = local.detach().numpy() if direct else None
        values = box_values(
            dist, shape, perm, offset, size, seed=seed, path=path, rng=rng, where=where, out=out
        )
        if not direct:
            local.copy_(torch.from_numpy(values))


def _own(name: str, tensor, trainable: bool) -> OwnTensor:
    dtype = str(tensor.dtype).removeprefix("torch.")
    return OwnTensor(name, tuple(int(d) for d in tensor.shape), dtype, trainable)

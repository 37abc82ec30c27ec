"""Flax NNX adapter: nnx modules in NHWC with HWIO kernels, jax.random sampling."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit import layers as L
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend, contiguous, set_mode

_LEAVES = {
    "linear": {"weight": "kernel"},
    "conv": {"weight": "kernel"},
    "conv_transpose": {"weight": "kernel"},
    "embedding": {"weight": "embedding"},
    "batchnorm": {
        "weight": "scale",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    },
}
_ACTIVATIONS = {
    "relu": lambda s, x: jax.nn.relu(x),
    "leaky_relu": lambda s, x: jax.nn.leaky_relu(x, s.negative_slope),
    "gelu": lambda s, x: jax.nn.gelu(x, approximate=s.approximate == "tanh"),
    "silu": lambda s, x: jax.nn.silu(x),
    "sigmoid": lambda s, x: jax.nn.sigmoid(x),
    "tanh": lambda s, x: jnp.tanh(x),
    "identity": lambda s, x: x,
}


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


def _to_channel_last(x):
    return jnp.moveaxis(x, 1, -1) if x.ndim >= 3 else x


def _to_channel_first(x):
    return jnp.moveaxis(x, -1, 1) if x.ndim >= 3 else x


def _channel_last_shape(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    return (shape[0], *shape[2:], shape[1]) if len(shape) >= 3 else shape


def _channel_first_shape(shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    return (shape[0], shape[-1], *shape[1:-1]) if len(shape) >= 3 else shape


def _filled(shape, value: float) -> jax.Array:
    """A float32 array made in numpy and put on the default device: ``jnp.zeros``/``ones``
    compile a fill for every new shape, which made building cost ~0.1 s per layer."""
    return jax.device_put(np.full(shape, value, np.float32))


def _zeros_init(key, shape, dtype=jnp.float32):
    """Flax initializer signature, no compilation; xinit overwrites the value right after."""
    return jax.device_put(np.zeros(shape, np.dtype(dtype)))


class Activation(nnx.Module):
    """A parameter-free element-wise layer given by its spec."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        return _ACTIVATIONS[self.spec.kind](self.spec, x)


class Flatten(nnx.Module):
    """Flattens in channel-first order (as PyTorch), so Linear weights transfer unchanged."""

    def __call__(self, x):
        return _to_channel_first(x).reshape(x.shape[0], -1)


class BatchNorm(nnx.Module):
    """Batch norm over the last (channel) axis with the neutral (PyTorch) statistics rule:
    momentum is the weight of the new batch and the running variance is unbiased."""

    def __init__(self, spec: L.BatchNorm):
        c = (spec.num_features,)
        self.eps, self.momentum = spec.eps, spec.momentum
        self.scale = nnx.Param(_filled(c, 1.0)) if spec.affine else None
        self.bias = nnx.Param(_filled(c, 0.0)) if spec.affine else None
        self.mean = nnx.BatchStat(_filled(c, 0.0))
        self.var = nnx.BatchStat(_filled(c, 1.0))
        self.use_running_average = False

    def __call__(self, x):
        axes = tuple(range(x.ndim - 1))
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            mean = x.mean(axes)
            var = ((x - mean) ** 2).mean(axes)
            n = x.size // x.shape[-1]
            m = self.momentum
            self.mean[...] = (1 - m) * self.mean[...] + m * mean
            self.var[...] = (1 - m) * self.var[...] + m * var * (n / max(n - 1, 1))
        y = (x - mean) * jax.lax.rsqrt(var + self.eps)
        if self.scale is not None:
            y = y * self.scale[...] + self.bias[...]
        return y


class Embed(nnx.Embed):
    """``nnx.Embed`` in the adapter's layout: inside, every tensor of 3 or more dims is the
    neutral one with axis 1 moved last, so the neutral (N, L, D) output is held as (N, D, L)."""

    def __call__(self, inputs):
        return _to_channel_last(super().__call__(_to_channel_first(inputs)))


class ConvTranspose(nnx.Module):
    """PyTorch's transposed convolution (stride, padding, output_padding, dilation, groups).

    Kernel layout (*k, in, out/groups); computed as a dilated-input convolution with the
    spatially flipped kernel, so the numbers equal PyTorch's.
    """

    def __init__(self, spec: L.ConvTranspose):
        self.spec = spec
        k = spec.kernel_size
        self.kernel = nnx.Param(
            _filled((*k, spec.in_channels, spec.out_channels // spec.groups), 0.0)
        )
        self.bias = nnx.Param(_filled((spec.out_channels,), 0.0)) if spec.bias else None

    def __call__(self, x):
        s, g = self.spec, self.spec.groups
        nd = s.dims
        w = self.kernel[...]  # (*k, in, out/g)
        cin, cout_g = w.shape[-2], w.shape[-1]
        w = jnp.flip(w, axis=tuple(range(nd)))
        w = w.reshape(*s.kernel_size, g, cin // g, cout_g)
        w = jnp.moveaxis(w, nd, nd + 1).reshape(*s.kernel_size, cin // g, g * cout_g)
        pads = [
            (d * (k - 1) - p, d * (k - 1) - p + op)
            for k, p, d, op in zip(s.kernel_size, s.padding, s.dilation, s.output_padding)
        ]
        spatial = "".join("DHW"[3 - nd :])
        y = jax.lax.conv_general_dilated(
            x,
            w,
            window_strides=(1,) * nd,
            padding=pads,
            lhs_dilation=s.stride,
            rhs_dilation=s.dilation,
            dimension_numbers=(f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"),
            feature_group_count=g,
        )
        return y + self.bias[...] if self.bias is not None else y


class Pool(nnx.Module):
    """Max or average pooling with PyTorch's semantics (stride, padding, ceil_mode,
    count_include_pad), on channel-last input."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        s = self.spec
        sizes = x.shape[1:-1]
        outs = [
            L.pool_out(n, k, st, p, s.ceil_mode)
            for n, k, st, p in zip(sizes, s.kernel_size, s.stride, s.padding)
        ]
        pads = [
            (p, max((o - 1) * st + k - n - p, 0))
            for n, o, k, st, p in zip(sizes, outs, s.kernel_size, s.stride, s.padding)
        ]
        window = (1, *s.kernel_size, 1)
        strides = (1, *s.stride, 1)
        padding = ((0, 0), *pads, (0, 0))
        if s.kind == "max_pool":
            return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, strides, padding)
        total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, padding)
        return total / jnp.asarray(self._divisor(sizes, outs), x.dtype)[None, ..., None]

    def _divisor(self, sizes, outs):
        s = self.spec
        counts = []
        for n, o, k, st, p in zip(sizes, outs, s.kernel_size, s.stride, s.padding):
            start = np.arange(o) * st - p
            end = np.minimum(start + k, n + p)
            if not s.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            counts.append((end - start).astype(np.float32))
        out = counts[0]
        for c in counts[1:]:
            out = np.multiply.outer(out, c)
        return out


class AdaptiveAvgPool(nnx.Module):
    """PyTorch's adaptive average pool: window i spans [floor(i*n/o), ceil((i+1)*n/o))."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        for axis, o in enumerate(self.spec.output_size, start=1):
            n = x.shape[axis]
            parts = [
                jax.lax.slice_in_dim(x, (i * n) // o, -(-((i + 1) * n) // o), axis=axis).mean(
                    axis=axis, keepdims=True
                )
                for i in range(o)
            ]
            x = jnp.concatenate(parts, axis=axis)
        return x


_TRACE: list[dict] = []  # while tracing: id(module) -> its last output


def _record(module, out):
    if _TRACE:
        _TRACE[-1][id(module)] = out
    return out


class Steps(nnx.Module):
    """Named children applied in order (names may repeat for a shared parameter-free child)."""

    def __init__(self, children: dict, steps: list[str]):
        for name, child in children.items():
            setattr(self, name, child)
        self.steps = tuple(steps)

    def __call__(self, x):
        for name in self.steps:
            child = getattr(self, name)
            x = _record(child, child(x))
        return x


class Residual(nnx.Module):
    """activation(body(x) + shortcut(x)) with children under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        for name, child in children.items():
            setattr(self, name, child)
        self.body, self.shortcut, self.activation = tuple(body), shortcut, activation

    def __call__(self, x):
        out = x
        for name in self.body:
            child = getattr(self, name)
            out = _record(child, child(out))
        if self.shortcut:
            child = getattr(self, self.shortcut)
            out = out + _record(child, child(x))
        else:
            out = out + x
        if self.activation:
            child = getattr(self, self.activation)
            out = _record(child, child(out))
        return out


def _in_eval(module) -> bool:
    """Whether ``module`` is in eval mode: its first BatchNorm or Dropout tells."""
    for _, sub in nnx.iter_modules(module):
        for flag in ("use_running_average", "deterministic"):
            value = getattr(sub, flag, None)
            if isinstance(value, bool):
                return value
    return False


def _device(device: str):
    return jax.devices("gpu")[0] if device == "gpu" else jax.devices("cpu")[0]


class FlaxBackend(Backend):
    steps_cls, residual_cls = Steps, Residual
    name = "flax"
    extra = "flax"

    def owns(self, module) -> bool:
        return isinstance(module, (nnx.Module, jax.Array))

    def devices(self) -> list[str]:
        try:
            gpu = len(jax.devices("gpu")) > 0
        except RuntimeError:
            gpu = False
        return ["cpu", "gpu"] if gpu else ["cpu"]

    def layout(self, role, ndim):
        if role == "linear":
            return (1, 0)
        if role == "conv":  # (out, in/g, *k) -> (*k, in/g, out)
            return (*range(2, ndim), 1, 0)
        if role == "conv_transpose":  # (in, out/g, *k) -> (*k, in, out/g)
            return (*range(2, ndim), 0, 1)
        return None

    def from_numpy(self, array, device="cpu"):
        # device_put of the numpy array itself: jnp.asarray first would compile a copy per shape
        return jax.device_put(contiguous(array), _device(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return np.asarray(jax.device_get(tensor))

    def full(self, shape, value, device):
        return jax.device_put(np.full(shape, value, np.float32), _device(device))

    def draw(self, dist, shape, seed, device):
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
        with jax.default_device(_device(device)):
            if n >= EXACT_MIN:  # few such shapes: compile for it, no waste and no host copy
                return _sampler(kind, shape)(key, *params)
            # Smaller ones share one compiled sampler per (law, bucketed size): XLA compiles
            # cost ~1 s each here, and a ResNet has dozens of distinct parameter shapes.
            step = max(1024, 1 << max((n - 1).bit_length() - 3, 0))  # 8 sizes per octave
            bucket = -(-n // step) * step  # at most 12.5% more values drawn than needed
            flat = _sampler(kind, bucket)(key, *params)
            if device == "cpu":
                return jnp.asarray(np.asarray(flat)[:n].reshape(shape))
            return flat[:n].reshape(shape)

    # ---- building -----------------------------------------------------------------------
    def leaf_name(self, kind, name):
        return _LEAVES.get(kind, {}).get(name, name)

    def make_layer(self, spec, device):
        with jax.default_device(_device(device)):
            return self._make_layer(spec)

    def _make_layer(self, spec):
        rngs = nnx.Rngs(0)
        zeros = _zeros_init
        if isinstance(spec, L.ConvTranspose):
            return ConvTranspose(spec)
        if isinstance(spec, L.Conv):
            return nnx.Conv(
                spec.in_channels,
                spec.out_channels,
                spec.kernel_size,
                strides=spec.stride,
                padding=[(p, p) for p in spec.padding],
                kernel_dilation=spec.dilation,
                feature_group_count=spec.groups,
                use_bias=spec.bias,
                kernel_init=zeros,
                bias_init=zeros,
                rngs=rngs,
            )
        if isinstance(spec, L.BatchNorm):
            return BatchNorm(spec)
        if isinstance(spec, L.Linear):
            return nnx.Linear(
                spec.in_features,
                spec.out_features,
                use_bias=spec.bias,
                kernel_init=zeros,
                bias_init=zeros,
                rngs=rngs,
            )
        if isinstance(spec, L.Embedding):
            return Embed(spec.num_embeddings, spec.embedding_dim, embedding_init=zeros, rngs=rngs)
        if isinstance(spec, (L.MaxPool, L.AvgPool)):
            return Pool(spec)
        if isinstance(spec, L.AdaptiveAvgPool):
            return AdaptiveAvgPool(spec)
        if isinstance(spec, L.Flatten):
            return Flatten()
        if isinstance(spec, L.Dropout):
            return nnx.Dropout(spec.p, rngs=nnx.Rngs(dropout=0))
        if spec.kind in _ACTIVATIONS:
            return Activation(spec)
        raise TypeError(f"flax adapter cannot build {type(spec).__name__}")

    def make_sequential(self, children, steps):
        return self.steps_cls(children, steps)

    def child(self, module, name):
        value = vars(module).get(name)
        if not isinstance(value, nnx.Module):
            raise KeyError(f"{type(module).__name__} has no child {name!r}")
        return value

    def get_value(self, module, leaf):
        value = vars(module).get(leaf)
        if not isinstance(value, nnx.Variable):
            raise KeyError(f"{type(module).__name__} has no variable {leaf!r}")
        return value.get_value()

    def set_value(self, module, leaf, value):
        var = vars(module).get(leaf)
        if not isinstance(var, nnx.Variable):
            raise KeyError(f"{type(module).__name__} has no variable {leaf!r}")
        if tuple(var.get_value().shape) != tuple(value.shape):
            raise ValueError(
                f"{leaf}: shape {tuple(value.shape)} does not match {tuple(var.get_value().shape)}"
            )
        var.set_value(jnp.asarray(value, dtype=var.get_value().dtype))

    def attach_spec(self, module, spec):
        module._xinit_spec = spec

    def trace(self, module, x):
        paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_modules(module)}
        _TRACE.append({})
        try:
            out = self.run(module, x)
        finally:
            seen = _TRACE.pop()
        result = {paths[k]: np.asarray(_to_channel_first(v)) for k, v in seen.items() if k in paths}
        result[""] = out
        return result

    def trace_shapes(self, module, x):
        """Every submodule's output shape by JAX's abstract evaluation: nothing is compiled."""
        paths = {id(m): ".".join(map(str, p)) for p, m in nnx.iter_modules(module)}
        x = jax.ShapeDtypeStruct(_channel_last_shape(np.shape(x)), np.asarray(x).dtype)

        def forward(x):
            _TRACE.append({})
            try:
                y = module(x)
            finally:
                seen = _TRACE.pop()
            return y, {k: v for k, v in seen.items() if k in paths}

        was_eval = _in_eval(module)
        module.eval()
        try:
            y, seen = jax.eval_shape(forward, x)
        finally:
            if not was_eval:
                module.train()
        result = {paths[k]: _channel_first_shape(v.shape) for k, v in seen.items()}
        result[""] = _channel_first_shape(y.shape)
        return result

    def forward(self, module, x, train):
        was_eval = _in_eval(module)
        set_mode(module, train)
        try:
            y = module(_to_channel_last(jnp.asarray(x)))
        finally:
            set_mode(module, not was_eval)
        return np.asarray(_to_channel_first(y))

    # ---- native models (xinit.apply) ----------------------------------------------------
    def native_kind(self, module):
        if isinstance(module, (nnx.ConvTranspose, ConvTranspose)):
            return "conv_transpose"
        if isinstance(module, nnx.Conv):
            return "conv"
        if isinstance(module, nnx.Linear):
            return "linear"
        if isinstance(module, (nnx.BatchNorm, BatchNorm)):
            return "batchnorm"
        if isinstance(module, nnx.Embed):
            return "embedding"
        if isinstance(module, nnx.LayerNorm):
            return "layernorm"
        if isinstance(module, nnx.GroupNorm):
            return "groupnorm"
        return ""

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
                items = [(k, v) for k, v in vars(node).items() if not k.startswith("_pytree__")]
            elif isinstance(node, (list, tuple)):
                items = [(str(i), v) for i, v in enumerate(node)]
            elif isinstance(node, dict):
                items = [(str(k), v) for k, v in node.items()]
            else:
                return
            for name, value in items:
                if isinstance(value, nnx.Param):
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                    leaf = _NATIVE_LEAVES.get(name, name) if kind and owner is node else name
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

    def holder_device(self, holder):
        value = holder.get_value()
        platforms = {d.platform for d in value.devices()} if hasattr(value, "devices") else set()
        return "gpu" if platforms & {"gpu", "cuda", "rocm"} else "cpu"


_NATIVE_LEAVES = {"kernel": "weight", "scale": "weight", "embedding": "weight"}

ADAPTER = FlaxBackend()

"""Flax NNX adapter: nnx modules in NHWC with HWIO kernels, jax.random sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit import layers as L
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend

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


def _to_channel_last(x):
    return jnp.moveaxis(x, 1, -1) if x.ndim >= 3 else x


def _to_channel_first(x):
    return jnp.moveaxis(x, -1, 1) if x.ndim >= 3 else x


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
        self.scale = nnx.Param(jnp.ones(c, jnp.float32)) if spec.affine else None
        self.bias = nnx.Param(jnp.zeros(c, jnp.float32)) if spec.affine else None
        self.mean = nnx.BatchStat(jnp.zeros(c, jnp.float32))
        self.var = nnx.BatchStat(jnp.ones(c, jnp.float32))
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


class ConvTranspose(nnx.Module):
    """PyTorch's transposed convolution (stride, padding, output_padding, dilation, groups).

    Kernel layout (*k, in, out/groups); computed as a dilated-input convolution with the
    spatially flipped kernel, so the numbers equal PyTorch's.
    """

    def __init__(self, spec: L.ConvTranspose):
        self.spec = spec
        k = spec.kernel_size
        self.kernel = nnx.Param(
            jnp.zeros((*k, spec.in_channels, spec.out_channels // spec.groups), jnp.float32)
        )
        self.bias = nnx.Param(jnp.zeros((spec.out_channels,), jnp.float32)) if spec.bias else None

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


def _device(device: str):
    return jax.devices("gpu")[0] if device == "gpu" else jax.devices("cpu")[0]


class FlaxBackend(Backend):
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
        return jax.device_put(jnp.asarray(np.ascontiguousarray(array)), _device(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return np.asarray(jax.device_get(tensor))

    def full(self, shape, value, device):
        return jax.device_put(jnp.full(shape, value, jnp.float32), _device(device))

    def draw(self, dist, shape, seed, device):
        self.check_device(device)
        key = jax.random.key(seed)
        shape = tuple(shape)
        with jax.default_device(_device(device)):
            if isinstance(dist, NormalDist):
                return jax.random.normal(key, shape, jnp.float32) * dist.sigma + dist.mu
            if isinstance(dist, UniformDist):
                return jax.random.uniform(key, shape, jnp.float32, dist.low, dist.high)
            if isinstance(dist, TruncNormalDist):
                lo = (dist.low - dist.mu) / dist.sigma
                hi = (dist.high - dist.mu) / dist.sigma
                z = jax.random.truncated_normal(key, lo, hi, shape, jnp.float32)
                return z * dist.sigma + dist.mu
        raise TypeError(f"flax cannot draw {dist!r}")

    # ---- building -----------------------------------------------------------------------
    def leaf_name(self, kind, name):
        return _LEAVES.get(kind, {}).get(name, name)

    def make_layer(self, spec, device):
        with jax.default_device(_device(device)):
            return self._make_layer(spec)

    def _make_layer(self, spec):
        rngs = nnx.Rngs(0)
        zeros = nnx.initializers.zeros_init()
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
                rngs=rngs,
            )
        if isinstance(spec, L.Embedding):
            return nnx.Embed(
                spec.num_embeddings, spec.embedding_dim, embedding_init=zeros, rngs=rngs
            )
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
        return Steps(children, steps)

    def make_residual(self, children, body, shortcut, activation):
        return Residual(children, body, shortcut, activation)

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

    def run(self, module, x, device=None):
        module.eval()
        try:
            y = module(_to_channel_last(jnp.asarray(x)))
        finally:
            module.train()
        return np.asarray(_to_channel_first(y))


ADAPTER = FlaxBackend()

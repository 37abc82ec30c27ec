"""The native Flax NNX modules xinit builds: layers with PyTorch's semantics on channel-last
input (BatchNorm with PyTorch's statistics on request, transposed conv, pools, flatten in
channel-first order) and the containers, which record outputs while tracing."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit import layers as L

from ..common.containers import GraphLogic
from ..common.functional import ARITHMETIC
from ..common.resample import upsample_matrix
from . import layouts
from .layouts import CHANNELS, NEUTRAL
from .layouts import to_channel_first as _to_channel_first


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


def zeros_init(key, shape, dtype=jnp.float32):
    """Flax initializer signature, no compilation; xinit overwrites the value right after."""
    return jax.device_put(np.zeros(shape, np.dtype(dtype)))


def initializer(initial, name: str):
    """A Flax initializer for native leaf ``name``: the value xinit drew for it when the
    build offers one (``initial``, see backends/common/building.py ``InitialValues``), else a zero
    placeholder that xinit overwrites."""

    def init(key, shape, dtype=jnp.float32):
        value = initial(name, tuple(shape)) if initial is not None else None
        if value is None:
            return zeros_init(key, shape, dtype)
        return jnp.asarray(value, dtype=dtype)

    return init


def _initial_or(initial, name: str, shape, fill: float) -> jax.Array:
    """Leaf ``name``'s drawn value when ``initial`` has one, else ``fill`` everywhere."""
    value = initial(name, tuple(shape)) if initial is not None else None
    return _filled(shape, fill) if value is None else jnp.asarray(value, dtype=jnp.float32)


class Activation(nnx.Module):
    """A parameter-free layer: its spec and the function of the activation table
    (``lowerings.ACTIVATIONS``) or of the functional ops (``lowerings.FUNCTIONS``) that
    computes it from the node's inputs."""

    def __init__(self, spec, function):
        self.spec = spec
        self.function = function

    def __call__(self, *xs):
        return self.function(self.spec, *xs)


class DownscaleDropout(nnx.Dropout):
    """Paddle's ``Dropout(mode="downscale_in_infer")``: ``nnx.Dropout`` times (1 - p), so kept
    values are as they are in training and the output is x · (1 - p) at inference."""

    def __call__(self, x, **kw):
        return super().__call__(x, **kw) * (1.0 - self.rate)


class StochasticDepth(nnx.Dropout):
    """torchvision's ``StochasticDepth(p, "row")``: ``nnx.Dropout`` with its mask broadcast
    over every axis but the batch (whole samples dropped, the kept ones scaled by 1/(1 - p));
    identity at inference."""

    def __call__(self, x, **kw):
        self.broadcast_dims = tuple(range(1, x.ndim))
        return super().__call__(x, **kw)


class Flatten(nnx.Module):
    """Flattens in channel-first order (as PyTorch), so Linear weights transfer unchanged."""

    def __call__(self, x):
        return _to_channel_first(x).reshape(x.shape[0], -1)


class Neutral(nnx.Module):
    """A layout op (flatten of some dims, reshape, permute) on the neutral array: its meaning
    is PyTorch's (the containers hand it the neutral layout, see :func:`plan_steps`)."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        s = self.spec
        if s.kind == "flatten":
            return x.reshape(L.Flatten.output_shape(s, tuple(x.shape)))
        if s.kind == "reshape":
            return x.reshape(x.shape[0], *s.shape)
        return jnp.transpose(x, s.dims)


@functools.cache
def _unused_rngs() -> nnx.Rngs:
    """The ``rngs`` nnx's norms require, for norms built without random leaves (never drawn)."""
    return nnx.Rngs(0)


def norm_layer(cls, features: int, initial, scale: bool, bias: bool | None, **kw):
    """nnx norm ``cls`` whose ``scale``/``bias`` hold the values xinit drew (else ones and
    zeros), with the exact variance (``use_fast_variance=False``: the mean squared deviation,
    as PyTorch; nnx's E[x^2] - E[x]^2 loses digits when the mean is large against the spread).
    Built without the two leaves, then given them: nnx would draw a random key for each
    (about 1 ms per leaf on a CPU, 5x the rest of a BatchNorm) for values xinit replaces.
    ``bias=None``: the class has none (RMSNorm)."""
    off = {"use_scale": False} if bias is None else {"use_scale": False, "use_bias": False}
    layer = cls(features, use_fast_variance=False, rngs=_unused_rngs(), **off, **kw)
    if scale:
        layer.scale = nnx.Param(_initial_or(initial, "scale", (features,), 1.0))
        layer.use_scale = True
    if bias:
        layer.bias = nnx.Param(_initial_or(initial, "bias", (features,), 0.0))
        layer.use_bias = True
    return layer


class TorchBatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` with PyTorch's training statistics (``BatchNorm(train_stats="torch")``):
    the running variance takes the unbiased batch variance (nnx's takes the biased one).
    ``momentum`` keeps nnx's convention (the weight of the running value); eval mode and
    everything else are nnx's own."""

    def __call__(self, x, use_running_average: bool | None = None, *, mask=None):
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average:
            return super().__call__(x, True, mask=mask)
        if mask is not None:
            raise ValueError("a BatchNorm with PyTorch's training statistics takes no mask")
        axes = tuple(range(x.ndim - 1))  # every axis but the (last) channel axis
        mean = x.mean(axes)
        var = ((x - mean) ** 2).mean(axes)
        n = x.size // x.shape[-1]
        decay = self.momentum
        unbiased = var * (n / max(n - 1, 1))
        stop = jax.lax.stop_gradient
        self.mean[...] = stop(decay * self.mean[...] + (1 - decay) * mean)
        self.var[...] = stop(decay * self.var[...] + (1 - decay) * unbiased)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale[...] + self.bias[...]
        return y


class FeatureNorm(nnx.Module):
    """PyTorch's LayerNorm or RMSNorm (by ``spec.kind``) over the neutral last dims, with
    nnx's leaf names ``scale``/``bias``, on the neutral array (layout "sequence"): for the
    specs nnx's own classes cannot hold (several dims: nnx's scale is 1-D; RMSNorm's
    ``eps=None``, PyTorch's machine epsilon of the input's dtype)."""

    def __init__(self, spec, initial=None):
        self.spec = spec
        shape = spec.normalized_shape
        affine = spec.elementwise_affine
        self.scale = nnx.Param(_initial_or(initial, "scale", shape, 1.0)) if affine else None
        has_bias = affine and getattr(spec, "bias", False)
        self.bias = nnx.Param(_initial_or(initial, "bias", shape, 0.0)) if has_bias else None

    def __call__(self, x):
        axes = tuple(range(x.ndim - len(self.spec.normalized_shape), x.ndim))
        if self.spec.kind == "rmsnorm":
            eps = self.spec.eps_for(str(x.dtype))
            y = x * jax.lax.rsqrt((x * x).mean(axes, keepdims=True) + eps)
        else:
            mean = x.mean(axes, keepdims=True)
            var = ((x - mean) ** 2).mean(axes, keepdims=True)
            y = (x - mean) * jax.lax.rsqrt(var + self.spec.eps)
        if self.scale is not None:
            y = y * self.scale[...]
        if self.bias is not None:
            y = y + self.bias[...]
        return y


class LayerNorm(FeatureNorm):
    """PyTorch's LayerNorm in the adapter's layout (see :class:`FeatureNorm`)."""


class RMSNorm(FeatureNorm):
    """PyTorch's RMSNorm in the adapter's layout (see :class:`FeatureNorm`)."""


class ConvTranspose(nnx.Module):
    """PyTorch's transposed convolution (stride, padding, output_padding, dilation, groups).

    Kernel layout (*k, in, out/groups); computed as a dilated-input convolution with the
    spatially flipped kernel, so the numbers equal PyTorch's.
    """

    def __init__(self, spec: L.ConvTranspose, initial=None):
        self.spec = spec
        shape = (*spec.kernel_size, spec.in_channels, spec.out_channels // spec.groups)
        self.kernel = nnx.Param(_initial_or(initial, "kernel", shape, 0.0))
        c = (spec.out_channels,)
        self.bias = nnx.Param(_initial_or(initial, "bias", c, 0.0)) if spec.bias else None

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
    """PyTorch's adaptive average (or max, by ``spec.kind``) pool on channel-last input:
    window i spans [floor(i*n/o), ceil((i+1)*n/o))."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        reduce = jnp.max if self.spec.kind == "adaptive_max_pool" else jnp.mean
        for axis, o in enumerate(self.spec.output_size, start=1):
            n = x.shape[axis]
            parts = [
                reduce(
                    jax.lax.slice_in_dim(x, (i * n) // o, -(-((i + 1) * n) // o), axis=axis),
                    axis=axis,
                    keepdims=True,
                )
                for i in range(o)
            ]
            x = jnp.concatenate(parts, axis=axis)
        return x


def channel_shuffle(spec, x):
    """ShuffleNet's channel shuffle on a channel-last array: (..., g, k) -> (..., k, g)."""
    g = spec.groups
    y = x.reshape(*x.shape[:-1], g, x.shape[-1] // g)
    return jnp.swapaxes(y, -1, -2).reshape(x.shape)


_TRACE: list = []  # while tracing: a dict id(module) -> (last output, layout), or a recorder


def _record(module, out, layout=None):
    """Note ``module``'s output (held in ``layout``) for the innermost trace: a dict keeps the
    last output; a callable recorder (the diagnostics') sees every call and may return a new
    output."""
    if _TRACE:
        recorder = _TRACE[-1]
        if callable(recorder):
            return recorder(module, out)
        recorder[id(module)] = (out, layout)
    return out


def check_root_input(module, x) -> None:
    """A built root module called directly (not through ``xinit.run``) must get channel-last
    images: a channel-first batch fails with a message saying so, not deep inside JAX.
    (Sequences (N, L, D) are taken as they are.)"""
    c = getattr(module, "_xinit_in_channels", None)
    shape = tuple(getattr(x, "shape", ()))
    if c is None or len(shape) < 3 or shape[-1] == c or module._xinit_needs == NEUTRAL:
        return
    if shape[1] == c:
        raise ValueError(
            f"this Flax module takes channel-last input (N, ..., C={c}); got {shape}, which "
            "looks channel-first: move axis 1 last (jnp.moveaxis(x, 1, -1)), or call "
            "xinit.run(module, x), which takes channel-first numpy"
        )
    raise ValueError(f"this Flax module takes channel-last input with C={c}; got shape {shape}")


class Steps(nnx.Module):
    """Named children applied in order (names may repeat for a shared parameter-free child),
    each value turned into the layout the next child takes where they differ."""

    def __init__(self, children: dict, steps: list[str]):
        for name, child in children.items():
            setattr(self, name, child)
        self._xinit_steps = tuple(steps)
        plan = layouts.plan_chain([children[n] for n in steps])
        self._xinit_needs, self._xinit_converts, self._xinit_outs, self._xinit_gives = plan

    def __call__(self, x):
        check_root_input(self, x)
        for name, to, held in zip(self._xinit_steps, self._xinit_converts, self._xinit_outs):
            child = getattr(self, name)
            x = _record(child, call_child(child, layouts.convert(x, to)), held)
        return x


class Residual(nnx.Module):
    """activation(body(x) + shortcut(x)) with children under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        for name, child in children.items():
            setattr(self, name, child)
        self._xinit_body, self._xinit_shortcut, self._xinit_activation = (
            tuple(body),
            shortcut,
            activation,
        )
        plan = layouts.plan_residual(
            [children[n] for n in body], children[shortcut] if shortcut else None
        )
        self._xinit_needs, self._xinit_converts, self._xinit_outs = plan[:3]
        self._xinit_to_short, self._xinit_to_add, self._xinit_gives = plan[3:]

    def __call__(self, x):
        check_root_input(self, x)
        out = x
        for name, to, held in zip(self._xinit_body, self._xinit_converts, self._xinit_outs):
            child = getattr(self, name)
            out = _record(child, call_child(child, layouts.convert(out, to)), held)
        if self._xinit_shortcut:
            child = getattr(self, self._xinit_shortcut)
            short = child(layouts.convert(x, self._xinit_to_short))
            short = _record(child, short, layouts.gives(child, self._xinit_needs))
        else:
            short = x
        out = out + layouts.convert(short, self._xinit_to_add)
        if self._xinit_activation:
            child = getattr(self, self._xinit_activation)
            out = _record(child, child(out), self._xinit_gives)
        return out


class Graph(GraphLogic, nnx.Module):
    """Nodes run in topological order, children under their node names; each array a node
    returns is recorded for ``trace`` (a nested graph's tuple or dict: its nodes are)."""

    def __init__(self, children: dict, layout: dict):
        for name, child in children.items():
            setattr(self, name, child)
        self._xinit_nodes = tuple((n, tuple(refs), callee) for n, refs, callee in layout["nodes"])
        self._xinit_inputs = tuple(layout["inputs"])
        self._xinit_outputs = tuple(tuple(o) for o in layout["outputs"])
        self._xinit_returns = layout["returns"]
        needs, converts, held, gives = layouts.plan_graph(children, layout)
        self._xinit_needs, self._xinit_converts, self._xinit_gives = needs, converts, gives
        self._xinit_held = {k: v for k, v in held.items() if isinstance(v, str)}

    def _child(self, name):
        return getattr(self, name)

    def _call(self, name, callee, args):
        child = getattr(self, callee)
        to = self._xinit_converts.get(name)
        if to is not None:
            args = [layouts.convert(a, t) for a, t in zip(args, to)]
        out = call_child(child, *args)
        return _record(child, out, self._xinit_held.get(name)) if hasattr(out, "ndim") else out

    def __call__(self, *xs):
        return self._run_graph(*xs)


def _axis(dim: int, ndim: int) -> int:
    """The channel-last axis holding neutral (channel-first) dim ``dim``."""
    dim %= ndim
    if ndim < 3 or dim == 0:
        return dim
    return ndim - 1 if dim == 1 else dim - 1


class Merge(nnx.Module):
    """add, mul, sub, div (broadcast as numpy's on the neutral arrays) or concat along the
    neutral dim (mapped to the channel-last axis when the graph holds the inputs so)."""

    def __init__(self, spec):
        self.kind, self.dim = spec.kind, getattr(spec, "dim", 1)

    def __call__(self, *xs):
        neutral = getattr(self, "_xinit_layout", CHANNELS) == NEUTRAL
        if self.kind == "concat":
            ndim = xs[0].ndim
            return jnp.concatenate(xs, axis=self.dim % ndim if neutral else _axis(self.dim, ndim))
        if not neutral:
            xs = broadcast_channel_last(xs, getattr(self, "_xinit_raw", ()))
        return functools.reduce(ARITHMETIC[self.kind], xs)


def broadcast_channel_last(xs, raw: tuple[bool, ...]) -> list:
    """Operands of an element-wise op computed channel-last, so that they broadcast as their
    neutral arrays do: one of fewer dims (a learned tensor (C, 1, 1), ``raw``: held neutral
    as it is) is made neutral, given leading 1s up to the full rank (numpy's rule), then moved
    channel-last; operands of the full rank are channel-last already."""
    n = max(x.ndim for x in xs)
    out = []
    for i, x in enumerate(xs):
        is_raw = i < len(raw) and raw[i]
        if n < 3 or (x.ndim == n and not is_raw):
            out.append(x)
            continue
        neutral = x if is_raw else _to_channel_first(x)
        out.append(layouts.to_channel_last(neutral.reshape((1,) * (n - x.ndim) + x.shape)))
    return out


class Upsample(nnx.Module):
    """PyTorch's interpolate on channel-last input, one spatial axis at a time as a product
    with the axis's resize matrix (``backends/common/resample.py``): ``jax.image.resize``
    samples half-pixel centres without PyTorch's nearest rule or align_corners."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        sizes = tuple(int(n) for n in x.shape[1:-1])
        outs = self.spec.out_sizes(sizes)
        factors = self.spec.factors(len(sizes)) or (None,) * len(sizes)
        mats = [
            jnp.asarray(upsample_matrix(self.spec, n, o, f).astype(np.float32))
            for n, o, f in zip(sizes, outs, factors)
        ]
        src, dst = "hwd"[: len(sizes)], "HWD"[: len(sizes)]
        pairs = ",".join(f"{b}{a}" for a, b in zip(src, dst))
        # one contraction (one compiled op per shape): eager JAX compiles every op it meets
        return jnp.einsum(f"n{src}c,{pairs}->n{dst}c", x, *mats, precision="highest")


# ---- sequence kinds: they take and return the neutral (N, L, D) array (layout "sequence") --
def learned_parameter(spec, initial=None) -> nnx.Param:
    """The ``nnx.Param`` of a learned-parameter node, with its drawn value when the build
    offers one, its op kept in the metadata for the container that holds it."""
    return nnx.Param(_initial_or(initial, "", spec.shape, 0.0), xinit_op=spec.op)


def learned_op(op: str, param, x):
    """A learned parameter (1, T, *rest) put before the neutral sequence x (``prepend``) or
    added to it (``add``), broadcast over the batch."""
    if op == "prepend":
        return jnp.concatenate([jnp.broadcast_to(param, (x.shape[0], *param.shape[1:])), x], 1)
    if op == "tensor":  # a learned tensor: the node's value is the tensor itself
        return param
    return x + param


def call_child(child, *args):
    """Run a container's child: a module, or a learned-parameter node (an ``nnx.Param``)."""
    if isinstance(child, nnx.Variable):
        return learned_op(child.xinit_op, child[...], *args)
    return child(*args)


class Select(nnx.Module):
    """``x.select(dim, index)`` on the neutral array (ViT's class-token pooling)."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x):
        return jnp.take(x, self.spec.index, axis=self.spec.dim)


class PositionIds(nnx.Module):
    """Token ids (N, L) -> their positions ``arange(L)`` per sample (N, L)."""

    def __call__(self, x):
        return jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape)

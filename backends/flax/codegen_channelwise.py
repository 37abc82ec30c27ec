"""The Flax code export's emitters for the norms, per-channel layers and array ops the traced
models use (light: no flax import): GroupNorm, InstanceNorm, LayerNorm2d and RMSNorm as nnx's
classes where those compute what xinit's Flax build computes (else a small class of the file),
PReLU, LayerScale, stochastic depth, clip, pad, reduce, split, channel shuffle and the adaptive
max pool. Each takes its input in the layout the build gives that layer (``Lowering.layout``:
channel-last for the image norms, PyTorch's for pad, reduce, split), so the neutral dims of the
spec are written as they are; the parameters sit at the build's paths."""

from __future__ import annotations

from xinit.codegen.emitters import args_text
from xinit.codegen.fields import Fields, literal

from .codegen_sequence import init_keywords, layout_at

_NORM_INITS = {"weight": "scale_init", "bias": "bias_init"}
_NNX_EPS = 1e-6  # nnx's norms' default epsilon (PyTorch's is 1e-5)


def _eps(f: Fields) -> list[str]:
    """``epsilon=`` the spec's eps, unless nnx's default."""
    return [] if f.value("eps") == _NNX_EPS else [f"epsilon={f['eps']}"]


def _init_code(f: Fields, leaf: str, fallback: str) -> str:
    """The law drawing the layer's neutral leaf ``leaf`` (``fallback``: none planned)."""
    return f.ctx.inits.get(f.where, {}).get(leaf, fallback)


# ---- norms ---------------------------------------------------------------------------------
def _groupnorm(f: Fields) -> str:
    """``nnx.GroupNorm``: contiguous channel groups on the channel-last axis, as PyTorch's."""
    s = f.spec
    kws = [f"num_groups={f['num_groups']}", *_eps(f)]
    kws += [] if s.affine else ["use_bias=False", "use_scale=False"]
    kws += ["use_fast_variance=False", *init_keywords(f, _NORM_INITS)]
    return f"nnx.GroupNorm({args_text(f['num_channels'], kws, 'rngs=rngs')})"


def _layernorm2d(f: Fields) -> str:
    """A LayerNorm over the channels of a channel-last image: ``nnx.LayerNorm``."""
    s = f.spec
    kws = list(_eps(f))
    if not s.elementwise_affine:
        kws += ["use_bias=False", "use_scale=False"]
    elif not s.bias:
        kws.append("use_bias=False")
    kws += ["use_fast_variance=False", *init_keywords(f, _NORM_INITS)]
    return f"nnx.LayerNorm({args_text(f['num_channels'], kws, 'rngs=rngs')})"


_RUNNING_INSTANCE_NORM = '''class RunningInstanceNorm(nnx.Module):
    """PyTorch's InstanceNorm(track_running_stats=True) on channel-last images: scale, bias
    and BatchNorm's running mean/var. Training: each sample's statistics, the running ones
    moved by their batch average (unbiased variance); eval: the running ones."""

    def __init__(
        self,
        num_features,
        epsilon=1e-5,
        momentum=0.1,
        use_scale=True,
        *,
        scale_init=nnx.initializers.ones,
        bias_init=nnx.initializers.zeros,
        rngs,
    ):
        c = (num_features,)
        self.epsilon, self.momentum = epsilon, momentum
        self.scale = nnx.data(None)  # data attributes, though empty (else nnx makes them static)
        self.bias = nnx.data(None)
        if use_scale:
            self.scale = nnx.Param(scale_init(rngs.params(), c))
            self.bias = nnx.Param(bias_init(rngs.params(), c))
        self.mean = nnx.BatchStat(jnp.zeros(c))
        self.var = nnx.BatchStat(jnp.ones(c))
        self.use_running_average = False

    def __call__(self, x):
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(1, x.ndim - 1))
            mean = x.mean(axes, keepdims=True)
            var = ((x - mean) ** 2).mean(axes, keepdims=True)
            n = int(np.prod(x.shape[1:-1]))
            m = self.momentum
            unbiased = var * (n / max(n - 1, 1))
            self.mean[...] = (1 - m) * self.mean[...] + m * mean.mean(0).reshape(-1)
            self.var[...] = (1 - m) * self.var[...] + m * unbiased.mean(0).reshape(-1)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.scale is not None:
            y = y * self.scale[...] + self.bias[...]
        return y
'''


def _instancenorm(f: Fields) -> str:
    """``nnx.InstanceNorm`` (it keeps no running statistics); with PyTorch's running
    statistics a class of the file holding BatchNorm's ``mean``/``var``, as the build."""
    s = f.spec
    inits = init_keywords(f, _NORM_INITS)
    if s.track_running_stats:
        for line in ("import jax", "import jax.numpy as jnp", "import numpy as np"):
            f.ctx.need(line)
        f.ctx.helper("RunningInstanceNorm", _RUNNING_INSTANCE_NORM)
        kws = [*f.kw("eps", 1e-5, "epsilon"), *f.kw("momentum", 0.1)]
        kws += [] if s.affine else ["use_scale=False"]
        return f"RunningInstanceNorm({args_text(f['num_features'], kws, inits, 'rngs=rngs')})"
    kws = list(_eps(f)) + ([] if s.affine else ["use_bias=False", "use_scale=False"])
    kws += ["use_fast_variance=False", *inits]
    return f"nnx.InstanceNorm({args_text(f['num_features'], kws, 'rngs=rngs')})"


_RMSNORM = '''class RMSNorm(nnx.Module):
    """PyTorch's RMSNorm over the last len(shape) dims (nnx's scale is 1-D); epsilon None:
    PyTorch's machine epsilon of the input's dtype."""

    def __init__(self, shape, epsilon=None, use_scale=True, *, scale_init, rngs):
        self.shape, self.epsilon = tuple(shape), epsilon
        self.scale = nnx.data(None)  # a data attribute, though empty (else nnx makes it static)
        if use_scale:
            self.scale = nnx.Param(scale_init(rngs.params(), self.shape))

    def __call__(self, x):
        axes = tuple(range(x.ndim - len(self.shape), x.ndim))
        eps = jnp.finfo(x.dtype).eps if self.epsilon is None else self.epsilon
        y = x * jax.lax.rsqrt((x * x).mean(axes, keepdims=True) + eps)
        return y if self.scale is None else y * self.scale[...]
'''


def _rmsnorm(f: Fields) -> str:
    """``nnx.RMSNorm`` over the last dim with a given eps; else a class of the file."""
    s = f.spec
    if len(s.normalized_shape) == 1 and s.eps is not None:
        arg = f.value("normalized_shape") is None  # a tuple argument of one size
        size = f"{f['normalized_shape']}[0]" if arg else str(s.normalized_shape[0])
        kws = list(_eps(f)) + ([] if s.elementwise_affine else ["use_scale=False"])
        kws += ["use_fast_variance=False", *init_keywords(f, {"weight": "scale_init"})]
        return f"nnx.RMSNorm({args_text(size, kws, 'rngs=rngs')})"
    f.ctx.need("import jax")
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("RMSNorm", _RMSNORM)
    shape = f["normalized_shape"] if f.value("normalized_shape") is None else None
    shape = shape or literal(tuple(s.normalized_shape))
    kws = [*f.kw("eps", None, "epsilon"), *f.kw("elementwise_affine", True, "use_scale")]
    kws.append(f"scale_init={_init_code(f, 'weight', 'nnx.initializers.ones')}")
    return f"RMSNorm({args_text(shape, kws, 'rngs=rngs')})"


# ---- per-channel learned layers ------------------------------------------------------------
_PRELU = '''class PReLU(nnx.PReLU):
    """nnx.PReLU whose negative_slope is 0-d (one slope) or (C,) (one per channel of a
    channel-last input: nnx.PReLU itself has one), drawn by slope_init."""

    def __init__(self, num_parameters=1, *, slope_init, rngs):
        super().__init__()
        shape = () if num_parameters == 1 else (num_parameters,)
        self.negative_slope = nnx.Param(slope_init(rngs.params(), shape))
'''

_LAYER_SCALE = '''class LayerScale(nnx.Module):
    """x * gamma: a learned multiplier per channel (timm's LayerScale), the channels last."""

    def __init__(self, num_features, *, gamma_init, rngs):
        self.gamma = nnx.Param(gamma_init(rngs.params(), (num_features,)))

    def __call__(self, x):
        return x * self.gamma[...]
'''


def _prelu(f: Fields) -> str:
    f.ctx.helper("PReLU", _PRELU)
    law = _init_code(f, "weight", f"nnx.initializers.constant({literal(float(f.spec.init))})")
    kws = [*f.kw("num_parameters", 1), f"slope_init={law}"]
    return f"PReLU({args_text(kws, 'rngs=rngs')})"


def _layer_scale(f: Fields) -> str:
    f.ctx.helper("LayerScale", _LAYER_SCALE)
    value = literal(float(f.spec.init_value))
    law = _init_code(f, "gamma", f"nnx.initializers.constant({value})")
    return f"LayerScale({args_text(f['num_features'], f'gamma_init={law}', 'rngs=rngs')})"


_STOCHASTIC_DEPTH = '''class StochasticDepth(nnx.Dropout):
    """torchvision's StochasticDepth(p, "row"): nnx.Dropout with its mask broadcast over every
    axis but the batch (whole samples dropped, the kept ones scaled by 1 / (1 - p));
    identity at inference."""

    def __call__(self, x, **kw):
        self.broadcast_dims = tuple(range(1, x.ndim))
        return super().__call__(x, **kw)
'''


def _stochastic_depth(f: Fields) -> str:
    f.ctx.helper("StochasticDepth", _STOCHASTIC_DEPTH)
    return f"StochasticDepth({f['p']}, rngs=rngs)"


# ---- parameter-free steps ------------------------------------------------------------------
def _clip(f: Fields, args: list) -> str:
    """``jnp.clip`` with the spec's bounds (None: no bound on that side), on any layout."""
    f.ctx.need("import jax.numpy as jnp")
    return f"jnp.clip({args[0]}, {f['min']}, {f['max']})"


def _pad(f: Fields, args: list) -> str:
    """``jnp.pad`` on PyTorch's layout (the value is turned there): the spec's pads, last dim
    first, as (before, after) per dim, the leading dims unpadded."""
    s = f.spec
    f.ctx.need("import jax.numpy as jnp")
    rec, x = layout_at(f), args[0]
    rank = rec.held[0].rank if rec is not None else None
    pairs = s.widths(len(s.pads) // 2)
    if rank is not None:
        widths = literal(tuple(s.widths(rank)))
    else:
        widths = f"((0, 0),) * ({x}.ndim - {len(pairs)}) + {literal(tuple(pairs))}"
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}
    kws = [f'mode="{modes.get(s.mode, "wrap")}"'] if s.mode != "constant" else []
    kws += [f"constant_values={literal(float(s.value))}"] if s.mode == "constant" else []
    return f"jnp.pad({args_text(x, widths, kws)})"


def _reduce(f: Fields, args: list) -> str:
    """``x.mean(axis=..., keepdims=...)`` (``sum``, ``max``) on PyTorch's layout."""
    s = f.spec
    dims = literal(s.dims if isinstance(s.dims, int) else tuple(s.dims))
    keep = ", keepdims=True" if s.keepdim else ""
    return f"{args[0]}.{s.op}(axis={dims}{keep})"


def _split(f: Fields, args: list) -> str:
    """The parts as the dict the graph's references take (``parts["0"]``), cut by
    ``jnp.split`` at the running sums of the sizes, on PyTorch's layout."""
    f.ctx.need("import jax.numpy as jnp")
    cuts, total = [], 0
    for size in f.spec.sizes[:-1]:
        total += size
        cuts.append(total)
    call = f"jnp.split({args[0]}, {literal(cuts)}, axis={f.spec.dim})"
    return f"{{str(i): part for i, part in enumerate({call})}}"


_CHANNEL_SHUFFLE = '''def channel_shuffle(x, groups: int):
    """ShuffleNet's channel shuffle on a channel-last x: channels (g, k) -> (k, g)."""
    y = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    return jnp.swapaxes(y, -1, -2).reshape(x.shape)
'''

ADAPTIVE_POOL = '''def adaptive_pool(x, output_size: tuple[int, ...], reduce: str = "mean"):
    """PyTorch's adaptive average pool on channel-last x (reduce="max": its max pool): window
    i of an axis of n values spans [floor(i * n / o), ceil((i + 1) * n / o))."""
    for axis, o in enumerate(output_size, start=1):
        n = x.shape[axis]
        parts = [
            getattr(jax.lax.slice_in_dim(x, i * n // o, -(-(i + 1) * n // o), axis=axis), reduce)(
                axis=axis, keepdims=True
            )
            for i in range(o)
        ]
        x = jnp.concatenate(parts, axis=axis)
    return x
'''


def _channel_shuffle(f: Fields, args: list) -> str:
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("channel_shuffle", _CHANNEL_SHUFFLE)
    return f"channel_shuffle({args[0]}, {f['groups']})"


def _adaptive_max_pool(f: Fields, args: list) -> str:
    f.ctx.need("import jax")
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("adaptive_pool", ADAPTIVE_POOL)
    return f'adaptive_pool({args[0]}, {literal(tuple(f.spec.output_size))}, "max")'


def register_channelwise(table) -> None:
    """Add these kinds' emitters to the Flax ``table``."""
    table.register("groupnorm", module=_groupnorm)
    table.register("layernorm2d", module=_layernorm2d)
    table.register("instancenorm", module=_instancenorm)
    table.register("rmsnorm", module=_rmsnorm)
    table.register("prelu", module=_prelu)
    table.register("layer_scale", module=_layer_scale)
    table.register("stochastic_depth", module=_stochastic_depth)
    table.register("clip", call=_clip)
    table.register("pad", call=_pad)
    table.register("reduce", call=_reduce)
    table.register("split", call=_split)
    table.register("channel_shuffle", call=_channel_shuffle)
    table.register("adaptive_max_pool", call=_adaptive_max_pool)


__all__ = ["ADAPTIVE_POOL", "register_channelwise"]

"""The parameter-free layers for PyTorch: the element-wise activations (ACTIVATIONS), the
functional ops with no ``torch.nn`` class (FUNCTIONS, computed by ``modules.Function``) and
the other builders; ``lowerings.py`` registers them (this module never imports it)."""

from __future__ import annotations

from ..common.functional import ARRAY_FUNCTIONS


def _nn():
    import torch

    return torch.nn


def _modules():
    from . import modules

    return modules


def _merge(spec):
    return _modules().Merge(spec)


def _upsample(spec):
    align = spec.align_corners if spec.mode == "bilinear" else None
    return _nn().Upsample(spec.size, spec.scale_factor, spec.mode, align)


def _torch():
    import torch

    return torch


def _function(spec, function):
    return _modules().Function(spec, function)


def _hardsigmoid(s):
    if s.is_default:
        return _nn().Hardsigmoid()
    return _function(s, lambda s, x: (x * s.slope + s.offset).clamp(0.0, 1.0))


def _clip(s):
    if s.min is not None and s.max is not None:
        return _nn().Hardtanh(s.min, s.max)
    return _function(s, lambda s, x: x.clamp(s.min, s.max))


def _dropout(s):
    if s.mode == "downscale_in_infer":
        return _modules().DownscaleDropout(s.p)
    return _nn().Dropout(s.p)


def _reduce(s, x):
    dims = s.axes(x.ndim)
    if s.op == "max":
        return x.amax(dims, s.keepdim)
    return getattr(x, s.op)(dims, keepdim=s.keepdim)


def _pad(s, x):
    value = s.value if s.mode == "constant" else None
    return _nn().functional.pad(x, list(s.pads), s.mode, value)


def _length_mask(s, lengths):
    """LengthMask: -inf where key j >= the length (or is the query, ``diagonal``), else 0."""
    torch = _torch()
    steps = torch.arange(s.size, dtype=lengths.dtype, device=lengths.device)
    blocked = (steps >= lengths[:, None])[:, None, :] | torch.from_numpy(s.eye()).to(lengths.device)
    mask = torch.zeros(blocked.shape, dtype=lengths.dtype, device=lengths.device)
    return mask.masked_fill(blocked, -torch.inf)[:, None]


def _sinusoid_positions(s, x):
    return x + _torch().tensor(s.table(x.shape[1]), dtype=x.dtype, device=x.device)


# The element-wise activations: kind -> the torch.nn module for a spec (one line a kind, as
# timm's create_act.py; a tracer reads the same table).
ACTIVATIONS = {
    "relu": lambda s: _nn().ReLU(),
    "leaky_relu": lambda s: _nn().LeakyReLU(s.negative_slope),
    "gelu": lambda s: _nn().GELU(approximate=s.approximate),
    "silu": lambda s: _nn().SiLU(),
    "sigmoid": lambda s: _nn().Sigmoid(),
    "tanh": lambda s: _nn().Tanh(),
    "hardswish": lambda s: _nn().Hardswish(),
    "hardsigmoid": _hardsigmoid,
    "relu6": lambda s: _nn().ReLU6(),
    "clip": _clip,
    "identity": lambda s: _nn().Identity(),
}

# The functional glue with no torch.nn class: kind -> function (spec, *inputs) -> output,
# computed by modules.Function (a tracer reads the same table).
FUNCTIONS = {
    **ARRAY_FUNCTIONS,
    "reduce": _reduce,
    "matmul": lambda s, a, b: _torch().matmul(a, b),
    "pad": _pad,
    "sinusoid_positions": _sinusoid_positions,
    "argmax": lambda s, x: x.argmax(s.dim).to(x.dtype),
    "cumsum": lambda s, x: x.cumsum(s.dim),
    "compare": lambda s, x: s.test(x).to(x.dtype),
    "length_mask": _length_mask,
}


def _adaptive_max_pool(s):
    nn = _nn()
    return (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[s.dims - 1](
        s.output_size
    )


# Parameter-free layers: kind -> the native module from the spec, nothing else
# (lowerings.py registers them).
BUILDERS = {
    **ACTIVATIONS,
    **{
        kind: lambda s, function=function: _function(s, function)
        for kind, function in FUNCTIONS.items()
    },
    "softmax": lambda s: _nn().Softmax(s.dim),
    "log_softmax": lambda s: _nn().LogSoftmax(s.dim),
    "channel_shuffle": lambda s: _nn().ChannelShuffle(s.groups),
    "adaptive_max_pool": _adaptive_max_pool,
    "flatten": lambda s: _nn().Flatten(s.start_dim, s.end_dim),
    "reshape": lambda s: _modules().Reshape(s.shape),
    "permute": lambda s: _modules().Permute(s.dims),
    "dropout": _dropout,
    "stochastic_depth": lambda s: _modules().StochasticDepth(s.p),
    "add": _merge,
    "mul": _merge,
    "sub": _merge,
    "div": _merge,
    "concat": _merge,
    "upsample": _upsample,
    "select": lambda s: _modules().Select(s.dim, s.index),
    "position_ids": lambda s: _modules().PositionIds(),
}

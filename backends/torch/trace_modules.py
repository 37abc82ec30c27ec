"""The PyTorch tracer's readers of parameter-free modules: one per ``torch.nn`` class (and
torchvision's Permute, StochasticDepth and Swin attention), each giving the layer spec the
module computes. ``MODULES`` is the table; :func:`module_reader` looks a module up in it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from torch import nn

from .trace_ops import adaptive_spec, avg_pool_spec, clip_spec, max_pool_spec, upsample_spec

MODULES: dict[type, Callable[[Any, Any], Any]] = {}


def module(*classes):
    """Register the decorated ``(tracer, module) -> spec`` for each class in ``classes``."""

    def register(read):
        for cls in classes:
            MODULES[cls] = read
        return read

    return register


_PLAIN = {
    nn.ReLU: "ReLU",
    nn.ReLU6: "ReLU6",
    nn.Hardswish: "Hardswish",
    nn.Hardsigmoid: "Hardsigmoid",
    nn.SiLU: "SiLU",
    nn.Sigmoid: "Sigmoid",
    nn.Tanh: "Tanh",
    nn.Identity: "Identity",
}
for _cls, _kind in _PLAIN.items():
    MODULES[_cls] = lambda t, m, kind=_kind: t.kind(kind)

module(nn.GELU)(lambda t, m: t.kind("GELU", approximate=m.approximate))
module(nn.LeakyReLU)(lambda t, m: t.kind("LeakyReLU", float(m.negative_slope)))
module(nn.Hardtanh)(lambda t, m: clip_spec(t, float(m.min_val), float(m.max_val)))
module(nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)(
    lambda t, m: t.kind("Dropout", float(m.p))
)
module(nn.Flatten)(lambda t, m: t.kind("Flatten", m.start_dim, m.end_dim))
module(nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)(
    lambda t, m: max_pool_spec(t, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
)
module(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)(
    lambda t, m: avg_pool_spec(
        t,
        m.kernel_size,
        m.stride,
        m.padding,
        m.ceil_mode,
        m.count_include_pad,
        getattr(m, "divisor_override", None),
    )
)
module(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)(
    lambda t, m: adaptive_spec(t, "AdaptiveAvgPool", m.output_size)
)
module(nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)(
    lambda t, m: (
        adaptive_spec(t, "AdaptiveMaxPool", m.output_size)
        if not m.return_indices
        else t.unknown("adaptive max pooling that returns indices")
    )
)
module(nn.Upsample)(
    lambda t, m: upsample_spec(t, m.size, m.scale_factor, m.mode, bool(m.align_corners))
)
module(nn.Softmax)(lambda t, m: t.kind("Softmax", m.dim) if m.dim is not None else None)
module(nn.LogSoftmax)(lambda t, m: t.kind("LogSoftmax", m.dim) if m.dim is not None else None)
module(nn.ChannelShuffle)(lambda t, m: t.kind("ChannelShuffle", int(m.groups)))
module(nn.ZeroPad1d, nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)(
    lambda t, m: t.kind("Pad", tuple(m.padding), "constant", float(getattr(m, "value", 0.0)))
)


def module_reader(m) -> Callable | None:
    """The table's reader for module ``m``'s class (or a base class of it), else that of a
    look-alike: a class of LOOKALIKES' name with its attributes, no parameters or children
    (but for STATEFUL_LOOKALIKES)."""
    found = next((MODULES[c] for c in type(m).__mro__ if c in MODULES), None)
    if found is not None or type(m).__name__ not in LOOKALIKES:
        return found
    attrs, read = LOOKALIKES[type(m).__name__]
    stateful = type(m).__name__ in STATEFUL_LOOKALIKES
    empty = next(itertools.chain(m.parameters(), m.buffers(), m.children()), None) is None
    return read if (empty or stateful) and all(hasattr(m, a) for a in attrs) else None


# torchvision's parameter-free classes as a model file retypes them (xinit's code export
# does), read by name; the tracer checks that they compute what the reading says.
LOOKALIKES = {
    "Permute": (("dims",), lambda t, m: t.kind("Permute", tuple(m.dims))),
    "StochasticDepth": (("p",), lambda t, m: t.kind("StochasticDepth", float(m.p))),
}


def torchvision_modules() -> None:
    """torchvision's own parameter-free modules, when torchvision is imported already."""
    import sys

    ops = sys.modules.get("torchvision.ops.misc")
    if ops is not None:
        MODULES.setdefault(ops.Permute, lambda t, m: t.kind("Permute", tuple(m.dims)))
    depth = sys.modules.get("torchvision.ops.stochastic_depth")
    if depth is not None:
        MODULES.setdefault(
            depth.StochasticDepth, lambda t, m: t.kind("StochasticDepth", float(m.p))
        )
    swin = sys.modules.get("torchvision.models.swin_transformer")
    if swin is not None:
        MODULES.setdefault(swin.ShiftedWindowAttention, _shifted_window_attention)


def _shifted_window_attention(t, m):
    """torchvision's Swin attention (v2: with ``logit_scale``) as one node, its window
    partition merging the batch; the tracer checks that xinit's module computes the same."""
    kind = "WindowAttentionV2" if hasattr(m, "logit_scale") else "WindowAttention"
    window, shift = tuple(m.window_size), tuple(m.shift_size)
    qkv_bias, proj_bias = m.qkv.bias is not None, m.proj.bias is not None
    return t.kind(kind, m.qkv.in_features, window, shift, m.num_heads, qkv_bias, proj_bias)


# torchvision's Swin attentions as the code export writes them: classes with parameters, read
# by name too (the tracer checks what they compute against xinit's module on their state).
_SWIN_ATTRS = ("qkv", "proj", "window_size", "shift_size", "num_heads")
STATEFUL_LOOKALIKES = ("ShiftedWindowAttention", "ShiftedWindowAttentionV2")
LOOKALIKES |= {name: (_SWIN_ATTRS, _shifted_window_attention) for name in STATEFUL_LOOKALIKES}


__all__ = ["MODULES", "LOOKALIKES", "module", "module_reader", "torchvision_modules"]

"""The PyTorch tracer's converters for timm's modules whose forward is one known computation
that no single torch layer is: each is recorded as the layer kinds it decomposes into, under
the module's own attribute names, so the spec's state keys stay timm's.

- ``timm.layers.Attention`` (ViT, DeiT, and every timm model built on it): a nested graph
  ``{qkv: Linear, sdpa: ScaledDotProductAttention, proj: Linear}``, the structure of xinit's
  zoo ViT (``xinit/models/vit.py``), where the module's own forward moves the batch
  (``permute(2, 0, 3, 1, 4)``) and calls ``F.scaled_dot_product_attention``.
- ``Conv2dSame`` (the ``tf_`` EfficientNets): a ``Pad`` of TensorFlow's "SAME" padding for
  the traced size, then the Conv.
- the norm + activation layers (``BatchNormAct2d``, ``LayerNormAct2d``, ...: a torch norm
  subclass whose forward also applies its ``act`` child): the norm as its node, named by
  the attribute (keys ``bn1.weight``), then the activation as node ``<name>_<kind>``, as
  Paddle's ``BatchNorm(act=)`` is traced. :func:`fused_activation` tells the torch adapter's
  layer trace to record such a layer's output before its activation, so ``xinit.parity``
  compares it with the norm node.

Only the exact classes are matched (a subclass may compute otherwise), and only the
configurations the decomposition computes exactly (no q/k norm, no gate, no mask); anything
else is an unknown, named with its path. timm is never imported here: its classes are looked
up among the modules already imported.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from . import trace_modules

# module class path -> converter (tracer, module, name, inputs, output); exact classes only
_BY_PATH: dict[str, Callable] = {}


def decomposes(*paths: str):
    """Register the decorated converter for the classes ``module.Class`` of ``paths``."""

    def register(convert):
        for path in paths:
            _BY_PATH[path] = convert
        return convert

    return register


def decomposer(module) -> Callable | None:
    """The converter for ``module``'s exact class, when timm has defined that class."""
    cls = type(module)
    convert = _BY_PATH.get(f"{cls.__module__}.{cls.__qualname__}")
    if convert is None or sys.modules.get(cls.__module__) is None:
        return None
    return convert


def _class(module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _refuse(t, module, name: str, why: str, inputs: list, out) -> None:
    """An unknown naming the layer; ``out`` then stands for its input, so the trace goes on."""
    t.unknown(f"layer {name!r} ({_class(module)}) {why}")
    if inputs:
        t.alias(out, inputs[0])


def _read(t, module) -> Any:
    """The layer spec a torch lowering reads from ``module``, or the tracer's table reads
    from a parameter-free class (None: neither does)."""
    lowering = t.adapter.lowerings.lowering_of(module)
    if lowering is not None:
        return lowering.read(module)
    read = trace_modules.module_reader(module)
    return read(t, module) if read is not None else None


# ---- attention -------------------------------------------------------------------------------
def _attention_refusal(m, inputs: list, kwargs: dict) -> str | None:
    """Why timm's ``Attention`` ``m`` is not qkv -> sdpa -> proj here (None: it is)."""
    if len(inputs) != 1 or inputs[0].ndim != 3:
        return "is called with a mask or not on one (N, L, E) sequence"
    if kwargs.get("is_causal"):
        return "is called with is_causal=True"
    for attr in ("q_norm", "k_norm", "norm"):
        if not isinstance(getattr(m, attr, None), nn.Identity):
            return f"normalises inside the attention ({attr}), which the sdpa kind does not"
    if getattr(m, "gate", None) is not None:
        return "gates its output (gated=True)"
    if type(m.qkv) is not nn.Linear or type(m.proj) is not nn.Linear:
        return "projects with other than nn.Linear"
    if abs(m.scale - m.head_dim**-0.5) > 1e-12 * m.scale:
        return f"scales the scores by {m.scale}, not 1/sqrt(head_dim)"
    if not isinstance(m.proj_drop, (nn.Dropout, nn.Identity)):
        return "has a proj_drop that is not a dropout"
    return None


@decomposes("timm.layers.attention.Attention")
def _attention(t, m, name: str, inputs: list, kwargs: dict, out) -> None:
    """qkv (Linear E -> 3·A), the parameter-free attention core, proj (Linear A -> E')."""
    why = _attention_refusal(m, inputs, kwargs)
    if why is not None:
        return _refuse(t, m, name, why, inputs, out)
    x = inputs[0]
    n, length = x.shape[:2]
    t.rec.enter(name, type(m).__name__, [x])
    packed = x.new_empty(n, length, m.qkv.out_features)
    mixed = x.new_empty(n, length, m.attn_dim)
    t.node("qkv", _read(t, m.qkv), [x], packed)
    t.node("sdpa", t.kind("ScaledDotProductAttention", m.num_heads), [packed], mixed)
    t.node("proj", _read(t, m.proj), [mixed], out)
    t.rec.exit(name, out)
    return None


# ---- TensorFlow's "SAME" padding -------------------------------------------------------------
@decomposes("timm.layers.conv2d_same.Conv2dSame")
def _conv_same(t, m, name: str, inputs: list, kwargs: dict, out) -> None:
    """A ``Pad`` (node ``<name>_pad``) of the "SAME" padding for the traced size, then the
    Conv without padding, as the Flax tracer makes an uneven ``"SAME"`` explicit."""
    if len(inputs) != 1 or inputs[0].ndim != 4:
        return _refuse(t, m, name, "is not called on one (N, C, H, W) image", inputs, out)
    x = inputs[0]
    pads = []  # (before, after) of H, then W: timm's pad_same
    for size, k, s, d in zip(x.shape[-2:], m.kernel_size, m.stride, m.dilation):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = pads
    if top or bottom or left or right:
        shape = (*x.shape[:2], x.shape[2] + top + bottom, x.shape[3] + left + right)
        padded = x.new_empty(shape)
        spec = t.kind("Pad", (left, right, top, bottom), "constant", 0.0)
        t.node(f"{name}_pad", spec, [x], padded)
        x = padded
    t.node(name, _read(t, m), [x], out)
    return None


# ---- norm + activation -----------------------------------------------------------------------
_NORM_ACT = (  # (class, whether its LayerNorm is over the channels of an (N, C, *) image)
    ("timm.layers.norm_act.BatchNormAct2d", False),
    ("timm.layers.norm_act.GroupNormAct", False),
    ("timm.layers.norm_act.GroupNorm1Act", False),
    ("timm.layers.norm_act.LayerNormAct", False),
    ("timm.layers.norm_act.LayerNormAct2d", True),
)


def fused_activation(module) -> nn.Module | None:
    """The activation child a timm norm + activation layer applies at the end of its own
    forward (None for any other module, or an identity): the torch adapter records the
    layer's output as it enters that child, the norm's output, which is the traced norm
    node's."""
    if decomposer(module) is not _norm_act:
        return None
    act = getattr(module, "act", None)
    return None if act is None or isinstance(act, nn.Identity) else act


@decomposes(*(path for path, _ in _NORM_ACT))
def _norm_act(t, m, name: str, inputs: list, kwargs: dict, out) -> None:
    """The norm (the module's own state) as node ``name``, then its ``act`` child, read as a
    layer, as node ``<name>_<kind>`` (none for an identity)."""
    if not isinstance(m.drop, (nn.Identity, nn.Dropout)):
        return _refuse(t, m, name, f"drops with {_class(m.drop)} before its act", inputs, out)
    if len(inputs) != 1:
        return _refuse(t, m, name, f"is called with {len(inputs)} tensors", inputs, out)
    if getattr(m, "_fast_norm", False):
        return _refuse(t, m, name, "uses timm's fast norm kernels", inputs, out)
    if dict(_NORM_ACT)[_class(m)]:
        from .lowerings import channels_first_layernorm

        norm = channels_first_layernorm(m)
    else:
        norm = _read(t, m)
    if norm is None:
        return _refuse(t, m, name, "is a norm no lowering reads", inputs, out)
    if isinstance(m.act, nn.Identity):
        t.node(name, norm, inputs, out)
        return None
    act = _read(t, m.act)
    if act is None or act.params():
        return _refuse(t, m, name, f"applies {_class(m.act)}, not a known activation", inputs, out)
    normed = inputs[0].new_empty(out.shape)
    t.node(name, norm, inputs, normed)
    t.node(f"{name}_{act.kind}", act, [normed], out)
    return None


__all__ = ["decomposer", "decomposes", "fused_activation"]

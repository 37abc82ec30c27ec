"""Known NNX layers as neutral nodes, for the Flax tracer (:mod:`tracing`): the input in the
layout the layer's lowering declares, what a read spec does not carry made explicit (a
convolution's ``"SAME"`` or uneven padding, ``nnx.LinearGeneral``'s several axes), and the
node's output shape checked against the layer's, so a setting the reading misses is an
unknown, never a silently different layer."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from xinit import layers as L


class Unreadable(Exception):
    """A known layer whose call has no neutral node: the reason."""


def record(t, name: str, module: Any, spec: Any, lowering: Any, tensors: list, out: Any) -> None:
    """Record the node(s) of known layer ``module`` (read as ``spec``) called on ``tensors``."""
    from . import layouts
    from .trace_perms import _needed, _Token

    layout = layouts.physical(lowering.layout_for(spec)) if lowering else None
    if isinstance(spec, L.BatchNorm) and tensors:
        spec = dataclasses.replace(spec, dims=max(tensors[0].ndim - 2, 1))
    first = t.perm(tensors[0]) if tensors else ()
    views = [t.at(a, _needed(layout, a.ndim, t.perm(a))) for a in tensors]
    if type(spec).__name__ == "LinearGeneral":
        _linear_general(t, name, spec, views[0], tensors[0].ndim, out)
        return
    neutral_in = _neutral_shape(tensors[0].shape, t.perm(views[0])) if tensors else ()
    if type(spec) is L.Conv and tensors:
        spec, pads = _conv_padding(module, spec, tuple(tensors[0].shape))
        if pads is not None:
            padded = _Token()
            t.emit("pad", _pad_kind()(pads), views, padded, t.perm(views[0]))
            views = [padded]
            grown = [pads[2 * i] + pads[2 * i + 1] for i in range(len(pads) // 2)][::-1]
            neutral_in = (*neutral_in[:2], *(a + g for a, g in zip(neutral_in[2:], grown)))
    perm = _needed(layout, out.ndim, first)
    if len(tensors) == 1:
        _check_shape(spec, neutral_in, _neutral_shape(out.shape, perm))
    t.emit(name, spec, views, out, perm)


def _neutral_shape(shape: tuple, perm: tuple) -> tuple[int, ...]:
    """The neutral shape of a physical ``shape`` whose axes are neutral axes ``perm``."""
    neutral = [0] * len(shape)
    for i, p in enumerate(perm or range(len(shape))):
        neutral[p] = int(shape[i])
    return tuple(neutral)


def _check_shape(spec: Any, neutral_in: tuple, neutral_out: tuple) -> None:
    try:
        made = tuple(spec.output_shape(neutral_in))
    except (ValueError, TypeError) as err:
        raise Unreadable(f"read as {type(spec).__name__}, which refuses its input: {err}") from None
    if made != neutral_out:
        raise Unreadable(
            f"read as {type(spec).__name__}, which gives shape {made} where the layer gives "
            f"{neutral_out} (a setting the reading does not carry)"
        )


def _conv_padding(module: Any, spec: Any, shape: tuple) -> tuple[Any, tuple | None]:
    """``spec`` with the padding ``nnx.Conv`` really applies to an input of physical (NHWC)
    ``shape``, and the ``Pad`` pads (PyTorch's order) to put before it when uneven."""
    pad = module.padding
    n = len(spec.kernel_size)
    sizes = shape[1:-1] if len(shape) == n + 2 else shape[-n - 1 : -1]
    if isinstance(pad, str):
        if pad.upper() == "VALID":
            pairs = [(0, 0)] * n
        elif pad.upper() == "SAME":
            pairs = []
            for size, k, s, d in zip(sizes, spec.kernel_size, spec.stride, spec.dilation):
                total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
                pairs.append((total // 2, total - total // 2))
        else:
            raise Unreadable(f"padding {pad!r} has no PyTorch equivalent")
    elif isinstance(pad, int):
        pairs = [(pad, pad)] * n
    else:
        pairs = [p if isinstance(p, (tuple, list)) else (p, p) for p in pad]
        if len(pairs) != n:
            raise Unreadable(f"padding {pad!r}")
    if all(lo == hi for lo, hi in pairs):
        return dataclasses.replace(spec, padding=tuple(int(lo) for lo, _ in pairs)), None
    pads = tuple(int(v) for lo, hi in reversed(pairs) for v in (lo, hi))
    return dataclasses.replace(spec, padding=(0,) * n), pads


def _pad_kind():
    pad = getattr(L, "Pad", None)
    if pad is None:
        raise Unreadable("an uneven padding needs xinit's Pad kind, which this version lacks")
    return pad


def _linear_general(t, name: str, spec: Any, x: Any, ndim: int, out: Any) -> None:
    """``nnx.LinearGeneral`` over the last axes: a neutral Linear of the flattened axes,
    between a Flatten and a Reshape where it takes or gives several axes (the other
    frameworks' Linear is 2-d)."""
    from .trace_perms import _ident, _Token

    k = len(spec.in_shape)
    if sorted(a % ndim for a in spec.axis) != list(range(ndim - k, ndim)) or ndim - k < 1:
        raise Unreadable(f"a LinearGeneral over axes {spec.axis}, not the last ones")
    if k > 1:
        flat = _Token()
        t.emit("flatten", L.Flatten(start_dim=ndim - k), [x], flat, _ident(ndim - k + 1))
        x = flat
    linear = L.Linear(spec.in_features, spec.out_features, spec.bias)
    if len(spec.out_shape) == 1:
        t.emit(name, linear, [x], out, _ident(out.ndim))
        return
    mid = _Token()
    t.emit(name, linear, [x], mid, _ident(ndim - k + 1))
    t.emit("reshape", L.Reshape(tuple(out.shape[1:])), [mid], out, _ident(out.ndim))

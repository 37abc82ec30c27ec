"""What the Paddle tracer knows of layers no lowering reads: the parameter-free ``paddle.nn``
layers, each read as the functional call it makes (:func:`layer_call`), and the classes a
model file retypes (xinit's code export writes them), read by class name and attributes
(:func:`lookalike_spec`); the tracer checks that such a class computes what it is read as."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xinit import layers as L

from .lowering_base import _paddle


def _layers() -> dict[type, Callable[[Any], tuple[str, dict]]]:
    """``paddle.nn`` class -> (layer -> (the name of the ``paddle.nn.functional`` function it
    calls, its arguments from the layer's attributes))."""
    nn = _paddle().nn

    def pool(name, avg):
        def read(m):
            args = dict(
                kernel_size=m.ksize,
                stride=m.stride,
                padding=m.padding,
                ceil_mode=m.ceil_mode,
                data_format=m.data_format,
            )
            if avg:
                args.update(exclusive=m.exclusive, divisor_override=m.divisor)
            else:
                args.update(return_mask=m.return_mask)
            return name, args

        return read

    def adaptive(name, mask):
        extra = (lambda m: {"return_mask": m._return_mask}) if mask else (lambda m: {})
        return lambda m: (name, {"output_size": m._output_size, **extra(m)})

    table = {
        nn.ReLU: lambda m: ("relu", {}),
        nn.ReLU6: lambda m: ("relu6", {}),
        nn.Hardswish: lambda m: ("hardswish", {}),
        nn.Hardsigmoid: lambda m: ("hardsigmoid", {}),
        nn.Sigmoid: lambda m: ("sigmoid", {}),
        nn.Tanh: lambda m: ("tanh", {}),
        nn.Silu: lambda m: ("silu", {}),
        nn.Swish: lambda m: ("swish", {}),
        nn.GELU: lambda m: ("gelu", {"approximate": m._approximate}),
        nn.LeakyReLU: lambda m: ("leaky_relu", {"negative_slope": m._negative_slope}),
        nn.Hardtanh: lambda m: ("hardtanh", {"min": m._min, "max": m._max}),
        nn.Softmax: lambda m: ("softmax", {"axis": m._axis}),
        nn.LogSoftmax: lambda m: ("log_softmax", {"axis": m._axis}),
        nn.Dropout: lambda m: (
            "dropout",
            {"p": m.p, "axis": m.axis, "training": False, "mode": m.mode},
        ),
        nn.Identity: lambda m: ("identity", {}),
        nn.Flatten: lambda m: ("flatten", {"start_axis": m.start_axis, "stop_axis": m.stop_axis}),
        nn.ChannelShuffle: lambda m: (
            "channel_shuffle",
            {"groups": m._groups, "data_format": m._data_format},
        ),
        nn.Upsample: lambda m: (
            "interpolate",
            dict(
                size=m.size,
                scale_factor=m.scale_factor,
                mode=m.mode,
                align_corners=m.align_corners,
                align_mode=m.align_mode,
                data_format=m.data_format,
            ),
        ),
    }
    for d in (1, 2, 3):
        table[getattr(nn, f"MaxPool{d}D")] = pool(f"max_pool{d}d", False)
        table[getattr(nn, f"AvgPool{d}D")] = pool(f"avg_pool{d}d", True)
        table[getattr(nn, f"AdaptiveAvgPool{d}D")] = adaptive(f"adaptive_avg_pool{d}d", False)
        table[getattr(nn, f"AdaptiveMaxPool{d}D")] = adaptive(f"adaptive_max_pool{d}d", True)
    return table


def identity(x):
    """nn.Identity's call (no paddle function): its signature for :func:`bind`."""
    return x


_LAYER_TABLE: dict[type, Callable] | None = None


def layer_call(layer: Any) -> tuple[str, Callable, dict] | None:
    """The functional call a parameter-free ``paddle.nn`` layer makes: (its name as the
    converters know it, the function, its arguments); None for any other layer (exact class
    only: a subclass may compute something else)."""
    global _LAYER_TABLE
    if _LAYER_TABLE is None:
        _LAYER_TABLE = _layers()
    read = _LAYER_TABLE.get(type(layer))
    if read is None:
        return None
    name, kwargs = read(layer)
    paddle = _paddle()
    fn = identity if name == "identity" else getattr(paddle.nn.functional, name, None)
    fn = fn or getattr(paddle, name)
    return name, getattr(fn, "__wrapped__", fn), kwargs  # unwrapped while tracing


# ---- classes a model file retypes, read by name --------------------------------------------
def _layernorm2d(m) -> Any:
    """A LayerNorm subclass named LayerNorm2d (torchvision's, timm's, the code export's):
    over axis 1 of (N, C, *), as the LayerNorm2d kind."""
    if len(m._normalized_shape) != 1 or (m.weight is None and m.bias is not None):
        return None
    affine = m.weight is not None
    return L.LayerNorm2d(
        m._normalized_shape[0], m._epsilon, affine, m.bias is not None or not affine
    )


def _window_attention(m) -> Any:
    """torchvision's Swin attention as a file retypes it (v2: with ``logit_scale``), one node."""
    kind = L.WindowAttentionV2 if hasattr(m, "logit_scale") else L.WindowAttention
    dim = int(m.qkv.weight.shape[0])  # Paddle's Linear weight is (in, out)
    qkv_bias, proj_bias = m.qkv.bias is not None, m.proj.bias is not None
    window, shift = tuple(m.window_size), tuple(m.shift_size)
    return kind(dim, window, shift, int(m.num_heads), qkv_bias, proj_bias)


# class name -> (the attributes it must have, whether it may hold state, its reader)
_SWIN_ATTRS = ("qkv", "proj", "window_size", "shift_size", "num_heads")
LOOKALIKES: dict[str, tuple[tuple[str, ...], bool, Callable[[Any], Any]]] = {
    "Permute": (("dims",), False, lambda m: L.Permute(tuple(m.dims))),
    "StochasticDepth": (("p",), False, lambda m: L.StochasticDepth(float(m.p))),
    "LayerNorm2d": (("_normalized_shape", "_epsilon"), True, _layernorm2d),
    "ShiftedWindowAttention": (_SWIN_ATTRS, True, _window_attention),
    "ShiftedWindowAttentionV2": (_SWIN_ATTRS, True, _window_attention),
}


def lookalike_spec(layer: Any) -> Any:
    """The spec of a class of :data:`LOOKALIKES`' name with its attributes (and no state,
    where its entry says so); None for any other layer."""
    entry = LOOKALIKES.get(type(layer).__name__)
    if entry is None:
        return None
    attrs, stateful, read = entry
    empty = not layer.parameters() and not layer.buffers() and not layer.sublayers()
    if not (stateful or empty) or not all(hasattr(layer, a) for a in attrs):
        return None
    return read(layer)


def read_layer(lowerings: Any, layer: Any) -> Any:
    """The spec of a layer a lowering reads, or of a class a model file retypes; None for
    any other layer."""
    spec = lookalike_spec(layer)
    if spec is not None:
        return spec
    lowering = lowerings.lowering_of(layer)
    return lowering.read(layer) if lowering is not None else None


def computes(lowerings: Any, layer: Any, spec: Any, inputs: list, out: Any) -> bool:
    """Whether ``layer`` may be read as ``spec``: its forward is that of the Paddle or xinit
    class its lowering knows, or ``spec``, built with the layer's state, gives ``out`` on
    ``inputs`` to within 64 float32 roundings of its size (a wrong reading is O(1)); a
    build or run that fails is a no. Paddle's global generator is left as it was."""
    lowering = lowerings.lowering_of(layer)
    natives = tuple(lowering.natives()) if lowering is not None else ()
    base = next(
        c for c in type(layer).__mro__ if c in natives or c.__module__.startswith("paddle.")
    )
    if type(layer).forward is base.forward and lookalike_spec(layer) is None:
        return True
    paddle = _paddle()
    rng = paddle.get_rng_state()
    try:
        built = lowerings[spec.kind].build(spec, "cpu")
        built.set_state_dict(layer.state_dict())
        built.eval()
        got = built(*inputs)
    except (ValueError, TypeError, RuntimeError, AssertionError, L.SpecError):
        return False
    finally:
        paddle.set_rng_state(rng)
    if not isinstance(got, paddle.Tensor) or not isinstance(out, paddle.Tensor):
        return False
    if got.shape != out.shape or got.dtype != out.dtype:
        return False
    want, have = out.numpy(), got.numpy()
    if not np.issubdtype(want.dtype, np.floating):
        return bool(np.array_equal(want, have))
    err = np.abs(have.astype(np.float64) - want).max(initial=0.0)
    return bool(err <= 64 * np.finfo(want.dtype).eps * (1.0 + np.abs(want).max(initial=0.0)))


__all__ = ["LOOKALIKES", "computes", "layer_call", "lookalike_spec", "read_layer"]

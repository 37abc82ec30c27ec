"""The PyTorch tracer's converters: one function per torch operation (a functional call or a
Tensor method, as ``torch.overrides`` reports it), each recording the layer spec that computes
the same thing (onnx2torch's one-converter-an-op style, the other way round). ``OPS`` is the
table (the parameter-free ``torch.nn`` classes' is :mod:`.trace_modules`); the tracer
(:mod:`.tracing`) calls a converter after the op has run, with its arguments and output.

Dims are recorded non-negative (the rank is known while tracing); an op that would touch the
batch (dim 0) is recorded as unknown, so the batch stays free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

OPS: dict[Any, Callable] = {}


def op(*funcs):
    """Register the decorated converter for every torch callable in ``funcs``."""

    def register(convert):
        for func in funcs:
            OPS[func] = convert
        return convert

    return register


def arg(args, kwargs, i: int, name: str, default=None):
    """Argument ``i`` (positional) or ``name`` (keyword) of an op call."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _ints(value) -> tuple[int, ...]:
    """Sizes given as varargs ``f(x, 2, 3)`` or one sequence ``f(x, (2, 3))``."""
    if len(value) == 1 and isinstance(value[0], (tuple, list, torch.Size)):
        value = value[0]
    return tuple(int(v) for v in value)


# ---- arithmetic ------------------------------------------------------------------------------
_BINARY = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div"}
_REVERSED = {"add": "add", "sub": "rsub", "mul": "mul", "div": "rdiv"}


def _binary(name: str, reverse: bool = False):
    def convert(t, args, kwargs, out):
        a, b = args[0], arg(args, kwargs, 1, "other")
        alpha = kwargs.get("alpha", 1)
        rounding = kwargs.get("rounding_mode")
        if alpha != 1 or rounding is not None:
            return t.unknown(f"{name} with alpha={alpha!r}, rounding_mode={rounding!r}")
        if reverse:
            a, b = b, a
        if t.learned_view_op(_BINARY[name], a, b, out):  # x * self.gamma.reshape(1, -1, 1, 1)
            return None
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            if name == "add" and t.learned_add(a, b, out):
                return None
            return t.node(name, t.kind(_BINARY[name]), [a, b], out)
        x, value = (a, b) if isinstance(a, Tensor) else (b, a)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return t.unknown(f"{name} of a tensor and {type(value).__name__}")
        scalar_op = name if isinstance(a, Tensor) else _REVERSED[name]
        return t.node(name, t.kind("ScalarOp", scalar_op, float(value)), [x], out)

    return convert


for _name in _BINARY:
    _m = getattr(Tensor, _name)
    op(getattr(torch, _name), _m, getattr(Tensor, f"{_name}_"), getattr(Tensor, f"__{_name}__"))(
        _binary(_name)
    )
    op(getattr(Tensor, f"__i{_name}__", None))(_binary(_name))
op(Tensor.__truediv__, Tensor.__itruediv__, torch.true_divide, Tensor.true_divide)(_binary("div"))
op(Tensor.__radd__)(_binary("add", reverse=True))
op(Tensor.__rmul__)(_binary("mul", reverse=True))
op(Tensor.__rsub__, torch.rsub)(_binary("sub", reverse=True))
op(Tensor.__rtruediv__, getattr(Tensor, "__rdiv__", None))(_binary("div", reverse=True))
OPS.pop(None, None)


@op(torch.pow, Tensor.pow, Tensor.__pow__)
def _pow(t, args, kwargs, out):
    x, e = args[0], arg(args, kwargs, 1, "exponent")
    if not isinstance(e, (int, float)):
        return t.unknown("pow with a tensor exponent")
    return t.node("pow", t.kind("ScalarOp", "pow", float(e)), [x], out)


@op(torch.matmul, Tensor.matmul, Tensor.__matmul__, torch.bmm, Tensor.bmm)
def _matmul(t, args, kwargs, out):
    return t.node("matmul", t.kind("MatMul"), [args[0], arg(args, kwargs, 1, "other")], out)


# ---- activations -----------------------------------------------------------------------------
def _activation(name: str, make: Callable[[tuple, dict], Any]):
    def convert(t, args, kwargs, out):
        return t.node(name, make(t, args, kwargs), [args[0]], out)

    return convert


def clip_spec(t, low, high):
    if low == 0.0 and high == 6.0:
        return t.kind("ReLU6")
    return t.kind("Clip", low, high)


_ACTIVATIONS = {
    "relu": (
        (F.relu, torch.relu, Tensor.relu, Tensor.relu_, F.relu_),
        lambda t, a, k: t.kind("ReLU"),
    ),
    "relu6": ((F.relu6,), lambda t, a, k: t.kind("ReLU6")),
    "gelu": (
        (F.gelu,),
        lambda t, a, k: t.kind("GELU", approximate=arg(a, k, 1, "approximate", "none")),
    ),
    "silu": ((F.silu,), lambda t, a, k: t.kind("SiLU")),
    "sigmoid": ((F.sigmoid, torch.sigmoid, Tensor.sigmoid), lambda t, a, k: t.kind("Sigmoid")),
    "tanh": ((F.tanh, torch.tanh, Tensor.tanh), lambda t, a, k: t.kind("Tanh")),
    "hardswish": ((F.hardswish,), lambda t, a, k: t.kind("Hardswish")),
    "hardsigmoid": ((F.hardsigmoid,), lambda t, a, k: t.kind("Hardsigmoid")),
    "leaky_relu": (
        (F.leaky_relu,),
        lambda t, a, k: t.kind("LeakyReLU", float(arg(a, k, 1, "negative_slope", 0.01))),
    ),
    "softmax": (
        (F.softmax, torch.softmax, Tensor.softmax),
        lambda t, a, k: t.kind("Softmax", _dim(arg(a, k, 1, "dim"), a[0].ndim)),
    ),
    "log_softmax": (
        (F.log_softmax, torch.log_softmax, Tensor.log_softmax),
        lambda t, a, k: t.kind("LogSoftmax", _dim(arg(a, k, 1, "dim"), a[0].ndim)),
    ),
    "hardtanh": (
        (F.hardtanh, F.hardtanh_),
        lambda t, a, k: clip_spec(
            t, float(arg(a, k, 1, "min_val", -1.0)), float(arg(a, k, 2, "max_val", 1.0))
        ),
    ),
    "clamp": (
        (torch.clamp, Tensor.clamp, torch.clip, Tensor.clip),
        lambda t, a, k: clip_spec(t, *_bounds(arg(a, k, 1, "min"), arg(a, k, 2, "max"))),
    ),
}


def _bounds(low, high) -> tuple[float, float]:
    """clamp's bounds as floats (None: unbounded on that side)."""
    return (-math.inf if low is None else float(low), math.inf if high is None else float(high))


for _name, (_funcs, _make) in _ACTIVATIONS.items():
    op(*_funcs)(_activation(_name, _make))


@op(F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, torch.dropout)
def _dropout(t, args, kwargs, out):
    return t.alias(out, args[0])  # the trace runs in eval mode: the identity


@op(
    Tensor.contiguous,
    Tensor.clone,
    torch.clone,
    Tensor.detach,
    Tensor.float,
    Tensor.to,
    Tensor.type_as,
)
def _same(t, args, kwargs, out):
    if out.dtype != args[0].dtype:
        return t.unknown(f"a cast from {args[0].dtype} to {out.dtype}")
    return t.alias(out, args[0])


# ---- shapes ----------------------------------------------------------------------------------
@op(torch.flatten, Tensor.flatten)
def _flatten(t, args, kwargs, out):
    x = args[0]
    start = _dim(arg(args, kwargs, 1, "start_dim", 0), x.ndim)
    end = _dim(arg(args, kwargs, 2, "end_dim", -1), x.ndim)
    if start == 0:
        return t.unknown("flatten over the batch dim (start_dim 0)")
    return t.node("flatten", t.kind("Flatten", start, end), [x], out)


def reshape(t, x, out, hint="reshape"):
    """A view that keeps the batch as dim 0: ``Reshape`` of the sizes after it."""
    if x.ndim == 0 or out.ndim == 0 or x.shape[0] != t.batch or out.shape[0] != t.batch:
        return t.unknown(
            f"{hint} from {tuple(x.shape)} to {tuple(out.shape)} does not keep the batch "
            f"({t.batch}) as dim 0"
        )
    if out.ndim == 1:
        return t.unknown(f"{hint} to {tuple(out.shape)}: nothing is left after the batch")
    return t.node(hint, t.kind("Reshape", tuple(out.shape[1:])), [x], out)


@op(
    Tensor.view,
    Tensor.reshape,
    torch.reshape,
    Tensor.squeeze,
    torch.squeeze,
    Tensor.unsqueeze,
    torch.unsqueeze,
    Tensor.view_as,
    Tensor.reshape_as,
)
def _reshape(t, args, kwargs, out):
    if t.view_learned(args[0], out):  # a parameter's view, for the arithmetic it goes into
        return None
    if tuple(out.shape) == tuple(args[0].shape):
        return t.alias(out, args[0])
    return reshape(t, args[0], out)


@op(Tensor.permute, torch.permute)
def _permute(t, args, kwargs, out):
    x = args[0]
    dims = _ints(args[1:]) if len(args) > 1 else _ints((kwargs["dims"],))
    dims = tuple(_dim(d, x.ndim) for d in dims)
    if dims[0] != 0:
        return t.unknown(f"permute{dims} moves the batch dim")
    return t.node("permute", t.kind("Permute", dims), [x], out)


@op(Tensor.transpose, torch.transpose, Tensor.swapaxes, torch.swapaxes)
def _transpose(t, args, kwargs, out):
    x = args[0]
    a = _dim(arg(args, kwargs, 1, "dim0"), x.ndim)
    b = _dim(arg(args, kwargs, 2, "dim1"), x.ndim)
    dims = list(range(x.ndim))
    dims[a], dims[b] = dims[b], dims[a]
    if dims[0] != 0:
        return t.unknown(f"transpose({a}, {b}) moves the batch dim")
    return t.node("transpose", t.kind("Permute", tuple(dims)), [x], out)


@op(torch.cat, torch.concat, torch.concatenate)
def _cat(t, args, kwargs, out):
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = _dim(arg(args, kwargs, 1, "dim", 0), out.ndim)
    if dim == 0:
        return t.unknown("cat along the batch dim")
    if dim == 1 and _prepended(t, tensors, out):
        return None
    return t.node("cat", t.kind("Concat", dim), tensors, out)


def _prepended(t, tensors: list, out) -> bool:
    """``cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(...), x], 1)``: one
    learned prepend a token, the last first (DeiT's distilled model has two)."""
    *tokens, current = tensors
    if not tokens or not all(id(x) in t.pending for x in tokens) or not t.rec.known(current):
        return False
    for i in range(len(tokens) - 1, -1, -1):
        joined = out if i == 0 else torch.cat([tokens[i], current], 1)
        t.learned_prepend(tokens[i], current, joined)
        current = joined
    return True


@op(torch.stack)
def _stack(t, args, kwargs, out):
    tensors = list(arg(args, kwargs, 0, "tensors"))
    dim = _dim(arg(args, kwargs, 1, "dim", 0), out.ndim)
    if dim == 0:
        return t.unknown("stack along the batch dim")
    parts = [x.unsqueeze(dim) for x in tensors]  # each gets the new axis, then one Concat
    for x, part in zip(tensors, parts):
        reshape(t, x, part, "unsqueeze")
    return t.node("stack", t.kind("Concat", dim), parts, out)


def _split_node(t, x, parts, dim, hint):
    dim = _dim(dim, x.ndim)
    if dim == 0:
        return t.unknown(f"{hint} along the batch dim")
    sizes = tuple(int(p.shape[dim]) for p in parts)
    return t.node(hint, t.kind("Split", sizes, dim), [x], tuple(parts))


@op(torch.split, Tensor.split, Tensor.split_with_sizes)
def _split(t, args, kwargs, out):
    return _split_node(t, args[0], out, arg(args, kwargs, 2, "dim", 0), "split")


@op(torch.chunk, Tensor.chunk)
def _chunk(t, args, kwargs, out):
    return _split_node(t, args[0], out, arg(args, kwargs, 2, "dim", 0), "chunk")


@op(torch.unbind, Tensor.unbind)
def _unbind(t, args, kwargs, out):
    x = args[0]
    dim = _dim(arg(args, kwargs, 1, "dim", 0), x.ndim)
    if dim == 0:
        return t.unknown("unbind along the batch dim")
    for i, part in enumerate(out):
        t.node("select", t.kind("Select", dim, i), [x], part)
    return None


@op(Tensor.__getitem__)
def _getitem(t, args, kwargs, out):
    """Basic indexing (ints, slices, None, ...) as a chain of Select/Slice/Reshape nodes."""
    x, index = args[0], args[1]
    index = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (Tensor, list)) or i is True or i is False for i in index):
        return t.unknown("indexing with a tensor or a list (advanced indexing)")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        used = sum(i is not None for i in index) - 1
        index = index[:at] + (slice(None),) * (x.ndim - used) + index[at + 1 :]
    steps, dim = [], 0  # (kind, dim, value), dims counted in the tensor as it is then
    for item in index:
        if item is None:
            steps.append(("unsqueeze", dim, None))
            dim += 1
        elif isinstance(item, int):
            steps.append(("select", dim, item))
        elif isinstance(item, slice):
            if item != slice(None):
                steps.append(("slice", dim, item))
            dim += 1
        else:
            return t.unknown(f"indexing with {type(item).__name__}")
    current = x
    for n, (what, d, value) in enumerate(steps):
        if d == 0:
            return t.unknown("indexing the batch dim")
        last = n == len(steps) - 1
        if what == "select":
            nxt = out if last else current.select(d, value)
            t.node("select", t.kind("Select", d, int(value)), [current], nxt)
        elif what == "slice":
            nxt = out if last else current[(slice(None),) * d + (value,)]
            start, stop, step = value.indices(current.shape[d])
            spec = t.kind("Slice", d, start, stop, step)
            t.node("slice", spec, [current], nxt)
        else:
            nxt = out if last else current.unsqueeze(d)
            reshape(t, current, nxt, "unsqueeze")
        current = nxt
    if not steps:
        t.alias(out, x)
    return None


@op(Tensor.expand, Tensor.expand_as)
def _expand(t, args, kwargs, out):
    if not t.expand_learned(args[0], out):
        t.unknown(f"expand of {tuple(args[0].shape)} to {tuple(out.shape)}")


# ---- reductions and pools --------------------------------------------------------------------
def _reduce(name: str):
    def convert(t, args, kwargs, out):
        x = args[0]
        dims = arg(args, kwargs, 1, "dim")
        if dims is None:
            return t.unknown(f"{name} over every dim (the batch included)")
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        dims = tuple(sorted(_dim(d, x.ndim) for d in dims))
        if 0 in dims:
            return t.unknown(f"{name} over the batch dim")
        keep = bool(arg(args, kwargs, 2, "keepdim", False))
        return t.node(name, t.kind("Reduce", name, dims, keep), [x], out)

    return convert


op(torch.mean, Tensor.mean)(_reduce("mean"))
op(torch.sum, Tensor.sum)(_reduce("sum"))
op(torch.amax, Tensor.amax)(_reduce("max"))


def _adaptive(kind: str):
    def convert(t, args, kwargs, out):
        size = arg(args, kwargs, 1, "output_size")
        return t.node(kind.lower(), adaptive_spec(t, kind, size), [args[0]], out)

    return convert


def adaptive_spec(t, kind: str, size):
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    if any(s is None for s in sizes):
        t.unknown(f"{kind} with output size None (keep the input size)")
        return None
    return t.kind(kind, tuple(sizes) if isinstance(size, (tuple, list)) else size)


op(F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d)(
    _adaptive("AdaptiveAvgPool")
)
op(F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)(
    _adaptive("AdaptiveMaxPool")
)


@op(F.max_pool1d, F.max_pool2d, F.max_pool3d)
def _max_pool(t, args, kwargs, out):
    k = arg(args, kwargs, 1, "kernel_size")
    s = arg(args, kwargs, 2, "stride") or None
    p = arg(args, kwargs, 3, "padding", 0)
    dilation = arg(args, kwargs, 4, "dilation", 1)
    ceil = bool(arg(args, kwargs, 5, "ceil_mode", False))
    return t.node("max_pool", max_pool_spec(t, k, s, p, dilation, ceil), [args[0]], out)


def max_pool_spec(t, k, s, p, dilation, ceil):
    if any(d != 1 for d in (dilation if isinstance(dilation, (tuple, list)) else (dilation,))):
        t.unknown(f"max pooling with dilation {dilation}")
        return None
    return t.kind("MaxPool", k, s, p, ceil)


@op(F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)
def _avg_pool(t, args, kwargs, out):
    k = arg(args, kwargs, 1, "kernel_size")
    s = arg(args, kwargs, 2, "stride") or None
    p = arg(args, kwargs, 3, "padding", 0)
    ceil = bool(arg(args, kwargs, 4, "ceil_mode", False))
    include = bool(arg(args, kwargs, 5, "count_include_pad", True))
    divisor = arg(args, kwargs, 6, "divisor_override")
    spec = avg_pool_spec(t, k, s, p, ceil, include, divisor)
    return t.node("avg_pool", spec, [args[0]], out)


def avg_pool_spec(t, k, s, p, ceil, include, divisor):
    if divisor is not None:
        t.unknown(f"average pooling with divisor_override={divisor}")
        return None
    return t.kind("AvgPool", k, s, p, ceil, count_include_pad=include)


@op(F.interpolate, F.upsample)
def _interpolate(t, args, kwargs, out):
    size = arg(args, kwargs, 1, "size")
    scale = arg(args, kwargs, 2, "scale_factor")
    mode = arg(args, kwargs, 3, "mode", "nearest")
    align = bool(arg(args, kwargs, 4, "align_corners", False) or False)
    return t.node("interpolate", upsample_spec(t, size, scale, mode, align), [args[0]], out)


def upsample_spec(t, size, scale, mode, align):
    size = tuple(size) if isinstance(size, (list, tuple)) else size
    scale = tuple(float(f) for f in scale) if isinstance(scale, (list, tuple)) else scale
    return t.kind("Upsample", scale_factor=scale, size=size, mode=mode, align_corners=align)


@op(F.pad)
def _pad(t, args, kwargs, out):
    pads = tuple(int(p) for p in arg(args, kwargs, 1, "pad"))
    mode = arg(args, kwargs, 2, "mode", "constant")
    value = arg(args, kwargs, 3, "value", None)
    spec = t.kind("Pad", pads, mode, float(value or 0.0))
    return t.node("pad", spec, [args[0]], out)


@op(F.channel_shuffle, torch.channel_shuffle, torch.native_channel_shuffle)
def _channel_shuffle(t, args, kwargs, out):
    groups = int(arg(args, kwargs, 1, "groups"))
    return t.node("channel_shuffle", t.kind("ChannelShuffle", groups), [args[0]], out)


def op_name(func) -> str:
    """``torch.fft.fft``, ``Tensor.view``: what a person would search for."""
    if getattr(func, "__name__", "") == "__get__":  # a property: x.T, x.mT
        return f"Tensor.{getattr(func.__self__, '__name__', 'attribute')}"
    owner = getattr(func, "__objclass__", None)
    if owner is not None or type(func).__name__ in ("method_descriptor", "wrapper_descriptor"):
        return f"Tensor.{func.__name__}"
    qual = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    mod = getattr(func, "__module__", None) or "torch"
    if mod.startswith("torch._C._"):  # torch._C._fft.fft_fft is torch.fft.fft
        sub = mod[len("torch._C._") :]
        mod, qual = f"torch.{sub}", qual.removeprefix(f"{sub}_")
    elif mod.startswith("torch._C"):
        mod = "torch"
    qual = qual.removeprefix("_VariableFunctionsClass.")  # torch.roll's own class
    if mod == "torch._tensor":
        return qual
    return f"{mod}.{qual}"


__all__ = [
    "OPS",
    "op",
    "op_name",
    "adaptive_spec",
    "avg_pool_spec",
    "clip_spec",
    "max_pool_spec",
    "upsample_spec",
]

"""What the Paddle tracer knows: one converter per Paddle operation (``paddle``,
``paddle.nn.functional`` and ``paddle.Tensor`` names) into neutral layer specs, and the
parameter-free ``paddle.nn`` layers, each read as the functional call it makes.

A converter takes the concrete :class:`Call` (bound arguments and the result, at the traced
batch size) and returns the :class:`Step` nodes that compute it, or raises
:class:`Unsupported` saying why it has no neutral form (a dim that moves the batch, a mode
no kind has). Dims are Paddle's, which are the neutral channel-first ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xinit import layers as L


class Unsupported(Exception):
    """An operation's call has no neutral spec; the message says why (not an XinitError:
    the tracer records it as an unknown with the path and source line)."""


@dataclass(frozen=True)
class Step:
    """One node: ``spec`` applied to ``inputs`` (traced tensors or earlier steps' outputs)."""

    hint: str
    spec: Any
    inputs: tuple


ALIAS = "alias"  # a converter's answer for an op whose result is its input's value


class Call:
    """One concrete call: its name, arguments bound by parameter name (defaults applied),
    its result, and the trace's batch size."""

    def __init__(self, name: str, args: dict, out: Any, batch: int, scalar: Callable):
        self.name, self.args, self.out, self.batch = name, args, out, batch
        self._scalar = scalar

    def __getitem__(self, key: str) -> Any:
        return self.args[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)

    def scalar(self, value: Any) -> float | None:
        """``value`` as a number when it is one (or a one-element constant tensor)."""
        return self._scalar(value)

    def dim(self, axis: int, ndim: int) -> int:
        """A Paddle axis as a non-negative dim, refusing the batch dim."""
        if not isinstance(axis, int):
            raise Unsupported(f"axis {axis!r} is not a Python int")
        d = axis % ndim
        if d == 0:
            raise Unsupported("it acts on the batch dim (dim 0), which a spec keeps free")
        return d


def bind(name: str, fn: Callable, args: tuple, kwargs: dict) -> dict:
    """``fn``'s arguments by parameter name, defaults applied (operators: ``x``, ``y``)."""
    if name.startswith("__"):
        return {**dict(zip(("x", "y"), args)), **kwargs}
    sig = _signature(fn)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out = dict(bound.arguments)
    first = next(iter(sig.parameters), None)
    if (
        first in ("self", "input") and "x" not in out
    ):  # ``astype(self, ..)``, ``permute(input, ..)``
        out = {"x": out.pop(first), **out}
    return out


_SIGNATURES: dict[Any, inspect.Signature] = {}


def _signature(fn):
    if fn not in _SIGNATURES:
        _SIGNATURES[fn] = inspect.signature(fn)
    return _SIGNATURES[fn]


def kind(name: str):
    """The layer spec class ``name`` of xinit.layers, or Unsupported when this xinit lacks it."""
    cls = getattr(L, name, None)
    if cls is None:
        raise Unsupported(f"it needs xinit's {name} layer kind, which this version lacks")
    return cls


CONVERTERS: dict[str, Callable[[Call], Any]] = {}


def op(*names: str):
    """Register a converter under Paddle function/method names (``__name__`` or attribute)."""

    def register(fn):
        for n in names:
            CONVERTERS[n] = fn
        return fn

    return register


def _one(hint: str, spec: Any, x: Any) -> list[Step]:
    return [Step(hint, spec, (x,))]


# ---- arithmetic -------------------------------------------------------------------------
_BINARY = {
    "add": ("add", False),
    "__add__": ("add", False),
    "__radd__": ("add", True),
    "subtract": ("sub", False),
    "__sub__": ("sub", False),
    "__rsub__": ("sub", True),
    "multiply": ("mul", False),
    "__mul__": ("mul", False),
    "__rmul__": ("mul", True),
    "divide": ("div", False),
    "__truediv__": ("div", False),
    "__rtruediv__": ("div", True),
    "pow": ("pow", False),
    "__pow__": ("pow", False),
    "__rpow__": ("pow", True),
    "matmul": ("matmul", False),
    "__matmul__": ("matmul", False),
    "__rmatmul__": ("matmul", True),
    "bmm": ("matmul", False),
}
_MERGES = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "matmul": "MatMul"}
_COMMUTES = {"add", "mul"}


@op(*_BINARY)
def binary(call: Call) -> list[Step]:
    name, reflected = _BINARY[call.name]
    values = list(call.args.values())
    a, b = values[0], values[1]
    if call.get("transpose_x") or call.get("transpose_y"):
        raise Unsupported("matmul's transpose_x/transpose_y have no neutral form")
    left, right = (b, a) if reflected else (a, b)
    lv, rv = call.scalar(left), call.scalar(right)
    if lv is None and rv is None:
        return [Step(name, kind(_MERGES[name])() if name in _MERGES else _no(name), (left, right))]
    if lv is not None and rv is not None:
        raise Unsupported("both operands are constants")
    if rv is not None:
        return _one(name, kind("ScalarOp")(name, rv), left)
    if name in _COMMUTES:
        return _one(name, kind("ScalarOp")(name, lv), right)
    if name in ("sub", "div"):
        return _one(name, kind("ScalarOp")("r" + name, lv), right)
    raise Unsupported(f"a number {name} a tensor has no neutral form")


def _no(name: str):
    raise Unsupported(f"{name} of two tensors has no neutral form")


@op("__neg__", "neg")
def neg(call: Call) -> list[Step]:
    return _one("neg", kind("ScalarOp")("mul", -1.0), call["x"])


@op("scale")
def scale(call: Call) -> list[Step]:
    s, b = call.scalar(call["scale"]), float(call.get("bias", 0.0))
    if s is None or not call.get("bias_after_scale", True):
        raise Unsupported("only a number scale with the bias added after scaling is known")
    steps = _one("scale", kind("ScalarOp")("mul", s), call["x"])
    if b:
        steps.append(Step("scale_bias", kind("ScalarOp")("add", b), (steps[-1],)))
    return steps


# ---- activations --------------------------------------------------------------------------
_ACTIVATIONS: dict[str, Callable[[Call], Any]] = {
    "relu": lambda c: L.ReLU(),
    "relu6": lambda c: kind("ReLU6")(),
    "hardswish": lambda c: L.Hardswish(),
    "hardsigmoid": lambda c: hardsigmoid_spec(c),
    "sigmoid": lambda c: L.Sigmoid(),
    "tanh": lambda c: L.Tanh(),
    "silu": lambda c: L.SiLU(),
    "swish": lambda c: L.SiLU(),
    "gelu": lambda c: L.GELU("tanh" if c["approximate"] else "none"),
    "leaky_relu": lambda c: L.LeakyReLU(float(c["negative_slope"])),
    "softmax": lambda c: kind("Softmax")(int(c["axis"])),
    "log_softmax": lambda c: kind("LogSoftmax")(int(c["axis"])),
    "clip": lambda c: kind("Clip")(c.scalar(c["min"]), c.scalar(c["max"])),
    "hardtanh": lambda c: kind("Clip")(float(c["min"]), float(c["max"])),
    "identity": lambda c: L.Identity(),
}


# Paddle's default hardsigmoid slope, the float32 a ``paddle.nn.Hardsigmoid()`` computes with.
PADDLE_HARDSIGMOID_SLOPE = 0.1666667


def hardsigmoid_spec(call: Call) -> Any:
    """``F.hardsigmoid(x, slope, offset)``; Paddle's defaults (slope 0.1666667, offset 0.5)
    are the kind's default, PyTorch's 1/6, which Paddle builds as ``nn.Hardsigmoid()``."""
    slope, offset = float(call["slope"]), float(call["offset"])
    if slope == PADDLE_HARDSIGMOID_SLOPE and offset == 0.5:
        return kind("Hardsigmoid")()
    return kind("Hardsigmoid")(slope, offset)


@op(*_ACTIVATIONS)
def activation(call: Call) -> list[Step]:
    if call.name in ("softmax", "log_softmax") and call.get("dtype") is not None:
        raise Unsupported("a dtype cast inside softmax has no neutral form")
    if call.name in ("softmax", "log_softmax"):
        call.dim(int(call["axis"]), len(call["x"].shape))
    return _one(call.name, _ACTIVATIONS[call.name](call), call["x"])


@op("dropout")
def dropout(call: Call) -> list[Step]:
    if call.get("axis") is not None:
        raise Unsupported("dropout along an axis has no neutral form")
    p, mode = float(call["p"]), call.get("mode", "upscale_in_train")
    if mode == "upscale_in_train":
        return _one("dropout", L.Dropout(p), call["x"])
    if "mode" not in getattr(L.Dropout, "__dataclass_fields__", {}):
        raise Unsupported(f"Dropout mode {mode!r} needs xinit's Dropout(mode=...)")
    return _one("dropout", L.Dropout(p, mode=mode), call["x"])


# ---- shapes -------------------------------------------------------------------------------
def _batch_kept(call: Call, x: Any) -> None:
    out = call.out
    if int(x.shape[0]) != call.batch or int(out.shape[0]) != call.batch:
        raise Unsupported(
            f"it changes the batch dim ({list(x.shape)} -> {list(out.shape)}), which a spec "
            "keeps free"
        )


@op("reshape", "view", "reshape_")
def reshape(call: Call) -> list[Step]:
    x, shape = call["x"], call.get("shape", call.get("shape_or_dtype"))
    if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) for d in shape):
        raise Unsupported(f"shape {shape!r} is not a list of Python ints")
    _batch_kept(call, x)
    if shape[0] not in (call.batch, -1, 0):
        raise Unsupported(f"shape {list(shape)} does not keep the batch as dim 0")
    rest = tuple(int(x.shape[i]) if d == 0 else d for i, d in enumerate(shape) if i)
    if not rest:
        raise Unsupported("a reshape to (N,) has no neutral form")
    return _one("reshape", L.Reshape(rest), x)


@op("flatten")
def flatten(call: Call) -> list[Step]:
    x = call["x"]
    n = len(x.shape)
    start, stop = int(call["start_axis"]), int(call["stop_axis"])
    if start % n == 0 and stop % n == 0:
        return ALIAS
    call.dim(start, n)
    return _one("flatten", L.Flatten(start, stop), x)  # the axes as given (-1: the last)


@op("squeeze", "unsqueeze", "squeeze_", "unsqueeze_")
def squeeze(call: Call) -> list[Step]:
    x = call["x"]
    _batch_kept(call, x)
    rest = tuple(int(d) for d in call.out.shape[1:])
    if not rest:
        raise Unsupported("a squeeze to (N,) has no neutral form")
    return _one(call.name.rstrip("_"), L.Reshape(rest), x)


@op("transpose", "permute")
def transpose(call: Call) -> list[Step]:
    perm = call.get("perm", call.get("dims"))
    if not isinstance(perm, (list, tuple)):
        raise Unsupported(f"perm {perm!r} is not a list")
    perm = tuple(int(p) % len(perm) for p in perm)
    if perm[0] != 0:
        raise BatchMoved(call["x"], perm)
    return _one(_permute_name(call.name, perm), L.Permute(perm), call["x"])


def _permute_name(name: str, perm: tuple[int, ...]) -> str:
    """PyTorch's tracer's name for the node: ``transpose`` for a ``transpose`` that swaps two
    dims (PyTorch's ``x.transpose(a, b)``), else ``permute``."""
    swapped = sum(i != p for i, p in enumerate(perm)) == 2
    return "transpose" if name == "transpose" and swapped else "permute"


class BatchMoved(Unsupported):
    """A transpose that moves the batch off dim 0: no spec, unless an int index of the new
    dim 0 follows (:func:`moved_index`)."""

    def __init__(self, x: Any, perm: tuple[int, ...]):
        super().__init__(
            f"perm {list(perm)} moves the batch dim, which a spec keeps free (only an int "
            "index of the new dim 0 may follow)"
        )
        self.x, self.perm = x, perm


def moved_index(x: Any, perm: tuple[int, ...], index: Any) -> list[Step]:
    """``x.transpose(perm)[i]`` with ``perm`` moving the batch off dim 0 (PaddleOCR's
    attention unpacks q, k, v so): part ``i`` of dim ``perm[0]`` of ``x``, then the rest of
    the permutation, which must bring the batch back to dim 0."""
    if not isinstance(index, int) or isinstance(index, bool):
        raise Unsupported(f"index {index!r} of a batch-moving transpose is not one int")
    d = perm[0]
    rest = tuple(p - (p > d) for p in perm[1:])
    if rest[0] != 0:
        raise Unsupported(f"perm {list(perm)} indexed at {index} leaves the batch off dim 0")
    steps = [Step("select", L.Select(d, index), (x,))]
    if rest != tuple(range(len(rest))):
        steps.append(Step(_permute_name("transpose", rest), L.Permute(rest), (steps[0],)))
    return steps


@op("concat")
def concat(call: Call) -> list[Step]:
    xs = list(call["x"])
    axis = call["axis"]
    call.dim(int(axis) if not hasattr(axis, "shape") else axis, len(xs[0].shape))
    return [Step("cat", L.Concat(int(axis)), tuple(xs))]  # PyTorch's tracer's name


@op("split", "chunk")
def split(call: Call) -> list[Step]:
    x = call["x"]
    axis = call.dim(int(call["axis"]), len(x.shape))
    sizes = tuple(int(o.shape[axis]) for o in call.out)
    return _one(call.name, kind("Split")(sizes, axis), x)


@op("channel_shuffle")
def channel_shuffle(call: Call) -> list[Step]:
    if call.get("data_format") not in (None, "NCHW"):
        raise Unsupported(f"data_format {call['data_format']!r}: a channel-last shuffle")
    return _one("channel_shuffle", kind("ChannelShuffle")(int(call["groups"])), call["x"])


@op("__getitem__")
def getitem(call: Call) -> list[Step]:
    x, index = call["x"], call["y"]
    index = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, (int, slice)) and i is not Ellipsis for i in index) or any(
        isinstance(i, bool) for i in index
    ):
        raise Unsupported("only ints, slices and ... index a traced tensor")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        fill = len(x.shape) - (len(index) - 1)
        index = index[:at] + (slice(None),) * fill + index[at + 1 :]
    steps: list[Step] = []
    dim = 0
    for item in index:
        if isinstance(item, slice) and item == slice(None):
            dim += 1
            continue
        if dim == 0:
            raise Unsupported("it indexes the batch dim, which a spec keeps free")
        if isinstance(item, int):
            spec = L.Select(dim, item)
        else:
            if (item.step or 1) < 1:
                raise Unsupported("a negative slice step has no neutral form")
            spec = kind("Slice")(dim, item.start or 0, item.stop, item.step or 1)
            dim += 1
        steps.append(Step("select" if isinstance(item, int) else "slice", spec, (_last(steps, x),)))
    return steps or ALIAS


def _last(steps: list[Step], x: Any) -> Any:
    return steps[-1] if steps else x


@op("mean", "sum", "max", "amax")
def reduce(call: Call) -> list[Step]:
    x, axis = call["x"], call.get("axis")
    if call.get("dtype") is not None:
        raise Unsupported("a dtype cast inside the reduction has no neutral form")
    if axis is None:
        raise Unsupported("it reduces over every dim, the batch included")
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    dims = tuple(call.dim(int(a), len(x.shape)) for a in axes)
    name = {"amax": "max"}.get(call.name, call.name)
    return _one(name, kind("Reduce")(name, dims, bool(call.get("keepdim", False))), x)


# ---- pooling and resizing -------------------------------------------------------------------
def _spatial(value: Any, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    if (
        isinstance(value, (list, tuple))
        and len(value) == n
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(value)
    raise Unsupported(f"{what} {value!r} has no neutral form")


def _pool_padding(value: Any, n: int) -> tuple[int, ...]:
    """Paddle's pool padding (an int, one per dim, a (before, after) pair per dim when equal,
    or 'VALID') as PyTorch's symmetric padding."""
    if isinstance(value, str):
        if value.upper() == "VALID":
            return (0,) * n
        raise Unsupported(f"padding {value!r} has no neutral form")
    if isinstance(value, (list, tuple)) and len(value) == 2 * n:
        pairs = [tuple(value[2 * i : 2 * i + 2]) for i in range(n)]
        if all(a == b for a, b in pairs):
            return tuple(a for a, _ in pairs)
    return _spatial(value, n, "padding")


def _pool_args(call: Call) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    x = call["x"]
    n = len(x.shape) - 2
    if call.get("data_format") not in (None, "NCL", "NCHW", "NCDHW"):
        raise Unsupported(f"data_format {call['data_format']!r}: channel-last pooling")
    if call.get("return_mask"):
        raise Unsupported("return_mask (pooling indices) has no neutral form")
    k = _spatial(call["kernel_size"], n, "kernel_size")
    stride = call.get("stride")
    s = k if stride is None else _spatial(stride, n, "stride")
    return k, s, _pool_padding(call.get("padding", 0), n)


@op("max_pool1d", "max_pool2d", "max_pool3d")
def max_pool(call: Call) -> list[Step]:
    k, s, p = _pool_args(call)
    return _one("max_pool", L.MaxPool(k, s, p, bool(call.get("ceil_mode"))), call["x"])


@op("avg_pool1d", "avg_pool2d", "avg_pool3d")
def avg_pool(call: Call) -> list[Step]:
    k, s, p = _pool_args(call)
    if call.get("divisor_override") is not None:
        raise Unsupported("divisor_override has no neutral form")
    exclusive = bool(call.get("exclusive", True))
    spec = L.AvgPool(k, s, p, bool(call.get("ceil_mode")), count_include_pad=not exclusive)
    return _one("avg_pool", spec, call["x"])


def _output_size(call: Call) -> tuple[int, ...]:
    n = len(call["x"].shape) - 2
    if call.get("data_format") not in (None, "NCL", "NCHW", "NCDHW"):
        raise Unsupported(f"data_format {call['data_format']!r}: channel-last pooling")
    return _spatial(call["output_size"], n, "output_size")


@op("adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d")
def adaptive_avg_pool(call: Call) -> list[Step]:
    return _one("adaptive_avg_pool", L.AdaptiveAvgPool(_output_size(call)), call["x"])


@op("adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d")
def adaptive_max_pool(call: Call) -> list[Step]:
    if call.get("return_mask"):
        raise Unsupported("return_mask (pooling indices) has no neutral form")
    return _one("adaptive_max_pool", kind("AdaptiveMaxPool")(_output_size(call)), call["x"])


@op("interpolate", "upsample")
def interpolate(call: Call) -> list[Step]:
    mode = str(call.get("mode", "nearest")).lower()
    if call.get("data_format") not in (None, "NCW", "NCHW", "NCDHW"):
        raise Unsupported(f"data_format {call['data_format']!r}: channel-last resizing")
    if mode not in ("nearest", "bilinear"):
        raise Unsupported(f"mode {mode!r} has no neutral form")
    corners = bool(call.get("align_corners"))
    if mode == "bilinear" and not corners and call.get("align_mode", 0) != 0:
        raise Unsupported("bilinear align_mode=1 (Paddle's asymmetric sampling) is not PyTorch's")
    size, factor = call.get("size"), call.get("scale_factor")
    if size is not None:
        size = tuple(int(s) for s in size) if isinstance(size, (list, tuple)) else int(size)
        return _one(
            "interpolate", L.Upsample(size=size, mode=mode, align_corners=corners), call["x"]
        )
    factor = tuple(float(f) for f in factor) if isinstance(factor, (list, tuple)) else factor
    spec = L.Upsample(scale_factor=factor, mode=mode, align_corners=corners)
    return _one("interpolate", spec, call["x"])


@op("pad")
def pad(call: Call) -> list[Step]:
    """Paddle's pads as PyTorch's (last dim first): a list of 2·ndim in constant mode is
    every dim, first dim first (unless ``pad_from_left_axis=False``); any shorter constant
    list, and the other modes' 2·(ndim - 2), are PyTorch's order already."""
    x, pads, mode = call["x"], call["pad"], str(call.get("mode", "constant"))
    n = len(x.shape)
    if call.get("data_format") not in (None, "NCL", "NCHW", "NCDHW"):
        raise Unsupported(f"data_format {call['data_format']!r}: channel-last padding")
    if not isinstance(pads, (list, tuple)) or not all(isinstance(p, int) for p in pads):
        raise Unsupported(f"pad {pads!r} is not a list of Python ints")
    pads = [int(p) for p in pads]
    if mode == "constant" and len(pads) == 2 * n and call.get("pad_from_left_axis", True):
        pads = [v for i in reversed(range(n)) for v in pads[2 * i : 2 * i + 2]]
    if len(pads) == 2 * n and mode == "constant":
        if any(pads[-2:]):
            raise Unsupported("it pads the batch dim")
        pads = pads[:-2] if any(pads[-4:-2]) else pads[:-4]  # the channels' pair if padded
    elif (
        not pads
        or len(pads) % 2
        or len(pads) > 2 * n
        or (mode != "constant" and len(pads) != 2 * (n - 2))
    ):
        raise Unsupported(f"pad {pads!r} of a {n}-d input in mode {mode!r} has no neutral form")
    value = call.scalar(call.get("value", 0.0))
    return _one("pad", kind("Pad")(tuple(pads), mode, value or 0.0), x)


# ---- values unchanged -----------------------------------------------------------------------
@op("detach", "clone", "contiguous", "assign")
def same(call: Call) -> str:
    return ALIAS


@op("astype", "cast")
def cast(call: Call) -> str:
    if call.out.dtype != call["x"].dtype:
        raise Unsupported(f"a cast to {call.out.dtype} has no neutral form")
    return ALIAS


__all__ = ["ALIAS", "CONVERTERS", "Call", "Step", "Unsupported", "bind"]

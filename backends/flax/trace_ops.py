"""The jax operations the Flax tracer converts into spec nodes, one converter per operation,
and the interception that routes them there while a trace runs (:mod:`tracing`).

A converter gets the tracer, the operation's result and its arguments, and records the
node(s) in neutral (channel-first) terms through the array's ``perm``. An operation it
cannot express raises :class:`_Unsupported` with the reason; an intercepted function with no
converter is "not an operation xinit can trace". Both become the trace's unknowns.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

from xinit import layers as L

# ---- interception --------------------------------------------------------------------------
_NAMESPACES = (
    "jax.nn",
    "jax.numpy",
    "jax.numpy.linalg",
    "jax.numpy.fft",
    "jax.lax",
    "jax.image",
    "flax.nnx",
)
_SKIP_TYPES = ("_ScalarMeta", "_DTypeMeta", "ArrayMeta")
# jax.Array methods and operators converted, and those only reported when they meet a
# traced array; the others (shape, dtype, devices...) are left alone.
_METHODS = (
    *("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__"),
    *("__rtruediv__", "__matmul__", "__rmatmul__", "__pow__", "__neg__", "__pos__"),
    *("__getitem__", "reshape", "transpose", "swapaxes", "mean", "sum", "max", "squeeze"),
    *("astype", "clip", "flatten", "ravel"),
    *("__floordiv__", "__mod__", "__rpow__", "__lt__", "__le__", "__gt__", "__ge__"),
    *("__abs__", "std", "var", "min", "argmax", "argmin", "cumsum", "prod", "round"),
)


class _Unsupported(Exception):
    """An operation the converter cannot express: the reason."""


class _Intercept:
    """A wrapped jax function or method: converted when it meets a traced array (or a
    parameter of the module being traced), passed through otherwise."""

    def __init__(self, fn, name: str, tracer):
        self.fn, self.name, self.tracer = fn, name, tracer

    def __getattr__(self, attr):  # ufuncs' .reduce, jit's .lower ...
        return getattr(self.fn, attr)

    def __call__(self, *args, **kwargs):
        t = self.tracer
        if not t.live():
            return self.fn(*args, **kwargs)
        from .trace_perms import _flat

        flat = _flat(list(args) + list(kwargs.values()))
        t.glue([_value(a) for a in flat])  # an operation of the frame's own code
        mine = [a for a in flat if t.tracked(_value(a)) or t.param_of(a) is not None]
        if not mine:
            return t.quiet(self.fn, *args, **kwargs)
        out = t.quiet(self.fn, *args, **kwargs)
        convert = CONVERTERS.get(self.name.rpartition(".")[2] if self.method else self.name)
        try:
            if convert is None:
                raise _Unsupported(f"{self.name} is not an operation xinit can trace")
            t.in_glue = True
            convert(t, out, *args, **kwargs)
        except _Unsupported as why:
            t.in_glue = False
            t.unknown_op(str(why), out, [_value(a) for a in mine])
        finally:
            t.in_glue = False
        return out

    method = False


class _Method(_Intercept):
    method = True

    def __get__(self, obj, cls=None):
        return self if obj is None else (lambda *a, **k: self(obj, *a, **k))


def _value(a):
    """An nnx.Variable's array, anything else as it is."""
    from flax import nnx

    return a.get_value() if isinstance(a, nnx.Variable) else a


@contextlib.contextmanager
def intercepting(tracer):
    """Route the public jax functions and the ``jax.Array`` methods through ``tracer``."""
    import importlib
    import inspect

    import jax

    array = type(jax.numpy.zeros(()))
    patched: list[tuple[Any, str, Any]] = []
    wrappers: dict[int, _Intercept] = {}
    for space in _NAMESPACES:
        module = importlib.import_module(space)
        for name, value in list(vars(module).items()):
            if name.startswith("_") or not callable(value) or inspect.isclass(value):
                continue
            if inspect.ismodule(value) or type(value).__name__ in _SKIP_TYPES:
                continue
            origin = getattr(value, "__module__", "") or ""
            pooling = origin.startswith("flax.linen.pooling")
            if space == "flax.nnx" and id(value) not in wrappers and not pooling:
                continue  # nnx's own API; its activations are jax.nn's, wrapped already
            if id(value) not in wrappers:
                wrappers[id(value)] = _Intercept(value, f"{space}.{name}", tracer)
            patched.append((module, name, value))
            setattr(module, name, wrappers[id(value)])
    for _, module in tracer.adapter.named_layers(tracer.model):
        for name, value in list(vars(module).items()):  # ``self.act = nnx.gelu``, Sequential's
            func = value.func if isinstance(value, functools.partial) else value
            if callable(func) and id(func) in wrappers:
                patched.append((module, name, value))
                wrapper = wrappers[id(func)]
                if isinstance(value, functools.partial):
                    wrapper = functools.partial(wrapper, *value.args, **value.keywords)
                setattr(module, name, wrapper)
    for name in _METHODS:
        original = array.__dict__.get(name)
        if original is None:
            continue
        patched.append((array, name, original))
        setattr(array, name, _Method(original, f"jax.Array.{name}", tracer))
    transpose_t = array.__dict__.get("T")
    if transpose_t is not None:
        patched.append((array, "T", transpose_t))
        method = _Method(lambda x: transpose_t.__get__(x), "jax.Array.T", tracer)
        array.T = property(lambda x: method(x))
    try:
        yield
    finally:
        for owner, name, value in reversed(patched):
            setattr(owner, name, value)


# ---- helpers -------------------------------------------------------------------------------
def _arg(args, kwargs, i: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[i] if len(args) > i else default


def _axes(axis, ndim: int) -> tuple[int, ...]:
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted(int(a) % ndim for a in axes))


def _compress(values: list[int]) -> tuple[int, ...]:
    """Neutral axes renumbered 0..n-1 in their order, after some were removed."""
    order = sorted(values)
    return tuple(order.index(v) for v in values)


def _kind(name: str):
    """The layer spec class ``name`` (kinds added with tracing may be absent)."""
    spec = getattr(L, name, None)
    if spec is None:
        raise _Unsupported(f"needs xinit's {name} kind, which this version lacks")
    return spec


def _tensor(t, v):
    """A traced array, or a parameter of the frame's module made one (a learned tensor)."""
    v0 = _value(v)
    if t.tracked(v0):
        return v0
    own = t.param_of(v)
    if own is None:
        raise _Unsupported(f"an array that is no traced value or parameter, shape {v0.shape}")
    attr, array = own
    t.rec.parameter(attr, _kind("LearnedTensor")(tuple(array.shape)), array)
    t.set_perm(array, tuple(range(array.ndim)))
    return array


def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


def _not_batch(t, x, axes, what: str) -> None:
    if any(t.perm(x)[a] == 0 for a in axes):
        raise _Unsupported(f"{what} over the batch axis (the batch must stay free)")


# ---- arithmetic ----------------------------------------------------------------------------
_TENSOR_OPS = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "matmul": "MatMul"}
_SWAPPED = {"add": "add", "sub": "rsub", "mul": "mul", "div": "rdiv", "pow": None}


def _binary(op: str, swapped: bool = False):
    def convert(t, out, a, b, *rest, **kwargs):
        if swapped:
            a, b = b, a
        na, nb = _number(a), _number(b)
        if na is None and nb is None:
            return _two(t, out, op, a, b)
        if op == "matmul":
            raise _Unsupported("a matmul with a number")
        if nb is not None:
            x, value, scalar_op = _tensor(t, a), nb, op
        else:
            x, value, scalar_op = _tensor(t, b), na, _SWAPPED[op]
        if scalar_op is None:
            raise _Unsupported(f"a number to the power of an array ({op})")
        spec = _kind("ScalarOp")(scalar_op, value)
        t.emit(scalar_op, spec, [x], out, t.perm(x))

    return convert


def _two(t, out, op, a, b):
    pa, pb = (t.param_of(v) for v in (a, b))
    x = _tensor(t, a) if pa is None else None
    y = _tensor(t, b) if pb is None else None
    if op == "add" and (pa or pb) and (x is not None or y is not None):
        (attr, p), other = (pa, y) if pa else (pb, x)
        if p.shape == (1, *other.shape[1:]) and t.perm(other) == tuple(range(other.ndim)):
            # a position embedding: the node of the parameter's own name adds it
            t.emit(attr, L.LearnedParameter(tuple(p.shape), "add"), [other], out, t.perm(other))
            return
    x = x if x is not None else _tensor(t, a)
    y = y if y is not None else _tensor(t, b)
    ident = tuple(range(out.ndim))
    if op == "matmul" or x.ndim != y.ndim:
        perm = ident  # numpy's alignment of the physical axes
    else:
        perm = t.perm(x) if x.ndim == out.ndim else ident
    spec = _kind(_TENSOR_OPS[op])()
    inputs = [t.at(x, perm if x.ndim == len(perm) else tuple(range(x.ndim)))]
    inputs.append(t.at(y, perm if y.ndim == len(perm) else tuple(range(y.ndim))))
    t.emit(op, spec, inputs, out, perm)


def _negate(t, out, x, *rest):
    x = _tensor(t, x)
    t.emit("neg", _kind("ScalarOp")("mul", -1.0), [x], out, t.perm(x))


def _same(t, out, x, *args, **kwargs):
    x = _tensor(t, x)
    if getattr(out, "dtype", None) != x.dtype or out.shape != x.shape:
        raise _Unsupported(f"a cast from {x.dtype} to {getattr(out, 'dtype', '?')}")
    t.alias(out, x, t.perm(x))


# ---- activations ---------------------------------------------------------------------------
def _activation(make):
    def convert(t, out, x, *args, **kwargs):
        x = _tensor(t, x)
        spec = make(t, x, args, kwargs)
        t.emit(spec.kind, spec, [x], out, t.perm(x))

    return convert


def _over_dim(kind: str):
    def make(t, x, args, kwargs):
        (axis,) = _axes(_arg(args, kwargs, 0, "axis", -1), x.ndim)
        _not_batch(t, x, (axis,), kind)
        return _kind(kind)(dim=t.perm(x)[axis])

    return make


def _clip(t, x, args, kwargs):
    low, high = _arg(args, kwargs, 0, "min"), _arg(args, kwargs, 1, "max")
    low, high = _arg((), kwargs, 0, "a_min", low), _arg((), kwargs, 0, "a_max", high)
    if (low is not None and _number(low) is None) or (high is not None and _number(high) is None):
        raise _Unsupported("a clip by arrays")
    return _kind("Clip")(low, high)


_ACTIVATIONS = {
    "relu": lambda t, x, a, k: L.ReLU(),
    "relu6": lambda t, x, a, k: _kind("ReLU6")(),
    "gelu": lambda t, x, a, k: L.GELU("tanh" if _arg(a, k, 0, "approximate", True) else "none"),
    "silu": lambda t, x, a, k: L.SiLU(),
    "swish": lambda t, x, a, k: L.SiLU(),
    "sigmoid": lambda t, x, a, k: L.Sigmoid(),
    "tanh": lambda t, x, a, k: L.Tanh(),
    "hard_swish": lambda t, x, a, k: L.Hardswish(),
    "hard_sigmoid": lambda t, x, a, k: _kind("Hardsigmoid")(),
    "hard_tanh": lambda t, x, a, k: _kind("Clip")(-1.0, 1.0),
    "leaky_relu": lambda t, x, a, k: L.LeakyReLU(float(_arg(a, k, 0, "negative_slope", 0.01))),
    "softmax": _over_dim("Softmax"),
    "log_softmax": _over_dim("LogSoftmax"),
    "clip": _clip,
}


# ---- reductions and axis operations --------------------------------------------------------
def _reduce(op: str):
    def convert(t, out, x, *args, **kwargs):
        x = _tensor(t, x)
        axis = _arg(args, kwargs, 0, "axis")
        if axis is None:
            raise _Unsupported(f"a {op} over all axes, the batch included")
        axes = _axes(axis, x.ndim)
        _not_batch(t, x, axes, f"a {op}")
        keep = bool(kwargs.get("keepdims", False))
        perm = t.perm(x)
        dims = tuple(sorted(perm[a] for a in axes))
        out_perm = perm if keep else _compress([p for i, p in enumerate(perm) if i not in axes])
        t.emit(op, _kind("Reduce")(op, dims, keepdim=keep), [x], out, out_perm)

    return convert


def _transpose_axes(name: str, x, args, kwargs) -> tuple[int, ...]:
    n = x.ndim
    if name == "T":
        return tuple(reversed(range(n)))
    if name == "swapaxes":
        a, b = (
            int(v) % n for v in (_arg(args, kwargs, 0, "axis1"), _arg(args, kwargs, 1, "axis2"))
        )
        axes = list(range(n))
        axes[a], axes[b] = b, a
        return tuple(axes)
    if name == "moveaxis":
        src, dst = (
            int(v) % n
            for v in (_arg(args, kwargs, 0, "source"), _arg(args, kwargs, 1, "destination"))
        )
        axes = [i for i in range(n) if i != src]
        axes.insert(dst, src)
        return tuple(axes)
    axes = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args
    axes = kwargs.get("axes", axes) or tuple(reversed(range(n)))
    return tuple(int(a) % n for a in axes)


def _transpose(name: str):
    def convert(t, out, x, *args, **kwargs):
        x = _tensor(t, x)
        axes = _transpose_axes(name, x, args, kwargs)
        if axes[0] != 0:
            raise _Unsupported(f"a transpose {axes} that moves the batch axis")
        perm = t.perm(x)
        t.alias(out, x, tuple(perm[a] for a in axes))

    return convert


def _reshape(t, out, x, *args, **kwargs):
    x = _tensor(t, x)
    shape, new = tuple(x.shape), tuple(out.shape)
    if not new or new[0] != shape[0]:
        raise _Unsupported(f"a reshape {shape} -> {new} that changes the batch axis")
    if new == shape:
        t.alias(out, x, t.perm(x))
        return
    view = t.at(x, tuple(range(x.ndim)))  # the physical order first
    k = next((k for k in range(1, len(new)) if new[:k] == shape[:k] and len(new) == k + 1), None)
    if k is not None and new[k] == math.prod(shape[k:]):
        spec = L.Flatten(start_dim=k) if k > 1 else L.Flatten()
    else:
        spec = L.Reshape(new[1:])
    t.emit(spec.kind, spec, [view], out, tuple(range(out.ndim)))


def _squeeze(t, out, x, *args, **kwargs):
    x = _tensor(t, x)
    axis = _arg(args, kwargs, 0, "axis")
    if axis is None:
        raise _Unsupported("a squeeze without an axis (it would drop a batch of 1)")
    _chain(t, out, x, [(a, 0) for a in _axes(axis, x.ndim)], "squeeze")


def _chain(t, out, x, picks: list, what: str, slices=None) -> None:
    """Selects (physical axis, index) and slices (physical axis, start, stop, step) of ``x``
    as a chain of nodes ending in ``out``."""
    from .trace_perms import _Token

    steps, perm = [], list(t.perm(x))
    removed = 0
    for item in sorted(picks + (slices or []), key=lambda s: s[0]):
        axis = item[0] - removed
        if perm[axis] == 0:
            raise _Unsupported(f"{what} of the batch axis")
        if len(item) == 2:  # a select
            steps.append((L.Select(perm[axis], int(item[1])), None))
            del perm[axis]
            perm = list(_compress(perm))
            removed += 1
            steps[-1] = (steps[-1][0], tuple(perm))
        else:
            _, start, stop, step = item
            steps.append((_kind("Slice")(perm[axis], start, stop, step), tuple(perm)))
    if not steps:
        t.alias(out, x, t.perm(x))
        return
    cur = x
    for i, (spec, p) in enumerate(steps):
        target = out if i == len(steps) - 1 else _Token()
        t.emit(spec.kind, spec, [cur], target, p)
        cur = target


def _getitem(t, out, x, index):
    if t.param_of(x) is not None and index is Ellipsis:  # ``self.cls_token[...]``
        t.param_alias(out, _value(x))
        return
    x = _tensor(t, x)
    items = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in items) > 1:
        raise _Unsupported("an index with two ellipses")
    for i in items:
        if not (
            i is Ellipsis
            or isinstance(i, slice)
            or (isinstance(i, int) and not isinstance(i, bool))
        ):
            raise _Unsupported(f"an index by {type(i).__name__} ({i!r})")
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items = items[:at] + (slice(None),) * (x.ndim - len(items) + 1) + items[at + 1 :]
    picks, slices = [], []
    for axis, i in enumerate(items):
        if isinstance(i, int):
            picks.append((axis, i))
            continue
        start, stop, step = i.indices(x.shape[axis])
        if (start, stop, step) != (0, x.shape[axis], 1):
            slices.append((axis, start, None if stop >= x.shape[axis] else stop, step))
    _chain(t, out, x, picks, "an index", slices)


def _concatenate(t, out, arrays, axis=0, **kwargs):
    axis = int(kwargs.get("axis", axis))
    parts = list(arrays)
    own = [t.param_of(p) for p in parts]
    pending = [t.pending.get(id(_value(p))) for p in parts]
    first = next((i for i, p in enumerate(parts) if not (own[i] or pending[i])), None)
    if first is None:
        raise _Unsupported("a concatenation of parameters alone")
    x = _tensor(t, parts[first])
    if len(parts) == 2 and first == 1 and (own[0] or pending[0]):
        attr, p = own[0] or pending[0]
        if axis % x.ndim == 1 and t.perm(x) == tuple(range(x.ndim)) and p.shape[0] == 1:
            # a class token: prepended, broadcast over the batch, by the node of its name
            t.emit(attr, L.LearnedParameter(tuple(p.shape), "prepend"), [x], out, t.perm(x))
            return
    perm = t.perm(x)
    _not_batch(t, x, (axis % x.ndim,), "a concatenation")
    views = [t.at(_tensor(t, p), perm) for p in parts]
    t.emit("concat", L.Concat(perm[axis % x.ndim]), views, out, perm)


def _broadcast(t, out, x, *args, **kwargs):
    own = t.param_of(x)
    if own is not None and own[1].shape[0] == 1 and out.shape[1:] == own[1].shape[1:]:
        t.pending[id(out)] = own  # a parameter broadcast over the batch: see _concatenate
        t.alias_keep(out)
        return
    raise _Unsupported("a broadcast of a traced array (only a parameter over the batch)")


def _split(t, out, x, *args, **kwargs):
    x = _tensor(t, x)
    axis = int(_arg(args, kwargs, 1, "axis", 0)) % x.ndim
    _not_batch(t, x, (axis,), "a split")
    sizes = tuple(int(o.shape[axis]) for o in out)
    t.emit("split", _kind("Split")(sizes, t.perm(x)[axis]), [x], list(out), t.perm(x))


def _pool(kind: str):
    def convert(t, out, x, window, strides=None, padding="VALID", count_include_pad=True):
        x = _tensor(t, x)
        n = len(window)
        if isinstance(padding, str):
            if padding != "VALID":
                raise _Unsupported(f"{kind} padding {padding!r} (only 'VALID' or pairs)")
            pads = (0,) * n
        else:
            if any(lo != hi for lo, hi in padding):
                raise _Unsupported(f"{kind} with uneven padding {padding}")
            pads = tuple(lo for lo, _ in padding)
        strides = tuple(strides) if strides is not None else (1,) * n
        extra = {"count_include_pad": bool(count_include_pad)} if kind == "AvgPool" else {}
        spec = getattr(L, kind)(tuple(window), strides, pads, **extra)
        view = t.at(x, _channel(x.ndim))
        t.emit(spec.kind, spec, [view], out, _channel(out.ndim))

    return convert


_RESIZE = {"nearest": "nearest", "linear": "bilinear", "bilinear": "bilinear"}


def _resize(t, out, x, shape, method, *args, **kwargs):
    """``jax.image.resize`` of a channel-last image to integer multiples of its size, nearest
    or (bi)linear: PyTorch's ``interpolate`` (half-pixel centres); a downsample antialiases."""
    x = _tensor(t, x)
    shape, old = tuple(int(d) for d in shape), tuple(x.shape)
    mode = _RESIZE.get(str(getattr(method, "name", method)).lower().rpartition(".")[2])
    if t.perm(x) != _channel(x.ndim) or x.ndim < 3:
        raise _Unsupported("jax.image.resize of an array that is no channel-last image")
    if shape[0] != old[0] or shape[-1] != old[-1] or mode is None:
        raise _Unsupported(f"jax.image.resize {old} -> {shape} by {method!r}")
    if any(n % o for n, o in zip(shape[1:-1], old[1:-1])) or any(
        n < o for n, o in zip(shape[1:-1], old[1:-1])
    ):
        raise _Unsupported(f"jax.image.resize {old} -> {shape}: only integer upsampling")
    if mode == "bilinear" and x.ndim != 4:
        raise _Unsupported("jax.image.resize 'linear' of a signal that is not 2-d")
    spec = L.Upsample(size=shape[1:-1], mode=mode)
    t.emit("upsample", spec, [x], out, t.perm(x))


def _channel(ndim: int) -> tuple[int, ...]:
    from .trace_perms import channel_perm

    return channel_perm(ndim)


CONVERTERS: dict[str, Any] = {
    **{f"jax.nn.{n}": _activation(make) for n, make in _ACTIVATIONS.items()},
    "jax.numpy.tanh": _activation(_ACTIVATIONS["tanh"]),
    "jax.numpy.clip": _activation(_clip),
    "clip": _activation(_clip),
    **{f"jax.numpy.{n}": _binary(o) for n, o in [("add", "add"), ("subtract", "sub")]},
    **{f"jax.numpy.{n}": _binary(o) for n, o in [("multiply", "mul"), ("divide", "div")]},
    "jax.numpy.true_divide": _binary("div"),
    "jax.numpy.matmul": _binary("matmul"),
    **{f"__{n}__": _binary(o) for n, o in [("add", "add"), ("sub", "sub"), ("mul", "mul")]},
    **{f"__r{n}__": _binary(o, True) for n, o in [("add", "add"), ("sub", "sub"), ("mul", "mul")]},
    "__truediv__": _binary("div"),
    "__rtruediv__": _binary("div", True),
    "__matmul__": _binary("matmul"),
    "__rmatmul__": _binary("matmul", True),
    "__pow__": _binary("pow"),
    "__neg__": _negate,
    "__pos__": _same,
    "astype": _same,
    **{n: _reduce(n) for n in ("mean", "sum", "max")},
    **{f"jax.numpy.{n}": _reduce(n) for n in ("mean", "sum", "max")},
    "jax.numpy.amax": _reduce("max"),
    "reshape": _reshape,
    "jax.numpy.reshape": _reshape,
    "flatten": _reshape,
    "ravel": _reshape,
    "jax.numpy.ravel": _reshape,
    "jax.numpy.expand_dims": _reshape,
    "transpose": _transpose("transpose"),
    "jax.numpy.transpose": _transpose("transpose"),
    "jax.numpy.permute_dims": _transpose("transpose"),
    "T": _transpose("T"),
    "swapaxes": _transpose("swapaxes"),
    "jax.numpy.swapaxes": _transpose("swapaxes"),
    "jax.numpy.moveaxis": _transpose("moveaxis"),
    "squeeze": _squeeze,
    "jax.numpy.squeeze": _squeeze,
    "__getitem__": _getitem,
    "jax.numpy.concatenate": _concatenate,
    "jax.numpy.concat": _concatenate,
    "jax.numpy.broadcast_to": _broadcast,
    "jax.numpy.tile": _broadcast,
    "jax.numpy.split": _split,
    "flax.nnx.max_pool": _pool("MaxPool"),
    "jax.image.resize": _resize,
    "flax.nnx.avg_pool": _pool("AvgPool"),
}


def module_rule(module: Any):
    """The converter of a parameter-free NNX module class (its spec), or None."""
    from flax import nnx

    if isinstance(module, nnx.Dropout):
        return lambda m: L.Dropout(float(m.rate))
    return None

"""The Paddle tracer: a ``paddle.nn.Layer``'s forward on an example input, read into a spec.

Paddle has no function-level interception mode (PyTorch's ``TorchFunctionMode``), and its
static capture (``paddle.jit.to_static``) yields a program of kernels with generated names,
not the model's layers. So this is a concrete-execution trace: the model runs once in eval
mode with, for the duration of the run only (removed in a ``finally``),

- a forward pre-hook and post-hook on every sublayer: a layer a lowering reads
  (``lowering_of(m).read(m)``) or a parameter-free ``paddle.nn`` layer
  (``trace_layers.layer_call``) becomes one node named by its attribute, as does a class a
  model file retypes (``trace_layers.lookalike_spec``: torchvision's Permute, a LayerNorm2d
  subclass, Swin's attention); a class whose forward is its own is read only when xinit's
  layer, given its state, computes what it did; any other layer opens a scope, so the spec
  nests as the model does and its state keys are the model's;
- every public function of ``paddle`` and ``paddle.nn.functional`` and every public method
  and arithmetic operator of ``paddle.Tensor`` (in dygraph ``x + y`` and ``x.flatten()`` are
  ``core.eager.Tensor`` type slots and methods, so they are wrapped on the class) wrapped:
  a call that takes a traced tensor becomes the nodes its converter gives
  (``trace_ops.CONVERTERS``); calls made inside a known layer or another call pass through.

Python control flow follows the example input. A batch of 1 is repeated to a size no other
dim of the input has (3, else 5...) while tracing, so a ``reshape(x, [N, -1])`` is told
from the other dims and the spec keeps the batch free. A parameter a layer uses in its own
arithmetic (``self.scale * x``) becomes a ``LearnedTensor`` node under its attribute name;
``x + self.pos`` of a (1, *x.shape[1:]) parameter and ``concat([self.token.expand([n, -1,
-1]), x], 1)`` become ``LearnedParameter`` nodes (op "add", "prepend"), as in PyTorch's. An
operation with no converter does not stop the trace: its result is marked, and only when
such a result reaches a layer, a converted operation or an output is it listed, with its
module path and source line, in the one :class:`~xinit.tracing.TraceError` at the end.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from xinit import layers as L
from xinit.blocks import join
from xinit.layers import SpecError
from xinit.tracing import TraceError, TraceRecorder, source_line, trace_batch

from .lowering_base import _paddle
from .trace_layers import computes, layer_call, read_layer
from .trace_ops import (
    ALIAS,
    CONVERTERS,
    BatchMoved,
    Call,
    Step,
    Unsupported,
    bind,
    kind,
    moved_index,
)

# Tensor operators wrapped besides the public methods (comparisons, hashing and conversions
# are left alone: they build no values of the graph).
OPERATORS = (
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__pow__",
    "__rpow__",
    "__matmul__",
    "__rmatmul__",
    "__neg__",
    "__getitem__",
    "__setitem__",
    "__floordiv__",
    "__mod__",
    "__abs__",
)
# Calls that may be a parameter's learned token or position (``_Tracer._learned_op``).
_LEARNED_OPS = frozenset(
    ("expand", "expand_as", "broadcast_to", "concat", "add", "__add__", "__radd__")
)
_CALLABLES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
)


def trace(model: Any, example_input: Any, *, batch: int | None = None, **options: Any) -> Any:
    """The spec of ``model`` (a ``paddle.nn.Layer``) as it runs on ``example_input`` (an
    array or tensor, or a tuple of them, batch first; see the module docstring). ``batch``:
    the size traced at (default: the example's, or for a batch of 1 one no other dim has)."""
    if options:
        raise TraceError(f"trace (paddle): unknown option(s) {sorted(options)}")
    paddle = _paddle()
    inputs = _inputs(paddle, example_input, batch)
    rec = TraceRecorder(inputs, batch=int(inputs[0].shape[0]), type_name=type(model).__name__)
    tracer = _Tracer(paddle, model, rec)
    tracer.made.update(id(t) for t in inputs)
    modes = [(m, m.training) for m in [model, *model.sublayers()]]
    model.eval()
    try:
        with paddle.no_grad(), tracer.installed():
            out = model(*inputs)
            tracer.report(_tensors(out))
    finally:
        for m, training in modes:
            m.training = training
    return rec.finish(out)


def _inputs(paddle, example: Any, batch: int | None) -> list:
    """The example as Paddle tensors at the batch size traced (a batch of 1 repeated)."""
    items = list(example) if isinstance(example, (tuple, list)) else [example]
    tensors = [t if isinstance(t, paddle.Tensor) else paddle.to_tensor(t) for t in items]
    batch = trace_batch([tuple(int(d) for d in t.shape) for t in tensors], batch)
    return [t if int(t.shape[0]) == batch else paddle.concat([t] * batch, axis=0) for t in tensors]


def _tensors(value: Any) -> list:
    """The tensors in a call's arguments or outputs (one level of lists, tuples, dicts)."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        out = []
        for v in value:
            out.extend(_tensors(v) if isinstance(v, (tuple, list, dict)) else [v])
        return out
    return [value]


@dataclass
class _Open:
    """A scope the tracer opened (a called layer that is no known layer)."""

    path: str
    last: Any = None  # the latest tensor made in it (stands in for an unknown one)


class _Tracer:
    """The hooks and wrappers of one trace, reporting to a :class:`TraceRecorder`."""

    def __init__(self, paddle, model, rec: TraceRecorder):
        from xinit.backends import get_backend

        self.paddle, self.rec = paddle, rec
        self.lowerings = get_backend("paddle").lowerings
        self.paths: dict[int, str] = {}
        for path, sub in model.named_sublayers():
            self.paths.setdefault(id(sub), path)
        self.params = {id(p): n for n, p in model.named_parameters()}
        self.buffers = {id(b): n for n, b in model.named_buffers()}
        self.model = model
        self.made: set[int] = set()
        self.poison: dict[int, tuple[str, str, list]] = {}
        self.reported: set[int] = set()
        self.alive: list = []
        self.moved: dict[int, tuple] = {}  # a batch-moving transpose's result -> (x, perm)
        self.pending: dict[int, tuple[str, Any]] = {}  # an expanded parameter -> (name, it)
        self.frames: list = []
        self.scopes: list[_Open] = []
        self.busy = 0

    # ---- installing -------------------------------------------------------------------------
    @contextmanager
    def installed(self):
        """Hooks on every sublayer and wrappers on the ops, all removed on the way out."""
        handles, patched = [], []
        try:
            for layer in self.model.sublayers():
                handles.append(layer.register_forward_pre_hook(self._pre, with_kwargs=True))
                handles.append(layer.register_forward_post_hook(self._post, with_kwargs=True))
            P = self.paddle
            for owner in (P, P.nn.functional, P.Tensor):
                for attr, fn in list(vars(owner).items()):
                    if (attr.startswith("_") and attr not in OPERATORS) or not isinstance(
                        fn, _CALLABLES
                    ):
                        continue
                    setattr(owner, attr, self._wrap(attr, fn))
                    patched.append((owner, attr, fn))
            yield
        finally:
            for owner, attr, fn in reversed(patched):
                setattr(owner, attr, fn)
            for handle in handles:
                handle.remove()

    def _wrap(self, attr: str, fn):
        name = attr  # the name code calls it by (``paddle.multiply``'s own is ``_multiply``)

        def traced(*args, **kwargs):
            if self.busy:
                return fn(*args, **kwargs)
            inputs = [t for t in _tensors((args, kwargs)) if self._traced(t)]
            if not inputs:
                return fn(*args, **kwargs)
            self.busy += 1
            try:
                out = fn(*args, **kwargs)
                self._op(name, fn, args, kwargs, out, inputs)
            finally:
                self.busy -= 1
            return out

        traced.__name__, traced.__wrapped__ = name, fn  # type: ignore[attr-defined]
        return traced

    def _is_tensor(self, value: Any) -> bool:
        return isinstance(value, self.paddle.Tensor)

    def _traced(self, value: Any) -> bool:
        if not self._is_tensor(value):
            return False
        i = id(value)
        return any(i in ids for ids in (self.made, self.params, self.poison, self.buffers)) or (
            i in self.pending
        )

    # ---- operations ---------------------------------------------------------------------------
    def _op(self, name, fn, args, kwargs, out, inputs) -> None:
        if name == "__getitem__" and id(args[0]) in self.moved:
            x, perm = self.moved[id(args[0])]
            try:
                steps = moved_index(x, perm, args[1])
            except Unsupported as err:
                self._taint(out, (f"paddle's {name}: {err}", source_line(), inputs))
                return
            self._record(steps, out, [x])
            return
        tainted = next((self.poison[id(t)] for t in inputs if id(t) in self.poison), None)
        if tainted is not None:
            self._taint(out, tainted)
            return
        if (name.endswith("_") and not name.endswith("__")) or name == "__setitem__":
            self._taint(args[0], (f"{name} changes a tensor in place", source_line(), inputs))
            return
        if name in _LEARNED_OPS and self._learned_op(name, bind(name, fn, args, kwargs), out):
            return
        convert = CONVERTERS.get(name)
        if convert is None:
            what = f"paddle's {name} is not an operation xinit can trace"
            self._taint(out, (what, source_line(), inputs))
            return
        try:
            call = Call(name, bind(name, fn, args, kwargs), out, self.rec.batch, self._scalar)
            steps = convert(call)
        except Unsupported as err:
            self._taint(out, (f"paddle's {name}: {err}", source_line(), inputs))
            if isinstance(err, BatchMoved) and self.rec.known(err.x):
                self.moved[id(out)] = (err.x, err.perm)
            return
        except (TypeError, SpecError) as err:
            self._taint(out, (f"paddle's {name}: {err}", source_line(), inputs))
            return
        self._record(steps, out, inputs)

    def _taint(self, out: Any, origin: tuple) -> None:
        for t in _tensors(out):
            if self._is_tensor(t):
                self.poison[id(t)] = origin
                self.alive.append(t)  # keep the id unique while tracing

    def _scalar(self, value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if self._is_tensor(value) and not self._traced(value) and int(value.numel()) == 1:
            return float(value.item())
        return None

    def _record(self, steps, out, inputs) -> None:
        """Record converter ``steps`` whose last one gives ``out``, in the current scope."""
        self._learned(inputs)
        if steps == ALIAS:
            self.rec.alias(out, inputs[0])
            self._made(out)
            return
        outputs: dict[int, Any] = {}
        shapes: dict[int, tuple] = {}
        for i, step in enumerate(steps):
            result = out if i == len(steps) - 1 else object()
            ins = [outputs.get(id(x), x) if isinstance(x, Step) else x for x in step.inputs]
            self._check_shape(step, ins, result, shapes)
            self.rec.node(step.hint, step.spec, ins, result)
            outputs[id(step)] = result
        self._made(out)

    def _check_shape(self, step: Step, ins: list, result: Any, shapes: dict) -> None:
        """The spec's output shape must be Paddle's (a wrong converter is an error, not a
        silently different model)."""
        got = [shapes.get(id(x)) or tuple(int(d) for d in x.shape) for x in ins]
        spec = step.spec
        try:
            if isinstance(spec, L.Merge):
                shape = spec.merge_shape(got)
            elif len(got) == 1:
                shape = spec.output_shape(got[0])
            else:
                return
        except SpecError as err:
            self.rec.unknown(f"{step.hint}: {err}")
            return
        if self._is_tensor(result):
            real = tuple(int(d) for d in result.shape)
            if tuple(shape) != real:
                self.rec.unknown(
                    f"{step.hint}: the spec {type(spec).__name__} gives shape {tuple(shape)} "
                    f"where Paddle gives {real}"
                )
        elif isinstance(shape, tuple):
            shapes[id(result)] = shape

    def _learned_op(self, name: str, args: dict, out: Any) -> bool:
        """``self.p.expand([n, -1, ...])`` of a (1, ...) parameter, kept pending for a
        concat; ``concat([p.expand(...), ..., x], 1)``: a ``LearnedParameter`` prepend a
        token, the last first; ``x + self.p`` of a (1, *x.shape[1:]) parameter: one that
        adds. False (the op's converter) for any other call."""
        LP = kind("LearnedParameter")
        if name in ("expand", "expand_as", "broadcast_to"):
            p, leaf = args["x"], self._own_parameter(args["x"])
            if leaf is None or int(p.shape[0]) != 1 or int(out.shape[0]) != self.rec.batch:
                return False
            if list(out.shape[1:]) != list(p.shape[1:]):
                return False
            self.pending[id(out)] = (leaf, p)
            self.alive.append(out)
            return True
        if name == "concat":
            *tokens, current = list(args["x"])
            axis = args["axis"]
            if not tokens or not isinstance(axis, int) or axis % len(out.shape) != 1:
                return False
            if not all(id(t) in self.pending for t in tokens) or not self.rec.known(current):
                return False
            for i in range(len(tokens) - 1, -1, -1):
                leaf, p = self.pending[id(tokens[i])]
                joined = out if i == 0 else object()
                self._named(leaf, LP(tuple(int(d) for d in p.shape), op="prepend"), current, joined)
                current = joined
            self._made(out)
            return True
        a, b = args.get("x"), args.get("y")
        for x, p in ((a, b), (b, a)):
            leaf = self._own_parameter(p)
            if leaf is None or not self._is_tensor(x) or not self.rec.known(x) or x.ndim < 2:
                continue
            if list(p.shape) != [1, *x.shape[1:]]:
                continue
            self._named(leaf, LP(tuple(int(d) for d in p.shape), op="add"), x, out)
            self._made(out)
            return True
        return False

    def _own_parameter(self, t: Any) -> str | None:
        """The attribute name of ``t`` when it is a parameter of the current scope's layer
        not yet a node, else None."""
        if not self._is_tensor(t) or self.rec.known(t) or id(t) not in self.params:
            return None
        owner, _, leaf = self.params[id(t)].rpartition(".")
        return leaf if owner == self.rec.path else None

    def _named(self, name: str, spec: Any, x: Any, out: Any) -> None:
        if self.rec.node(name, spec, [x], out) != name:
            self.rec.unknown(f"parameter {name}: the name is taken by another node")

    def _learned(self, inputs: list) -> None:
        """Parameters of the current scope's layer used in its arithmetic: LearnedTensor nodes."""
        for t in inputs:
            if self.rec.known(t):
                continue
            if id(t) in self.pending:
                name = self.pending[id(t)][0]
                self.rec.unknown(
                    f"parameter {name} expanded over the batch is used other than in concat"
                )
                self.rec.alias(t, self._anchor())
                continue
            if id(t) in self.buffers:
                self.rec.unknown(f"buffer {self.buffers[id(t)]} is used as a value in forward")
                self.rec.alias(t, self._anchor())
                continue
            path = self.params.get(id(t))
            if path is None:
                continue
            owner, _, leaf = path.rpartition(".")
            if self.rec.path != owner:
                self.rec.unknown(
                    f"parameter {path} is used in the forward of "
                    f"{self.rec.path or 'the model'}, not of the layer that holds it"
                )
                self.rec.alias(t, self._anchor())
                continue
            try:
                spec = kind("LearnedTensor")(tuple(int(d) for d in t.shape))
            except Unsupported as err:
                self.rec.unknown(f"parameter {path}: {err}")
                self.rec.alias(t, self._anchor())
                continue
            self.rec.parameter(leaf, spec, t)

    def _anchor(self) -> Any:
        """A tensor the current scope knows (to stand in for one reported as unknown)."""
        return self.scopes[-1].last if self.scopes and self.scopes[-1].last is not None else None

    def _made(self, out: Any) -> None:
        for t in _tensors(out):
            if self._is_tensor(t):
                self.made.add(id(t))
                if self.scopes:
                    self.scopes[-1].last = t

    def report(self, tensors: list) -> None:
        """List the untraceable operations whose results reach the graph here."""
        for t in tensors:
            origin = self.poison.pop(id(t), None) if self._is_tensor(t) else None
            if origin is not None:
                what, where, inputs = origin
                if id(origin) not in self.reported:
                    self.reported.add(id(origin))
                    self.rec.unknown(what, where)
                like = next((x for x in inputs if self.rec.known(x)), None)
                if like is not None:
                    self.rec.alias(t, like)
                self.made.add(id(t))

    # ---- layers -------------------------------------------------------------------------------
    def _pre(self, layer, args, kwargs):
        if self.busy:
            self.frames.append(None)
            return None
        self.busy += 1
        try:
            self.frames.append(self._enter(layer, [t for t in _tensors((args, kwargs))]))
        finally:
            self.busy -= 1
        return None

    def _enter(self, layer, values: list):
        tensors = [t for t in values if self._is_tensor(t)]
        path = self.paths.get(id(layer))
        self.report(tensors)
        self._learned([t for t in tensors if id(t) in self.params or id(t) in self.buffers])
        cls = type(layer).__name__
        name = self._name(layer, path)
        spec = read_layer(self.lowerings, layer)
        if name is None:
            here = self.rec.path or "the model"
            if path is None:
                self.rec.unknown(f"a {cls} layer made inside {here}.forward, not a sublayer")
            else:
                self.rec.unknown(f"layer {path} ({cls}) is called from {here}, not its parent")
            self.busy += 1
            return ("opaque", layer, cls.lower(), tensors)
        if spec is not None or layer_call(layer) is not None:
            self.busy += 1
            return ("known", layer, name, tensors)
        if not layer.sublayers() and type(layer).__module__.startswith("paddle."):
            where = f"{join(self.rec.path, name)} ({cls}, {type(layer).__module__})"
            self.rec.unknown(f"layer {where}: a layer class xinit does not know")
            self.busy += 1
            return ("opaque", layer, name, tensors)
        self.rec.enter(name, cls, tensors)
        self.scopes.append(_Open(self.rec.path))
        return ("scope", layer, name, tensors)

    def _post(self, layer, args, kwargs, out):
        frame = self.frames.pop()
        if frame is None:
            return None
        what, layer, name, tensors = frame
        if what != "scope":
            self.busy -= 1
        self.busy += 1
        try:
            if what == "known":
                self._known(layer, name, tensors, out)
            elif what == "opaque":
                anchor = [t for t in tensors if self.rec.known(t)][:1]
                self.rec.node(name, L.Identity(), anchor, out)
                self._made(out)
            else:
                self.scopes.pop()
                self.report(_tensors(out))
                self.rec.exit(name, out)
                self._made(out)
        finally:
            self.busy -= 1
        return None

    def _known(self, layer, name: str, tensors: list, out: Any) -> None:
        spec = read_layer(self.lowerings, layer)
        if isinstance(spec, L.MultiheadAttention):
            tensors = self._attention_inputs(name, tensors)
        if spec is not None and not computes(self.lowerings, layer, spec, tensors, out):
            self.rec.unknown(
                f"layer {join(self.rec.path, name)} ({type(layer).__name__}) has a forward of "
                f"its own that computes other than its {type(spec).__name__} spec"
            )
            self.rec.node(name, L.Identity(), [t for t in tensors if self.rec.known(t)][:1], out)
            self._made(out)
            return
        if spec is not None:
            if isinstance(out, (tuple, list)):  # an LSTM's (output, states): the output only
                what = f"the states {type(layer).__name__} {name} returns beside its output"
                self._taint(list(out[1:]), (what + " have no neutral form", source_line(), []))
                out = out[0]
            steps = [Step(name, spec, tuple(tensors))]
            act = _fused_activation(layer)
            if act:
                act = _C_OPS_ACTIVATIONS.get(act, act)
                steps += self._activation(act, steps[-1], f"{name}_{act}")
            self._record(steps, out, tensors)
            return
        fname, fn, kwargs = layer_call(layer)
        try:
            call = Call(
                fname,
                bind(fname, fn, tuple(tensors[:1]), kwargs),
                out,
                self.rec.batch,
                self._scalar,
            )
            steps = CONVERTERS[fname](call)
        except (Unsupported, TypeError, SpecError) as err:
            self.rec.unknown(f"layer {name} ({type(layer).__name__}): {err}")
            self.rec.node(name, L.Identity(), [t for t in tensors if self.rec.known(t)][:1], out)
            self._made(out)
            return
        if steps != ALIAS:
            steps = [Step(name, steps[0].spec, steps[0].inputs), *steps[1:]]
        self._record(steps, out, tensors)

    def _attention_inputs(self, name: str, tensors: list) -> list:
        """query[, key[, value]] of an ``nn.MultiHeadAttention`` call, one tensor where they
        are the same (a mask, which the node would not see, is an unknown)."""
        if len(tensors) > 3:
            self.rec.unknown(f"layer {join(self.rec.path, name)}: attention with a mask")
        q = tensors[0]  # Paddle's key and value default to the query
        k, v = (tensors[1] if len(tensors) > 1 else q), (tensors[2] if len(tensors) > 2 else q)
        return [q] if k is q and v is q else [q, k] if v is k else [q, k, v]

    def _activation(self, act: str, after: Step, hint: str) -> list[Step]:
        fn = getattr(self.paddle.nn.functional, act, None)
        convert = CONVERTERS.get(act)
        if fn is None or convert is None:
            self.rec.unknown(f"{hint}: BatchNorm's act={act!r} is no activation xinit knows")
            return []
        x = self.paddle.zeros([1])
        steps = convert(Call(act, bind(act, fn, (x,), {}), x, self.rec.batch, self._scalar))
        return [Step(hint, s.spec, (after,)) for s in steps]

    def _name(self, layer, path: str | None) -> str | None:
        if path is None:
            return type(layer).__name__.lower() if layer_call(layer) is not None else None
        here = self.rec.path
        if not here:
            rel = path
        elif path.startswith(here + "."):
            rel = path[len(here) + 1 :]
        else:
            return None
        return rel  # 'blocks.0': a child of a container never called itself (a LayerList)


# paddle.nn.BatchNorm(act=...) names the _C_ops kernel; the functional names differ for some.
_C_OPS_ACTIVATIONS = {"hard_swish": "hardswish", "hard_sigmoid": "hardsigmoid"}


def _fused_activation(layer) -> str | None:
    from .lowerings import fused_activation

    return fused_activation(layer)


__all__ = ["trace"]

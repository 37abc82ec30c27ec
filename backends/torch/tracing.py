"""The PyTorch tracer: a torch ``nn.Module``'s forward computation as a spec (``xinit.trace``).

Concrete execution, as ``torch.jit.trace``: the model runs once, in eval mode and without
gradients, on the example input widened to a batch size no other dim of the input has (a
batch-1 example is repeated), and Python control flow is followed for that input. The run is
on fake tensors (shapes, no arithmetic: a trace reads nothing else), and again on the real
ones where that fails (a value read, an op with no shape rule, an unknown), so the spec is
the same either way at a fraction of a forward's cost. What it does is reported to a
:class:`~xinit.tracing.TraceRecorder`:

- module calls through forward hooks (pre and post, with keyword arguments) on every module of
  the model, and a global hook for modules the forward makes on the fly. A module a lowering
  reads (``Lowering.read``) or a parameter-free ``torch.nn``/torchvision class of
  :data:`.trace_modules.MODULES` is one node, named by its attribute, and nothing below it is
  recorded; any other module opens a scope (a nested Graph under its attribute name);
- functional ops and Tensor methods through a ``TorchFunctionMode``: each op in
  :data:`.trace_ops.OPS` records its spec; any other op that takes a traced tensor is an
  unknown, listed with its module path and source line;
- a parameter of the scope's module used in its arithmetic (``self.scale * x``) is a
  ``LearnedTensor`` node of its attribute name, or a ``LearnedParameter`` where that is
  exact (``x + self.pos_embedding``, ``cat([self.cls_token.expand(n, -1, -1), x], 1)``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.nn.modules import module as module_hooks
from torch.overrides import TorchFunctionMode

from xinit import layers as L
from xinit.tracing import TraceError, TraceRecorder, trace_batch

from . import trace_modules, trace_ops, trace_timm


def trace(model: Any, example_input: Any, *, batch: int | None = None) -> Any:
    """The spec of ``model`` as it runs on ``example_input`` (a tensor or a tuple of tensors,
    batch first). ``batch``: the size traced at (default: the example's, or, for a batch-1
    example, the first of 3, 5, 7, ... that no other dim of the input has)."""
    inputs = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not inputs or not all(isinstance(x, torch.Tensor) and x.ndim >= 1 for x in inputs):
        raise TraceError(
            "trace needs an example input: a tensor, or a tuple of tensors, batch first"
        )
    inputs = _widened(inputs, batch)
    try:
        return _run(model, inputs, shapes_only=True)
    except Exception:  # a value read, an op with no shape rule, an unknown: run it for real
        return _run(model, inputs, shapes_only=False)


def _run(model: Any, inputs: tuple, *, shapes_only: bool) -> Any:
    """One traced forward. ``shapes_only``: on fake tensors (``FakeTensorMode``: shapes and
    dtypes, no arithmetic), which is all a trace reads unless the forward reads values."""
    from xinit.backends import get_backend

    fake = FakeTensorMode(allow_non_fake_inputs=True) if shapes_only else None
    if fake is not None:
        inputs = tuple(fake.from_tensor(x) for x in inputs)
    rec = TraceRecorder(list(inputs), batch=inputs[0].shape[0], type_name=type(model).__name__)
    tracer = _Tracer(model, get_backend("torch"), rec)
    modes = {m: m.training for m in model.modules()}
    handles = tracer.hook()
    try:
        model.eval()
        with torch.no_grad(), fake or contextlib.nullcontext(), _Mode(tracer):
            out = model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
        for m, training in modes.items():
            m.training = training
    return rec.finish(out)


def _widened(inputs: tuple, batch: int | None) -> tuple:
    """The inputs at the batch size traced (:func:`xinit.tracing.trace_batch`): a batch-1
    example repeated."""
    batch = trace_batch([tuple(x.shape) for x in inputs], batch)
    return tuple(x.repeat(batch, *[1] * (x.ndim - 1)) if x.shape[0] != batch else x for x in inputs)


def _tensors(value: Any) -> list:
    """The tensors in an argument structure, in order (lists, tuples, dicts)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


class _Mode(TorchFunctionMode):
    """Every torch function and Tensor method called while tracing, after it ran."""

    def __init__(self, tracer: _Tracer):
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.tracer.op(func, args, kwargs, out)
        return out


class _Tracer:
    """One trace: the module calls open, the recorder, and what converters ask of it."""

    def __init__(self, model, adapter, rec: TraceRecorder):
        trace_modules.torchvision_modules()
        self.model, self.adapter, self.rec = model, adapter, rec
        self.batch = rec.batch
        self.paths = {id(m): p for p, m in model.named_modules()}
        self.scopes = [model]  # the module of each open scope
        self.calls: list = []  # (module, what, info) for each module call open
        self.opaque = 0  # > 0 inside a layer recorded as one node: nothing below is recorded
        self.busy = False  # the tracer's own tensor ops are not the model's
        self.pending: dict[int, tuple[str, Any]] = {}  # expanded parameter -> (name, param)
        self.views: dict[int, tuple[str, Any]] = {}  # reshaped parameter -> (name, param)
        self._alive: list = []

    # ---- hooks -------------------------------------------------------------------------------
    def hook(self) -> list:
        handles = [
            module_hooks.register_module_forward_pre_hook(self._global_pre),
            module_hooks.register_module_forward_hook(self._global_post),
        ]
        for m in self.model.modules():
            handles.append(m.register_forward_pre_hook(self.pre, with_kwargs=True))
            handles.append(m.register_forward_hook(self.post, with_kwargs=True))
        return handles

    def _global_pre(self, module, args):
        if id(module) not in self.paths:
            self.pre(module, args, {})

    def _global_post(self, module, args, output):
        if id(module) not in self.paths:
            self.post(module, args, {}, output)

    def pre(self, module, args, kwargs):
        if self.opaque or self.busy:
            return
        if module is self.model and not self.calls:
            self.calls.append((module, "root", None))
            return
        name = self._name_of(module)
        decompose = trace_timm.decomposer(module) if name is not None else None
        if decompose is not None:  # timm's Attention, BatchNormAct2d: several kinds
            self.calls.append((module, "decomposed", (name, decompose, args, kwargs)))
            self.opaque += 1
            return
        spec = self._layer_spec(module) if name is not None else None
        if spec is not None:
            self.calls.append((module, "layer", (name, spec, args, kwargs)))
            self.opaque += 1
        elif name is None or self._known_class(module) or self._unknown_class(module):
            if name is not None and not self._known_class(module):
                self.unknown(f"layer {name!r}: class {_class(module)} is not a layer xinit knows")
            self.calls.append((module, "opaque", _tensors((args, kwargs))))
            self.opaque += 1
        else:
            self.rec.enter(name, type(module).__name__, _tensors((args, kwargs)))
            self.scopes.append(module)
            self.calls.append((module, "scope", name))

    def post(self, module, args, kwargs, output):
        if self.busy or not self.calls or self.calls[-1][0] is not module:
            return
        _, what, info = self.calls.pop()
        if what == "root":
            return
        if what == "scope":
            self.scopes.pop()
            self.rec.exit(info, output)
            return
        self.opaque -= 1
        if what == "opaque":
            self._fallback(output, info)
            return
        self.busy = True
        try:
            if what == "decomposed":
                name, decompose, args, kwargs = info
                return decompose(self, module, name, _tensors(args), kwargs, output)
            self._layer_node(module, *info, output)
        finally:
            self.busy = False

    def _name_of(self, module) -> str | None:
        """The module's attribute path below the current scope's module; None (an unknown)
        when it is not a child of it."""
        path, scope = self.paths.get(id(module)), self.rec.path
        if path is None:
            spec = self._layer_spec(module)
            if spec is not None and not spec.params():
                return type(module).__name__.lower()  # a parameter-free layer made on the fly
            self.unknown(f"calls {_class(module)}, a module that is not part of the model")
            return None
        if scope and not path.startswith(scope + "."):
            self.unknown(f"calls module {path!r}, which is not below this module")
            return None
        name = path[len(scope) + 1 :] if scope else path
        if "." in name:
            self.unknown(f"calls {name!r} directly, a module below one of its children")
            return None
        return name

    def _layer_spec(self, module):
        """The layer spec of a module a lowering reads, or of a parameter-free class."""
        lowering = self.adapter.lowerings.lowering_of(module)
        if lowering is not None:
            spec = lowering.read(module)
            if spec is not None:
                return spec
        read = trace_modules.module_reader(module)
        return read(self, module) if read is not None else None

    def _known_class(self, module) -> bool:
        """A parameter-free class of the table (its spec was refused: an unknown already)."""
        return trace_modules.module_reader(module) is not None

    def _unknown_class(self, module) -> bool:
        """A class of torch.nn itself that is no known layer (its forward is torch's own, not
        a composition a person wrote): traced into, it would give torch's internals."""
        return type(module).__module__.startswith("torch.nn.modules") and not isinstance(
            module, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)
        )

    def _layer_node(self, module, name, spec, args, kwargs, output) -> None:
        out = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(spec, L.MultiheadAttention):
            inputs = self._attention_inputs(module, args, kwargs)
            if inputs is None:
                return self._fallback(output, _tensors(args))
        else:
            inputs = _tensors((args, kwargs))
        lo, hi = spec.inputs_taken()
        if not lo <= len(inputs) <= (hi or len(inputs)):
            self.unknown(f"layer {name!r} ({_class(module)}) is called with {len(inputs)} tensors")
            return self._fallback(output, inputs)
        if getattr(module, "batch_first", True) is False:  # (L, N, ...): the batch is not dim 0
            self.unknown(f"layer {name!r} ({_class(module)}) has batch_first=False")
            return self._fallback(output, inputs)
        if len(inputs) == 1 and isinstance(out, torch.Tensor):
            try:
                expected = tuple(spec.output_shape(tuple(inputs[0].shape)))
            except L.SpecError as err:
                expected = str(err)
            if expected != tuple(out.shape):  # a subclass with a forward of its own
                self.unknown(
                    f"layer {name!r} ({_class(module)}) gives shape {tuple(out.shape)} where "
                    f"its {type(spec).__name__} spec gives {expected}"
                )
                return self._fallback(output, inputs)
        if _own_forward(module) and not self._computes(module, spec, inputs, out):
            self.unknown(
                f"layer {name!r} ({_class(module)}) has a forward of its own that computes "
                f"other than its {type(spec).__name__} spec (an activation or a step added?)"
            )
            return self._fallback(output, inputs)
        self.node(name, spec, inputs, out)  # called again: a Reuse node (the recorder's)
        return None

    def _computes(self, module, spec, inputs, out) -> bool:
        """Whether ``spec``, built by its lowering with ``module``'s state, gives ``out`` on
        ``inputs`` to within 64 float32 roundings of its size (a wrong reading is O(1))."""
        built = self.adapter.lowerings[spec.kind].build(spec, "cpu")
        built.load_state_dict(module.state_dict(), strict=False)
        got = built.eval()(*inputs)
        if not isinstance(got, torch.Tensor) or got.shape != out.shape:
            return False
        tol = 64 * torch.finfo(out.dtype).eps * (1.0 + out.abs().max())
        return bool((got - out).abs().max() <= tol)

    def _attention_inputs(self, module, args, kwargs) -> list | None:
        """query[, key[, value]] of an ``nn.MultiheadAttention`` call; None (an unknown) with
        a mask, which the node would not see."""
        names = ("key_padding_mask", "need_weights", "attn_mask", "average_attn_weights")
        extra = dict(zip(names, args[3:]), **kwargs)
        if any(extra.get(k) is not None for k in ("key_padding_mask", "attn_mask")) or extra.get(
            "is_causal"
        ):
            self.unknown("multi-head attention with a mask or is_causal")
            return None
        q, k, v = args[:3]
        return [q] if k is q and v is q else [q, k] if v is k else [q, k, v]

    # ---- ops ---------------------------------------------------------------------------------
    def op(self, func, args, kwargs, out) -> None:
        if self.opaque or self.busy:
            return
        inputs = _tensors((args, kwargs))
        if func is torch.Tensor.__setitem__ and any(self._traced(x) for x in inputs):
            return self.unknown("assignment into a tensor (x[...] = ...), which no node expresses")
        if not _tensors(out):
            return None
        if not any(self._traced(x) for x in inputs):
            return  # a constant or a factory: nothing traced flows in
        convert = trace_ops.OPS.get(func)
        self.busy = True
        try:
            if convert is None:
                self.unknown(f"operation {trace_ops.op_name(func)} is not one xinit can express")
                self._fallback(out, inputs)
            else:
                convert(self, args, kwargs, out)
        finally:
            self.busy = False

    def _traced(self, x) -> bool:
        return (
            self.rec.known(x)
            or id(x) in self.pending
            or id(x) in self.views
            or self._own_name(x) is not None
        )

    def _own_name(self, x) -> str | None:
        """The attribute name of ``x`` when it is a parameter of the scope's own module."""
        if not isinstance(x, torch.nn.Parameter):
            return None
        return next((n for n, p in self.scopes[-1]._parameters.items() if p is x), None)

    # ---- what converters call ----------------------------------------------------------------
    def kind(self, name: str, *args, **kwargs):
        """The spec ``xinit.layers.<name>(*args, **kwargs)``, or None (an unknown) when this
        xinit has no such kind or the fields are refused."""
        cls = getattr(L, name, None)
        if cls is None:
            self.unknown(f"needs layer kind {name}, which this version of xinit does not have")
            return None
        try:
            return cls(*args, **kwargs)
        except (L.SpecError, TypeError, ValueError) as err:
            self.unknown(f"{name}: {err}")
            return None

    def unknown(self, what: str) -> None:
        self.rec.unknown(what)

    def node(self, hint: str, spec, inputs: list, out) -> str | None:
        """Record ``spec`` on ``inputs`` giving ``out``; a parameter of the scope's module
        among the inputs becomes its ``LearnedTensor`` node first."""
        if spec is None:
            self._fallback(out, inputs)
            return None
        for x in inputs:
            self._learned(x)
        return self.rec.node(hint, spec, inputs, out)

    def alias(self, out, like) -> None:
        self._learned(like)
        self.rec.alias(out, like)

    def _learned(self, x) -> None:
        if not isinstance(x, torch.Tensor) or self.rec.known(x):
            return
        if id(x) in self.pending:
            name = self.pending[id(x)][0]
            self.unknown(f"parameter {name!r} expanded over the batch is used other than in cat")
            return
        if id(x) in self.views:
            name = self.views[id(x)][0]
            self.unknown(f"parameter {name!r} reshaped is used other than in +, -, *, /")
            return
        name = self._own_name(x)
        if name is not None:
            spec = self.kind("LearnedTensor", tuple(x.shape))
            if spec is not None:
                self.rec.parameter(name, spec, x)

    def learned_add(self, a, b, out) -> bool:
        """``x + self.p`` with ``p`` of shape (1, *x.shape[1:]): ``LearnedParameter(op="add")``
        named ``p``, the existing kind that computes exactly this."""
        for x, p in ((a, b), (b, a)):
            name = self._own_name(p) if not self.rec.known(p) else None
            if name and self.rec.known(x) and tuple(p.shape) == (1, *x.shape[1:]) and x.ndim > 1:
                return self._named(name, L.LearnedParameter(tuple(p.shape), op="add"), x, out)
        return False

    def learned_prepend(self, first, x, out) -> bool:
        """``cat([self.p.expand(n, -1, ...), x], 1)``: ``LearnedParameter(op="prepend")``."""
        if id(first) not in self.pending or not self.rec.known(x):
            return False
        name, p = self.pending[id(first)]
        return self._named(name, L.LearnedParameter(tuple(p.shape), op="prepend"), x, out)

    def expand_learned(self, p, out) -> bool:
        """``self.p.expand(n, ...)`` of a (1, ...) parameter over the batch: kept pending for
        :meth:`learned_prepend`."""
        name = self._own_name(p) if not self.rec.known(p) else None
        if name is None or p.shape[0] != 1 or out.shape[0] != self.batch:
            return False
        if tuple(out.shape[1:]) != tuple(p.shape[1:]):
            return False
        self.pending[id(out)] = (name, p)
        self._alive.append(out)
        return True

    def view_learned(self, p, out) -> bool:
        """``self.p.reshape(1, -1, 1, 1)``: a view of a parameter that only adds or drops
        size-1 dims, kept pending for :meth:`learned_view_op` (timm ConvNeXt's ``gamma``)."""
        name = self._own_name(p) if not self.rec.known(p) else None
        if name is None or [d for d in p.shape if d != 1] != [d for d in out.shape if d != 1]:
            return False
        self.views[id(out)] = (name, p)
        self._alive.append(out)
        return True

    def learned_view_op(self, op: str, a, b, out) -> bool:
        """``x <op> view`` (``op``: the Add/Sub/Mul/Div kind) of a pending
        :meth:`view_learned`: the parameter, of its own shape, as its ``LearnedTensor``,
        broadcast over the trailing dims of ``x`` permuted so that the view's axes come
        last, then permuted back. Element-wise, so exact; the state key is the parameter's."""
        at = 1 if id(b) in self.views else 0 if id(a) in self.views else None
        if at is None:
            return False
        x, view = (a, b) if at else (b, a)
        name, p = self.views[id(view)]
        if not isinstance(x, torch.Tensor) or not self.rec.known(x) or out.shape != x.shape:
            self.unknown(f"parameter {name!r} reshaped is used other than with a traced tensor")
            return True
        shape = (1,) * (x.ndim - view.ndim) + tuple(view.shape)
        axes = [i for i, d in enumerate(shape) if d != 1]
        lo, hi = (axes[0], axes[-1]) if axes else (x.ndim - 1, x.ndim - 1)
        own = list(p.shape)
        while own and own[0] == 1:
            own.pop(0)
        if lo == 0 or tuple(own) != tuple(shape[lo : hi + 1]):
            self.unknown(
                f"parameter {name!r} {tuple(p.shape)} viewed as {tuple(view.shape)} does not "
                f"broadcast as one block of dims over {tuple(x.shape)} without the batch"
            )
            return True
        dims = [d for d in range(x.ndim) if not lo <= d <= hi] + list(range(lo, hi + 1))
        moved = x if dims == sorted(dims) else x.permute(dims)
        if moved is not x:
            self.node("permute", self.kind("Permute", tuple(dims)), [x], moved)
        pair = [moved, p] if at else [p, moved]
        mixed = out if moved is x else moved.new_empty(moved.shape)
        self.node(op.lower(), self.kind(op), pair, mixed)
        if moved is not x:
            back = tuple(dims.index(d) for d in range(x.ndim))
            self.node("permute", self.kind("Permute", back), [mixed], out)
        return True

    def _named(self, name: str, spec, x, out) -> bool:
        got = self.rec.node(name, spec, [x], out)
        if got != name:
            self.unknown(f"parameter {name!r}: the name is taken by another node")
        return True

    def _fallback(self, out, inputs) -> None:
        """After an unknown: ``out`` stands for the first input, so the trace goes on."""
        first = next((x for x in inputs if self.rec.known(x)), None)
        if first is not None:
            for t in _tensors(out):
                self.rec.alias(t, first)


def _own_forward(module) -> bool:
    """Whether the module's class overrides the forward of the torch class it derives from
    (timm's BatchNormAct2d: BatchNorm, then an activation)."""
    base = next(c for c in type(module).__mro__ if c.__module__.startswith("torch."))
    return type(module).forward is not base.forward


def _class(module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


__all__ = ["trace"]

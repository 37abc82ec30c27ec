"""``xinit.trace`` for Flax NNX: one concrete run of the model with its module calls and the
jax operations between them intercepted (see :mod:`xinit.tracing` for the recorder).

- **Modules.** For the run, ``__call__`` of every NNX module class in the model is wrapped.
  A module a Flax lowering reads (``nnx.Conv``, ``nnx.BatchNorm``, ``nnx.MultiHeadAttention``
  ...) becomes one node, its spec from ``Lowering.read``; a parameter-free module of
  :data:`trace_ops.MODULES` (``nnx.Dropout``) one node by its converter; any other module
  opens a scope named by its attribute path (``nnx.List`` / ``nnx.Sequential`` items nest:
  ``blocks.0``), so the spec's state keys are the model's own.
- **Glue.** While a scope's own code runs, the public functions of ``jax.numpy``, ``jax.nn``,
  ``jax.lax`` (and Flax's pooling functions) and the operators and methods of ``jax.Array``
  are wrapped: a call that takes a traced array is converted by one converter per operation
  (:mod:`trace_ops`), or recorded as unknown with its source line. A known layer's own
  internals are never seen (interception is off inside it).
- **Layouts.** Every traced array carries ``perm``: neutral axis of each of its physical
  axes. A conv's NHWC output is the neutral NCHW (``perm (0, 2, 3, 1)``); a transpose only
  composes the perm (no node); an axis op maps its axes through it (``mean(axis=(1, 2))`` of
  an NHWC image is neutral dims (2, 3)); a reshape of a permuted array is a ``Permute`` to
  its physical order first, then the ``Flatten``/``Reshape``; a layer that needs another
  layout gets a ``Permute`` before it. So the spec is channel-first, as PyTorch's.

``example_input`` is channel-first (neutral), as ``xinit.run`` and ``xinit.parity`` take
every model's input: an image is handed to the model channel-last when its first layer is of
channel layout (``input_layout="channels"``, a conv model's), else as it is (``"neutral"``).
"""

from __future__ import annotations

from typing import Any

from xinit.errors import ArgumentError
from xinit.tracing import TraceRecorder

from .trace_perms import _canonical, _flat, _ident, _map, _Token, channel_perm


def trace(model: Any, example_input: Any, *, input_layout: str | None = None) -> Any:
    """The spec of Flax NNX ``model`` as it runs on ``example_input`` (see the module
    docstring). Raises :class:`~xinit.tracing.TraceError` naming every unknown module class
    and operation with its path and source line."""
    import jax.numpy as jnp

    from ..common.running import set_mode
    from .adapter import ADAPTER, _in_eval

    inputs = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    if input_layout is None:
        input_layout = ADAPTER._native_layouts(model)[0]
    if input_layout not in ("channels", "neutral"):
        raise ArgumentError(f"input_layout must be 'channels' or 'neutral'; got {input_layout!r}")
    inputs = [jnp.asarray(a) for a in inputs]
    if input_layout == "channels":  # what the model takes: the image channel-last
        inputs = [jnp.moveaxis(a, 1, -1) if a.ndim >= 3 else a for a in inputs]
    was_eval = _in_eval(model)
    set_mode(model, False)
    try:
        return _Tracer(model, ADAPTER).run(inputs, input_layout)
    finally:
        set_mode(model, not was_eval)


class _Group:
    """A list/dict attribute (``blocks`` of ``blocks.0``) opened as a scope of its own.
    ``last`` is what it returns if closed now; ``deferred`` the glue recorded since its last
    module call, placed when the next call or the close shows where it belongs."""

    def __init__(self, name: str, last: Any):
        self.name, self.last = name, last
        self.deferred: list[tuple] = []  # ("node", hint, spec, inputs, out) / ("alias", out, a)
        self.made: set[int] = set()  # ids of the deferred outputs


class _Frame:
    """One module call being traced: the module, its path, the open list groups."""

    def __init__(self, module: Any, path: str):
        self.module, self.path = module, path
        self.groups: list[_Group] = []


class _Tracer:
    """The state of one trace: the recorder, each traced array's perm, the parameters by
    array identity, the module frames, and whether interception is live."""

    def __init__(self, model: Any, adapter: Any):
        from flax import nnx

        self.model, self.adapter = model, adapter
        self.paths = {id(m): p for p, m in adapter.named_layers(model)}
        self.params: dict[int, tuple[int, str, Any]] = {}  # id(array) -> (owner id, attr, var)
        for _, module in adapter.named_layers(model):
            for attr, var in vars(module).items():
                if isinstance(var, nnx.Variable):
                    self.params[id(var.get_value())] = (id(module), attr, var)
        self.perms: dict[int, tuple[int, ...]] = {}
        self.pending: dict[int, tuple[str, Any]] = {}  # a parameter broadcast over the batch
        self.alive: list[Any] = []
        self.frames: list[_Frame] = []
        self.views: list[dict] = [{}]  # per recorder scope: (id, perm) -> Permute token
        self.busy = 0
        self.in_glue = False  # a converter is recording a jax operation
        self.rec: TraceRecorder | None = None

    # ---- running -------------------------------------------------------------------------
    def run(self, inputs: list, layout: str) -> Any:
        from . import trace_ops

        batch = int(inputs[0].shape[0]) if inputs and inputs[0].ndim else 1
        self.rec = TraceRecorder(inputs, batch=batch, type_name=type(self.model).__name__)
        for a in inputs:
            self.set_perm(a, channel_perm(a.ndim) if layout == "channels" else _ident(a.ndim))
        self.frames.append(_Frame(self.model, ""))
        with trace_ops.intercepting(self), self._modules_wrapped():
            out = self._call(self.model, type(self.model).__call__, inputs, {})
        self.close_groups(self.frames[-1], 0)
        out = _map(out, lambda a: self.at(a, _canonical(self.perm(a), a.ndim)))
        spec = self.rec.finish(out)
        steps = getattr(spec, "steps", ())
        if len(steps) == 1 and self.adapter.lowerings.lowering_of(self.model) is not None:
            return steps[0][1]  # the model is one layer: its spec, keys and all
        return spec

    def live(self) -> bool:
        return self.rec is not None and self.busy == 0

    def quiet(self, fn, *args, **kwargs):
        """``fn`` run with interception off (a known layer's or an operation's internals)."""
        self.busy += 1
        try:
            return fn(*args, **kwargs)
        finally:
            self.busy -= 1

    def _modules_wrapped(self):
        import contextlib

        classes = {type(m) for _, m in self.adapter.named_layers(self.model)}
        originals = {cls: cls.__dict__.get("__call__") for cls in classes}
        calls = {cls: vars(cls).get("__call__") or _inherited_call(cls) for cls in classes}

        @contextlib.contextmanager
        def wrapped():
            for cls, call in calls.items():
                if call is not None:
                    cls.__call__ = self._wrap(call)
            try:
                yield
            finally:
                for cls, original in originals.items():
                    if original is None:
                        if "__call__" in cls.__dict__:
                            delattr(cls, "__call__")
                    else:
                        cls.__call__ = original

        return wrapped()

    def _wrap(self, call):
        tracer = self

        def __call__(module, *args, **kwargs):
            if not tracer.live() or (tracer.frames and tracer.frames[-1].module is module):
                return call(module, *args, **kwargs)
            return tracer._call(module, call, args, kwargs)

        return __call__

    def _call(self, module, call, args, kwargs) -> Any:
        """One module call: a node for a known layer, else a scope around its own code."""
        from . import trace_ops

        root = not self.frames or (self.frames[-1].module is module and len(self.frames) == 1)
        arrays = [a for a in _flat(list(args) + list(kwargs.values())) if self.is_array(a)]
        lowering = self.adapter.lowerings.lowering_of(module)
        convert = trace_ops.module_rule(module)
        if lowering is not None or convert is not None:
            name = self._enter_path(module, arrays) if not root else type(module).__name__
            spec = lowering.read(module) if lowering is not None else convert(module)
            out = self.quiet(call, module, *args, **kwargs)
            if name is None:  # no attribute of the caller: already reported
                return out
            if spec is None:
                what = f"{type(module).__name__} with these settings cannot be read as its kind"
                self.unknown_op(f"{name} ({what})", out, arrays)
                return out
            self._layer(name, module, spec, lowering, args, kwargs, out)
            return out
        if root:
            return call(module, *args, **kwargs)
        if _library_layer(module):
            name = self._enter_path(module, arrays)
            out = self.quiet(call, module, *args, **kwargs)
            if name is not None:
                cls = f"{type(module).__module__}.{type(module).__qualname__}"
                self.unknown_op(f"{name} ({cls}) is a layer class xinit does not know", out, arrays)
            return out
        name = self._enter_path(module, arrays)
        if name is None:
            return self.quiet(call, module, *args, **kwargs)
        self.rec.enter(name, type(module).__name__, arrays)
        self.views.append({})
        self.frames.append(_Frame(module, self.paths.get(id(module), name)))
        try:
            out = call(module, *args, **kwargs)
        finally:
            frame = self.frames.pop()
        self.close_groups(frame, 0)
        self.views.pop()
        self.rec.exit(name, out)
        self.note_last(out)
        return out

    def _layer(self, name, module, spec, lowering, args, kwargs, out) -> None:
        from . import trace_layers

        tensors = [a for a in args if self.is_array(a)]
        extra = [k for k, v in kwargs.items() if self.is_array(v)]
        if extra or len(tensors) != len([a for a in args if a is not None]):
            what = f"{type(module).__name__} called with arguments xinit cannot pass: {extra}"
            self.unknown_op(what, out, tensors)
            return
        try:
            trace_layers.record(self, name, module, spec, lowering, tensors, out)
        except trace_layers.Unreadable as why:
            self.unknown_op(f"{name} ({type(module).__name__}): {why}", out, tensors)

    # ---- scopes and list groups ----------------------------------------------------------
    def _enter_path(self, module, arrays) -> str | None:
        """The name of ``module`` in the current frame, with list groups opened for the
        parts before it (``blocks`` of ``blocks.0``); None when it is no child of it."""
        frame = self.frames[-1]
        path = self.paths.get(id(module))
        if path is None or not (frame.path == "" or path.startswith(frame.path + ".")):
            self.rec.unknown(
                f"{type(module).__name__} is called but is no attribute of "
                f"{type(frame.module).__name__} (a module shared or made during the call)"
            )
            return None
        parts = (path[len(frame.path) + 1 :] if frame.path else path).split(".")
        self.sync_groups(frame, parts[:-1], arrays)
        return parts[-1]

    def sync_groups(self, frame: _Frame, prefix: list[str], arrays: list) -> None:
        keep = 0
        while (
            keep < min(len(prefix), len(frame.groups)) and frame.groups[keep].name == prefix[keep]
        ):
            keep += 1
        self.close_groups(frame, keep)
        if frame.groups:  # glue between two calls of the list: it belongs to it
            self._replay(frame.groups[-1])
        for name in prefix[keep:]:
            self.rec.enter(name, "list", arrays)
            self.views.append({})
            frame.groups.append(_Group(name, arrays[0] if arrays else None))

    def close_groups(self, frame: _Frame, keep: int) -> None:
        """Close the innermost groups down to ``keep``. Glue deferred after a group's last
        call goes after the group when it takes only that call's result (a mean after a loop
        over blocks), else inside it (the last residual add of ``x = x + block(x)``)."""
        while len(frame.groups) > keep:
            group = frame.groups.pop()
            after, seen = True, {id(group.last)}
            for entry in group.deferred:
                ins = entry[3] if entry[0] == "node" else [entry[2]]
                after = after and all(id(a) in seen for a in ins)
                seen.update(id(o) for o in _flat([entry[4] if entry[0] == "node" else entry[1]]))
            if not after:
                self._replay(group)
            self.views.pop()
            self.rec.exit(group.name, group.last)
            if after:
                self._replay(group)
            if frame.groups:
                frame.groups[-1].last = group.last

    def _replay(self, group: _Group) -> None:
        """Record ``group``'s deferred glue in the current recorder scope."""
        for entry in group.deferred:
            if entry[0] == "node":
                self.rec.node(*entry[1:])
                group.last = entry[4]
            else:
                self.rec.alias(entry[1], entry[2])
                group.last = entry[1]
        group.deferred, group.made = [], set()

    def note_last(self, out: Any) -> None:
        if self.frames and self.frames[-1].groups:
            self.frames[-1].groups[-1].last = out

    def glue(self, args: list) -> None:
        """An operation in the current frame's own code on ``args``: it stays inside the open
        list group when it only takes values known there (a function between the layers of
        an ``nnx.Sequential``, a residual add in a loop over blocks), else the groups close
        first (a parameter of the frame's module, a value from before the loop)."""
        if not self.frames or not self.frames[-1].groups:
            return
        arrays = [a for a in args if self.is_array(a) or self.param_of(a) is not None]
        if any(self.param_of(a) is not None or not self.tracked(a) for a in arrays):
            self.close_groups(self.frames[-1], 0)

    def _deferring(self) -> _Group | None:
        """The group glue is deferred to now (None: record it at once)."""
        if self.in_glue and self.frames and self.frames[-1].groups:
            return self.frames[-1].groups[-1]
        return None

    # ---- arrays, perms and nodes ---------------------------------------------------------
    def is_array(self, a: Any) -> bool:
        import jax

        return isinstance(a, jax.Array)

    def tracked(self, a: Any) -> bool:
        if id(a) not in self.perms:
            return False
        group = self.frames[-1].groups[-1] if self.frames and self.frames[-1].groups else None
        return self.rec.known(a) or (group is not None and id(a) in group.made)

    def perm(self, a: Any) -> tuple[int, ...]:
        return self.perms.get(id(a), _ident(getattr(a, "ndim", 0)))

    def set_perm(self, a: Any, perm: tuple[int, ...]) -> None:
        self.alive.append(a)
        self.perms[id(a)] = tuple(perm)

    def param_of(self, a: Any) -> tuple[str, Any] | None:
        """``(attribute, array)`` when ``a`` (an array or an nnx.Variable) is a parameter
        held by the current frame's module itself."""
        from flax import nnx

        if isinstance(a, nnx.Variable):
            a = a.get_value()
        hit = self.params.get(id(a))
        if (
            hit is None
            or self.tracked(a)
            or not self.frames
            or hit[0] != id(self.frames[-1].module)
        ):
            return None
        return hit[1], a

    def param_alias(self, out: Any, a: Any) -> None:
        """``out`` is parameter array ``a`` itself (a ``[...]`` read of it)."""
        self.alive.append(out)
        self.params[id(out)] = self.params[id(a)]

    def at(self, a: Any, perm: tuple[int, ...]) -> Any:
        """``a`` as a recorder input whose neutral order is ``perm``: ``a`` itself, or a
        Permute node of it (made once per scope)."""
        from xinit.layers import Permute

        own = self.perm(a)
        if own == tuple(perm):
            return a
        key = (id(a), tuple(perm))
        views = self.views[-1]
        if key not in views:
            dims = [0] * len(perm)
            for i, p in enumerate(perm):
                dims[p] = own[i]
            token = _Token()
            self.emit("permute", Permute(tuple(dims)), [a], token, perm)
            views[key] = token
        return views[key]

    def emit(self, hint: str, spec: Any, inputs: list, out: Any, perm: Any) -> str:
        """Record node ``spec`` of ``inputs`` giving ``out`` (an array or a list of them)
        whose neutral order is ``perm``; returns the node's name."""
        for o in out if isinstance(out, (tuple, list)) else [out]:
            self.set_perm(o, perm)
        group = self._deferring()
        if group is None:
            name = self.rec.node(hint, spec, inputs, out)
            self.note_last(out)
            return name
        group.deferred.append(("node", hint, spec, inputs, out))
        group.made.update(id(o) for o in _flat([out]))
        return hint

    def alias_keep(self, out: Any) -> None:
        self.alive.append(out)

    def alias(self, out: Any, a: Any, perm: tuple[int, ...]) -> None:
        self.set_perm(out, perm)
        if out is a:
            return
        group = self._deferring()
        if group is None:
            self.rec.alias(out, a)
        else:
            group.deferred.append(("alias", out, a))
            group.made.add(id(out))

    def unknown_op(self, what: str, out: Any, inputs: list) -> None:
        """Record ``what`` as unknown and bind ``out`` so nothing after it is reported again."""
        from xinit.layers import Identity

        self.rec.unknown(what)
        known = [a for a in inputs if self.rec.known(a)]
        for o in _flat([out]):
            if self.is_array(o):
                self.rec.node("unknown", Identity(), known[:1], o)
                self.set_perm(o, _ident(o.ndim))


def _inherited_call(cls: type) -> Any:
    """The ``__call__`` a class inherits (None for a module that is not callable)."""
    return next((vars(c)["__call__"] for c in cls.__mro__ if "__call__" in vars(c)), None)


def _library_layer(module: Any) -> bool:
    """A layer class of Flax's own that no lowering reads: its internals are no user glue
    (``nnx.Sequential`` is a container, traced as a scope)."""
    from flax import nnx

    return type(module).__module__.startswith("flax.") and not isinstance(module, nnx.Sequential)


__all__ = ["trace", "channel_perm"]

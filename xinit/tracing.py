"""Tracing a native model into a spec: the neutral half, shared by every framework's tracer.

A framework's tracer (``backends/<fw>/tracing.py``) runs the model once on an example input,
concretely, as ``torch.jit.trace`` does: Python control flow is followed for that input. It
reports what happens to a :class:`TraceRecorder`:

- a call of a module that is not a known layer opens a *scope* (:meth:`TraceRecorder.enter`)
  and closes it with its outputs (:meth:`TraceRecorder.exit`); the scope becomes a nested
  :class:`~xinit.graph.Graph` (a plain chain becomes a :class:`~xinit.blocks.Sequential`)
  registered under the module's attribute name, so the spec's state keys are the model's own;
- a call of a known layer (a lowering reads it) and each functional operation between layers
  becomes one node (:meth:`TraceRecorder.node`), named by the attribute or the operation;
- a second call of a module in the same scope (a layer with parameters, or a module traced
  as a scope that computes the same again) becomes a :class:`~xinit.graph.Reuse` node: the
  same weights, run again on the new inputs;
- a learned tensor a module uses in its own arithmetic (``self.scale * x``) becomes a
  :class:`~xinit.layers.LearnedTensor` node under its attribute name (:meth:`parameter`);
- anything the tracer cannot express is recorded (:meth:`TraceRecorder.unknown`) with its
  module path and source line, the trace goes on, and :meth:`finish` raises one
  :class:`TraceError` listing every one of them, never a silent skip.

Tensors are followed by identity (``id``); the recorder keeps each one alive while tracing
so an id is never reused. Nothing here imports a framework.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from .blocks import Sequential, join, param_specs
from .errors import XinitError
from .graph import Graph, Reuse
from .layers import SpecError


class TraceError(XinitError, TypeError):
    """A model that cannot be traced into a spec: every unknown layer class and operation,
    each with its module path and source line."""


@dataclass(frozen=True)
class Unknown:
    """One thing the trace could not express: where (module path), what, and the source line."""

    path: str
    what: str
    where: str = ""

    def line(self) -> str:
        at = f"  ({self.where})" if self.where else ""
        return f"  {self.path or '<root>'}: {self.what}{at}"


# Names torch's nn.Module, paddle.nn.Layer and nnx.Module already use for methods, which an
# operation's node would be named after (``x.float()``, ``x.type(...)``): a parameter-free
# node of such a name is renamed, since no state key depends on it.
MODULE_ATTRIBUTES = frozenset((
    "apply", "astype", "backward", "bfloat16", "buffers", "children", "compile", "cpu", "cuda",
    "double", "eval", "float", "float16", "forward", "full", "half", "modules", "parameters",
    "perturb", "sow", "state_dict", "sublayers", "to", "train", "training", "type", "zero_grad",
))  # fmt: skip


def _has_params(spec: Any) -> bool:
    params = getattr(spec, "params", None)
    return not callable(params) or bool(params())


@dataclass(frozen=True)
class _Again:
    """A row that runs the row ``target`` of its scope again: a :class:`Reuse` node once the
    scope is a spec (its target renamed if the rows are nested, :func:`_group`)."""

    target: str


@dataclass
class _Scope:
    """One module call being traced: its input names, its nodes so far, tensor id -> ref."""

    path: str
    type_name: str
    inputs: tuple[str, ...]
    rows: list = field(default_factory=list)  # (name, spec or _Scope or _Again, refs)
    refs: dict[int, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)
    outputs: Any = None  # a ref, a tuple of refs or a dict key -> ref, set by exit

    def row(self, name: str) -> Any:
        """The spec (or scope) of row ``name``; None when no row has that name."""
        return next((spec for n, spec, _ in self.rows if n == name), None)

    def name(self, hint: str) -> str:
        """``hint`` made a valid, unused node name (``relu``, ``relu_1``, ...)."""
        # a module name may hold '-' (RegNet's); a dotted hint is a child of a container
        # the model never calls itself (``container.0``), nested by ``_group``
        base = hint or "node"
        name, i = base, 0
        while name in self.taken or name in self.inputs:
            i += 1
            name = f"{base}_{i}"
        self.taken.add(name)
        return name


class TraceRecorder:
    """Builds the spec of one concrete run of a native model (see the module docstring).

    ``batch`` is the batch size the model runs at while traced: a framework tracer uses it
    to keep the batch free (a ``view(batch, -1)`` is a :class:`~xinit.layers.Reshape` of
    the dims after the batch)."""

    def __init__(
        self,
        inputs: list[Any],
        *,
        batch: int,
        type_name: str = "",
        names: tuple[str, ...] | None = None,
    ):
        names = names or (
            ("x",) if len(inputs) == 1 else tuple(f"x{i}" for i in range(len(inputs)))
        )
        self.batch = batch
        self.unknowns: list[Unknown] = []
        self._alive: list[Any] = []
        root = _Scope("", type_name, tuple(names))
        for tensor, name in zip(inputs, names):
            self._bind(root, tensor, name)
        self._stack = [root]

    # ---- where we are ------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The module path of the scope being traced ('' at the root)."""
        return self._stack[-1].path

    def ref(self, tensor: Any) -> str | None:
        """The current scope's reference to ``tensor``, or None when it was not produced or
        passed in there (a parameter, a constant, a tensor from another scope)."""
        return self._stack[-1].refs.get(id(tensor))

    def known(self, tensor: Any) -> bool:
        return self.ref(tensor) is not None

    # ---- recording -----------------------------------------------------------------------
    def node(self, hint: str, spec: Any, inputs: list[Any], output: Any) -> str:
        """Record ``spec`` applied to ``inputs`` (tensors of this scope) giving ``output``
        (a tensor, or a tuple/list of tensors: refs ``name.0``, ``name.1``...). Returns the
        node name. An input this scope does not know is recorded as unknown."""
        scope = self._stack[-1]
        refs = []
        for i, tensor in enumerate(inputs):
            ref = scope.refs.get(id(tensor))
            if ref is None:
                self.unknown(
                    f"{hint} takes a tensor (argument {i}) that is neither an input of "
                    f"{scope.type_name or 'the model'}.forward nor made by a traced layer or "
                    "operation (a constant or a closure)"
                )
                ref = scope.inputs[0]
            refs.append(ref)
        if not refs:
            refs = [scope.inputs[0]]
        if hint in MODULE_ATTRIBUTES and not _has_params(spec):
            hint += "_op"  # x.float(): a child named "float" would hide the module's method
        again = hint in scope.taken and _has_params(spec)
        first = scope.row(hint) if again else None
        name = scope.name(hint)
        if again and first == spec:  # the same layer called again: its weights, once more
            spec = _Again(hint)
        elif again:
            self.unknown(
                f"layer {hint!r} holds parameters and is called twice, the second time as "
                "another layer"
            )
        scope.rows.append((name, spec, tuple(refs)))
        self._bind_outputs(scope, output, name)
        return name

    def parameter(self, name: str, spec: Any, tensor: Any) -> str:
        """Record a learned tensor held by the scope's module (attribute ``name``) and used in
        its arithmetic: a ``LearnedTensor`` node of that name, whose key is the module's."""
        scope = self._stack[-1]
        if name in scope.taken:
            raise TraceError(f"{join(scope.path, name)}: the name is taken by another node")
        scope.taken.add(name)
        scope.rows.append((name, spec, (scope.inputs[0],)))
        self._bind(scope, tensor, name)
        return name

    def alias(self, tensor: Any, like: Any) -> None:
        """``tensor`` is the same value as ``like`` (an in-place op's result, a detach)."""
        scope = self._stack[-1]
        ref = scope.refs.get(id(like))
        if ref is not None:
            self._bind(scope, tensor, ref)

    def enter(self, name: str, type_name: str, inputs: list[Any]) -> None:
        """A call of child module ``name`` (its attribute name in the current scope) with
        ``inputs``: a new scope whose inputs are the given tensors."""
        parent = self._stack[-1]
        args = tuple(f"x{i}" if len(inputs) > 1 else "x" for i in range(len(inputs)))
        scope = _Scope(join(parent.path, name), type_name, args or ("x",))
        scope.refs = {}
        scope.parent_refs = []  # type: ignore[attr-defined]
        for tensor, arg in zip(inputs, args):
            ref = parent.refs.get(id(tensor))
            if ref is None:
                self.unknown(
                    f"{name} ({type_name}) is called with a tensor not made by a traced layer "
                    "or operation"
                )
                ref = parent.inputs[0]
            scope.parent_refs.append(ref)  # type: ignore[attr-defined]
            self._bind(scope, tensor, arg)
        self._stack.append(scope)

    def exit(self, name: str, outputs: Any) -> None:
        """Close the scope opened by :meth:`enter` with the call's ``outputs`` (a tensor, a
        tuple/list or a dict of tensors) and place it in the parent as node ``name``."""
        scope = self._stack.pop()
        parent = self._stack[-1]
        scope.outputs = self._output_refs(scope, outputs)
        refs = tuple(scope.parent_refs) or (parent.inputs[0],)  # type: ignore[attr-defined]
        again = name in parent.taken
        first = parent.row(name) if again else None
        node_name = parent.name(name)
        row: Any = scope
        if again:  # the module called before in this scope: a Reuse of that call
            row = _Again(name)
            if not isinstance(first, _Scope) or not self._same(first, scope):
                self.unknown(
                    f"module {name!r} ({scope.type_name}) is called twice and computes "
                    "otherwise the second time (control flow on its input?), which a Reuse "
                    "node cannot express"
                )
        parent.rows.append((node_name, row, refs))
        if isinstance(outputs, (tuple, list)):
            for i, t in enumerate(outputs):
                self._bind(parent, t, f"{node_name}.{i}")
        elif isinstance(outputs, dict):
            for k, t in outputs.items():
                self._bind(parent, t, f"{node_name}.{k}")
        else:
            self._bind(parent, outputs, node_name)

    def _same(self, first: _Scope, again: _Scope) -> bool:
        """Whether two calls of one module traced the same computation (specs equal)."""
        try:
            return _spec_of(first) == _spec_of(again)
        except TraceError as err:
            self.unknown(str(err))  # the call's own error, listed (not a second guess)
            return True

    def unknown(self, what: str, where: str = "") -> None:
        """Note what cannot be traced at the current path; the trace goes on."""
        self.unknowns.append(Unknown(self.path, what, where or source_line()))

    def finish(self, outputs: Any) -> Any:
        """The traced spec, returning ``outputs`` as the model does (one tensor, a tuple, a
        dict). Raises :class:`TraceError` listing every unknown layer and operation."""
        if len(self._stack) != 1:
            raise TraceError(
                f"trace ended inside {self._stack[-1].path!r}: a module call did not return"
            )
        root = self._stack[0]
        root.outputs = self._output_refs(root, outputs)
        if self.unknowns:
            raise TraceError(
                f"cannot trace this model into a spec: {len(self.unknowns)} unknown layer(s) "
                "or operation(s):\n" + "\n".join(u.line() for u in self.unknowns)
            )
        return _spec_of(root, top=True)

    # ---- internals -------------------------------------------------------------------------
    def _bind(self, scope: _Scope, tensor: Any, ref: str) -> None:
        self._alive.append(tensor)
        scope.refs[id(tensor)] = ref

    def _bind_outputs(self, scope: _Scope, output: Any, name: str) -> None:
        if isinstance(output, (tuple, list)):
            for i, t in enumerate(output):
                self._bind(scope, t, f"{name}.{i}")
        elif isinstance(output, dict):
            for k, t in output.items():
                self._bind(scope, t, f"{name}.{k}")
        else:
            self._bind(scope, output, name)

    def _output_refs(self, scope: _Scope, outputs: Any) -> Any:
        def one(t, key):
            ref = scope.refs.get(id(t))
            if ref is None:
                self.unknowns.append(
                    Unknown(
                        scope.path, f"returns output {key} that no traced layer or operation made"
                    )
                )
                return scope.inputs[0]
            return ref

        if isinstance(outputs, (tuple, list)):
            return tuple(one(t, i) for i, t in enumerate(outputs))
        if isinstance(outputs, dict):
            return {str(k): one(t, k) for k, t in outputs.items()}
        return one(outputs, 0)


def _spec_of(scope: _Scope, top: bool = False) -> Any:
    """A closed scope as a spec: a Sequential when its nodes form a plain chain from its one
    input to its one output, else a Graph (an inner graph returns a dict ``"0" -> ..`` for a
    tuple, so the parent can refer to ``node.0``; the top graph returns what the model does)."""
    rows = [(n, _spec_of(s) if isinstance(s, _Scope) else s, refs) for n, s, refs in scope.rows]
    outputs = scope.outputs
    while any("." in n for n, _, _ in rows):
        rows, outputs = _group(rows, outputs, scope)
    rows = [(n, Reuse(s.target) if isinstance(s, _Again) else s, refs) for n, s, refs in rows]
    if not rows or (isinstance(outputs, str) and outputs in scope.inputs):
        from .layers import Identity

        rows.append(
            ("identity", Identity(), (outputs if isinstance(outputs, str) else scope.inputs[0],))
        )
        outputs = "identity" if isinstance(outputs, str) else outputs
    chain = len(scope.inputs) == 1 and isinstance(outputs, str) and outputs == rows[-1][0]
    previous = scope.inputs[0]
    for name, spec, refs in rows:
        chain = chain and refs == (previous,) and not isinstance(spec, Reuse)
        previous = name
    if chain:
        return Sequential(*[(n, s) for n, s, _ in rows])
    if isinstance(outputs, tuple) and not top:
        outputs = {str(i): r for i, r in enumerate(outputs)}
    try:
        return Graph(rows, inputs=scope.inputs, outputs=outputs)
    except SpecError as err:
        raise TraceError(f"{scope.path or '<root>'} ({scope.type_name}): {err}") from None


BATCHES = (3, 5, 7, 11, 13, 17, 19, 23)


def trace_batch(shapes: list[tuple[int, ...]], batch: int | None = None) -> int:
    """The batch size to trace at for example inputs of ``shapes``: ``batch``, else the
    example's own, or for a batch of 1 the first of :data:`BATCHES` no other dim has (so a
    ``reshape(n, -1)`` is told from the other dims). Raises TraceError for unequal batches."""
    n = shapes[0][0] if shapes and shapes[0] else 0
    if batch is None:
        sizes = {d for shape in shapes for d in shape[1:]}
        batch = n if n > 1 else next(b for b in BATCHES if b not in sizes)
    if any(not shape or shape[0] != n for shape in shapes) or n not in (1, batch):
        raise TraceError(f"the example inputs {shapes} need one batch size: 1 or {batch}")
    return batch


def _owner(ref: str, names: set[str]) -> str | None:
    """The row a reference reads: the longest row name equal to it or a dotted prefix of it."""
    while ref not in names:
        if "." not in ref:
            return None
        ref = ref.rsplit(".", 1)[0]
    return ref


def _group(rows: list, outputs: Any, scope: _Scope) -> tuple[list, Any]:
    """Nest the rows named ``box.<child>`` (the calls of the children of a container the model
    never calls itself: a ``ModuleList``/``LayerList`` its forward iterates) as one node
    ``box``: a graph of those rows taking what they read from outside and giving what the
    others read, so the state keys stay ``box.0...``. Parameter-free rows between the calls
    (a loop's ``out += block(x)``) move inside; a row with parameters there is an error."""
    head = next(n for n, _, _ in rows if "." in n).split(".", 1)[0]
    names = {n for n, _, _ in rows}
    if head in names:
        raise TraceError(f"{scope.path or '<root>'}: {head!r} is both a node and a container")
    inside = {n for n in names if n.startswith(head + ".")}
    reads = {n: {_owner(r, names) for r in refs} - {None} for n, _, refs in rows}
    for n, spec, _ in rows:
        if isinstance(spec, _Again):  # it runs its target's layer: placed after it
            reads[n].add(spec.target)

    def reach(start: set[str], edges) -> set[str]:
        seen, todo = set(), list(start)
        while todo:
            for m in edges(todo.pop()):
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    after = reach(inside, lambda n: [m for m in names if n in reads[m]])
    before = reach(inside, lambda n: reads[n])
    between = (after & before) - inside
    specs = {n: spec for n, spec, _ in rows}
    held = [
        n for n in sorted(between) if not isinstance(specs[n], _Again) and param_specs(specs[n])
    ]
    if held:
        raise TraceError(
            f"{scope.path or '<root>'}: the calls of container {head!r} interleave with "
            f"{held[0]!r}, which holds parameters"
        )
    inside |= between
    for n, spec, _ in rows:
        if isinstance(spec, _Again) and (n in inside) != (spec.target in inside):
            raise TraceError(
                f"{scope.path or '<root>'}: {n!r} calls {spec.target!r} again from "
                f"{'inside' if n in inside else 'outside'} container {head!r}, which a Reuse "
                "node (an earlier node of the same graph) cannot express"
            )
    local = {n: n[len(head) + 1 :] if n.startswith(head + ".") else n for n in inside}
    if len(set(local.values())) < len(local):
        raise TraceError(f"{scope.path or '<root>'}: container {head!r} has clashing names")
    taken = [
        r for n, _, refs in rows if n in inside for r in refs if _owner(r, names) not in inside
    ]
    args = list(dict.fromkeys(taken))
    arg_names = ["x"] if len(args) == 1 else [f"x{i}" for i in range(len(args))]
    arg_of = dict(zip(args, arg_names))

    def inner(ref: str) -> str:
        n = _owner(ref, names)
        if n not in inside:
            return arg_of[ref]
        return local[n] + ref[len(n) :]

    flat_outputs = (
        [outputs]
        if isinstance(outputs, str)
        else list(dict(outputs).values())
        if isinstance(outputs, dict)
        else list(outputs)
    )
    read_outside = [r for n, _, refs in rows if n not in inside for r in refs] + flat_outputs
    given = list(dict.fromkeys(r for r in read_outside if _owner(r, names) in inside))
    box = _Scope(join(scope.path, head), "container", tuple(arg_names))
    box.rows = [
        (local[n], _Again(local[s.target]) if isinstance(s, _Again) else s, tuple(map(inner, refs)))
        for n, s, refs in rows
        if n in inside
    ]
    single = len(given) == 1
    box.outputs = inner(given[0]) if single else {inner(r): inner(r) for r in given}

    def outer(ref: str) -> str:
        if ref not in given:
            return ref
        return head if single else f"{head}.{inner(ref)}"

    spec = _spec_of(box)
    position = min(i for i, (n, _, _) in enumerate(rows) if n in inside)
    kept = [(n, s, tuple(outer(r) for r in refs)) for n, s, refs in rows if n not in inside]
    kept.insert(position, (head, spec, tuple(args)))
    if isinstance(outputs, str):
        outputs = outer(outputs)
    elif isinstance(outputs, dict):
        outputs = {k: outer(r) for k, r in outputs.items()}
    else:
        outputs = tuple(outer(r) for r in outputs)
    return kept, outputs


def source_line(skip: tuple[str, ...] = ()) -> str:
    """``file:line`` of the innermost frame outside xinit, its backends and the frameworks
    (the user's model code that made the call), or '' when none is found."""
    frame = sys._getframe(1)
    own = (
        "/xinit/",
        "/backends/",
        "/torch/",
        "/paddle/",
        "/jax/",
        "/flax/",
        "/contextlib.py",
        *skip,
    )
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(part in filename for part in own):
            return f"{filename}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


__all__ = ["BATCHES", "TraceRecorder", "TraceError", "Unknown", "source_line", "trace_batch"]

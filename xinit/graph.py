"""Graph composition: named nodes with explicit inputs, merges, several inputs and outputs.

``Graph({"stem": Conv(...), "hm": (head, "stem"), "wh": (head2, "stem")},
outputs={"hm": "hm", "wh": "wh"})`` registers each node as a child under its name, so the
parameter paths are PyTorch's (``hm.0.weight``), and runs the nodes in topological order.
A node given without inputs takes the node listed before it (the first: the graph's input).
An input ``"a.b"`` is output ``b`` of node ``a`` when ``a`` returns a dict (a tapped stage).
A node ``("lang_2", Reuse("lang"), refs)`` runs the earlier node ``lang``'s layer again, with
the same weights, on its own inputs (ABINet's language model, run once per iteration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .blocks import Sequential, children, is_spec, join
from .layers import Layer, Merge, SpecError, inputs_text

RETURNS = ("single", "tuple", "dict")


@dataclass(frozen=True)
class Reuse:
    """A graph node that runs the layer (or sub-graph) of the earlier node ``node`` of the
    same graph again, same weights, on its own inputs: shared parameters, no new state keys."""

    node: str

    def __post_init__(self):
        if not isinstance(self.node, str) or not self.node or "." in self.node:
            raise SpecError(
                f"Reuse: node must name an earlier node of the graph (no '.'); got {self.node!r}"
            )


def _names(value, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SpecError(f"Graph: {what} must be a name or a tuple of names; got {value!r}")


@dataclass(frozen=True, init=False)
class Graph:
    """Named nodes ``(name, spec, inputs)``, graph ``inputs`` and ``outputs``.

    ``nodes``: a mapping ``name -> spec`` or ``name -> (spec, input or inputs)``, or a list
    of ``(name, spec)`` / ``(name, spec, inputs)``. ``outputs``: one name (the run returns
    one array), a tuple of names (a tuple) or a mapping ``key -> name`` (a dict); by
    default the last node listed. ``kind`` names what the graph is (a factory's block, as
    :mod:`xinit.transformer`'s layers): parity rows and summaries show it.
    """

    nodes: tuple[tuple[str, Any, tuple[str, ...]], ...]
    inputs: tuple[str, ...]
    outputs: tuple[tuple[str, str], ...]
    returns: str
    order: tuple[str, ...]
    kind: str = "graph"  # a factory's graph is named by its kind (transformer_encoder_layer)
    is_container = True  # xinit.blocks.is_spec: a spec that holds children

    def __init__(self, nodes, *, inputs="x", outputs=None, kind: str = "graph"):
        if not isinstance(kind, str) or not kind.isidentifier():
            raise SpecError(f"Graph: kind must be a name such as 'graph'; got {kind!r}")
        object.__setattr__(self, "kind", kind)
        inputs = _names(inputs, "inputs")
        items = list(nodes.items()) if isinstance(nodes, Mapping) else list(nodes)
        rows: list[tuple[str, Any, tuple[str, ...]]] = []
        seen: set[str] = set(inputs)
        if len(seen) != len(inputs):
            raise SpecError(f"Graph: input names repeat: {inputs}")
        previous = inputs[0]
        for item in items:
            if isinstance(item, tuple) and len(item) == 3:
                name, spec, refs = item
            elif isinstance(item, tuple) and len(item) == 2:
                name, value = item
                spec, refs = value if isinstance(value, tuple) else (value, previous)
            else:
                raise SpecError(f"Graph: a node must be (name, spec[, inputs]); got {item!r}")
            if not isinstance(name, str) or not name or "." in name:
                raise SpecError(f"Graph: node name {name!r} must be a non-empty string without '.'")
            if name in seen:
                what = "a graph input" if name in inputs else "another node"
                raise SpecError(f"Graph: duplicate name {name!r} (already {what})")
            refs = _names(refs, f"inputs of node {name!r}")
            if isinstance(spec, Reuse):
                _check_inputs(name, _reused(name, spec, rows, inputs), refs)
            elif not is_spec(spec):
                raise SpecError(f"Graph: node {name!r} is not a spec: {spec!r}")
            else:
                _check_inputs(name, spec, refs)
            seen.add(name)
            rows.append((name, spec, refs))
            previous = name
        if not rows:
            raise SpecError("Graph: no nodes")
        if outputs is None:
            outputs, returns = ((rows[-1][0], rows[-1][0]),), "single"
        elif isinstance(outputs, str):
            outputs, returns = ((outputs, outputs),), "single"
        elif isinstance(outputs, Mapping):
            outputs, returns = tuple((str(k), v) for k, v in outputs.items()), "dict"
        else:
            outputs, returns = tuple((str(i), v) for i, v in enumerate(outputs)), "tuple"
        if not outputs:
            raise SpecError("Graph: no outputs")
        known = {r[0] for r in rows} | set(inputs)
        for name, _, refs in rows:
            for ref in refs:
                if ref.partition(".")[0] not in known:
                    raise SpecError(
                        f"Graph: node {name!r} takes input {ref!r}, which names no node "
                        f"(nodes: {', '.join(r[0] for r in rows)}; inputs: {', '.join(inputs)})"
                    )
        for key, ref in outputs:
            if not isinstance(ref, str) or ref.partition(".")[0] not in known:
                raise SpecError(
                    f"Graph: output {key!r} is {ref!r}, which names no node "
                    f"(nodes: {', '.join(r[0] for r in rows)})"
                )
        for name, value in (
            ("nodes", tuple(rows)),
            ("inputs", inputs),
            ("outputs", outputs),
            ("returns", returns),
            ("order", _topological(rows, inputs)),
        ):
            object.__setattr__(self, name, value)

    @property
    def children(self) -> tuple[tuple[str, Any], ...]:
        """Every node's spec under its name, in the order listed (PyTorch's registration);
        a :class:`Reuse` node holds no child of its own."""
        return tuple((name, spec) for name, spec, _ in self.nodes if not isinstance(spec, Reuse))

    def called(self, name: str) -> tuple[str, Any]:
        """(the child that runs at node ``name``, its spec): the node itself, or for a
        :class:`Reuse` node the earlier node it runs again."""
        spec = self.node(name)
        if isinstance(spec, Reuse):
            return spec.node, self.node(spec.node)
        return name, spec

    def node(self, name: str):
        for n, spec, _ in self.nodes:
            if n == name:
                return spec
        raise KeyError(name)

    def inputs_of(self, name: str) -> tuple[str, ...]:
        for n, _, refs in self.nodes:
            if n == name:
                return refs
        raise KeyError(name)

    def __getitem__(self, name: str):
        return self.node(name)

    # ---- shape inference and channel checks (called by xinit.blocks) ----------------------
    def _propagate(self, visit, path: str, value, merge):
        """Run ``visit(child, child_path, value)`` over the nodes in order (``merge`` for
        merge nodes), from the graph's input value(s); the outputs as the graph returns."""
        if len(self.inputs) == 1:
            env = {self.inputs[0]: value}
        elif value is None:  # channel checks without knowing the inputs
            env = dict.fromkeys(self.inputs)
        elif isinstance(value, Mapping):
            env = {k: value[k] for k in self.inputs}
        else:
            if not isinstance(value, (tuple, list)) or len(value) != len(self.inputs):
                raise SpecError(
                    f"{path or '<root>'}: the graph takes {len(self.inputs)} inputs "
                    f"{self.inputs}; got {value!r}"
                )
            env = dict(zip(self.inputs, value))
        where = path or "<root>"
        for name in self.order:
            callee, spec = self.called(name)  # a Reuse node: its target's layer, at its path
            refs = self.inputs_of(name)
            args = [_resolve(env, ref, where) for ref in refs]
            child = join(path, callee)
            if isinstance(spec, Merge):
                env[name] = merge(spec, args, refs, child)
            else:
                env[name] = visit(spec, child, args[0] if len(args) == 1 else tuple(args))
        outs = [_resolve(env, ref, where) for _, ref in self.outputs]
        if self.returns == "single":
            return outs[0]
        if self.returns == "tuple":
            return tuple(outs)
        return {key: v for (key, _), v in zip(self.outputs, outs)}

    def _infer(self, visit, path, shape):
        def merge(spec, shapes, refs, child):
            if any(not _is_shape(s) for s in shapes):
                raise SpecError(f"{child}: {spec.kind} takes arrays; got {shapes}")
            try:
                out = spec.merge_shape(shapes, list(refs))
            except SpecError as err:
                raise SpecError(f"{child}: {err}") from None
            return visit(spec, child, out)

        return self._propagate(visit, path, shape, merge)

    def _channels(self, visit, path, c):
        def merge(spec, cs, refs, child):
            cs = [x if isinstance(x, int) or x is None else None for x in cs]
            try:
                return spec.merge_channels(cs)
            except SpecError as err:
                named = ", ".join(f"{r} {x}" for r, x in zip(refs, cs))
                raise SpecError(f"{child}: {err} ({named})") from None

        return self._propagate(visit, path, c, merge)


def _check_inputs(name: str, spec, refs: tuple[str, ...]) -> None:
    """A node gets as many inputs as its spec takes (``Layer.inputs_taken``; a nested graph
    any number, Sequential and Residual one)."""
    if isinstance(spec, Graph):
        return
    lo, hi = spec.inputs_taken() if isinstance(spec, Layer) else (1, 1)
    if lo <= len(refs) and (hi is None or len(refs) <= hi):
        return
    what = inputs_text(lo, hi)
    raise SpecError(f"Graph: node {name!r} ({type(spec).__name__}) takes {what}; got {refs}")


def _reused(name: str, reuse: Reuse, rows: list, inputs: tuple[str, ...]):
    """The spec of the earlier node ``reuse`` names (listed before node ``name``, itself no
    Reuse); SpecError otherwise."""
    target = reuse.node
    for n, spec, _ in rows:
        if n != target:
            continue
        if isinstance(spec, Reuse):
            raise SpecError(
                f"Graph: node {name!r} reuses {target!r}, itself a Reuse of {spec.node!r}; "
                f"reuse {spec.node!r} directly"
            )
        return spec
    if target in inputs:
        raise SpecError(f"Graph: node {name!r} reuses {target!r}, a graph input, not a node")
    earlier = ", ".join(n for n, _, _ in rows) or "none"
    raise SpecError(
        f"Graph: node {name!r} reuses {target!r}, which names no earlier node "
        f"(earlier nodes: {earlier})"
    )


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, int) for v in value)


def _resolve(env: dict, ref: str, where: str):
    node, _, key = ref.partition(".")
    value = env[node]
    if not key:
        return value
    if not isinstance(value, Mapping) or key not in value:
        have = list(value) if isinstance(value, Mapping) else type(value).__name__
        raise SpecError(f"{where}: input {ref!r}: node {node!r} has no output {key!r} ({have})")
    return value[key]


def _topological(rows, inputs) -> tuple[str, ...]:
    """Node names in an order where every node comes after its inputs (listing order where
    free); SpecError naming the nodes of a cycle."""
    deps = {name: {r.partition(".")[0] for r in refs} - set(inputs) for name, _, refs in rows}
    for name, spec, _ in rows:
        if isinstance(spec, Reuse):  # after its target's own call: a layer reports its last
            deps[name].add(spec.node)
    done: list[str] = []
    placed: set[str] = set()
    pending = [name for name, _, _ in rows]
    while pending:
        ready = [n for n in pending if deps[n] <= placed]
        if not ready:
            raise SpecError(
                f"Graph: a cycle among nodes {', '.join(pending)} "
                f"({'; '.join(f'{n} <- {sorted(deps[n])}' for n in pending)})"
            )
        first = ready[0]
        done.append(first)
        placed.add(first)
        pending.remove(first)
    return tuple(done)


# ---- surgery --------------------------------------------------------------------------------
def _steps(spec) -> list[tuple[str, Any, tuple[str, ...] | None]]:
    """A chain-like container's nodes as (name, spec, inputs or None for 'the previous')."""
    if isinstance(spec, Graph):
        return [(n, s, refs) for n, s, refs in spec.nodes]
    if isinstance(spec, Sequential):
        names = [n for n, _ in spec.steps]
        if len(set(names)) != len(names):
            raise SpecError(
                f"cannot cut or tap a Sequential that reuses a child ({', '.join(names)})"
            )
        return [(n, s, None) for n, s in spec.steps]
    raise SpecError(
        f"cannot cut or tap inside a {type(spec).__name__} (only Sequential and Graph nodes)"
    )


def _tapped(spec, taps: list[str], where: str) -> tuple[Graph, str]:
    """``spec`` as a Graph returning a dict with an entry per tap (relative dotted path,
    the key is the path) plus its own output, the nodes after the last needed one dropped.
    Returns the graph and the key of its own (last kept node's) output."""
    steps = _steps(spec)
    names = [n for n, _, _ in steps]
    by_first: dict[str, list[str]] = {}
    for tap in taps:
        first, _, rest = tap.partition(".")
        if first not in names:
            raise SpecError(
                f"no node {join(where, first)!r} to tap or cut at (nodes of "
                f"{where or '<root>'}: {', '.join(names)})"
            )
        by_first.setdefault(first, []).append(rest)
    last = max(names.index(f) for f in by_first)
    inputs = spec.inputs if isinstance(spec, Graph) else ("x",)
    needed = _needed(steps[: last + 1], names[last])
    rows, refs_of, outputs = [], {}, {}
    previous = inputs[0]
    for name, child, refs in steps[: last + 1]:
        refs = refs if refs is not None else (previous,)
        previous = name
        if name not in needed:
            continue
        nested = [r for r in by_first.get(name, []) if r]
        refs = tuple(refs_of.get(r, r) for r in refs)
        if nested:
            child, own = _tapped(child, nested, join(where, name))
            refs_of[name] = f"{name}.{own}"
            for r in nested:
                outputs[f"{name}.{r}"] = f"{name}.{r}"
        rows.append((name, child, refs))
        if "" in by_first.get(name, []):
            outputs[name] = refs_of.get(name, name)
    own = refs_of.get(names[last], names[last])
    outputs.setdefault(own, own)
    return Graph(rows, inputs=inputs, outputs=outputs), own


def _needed(steps, last: str) -> set[str]:
    """The nodes ``last`` depends on (itself included): the rest is cut off."""
    deps: dict[str, set] = {}
    before = None
    for name, spec, refs in steps:
        deps[name] = {r.partition(".")[0] for r in refs} if refs is not None else {before}
        if isinstance(spec, Reuse):  # it runs its target's layer: the target stays
            deps[name].add(spec.node)
        before = name
    out, stack = set(), [last]
    while stack:
        n = stack.pop()
        if n in out or n not in deps:
            continue
        out.add(n)
        stack.extend(d for d in deps[n] if d is not None)
    return out


def feature_extractor(spec, return_nodes: Mapping[str, str] | list[str]) -> Graph:
    """A graph of ``spec`` whose run returns a dict of the named intermediate outputs, as
    torchvision's ``create_feature_extractor``: ``{"layer1": "c2", "layer4": "c5"}`` maps a
    node path to its output name (a list keeps the paths as names). Nodes after the last
    tap are dropped; parameter paths stay those of ``spec``."""
    if not isinstance(return_nodes, Mapping):
        return_nodes = {str(p): str(p) for p in return_nodes}
    if not return_nodes:
        raise SpecError("feature_extractor: return_nodes is empty")
    graph, _ = _tapped(spec, list(return_nodes), "")
    flat = dict(graph.outputs)
    outputs = {}
    for path, key in return_nodes.items():
        outputs[key] = flat[path]
    return Graph(list(graph.nodes), inputs=graph.inputs, outputs=outputs)


def truncate(spec, at: str):
    """``spec`` up to and including node ``at`` (a dotted path through Sequential and Graph
    nodes), returning that node's output: a backbone without what comes after."""
    graph = feature_extractor(spec, {at: "out"})
    return Graph(list(graph.nodes), inputs=graph.inputs, outputs=dict(graph.outputs)["out"])


def sub_spec(spec, path: str):
    """The node at dotted ``path`` as a spec of its own (its parameter paths relative)."""
    node = spec
    for part in path.split(".") if path else ():
        found = dict(children(node)).get(part)
        if found is None and isinstance(node, Graph) and part in node.order:
            raise SpecError(
                f"node {part!r} on the way to {path!r} is a Reuse of {node.called(part)[0]!r}, "
                "which holds its layer"
            )
        if found is None:
            names = ", ".join(n for n, _ in children(node))
            raise SpecError(f"no node {part!r} on the way to {path!r} (children: {names})")
        node = found
    return node


__all__ = ["Graph", "Reuse", "feature_extractor", "truncate", "sub_spec", "RETURNS"]

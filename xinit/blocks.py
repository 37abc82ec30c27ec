"""Composition: Sequential and Residual blocks with named children, and the tree walkers.

Child names become the dotted parameter paths (``layer1.0.conv1.weight``), exactly as PyTorch
names submodules: ``Sequential(a, b)`` names them ``0``, ``1``; ``Sequential({"conv1": ...})``
uses the given names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Union

from . import kinds
from .layers import Layer, ParamSpec, ReLU, SpecError, inputs_text

Spec = Union[Layer, "Sequential", "Residual"]  # noqa: UP007 - forward references


def is_spec(value) -> bool:
    """A layer spec or a container (Sequential, Residual, or a graph: any class that says
    ``is_container``)."""
    return isinstance(value, (Layer, Sequential, Residual)) or getattr(
        type(value), "is_container", False
    )


def _check_name(name: str, where: str) -> str:
    if not isinstance(name, str) or not name or "." in name:
        raise SpecError(f"{where}: child name {name!r} must be a non-empty string without '.'")
    return name


@dataclass(frozen=True, init=False)
class Sequential:
    """Children applied in order. ``Sequential(a, b)`` or ``Sequential({"name": a, ...})``.

    Pairs ``Sequential(("relu", ReLU()), ...)`` may repeat a name for the same parameter-free
    layer, which then runs twice as one shared module (torchvision's blocks reuse ``relu``).
    """

    steps: tuple[tuple[str, Spec], ...]
    kind = "sequential"

    def __init__(self, *layers, **named):
        if len(layers) == 1 and isinstance(layers[0], Mapping):
            items = list(layers[0].items())
        elif layers and all(isinstance(x, tuple) and len(x) == 2 for x in layers):
            items = list(layers)
        else:
            items = [(str(i), x) for i, x in enumerate(layers)]
        items += list(named.items())
        seen: dict[str, Spec] = {}
        for name, child in items:
            _check_name(name, "Sequential")
            if not is_spec(child):
                raise SpecError(f"Sequential: child {name!r} is not a spec: {child!r}")
            if name in seen and not (
                seen[name] == child and isinstance(child, Layer) and not child.params()
            ):
                raise SpecError(
                    f"Sequential: child name {name!r} repeats; only an identical parameter-free "
                    "layer may be reused"
                )
            seen[name] = child
        object.__setattr__(self, "steps", tuple(items))

    @property
    def children(self) -> tuple[tuple[str, Spec], ...]:
        """Unique named children in first-use order (the module's submodules)."""
        out: dict[str, Spec] = {}
        for name, child in self.steps:
            out.setdefault(name, child)
        return tuple(out.items())

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, name: str | int):
        key = str(name)
        for n, c in self.steps:
            if n == key:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class Residual:
    """``activation(body(x) + shortcut(x))``, body children inlined under the block's names.

    Mirrors torchvision's BasicBlock/Bottleneck: ``Residual(Sequential({"conv1": ..., "bn1":
    ..., "relu": ReLU(), "conv2": ..., "bn2": ...}), shortcut=Sequential(conv, bn))`` gives
    the keys ``conv1.weight``, ..., ``downsample.0.weight``. An activation whose name is already
    a body child of equal spec shares that child, as torchvision's blocks reuse one ``relu``.
    """

    body: Sequential
    shortcut: Spec | None = None
    shortcut_name: str = "downsample"
    activation: Layer | None = ReLU()
    activation_name: str = "relu"
    kind = "residual"

    def __post_init__(self):
        if not isinstance(self.body, Sequential):
            raise SpecError("Residual.body must be a Sequential of named children")
        names = [n for n, _ in self.body.children]
        if self.shortcut is not None:
            _check_name(self.shortcut_name, "Residual")
            if self.shortcut_name in names:
                raise SpecError(f"Residual: shortcut name {self.shortcut_name!r} is a body child")
        if self.activation is not None:
            _check_name(self.activation_name, "Residual")
            if self.activation_name in names and self.body[self.activation_name] != self.activation:
                raise SpecError(
                    f"Residual: activation name {self.activation_name!r} is a different body child"
                )

    @property
    def children(self) -> tuple[tuple[str, Spec], ...]:
        """Every named child, once (body, then shortcut, then a non-shared activation)."""
        out = list(self.body.children)
        if self.shortcut is not None:
            out.append((self.shortcut_name, self.shortcut))
        names = {n for n, _ in out}
        if self.activation is not None and self.activation_name not in names:
            out.append((self.activation_name, self.activation))
        return tuple(out)


def join(prefix: str, name: str) -> str:
    """``prefix.name``; an empty ``name`` is ``prefix`` itself (a learned-parameter node's
    single parameter: its path is the node's)."""
    if not prefix:
        return name
    return f"{prefix}.{name}" if name else prefix


def children(spec) -> tuple[tuple[str, Spec], ...]:
    return () if isinstance(spec, Layer) else spec.children


def walk(spec, prefix: str = "") -> Iterator[tuple[str, Spec]]:
    """Every node, parents before children, with its dotted path ("" for the root)."""
    yield prefix, spec
    for name, child in children(spec):
        yield from walk(child, join(prefix, name))


def param_specs(spec) -> dict[str, ParamSpec]:
    """Dotted path -> ParamSpec for every parameter and buffer, in PyTorch's state_dict order."""
    out: dict[str, ParamSpec] = {}
    for path, node in walk(spec):
        if isinstance(node, Layer):
            for p in node.params():
                out[join(path, p.name)] = p
    return out


def layer_of(spec, path: str):
    """The node at dotted ``path``."""
    node = spec
    for part in path.split(".") if path else ():
        node = dict(children(node)).get(part)
        if node is None:
            raise KeyError(f"no child {part!r} on the way to {path!r}")
    return node


@dataclass(frozen=True)
class ShapeRow:
    path: str
    spec: object
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def infer(spec, input_shape: tuple[int, ...], prefix: str = "") -> list[ShapeRow]:
    """Output shape of every node (post-order rows), raising SpecError naming the path."""
    rows: list[ShapeRow] = []
    shape = _shapes(input_shape)

    def visit(node, path, shape):
        where = path or "<root>"
        if isinstance(node, Layer):
            lo, hi = node.inputs_taken()
            count = len(shape) if _is_multi(shape) and not isinstance(shape, Mapping) else 1
            if _is_multi(shape) and hi == 1:
                raise SpecError(f"{where}: {node.kind} takes one array; got shapes {shape}")
            if count < lo or (hi is not None and count > hi) or isinstance(shape, Mapping):
                what = inputs_text(lo, hi)
                raise SpecError(f"{where}: {node.kind} takes {what}; got shape(s) {shape}")
            try:
                out = node.output_shape(shape)
            except SpecError as err:
                raise SpecError(f"{where}: {err}") from None
            parts = out.values() if isinstance(out, Mapping) else (out,)  # a split's dict
            if min((n for part in parts for n in part), default=1) < 1:
                raise SpecError(f"{where}: output shape {out} is empty for input {shape}")
        elif isinstance(node, Sequential):
            out = shape
            for name, child in node.steps:
                out = visit(child, join(path, name), out)
        elif isinstance(node, Residual):
            main = shape
            for name, child in node.body.steps:
                main = visit(child, join(path, name), main)
            side = shape
            if node.shortcut is not None:
                side = visit(node.shortcut, join(path, node.shortcut_name), shape)
            if main != side:
                raise SpecError(
                    f"{where}: residual branches differ: body gives {main}, "
                    f"{'shortcut' if node.shortcut is not None else 'identity'} gives {side}"
                )
            out = main
            if node.activation is not None:  # a row of its own: it runs (maybe shared)
                out = visit(node.activation, join(path, node.activation_name), out)
        elif hasattr(node, "_infer"):  # a graph
            out = node._infer(visit, path, shape)
        else:
            raise SpecError(f"{where}: not a spec: {node!r}")
        rows.append(ShapeRow(path, node, shape, out))
        return out

    visit(spec, prefix, shape)
    return rows


def _shapes(value):
    """Integer shape tuples, kept nested for several inputs (tuple or dict of shapes)."""
    if isinstance(value, Mapping):
        return {k: _shapes(v) for k, v in value.items()}
    if _is_multi(value):
        return tuple(_shapes(v) for v in value)
    return tuple(int(s) for s in value)


def _is_multi(shape) -> bool:
    return isinstance(shape, Mapping) or (
        isinstance(shape, (tuple, list)) and any(isinstance(s, (tuple, list)) for s in shape)
    )


def check_channels(spec) -> None:
    """Check channel counts along the spec without an input size (what build can know)."""

    def visit(node, path, c):
        where = path or "<root>"
        if isinstance(node, Sequential):
            for name, child in node.steps:
                c = visit(child, join(path, name), c)
            return c
        if isinstance(node, Residual):
            main = c
            for name, child in node.body.steps:
                main = visit(child, join(path, name), main)
            side = (
                c
                if node.shortcut is None
                else visit(node.shortcut, join(path, node.shortcut_name), c)
            )
            if main is not None and side is not None and main != side:
                raise SpecError(
                    f"{where}: residual branches differ: body gives {main} channels, "
                    f"{'shortcut' if node.shortcut is not None else 'identity'} gives {side}"
                )
            return main
        if hasattr(node, "_channels"):  # a graph
            return node._channels(visit, path, c)
        if not isinstance(c, (int, type(None))):
            c = None  # several inputs: the node's own check sees them
        try:
            return node.channels(c)
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None

    visit(spec, "", None)


def input_channels(spec) -> int | None:
    """The channel (feature) count the spec's first layer takes (None when its first layer
    takes no fixed count: an activation-only spec, an embedding, a flatten)."""
    for _, node in walk(spec):
        if not isinstance(node, Layer):
            continue
        kind = kinds.get(node.kind)  # its traits say which attribute counts its channels
        value = getattr(node, kind.channels, None) if kind.channels else None
        if isinstance(value, int):
            return value
        if kind.channel_free:
            return None
    return None


def output_shape(spec, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    return infer(spec, input_shape)[-1].output_shape


def num_params(spec, trainable_only: bool = False) -> int:
    """The number of parameter values, as ``summary().total_params`` and torch's
    ``sum(p.numel() for p in model.parameters())`` count them: no buffers (BatchNorm
    running statistics). ``trainable_only`` is kept for old callers; it changes nothing."""
    return sum(p.numel for p in param_specs(spec).values() if p.trainable)


def num_state_values(spec) -> int:
    """Parameter values plus float buffers (running statistics): what a state dict holds
    in float32, e.g. VGG-16's features 20,046,400 against 20,035,392 parameters."""
    return sum(p.numel for p in param_specs(spec).values() if p.dtype == "float32")


__all__ = [
    "Sequential",
    "Residual",
    "walk",
    "param_specs",
    "infer",
    "output_shape",
    "layer_of",
    "num_params",
    "num_state_values",
    "join",
    "children",
    "ShapeRow",
    "check_channels",
    "input_channels",
    "is_spec",
]

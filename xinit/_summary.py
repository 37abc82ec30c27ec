"""``xinit.summary``: the hand arithmetic people do, per layer: output shape, params, init."""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import infer, join, param_specs
from .layers import Layer


@dataclass(frozen=True)
class SummaryRow:
    path: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    initializer: str


@dataclass(frozen=True)
class Summary:
    rows: tuple[SummaryRow, ...]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | tuple | dict  # a graph of several outputs: all of them
    total_params: int
    trainable_params: int
    buffers: int

    def table(self, title: str = ""):
        """A rich Table of the rows and totals."""
        from rich.table import Table

        t = Table(title=title or None, caption=self.caption())
        for col in ("path", "kind", "output shape", "params", "initializer"):
            t.add_column(col, justify="right" if col == "params" else "left")
        for r in self.rows:
            t.add_row(r.path, r.kind, _shape_text(r.output_shape), f"{r.params:,}", r.initializer)
        return t

    def caption(self) -> str:
        return (
            f"input {_shape_text(self.input_shape)} -> output "
            f"{_shape_text(self.output_shape)}; {self.trainable_params:,} trainable "
            f"parameters, {self.buffers:,} buffer values"
        )


def _shape_text(shape) -> str:
    """``1x3x8x8``; a graph's several shapes as ``(a, b)`` or ``{hm: ..., wh: ...}``."""
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{k}: {_shape_text(v)}" for k, v in shape.items()) + "}"
    if any(isinstance(s, (tuple, list)) for s in shape):
        return "(" + ", ".join(_shape_text(s) for s in shape) + ")"
    return "x".join(map(str, shape))


def _init_text(layer: Layer, policy_inits: dict[str, object], path: str) -> str:
    """``leaf: initializer`` per trainable parameter; a run of three or more consecutive
    leaves with one initializer (a recurrent layer's 16 tensors) is one entry."""
    runs: list[tuple[str, list[str]]] = []
    for p in layer.params():
        if not p.trainable:
            continue
        init = str(policy_inits.get(join(path, p.name), p.init))
        if runs and runs[-1][0] == init:
            runs[-1][1].append(p.name)
        else:
            runs.append((init, [p.name]))
    parts = []
    for init, names in runs:
        if len(names) >= 3:
            parts.append(f"{len(names)} tensors {names[0]} .. {names[-1]}: {init}")
        else:
            parts += [f"{name}: {init}" if name else init for name in names]
    return "; ".join(parts)


def _named_block(node) -> bool:
    """A graph a factory named (its ``kind`` is not plain ``graph``)."""
    return getattr(type(node), "is_container", False) and node.kind != "graph"


def summary(spec, input_shape: tuple[int, ...], policy=None) -> Summary:
    """Rows (path, layer kind, output shape, parameter count, initializer) and totals.

    LeNet's first conv reads ``conv1 conv 1x6x28x28 456``: 3*6*5*5 + 6 parameters. A named
    graph (``transformer_encoder_layer``) gets a row after its layers, with its output and no
    parameters of its own (its layers' rows count them), so the rows sum to the total.
    """
    shapes = infer(spec, input_shape)
    params = param_specs(spec)
    chosen = {}
    if policy is not None:
        chosen = policy.initializers({k: v for k, v in params.items() if v.trainable})
    rows, seen = [], set()
    for r in shapes:
        if _named_block(r.spec):  # a factory's block (transformer layer): a row of its own,
            rows.append(SummaryRow(r.path, r.spec.kind, r.output_shape, 0, ""))  # after its layers
            continue
        if not isinstance(r.spec, Layer):
            continue
        first = r.path not in seen
        seen.add(r.path)
        count = sum(p.numel for p in r.spec.params() if p.trainable) if first else 0
        init = _init_text(r.spec, chosen, r.path) if first else ""
        rows.append(SummaryRow(r.path, r.spec.kind, r.output_shape, count, init))
    trainable = sum(p.numel for p in params.values() if p.trainable)
    buffers = sum(p.numel for p in params.values() if not p.trainable)
    return Summary(
        rows=tuple(rows),
        input_shape=input_shape if isinstance(input_shape, dict) else tuple(input_shape),
        output_shape=shapes[-1].output_shape,
        total_params=trainable,
        trainable_params=trainable,
        buffers=buffers,
    )

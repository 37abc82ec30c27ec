"""``init_weights`` in neutral terms: which law each parameter gets (the init plan), and
which parameters share one statement so the method can loop over layer classes, as
torchvision's ``for m in self.modules(): if isinstance(m, nn.Conv2d): ...`` does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..blocks import layer_of
from ..plan import PlanItem, init_plan


@dataclass(frozen=True)
class InitRow:
    """One parameter to draw: its plan item, its layer spec and its leaf name."""

    item: PlanItem
    layer: Any
    leaf: str


def init_rows(spec, policy=None) -> list[InitRow]:
    """The plan's rows in state-dict order."""
    rows = []
    for item in init_plan(spec, policy):
        rows.append(InitRow(item, layer_of(spec, item.layer), item.param.name))
    return rows


def same_law(item: PlanItem, fans) -> bool:
    """Whether the item's initializer resolved with the framework's own ``fans`` gives the
    plan's law (so the framework's own initialiser, which computes those fans, draws it)."""
    if fans is None:
        return False
    try:
        law = item.init.resolve(item.param.shape, item.param.role, fans, param=item.param)
    except Exception:  # noqa: BLE001 - an initializer that refuses these fans: no native call
        return False
    return law == item.dist


def grouped(
    rows: list[InitRow],
    statement: Callable[[InitRow, str], str],
    class_key: Callable[[Any], str | None],
    layers: list[tuple[str, Any]],
) -> tuple[list[tuple[tuple[str, ...], list[str]]], list[InitRow]]:
    """(loop branches ``[(classes, [statements on m])]``, rows written one by one).

    A leaf of a layer class goes in the loop when every layer of that class in the model
    (``layers``: path, spec) has it with the same statement; the rest is written per path."""
    by_class: dict[str, list[tuple[str, Any]]] = {}
    for path, layer in layers:
        key = class_key(layer)
        if key is not None:
            by_class.setdefault(key, []).append((path, layer))
    found: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        key = class_key(row.layer)
        if key is not None:
            found.setdefault((key, row.leaf), {})[row.item.layer] = statement(row, "m")
    branches: dict[str, list[str]] = {}
    looped: set[tuple[str, str]] = set()
    for (key, leaf), per_layer in found.items():
        texts = set(per_layer.values())
        if len(texts) == 1 and len(per_layer) == len(by_class[key]):
            branches.setdefault(key, []).append(texts.pop())
            looped.add((key, leaf))
    rest = [r for r in rows if (class_key(r.layer), r.leaf) not in looped]
    merged: dict[tuple[str, ...], list[str]] = {}  # classes with the same statements: one branch
    for key, stmts in branches.items():
        same = next((k for k, v in merged.items() if v == stmts), None)
        if same is None:
            merged[(key,)] = stmts
        else:
            merged[(*same, key)] = merged.pop(same)
    return list(merged.items()), rest


__all__ = ["InitRow", "init_rows", "same_law", "grouped"]

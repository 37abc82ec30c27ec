"""Nested checkpoints as flat ``{dotted name: array}`` and back, and training wrappers
(``{"state_dict": ..., "epoch": 3}``) unwrapped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import CheckpointError
from .limits import MAX_DEPTH, MAX_ENTRIES


# ---- flattening ----------------------------------------------------------------------------
def flatten(tree: Mapping, prefix: str = "", *, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``{"a": {"b": x}}`` -> ``{"a.b": x}`` (keys become strings).

    Two entries that become the same name (``"a.b"`` next to ``{"a": {"b": ...}}``, or the
    keys ``1`` and ``"1"``) raise :class:`CheckpointError` naming both; so does a dict that
    holds itself or nesting deeper than ``max_depth``."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}

    def visit(node: Mapping, name: str, shown: str, depth: int, active: tuple) -> None:
        if depth > max_depth or id(node) in active:
            raise CheckpointError(
                f"{shown or 'the checkpoint'}: dicts nested deeper than {max_depth} levels "
                "or a dict that holds itself; not a checkpoint of arrays"
            )
        for key, value in node.items():
            full = f"{name}.{key}" if name else str(key)
            where = f"{shown}[{key!r}]"
            if isinstance(value, Mapping):
                visit(value, full, where, depth + 1, (*active, id(node)))
                continue
            if len(out) >= MAX_ENTRIES:
                raise CheckpointError(
                    f"more than {MAX_ENTRIES:,} entries (shared dicts repeated?); "
                    "not a checkpoint of arrays"
                )
            if full in out:
                raise CheckpointError(
                    f"two entries both become the key {full!r}: {origin[full]} and {where}; "
                    "rename one (neither was dropped)"
                )
            out[full], origin[full] = value, where

    visit(tree, prefix, "", 0, ())
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": x}`` -> ``{"a": {"b": x}}``; a name that is also a prefix is an error."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        parts = name.split(".")
        node = tree
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(
                    f"{name!r}: {'.'.join(parts[: i + 1])!r} is both a leaf and a prefix"
                )
            node = child
        if parts[-1] in node:
            raise ValueError(f"{name!r} is both a leaf and a prefix")
        node[parts[-1]] = value
    return tree


def _leaf_arrays(flat: dict[str, Any]) -> dict[str, Any]:
    """numpy scalars and Python numbers as 0-d arrays; everything else unchanged."""
    out = {}
    for key, value in flat.items():
        if isinstance(value, np.generic) or (
            isinstance(value, (int, float, bool)) and not isinstance(value, np.ndarray)
        ):
            value = np.asarray(value)
        out[key] = value
    return out


class LoadedCheckpoint(dict):
    """``{name: numpy array}`` as read from a file, with ``notes``: what the reader changed
    (a wrapper unwrapped, bfloat16 widened), for reports to show."""

    notes: list[str]

    def __init__(self, *args, notes: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notes = list(notes or [])


# Entries a training script wraps a state dict in ({"state_dict": ..., "epoch": 3}).
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")


def unwrap(tree: Any, notes: list[str]) -> Any:
    """The state dict inside a training wrapper (``{"state_dict": {...}, "epoch": 3,
    "arch": "resnet18"}``, ``{"model": {...}}``), one note per level unwrapped. A dict that
    holds arrays at its top level is a state dict already and is returned as it is."""
    for _ in range(3):
        if not isinstance(tree, Mapping) or any(
            isinstance(v, np.ndarray) and v.ndim > 0 for v in tree.values()
        ):
            return tree
        key = next((k for k in WRAPPER_KEYS if isinstance(tree.get(k), Mapping)), None)
        if key is None:
            return tree
        aside = [str(k) for k in tree if k != key]
        shown = ", ".join(aside[:5]) + (", ..." if len(aside) > 5 else "")
        notes.append(
            f"unwrapped the checkpoint's {key!r} entry"
            + (f" (left aside: {shown})" if aside else "")
        )
        tree = tree[key]
    return tree

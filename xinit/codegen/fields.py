"""What an emitter sees of one layer: each field as code (a literal or a constructor
argument), plus the file-wide needs (imports, helper functions) it may add."""

from __future__ import annotations

import dataclasses
from typing import Any

from .structure import Code, compact


def literal(value: Any) -> str:
    """Python source of a plain value (ints, floats, strings, tuples, None, bools)."""
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if text not in ("inf", "-inf", "nan") else f'float("{text}")'
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


class Context:
    """File-wide needs collected while writing: imports and helper definitions, each kept
    once and written in the order first asked for (so the output is deterministic)."""

    def __init__(self):
        self.imports: dict[str, None] = {}
        self.helpers: dict[str, str] = {}
        self.inits: dict[str, dict[str, str]] = {}  # layer path -> leaf -> init code (Flax)

    def need(self, line: str) -> None:
        """An import line (``import math``) the file needs."""
        self.imports.setdefault(line)

    def helper(self, name: str, source: str) -> str:
        """A top-level function or class the file needs, defined once; returns ``name``."""
        self.helpers.setdefault(name, source)
        return name


@dataclasses.dataclass
class Fields:
    """One layer's fields as code: ``f["stride"]`` is ``2`` or the argument ``stride``."""

    spec: Any
    args: dict[str, str]  # field -> argument expression where the field is an argument
    ctx: Context
    path: str = ""  # in its class
    where: str = ""  # in the model (the first instance's), for messages and the init plan

    def __getitem__(self, name: str) -> str:
        if name in self.args:
            return self.args[name]
        return literal(compact(name, getattr(self.spec, name)))

    def value(self, name: str) -> Any:
        """The field's value (compact), or None when it is a constructor argument."""
        return None if name in self.args else compact(name, getattr(self.spec, name))

    def kw(self, name: str, default: Any, as_name: str | None = None) -> list[str]:
        """``["name=code"]``, or ``[]`` when the field is a literal equal to ``default``."""
        if name not in self.args and self.value(name) == default:
            return []
        return [f"{as_name or name}={self[name]}"]


__all__ = ["Code", "Context", "Fields", "literal"]

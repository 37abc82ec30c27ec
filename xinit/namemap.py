"""Name maps: how the parameter paths of one model correspond to another's.

Two models written independently rarely name everything alike: Flax's ``nnx.Sequential``
holds ``layer1.layers.0`` where PyTorch's holds ``layer1.0``; a port may wrap a backbone as
``backbone.``. A :class:`NameMap` renames neutral paths, from any of:

* a dict of prefixes, ``{"backbone.": "", "head.": None}`` (longest matching prefix wins;
  None drops the entries, which are then reported);
* a list of regex rules, ``[(r"\\.layers\\.", ".")]``, applied in order with ``re.sub``;
* a function ``path -> new path or None``;
* a JSON file holding ``{"prefix": {...}}`` and/or ``{"regex": [[pattern, repl], ...]}``.

Renaming never merges two entries silently: two paths mapped to one name raise
:class:`NameMapError` naming both.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import XinitError


class NameMapError(XinitError, ValueError):
    """A name map that cannot apply: a bad rule, or two entries renamed to one name."""


class NameMap:
    """A renaming of neutral paths (see the module docstring for the accepted forms)."""

    def __init__(self, rules: Any = None):
        self.prefixes: dict[str, str | None] = {}
        self.regex: list[tuple[re.Pattern, str]] = []
        self.function: Callable[[str], str | None] | None = None
        if rules is None:
            return
        if isinstance(rules, NameMap):
            self.prefixes, self.regex, self.function = rules.prefixes, rules.regex, rules.function
        elif isinstance(rules, (str, os.PathLike)):
            self._from_file(Path(rules))
        elif isinstance(rules, Mapping):
            self._prefixes(rules)
        elif callable(rules):
            self.function = rules
        elif isinstance(rules, Sequence):
            self._rules(rules)
        else:
            raise NameMapError(
                f"a name map is a dict, a list of regex rules or a function; got {rules!r}"
            )

    def _prefixes(self, rules: Mapping) -> None:
        for old, new in rules.items():
            if not isinstance(old, str) or not (new is None or isinstance(new, str)):
                raise NameMapError(
                    f"prefix rule {old!r} -> {new!r}: both must be strings (or None)"
                )
        self.prefixes = dict(rules)

    def _rules(self, rules: Sequence) -> None:
        for rule in rules:
            if not (isinstance(rule, (list, tuple)) and len(rule) == 2):
                raise NameMapError(f"regex rule {rule!r} must be a (pattern, replacement) pair")
            try:
                self.regex.append((re.compile(rule[0]), str(rule[1])))
            except re.error as err:
                raise NameMapError(f"regex rule {rule[0]!r}: {err}") from None

    def _from_file(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise NameMapError(f"{path}: cannot read a name map: {err}") from None
        if not isinstance(data, dict) or not set(data) <= {"prefix", "regex"}:
            raise NameMapError(f'{path}: a name map file holds {{"prefix": ..., "regex": ...}}')
        self._prefixes(data.get("prefix", {}))
        self._rules(data.get("regex", []))

    def __bool__(self) -> bool:
        return bool(self.prefixes or self.regex or self.function)

    def __call__(self, path: str) -> str | None:
        """The new path (None: dropped)."""
        match = max((p for p in self.prefixes if path.startswith(p)), key=len, default=None)
        if match is not None:
            new = self.prefixes[match]
            if new is None:
                return None
            path = new + path[len(match) :]
        for pattern, repl in self.regex:
            path = pattern.sub(repl, path)
        if self.function is not None:
            path = self.function(path)
            if path is not None and not isinstance(path, str):
                raise NameMapError(f"the name map function returned {path!r}, not a str or None")
        return path

    def rename(
        self, entries: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[str], dict[str, str]]:
        """``(renamed entries, dropped paths, {new: old} for the renamed})``; two entries
        mapped to one name raise NameMapError naming both."""
        out: dict[str, Any] = {}
        origin: dict[str, str] = {}
        dropped: list[str] = []
        for old, value in entries.items():
            new = self(old)
            if new is None:
                dropped.append(old)
                continue
            if new in out:
                raise NameMapError(
                    f"the name map sends both {origin[new]!r} and {old!r} to {new!r}"
                )
            out[new], origin[new] = value, old
        return out, dropped, {n: o for n, o in origin.items() if n != o}


__all__ = ["NameMap", "NameMapError"]

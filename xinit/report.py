"""The init report: every parameter once, with what set it (MMEngine's init log, as data).

Shared by :func:`xinit.apply` (a native module) and :meth:`xinit.Policy.report` (a build).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

STATUSES = ("initialized", "default", "unmatched", "skipped", "left")


@dataclass(frozen=True)
class ReportEntry:
    """One parameter: what set it. ``status`` is ``initialized`` (by ``rule``), ``default``
    (no rule: the spec's own initializer, in a build), ``unmatched`` (no rule: left as the
    framework made it, in :func:`apply`), ``skipped`` (left untouched on request) or ``left``
    (its rule has nothing for it: ``Default(framework)`` on a tensor of a class no framework
    layer is; ``reason`` says why)."""

    path: str  # neutral dotted path
    native: str  # the framework's name for it
    kind: str  # neutral layer kind ("" for a layer class xinit does not know)
    module_type: str  # the owning layer's class
    shape: tuple[int, ...]  # neutral shape
    status: str
    rule: str = ""  # "#index rule" of the rule that set it
    rule_index: int | None = None  # its index in the policy
    initializer: str = ""
    distribution: str = ""
    reason: str = ""  # why a ``left`` parameter was left as it is


@dataclass(frozen=True)
class Report:
    """Every parameter exactly once, in registration order (MMEngine's init log, as data)."""

    entries: tuple[ReportEntry, ...]
    policy: Any = None  # the xinit.Policy that made it (None: none)
    notes: tuple[str, ...] = ()  # warnings raised while planning (rules that select nothing)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries)

    def __getitem__(self, path: str) -> ReportEntry:
        for e in self.entries:
            if path in (e.path, e.native):
                return e
        raise KeyError(f"no parameter {path!r} in the report")

    def _with(self, *statuses: str) -> tuple[str, ...]:
        return tuple(e.path for e in self.entries if e.status in statuses)

    @property
    def initialized(self) -> tuple[str, ...]:
        """Paths a rule set."""
        return self._with("initialized")

    @property
    def unmatched(self) -> tuple[str, ...]:
        """Paths no rule selected (kept as the spec or the framework initialised them)."""
        return self._with("unmatched", "default")

    @property
    def skipped(self) -> tuple[str, ...]:
        return self._with("skipped")

    @property
    def left(self) -> dict[str, str]:
        """Path -> why: the parameters a rule selected but had no law for (left as is)."""
        return {e.path: e.reason for e in self.entries if e.status == "left"}

    def counts(self) -> dict[str, int]:
        return {s: sum(e.status == s for e in self.entries) for s in STATUSES}

    def caption(self) -> str:
        c = self.counts()
        parts = [f"{len(self)} parameters", f"{c['initialized']} set by rules"]
        if c["default"]:
            parts.append(f"{c['default']} spec defaults")
        if c["unmatched"]:
            parts.append(f"{c['unmatched']} unmatched (left as they were)")
        if c["skipped"]:
            parts.append(f"{c['skipped']} skipped")
        if c["left"]:
            parts.append(f"{c['left']} with no framework default (left as is)")
        return ", ".join(parts)

    def lines(self) -> list[str]:
        """``name - shape: initializer [rule]`` per parameter, as MMEngine logs its init."""
        out = []
        for e in self.entries:
            shape = "x".join(map(str, e.shape)) or "scalar"
            what = {
                "initialized": f"{e.initializer} [{e.rule}]",
                "default": f"{e.initializer} [no rule: spec default]",
                "unmatched": "no rule matched: left as initialised by the framework",
                "skipped": "skipped: left untouched",
                "left": f"no framework default: left as is ({e.reason}) [{e.rule}]",
            }[e.status]
            out.append(f"{e.path} - {shape}: {what}")
        return out

    def __str__(self) -> str:
        return "\n".join([*self.lines(), self.caption()])

    def records(self) -> list[dict[str, Any]]:
        """JSON-ready rows."""
        return [{**asdict(e), "shape": list(e.shape)} for e in self.entries]

    def table(self, title: str = ""):
        """A rich Table: parameter, shape, kind, status, rule number, initializer."""
        from rich.table import Table

        t = Table(title=title or None, caption=self.caption())
        for col in ("parameter", "shape", "kind", "status", "rule", "initializer"):
            t.add_column(col, overflow="fold")
        style = {"initialized": "", "default": "dim", "unmatched": "yellow", "skipped": "cyan"}
        style["left"] = "magenta"
        for e in self.entries:
            t.add_row(
                e.path,
                "x".join(map(str, e.shape)),
                e.kind or e.module_type,
                e.status,
                "" if e.rule_index is None else f"#{e.rule_index}",
                e.initializer if e.status != "left" else f"left as is: {e.reason}",
                style=style[e.status] or None,
            )
        return t

    def rules_table(self, title: str = ""):
        """A rich Table of the policy's rules and how many parameters each one set."""
        from rich.table import Table

        t = Table(title=title or None)
        for col in ("rule", "selects", "parameters set"):
            t.add_column(col, overflow="fold")
        rules = self.policy.rules if self.policy is not None else ()
        for i, rule in enumerate(rules):
            n = sum(e.rule_index == i for e in self.entries)
            t.add_row(f"#{i}", str(rule), str(n), style=None if n else "yellow")
        return t


__all__ = ["Report", "ReportEntry", "STATUSES"]

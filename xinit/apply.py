"""``xinit.apply``: run a :class:`~xinit.policy.Policy` on any native module, and its report.

Works on a ``torch.nn.Module``, a ``paddle.nn.Layer`` or a Flax NNX module, built by xinit or
written by hand. Each adapter maps its framework's layer classes to neutral kinds (torch
``nn.Conv2d`` -> ``conv``, paddle ``nn.BatchNorm2D`` -> ``batchnorm``, flax ``nnx.Linear`` ->
``linear``, ...) and reads every parameter in neutral terms (paddle Linear ``(in, out)`` ->
``(out, in)``, flax HWIO kernels -> OIHW, ``kernel``/``scale``/``embedding`` -> ``weight``), so
one policy means the same thing everywhere. Values are drawn by the backend, seeded per
neutral dotted path, and written back in the native layout; with ``rng="xinit"`` they equal
what ``xinit.build`` gives the same path, in every framework.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .fans import compute_fans
from .layers import ParamSpec
from .policy import Policy, PolicyError

STATUSES = ("initialized", "default", "unmatched", "skipped")
_GLOB = set("*?[")


@dataclass(frozen=True)
class ReportEntry:
    """One parameter: what set it. ``status`` is ``initialized`` (by ``rule``), ``default``
    (no rule: the spec's own initializer, in a build), ``unmatched`` (no rule: left as the
    framework made it, in :func:`apply`) or ``skipped`` (left untouched on request)."""

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


@dataclass(frozen=True)
class Report:
    """Every parameter exactly once, in registration order (MMEngine's init log, as data)."""

    entries: tuple[ReportEntry, ...]
    policy: Policy | None = None
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
        for e in self.entries:
            t.add_row(
                e.path,
                "x".join(map(str, e.shape)),
                e.kind or e.module_type,
                e.status,
                "" if e.rule_index is None else f"#{e.rule_index}",
                e.initializer,
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


def _skip_matcher(skip: Iterable[str] | str | None):
    if skip is None:
        return lambda *names: False
    items = [skip] if isinstance(skip, str) else list(skip)
    if not all(isinstance(s, str) for s in items):
        raise TypeError(f"skip must be parameter names (or globs); got {items!r}")
    exact = {s for s in items if not (_GLOB & set(s))}
    globs = [s for s in items if _GLOB & set(s)]

    def skipped(*names: str) -> bool:
        return any(n in exact or any(fnmatch.fnmatchcase(n, g) for g in globs) for n in names)

    return skipped


def native_param_specs(module: Any, adapter=None) -> dict[str, tuple[ParamSpec, Any]]:
    """Neutral path -> (ParamSpec, NativeParam) for every parameter of a native module."""
    if adapter is None:
        from xinit.backends import backend_of

        adapter = backend_of(module)
    natives = list(adapter.native_params(module))
    weight_fans = {}
    for p in natives:
        if p.leaf == "weight" and p.role in ("linear", "conv", "conv_transpose"):
            weight_fans[p.layer] = compute_fans(p.shape, p.role)
    out: dict[str, tuple[ParamSpec, Any]] = {}
    for p in natives:
        if p.path in out:
            raise ValueError(
                f"two parameters of this {adapter.name} module map to the neutral name {p.path!r} "
                f"({out[p.path][1].native} and {p.native})"
            )
        fans = weight_fans.get(p.layer) if p.leaf == "bias" else None
        spec = ParamSpec(p.leaf, p.shape, p.role, None, p.kind, fans=fans)
        out[p.path] = (spec, p)
    return out


def apply(
    policy: Policy,
    module: Any,
    *,
    seed: int = 0,
    rng: str = "native",
    skip: Iterable[str] | str | None = (),
    strict: bool = False,
) -> Report:
    """Initialise the parameters of ``module`` that ``policy`` selects; return the report.

    * ``seed`` / ``rng``: each parameter is drawn seeded by ``(seed, neutral dotted path)``,
      with the framework's generator (``"native"``) or xinit's keyed one (``"xinit"``: the
      values ``xinit.build`` gives the same path, identical in every framework).
    * ``skip``: parameter names (neutral or native dotted names, globs allowed) to leave
      untouched, e.g. the keys a checkpoint just loaded: the missing ones get the policy,
      nothing loaded is clobbered.
    * ``strict``: a parameter no rule selects, or a rule that selects nothing, is an error
      (naming them) instead of a report line / warning.

    Parameters no rule selects keep their current values. Buffers (BatchNorm running
    statistics) are not parameters and are never touched.
    """
    from xinit.backends import backend_of
    from xinit.backends.base import RNG_MODES

    if not isinstance(policy, Policy):
        raise TypeError(f"xinit.apply takes a Policy first; got {type(policy).__name__}")
    if rng not in RNG_MODES:
        raise ValueError(f"rng must be one of {RNG_MODES}; got {rng!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    adapter = backend_of(module)
    table = native_param_specs(module, adapter)
    is_skipped = _skip_matcher(skip)
    skip_paths = {path for path, (_, p) in table.items() if is_skipped(path, p.native)}
    params = {path: spec for path, (spec, _) in table.items()}
    plan = policy.plan(params, strict=strict, skip=skip_paths)
    entries = []
    for path, (spec, native) in table.items():
        m = plan.matched.get(path)
        common = dict(
            path=path,
            native=native.native,
            kind=spec.kind,
            module_type=native.module_type,
            shape=tuple(spec.shape),
        )
        if m is None:
            status = "skipped" if path in skip_paths else "unmatched"
            entries.append(ReportEntry(status=status, **common))
            continue
        try:
            dist = m.init.resolve(spec.shape, spec.role, spec.fans, param=spec)
            adapter.sample_into(native, dist, seed=seed, rng=rng)
        except (ValueError, TypeError) as err:
            raise PolicyError(f"policy rule {m.text}: cannot initialise {path!r}: {err}") from err
        entries.append(
            ReportEntry(
                status="initialized",
                rule=m.text,
                rule_index=m.index,
                initializer=str(m.init),
                distribution=dist.describe(),
                **common,
            )
        )
    return Report(tuple(entries), policy, plan.notes)


def neutral_values(module: Any) -> dict[str, Any]:
    """Neutral path -> numpy value (neutral layout) of every parameter of a native module."""
    from xinit.backends import backend_of

    adapter = backend_of(module)
    return {p.path: adapter.read_neutral(p) for p in adapter.native_params(module)}


__all__ = ["apply", "Report", "ReportEntry", "native_param_specs", "neutral_values"]

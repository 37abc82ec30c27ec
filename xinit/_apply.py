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
from typing import Any

from .native import slots
from .policy import Policy, PolicyError
from .report import Report, ReportEntry
from .rng import check_rng

_GLOB = set("*?[")


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

    Parameters no rule selects keep their current values, and so do those a rule selects
    but has no law for (``Default(framework)`` on a tensor of a class no framework layer is:
    the report lists them as ``left``, with why). Buffers (BatchNorm running statistics,
    Swin's ``relative_position_index``) are not parameters and are never touched.
    """
    from xinit.backends import backend_of

    if not isinstance(policy, Policy):
        if callable(policy) and getattr(policy, "__module__", "") == "xinit.presets":
            raise TypeError(
                f"xinit.apply takes a Policy first; got the preset function "
                f"presets.{policy.__name__}: call it, presets.{policy.__name__}()"
            )
        raise TypeError(f"xinit.apply takes a Policy first; got {type(policy).__name__}")
    check_rng(rng)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int; got {seed!r}")
    table = slots(module, backend_of(module))
    is_skipped = _skip_matcher(skip)
    skip_paths = {path for path, slot in table.items() if is_skipped(path, slot.native)}
    params = {path: slot.spec for path, slot in table.items()}
    plan = policy.plan(params, strict=strict, skip=skip_paths)
    entries = []
    for path, slot in table.items():
        m = plan.matched.get(path)
        common = dict(
            path=path,
            native=slot.native,
            kind=slot.spec.kind,
            module_type=slot.module_type,
            shape=tuple(slot.spec.shape),
        )
        if m is None:
            status = "skipped" if path in skip_paths else "unmatched"
            entries.append(ReportEntry(status=status, **common))
            continue
        if path in plan.left:  # the rule has no law for it (Default on a bare tensor)
            left = dict(rule=m.text, rule_index=m.index, initializer=str(m.init))
            entries.append(ReportEntry(status="left", reason=plan.left[path], **left, **common))
            continue
        dist = plan.dists[path]  # resolved once, by the plan
        try:
            slot.fill(dist, seed=seed, rng=rng)
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


__all__ = ["apply", "Report", "ReportEntry"]

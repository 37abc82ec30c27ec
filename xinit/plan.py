"""The init plan: every trainable parameter of a spec with its initializer, resolved once.

``xinit.build`` computes the plan before building and the adapter draws it; ``xinit.summary``
and ``Policy.report`` show the same plan. Each initializer is resolved against the
parameter's shape, role and fans exactly once, here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .blocks import param_specs
from .distributions import Distribution
from .initializers import Initializer
from .layers import ParamSpec
from .policy import PolicyError


@dataclass(frozen=True)
class PlanItem:
    """One parameter to draw: its path, owning layer path, spec, initializer and law."""

    path: str
    layer: str
    param: ParamSpec
    init: Initializer
    dist: Distribution
    rule: object = None  # the policy's Match that chose ``init`` (None: the spec's own)


def init_plan(spec, policy=None) -> list[PlanItem]:
    """The plan for every trainable parameter of ``spec`` in state-dict order: the
    ``policy``'s initializer where a rule selects the parameter, else the spec's own. A
    rule with no law for a parameter (``Default`` of a framework without such a layer) is an
    error here, naming it: a build makes every value (:func:`xinit.apply` leaves it instead).
    """
    params = {path: ps for path, ps in param_specs(spec).items() if ps.trainable}
    matched, dists = {}, {}
    if policy is not None:
        plan = policy.plan(params)
        matched, dists = plan.matched, plan.dists
        if plan.left:
            path, why = next(iter(plan.left.items()))
            m = matched[path]
            raise PolicyError(
                f"policy rule #{m.index} {m.rule}: {m.init} cannot initialise {path!r} "
                f"({len(plan.left)} parameter(s) like it): {why}"
            )
    items = []
    for path, ps in params.items():
        m = matched.get(path)
        init = m.init if m is not None else ps.init
        dist = dists.get(path)
        if dist is None:
            dist = init.resolve(ps.shape, ps.role, ps.fans, param=ps)
        items.append(PlanItem(path, ps.owner(path), ps, init, dist, m))
    return items


__all__ = ["PlanItem", "init_plan"]

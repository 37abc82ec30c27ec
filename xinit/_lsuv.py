"""``xinit.lsuv``: layer-sequential unit-variance init (Mishkin & Matas 2015), any framework.

Start from orthonormal weights (or keep the policy's), then, layer by layer in forward order,
divide each weight by its layer's output std on a data batch until that std is 1 within
``tol``. Works on xinit-built and native modules of every backend (the adapters' ``trace``
and parameter maps); with ``rng="xinit"`` and the same batch every framework gives the same
weights up to float tolerance. Private module: ``xinit.lsuv`` is the function.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import XinitError


class LSUVError(XinitError, RuntimeError):
    """A layer LSUV cannot scale (no weight, unknown path), or layers that did not reach
    unit std within the iteration limit (``report`` says which, per layer)."""

    def __init__(self, message: str, report: LSUVReport | None = None):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class LSUVStep:
    """One layer's LSUV: its output std before and after, and how it got there."""

    path: str
    kind: str
    std_before: float
    std_after: float
    iterations: int  # rescalings done
    scale: float  # the product of the factors applied to the weight
    converged: bool


@dataclass(frozen=True)
class LSUVReport:
    steps: tuple[LSUVStep, ...]
    tol: float
    max_iter: int

    @property
    def ok(self) -> bool:
        return all(s.converged for s in self.steps)

    def records(self) -> list[dict[str, Any]]:
        return [asdict(s) for s in self.steps]

    def to_markdown(self) -> str:
        lines = [
            "| layer | kind | std before | std after | iterations | scale | converged |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in self.steps:
            lines.append(
                f"| {s.path} | {s.kind} | {s.std_before:.4g} | {s.std_after:.4g} | "
                f"{s.iterations} | {s.scale:.4g} | {'yes' if s.converged else '**no**'} |"
            )
        return "\n".join(lines)


def _std(value: np.ndarray) -> float:
    return float(np.asarray(value, np.float64).std())


def lsuv(
    module: Any,
    data: np.ndarray,
    *,
    layers: Iterable[str] | None = None,
    tol: float = 0.02,
    max_iter: int = 10,
    orthonormal: bool = True,
    seed: int = 0,
    rng: str = "native",
    strict: bool = True,
) -> LSUVReport:
    """LSUV on native ``module`` with batch ``data`` (channel-first numpy); the report.

    * ``layers``: dotted paths of the layers to scale, in forward order (default: every layer
      with a weight of 2 or more dims, in registration order, which is forward order for
      sequential models). A path without a weight is an error.
    * ``orthonormal``: first draw the selected weights from ``xinit.init.Orthogonal()``
      (seeded per path by ``seed``/``rng``); False keeps the current (the policy's) weights.
    * ``strict``: a layer whose std is not within ``tol`` of 1 after ``max_iter``
      rescalings raises :class:`LSUVError` naming every such layer; otherwise it is reported
      (``converged=False``) and a warning is issued. Never silent.

    The forward is in eval mode (``trace``), so BatchNorm uses its running statistics.
    """
    import warnings

    from .backends import backend_of

    if not (tol > 0 and max_iter >= 1):
        raise ValueError(f"LSUV needs tol > 0 and max_iter >= 1; got {tol}, {max_iter}")
    backend = backend_of(module)
    x = np.ascontiguousarray(data, dtype=np.float32)
    params = list(backend.native_params(module))
    weights = {p.layer: p for p in params if p.leaf == "weight" and len(p.shape) >= 2}
    if layers is None:
        chosen = list(weights)
    else:
        chosen = list(layers)
        known = {p.layer for p in params}
        for path in chosen:
            if path not in weights:
                what = (
                    "has no weight (only "
                    + ", ".join(p.leaf for p in params if p.layer == path)
                    + ")"
                    if path in known
                    else "is not a layer with parameters"
                )
                raise LSUVError(f"LSUV: layer {path!r} {what}; it cannot be scaled")
    if not chosen:
        raise LSUVError("LSUV: the module has no layer with a weight")
    if orthonormal:
        from ._apply import apply
        from .initializers import Orthogonal
        from .policy import Policy, Rule

        apply(Policy(Rule(Orthogonal(), path=tuple(chosen))), module, seed=seed, rng=rng)
    steps = []
    for path in chosen:
        param = weights[path]
        before = std = _std(backend.trace(module, x)[path])
        scale, done = 1.0, 0
        while abs(std - 1.0) > tol and done < max_iter:
            if std == 0 or not math.isfinite(std):
                break
            backend.scale_param(param, 1.0 / std)
            scale /= std
            done += 1
            std = _std(backend.trace(module, x)[path])
        steps.append(LSUVStep(path, param.kind, before, std, done, scale, abs(std - 1.0) <= tol))
    report = LSUVReport(tuple(steps), tol, max_iter)
    if not report.ok:
        bad = ", ".join(
            f"{s.path} (std {s.std_before:.4g} -> {s.std_after:.4g} after {s.iterations})"
            for s in steps
            if not s.converged
        )
        message = f"LSUV did not reach std 1 +- {tol} within {max_iter} rescalings: {bad}"
        if strict:
            raise LSUVError(message, report)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return report


def lsuv_build(
    spec, backend: str, data: np.ndarray, *, policy=None, seed: int = 0, rng: str = "native", **kw
) -> tuple[Any, LSUVReport]:
    """Build ``spec`` in ``backend`` (with ``policy``) and run :func:`lsuv` on it."""
    from ._build import build

    module = build(spec, backend, seed=seed, rng=rng, policy=policy, input_shape=np.shape(data))
    return module, lsuv(module, data, seed=seed, rng=rng, **kw)


__all__ = ["lsuv", "lsuv_build", "LSUVReport", "LSUVStep", "LSUVError"]

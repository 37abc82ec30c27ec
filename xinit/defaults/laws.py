"""Short texts and records of a distribution, and std ratios: what catalogue records hold."""

from __future__ import annotations

import math
from typing import Any

from xinit.distributions import ConstantDist, Distribution, NormalDist, TruncNormalDist, UniformDist


def short(dist: Distribution | None) -> str:
    """Compact text: ``U(±0.04167)``, ``N(0, 0.05893²)``, ``TN(0, σ=0.09474, ±0.1895)``."""
    if dist is None:
        return "n/a"
    if isinstance(dist, ConstantDist):
        return f"Const({dist.value:g})"
    if isinstance(dist, UniformDist):
        if math.isclose(dist.low, -dist.high):
            return f"U(±{dist.high:.4g})"
        return f"U({dist.low:.4g}, {dist.high:.4g})"
    if isinstance(dist, NormalDist):
        return f"N({dist.mu:g}, {dist.sigma:.4g}²)"
    if isinstance(dist, TruncNormalDist):
        if math.isclose(dist.low - dist.mu, dist.mu - dist.high):
            return f"TN({dist.mu:g}, σ={dist.sigma:.4g}, ±{dist.high - dist.mu:.4g})"
        return f"TN({dist.mu:g}, σ={dist.sigma:.4g}, [{dist.low:.4g}, {dist.high:.4g}])"
    return dist.describe()


def law(dist: Distribution | None) -> dict[str, Any] | None:
    """The distribution as a JSON-able dict: its type name and its float fields."""
    if dist is None:
        return None
    out: dict[str, Any] = {"type": type(dist).__name__}
    for name in getattr(dist, "__dataclass_fields__", {}):
        out[name] = float(getattr(dist, name))
    return out


def std_ratio(std: float | None, ref: float | None) -> float | None:
    """``std / ref``, or None when either is missing or ``ref`` is 0."""
    if std is None or ref is None or ref == 0.0:
        return None
    return std / ref


# ---- tables -------------------------------------------------------------------------------


__all__ = ["short", "law", "std_ratio"]

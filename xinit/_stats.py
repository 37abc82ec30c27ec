"""``xinit.stats``: one initializer drawn in each framework, measured against its analytic law.

The result (:class:`InitStats`) renders itself as a rich table, Markdown or JSON; the
``xinit stats`` command only parses its arguments and prints one of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .distributions import (
    ConstantDist,
    DiracDist,
    Distribution,
    EyeDist,
    NormalDist,
    TruncNormalDist,
    UniformDist,
    construct,
)
from .errors import ArgumentError
from .fans import compute_fans
from .initializers import Initializer
from .memory import check_allocation
from .rng import check_rng, check_seed

DEVICES = ("cpu", "gpu")
_LAWS = (NormalDist, UniformDist, TruncNormalDist)  # element-wise laws with a CDF


@dataclass(frozen=True)
class StatsRow:
    """The draw of one framework on one device: its moments next to the analytic ones."""

    framework: str
    device: str
    rng: str
    n: int
    mean: float
    std: float  # sample std (ddof=1)
    analytic_mean: float
    analytic_std: float
    std_ratio: float  # measured / analytic std (NaN where the analytic std is 0 or unknown)
    ks_p: float | None  # one-sample Kolmogorov-Smirnov p-value (None: no CDF, or no scipy)


# column key, header, right-aligned
_COLUMNS = (
    ("framework", "backend", False),
    ("device", "device", False),
    ("rng", "rng", False),
    ("n", "n", True),
    ("mean", "mean", True),
    ("std", "std", True),
    ("analytic_mean", "analytic mean", True),
    ("analytic_std", "analytic std", True),
    ("std_ratio", "std ratio", True),
    ("ks_p", "KS p", True),
)


def _cell(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if key == "n":
        return f"{value:,}"
    if key in ("mean", "analytic_mean"):
        return "0" if value == 0 else f"{value:+.3e}"
    if key in ("std", "analytic_std"):
        return f"{value:.5g}"
    if key == "std_ratio":
        return f"{value:.4f}"
    if key == "ks_p":
        return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"
    return str(value)


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class InitStats:
    """The measured statistics of one initializer: one row per framework and device drawn,
    and a note for each one skipped (not installed, no such device)."""

    init: Initializer
    shape: tuple[int, ...]
    role: str
    distribution: Distribution
    fans: str  # "fan_in=..., fan_out=..." or "no fans (1-d)"
    analytic_mean: float
    analytic_std: float
    seed: int
    rows: tuple[StatsRow, ...]
    notes: tuple[str, ...]
    ks_tested: bool  # whether the KS column holds tests (an element-wise law, scipy present)

    @property
    def title(self) -> str:
        return f"{self.init} on a {self.role} weight {self.shape} ({self.fans})"

    @property
    def law(self) -> str:
        return f"analytic law: {self.distribution.describe()}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (non-finite numbers as None)."""
        rows = []
        for r in self.rows:
            record = {"backend": r.framework}
            record.update({k: _finite_or_none(getattr(r, k)) for k, _, _ in _COLUMNS[1:]})
            rows.append(record)
        return {
            "init": str(self.init),
            "shape": list(self.shape),
            "role": self.role,
            "distribution": self.distribution.describe(),
            "analytic": {
                "mean": _finite_or_none(self.analytic_mean),
                "std": _finite_or_none(self.analytic_std),
            },
            "seed": self.seed,
            "rows": rows,
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**, {self.law}", ""]
        lines.append("| " + " | ".join(h for _, h, _ in _COLUMNS) + " |")
        lines.append("|" + "|".join("---:" if right else "---" for _, _, right in _COLUMNS) + "|")
        for r in self.rows:
            lines.append("| " + " | ".join(_cell(k, getattr(r, k)) for k, _, _ in _COLUMNS) + " |")
        for note in self.notes:
            lines.extend(["", f"_{note}_"])
        return "\n".join(lines)

    def table(self):
        """A rich table of the rows, captioned with the seed and what the columns mean."""
        from rich.table import Table

        table = Table()
        for _, head, right in _COLUMNS:
            table.add_column(head, justify="right" if right else "left")
        for r in self.rows:
            table.add_row(*(_cell(k, getattr(r, k)) for k, _, _ in _COLUMNS))
        caption = [f"seed {self.seed}; std ratio = measured / analytic std"]
        if self.ks_tested:
            caption.append("KS p: one-sample Kolmogorov-Smirnov test against the analytic CDF")
        table.caption = "; ".join(caption)
        table.caption_justify = "left"
        return table


def _analytic(dist: Distribution, shape: tuple[int, ...]) -> tuple[float, float]:
    """The law's mean and std, or those of a fixed construction's exact values (NaN for an
    orthogonal matrix, which has no element-wise law)."""
    if isinstance(dist, (ConstantDist, *_LAWS)):
        return dist.mean, dist.std
    if isinstance(dist, (DiracDist, EyeDist)):
        exact = construct(dist, shape).astype(np.float64)
        return float(exact.mean()), float(exact.std(ddof=1))
    return float("nan"), float("nan")


def _fans_text(shape: tuple[int, ...], role: str) -> str:
    try:
        fans = compute_fans(shape, role)
    except ValueError:
        return "no fans (1-d)"
    return f"fan_in={fans.fan_in}, fan_out={fans.fan_out}"


def stats(
    init: Initializer | str,
    shape: Sequence[int],
    *,
    role: str = "linear",
    frameworks: Iterable[str] | None = None,
    devices: Iterable[str] = ("cpu",),
    seed: int = 0,
    rng: str = "native",
) -> InitStats:
    """Draw ``init`` (an initializer, or its text for :func:`xinit.init.get`) for a ``role``
    parameter of neutral ``shape`` in each of ``frameworks`` (default: all) on each of
    ``devices``, and measure mean, std and a KS test against the analytic law.

    A framework that is not installed, or a device it does not see, becomes a note, not an
    error; an unknown framework or device name is an error before anything is drawn.
    """
    from .backends import FRAMEWORKS, available, get_backend, info
    from .init import get
    from .sampling import sample

    init = get(init)
    shape = tuple(int(s) for s in shape)
    dist = init.resolve(shape, role)  # bad shapes and roles fail here, before any framework
    check_allocation(3 * 4 * math.prod(shape), f"stats on a {shape} tensor")
    check_seed(seed)
    check_rng(rng)
    frameworks = list(FRAMEWORKS if frameworks is None else frameworks)
    devices = list(devices)
    for device in devices:
        if device not in DEVICES:
            raise ArgumentError(f"device {device!r}: accepted devices are {DEVICES}")
    for name in frameworks:
        if name not in FRAMEWORKS:
            get_backend(name)  # raises FrameworkError, naming the accepted ones
    mean_a, std_a = _analytic(dist, shape)
    ks = None
    if isinstance(dist, _LAWS):
        try:
            from scipy import stats as ks
        except ImportError:
            ks = None
    rows, notes = [], []
    installed = set(available())
    for name in frameworks:
        if name not in installed:
            extra = info(name).EXTRA
            notes.append(f"{name}: skipped, not installed (pip install 'xinit[{extra}]')")
            continue
        adapter = get_backend(name)
        for device in devices:
            if device not in adapter.devices():
                seen = ", ".join(adapter.devices())
                notes.append(f"{name}: skipped on {device} (it sees {seen})")
                continue
            x = sample(init, shape, role=role, framework=name, seed=seed, device=device, rng=rng)
            v = x.astype(np.float64).ravel()
            std = float(v.std(ddof=1)) if v.size > 1 else 0.0
            rows.append(
                StatsRow(
                    framework=name,
                    device=device,
                    rng=rng,
                    n=int(v.size),
                    mean=float(v.mean()),
                    std=std,
                    analytic_mean=mean_a,
                    analytic_std=std_a,
                    std_ratio=std / std_a if std_a > 0 else float("nan"),
                    ks_p=(
                        float(ks.kstest(v, dist.cdf, method="asymp").pvalue)
                        if ks is not None
                        else None
                    ),
                )
            )
    return InitStats(
        init=init,
        shape=shape,
        role=role,
        distribution=dist,
        fans=_fans_text(shape, role),
        analytic_mean=mean_a,
        analytic_std=std_a,
        seed=seed,
        rows=tuple(rows),
        notes=tuple(notes),
        ks_tested=ks is not None,
    )


__all__ = ["stats", "InitStats", "StatsRow", "DEVICES"]

"""Shared timing: side by side in one process, warm-up then the median of repeats."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """One comparison: xinit's way vs the framework's own way (lower ratio is better)."""

    name: str
    xinit: float  # seconds (or the unit named in ``unit``)
    native: float
    target: str  # e.g. "<= 1.05" or ">= 5"
    unit: str = "s"
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.xinit / self.native

    @property
    def met(self) -> bool:
        op, bound = self.target.split()
        return self.ratio <= float(bound) if op == "<=" else self.ratio >= float(bound)


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def interleaved(a: Callable, b: Callable, repeats: int = 5, warmup: int = 1) -> tuple[float, float]:
    """Medians of ``a`` and ``b`` timed alternately, so drift in the machine hits both."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        a()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        b()
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numpy

    versions = [f"numpy {numpy.__version__}"]
    for mod in ("torch", "paddle", "jax", "flax"):
        with contextlib.suppress(ImportError):
            versions.append(f"{mod} {__import__(mod).__version__}")
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, " + ", ".join(
        versions
    )

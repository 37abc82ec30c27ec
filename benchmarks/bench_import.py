"""``import xinit`` vs ``import numpy`` in fresh interpreters (median of several)."""

from __future__ import annotations

import statistics
import subprocess
import sys

from .harness import Result

_PROBE = (
    "import time, sys; t = time.perf_counter(); import {mod}; dt = time.perf_counter() - t; "
    "heavy = [m for m in ('torch', 'paddle', 'jax', 'flax', 'scipy') if m in sys.modules]; "
    "print(dt, ','.join(heavy))"
)


def _time(mod: str) -> tuple[float, str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(mod=mod)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), (out[1] if len(out) > 1 else "")


def run(repeats: int = 7) -> list[Result]:
    xs, ns, heavy = [], [], set()
    for _ in range(repeats):
        t, h = _time("xinit")
        xs.append(t)
        heavy |= set(filter(None, h.split(",")))
        ns.append(_time("numpy")[0])
    note = "no framework or scipy loaded" if not heavy else f"LOADED: {sorted(heavy)}"
    return [
        Result(
            "import xinit vs import numpy",
            statistics.median(xs),
            statistics.median(ns),
            "<= 1.2",
            "s",
            note,
        )
    ]

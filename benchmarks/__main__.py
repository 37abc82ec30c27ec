"""Run the benchmark suite and print (and save) a markdown table of ratios.

``python -m benchmarks [name ...]``: names among rng, build, apply, transfer, convert, import,
memory, diagnose, scale (sharded init; minutes, so only when named).
Each comparison runs xinit's way and the framework's own way side by side in one process
(memory and import in fresh interpreters), median of >= 5 runs after a warm-up.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import time
from pathlib import Path

from .harness import Result, machine

SUITES = (
    "import",
    "rng",
    "build",
    "apply",
    "transfer",
    "convert",
    "memory",
    "diagnose",
    "scale",
)
DEFAULT = SUITES[:-1]  # "scale" takes minutes: run it by name, `python -m benchmarks scale`


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "not run"
    if unit == "M/s":
        return f"{value / 1e6:,.1f} M/s"
    if unit == "B/s":
        return f"{value / 1e9:.2f} GB/s"
    if unit == "B":
        return f"{value / 1e9:.3f} GB"
    if unit == "s":
        return f"{value * 1e3:,.1f} ms" if value < 10 else f"{value:,.1f} s"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    lines = [
        "| comparison | xinit | framework's own | ratio | target | met | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}x"
        lines.append(
            f"| {r.name} | {_fmt(r.xinit, r.unit)} | {_fmt(r.native, r.unit)} | "
            f"{ratio} | {r.target if r.target != '<= 99' else '-'} | "
            f"{('yes' if r.met else '**no**') if r.target != '<= 99' else '-'} | {r.note} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument(
        "suites", nargs="*", default=list(DEFAULT), help=f"any of {SUITES} (default: all but scale)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="the report's file (default: benchmarks/RESULTS.md; benchmarks/RESULTS_scale.md "
        "when scale runs alone, so it never replaces the main table)",
    )
    args = p.parse_args(argv)
    if args.out is None:
        alone = args.suites == ["scale"]
        args.out = f"benchmarks/RESULTS{'_scale' if alone else ''}.md"
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    results: list[Result] = []
    t0 = time.perf_counter()
    for name in args.suites:
        if name not in SUITES:
            p.error(f"unknown suite {name!r}; choose from {SUITES}")
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"running {name} ...", flush=True)
        results.extend(module.run())
    report = (
        f"Machine: {machine()}\n\n{table(results)}\n\n"
        f"(ratio = xinit / framework's own; for throughput rows higher is better; "
        f"suite took {time.perf_counter() - t0:.0f} s)\n"
    )
    print(report)
    Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One spec, three frameworks: ResNet18 built as torch, paddle and Flax NNX modules.

Prints, side by side, what each framework itself reports for every layer (the output shape
it computes and the parameters it holds) next to the neutral summary, then a parity line:
built with ``rng="xinit"`` the three hold the same weights, so their outputs agree.

    python examples/one_spec_three_frameworks.py              # resnet18, 1x3x224x224
    python examples/one_spec_three_frameworks.py resnet45 --input 1,3,32,128
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import xinit
from xinit.backends import available, get_backend


def layer_params(backend: str, layer) -> int:
    """Trainable parameter values one native layer holds, counted by its own framework."""
    if backend == "torch":
        return sum(p.numel() for p in layer.parameters())
    if backend == "paddle":
        return sum(int(p.numel()) for p in layer.parameters() if not p.stop_gradient)
    from flax import nnx

    return sum(int(v.get_value().size) for _, v in nnx.to_flat_state(nnx.state(layer, nnx.Param)))


def shape_text(shape) -> str:
    return "x".join(map(str, shape[1:]))  # without the batch dimension


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", default="resnet18")
    parser.add_argument("--input", default=None, help="N,C,H,W (default: the model's usual)")
    args = parser.parse_args(argv)
    shape = (
        tuple(int(s) for s in args.input.split(","))
        if args.input
        else xinit.models.default_input(args.model)
    )
    backends = [b for b in ("torch", "paddle", "flax") if b in available()]
    console = Console()
    if not console.is_terminal:  # piped: wide enough for ten columns rather than 80
        console = Console(width=150)

    spec = xinit.models.get(args.model)  # one framework-neutral spec
    neutral = xinit.summary(spec, shape)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    modules, traces, seconds = {}, {}, {}
    for b in backends:
        start = time.perf_counter()
        modules[b] = xinit.build(spec, b, seed=0, rng="xinit")  # same weights everywhere
        traces[b] = get_backend(b).trace(modules[b], x)  # every layer's output, NCHW numpy
        seconds[b] = time.perf_counter() - start

    table = Table(
        title=f"{args.model}: one spec, {len(backends)} frameworks (output shapes without N)",
        caption=neutral.caption(),
    )
    table.add_column("layer", no_wrap=True)
    table.add_column("spec", style="bold")
    table.add_column("params", justify="right", style="bold")
    for b in backends:
        table.add_column(f"{b} output")
        table.add_column(f"{b} params", justify="right")
    totals = dict.fromkeys(backends, 0)
    last_use = {row.path: i for i, row in enumerate(neutral.rows)}
    for i, row in enumerate(neutral.rows):
        cells = [row.path, shape_text(row.output_shape), f"{row.params:,}"]
        for b in backends:
            if i != last_use[row.path]:  # a shared module (torchvision's relu) is traced
                cells += ["[dim]↓ reused[/dim]", ""]  # at its last call, further down
                continue
            seen = shape_text(traces[b][row.path].shape)
            count = layer_params(b, get_backend(b).submodule(modules[b], row.path))
            count = count if row.params or not count else 0  # shared: parameters count once
            totals[b] += count
            mark = "" if seen == cells[1] else " [red]differs[/red]"
            cells += [seen + mark, f"{count:,}"]
        table.add_row(*cells)
    total_cells = ["total", shape_text(neutral.output_shape), f"{neutral.trainable_params:,}"]
    for b in backends:
        total_cells += [shape_text(traces[b][""].shape), f"{totals[b]:,}"]
    table.add_row(*total_cells, style="bold")
    console.print(table)

    ref = traces[backends[0]]
    parts = []
    for b in backends[1:]:
        worst = max(
            float(np.abs(traces[b][p] - ref[p]).max() / max(np.abs(ref[p]).max(), 1e-12))
            for p in ref
            if p in traces[b]
        )
        parts.append(f"{b} {worst:.1e}")
    timing = ", ".join(f"{b} {s:.1f}s" for b, s in seconds.items())
    console.print(
        f"parity (rng='xinit', same weights, every layer): max relative difference from "
        f"{backends[0]}: {', '.join(parts) or 'n/a'}   [dim](build + trace: {timing})[/dim]"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

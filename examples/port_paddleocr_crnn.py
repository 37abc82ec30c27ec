"""Port a PaddleOCR-style CRNN text recogniser and its .pdparams weights to PyTorch (and Flax),
and prove the outputs agree layer by layer.

1. Make a PaddleOCR-format checkpoint locally (no download): build the zoo's CRNN in Paddle
   (PaddleOCR's names: ``backbone.*``, ``neck.encoder.lstm.*``, a 2-layer bidirectional LSTM
   whose every tensor Paddle saves twice, ``weight_ih_l0`` and ``0.cell_fw.weight_ih``, and
   ``head.fc.*``), give its BatchNorms trained-looking statistics, ``paddle.save`` it.
2. ``xinit.port`` it to PyTorch names and layout (from the spec, strictly; Paddle's second
   names are checked against the first), write a ``.pt``.
3. Load the ``.pt`` into the PyTorch build with PyTorch's own ``load_state_dict(strict=True)``.
4. ``xinit.parity``: every layer's output, Paddle vs PyTorch (and Flax, ported too, when
   installed), on a random 32-pixel-high text line.

    python examples/port_paddleocr_crnn.py [--workdir DIR] [--rows N] [--light]

The same from the command line: ``xinit port --model crnn --from paddle --to torch
rec_crnn.pdparams rec_crnn.pt``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console

import xinit
from xinit import randomize_batchnorm
from xinit.backends import available
from xinit.checkpoints import save_checkpoint


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the checkpoints go, kept (default: a temp folder, removed at exit)",
    )
    p.add_argument("--rows", type=int, default=16, help="parity table rows shown")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--light", action="store_true", help="a quarter of the channels (quick)")
    args = p.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return port(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="xinit-port-") as tmp:
        return port(args, Path(tmp))


def port(args: argparse.Namespace, workdir: Path) -> int:
    """Steps 1-4 above, the checkpoints written in ``workdir``; 0 when every layer agrees."""
    import paddle
    import torch

    # a pipe or a file gets the whole table and one line per summary (rich would cut at 80)
    console = Console() if sys.stdout.isatty() else Console(width=140)
    spec = xinit.models.crnn(**({"width": 0.25, "hidden_size": 32} if args.light else {}))

    # 1. A PaddleOCR-format checkpoint, made locally.
    paddle_model = xinit.build(spec, "paddle", seed=args.seed)
    randomize_batchnorm(paddle_model, seed=args.seed)  # as if trained: non-trivial BN stats
    pdparams = workdir / "rec_crnn.pdparams"
    paddle.save(paddle_model.state_dict(), str(pdparams))
    keys = list(paddle_model.state_dict())
    lstm = [k for k in keys if k.startswith("neck.encoder.lstm.")]
    console.print(
        f"[bold]1.[/] wrote {pdparams} ({len(keys)} tensors; the LSTM's {len(lstm)}: "
        f"{lstm[0]}, ..., {lstm[16]}, ...)"
    )

    # 2. Port to PyTorch, strictly, and write a .pt atomically.
    ported = xinit.port(pdparams, spec, src="paddle", dst="torch")
    pt = save_checkpoint(ported, workdir / "rec_crnn.pt")
    console.print(f"[bold]2.[/] {ported.report.summary()}\n   wrote {pt}")

    # 3. PyTorch's own strict loader accepts it.
    torch_model = xinit.build(spec, "torch", seed=args.seed + 1)
    result = torch_model.load_state_dict(torch.load(pt, weights_only=True), strict=True)
    console.print(f"[bold]3.[/] torch load_state_dict(strict=True): {result}")

    # 4. Layer-by-layer parity on a random text line (1x3x32x128: 32 steps).
    modules = {"paddle": paddle_model, "torch": torch_model}
    if "flax" in available():
        to_flax = xinit.port(pdparams, spec, src="paddle", dst="flax")
        modules["flax"] = xinit.build(spec, "flax", seed=args.seed + 2)
        xinit.load_state_dict(
            modules["flax"], xinit.port(dict(to_flax), spec, src="flax", dst="neutral")
        )
    x = np.random.default_rng(args.seed).standard_normal((1, 3, 32, 128)).astype(np.float32)
    report = xinit.parity(modules, x)
    console.print(report.table("[bold]4.[/] CRNN parity, eval mode", max_rows=args.rows))
    console.print(report.summary(), highlight=False)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Port PaddleOCR's ResNet45 recognition backbone and its .pdparams weights to PyTorch, and
prove the outputs agree layer by layer.

1. Make a PaddleOCR-format checkpoint locally (no download): build ResNet45 in Paddle (the
   keys PaddleOCR's ``rec_resnet_45.py`` has: ``bn1._mean``, ``bn1._variance``, ...), give its
   BatchNorms trained-looking statistics, and ``paddle.save`` it.
2. ``xinit.port`` it to PyTorch names and layout (from the spec, strictly), write a ``.pt``.
3. Load the ``.pt`` into the PyTorch build with PyTorch's own ``load_state_dict(strict=True)``.
4. ``xinit.parity``: every layer's output, Paddle vs PyTorch (and Flax when installed).

    python examples/port_paddleocr_resnet45.py [--workdir DIR] [--rows N]

The same from the command line: ``xinit port --model resnet45 --from paddle --to torch
rec_resnet45.pdparams rec_resnet45.pt``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from xinit.backends import available

import xinit
from xinit import randomize_batchnorm
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

    console = Console()
    spec = xinit.models.resnet45()

    # 1. A PaddleOCR-format checkpoint, made locally.
    paddle_model = xinit.build(spec, "paddle", seed=args.seed)
    randomize_batchnorm(paddle_model, seed=args.seed)  # as if trained: non-trivial BN stats
    pdparams = workdir / "rec_resnet45.pdparams"
    paddle.save(paddle_model.state_dict(), str(pdparams))
    keys = list(paddle_model.state_dict())
    console.print(f"[bold]1.[/] wrote {pdparams} ({len(keys)} tensors: {', '.join(keys[:5])}, ...)")

    # 2. Port to PyTorch, strictly, and write a .pt atomically.
    ported = xinit.port(pdparams, spec, src="paddle", dst="torch")
    pt = save_checkpoint(ported, workdir / "rec_resnet45.pt")
    console.print(f"[bold]2.[/] {ported.report.summary()}\n   wrote {pt}")

    # 3. PyTorch's own strict loader accepts it.
    torch_model = xinit.build(spec, "torch", seed=args.seed + 1)
    result = torch_model.load_state_dict(torch.load(pt, weights_only=True), strict=True)
    console.print(f"[bold]3.[/] torch load_state_dict(strict=True): {result}")

    # 4. Layer-by-layer parity on a random text-line image (1x3x32x128).
    modules = {"paddle": paddle_model, "torch": torch_model}
    if "flax" in available():
        modules["flax"] = xinit.build(spec, "flax", rng="xinit")
        xinit.load_state_dict(modules["flax"], xinit.state_dict(paddle_model))
    x = np.random.default_rng(args.seed).standard_normal((1, 3, 32, 128)).astype(np.float32)
    report = xinit.parity(modules, x)
    console.print(report.table("[bold]4.[/] ResNet45 parity, eval mode", max_rows=args.rows))
    console.print(report.summary(), highlight=False)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

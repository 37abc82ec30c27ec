"""Port PaddleOCR's ResNet45 recognition backbone and its .pdparams weights to PyTorch, and
prove the outputs agree layer by layer.

1. Make a PaddleOCR-format checkpoint locally (no download): build ResNet45 in Paddle (the
   keys PaddleOCR's ``rec_resnet_45.py`` has: ``bn1._mean``, ``bn1._variance``, ...), give its
   BatchNorms trained-looking statistics, and ``paddle.save`` it.
2. ``xinit.port`` it to PyTorch names and layout (from the spec, strictly), write a ``.pt``.
3. Load the ``.pt`` into the PyTorch build with PyTorch's own ``load_state_dict(strict=True)``.
4. ``xinit.parity``: every layer's output, Paddle vs PyTorch (and Flax when installed).
5. ``xinit.export_code``: write ``resnet45_torch.py`` (a plain PyTorch model file) and
   ``resnet45.pt``, then load and run them in a Python process where xinit cannot be
   imported; its output equals the PyTorch build's.

    python examples/port_paddleocr_resnet45.py [--workdir DIR] [--rows N]

The same from the command line: ``xinit port --model resnet45 --from paddle --to torch
rec_resnet45.pdparams rec_resnet45.pt``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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

    # 5. A model file of its own: resnet45_torch.py + resnet45.pt, run without xinit.
    code = xinit.export_code(spec, "torch", class_name="ResNet45", source="resnet45")
    (workdir / "resnet45_torch.py").write_text(code)
    save_checkpoint(ported, workdir / "resnet45.pt")
    np.save(workdir / "x.npy", x)
    same = run_without_xinit(workdir, torch_model, x)
    console.print(
        f"[bold]5.[/] wrote resnet45_torch.py and resnet45.pt; run without xinit: "
        f"{'equal to' if same else 'DIFFERENT from'} the PyTorch build's output"
    )
    return 0 if report.ok and same else 1


ISOLATED = """import sys
sys.modules["xinit"] = None  # xinit cannot be imported here
import numpy as np, torch
from resnet45_torch import ResNet45
torch.set_num_threads(THREADS)
model = ResNet45()
model.load_state_dict(torch.load("resnet45.pt", weights_only=True), strict=True)
with torch.no_grad():
    np.save("out.npy", model.eval()(torch.from_numpy(np.load("x.npy"))).numpy())
"""


def run_without_xinit(workdir: Path, torch_model, x: np.ndarray) -> bool:
    """Run the exported file in a fresh Python with only ``workdir`` on its path and xinit
    blocked; whether its output equals the PyTorch build's exactly."""
    import torch

    env = {**os.environ, "PYTHONPATH": str(workdir)}
    script = ISOLATED.replace("THREADS", str(torch.get_num_threads()))
    subprocess.run([sys.executable, "-c", script], cwd=workdir, env=env, check=True)
    expected = xinit.run(torch_model.eval(), x)
    return bool(np.array_equal(np.load(workdir / "out.npy"), expected))


if __name__ == "__main__":
    sys.exit(main())

"""Port a PP-OCRv3 DBNet text detector from its PaddleOCR config and checkpoint to PyTorch in
one command, and compare the text probability maps it draws in Paddle, PyTorch and Flax.

1. Write the ``Architecture`` of PaddleOCR's ``ch_PP-OCRv3_det_student.yml``: MobileNetV3
   large (scale 0.5, no SE), RSEFPN (96 channels, shortcut), DBHead.
2. Make a ``best_accuracy.pdparams`` as PaddleOCR's training writes one: the config's model
   built in Paddle (random weights), its BatchNorm statistics calibrated on synthetic pages
   of text lines, ``paddle.save``.
3. ``xinit port --model paddleocr:ch_PP-OCRv3_det_student.yml --from paddle --to torch
   best_accuracy.pdparams det.pt``: the spec from the config, the keys moved strictly,
   layer-by-layer parity.
4. The shrink-map probabilities of one synthetic page in Paddle, in the ported PyTorch model
   and in Flax (when installed): the largest difference, and the parity verdict (float32
   rounding, measured against float64).
5. ``xinit.reparameterize(conv_bn=True)``: every conv+BatchNorm pair folded into one conv, as
   an inference export does; its size before and after, and the same map.

    python examples/port_ppocr_det.py [--workdir DIR] [--size S]

The weights are random, so the map is not text; what matters is that every framework draws
the same one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import xinit
from xinit.backends import available
from xinit.cli import main as xinit_cli
from xinit.models import paddleocr

CONFIG = """\
Architecture:
  model_type: det
  algorithm: DB
  Transform:
  Backbone:
    name: MobileNetV3
    scale: 0.5
    model_name: large
    disable_se: True
  Neck:
    name: RSEFPN
    out_channels: 96
    shortcut: True
  Head:
    name: DBHead
    k: 50
"""


def page(size: int, seed: int = 0) -> np.ndarray:
    """A (1, 3, size, size) float32 page: dark bars of text-line height and random lengths
    on a light noisy background, normalised with ImageNet's mean and std as PaddleOCR's
    ``NormalizeImage`` does for detection."""
    rng = np.random.default_rng(seed)
    gray = np.full((size, size), 230.0, np.float32)
    y = 4
    while y + 12 < size:
        x0 = int(rng.integers(2, size // 4))
        x1 = int(rng.integers(size // 2, size - 2))
        for x in range(x0, x1, 6):  # "characters": short bars with gaps
            gray[y : y + 10, x : x + 4] = 30.0
        y += int(rng.integers(16, 28))
    gray = np.clip(gray + rng.normal(0.0, 8.0, gray.shape), 0, 255).astype(np.float32)
    rgb = np.repeat(gray[None, None] / 255.0, 3, axis=1)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
    return ((rgb - mean) / std).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the config and checkpoints go, kept (default: a temp folder)",
    )
    p.add_argument("--size", type=int, default=128, help="page side (a multiple of 32)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.size % 32:
        p.error(f"--size {args.size}: DBNet takes multiples of 32")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="xinit-ppocr-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> int:
    """Steps 1-5 above in ``workdir``; 0 when the port and the maps pass."""
    import paddle
    import torch

    # 1. The config.
    cfg = workdir / "ch_PP-OCRv3_det_student.yml"
    cfg.write_text(CONFIG)
    spec = paddleocr.from_config(cfg)
    print(f"1. wrote {cfg.name}")

    # 2. A training checkpoint: random weights, BatchNorm statistics from synthetic pages.
    paddle_model = xinit.build(spec, "paddle", seed=args.seed)
    pages = np.concatenate([page(args.size, seed=args.seed + i) for i in range(4)])
    xinit.calibrate_batchnorm(paddle_model, pages)
    paddle_model.eval()
    ckpt = workdir / "best_accuracy.pdparams"
    paddle.save(paddle_model.state_dict(), str(ckpt))
    print(f"2. wrote {ckpt.name}: {len(paddle_model.state_dict())} tensors")

    # 3. One command: config + checkpoint -> a PyTorch state dict, with parity.
    out = workdir / "det.pt"
    size = f"{args.size},{args.size}"
    command = ["port", "--model", f"paddleocr:{cfg}", "--from", "paddle", "--to", "torch",
               str(ckpt), str(out), "--input", f"1,3,{size}", "--rows", "6"]  # fmt: skip
    print(f"3. xinit {' '.join(command)}")
    if xinit_cli(command) != 0:
        print("the port failed its parity check")
        return 1

    # 4. One page's probability maps in every framework.
    torch_model = xinit.build(spec, "torch", seed=args.seed + 1).eval()
    torch_model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    models = {"paddle": paddle_model, "torch": torch_model}
    if "flax" in available():
        models["flax"] = xinit.build(spec, "flax", rng="xinit")
        xinit.load_state_dict(models["flax"], xinit.state_dict(torch_model))
        models["flax"].eval()  # NNX's BatchNorm runs (and updates) batch statistics in train
    x = page(args.size, seed=args.seed + 100)
    maps = {
        "paddle": paddle_model(paddle.to_tensor(x))["maps"].numpy(),
        "torch": torch_model(torch.from_numpy(x))["maps"].detach().numpy(),
    }
    if "flax" in models:
        maps["flax"] = np.asarray(models["flax"](x.transpose(0, 2, 3, 1))["maps"])
        maps["flax"] = maps["flax"].transpose(0, 3, 1, 2)  # Flax is channel-last
    report = xinit.parity(models, x)
    maps_rows = [r for r in report.rows if r.path == "head.binarize"]  # DBHead's shrink map
    text = maps["paddle"] > 0.3  # DBPostProcess's binarisation threshold
    shape, over = maps["paddle"].shape, int(text.sum())
    print(f"4. probability maps {shape}, {over} pixels over 0.3 in Paddle")
    for name, m in maps.items():
        if name != "paddle":
            same = int(((m > 0.3) == text).sum())
            print(f"   {name:6s} max |map - Paddle's| = {np.abs(m - maps['paddle']).max():.2e}, "
                  f"{same}/{text.size} pixels binarised alike")  # fmt: skip
    for pair, d in maps_rows[0].diffs.items() if maps_rows else ():
        print(f"   parity of the maps, {pair}: ratio to float32 rounding {d.ratio:.2f} (max "
              f"{report.threshold:g}): {'PASS' if d.passed else 'FAIL'}")  # fmt: skip
    print(f"   {report.summary()}")

    # 5. Fold conv+BN pairs; the fused model draws the same map.
    fused, rep = xinit.reparameterize(torch_model, conv_bn=True)
    fused_map = fused(torch.from_numpy(x))["maps"].detach().numpy()
    print(f"5. {rep.summary().splitlines()[0]}")
    alike = bool(((fused_map > 0.3) == text).all())
    print(f"   max |fused map - unfused| = {np.abs(fused_map - maps['torch']).max():.2e}; "
          f"binarised {'alike' if alike else 'DIFFERENTLY'}")  # fmt: skip
    return 0 if report.ok and alike else 1


if __name__ == "__main__":
    sys.exit(main())

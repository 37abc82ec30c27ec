"""Port a PP-OCRv4 mobile text recogniser from its PaddleOCR config and checkpoint to PyTorch
in one command, read the same text line with both, and shrink the PyTorch model by fusing
its re-parameterisable blocks.

1. Write PaddleOCR's ``ch_PP-OCRv4_rec.yml`` (its ``Architecture``: PPLCNetV3 scale 0.95,
   MultiHead with the SVTR neck and CTC head) and a 36-character dictionary.
2. Make a ``best_accuracy.pdparams`` as PaddleOCR's training writes one: the config's model
   built in Paddle (random weights), its BatchNorm statistics calibrated on synthetic text
   lines, ``paddle.save``.
3. ``xinit port --model paddleocr:ch_PP-OCRv4_rec.yml --from paddle --to torch
   best_accuracy.pdparams rec.pt``: the spec from the config, the classes from the
   checkpoint, the keys moved strictly, layer-by-layer parity.
4. CTC-greedy-decode one synthetic text line with the Paddle model and the PyTorch model.
5. ``xinit.reparameterize`` the PyTorch model (LearnableRepLayer's conv+BN branches fused
   into one conv each, as PaddleOCR's export does): its size before and after, same text.

    python examples/port_ppocr_v4_rec.py [--workdir DIR] [--width W]

The weights are random, so the text read is noise; what matters is that both frameworks
read the same.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

import xinit
from xinit.cli import main as xinit_cli
from xinit.models import paddleocr

CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyz"

CONFIG = """\
Global:
  character_dict_path: en_dict.txt
  max_text_length: &max_text_length 25
  use_space_char: true
Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Transform:
  Backbone:
    name: PPLCNetV3
    scale: 0.95
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck:
            name: svtr
            dims: 120
            depth: 2
            hidden_dims: 120
            kernel_size: [1, 3]
            use_guide: True
          Head:
            fc_decay: 0.00001
      - NRTRHead:
          nrtr_dim: 384
          max_text_length: *max_text_length
"""


def text_line(text: str, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A (1, 3, height, width) float32 image of dark ``text`` on a light, slightly noisy
    background, normalised as PaddleOCR's ``RecResizeImg`` does ((x / 255 - 0.5) / 0.5)."""
    rng = np.random.default_rng(seed)
    try:
        from PIL import Image, ImageDraw, ImageFont

        img = Image.new("L", (width, height), 235)
        font = ImageFont.load_default()
        ImageDraw.Draw(img).text((4, height // 4), text, fill=20, font=font)
        gray = np.asarray(img, dtype=np.float32)
    except ImportError:  # no Pillow: a bar code of the characters' codes, drawn with numpy
        gray = np.full((height, width), 235.0, np.float32)
        for i, code in enumerate(text.encode()):
            x0 = 4 + 7 * i
            gray[height // 4 : 3 * height // 4, x0 : x0 + 1 + code % 5] = 20.0
    gray = gray + rng.normal(0.0, 6.0, gray.shape).astype(np.float32)
    rgb = np.repeat(np.clip(gray, 0, 255)[None, None], 3, axis=1)
    return ((rgb / 255.0 - 0.5) / 0.5).astype(np.float32)


def ctc_greedy_decode(probs: np.ndarray, characters: str) -> str:
    """PaddleOCR's ``CTCLabelDecode`` for one line: argmax per step, repeats collapsed, the
    blank (class 0) dropped, class i (i >= 1) mapped to the dictionary's (i - 1)th entry."""
    best = np.asarray(probs).reshape(-1, probs.shape[-1]).argmax(axis=-1)
    keep = [c for i, c in enumerate(best) if c != 0 and (i == 0 or c != best[i - 1])]
    return "".join(characters[c - 1] for c in keep)


def megabytes(module) -> float:
    """The size of a PyTorch module's state dict, in MB (what ``torch.save`` writes, about)."""
    return sum(t.numel() * t.element_size() for t in module.state_dict().values()) / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the config, dictionary and checkpoints go, kept (default: a temp folder)",
    )
    p.add_argument("--width", type=int, default=160, help="text-line width (a multiple of 8)")
    p.add_argument("--text", default="xinit 2026", help="the text drawn on the line")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="xinit-ppocr-") as tmp:
        return run(args, Path(tmp))


def run(args: argparse.Namespace, workdir: Path) -> int:
    """Steps 1-5 above in ``workdir``; 0 when the port passes and every model reads the same."""
    import paddle
    import torch

    # 1. The config and its dictionary (one character a line; + space + CTC blank = 38).
    cfg = workdir / "ch_PP-OCRv4_rec.yml"
    cfg.write_text(CONFIG)
    (workdir / "en_dict.txt").write_text("".join(f"{c}\n" for c in CHARACTERS))
    characters = CHARACTERS + " "  # use_space_char: the space is the last class
    spec = paddleocr.from_config(cfg)
    classes = paddleocr.character_count(workdir / "en_dict.txt", use_space_char=True)
    print(f"1. wrote {cfg.name} and en_dict.txt: {classes} CTC classes")

    # 2. A training checkpoint: random weights, BatchNorm statistics from synthetic lines.
    paddle_model = xinit.build(spec, "paddle", seed=args.seed)
    words = ["hello", "ocr 42", "paddle", "torch 2", "line 7", "text"]
    lines = np.concatenate(
        [text_line(w, 48, args.width, seed=args.seed + i) for i, w in enumerate(words)]
    )
    xinit.calibrate_batchnorm(paddle_model, lines)
    paddle_model.eval()
    ckpt = workdir / "best_accuracy.pdparams"
    paddle.save(paddle_model.state_dict(), str(ckpt))
    print(f"2. wrote {ckpt.name}: {len(paddle_model.state_dict())} tensors")

    # 3. One command: config + checkpoint -> a PyTorch state dict, with parity.
    out = workdir / "rec.pt"
    command = ["port", "--model", f"paddleocr:{cfg}", "--from", "paddle", "--to", "torch",
               str(ckpt), str(out), "--input", f"1,3,48,{args.width}", "--rows", "6"]  # fmt: skip
    print(f"3. xinit {' '.join(command)}")
    if xinit_cli(command) != 0:
        print("the port failed its parity check")
        return 1

    # 4. The same line read by Paddle and by the ported PyTorch model.
    torch_model = xinit.build(spec, "torch", seed=args.seed + 1).eval()
    torch_model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    line = text_line(args.text, 48, args.width, seed=args.seed + 100)
    with torch.no_grad():
        probs_torch = torch_model(torch.from_numpy(line)).numpy()
    probs_paddle = paddle_model(paddle.to_tensor(line)).numpy()
    read_paddle = ctc_greedy_decode(probs_paddle, characters)
    read_torch = ctc_greedy_decode(probs_torch, characters)
    diff = float(np.abs(probs_paddle - probs_torch).max())
    print(f"4. the line {args.text!r}, {probs_torch.shape[1]} CTC steps (random weights):")
    print(f"   Paddle reads  {read_paddle!r}\n   PyTorch reads {read_torch!r}")
    print(f"   probabilities: max |Paddle - PyTorch| = {diff:.2e}")

    # 5. Fuse the re-parameterisable blocks; the fused model reads the same.
    fused, report = xinit.reparameterize(torch_model)
    with torch.no_grad():
        probs_fused = fused(torch.from_numpy(line)).numpy()
    read_fused = ctc_greedy_decode(probs_fused, characters)
    size, size_fused = megabytes(torch_model), megabytes(fused)
    fused_diff = float(np.abs(probs_fused - probs_torch).max())
    print(f"5. {report.summary().splitlines()[0]}")
    print(f"   state dict {size:.2f} MB -> {size_fused:.2f} MB")
    print(f"   fused PyTorch reads {read_fused!r}; max |fused - unfused| = {fused_diff:.2e}")
    same = read_paddle == read_torch == read_fused
    print("   all three read the same" if same else "   the readings DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())

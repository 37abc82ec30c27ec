"""Port ``paddle.vision``'s ResNet-50 to a PyTorch model written by hand, with no xinit spec.

The situation: you have a Paddle model and its ``.pdparams``, and you wrote the PyTorch
model yourself. xinit reads both models layer by layer (each known layer class is read
back into its kind: Conv, BatchNorm, Linear, ...), so the names and layouts come from the
layer kinds, never from shapes:

1. save the Paddle weights (here: paddle.vision's resnet50 with random BatchNorm statistics);
2. ``xinit.port`` the checkpoint to PyTorch names and layout for *your* torch model;
3. load it with ``strict=True``;
4. ``xinit.parity``: every layer's output, in both frameworks, side by side; the first layer
   that differs is marked.

Run: ``python examples/port_native_model.py`` (about 10 s on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np


def torch_resnet50(num_classes: int = 1000):
    """A ResNet-50 as a PyTorch user writes it (torchvision's structure and names)."""
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, planes: int, stride: int):
            super().__init__()
            out = planes * 4
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != out:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
                )

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            return self.relu(self.bn3(self.conv3(y)) + skip)

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
                blocks = []
                for j in range(n):
                    blocks.append(Bottleneck(cin, planes, 2 if i > 0 and j == 0 else 1))
                    cin = planes * 4
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2048, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
            return self.fc(self.avgpool(x).flatten(1))

    return ResNet50()


def main(
    input_shape: tuple[int, ...] = (1, 3, 64, 64),
    rows: int | None = 12,
    workdir: Path | None = None,
) -> bool:
    """Steps 1-4 above, the .pdparams written in ``workdir`` (default: a temp folder, removed)."""
    import paddle
    import torch

    import xinit

    source = paddle.vision.models.resnet50()  # pretrained=False: nothing is downloaded
    xinit.randomize_batchnorm(source, seed=1)  # running statistics worth comparing
    target = torch_resnet50()

    folder = contextlib.nullcontext(workdir) if workdir else tempfile.TemporaryDirectory()
    with folder as tmp:
        path = Path(tmp) / "resnet50.pdparams"
        paddle.save(source.state_dict(), str(path))
        ported = xinit.port(path, target, dst="torch")  # your model's names and layouts
    print(ported.report.summary())
    result = target.load_state_dict({k: torch.from_numpy(v) for k, v in ported.items()})
    print(f"torch load_state_dict(strict=True): {result}")

    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    report = xinit.parity({"paddle.vision": source, "hand-written torch": target}, x)
    print(report.to_markdown(max_rows=rows))
    print(report.summary())
    return report.ok


def cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the .pdparams goes, kept (default: a temp folder, removed at exit)",
    )
    p.add_argument("--input", default="1,3,64,64", help="N,C,H,W of the parity input")
    p.add_argument("--rows", type=int, default=12, help="parity table rows shown")
    args = p.parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in args.input.split(","))
    return 0 if main(shape, args.rows, args.workdir) else 1


if __name__ == "__main__":
    raise SystemExit(cli())

"""Replace ``init_weights`` loops with declarative policies, on a hand-written PyTorch model
and on xinit-built models.

    python examples/policies_replace_init_weights.py

1. A torchvision-style ResNet written in plain ``torch.nn`` ships with the usual loop
   (``for m in self.modules(): if isinstance(m, nn.Conv2d): kaiming_normal_(...)``). We build
   it *without* the loop and let ``xinit.apply(xinit.presets.torchvision_resnet(), model)``
   do the same job; the per-parameter report says which rule set what, and the measured
   std of every conv matches the loop's law.
2. The same preset given to ``xinit.build`` for torch and paddle, plus a rule of our own.
3. CenterNet's ``init_weights`` loop (deconvs N(0, 0.001) and their BNs 1/0; the final
   conv of ``wh``/``reg`` N(0, 0.001) with bias 0; ``hm``'s bias -2.19, its weight left at
   PyTorch's default) as ``xinit.presets.centernet_heads()``.
4. Initialising only what a checkpoint did not provide (``skip=loaded keys``).
5. ``rng="xinit"``: the hand-written torch model and xinit's paddle/flax builds hold exactly
   the same numbers.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from rich.console import Console
from torch import nn

import xinit
from xinit import init as I
from xinit.native import neutral_values

console = Console()


# ---- a hand-written model, as found in the wild -----------------------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (same parameter names), with an optional init loop."""

    def __init__(self, num_classes=10, init_loop=True, zero_init_residual=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin, stages = 64, []
        for i, planes in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(BasicBlock(cin, planes, stride), BasicBlock(planes, planes))
            )
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        if init_loop:  # the idiom policies replace
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            if zero_init_residual:
                for m in self.modules():
                    if isinstance(m, BasicBlock):
                        nn.init.constant_(m.bn2.weight, 0)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def conv_std_table(values: dict, title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    for col in ("conv", "shape", "measured std", "kaiming fan_out std"):
        t.add_column(col)
    for path, w in values.items():
        if (
            w.ndim == 4
            and path.count(".") <= 3
            and path.startswith(("conv1", "layer1.0", "layer4.1"))
        ):
            expected = math.sqrt(2.0 / (w.shape[0] * w.shape[2] * w.shape[3]))
            t.add_row(path, "x".join(map(str, w.shape)), f"{w.std():.5f}", f"{expected:.5f}")
    console.print(t)


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    # 1. The loop, replaced by one line on the hand-written model.
    torch.manual_seed(0)
    model = ResNet18(init_loop=False)
    policy = xinit.presets.torchvision_resnet(zero_init_residual=True)
    report = xinit.apply(policy, model, seed=0)
    console.print(report.rules_table("torchvision_resnet(zero_init_residual=True)"))
    print("\n".join(str(report).splitlines()[:6]), "\n...\n" + report.caption())
    conv_std_table(neutral_values(model), "hand-written torch model, initialised by the preset")
    looped = ResNet18(init_loop=True, zero_init_residual=True)
    same = [
        n
        for n, p in looped.named_parameters()
        if n.endswith("bn2.weight") and torch.equal(p, model.get_parameter(n))
    ]
    print(f"zero-initialised residual BNs, loop vs preset: {len(same)} of 8 identical (all 0)\n")

    # 2. The same preset for xinit-built models, with an extra rule of our own at the end
    #    (later rules override earlier ones: here the head gets a small normal, bias 0).
    spec = xinit.models.resnet18(num_classes=10)
    mine = policy + xinit.Rule(I.Normal(0.0, 0.01), kind="linear", bias=0.0)
    for backend in ("torch", "paddle"):
        built = xinit.build(spec, backend, seed=0, policy=mine)
        w = neutral_values(built)["fc.weight"]
        print(f"xinit.build(resnet18, {backend!r}): fc.weight std {w.std():.5f} (rule: 0.01)")

    # 3. CenterNet heads: a hand-written head module, the preset instead of its loop.
    heads = nn.Module()
    heads.deconv_layers = nn.Sequential(
        nn.ConvTranspose2d(64, 64, 4, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
    )
    for name, classes in {"hm": 80, "wh": 2, "reg": 2}.items():
        head = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, classes, 1))
        heads.add_module(name, head)
    report = xinit.apply(xinit.presets.centernet_heads(), heads, seed=0)
    print(
        f"\ncenternet_heads: hm.2.bias = {heads.hm[2].bias[0].item():.4f} (-2.19), "
        f"wh.2.weight std = {heads.wh[2].weight.std().item():.5f} (0.001); "
        f"{report.caption()}"
    )

    # 4. A checkpoint without the head: initialise only what is missing.
    checkpoint = {k: v for k, v in looped.state_dict().items() if not k.startswith("fc.")}
    fresh = ResNet18(init_loop=False)
    missing = fresh.load_state_dict(checkpoint, strict=False).missing_keys
    report = xinit.apply(xinit.presets.xavier_bn_normal(), fresh, skip=checkpoint.keys())
    untouched = all(torch.equal(fresh.state_dict()[k], v) for k, v in checkpoint.items())
    print(
        f"\nmissing {missing} -> initialised {list(report.initialized)}; "
        f"{len(report.skipped)} loaded parameters untouched: {untouched}"
    )

    # 5. rng="xinit": the same numbers in the hand-written torch model and xinit's builds.
    full = policy + xinit.Rule(I.TruncatedNormal(std=0.02), kind="linear", bias=0.0)
    xinit.apply(full, model, seed=42, rng="xinit")
    hand = neutral_values(model)
    for backend in ("paddle", "flax"):
        try:
            built = neutral_values(xinit.build(spec, backend, seed=42, rng="xinit", policy=full))
        except ImportError as err:
            print(f"{backend}: skipped ({err})")
            continue
        equal = all(np.array_equal(built[k], v) for k, v in hand.items())
        print(f"rng='xinit': hand-written torch model == xinit.build(..., {backend!r}): {equal}")


if __name__ == "__main__":
    main()

"""Why the frameworks' init defaults matter: the signal at initialisation, layer by layer.

A 20-layer plain conv net (no BatchNorm, ReLU) and ResNet-50, each under PyTorch's, Paddle's
and Flax's default init and under Kaiming normal (fan_in): the std of every layer's output and
of its gradient (loss ``sum(y**2)``), printed as a table and saved as plots.

    python examples/why_defaults_matter.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

import xinit
from xinit import layers as L
from xinit.backends import FRAMEWORKS, available

WIDTH, DEPTH = 32, 20
INPUT = (8, 3, 32, 32)


def plain_net(depth: int = DEPTH, width: int = WIDTH):
    """``depth`` 3x3 convs with ReLU between them, no normalisation, a linear head."""
    steps = [L.Conv2d(3, width, 3, padding=1)]
    for _ in range(depth - 1):
        steps += [L.ReLU(), L.Conv2d(width, width, 3, padding=1)]
    steps += [L.ReLU(), L.Flatten(), L.Linear(width * 32 * 32, 10)]
    return xinit.Sequential(*steps)


def each_in_its_own(spec, shape):
    """Every installed framework under its own default (values drawn with rng="xinit")."""
    results = [
        xinit.diagnose(spec, shape, frameworks=[fw], policies=[f"default-{fw}"])
        for fw in FRAMEWORKS
        if fw in available()
    ]
    total = results[0]
    for r in results[1:]:
        total = total + r
    return total


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=200)
    policies = [f"default-{fw}" for fw in FRAMEWORKS] + ["kaiming"]

    plain = each_in_its_own(plain_net(), INPUT)
    console.print(plain.table())
    print(plain.to_markdown())
    plain.plot(str(out / "diagnose_plain20.png"))

    # every policy in one backend: with rng="xinit" the frameworks agree (tests prove it)
    both = xinit.diagnose(plain_net(), INPUT, frameworks=["torch"], policies=policies)
    both.plot(str(out / "diagnose_plain20_policies.png"))
    resnet = xinit.diagnose(xinit.models.resnet50(), INPUT, frameworks=["torch"], policies=policies)
    console.print(resnet.table())
    resnet.plot(str(out / "diagnose_resnet50.png"))
    print(f"plots written to {out}/")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out-dir", type=Path, default=Path("."), help="where the plots go (default: here)"
    )
    main(parser.parse_args().out_dir)

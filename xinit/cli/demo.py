"""``xinit demo``: the README's tour, in every installed framework."""

from __future__ import annotations

import argparse

from .common import PARITY_ORDER
from .measure import cmd_defaults, cmd_stats, register_defaults, register_stats
from .porting import cmd_parity
from .porting import register as register_porting


def _verbs() -> argparse.ArgumentParser:
    """A parser of the verbs the tour runs, registered as the ``xinit`` command's are."""
    parser = argparse.ArgumentParser(prog="xinit")
    sub = parser.add_subparsers(dest="verb", required=True)
    register_stats(sub)
    register_defaults(sub)
    register_porting(sub)
    return parser


def cmd_demo(args) -> int:
    """The README's demo: the three uses of xinit, in every installed framework."""
    from rich.console import Console

    from xinit.backends import available

    console = Console()
    frameworks = available()
    console.print(f"xinit demo: backends installed: {', '.join(frameworks) or 'none'}\n")
    parser = _verbs()

    console.rule("1. One initializer, identical statistics in every framework")
    code = cmd_stats(
        parser.parse_args(
            ["stats", "--init", "KaimingNormal(mode='fan_out')", "--shape", "256,128,3,3"]
            + ["--role", "conv", "--frameworks", ",".join(frameworks)]
        )
    )
    if len(frameworks) >= 2:
        console.rule("2. PaddleOCR's ResNet45, built once, same weights everywhere, per layer")
        order = [b for b in PARITY_ORDER if b in frameworks]
        code |= cmd_parity(
            parser.parse_args(["parity", "resnet45", "--backends", ",".join(order), "--rows", "8"])
        )
    console.rule("3. What each framework does by default")
    code |= cmd_defaults(
        parser.parse_args(
            ["defaults", "--layer", "conv2d,linear", "--frameworks", ",".join(frameworks)]
        )
    )
    console.print(
        "\nMore: xinit summary resnet18 | xinit port --model resnet45 --from paddle --to torch "
        "IN.pdparams OUT.pt | xinit init resnet50 --policy torchvision_resnet --out w.safetensors"
    )
    return code


def register(sub) -> None:
    d = sub.add_parser("demo", help="a short tour in every installed framework")
    d.set_defaults(func=cmd_demo)

"""The ``xinit`` command: the library's verbs on the terminal.

Each verb is one ``cmd_<verb>(args)`` function registered in ``_parser``; frameworks are
imported only by the verb that needs them, so ``xinit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from None


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_demo(args) -> int:
    """The README's demo: a short tour of what xinit does, in every installed backend."""
    from xinit.backends import available

    backends = available()
    print(f"xinit demo: backends installed: {', '.join(backends) or 'none'}\n")
    stats_args = argparse.Namespace(
        init="KaimingNormal(mode='fan_out')",
        shape=(256, 128, 3, 3),
        role="conv",
        backends=",".join(backends),
        seed=0,
        device="cpu",
        rng="native",
        format="table",
    )
    return cmd_stats(stats_args)


def cmd_stats(args) -> int:
    """Measured mean/std of one initializer in each backend next to the analytic values."""
    raise SystemExit("xinit stats: not implemented yet")


def cmd_summary(args) -> int:
    """Per-layer output shapes, parameter counts and initializers of a zoo model."""
    from rich.console import Console

    from xinit import models
    from xinit.summary import summary

    spec = models.get(args.model)
    shape = args.input or models.default_input(args.model)
    result = summary(spec, shape)
    if args.format == "json":
        import json

        rows = [
            {
                "path": r.path,
                "kind": r.kind,
                "output_shape": list(r.output_shape),
                "params": r.params,
                "initializer": r.initializer,
            }
            for r in result.rows
        ]
        print(
            json.dumps(
                {"model": args.model, "rows": rows, "trainable_params": result.trainable_params},
                indent=1,
            )
        )
    else:
        Console().print(result.table(f"{args.model} summary"))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xinit", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)

    d = sub.add_parser("demo", help="a short tour in every installed backend")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("stats", help="measured statistics of one initializer per backend")
    s.add_argument(
        "--init", default="KaimingNormal()", help="e.g. \"KaimingNormal(mode='fan_out')\""
    )
    s.add_argument("--shape", type=_csv_ints, default=(256, 128, 3, 3))
    s.add_argument("--role", default="conv")
    s.add_argument("--backends", default="torch,paddle,flax")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--rng", default="native", choices=("native", "xinit"))
    s.add_argument("--format", default="table", choices=("table", "md", "json"))
    s.set_defaults(func=cmd_stats)
    m = sub.add_parser("summary", help="per-layer shapes, parameter counts and initializers")
    m.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    m.add_argument("--input", type=_csv_ints, default=None, help="e.g. 1,3,224,224")
    m.add_argument("--format", default="table", choices=("table", "json"))
    m.set_defaults(func=cmd_summary)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, ImportError, KeyError, FileNotFoundError) as err:
        print(f"xinit {args.verb}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Compare what PyTorch, PaddlePaddle and Flax do by default to a conv, a linear layer, norms,
attention and a transformer encoder layer.

    python examples/compare_defaults.py                      # table on the terminal, plot file
    python examples/compare_defaults.py --markdown defaults.md --plot defaults_conv2d.png

The table comes from xinit's catalogue (``xinit.defaults``), which the test suite checks
against each framework's own default layers; the plot draws the weights that each installed
framework's own ``Conv2d`` / ``Conv2D`` / ``nnx.Conv`` actually produces, over the catalogue's
analytic densities. The same is one command away: ``xinit defaults --layer conv2d,linear``,
``xinit defaults --layer layernorm,groupnorm,rmsnorm``, ``xinit defaults --layer mha`` and
``xinit defaults --layer transformer_encoder_layer``.
"""

from __future__ import annotations

import argparse

from rich.console import Console

from xinit import defaults

_NORMS = ("layernorm", "groupnorm", "rmsnorm")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--in", dest="in_features", type=int, default=64)
    p.add_argument("--out", dest="out_features", type=int, default=128)
    p.add_argument("--kernel", type=int, default=3)
    p.add_argument("--groups", type=int, default=4, help="the extra grouped-conv row")
    p.add_argument("--heads", type=int, default=8, help="attention heads (E = --out)")
    p.add_argument("--reference", default="torch")
    p.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    p.add_argument("--plot", default="defaults_conv2d.png", help="histogram PNG ('' for none)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    i, o, k = args.in_features, args.out_features, args.kernel
    layers = [defaults.layer_spec("conv2d", i, o, k)]
    if args.groups > 1:
        layers.append(defaults.layer_spec("conv2d", i, o, k, groups=args.groups))
    layers.append(defaults.layer_spec("linear", i, o))
    entries = [e for d in layers for e in defaults.catalogue(d)]
    norms = [
        defaults.layer_spec(n, o, groups=args.groups if n == "groupnorm" else 1) for n in _NORMS
    ]
    norm_entries = [e for d in norms for e in defaults.catalogue(d)]
    attention = defaults.catalogue("multihead_attention", o, heads=args.heads)
    encoder = defaults.catalogue("transformer_encoder_layer", o, heads=args.heads)  # ff 4·E

    console = Console()
    console.print(defaults.to_rich(entries, args.reference))
    console.print(defaults.to_rich(norm_entries, args.reference))
    console.print(defaults.to_rich(attention, args.reference, detail=True))
    console.print(defaults.to_rich(encoder, args.reference, detail=True))
    if args.markdown:
        text = [
            defaults.to_markdown(entries, args.reference),
            defaults.to_markdown(norm_entries, args.reference),
            defaults.to_markdown(attention, args.reference, detail=True),
            defaults.to_markdown(encoder, args.reference, detail=True),
            "\nConventions around initialisation (`xinit defaults --conventions`):\n",
            defaults.conventions_markdown(),
        ]
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write("\n".join(text))
        print(f"wrote {args.markdown}")
    if args.plot:
        summary = defaults.plot_defaults(layers[0], args.plot, seed=args.seed)
        for s in summary:
            print(
                f"{s['framework']:>6}: measured std {s['measured_std']:.5f} "
                f"(catalogue {s['std']:.5f}, n={s['n']})"
            )
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

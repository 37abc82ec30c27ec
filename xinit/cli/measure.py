"""The verbs that measure and show: ``stats``, ``summary``, ``defaults`` and ``diagnose``."""

from __future__ import annotations

import argparse
import sys

from xinit.backends import FRAMEWORKS

from .common import _csv, _csv_ints, _print_wide, add_frameworks, print_result


def cmd_stats(args) -> int:
    """Measured mean/std of one initializer in each framework next to the analytic values
    (``--init`` is parsed by :func:`xinit.init.get`, never evaluated)."""
    from xinit import stats

    result = stats(
        args.init,
        args.shape,
        role=args.role,
        frameworks=_csv(args.frameworks),
        devices=_csv(args.device),
        seed=args.seed,
        rng=args.rng,
    )

    def show_table() -> None:
        notes = [f"[dim]note: {note}[/dim]" for note in result.notes]
        _print_wide(result.title, result.law, result.table(), *notes)

    print_result(result, args.format, show_table)
    return 0 if result.rows else 1


def cmd_summary(args) -> int:
    """Per-layer output shapes, parameter counts and initializers of a zoo model."""

    from xinit import models, summary

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
        _print_wide(result.table(f"{args.model} summary"))
    return 0


def cmd_defaults(args) -> int:
    """Each framework's default initialisation of a layer, side by side (or the conventions)."""
    import json

    from xinit import defaults
    from xinit.errors import ArgumentError

    frameworks = tuple(_csv(args.frameworks))
    for fw in frameworks:
        defaults.check_framework(fw)
    if args.reference is not None and args.reference not in frameworks:
        raise ArgumentError(
            f"--reference {args.reference!r} is not one of --frameworks {frameworks}"
        )
    if args.conventions:
        items = defaults.conventions()
        if args.format == "json":
            print(json.dumps([c.record() for c in items], indent=1))
        elif args.format == "md":
            print(defaults.conventions_markdown(items), end="")
        else:
            _print_wide(defaults.conventions_rich(items), width=args.width)
        return 0
    layers = [_defaults_spec(defaults, layer, args) for layer in _csv(args.layer)]
    if args.plot and defaults.is_block(_csv(args.layer)[0]):  # refused before the table
        name = defaults.canonical_layer(_csv(args.layer)[0])
        raise ArgumentError(f"--plot draws one layer's parameter; {name} is a block")
    entries = [e for d in layers for e in defaults.catalogue(d, frameworks=frameworks)]
    detail = len(layers) == 1  # one layer kind: side by side, with each framework's rule
    if args.format == "json":
        print(json.dumps(defaults.records(entries, args.reference), indent=1, ensure_ascii=False))
    elif args.format == "md":
        print(defaults.to_markdown(entries, args.reference, detail), end="")
    else:
        _print_wide(defaults.to_rich(entries, args.reference, detail), width=args.width)
    if args.plot:
        summary = defaults.plot_defaults(
            layers[0], args.plot, frameworks=frameworks, seed=args.seed
        )
        drawn = ", ".join(f"{s['framework']} std {s['measured_std']:.4g}" for s in summary)
        print(f"xinit defaults: wrote {args.plot} ({drawn})", file=sys.stderr)
    return 0


def _defaults_spec(defaults, layer: str, args):
    """The layer spec of one ``--layer`` name and the numbers given: a layer with one
    feature count (norms, attention) takes ``--out`` when given, else ``--in``; a block
    (transformer layer) takes d_model = ``--in`` and the feed-forward width ``--out``
    (default 4·d_model); a depthwise convolution ``--out`` (default ``--in``, as
    :func:`xinit.defaults.layer_spec`); others take ``--out`` (default 128). Attention takes
    ``--kdim``/``--vdim`` too."""
    out = args.out_features
    takes_out = not (defaults.one_feature_count(layer) or defaults.is_block(layer))
    if out is None and takes_out and not defaults.is_depthwise(layer):
        out = 128
    kernel = args.kernel[0] if len(args.kernel) == 1 else args.kernel
    return defaults.layer_spec(
        layer, args.in_features, out, kernel, args.groups, args.heads, args.kdim, args.vdim
    )


def cmd_diagnose(args) -> int:
    """Per-layer activation and gradient std at initialisation, per framework and policy."""
    from xinit import diagnose, models

    spec = models.get(args.model)
    result = diagnose(
        spec,
        args.input,
        frameworks=_csv(args.frameworks),
        policies=_csv(args.policies),
        seed=args.seed,
        rng=args.rng,
    )

    def show_table() -> None:
        _print_wide(result.table(), min_width=max(160, 40 + 24 * len(result.runs)))

    print_result(result, args.format, show_table)
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def register_stats(sub) -> None:
    s = sub.add_parser("stats", help="measured statistics of one initializer per framework")
    s.add_argument(
        "--init", default="KaimingNormal()", help="e.g. \"KaimingNormal(mode='fan_out')\""
    )
    s.add_argument("--shape", type=_csv_ints, default=(256, 128, 3, 3))
    s.add_argument("--role", default="conv")
    add_frameworks(s, "--frameworks", ",".join(FRAMEWORKS))
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="comma list of cpu, gpu")
    s.add_argument("--rng", default="native", choices=("native", "xinit"))
    s.add_argument("--format", default="table", choices=("table", "md", "json"))
    s.set_defaults(func=cmd_stats)


def register_summary(sub) -> None:
    m = sub.add_parser("summary", help="per-layer shapes, parameter counts and initializers")
    m.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    m.add_argument("--input", type=_csv_ints, default=None, help="e.g. 1,3,224,224")
    m.add_argument("--format", default="table", choices=("table", "json"))
    m.set_defaults(func=cmd_summary)


def register_defaults(sub) -> None:
    f = sub.add_parser("defaults", help="each framework's default init of a layer, side by side")
    f.add_argument(
        "--layer",
        default="conv2d,linear",
        help="comma list: conv2d, linear, layernorm, mha, ..., transformer_encoder_layer, "
        "transformer_decoder_layer, transformer; one layer: side by side, with each "
        "framework's rule and native tensors",
    )
    f.add_argument(
        "--in",
        dest="in_features",
        type=int,
        default=64,
        help="C_in / in / num / features / E / d_model",
    )
    f.add_argument(
        "--out",
        dest="out_features",
        type=int,
        default=None,
        help="C_out / out / dim (default 128; depthwise convs: --in); norms and attention: "
        "their feature count (--in when not given); transformer layers: dim_feedforward "
        "(default 4·--in)",
    )
    f.add_argument("--kernel", type=_csv_ints, default=(3,), help="e.g. 3 or 3,5")
    f.add_argument("--groups", type=int, default=1)
    f.add_argument(
        "--heads", type=int, default=8, help="attention heads, transformer nhead (default 8)"
    )
    f.add_argument("--kdim", type=int, default=None, help="attention: key size (default E)")
    f.add_argument("--vdim", type=int, default=None, help="attention: value size (default E)")
    f.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    f.add_argument("--reference", default="torch", help="std ratios relative to this framework")
    f.add_argument("--format", default="table", choices=("table", "md", "json"))
    f.add_argument("--plot", default=None, metavar="FILE.png", help="histograms of real draws")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--conventions", action="store_true", help="BN/LN/pooling/layout/RNG table")
    f.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)
    f.set_defaults(func=cmd_defaults)


def register_diagnose(sub) -> None:
    dg = sub.add_parser("diagnose", help="per-layer signal at initialisation, per policy")
    dg.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    add_frameworks(dg, "--frameworks", ",".join(FRAMEWORKS))
    dg.add_argument(
        "--policies",
        default=",".join(f"default-{f}" for f in FRAMEWORKS),
        help="default-<framework>, kaiming, spec, or a preset (torchvision_resnet, ...)",
    )
    dg.add_argument("--input", type=_csv_ints, default=(8, 3, 64, 64), help="N,C,H,W")
    dg.add_argument("--seed", type=int, default=0)
    dg.add_argument("--rng", default="xinit", choices=("native", "xinit"))
    dg.add_argument("--format", default="table", choices=("table", "md", "json"))
    dg.add_argument("--plot", default=None, metavar="FILE.png", help="std against depth")
    dg.set_defaults(func=cmd_diagnose)

"""``xinit export-code``: a spec as a standalone model file for torch, paddle or flax."""

from __future__ import annotations

from xinit.backends import FRAMEWORKS

from .common import add_frameworks, add_parents, output_path


def cmd_export_code(args) -> int:
    """Write (or print) the model file of ``--model`` for ``--framework``."""
    from xinit import factories, presets
    from xinit._export_code import export_code
    from xinit.codegen import model_class_name
    from xinit.errors import ArgumentError

    spec = factories.load(args.model, factories.parse_args(args.model_args))
    if not factories.is_spec(spec):
        raise ArgumentError(
            f"--model {args.model} gives a {type(spec).__name__}, not an xinit spec: export-code "
            "writes specs (a zoo name, or a factory returning a spec)"
        )
    policy = presets.get(args.policy) if args.policy else None
    name = args.class_name or model_class_name(args.model)
    text = export_code(spec, args.framework, class_name=name, policy=policy, source=args.model)
    if args.out in (None, "-"):
        print(text, end="")
        return 0
    out = output_path(args.out, args.parents)
    out.write_text(text)
    print(f"xinit export-code: wrote {out} (class {name}, {args.framework})")
    return 0


def register(sub) -> None:
    e = sub.add_parser(
        "export-code", help="a spec as a standalone model file (torch, paddle or flax)"
    )
    e.add_argument(
        "--model", required=True, help="a zoo name, module:factory or file.py:factory (a spec)"
    )
    e.add_argument("--model-args", default=None, help="factory arguments, e.g. num_classes=10")
    add_frameworks(e, "--framework", FRAMEWORKS[0], choices=FRAMEWORKS)
    e.add_argument("--policy", default=None, help="a preset (xinit.presets) for init_weights")
    e.add_argument("--class-name", default=None, help="the model class (default: from --model)")
    e.add_argument("-o", "--out", default=None, help="the .py file to write (default: print it)")
    add_parents(e)
    e.set_defaults(func=cmd_export_code)

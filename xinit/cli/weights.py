"""``xinit init``: a zoo model's initial weights under a preset policy, written to a file."""

from __future__ import annotations

import argparse

from xinit.backends import FRAMEWORKS

from .common import _print_wide, add_frameworks, add_parents, file_format, output_path


def _output_file(text: str, default_name: str) -> str:
    """``--out``: a name ending in a slash is a folder (made if missing, with ``--parents``)
    to write ``default_name`` in; an existing folder named without the slash is refused,
    since the user may have meant a file of that name."""
    import os

    if text.endswith((os.sep, "/")):
        return os.path.join(text, default_name)
    if os.path.isdir(text):
        raise IsADirectoryError(
            f"--out {text} is an existing folder; write {os.path.join(text, default_name)} "
            f"with --out {text.rstrip(os.sep)}/ or name a file"
        )
    return text


def cmd_init(args) -> int:
    """Build a zoo model under a preset policy and write its initial weights in the format
    ``--out``'s suffix names (safetensors: neutral names and layout, with the policy, seed
    and rng as metadata; ``.pt``, ``.pdparams``, ``.msgpack``: that framework's own names
    and layout), then print the per-parameter report."""
    import json
    import warnings

    import numpy as np

    from xinit import build, models, port, presets, state_dict
    from xinit.blocks import param_specs
    from xinit.checkpoints import (
        CONVENTION,
        NEUTRAL_FORMAT,
        atomic_write,
        safetensors_bytes,
        save_checkpoint,
    )
    from xinit.distributions import construct
    from xinit.policy import Policy, PolicyWarning

    spec = models.get(args.model)
    policy = presets.get(args.policy) if args.policy != "none" else Policy(name="none")
    out = output_path(_output_file(args.out, f"{args.model}.safetensors"), args.parents)
    out_format = file_format(str(out), args.out_format, "--out-format")
    report = policy.report(spec, strict=args.strict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PolicyWarning)  # already raised by report()
        module = build(spec, args.framework, seed=args.seed, rng=args.rng, policy=policy)
    tensors = {}
    state = state_dict(module)
    for path, ps in param_specs(spec).items():
        value = state.get(path)
        if value is None:  # a buffer this framework does not keep (num_batches_tracked)
            shape = ps.shape or (1,)
            value = construct(ps.init.resolve(shape, ps.role), shape).reshape(ps.shape)
        tensors[path] = np.array(value, dtype=ps.dtype, order="C")  # keeps 0-d scalars 0-d
    meta = {
        "format": "xinit-neutral",
        "model": args.model,
        "policy": args.policy,
        "backend": args.framework,  # the file's key since the first release
        "seed": str(args.seed),
        "rng": args.rng,
    }
    if out_format == NEUTRAL_FORMAT:
        atomic_write(out, lambda f: f.write(safetensors_bytes(tensors, meta)))
    else:  # the framework's own file, as its own loader reads it
        native = port(tensors, spec, src="neutral", dst=CONVENTION[out_format])
        save_checkpoint(native, out, format=out_format)
    values = sum(int(t.size) for t in tensors.values())
    done = f"xinit init: wrote {out} ({len(tensors)} tensors, {values:,} values)"
    if args.format == "json":
        record = {"file": str(out), "file_format": out_format, "meta": meta}
        print(json.dumps({**record, "report": report.records()}, indent=1))
    else:
        title = f"{args.model} x {args.policy} ({args.framework}, seed {args.seed}, rng {args.rng})"
        tables = [report.rules_table(f"policy {args.policy}")] if policy.rules else []
        _print_wide(*tables, report.table(title), width=args.width)
        print(done)
    return 0


def register(sub) -> None:
    from xinit.checkpoints import FORMATS

    i = sub.add_parser("init", help="initial weights of a zoo model under a preset policy")
    i.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    i.add_argument("--policy", default="none", help="a preset (xinit.presets) or 'none'")
    add_frameworks(i, "--framework", FRAMEWORKS[0], choices=FRAMEWORKS)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--rng", default="native", choices=("native", "xinit"))
    i.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="FILE.safetensors (neutral), .pt, .pdparams or .msgpack (that framework's "
        "names and layout), or DIR/ to write DIR/MODEL.safetensors",
    )
    i.add_argument(
        "--out-format", default=None, choices=FORMATS, help="the format (default: --out's suffix)"
    )
    add_parents(i)
    i.add_argument("--strict", action="store_true", help="fail on parameters no rule sets")
    i.add_argument("--format", default="table", choices=("table", "json"))
    i.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)
    i.set_defaults(func=cmd_init)

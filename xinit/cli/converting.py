"""``xinit convert``: a native model of one framework into another, with its weights, its
traced spec and a parity report (:func:`xinit.convert`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xinit.backends import FRAMEWORKS
from xinit.errors import ArgumentError

from .common import _csv_ints, add_parents
from .porting import _plot, _print_parity, _verdict, _verdict_options

DEFAULT_INPUT = (1, 3, 224, 224)


def _model_args(text: str | None) -> dict:
    """``--model-args``: a JSON object (``{"num_classes": 10}``) or ``name=value,...``."""
    from xinit import factories

    if text is None or not text.strip().startswith("{"):
        return factories.parse_args(text)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArgumentError(f"--model-args: not a JSON object: {err}") from None
    if not isinstance(value, dict):
        raise ArgumentError(f"--model-args: expected a JSON object; got {text!r}")
    return value


def _out_folder(text: str, parents: bool) -> Path:
    """``--out``: a folder, checked before any work (made when writing; a missing parent
    only with ``--parents``)."""
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise ArgumentError(f"--out {text}: is a file; convert writes a folder")
    if not folder.parent.is_dir() and not parents:
        raise ArgumentError(
            f"--out {text}: the folder {folder.parent} does not exist (pass --parents to make it)"
        )
    return folder


def _source_model(args):
    """The native model ``--model`` names, in ``--from``'s framework, with ``--checkpoint``'s
    weights when given (ported from the file's convention by the model's own names)."""
    from xinit import factories, load_state_dict, port
    from xinit.backends import backend_of
    from xinit.checkpoints import CONVENTION, detect_format, load_checkpoint

    model = factories.load(args.model, _model_args(args.model_args))
    if factories.is_spec(model):
        raise ArgumentError(
            f"--model {args.model} is an xinit spec: `xinit convert` takes a native model "
            "(module:factory or file.py:factory); build a spec with `xinit init`/`xinit.build`"
        )
    try:
        framework = backend_of(model).name
    except TypeError as err:
        raise ArgumentError(f"--model {args.model}: {err}") from None
    if args.src is not None and args.src != framework:
        raise ArgumentError(f"--model {args.model} is a {framework} model; --from says {args.src}")
    if args.checkpoint is not None:
        raw = load_checkpoint(args.checkpoint, unwrap_wrappers=True)
        src = CONVENTION[detect_format(args.checkpoint)]
        load_state_dict(model, port(raw, model, src=src, dst="neutral"))
    return model, framework


def cmd_convert(args) -> int:
    """Trace ``--model``, build it in ``--to``, move its weights and prove it; write the
    weights (``--to``'s own format), ``spec.json`` and the parity report into ``--out``."""
    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from xinit import load_spec, port, save_spec, state_dict
    from xinit._convert import STAGES, convert
    from xinit.backends import part
    from xinit.checkpoints import atomic_write, save_checkpoint

    out = _out_folder(args.out, args.parents)
    shape = args.input or DEFAULT_INPUT
    if any(n <= 0 for n in shape):
        raise ArgumentError(f"--input {','.join(map(str, shape))}: every size must be at least 1")
    x = np.random.default_rng(args.seed).standard_normal(shape).astype(np.float32)
    spec = load_spec(args.spec) if args.spec is not None else None
    model, framework = _source_model(args)  # bad input fails before the bar shows
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    steps = (*STAGES[: 4 if not args.no_parity else 3], "write")
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"convert {framework} -> {args.dst}", total=len(steps))
        done = []

        def advance(stage: str) -> None:
            bar.update(task, completed=len(done), description=f"{stage} {framework} -> {args.dst}")
            done.append(stage)

        module, report = convert(
            model,
            args.dst,
            x,
            spec=spec,
            seed=args.seed,
            parity=not args.no_parity,
            progress=advance,
            **_verdict(args),
        )
        advance("write")
        out.mkdir(parents=True, exist_ok=True)
        suffix = part(args.dst, "checkpoint").SUFFIXES[0]
        weights = port(state_dict(module), report.spec, src="neutral", dst=args.dst)
        written = [save_checkpoint(weights, out / f"model{suffix}", format=args.dst)]
        written.append(save_spec(report.spec, out / "spec.json"))
        record = (json.dumps(report.to_dict(), indent=1) + "\n").encode("utf-8")
        written.append(atomic_write(out / "parity.json", lambda file: file.write(record)))
        bar.update(task, completed=len(steps))
    if args.format == "json":  # stdout is the report alone, as parity.json holds it
        print(record.decode("utf-8"), end="")
    elif report.parity is not None:
        _print_parity(report.parity, args, f"{args.model}: {framework} vs {args.dst}")
    if report.parity is not None:
        _plot(report.parity, args)
    notes = sys.stderr if args.format == "json" else sys.stdout
    print(report.summary().splitlines()[0], file=notes)
    for path in written:
        print(f"wrote {path}", file=notes)
    return 0 if report.ok else 1


def register(sub) -> None:
    """The ``convert`` verb's arguments."""
    cv = sub.add_parser(
        "convert",
        help="any native model into another framework: trace, build, weights, parity",
    )
    cv.add_argument(
        "--model",
        required=True,
        help="the native model: module:factory or file.py:factory (torch, paddle or flax)",
    )
    cv.add_argument(
        "--model-args",
        default=None,
        help='factory arguments: a JSON object ({"num_classes": 10}) or num_classes=10,...',
    )
    cv.add_argument(
        "--from",
        dest="src",
        default=None,
        choices=FRAMEWORKS,
        help="the model's framework (default: the model's own; checked when given)",
    )
    cv.add_argument("--to", dest="dst", required=True, choices=FRAMEWORKS)
    cv.add_argument(
        "--checkpoint",
        default=None,
        help="weights to load into --model first (its framework's own file, or .safetensors)",
    )
    cv.add_argument(
        "--input",
        type=_csv_ints,
        default=None,
        help="the example input traced and compared, e.g. 1,3,224,224 (the default)",
    )
    cv.add_argument(
        "--spec",
        default=None,
        metavar="SPEC.json",
        help="the model's spec, saved before (a spec.json this command wrote): no trace",
    )
    cv.add_argument("--out", required=True, help="the folder to write: weights, spec.json, report")
    add_parents(cv)
    cv.add_argument("--seed", type=int, default=0, help="seed of the random example input")
    cv.add_argument("--no-parity", action="store_true", help="skip the parity report")
    _verdict_options(cv)
    cv.add_argument("--rows", type=int, default=30, help="table rows shown (first/last/failing)")
    cv.add_argument("--format", default="table", choices=("table", "md", "json"))
    cv.set_defaults(func=cmd_convert)


__all__ = ["cmd_convert", "register"]

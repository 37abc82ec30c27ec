"""``xinit port`` and ``xinit parity``: port a checkpoint and prove it layer by layer, and
compare a model's layers across frameworks."""

from __future__ import annotations

import argparse
import sys

from xinit.backends import FRAMEWORKS
from xinit.errors import ArgumentError

from .common import (
    PARITY_ORDER,
    _csv,
    _csv_ints,
    _print_wide,
    add_parents,
    file_format,
    output_path,
)


def _parity_input(args, model: str, spec=None):
    """The random parity input of ``--input``'s shape; an empty one is refused at once. A
    spec whose first layer is an embedding (GPT-2) gets random token ids instead."""
    import numpy as np

    from xinit import models
    from xinit._parity import check_input
    from xinit.blocks import infer, walk
    from xinit.layers import Layer

    shape = args.input or models.default_input(model)
    if any(n <= 0 for n in shape):
        raise ArgumentError(f"--input {','.join(map(str, shape))}: every size must be at least 1")
    if spec is not None:  # too small for the model: a one-line error naming the layer
        try:
            infer(spec, tuple(shape))
        except ValueError as err:
            raise ArgumentError(f"--input {','.join(map(str, shape))}: {err}") from None
    rng = np.random.default_rng(args.seed)
    first = next((n for _, n in walk(spec) if isinstance(n, Layer)), None) if spec else None
    if first is not None and first.kind == "embedding":
        return check_input(rng.integers(0, first.num_embeddings, shape))
    return check_input(rng.standard_normal(shape))


def _nonfinite_note(state) -> str | None:
    """A warning naming the tensors of ``state`` that hold NaN or Inf, or None."""
    import numpy as np

    bad = []
    for key, value in state.items():
        array = np.asarray(value)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            nan = int(np.isnan(array).sum())
            inf = int(array.size - np.isfinite(array).sum()) - nan
            bad.append(f"{key} ({nan} NaN, {inf} Inf)")
    if not bad:
        return None
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    return f"non-finite weights in {len(bad)} tensor(s): {shown}"


def _print_parity(report, args, title: str) -> None:
    from rich.console import Console

    if args.format == "json":
        import json

        print(json.dumps(report.to_dict(), indent=1))
        return
    if args.format == "md":
        print(report.to_markdown(max_rows=args.rows))
        if report.bn_rows:
            print()
            print(report.to_markdown(bn=True, max_rows=args.rows))
        print()
        print(report.summary())
        return
    tables = [report.table(title, max_rows=args.rows)]
    if report.bn_rows:
        tables.append(report.table("BatchNorm, one training step", bn=True, max_rows=args.rows))
    _print_wide(*tables)
    Console(highlight=False, width=10_000 if not sys.stdout.isatty() else None).print(
        report.summary()
    )


def cmd_port(args) -> int:
    """Port a checkpoint between frameworks from the model's spec, write it atomically, then
    prove it: a layer-by-layer parity report on a random input, and the keys moved."""
    import os

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from xinit import factories, port
    from xinit.checkpoints import CONVENTION, SUFFIXES, load_checkpoint, save_checkpoint

    output_path(args.out, args.parents)  # before any reading: a bad --out fails at once
    spec = factories.load(
        args.model, factories.parse_args(args.model_args), args.checkpoint, args.submodel
    )
    in_format = file_format(args.checkpoint, args.in_format, "--in-format")
    src = args.src or CONVENTION[in_format]
    out_format = file_format(args.out, args.out_format, "--out-format")
    if CONVENTION[out_format] != args.dst:
        fits = [s for s, f in SUFFIXES.items() if CONVENTION[f] == args.dst]
        raise ArgumentError(
            f"{args.out} is a {out_format} file ({CONVENTION[out_format]} names and layout); "
            f"--to {args.dst} writes {', '.join(fits)}"
        )
    strip = args.strip_prefix or None
    pmap: dict[str, str | None] = {}
    for item in args.prefix_map:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ArgumentError(f"--prefix-map takes OLD=NEW (NEW may be empty); got {item!r}")
        pmap[old] = new
    pmap.update({prefix: None for prefix in args.drop_prefix})
    pmap = pmap or None
    from xinit._port import _paddleocr_path

    args.checkpoint, ocr_notes = _paddleocr_path(args.checkpoint)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"no checkpoint file {args.checkpoint!r}")
    x = None  # the parity input, refused before anything is written
    if not args.no_parity and (factories.is_spec(spec) or args.source_model is not None):
        if args.input is None and not factories.is_spec(spec):
            raise ArgumentError(
                "the parity of native models needs --input, e.g. --input 1,3,224,224"
            )
        x = _parity_input(args, args.model, spec if factories.is_spec(spec) else None)
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(f"read {args.checkpoint}", total=1)
        raw = load_checkpoint(
            args.checkpoint, format=in_format, max_bytes=args.max_bytes, unwrap_wrappers=True
        )
        bar.update(task, completed=1)
        _check_prefixes(args, raw, pmap)
        pmap = _paddleocr_map(args, raw, spec, strip, pmap, ocr_notes)
        task = bar.add_task(f"convert {src} -> {args.dst}", total=None)
        ported = port(
            raw,
            spec,
            src=src,
            dst=args.dst,
            strip_prefix=strip,
            prefix_map=pmap,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        task = bar.add_task(f"write {args.out}", total=1)
        save_checkpoint(ported, args.out, format=out_format)
        bar.update(task, completed=1)
    note = _nonfinite_note(raw)
    if note is not None:
        print(f"xinit port: warning: {args.checkpoint}: {note}", file=sys.stderr)
    ok = True
    if args.no_parity:
        pass
    elif not factories.is_spec(spec) and args.source_model is None:
        print("(no --source-model: parity skipped; the port itself was checked key by key)")
    else:
        ok = _port_parity(args, spec, raw, src, strip, pmap, out_format, x)
    ported.report.notes.extend(ocr_notes)
    print(ported.report.summary())
    print(f"wrote {args.out}")
    return 0 if ok else 1


def _paddleocr_map(args, raw, spec, strip, pmap, notes: list[str]):
    """The prefix map with PaddleOCR's distillation ``--submodel`` and MultiHead choices
    (as :func:`xinit.port` makes them), given to the port and to its parity check alike."""
    if args.submodel is None and (strip is not None or pmap is not None):
        return pmap
    from xinit._port import _param_table
    from xinit.checkpoints import paddleocr

    chosen, lines = paddleocr.select(raw, _param_table(spec), args.submodel)
    notes.extend(lines)
    return {**chosen, **(pmap or {})} if chosen else pmap


def _check_prefixes(args, raw, prefix_map) -> None:
    """Refuse a ``--prefix-map`` OLD, ``--drop-prefix`` or ``--strip-prefix`` (tried after
    the map, as :func:`xinit.port` does) that begins no key of the checkpoint: a typo would
    otherwise be ignored. The error lists the keys' prefixes."""
    from xinit._port import PortReport, _rename
    from xinit._port_hints import key_prefixes

    mapped = list(_rename(raw, None, prefix_map, PortReport("", "")).values())
    given = [("--prefix-map", item.partition("=")[0], raw) for item in args.prefix_map]
    given += [("--drop-prefix", p, raw) for p in args.drop_prefix]
    given += [("--strip-prefix", p, mapped) for p in args.strip_prefix if p]
    for option, prefix, keys in given:
        if not any(key.startswith(prefix) for key in keys):
            after = " after --prefix-map/--drop-prefix" if keys is mapped and prefix_map else ""
            raise ArgumentError(
                f"{option} {prefix!r} begins none of the {len(keys)} keys of "
                f"{args.checkpoint}{after}; they begin with {key_prefixes(keys)}"
            )


def _port_parity(args, model, raw, src, strip, pmap, out_format, x) -> bool:
    """After porting: the source checkpoint in the source model (``--source-model``, else
    the spec built in the source framework) against the written file in ``--model``."""
    from xinit import factories, port_parity
    from xinit.checkpoints import load_checkpoint

    source = None
    if args.source_model is not None:
        source = factories.load(args.source_model, factories.parse_args(args.source_model_args))
        if factories.is_spec(source):
            raise ArgumentError(
                f"--source-model {args.source_model} is an xinit spec: name the source "
                "framework's own model (module:factory), or leave it out to compare --model's "
                "builds"
            )
    report = port_parity(
        raw,
        load_checkpoint(args.out, format=out_format),
        model,
        x,
        src=src,
        dst=args.dst,
        source_model=source,
        strip_prefix=strip,
        prefix_map=pmap,
        name_map=args.name_map,
        **_verdict(args),
    )
    what = args.source_model or f"{args.model} ({src})"
    _print_parity(report, args, f"{what}: {args.checkpoint} vs {args.out}")
    _plot(report, args)
    return report.ok


def _verdict(args) -> dict:
    """parity's verdict arguments from ``--rtol``/``--atol``/``--threshold``."""
    given = {"rtol": args.rtol, "atol": args.atol, "threshold": args.threshold}
    return {k: v for k, v in given.items() if v is not None}


def _plot(report, args) -> None:
    if args.plot:
        report.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)


def cmd_parity(args) -> int:
    """Build a zoo model in several backends with the same weights (the first backend's,
    BatchNorm statistics randomised) and compare every layer's output; or compare two or
    more native models, the first lending its weights to the others."""
    from xinit import build, factories, parity, randomize_batchnorm
    from xinit.state import transfer

    model_args = factories.parse_args(args.model_args)
    if len(args.models) > 1:
        return _native_parity(args, model_args)
    spec = factories.load(args.models[0], model_args)
    if not factories.is_spec(spec):
        raise ArgumentError(
            f"{args.models[0]} is a native model: name two or more to compare (the first "
            "lends its weights to the others)"
        )
    backends = _csv(args.backends)
    if len(backends) < 2:
        raise ArgumentError(f"--backends needs two or more backends; got {backends}")
    x = _parity_input(args, args.models[0], spec)  # an empty --input fails before any build
    first = build(spec, backends[0], seed=args.seed, rng=args.rng)
    if args.bn_stats == "random":
        randomize_batchnorm(first, seed=args.seed)
    mods = {backends[0]: first}
    for name in backends[1:]:
        mods[name] = build(spec, name, seed=args.seed, rng="xinit")
        transfer(first, mods[name])
    report = parity(mods, x, train=args.train, **_verdict(args))
    _print_parity(report, args, f"{args.models[0]} parity, input {tuple(x.shape)}")
    _plot(report, args)
    return 0 if report.ok else 1


def _native_parity(args, model_args) -> int:
    """``xinit parity A B ...`` on models xinit did not build: B... get A's weights through
    the name map, then every layer is compared."""
    import numpy as np

    from xinit import factories, parity, randomize_batchnorm
    from xinit.namemap import NameMap
    from xinit.state import transfer

    if args.input is None:
        raise ArgumentError("comparing native models needs --input, e.g. --input 1,3,224,224")
    mods = {}
    for ref in args.models:
        model = factories.load(ref, model_args)
        if factories.is_spec(model):
            raise ArgumentError(
                f"{ref} is an xinit spec: compare specs with one zoo name and --backends"
            )
        mods[ref] = model
    names = NameMap(args.name_map)
    refs = list(mods)
    if args.bn_stats == "random":
        randomize_batchnorm(mods[refs[0]], seed=args.seed)
    for ref in refs[1:]:  # the map sends the first model's paths to the others'
        transfer(mods[refs[0]], mods[ref], name_map=names or None)
    x = np.random.default_rng(args.seed).standard_normal(args.input).astype(np.float32)
    report = parity(mods, x, name_map=names or None, **_verdict(args))
    _print_parity(report, args, f"parity, input {tuple(x.shape)}")
    _plot(report, args)
    return 0 if report.ok else 1


def _verdict_options(p: argparse.ArgumentParser) -> None:
    """The parity verdict's options, the same in ``port`` and ``parity``."""
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a layer passes when its difference is at most this many times the float32 "
        "rounding both sides make there, measured in float64 (default 4)",
    )
    p.add_argument("--rtol", type=float, default=None, help="judge by rtol instead (no float64)")
    p.add_argument("--atol", type=float, default=None, help="judge by atol (+ rtol) instead")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="|diff| and noise vs depth")


def register(sub) -> None:
    """The ``port`` and ``parity`` verbs' arguments."""
    from xinit.checkpoints import FORMATS

    pt = sub.add_parser("port", help="port a checkpoint between frameworks, with a parity report")
    pt.add_argument(
        "checkpoint", help="IN: .pdparams, .pt/.pth, .safetensors, .msgpack (else --in-format)"
    )
    pt.add_argument("out", help="OUT: written atomically in --to's format")
    pt.add_argument(
        "--model",
        required=True,
        help="the model the weights belong to: a zoo name, module:factory or file.py:factory "
        "(a native model's own names then define the keys)",
    )
    pt.add_argument("--model-args", default=None, help="factory arguments, e.g. num_classes=10")
    pt.add_argument(
        "--source-model",
        default=None,
        help="the source framework's own model (module:factory): parity compares it, "
        "loaded with the checkpoint, with --model (a zoo name or a native model)",
    )
    pt.add_argument("--source-model-args", default=None)
    pt.add_argument(
        "--name-map",
        default=None,
        help="JSON file: --source-model's paths -> --model's (parity; as transfer reads it)",
    )
    pt.add_argument(
        "--from",
        dest="src",
        default=None,
        choices=(*FRAMEWORKS, "neutral"),
        help="the checkpoint's convention (default: from its suffix)",
    )
    pt.add_argument("--to", dest="dst", required=True, choices=(*FRAMEWORKS, "neutral"))
    pt.add_argument(
        "--strip-prefix",
        action="append",
        default=[],
        help="e.g. backbone. (repeatable)",
    )
    pt.add_argument(
        "--prefix-map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename keys starting with OLD to start with NEW (may be empty; repeatable)",
    )
    pt.add_argument(
        "--drop-prefix",
        action="append",
        default=[],
        help="drop keys with this prefix (repeatable)",
    )
    pt.add_argument(
        "--submodel",
        default=None,
        help="of a PaddleOCR distillation checkpoint: the model to keep (Student, Teacher...)",
    )
    pt.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="read limit in bytes (default 4x the checkpoint's size; docs/reliability.md)",
    )
    pt.add_argument(
        "--in-format",
        default=None,
        choices=FORMATS,
        help="IN's format, for a suffix that names none (default: from IN's suffix)",
    )
    pt.add_argument(
        "--out-format", default=None, choices=FORMATS, help="default: from OUT's suffix"
    )
    add_parents(pt)
    pt.add_argument("--input", type=_csv_ints, default=None, help="parity input, e.g. 1,3,32,128")
    pt.add_argument("--seed", type=int, default=0, help="seed of the random parity input")
    pt.add_argument("--no-parity", action="store_true", help="skip the parity report")
    _verdict_options(pt)
    pt.add_argument("--rows", type=int, default=30, help="table rows shown (first/last/failing)")
    pt.add_argument("--format", default="table", choices=("table", "md", "json"))
    pt.set_defaults(func=cmd_port)

    pa = sub.add_parser("parity", help="layer-by-layer output parity of a model across backends")
    pa.add_argument(
        "models",
        nargs="+",
        help="a zoo model (built in each of --backends), or two or more models to compare: "
        "module:factory or file.py:factory (native models, any frameworks; the first is the "
        "reference and lends its weights to the others)",
    )
    pa.add_argument("--model-args", default=None, help="factory arguments, e.g. num_classes=10")
    pa.add_argument(
        "--name-map",
        default=None,
        help="JSON file: the first model's paths -> the others' (as transfer reads it)",
    )
    pa.add_argument("--backends", default=",".join(PARITY_ORDER), help="the first is the reference")
    pa.add_argument("--input", type=_csv_ints, default=None, help="e.g. 1,3,64,64")
    pa.add_argument("--seed", type=int, default=0)
    pa.add_argument("--rng", default="native", choices=("native", "xinit"))
    _verdict_options(pa)
    pa.add_argument(
        "--bn-stats",
        default="random",
        choices=("random", "init"),
        help="randomise BatchNorm affine and running statistics first (default)",
    )
    pa.add_argument("--train", action="store_true", help="add the BatchNorm training-step check")
    pa.add_argument("--rows", type=int, default=None, help="table rows shown (default all)")
    pa.add_argument("--format", default="table", choices=("table", "md", "json"))
    pa.set_defaults(func=cmd_parity)

"""The ``xinit`` command: the library's verbs on the terminal.

Each verb is one ``cmd_<verb>(args)`` function registered in ``_parser``; frameworks are
imported only by the verb that needs them, so ``xinit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from xinit.backends import FRAMEWORKS

# The zoo's reference framework first (PaddleOCR's ResNet45 comes from Paddle), then the rest.
PARITY_ORDER = ("paddle", *(f for f in FRAMEWORKS if f != "paddle"))


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from None


def _plain(text: str) -> str:
    """Docstring text for the terminal: reST markup (````x````, ``:func:`x```) removed."""
    import re

    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _print_wide(*renderables, width: int | None = None) -> None:
    """Print rich tables; when stdout is not a terminal (a pipe, a file, CI), at their
    natural width, so rows are not wrapped or cut at rich's default of 80 columns."""
    from rich.console import Console
    from rich.measure import Measurement

    if width is None and not sys.stdout.isatty():
        probe = Console(width=10_000)
        sizes = [Measurement.get(probe, probe.options, r).maximum for r in renderables]
        width = max([80, *sizes])
    console = Console(width=width, highlight=False)
    for renderable in renderables:
        console.print(renderable)


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def cmd_demo(args) -> int:
    """The README's demo: the three uses of xinit, in every installed backend."""
    from rich.console import Console

    from xinit.backends import available

    console = Console()
    backends = available()
    console.print(f"xinit demo: backends installed: {', '.join(backends) or 'none'}\n")
    parser = _parser()

    console.rule("1. One initializer, identical statistics in every framework")
    code = cmd_stats(
        parser.parse_args(
            ["stats", "--init", "KaimingNormal(mode='fan_out')", "--shape", "256,128,3,3"]
            + ["--role", "conv", "--backends", ",".join(backends)]
        )
    )
    if len(backends) >= 2:
        console.rule("2. PaddleOCR's ResNet45, built once, same weights everywhere, per layer")
        order = [b for b in PARITY_ORDER if b in backends]
        code |= cmd_parity(
            parser.parse_args(["parity", "resnet45", "--backends", ",".join(order), "--rows", "8"])
        )
    console.rule("3. What each framework does by default")
    code |= cmd_defaults(
        parser.parse_args(
            ["defaults", "--layer", "conv2d,linear", "--frameworks", ",".join(backends)]
        )
    )
    console.print(
        "\nMore: xinit summary resnet18 | xinit port --model resnet45 --from paddle --to torch "
        "IN.pdparams OUT.pt | xinit init resnet50 --policy torchvision_resnet --out w.safetensors"
    )
    return code


def cmd_stats(args) -> int:
    """Measured mean/std of one initializer in each backend next to the analytic values.

    ``--init`` is parsed, never evaluated: it must be a name from ``xinit.init`` (optionally
    called, ``TruncatedNormal.in_stds(...)`` included) with literal arguments only.
    """
    import ast
    import json
    import logging
    import math
    import os
    import warnings

    import numpy as np

    from xinit import initializers
    from xinit.backends import available, get_backend
    from xinit.distributions import (
        ConstantDist,
        DiracDist,
        EyeDist,
        NormalDist,
        TruncNormalDist,
        UniformDist,
        construct,
    )
    from xinit.fans import compute_fans
    from xinit.sampling import sample

    names = sorted(
        n
        for n in initializers.__all__
        if isinstance(getattr(initializers, n), type)
        and issubclass(getattr(initializers, n), initializers.Initializer)
        and n != "Initializer"
    )
    methods = {("TruncatedNormal", "in_stds")}

    def parse(text: str):
        src = text.strip()
        for prefix in ("xinit.init.", "init."):
            src = src.removeprefix(prefix)
        try:
            node = ast.parse(src, mode="eval").body
        except SyntaxError as err:
            raise ValueError(
                f"--init {text!r} is not an initializer expression: {err.msg}"
            ) from None
        call = node if isinstance(node, ast.Call) else ast.Call(func=node, args=[], keywords=[])
        func = call.func
        if isinstance(func, ast.Name) and func.id in names:
            target = getattr(initializers, func.id)
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and (func.value.id, func.attr) in methods
            and isinstance(node, ast.Call)
        ):
            target = getattr(getattr(initializers, func.value.id), func.attr)
        else:
            raise ValueError(
                f"--init {text!r}: expected one of {', '.join(names)} (or "
                "TruncatedNormal.in_stds), optionally called with literal arguments"
            )
        try:
            pos = [ast.literal_eval(a) for a in call.args]
            kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg is not None}
        except ValueError:
            raise ValueError(
                f"--init {text!r}: arguments must be literals (numbers, strings)"
            ) from None
        if any(k.arg is None for k in call.keywords) or any(
            isinstance(a, ast.Starred) for a in call.args
        ):
            raise ValueError(f"--init {text!r}: * and ** arguments are not accepted")
        try:
            return target(*pos, **kw)
        except TypeError as err:
            raise ValueError(f"--init {text!r}: {err}") from None

    init = parse(args.init)
    shape = tuple(int(s) for s in args.shape)
    role = args.role
    dist = init.resolve(shape, role)  # bad shapes and roles fail here, before any framework
    from xinit.memory import check_allocation

    check_allocation(3 * 4 * math.prod(shape), f"stats on a {tuple(shape)} tensor")
    backends = _csv(args.backends) if isinstance(args.backends, str) else list(args.backends)
    devices = _csv(args.device) if isinstance(args.device, str) else list(args.device)

    # the analytic reference: the law's moments, or the exact values of a fixed construction
    if isinstance(dist, (ConstantDist, NormalDist, UniformDist, TruncNormalDist)):
        mean_a, std_a = dist.mean, dist.std
    elif isinstance(dist, (DiracDist, EyeDist)):
        exact = construct(dist, shape).astype(np.float64)
        mean_a, std_a = float(exact.mean()), float(exact.std(ddof=1))
    else:  # orthogonal: no element-wise law
        mean_a = std_a = float("nan")
    ks = None
    if isinstance(dist, (NormalDist, UniformDist, TruncNormalDist)):
        try:
            from scipy import stats as ks
        except ImportError:
            ks = None

    try:
        fans = compute_fans(shape, role)
        fan_text = f"fan_in={fans.fan_in}, fan_out={fans.fan_out}"
    except ValueError:
        fan_text = "no fans (1-d)"
    rows, notes = [], []
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" chatter
    warnings.filterwarnings("ignore", message="No ccache found")  # paddle's import-time notice
    installed = set(available())
    for name in [b for b in backends if b not in FRAMEWORKS] + [
        d for d in devices if d not in ("cpu", "gpu")
    ]:
        if name in devices:
            raise ValueError(f"--device {name!r}: accepted devices are 'cpu' and 'gpu'")
        get_backend(name)  # raises: unknown backend, naming the accepted ones
    for name in backends:
        if name not in installed:
            notes.append(f"{name}: skipped, not installed (pip install 'xinit[{name}]')")
            continue
        adapter = get_backend(name)
        for device in devices:
            if device not in adapter.devices():
                seen = ", ".join(adapter.devices())
                notes.append(f"{name}: skipped on {device} (it sees {seen})")
                continue
            x = sample(
                init, shape, role=role, backend=name, seed=args.seed, device=device, rng=args.rng
            )
            v = x.astype(np.float64).ravel()
            row = {
                "backend": name,
                "device": device,
                "rng": args.rng,
                "n": int(v.size),
                "mean": float(v.mean()),
                "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                "analytic_mean": mean_a,
                "analytic_std": std_a,
            }
            row["std_ratio"] = row["std"] / std_a if std_a > 0 else float("nan")
            row["ks_p"] = (
                float(ks.kstest(v, dist.cdf, method="asymp").pvalue) if ks is not None else None
            )
            rows.append(row)
    title = f"{init} on a {role} weight {shape} ({fan_text})"
    law = f"analytic law: {dist.describe()}"
    if args.format == "json":
        clean = lambda f: None if isinstance(f, float) and not math.isfinite(f) else f  # noqa: E731
        out = {
            "init": str(init),
            "shape": list(shape),
            "role": role,
            "distribution": dist.describe(),
            "analytic": {"mean": clean(mean_a), "std": clean(std_a)},
            "seed": args.seed,
            "rows": [{k: clean(v) for k, v in r.items()} for r in rows],
            "notes": notes,
        }
        print(json.dumps(out, indent=1))
        return 0 if rows else 1

    def fmt(key, value):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        if key == "n":
            return f"{value:,}"
        if key in ("mean", "analytic_mean"):
            return "0" if value == 0 else f"{value:+.3e}"
        if key in ("std", "analytic_std"):
            return f"{value:.5g}"
        if key == "std_ratio":
            return f"{value:.4f}"
        if key == "ks_p":
            return f"{value:.3f}" if value >= 1e-3 else f"{value:.1e}"
        return str(value)

    cols = [
        ("backend", "backend"),
        ("device", "device"),
        ("rng", "rng"),
        ("n", "n"),
        ("mean", "mean"),
        ("std", "std"),
        ("analytic_mean", "analytic mean"),
        ("analytic_std", "analytic std"),
        ("std_ratio", "std ratio"),
        ("ks_p", "KS p"),
    ]
    if args.format == "md":
        print(f"**{title}**, {law}\n")
        print("| " + " | ".join(h for _, h in cols) + " |")
        align = ("---" if k in ("backend", "device", "rng") else "---:" for k, _ in cols)
        print("|" + "|".join(align) + "|")
        for r in rows:
            print("| " + " | ".join(fmt(k, r[k]) for k, _ in cols) + " |")
        for note in notes:
            print(f"\n_{note}_")
        return 0 if rows else 1

    from rich.console import Console
    from rich.table import Table

    table = Table()
    for key, head in cols:
        table.add_column(head, justify="left" if key in ("backend", "device", "rng") else "right")
    for r in rows:
        table.add_row(*(fmt(k, r[k]) for k, _ in cols))
    caption = [f"seed {args.seed}; std ratio = measured / analytic std"]
    if ks is not None:
        caption.append("KS p: one-sample Kolmogorov-Smirnov test against the analytic CDF")
    table.caption = "; ".join(caption)
    table.caption_justify = "left"
    width = None if os.isatty(1) else 140  # piped (README, CI logs): no wrapping at 80 columns
    console = Console(width=width, highlight=False)
    console.print(title)
    console.print(law)
    console.print(table)
    for note in notes:
        console.print(f"[dim]note: {note}[/dim]")
    return 0 if rows else 1


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

    frameworks = tuple(_csv(args.frameworks))
    for fw in frameworks:
        defaults.check_framework(fw)
    if args.reference is not None and args.reference not in frameworks:
        raise ValueError(f"--reference {args.reference!r} is not one of --frameworks {frameworks}")
    if args.conventions:
        items = defaults.conventions()
        if args.format == "json":
            print(json.dumps([c.record() for c in items], indent=1))
        elif args.format == "md":
            print(defaults.conventions_markdown(items), end="")
        else:
            _print_wide(defaults.conventions_rich(items), width=args.width)
        return 0
    layers = [_defaults_dims(defaults, layer, args) for layer in _csv(args.layer)]
    if args.plot and layers[0].block_class:  # refused before the table, not after it
        raise ValueError(f"--plot draws one layer's parameter; {layers[0].layer} is a block")
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


def _defaults_dims(defaults, layer: str, args):
    """The dims of one ``--layer`` name: a layer with one feature count (norms, attention)
    takes ``--out`` when given, else ``--in``; a block (transformer layer) takes d_model =
    ``--in`` and the feed-forward width ``--out`` (default 4·d_model); others take ``--out``
    (default 128)."""
    out = args.out_features
    if out is None and not defaults.one_feature_count(layer) and not defaults.is_block(layer):
        out = 128
    kernel = args.kernel[0] if len(args.kernel) == 1 else args.kernel
    return defaults.dims(layer, args.in_features, out, kernel, args.groups, args.heads)


def _output_file(text: str, default_name: str) -> str:
    """``--out``: a name ending in a slash is a folder (made if missing) to write
    ``default_name`` in; an existing folder named without the slash is refused, since the
    user may have meant a file of that name."""
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
    """Build a zoo model under a preset policy and write its initial weights (neutral names
    and layout, safetensors), then print the per-parameter report."""
    import json
    import warnings

    import numpy as np

    from xinit import build, models, presets, state_dict
    from xinit.blocks import param_specs
    from xinit.checkpoints import atomic_write, check_destination, safetensors_bytes
    from xinit.distributions import construct
    from xinit.policy import Policy, PolicyWarning

    spec = models.get(args.model)
    out = check_destination(_output_file(args.out, f"{args.model}.safetensors"))
    policy = presets.get(args.policy) if args.policy != "none" else Policy(name="none")
    report = policy.report(spec, strict=args.strict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PolicyWarning)  # already raised by report()
        module = build(spec, args.backend, seed=args.seed, rng=args.rng, policy=policy)
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
        "backend": args.backend,
        "seed": str(args.seed),
        "rng": args.rng,
    }
    atomic_write(out, lambda f: f.write(safetensors_bytes(tensors, meta)))
    values = sum(int(t.size) for t in tensors.values())
    done = f"xinit init: wrote {out} ({len(tensors)} tensors, {values:,} values)"
    if args.format == "json":
        print(json.dumps({"file": str(out), "meta": meta, "report": report.records()}, indent=1))
    else:
        title = f"{args.model} x {args.policy} ({args.backend}, seed {args.seed}, rng {args.rng})"
        tables = [report.rules_table(f"policy {args.policy}")] if policy.rules else []
        _print_wide(*tables, report.table(title), width=args.width)
        print(done)
    return 0


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
        raise ValueError(f"--input {','.join(map(str, shape))}: every size must be at least 1")
    if spec is not None:  # too small for the model: a one-line error naming the layer
        try:
            infer(spec, tuple(shape))
        except ValueError as err:
            raise ValueError(f"--input {','.join(map(str, shape))}: {err}") from None
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
    from xinit.checkpoints import (
        CONVENTION,
        SUFFIXES,
        check_destination,
        detect_format,
        load_checkpoint,
        save_checkpoint,
    )

    check_destination(args.out)  # before any reading: a bad --out fails at once
    spec = factories.load(args.model, factories.parse_args(args.model_args))
    src = args.src or CONVENTION[detect_format(args.checkpoint)]
    out_format = detect_format(args.out, args.out_format)
    if CONVENTION[out_format] != args.dst:
        fits = [s for s, f in SUFFIXES.items() if CONVENTION[f] == args.dst]
        raise ValueError(
            f"{args.out} is a {out_format} file ({CONVENTION[out_format]} names and layout); "
            f"--to {args.dst} writes {', '.join(fits)}"
        )
    strip = args.strip_prefix or None
    pmap: dict[str, str | None] = {}
    for item in args.prefix_map:
        old, sep, new = item.partition("=")
        if not sep or not old:
            raise ValueError(f"--prefix-map takes OLD=NEW (NEW may be empty); got {item!r}")
        pmap[old] = new
    pmap.update({prefix: None for prefix in args.drop_prefix})
    pmap = pmap or None
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"no checkpoint file {args.checkpoint!r}")
    x = None  # the parity input, refused before anything is written
    if not args.no_parity and (factories.is_spec(spec) or args.source_model is not None):
        if args.input is None and not factories.is_spec(spec):
            raise ValueError("the parity of native models needs --input, e.g. --input 1,3,224,224")
        x = _parity_input(args, args.model, spec if factories.is_spec(spec) else None)
    err = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(f"read {args.checkpoint}", total=1)
        raw = load_checkpoint(args.checkpoint, max_bytes=args.max_bytes, unwrap_wrappers=True)
        bar.update(task, completed=1)
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
    print(ported.report.summary())
    print(f"wrote {args.out}")
    return 0 if ok else 1


def _port_parity(args, model, raw, src, strip, pmap, out_format, x) -> bool:
    """After porting: the source checkpoint in the source model (``--source-model``, else
    the spec built in the source framework) against the written file in ``--model``."""
    from xinit import factories, port_parity
    from xinit.checkpoints import load_checkpoint

    source = None
    if args.source_model is not None:
        source = factories.load(args.source_model, factories.parse_args(args.source_model_args))
        if factories.is_spec(source):
            raise ValueError(
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
        raise ValueError(
            f"{args.models[0]} is a native model: name two or more to compare (the first "
            "lends its weights to the others)"
        )
    backends = _csv(args.backends)
    if len(backends) < 2:
        raise ValueError(f"--backends needs two or more backends; got {backends}")
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
        raise ValueError("comparing native models needs --input, e.g. --input 1,3,224,224")
    mods = {}
    for ref in args.models:
        model = factories.load(ref, model_args)
        if factories.is_spec(model):
            raise ValueError(
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


def cmd_diagnose(args) -> int:
    """Per-layer activation and gradient std at initialisation, per backend and policy."""
    from xinit import models
    from xinit._diagnose import diagnose

    spec = models.get(args.model)
    result = diagnose(
        spec,
        args.input,
        backends=_csv(args.backends),
        policies=_csv(args.policies),
        seed=args.seed,
        rng=args.rng,
    )
    if args.format == "json":
        print(result.to_json())
    elif args.format == "md":
        print(result.to_markdown())
    else:
        from rich.console import Console

        Console(width=max(160, 40 + 24 * len(result.runs))).print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


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


def _parser() -> argparse.ArgumentParser:
    from xinit.checkpoints import FORMATS

    p = argparse.ArgumentParser(prog="xinit", description=_plain(__doc__.splitlines()[0]))
    sub = p.add_subparsers(dest="verb", required=True)

    d = sub.add_parser("demo", help="a short tour in every installed backend")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("stats", help="measured statistics of one initializer per backend")
    s.add_argument(
        "--init", default="KaimingNormal()", help="e.g. \"KaimingNormal(mode='fan_out')\""
    )
    s.add_argument("--shape", type=_csv_ints, default=(256, 128, 3, 3))
    s.add_argument("--role", default="conv")
    s.add_argument("--backends", default=",".join(FRAMEWORKS))
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
        help="C_out / out / dim (default 128); norms and attention: their feature count (--in "
        "when not given); transformer layers: dim_feedforward (default 4·--in)",
    )
    f.add_argument("--kernel", type=_csv_ints, default=(3,), help="e.g. 3 or 3,5")
    f.add_argument("--groups", type=int, default=1)
    f.add_argument(
        "--heads", type=int, default=8, help="attention heads, transformer nhead (default 8)"
    )
    f.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    f.add_argument("--reference", default="torch", help="std ratios relative to this framework")
    f.add_argument("--format", default="table", choices=("table", "md", "json"))
    f.add_argument("--plot", default=None, metavar="FILE.png", help="histograms of real draws")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--conventions", action="store_true", help="BN/LN/pooling/layout/RNG table")
    f.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)
    f.set_defaults(func=cmd_defaults)
    i = sub.add_parser("init", help="initial weights of a zoo model under a preset policy")
    i.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    i.add_argument("--policy", default="none", help="a preset (xinit.presets) or 'none'")
    i.add_argument("--backend", default=FRAMEWORKS[0], choices=FRAMEWORKS)
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--rng", default="native", choices=("native", "xinit"))
    i.add_argument("--out", required=True, metavar="FILE.safetensors")
    i.add_argument("--strict", action="store_true", help="fail on parameters no rule sets")
    i.add_argument("--format", default="table", choices=("table", "json"))
    i.add_argument("--width", type=int, default=None, help=argparse.SUPPRESS)
    i.set_defaults(func=cmd_init)
    pt = sub.add_parser("port", help="port a checkpoint between frameworks, with a parity report")
    pt.add_argument("checkpoint", help="IN: .pdparams, .pt/.pth, .safetensors or .msgpack")
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
        "--strip-prefix", action="append", default=[], help="e.g. backbone. (repeatable)"
    )
    pt.add_argument(
        "--prefix-map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="rename keys starting with OLD to start with NEW (may be empty; repeatable)",
    )
    pt.add_argument(
        "--drop-prefix", action="append", default=[], help="drop keys with this prefix (repeatable)"
    )
    pt.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="read limit in bytes (default 4x the checkpoint's size; docs/reliability.md)",
    )
    pt.add_argument("--out-format", default=None, choices=FORMATS)
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

    dg = sub.add_parser("diagnose", help="per-layer signal at initialisation, per policy")
    dg.add_argument("model", help="a zoo model: lenet, resnet18, ..., resnet45")
    dg.add_argument("--backends", default=",".join(FRAMEWORKS))
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
    return p


# Failures a user can cause and fix (bad input, a file that cannot be read or written, a
# missing framework, too little memory): one line on stderr and exit code 2, no traceback.
EXPECTED_FAILURES = (ValueError, TypeError, ImportError, KeyError, OSError, MemoryError)


def error_message(err: BaseException) -> str:
    """One line saying what failed, where and why (an OSError's file name and reason)."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename is not None else ""
        extra = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{where}{err.strerror}{extra}"
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])
    if isinstance(err, MemoryError):
        return f"out of memory: {err}" if str(err) else "out of memory"
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EXPECTED_FAILURES as err:
        print(f"xinit {args.verb}: error: {error_message(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

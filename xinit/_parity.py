"""Numerical parity between modules of any backends: layer by layer, like PaDiff.

``xinit.parity([paddle_model, torch_model, flax_model], x)`` runs every module in eval mode
on the same channel-first input, records every layer's output (``trace``), runs each module
once more in float64, and compares each pair layer by layer in execution order:

* **max abs diff**: ``max |a - b|`` (and ``max rel``, that over ``max |a|``);
* **noise**: the float32 rounding both sides make at that layer, each side's float32 output
  against its own float64 run (``max |a32 - a64| + max |b32 - b64|``);
* **pass**: ``max abs <= THRESHOLD x noise`` (the ratio); with an explicit ``rtol``/``atol``,
  ``max abs <= atol + rtol * max |a|`` instead.

The report's ``first_divergent`` is the first layer, in execution order, where some pair
fails: the place to look. ``train=True`` adds the BatchNorm training-mode comparison
(:mod:`xinit._parity_bn`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._parity_base import (
    THRESHOLD,
    ULP,
    Diff,
    check_input,
    compare,
    labelled,
    rounding,
    rtol_of,
    shape_of,
    widened,
)
from ._parity_bn import bn_parity, calibrate_batchnorm, randomize_batchnorm
from ._parity_report import HERE, ParityReport, ParityRow
from .blocks import walk
from .layers import Layer


def parity(
    modules: Sequence[Any] | Mapping[str, Any],
    x: np.ndarray,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    threshold: float = THRESHOLD,
    train: bool = False,
    name_map: Any = None,
) -> ParityReport:
    """Compare two or more modules of any frameworks layer by layer on channel-first input
    ``x``, in eval mode; every pair is compared.

    The verdict: at each layer a pair passes when its max difference is at most
    ``threshold`` times the float32 rounding both sides make there, measured by running
    each module once more in float64. An explicit ``rtol`` and/or ``atol`` judges by
    ``max |a - b| <= atol + rtol * max |a|`` instead (no float64 run).

    Modules built by xinit from one spec are matched by the spec's paths, in execution
    order. Any other modules (torchvision's, ``paddle.vision``'s, hand-written ones) are
    traced with their framework's own hooks (``nnx.capture`` in Flax) and matched by path,
    the first module's paths being the reference: ``name_map`` renames the others' paths
    into it, read as ``transfer`` reads it (see :class:`~xinit.namemap.NameMap`). Layers
    only some modules have are listed in ``report.missing`` (holding parameters) and
    ``report.unmatched`` (parameter-free: a ``ReLU`` module where the other framework calls
    a function), not compared.

    ``train=True`` (xinit-built modules) adds the BatchNorm training-step comparison
    (``report.bn_rows``, judged with ``rtol``, default each framework's ``PARITY_RTOL``); the
    modules' states are restored afterwards. ``modules`` may be a dict ``{label: module}``.
    """
    from xinit.backends import backend_of

    labels, mods = labelled(modules)
    x = check_input(x)
    traces = {label: backend_of(m).trace(m, x) for label, m in zip(labels, mods)}
    pairs = list(itertools.combinations(labels, 2))
    explicit = rtol is not None or atol is not None
    rtols = {f"{a} vs {b}": (float(rtol or 0.0) if explicit else None) for a, b in pairs}
    specs = [getattr(m, "_xinit_spec", None) for m in mods]
    built = all(s is not None for s in specs)
    if built and name_map is None and any(s != specs[0] for s in specs):
        raise ValueError(
            "parity: the modules were built from different specs (name_map= matches layers "
            "of different models by path)"
        )
    unmatched: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    if built and name_map is None:
        spec = specs[0]
        kinds = {path: getattr(node, "kind", "") for path, node in walk(spec)}
        order = execution_order(spec)
        paths = [p for p in order if any(p in t for t in traces.values())]
        inner = _inside_layers(spec)
        extra = (p for t in traces.values() for p in t if p not in set(order) and not inner(p))
        paths += list(dict.fromkeys(extra))
        rename = None
    else:
        if train:
            raise ValueError("parity(train=True) compares BatchNorm steps of xinit-built modules")
        paths, kinds, unmatched, missing, rename = _native_paths(labels, mods, traces, name_map)
    noise = {} if explicit else _rounding(labels, mods, x, traces, rename)
    rows = []
    for path in paths:
        diffs = {}
        for a, b in pairs:
            label = f"{a} vs {b}"
            if path not in traces[a] or path not in traces[b]:
                lacking = a if path not in traces[a] else b
                diffs[label] = Diff(math.inf, math.inf, False, note=f"no output in {lacking}")
                continue
            pair_noise = None
            if not explicit:
                pair_noise = noise[a].get(path, 0.0) + noise[b].get(path, 0.0)
            diffs[label] = compare(
                traces[a][path],
                traces[b][path],
                atol=atol if explicit else None,
                rtol=rtols[label],
                noise=pair_noise,
                threshold=threshold,
            )
        out = next((t[path] for t in traces.values() if path in t), np.zeros(0))
        rows.append(ParityRow(path, kinds.get(path, "?"), tuple(np.shape(out)), diffs))
    report = ParityReport(
        labels, pairs, rtols, atol, rows, input_shape=shape_of(x), threshold=threshold
    )
    report.unmatched, report.missing = unmatched, missing
    if train:
        bn = bn_parity(dict(zip(labels, mods)), x, atol=atol, rtol=rtol)
        report.bn_rows, report.bn_stats = bn.bn_rows, bn.bn_stats
    return report


def _rounding(labels, mods, x, traces, rename) -> dict[str, dict[str, float]]:
    """label -> path -> the float32 rounding of that module at that layer: its traced
    float32 output against its own float64 run (:meth:`Backend.float64`). A module that
    cannot run in float64 (weights of another dtype) is taken to round as the others do."""
    from xinit.backends import backend_of

    wide = widened(x)
    noise: dict[str, dict[str, float]] = {}
    for i, (label, module) in enumerate(zip(labels, mods)):
        adapter = backend_of(module)
        try:
            with adapter.float64(module):
                trace64 = adapter.trace(module, wide)
        except NotImplementedError:
            continue
        if i and rename is not None:
            trace64 = rename(trace64)
        noise[label] = {
            path: rounding(out, trace64[path])
            for path, out in traces[label].items()
            if path in trace64
        }
    if not noise:
        raise ValueError("parity: no module runs in float64; give rtol= (and atol=)")
    for label in labels:
        if label not in noise:
            paths = {p for n in noise.values() for p in n}
            noise[label] = {p: max(n.get(p, 0.0) for n in noise.values()) for p in paths}
    return noise


def _inside_layers(spec):
    """Whether a traced path is a submodule inside one layer of ``spec`` (Paddle's attention
    calls its ``q_proj`` Linear; PyTorch's does not): framework detail, not a spec node."""
    layers = [path for path, node in walk(spec) if isinstance(node, Layer)]
    prefixes = tuple(f"{path}." for path in layers if path)

    def inner(path: str) -> bool:
        return ("" in layers and path != "") or path.startswith(prefixes)

    return inner


def _native_paths(labels, mods, traces, name_map):
    """Rows for models xinit did not build: the reference's traced paths in its order, each
    other model's layers renamed to the reference's (in place in ``traces``) where
    ``name_map`` sends the reference's paths, as :func:`xinit.transfer` reads it. Returns
    (paths to compare, path -> kind, label -> parameter-free paths only that model has,
    label -> layers with parameters only that model has, the renaming of a trace)."""
    from xinit.backends import backend_of

    from .namemap import NameMap

    back = _layer_map(mods[0], traces[labels[0]], NameMap(name_map))

    def rename(trace: dict) -> dict:
        return {back.get(path, path): value for path, value in trace.items()}

    kinds: dict[str, str] = {}
    holders: set[str] = set()  # paths of layers that hold parameters, in any model
    for i, (label, module) in enumerate(zip(labels, mods)):
        adapter = backend_of(module)
        if i:
            traces[label] = rename(traces[label])
        for path, sub in adapter.named_layers(module):
            new = back.get(path, path) if i else path
            kinds.setdefault(new, adapter.native_kind(sub) or type(sub).__name__)
            if adapter.own_parameters(sub):
                holders.add(new)
    reference = traces[labels[0]]
    paths = [p for p in reference if all(p in traces[label] for label in labels)]
    compared = set(paths)
    missing = {
        label: [p for p in traces[label] if p in holders and p not in compared] for label in labels
    }
    unmatched = {
        label: [p for p in traces[label] if p not in compared and p not in holders]
        for label in labels
    }
    return paths, kinds, unmatched, missing, rename


def _layer_map(reference, paths, names) -> dict[str, str]:
    """{another model's layer path: the reference's} where the name map sends the
    reference's parameter paths (``layer.weight`` -> ``other.weight``: ``layer`` is
    ``other``); a parameter-free layer's path is renamed as it is."""
    if not names:
        return {}
    from .native import layers_of, param_table

    out: dict[str, str] = {}
    for path, ps in param_table(layers_of(reference)).items():
        layer = ps.owner(path)
        leaf = path[len(layer) + 1 :] if layer else path
        new = names(path)
        if new == leaf or (new is not None and new.endswith(f".{leaf}")):
            out.setdefault(new[: -len(leaf) - 1] if new != leaf else "", layer)
    for path in paths:
        if path not in out.values():
            new = names(path)
            if new is not None:
                out.setdefault(new, path)
    return out


def execution_order(spec) -> list[str]:
    """Every node's path in the order of its last call in a forward pass (children before
    their parent), the order ``trace`` outputs relate to: a shared child (a repeated step,
    a :class:`~xinit.graph.Reuse` node's target) reports its last call.
    """
    from .blocks import Residual, Sequential, join
    from .graph import Graph

    calls: list[str] = []

    def visit(node, path):
        if isinstance(node, Sequential):
            for name, child in node.steps:
                visit(child, join(path, name))
        elif isinstance(node, Residual):
            for name, child in node.body.steps:
                visit(child, join(path, name))
            if node.shortcut is not None:
                visit(node.shortcut, join(path, node.shortcut_name))
            if node.activation is not None:
                visit(node.activation, join(path, node.activation_name))
        elif isinstance(node, Graph):
            for name in node.order:
                callee, child = node.called(name)  # a Reuse node: its target, once more
                visit(child, join(path, callee))
        calls.append(path)

    visit(spec, "")
    last = {p: i for i, p in enumerate(calls)}
    return sorted(last, key=last.__getitem__)


__all__ = [
    "parity",
    "bn_parity",
    "compare",
    "check_input",
    "calibrate_batchnorm",
    "randomize_batchnorm",
    "ParityReport",
    "ParityRow",
    "Diff",
    "HERE",
    "THRESHOLD",
    "ULP",
    "rtol_of",
]

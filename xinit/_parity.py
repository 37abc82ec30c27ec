"""Numerical parity between built modules of any backends: layer by layer, like PaDiff.

``xinit.parity([paddle_model, torch_model, flax_model], x)`` runs every module in eval mode
on the same channel-first input, records every layer's output (``trace``), and compares
each pair layer by layer in execution order:

* **max abs diff**: ``max |a - b|``;
* **max rel diff**: ``max |a - b| / max |a|``, ``a`` the pair's first (reference) module;
* **pass**: ``max abs <= atol + rtol * max |a|``.

The report's ``first_divergent`` is the first layer, in execution order, where some pair
fails: the place to look. ``train=True`` adds the BatchNorm training-mode comparison: each
BatchNorm's batch statistics (mean, and the variance its running one takes: unbiased in
PyTorch, biased in Paddle's and Flax's own classes) and its running statistics after one
training step, each framework's momentum convention already translated by the adapters.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .blocks import walk
from .layers import Layer
from .state import load_state_dict, spec_of, state_dict

HERE = "<--- *** HERE ***"


@dataclass(frozen=True)
class Diff:
    max_abs: float
    max_rel: float
    passed: bool
    nonfinite: int = 0  # NaN/Inf values in the reference (matched by the other, or it fails)


@dataclass
class ParityRow:
    """One layer (or, in the BatchNorm section, one statistic of one layer)."""

    path: str
    kind: str
    shape: tuple[int, ...]
    diffs: dict[str, Diff]  # pair label -> diff

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.diffs.values())


@dataclass
class ParityReport:
    labels: list[str]
    pairs: list[tuple[str, str]]
    rtol: dict[str, float]  # pair label -> rtol
    atol: float
    rows: list[ParityRow]
    bn_rows: list[ParityRow] = field(default_factory=list)
    # BatchNorm section only: label -> {"path|statistic": values} (batch_mean, batch_var,
    # momentum, running_mean, running_var after the step)
    bn_stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    # native models: label -> parameter-free submodules only that model has (not compared)
    unmatched: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows) and all(r.passed for r in self.bn_rows)

    @property
    def first_divergent(self) -> ParityRow | None:
        """The first layer, in execution order, where some pair fails (None: all pass)."""
        return next((r for r in self.rows if not r.passed), None)

    @property
    def first_divergent_bn(self) -> ParityRow | None:
        return next((r for r in self.bn_rows if not r.passed), None)

    def worst(self, pair: str | None = None, bn: bool = False) -> float:
        """The largest max-rel diff of ``pair`` (all pairs when None) over the layers."""
        rows = self.bn_rows if bn else self.rows
        values = [d.max_rel for r in rows for label, d in r.diffs.items() if pair in (None, label)]
        return max(values, default=0.0)

    @property
    def nonfinite_rows(self) -> list[ParityRow]:
        """Layers whose reference output holds NaN or Inf (in the BatchNorm section too)."""
        rows = [*self.rows, *self.bn_rows]
        return [r for r in rows if any(d.nonfinite for d in r.diffs.values())]

    def summary(self) -> str:
        lines = []
        for label in self.rtol:
            lines.append(
                f"{label}: worst max rel diff {self.worst(label):.2e} over {len(self.rows)} "
                f"layers (rtol {self.rtol[label]:.0e})"
                + (
                    f"; BatchNorm train step {self.worst(label, bn=True):.2e}"
                    if self.bn_rows
                    else ""
                )
            )
        for label, paths in self.unmatched.items():
            if paths:
                shown = ", ".join(paths[:4]) + (", ..." if len(paths) > 4 else "")
                lines.append(
                    f"{label}: {len(paths)} parameter-free submodule(s) the others lack, "
                    f"not compared: {shown}"
                )
        nonfinite = self.nonfinite_rows
        if nonfinite:
            lines.append(
                f"warning: NaN/Inf in the reference's output at {len(nonfinite)} layer(s), "
                f"first {nonfinite[0].path or '<root>'}: only finite values were compared"
            )
        first = self.first_divergent
        if first is not None:
            bad = ", ".join(k for k, d in first.diffs.items() if not d.passed)
            lines.append(
                f"FAIL: first divergent layer: {first.path or '<root>'} ({first.kind}; {bad})"
            )
        elif self.first_divergent_bn is not None:
            r = self.first_divergent_bn
            lines.append(f"FAIL: first divergent BatchNorm statistic: {r.path} {r.kind}")
        else:
            lines.append("PASS: every layer agrees")
        return "\n".join(lines)

    # ---- rendering ------------------------------------------------------------------------
    def _cells(self, rows, mark_first, max_rows: int | None, with_abs: bool = True):
        shown = rows
        if max_rows is not None and len(rows) > max_rows:
            keep = set(range(max_rows // 2)) | set(
                range(len(rows) - (max_rows - max_rows // 2), len(rows))
            )
            if mark_first is not None:
                keep.add(rows.index(mark_first))
            shown = [r if i in keep else None for i, r in enumerate(rows)]
            # collapse runs of hidden rows into one ellipsis
            collapsed, prev_hidden = [], False
            for r in shown:
                if r is None and prev_hidden:
                    continue
                collapsed.append(r)
                prev_hidden = r is None
            shown = collapsed
        out = []
        for r in shown:
            if r is None:
                out.append(None)
                continue
            cells = [r.path or "<root>", r.kind, "x".join(map(str, r.shape))]
            for label in self.rtol:
                d = r.diffs[label]
                cells += (
                    [f"{d.max_abs:.2e}", f"{d.max_rel:.2e}"] if with_abs else [f"{d.max_rel:.2e}"]
                )
            status = "ok" if r.passed else "FAIL"
            if r is mark_first:
                status += " " + HERE
            out.append(cells + [status])
        return out

    def _header(self, bn: bool, with_abs: bool = True) -> list[str]:
        head = ["layer", "statistic" if bn else "kind", "shape"]
        if len(self.rtol) == 1:  # the pair is in the title / summary
            head += ["max abs", "max rel"] if with_abs else ["max rel"]
        else:
            for label in self.rtol:
                head += [f"{label}: abs", f"{label}: rel"] if with_abs else [f"{label}: rel"]
        return head + ["status"]

    def table(
        self,
        title: str | None = None,
        *,
        bn: bool = False,
        max_rows: int | None = None,
        with_abs: bool | None = None,
    ):
        """A ``rich.table.Table`` of the layers (or, ``bn=True``, the BatchNorm section).

        ``max_rows`` keeps the first and last rows and the first failing one. To fit a
        terminal, several pairs show the max-rel columns only and no shapes (``with_abs=True``
        adds max abs); :meth:`to_markdown` and :meth:`to_dict` always have everything."""
        from rich import box
        from rich.table import Table

        single = len(self.rtol) == 1
        with_abs = single if with_abs is None else with_abs
        rows = self.bn_rows if bn else self.rows
        first = self.first_divergent_bn if bn else self.first_divergent
        if title is None and single:
            title = next(iter(self.rtol))
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        head = [h.replace(" vs ", "/").replace(": ", "\n") for h in self._header(bn, with_abs)]
        keep = [i for i in range(len(head)) if i != 2 or single]  # shapes: single pair only
        widest = max((len(r.path) for r in rows), default=6)
        for i in keep:
            numeric = 3 <= i < len(head) - 1
            t.add_column(
                head[i],
                no_wrap=True,
                min_width=min(max(widest, 6), 40) if i == 0 else (8 if numeric else None),
                justify="right" if numeric else "left",
            )
        for cells in self._cells(rows, first, max_rows, with_abs):
            if cells is None:
                t.add_row("...", *[""] * (len(keep) - 1))
            else:
                style = None if cells[-1] == "ok" else "bold red"
                t.add_row(*[cells[i] for i in keep], style=style)
        return t

    def to_markdown(self, *, bn: bool = False, max_rows: int | None = None) -> str:
        rows = self.bn_rows if bn else self.rows
        first = self.first_divergent_bn if bn else self.first_divergent
        head = self._header(bn)
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cells in self._cells(rows, first, max_rows):
            cells = ["..."] + [""] * (len(head) - 1) if cells is None else cells
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        head = self._header(False)
        body = [
            c if c is not None else ["..."] + [""] * (len(head) - 1)
            for c in self._cells(self.rows, self.first_divergent, None)
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([fmt(head), *map(fmt, body), "", self.summary()])

    def to_dict(self) -> dict[str, Any]:
        def rows(rs):
            return [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "shape": list(r.shape),
                    "passed": r.passed,
                    "diffs": {
                        k: {
                            "max_abs": d.max_abs,
                            "max_rel": d.max_rel,
                            "passed": d.passed,
                            "nonfinite": d.nonfinite,
                        }
                        for k, d in r.diffs.items()
                    },
                }
                for r in rs
            ]

        first = self.first_divergent
        return {
            "labels": self.labels,
            "rtol": self.rtol,
            "atol": self.atol,
            "input_shape": list(self.input_shape),
            "ok": self.ok,
            "first_divergent": None if first is None else first.path,
            "worst": {label: self.worst(label) for label in self.rtol},
            "rows": rows(self.rows),
            "bn_rows": rows(self.bn_rows),
        }


# ---- comparing ---------------------------------------------------------------------------
def compare(a: np.ndarray, b: np.ndarray, *, atol: float, rtol: float) -> Diff:
    """max |a - b|, that over max |a|, and whether max |a - b| <= atol + rtol * max |a|,
    over the finite values. A NaN or Inf of ``b`` not matched by the same value at the same
    place of the reference ``a`` (or the reverse) fails, and so does an output with no
    finite value to compare (all NaN passes nothing)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.size == 0:
        return Diff(math.inf, math.inf, False)
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    nonfinite = int(a.size - np.count_nonzero(finite_a))
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        unmatched = (~finite_a | ~finite_b) & ~(both_nan | (a == b))
    keep = finite_a & finite_b
    if unmatched.any() or not keep.any():
        return Diff(math.inf, math.inf, False, nonfinite)
    diff = float(np.max(np.abs(a[keep] - b[keep])))
    scale = float(np.max(np.abs(a[keep])))
    if scale > 0:
        rel = diff / scale
    else:
        rel = 0.0 if diff == 0 else math.inf
    return Diff(diff, rel, bool(diff <= atol + rtol * scale), nonfinite)


def check_input(x: Any) -> np.ndarray | tuple:
    """The parity input as contiguous float32 (integers, token ids, as int64); an empty one
    (a batch of 0) compares nothing and is refused, as is one holding NaN or Inf. A tuple is
    a graph's several inputs (a decoder's target and memory, masks): each checked, bool
    masks kept bool, -inf allowed (PyTorch's float attention masks)."""
    if isinstance(x, (tuple, list)):
        return tuple(_mask_or_input(a) for a in x)
    x = np.asarray(x)
    x = np.ascontiguousarray(x, dtype=np.int64 if x.dtype.kind in "iu" else np.float32)
    if x.size == 0:
        raise ValueError(
            f"parity needs a non-empty input; got shape {tuple(x.shape)} "
            "(a dimension of 0 leaves nothing to compare)"
        )
    if not np.isfinite(x).all():
        raise ValueError("parity input holds NaN or Inf; outputs would compare nothing")
    return x


def _mask_or_input(a: Any) -> np.ndarray:
    """One of several parity inputs: a bool mask as it is, else float32 as :func:`check_input`
    makes it, where -inf (a float mask's blocked position) is allowed."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return np.ascontiguousarray(a)
    if a.dtype.kind in "iu":  # token ids
        return check_input(a)
    out = np.ascontiguousarray(a, dtype=np.float32)
    check_input(np.where(np.isneginf(out), np.float32(0.0), out))  # empty, NaN, +inf refused
    return out


def _shape_of(x) -> tuple:
    """The input's shape, or the shapes of several inputs."""
    return tuple(tuple(a.shape) for a in x) if isinstance(x, tuple) else tuple(x.shape)


def _labelled(modules) -> tuple[list[str], list[Any]]:
    from xinit.backends import backend_of

    if isinstance(modules, Mapping):
        labels, mods = [str(k) for k in modules], list(modules.values())
    else:
        mods = list(modules)
        names = [backend_of(m).name for m in mods]
        counts: dict[str, int] = {}
        labels = []
        for n in names:
            counts[n] = counts.get(n, 0) + 1
            labels.append(n if names.count(n) == 1 else f"{n}#{counts[n]}")
    if len(mods) < 2:
        raise ValueError("parity needs two or more modules")
    return labels, mods


def _same_spec(mods) -> Any:
    spec = spec_of(mods[0])
    for m in mods[1:]:
        other = spec_of(m)
        if other is not spec and other != spec:
            raise ValueError("parity: the modules were built from different specs")
    return spec


def _rtol_of(a: str, b: str, labels_to_backend: dict[str, str], rtol: float | None) -> float:
    """The pair's rtol: the caller's, else the looser of the two frameworks' own (each
    ``backends/<name>/__init__.py`` states its ``PARITY_RTOL``)."""
    from xinit.backends import info

    if rtol is not None:
        return float(rtol)
    return max(info(labels_to_backend[a]).PARITY_RTOL, info(labels_to_backend[b]).PARITY_RTOL)


def parity(
    modules: Sequence[Any] | Mapping[str, Any],
    x: np.ndarray,
    *,
    atol: float = 0.0,
    rtol: float | None = None,
    train: bool = False,
    name_map: Any = None,
) -> ParityReport:
    """Compare two or more modules of any frameworks layer by layer on channel-first input
    ``x``, in eval mode; every pair is compared.

    Modules built by xinit from one spec are matched by the spec's paths, in execution
    order. Any other modules (torchvision's, ``paddle.vision``'s, hand-written ones) are
    traced with their framework's own hooks (``nnx.capture`` in Flax) and matched by path,
    the first module's paths being the reference: ``name_map`` renames the others' paths
    into it (see :class:`~xinit.namemap.NameMap`). A layer holding parameters that some
    module lacks fails; a parameter-free submodule only some have (a ``ReLU`` module where
    the other framework calls a function) is listed in ``report.unmatched``, not compared.

    ``rtol=None`` uses each pair's looser framework tolerance (1e-5; 1e-4 with Flax).
    ``train=True`` (xinit-built modules) adds the BatchNorm training-step comparison
    (``report.bn_rows``); the modules' states are restored afterwards. ``modules`` may be a
    dict ``{label: module}``.
    """
    from xinit.backends import backend_of

    labels, mods = _labelled(modules)
    x = check_input(x)
    backend = {label: backend_of(m).name for label, m in zip(labels, mods)}
    traces = {label: backend_of(m).trace(m, x) for label, m in zip(labels, mods)}
    pairs = list(itertools.combinations(labels, 2))
    rtols = {f"{a} vs {b}": _rtol_of(a, b, backend, rtol) for a, b in pairs}
    specs = [getattr(m, "_xinit_spec", None) for m in mods]
    built = all(s is not None for s in specs)
    if built and name_map is None and any(s != specs[0] for s in specs):
        raise ValueError(
            "parity: the modules were built from different specs (name_map= matches layers "
            "of different models by path)"
        )
    unmatched: dict[str, list[str]] = {}
    if built and name_map is None:
        spec = specs[0]
        kinds = {path: getattr(node, "kind", "") for path, node in walk(spec)}
        order = execution_order(spec)
        paths = [p for p in order if any(p in t for t in traces.values())]
        inner = _inside_layers(spec)
        extra = (p for t in traces.values() for p in t if p not in set(order) and not inner(p))
        paths += list(dict.fromkeys(extra))
    else:
        if train:
            raise ValueError("parity(train=True) compares BatchNorm steps of xinit-built modules")
        paths, kinds, unmatched = _native_paths(labels, mods, traces, name_map)
    rows = []
    for path in paths:
        diffs = {}
        for a, b in pairs:
            label = f"{a} vs {b}"
            if path not in traces[a] or path not in traces[b]:
                diffs[label] = Diff(math.inf, math.inf, False)
            else:
                diffs[label] = compare(
                    traces[a][path], traces[b][path], atol=atol, rtol=rtols[label]
                )
        out = next((t[path] for t in traces.values() if path in t), np.zeros(0))
        rows.append(ParityRow(path, kinds.get(path, "?"), tuple(np.shape(out)), diffs))
    report = ParityReport(labels, pairs, rtols, atol, rows, input_shape=_shape_of(x))
    report.unmatched = unmatched
    if train:
        bn = bn_parity(dict(zip(labels, mods)), x, atol=atol, rtol=rtol)
        report.bn_rows, report.bn_stats = bn.bn_rows, bn.bn_stats
    return report


def _inside_layers(spec):
    """Whether a traced path is a submodule inside one layer of ``spec`` (Paddle's attention
    calls its ``q_proj`` Linear; PyTorch's does not): framework detail, not a spec node."""
    layers = [path for path, node in walk(spec) if isinstance(node, Layer)]
    prefixes = tuple(f"{path}." for path in layers if path)

    def inner(path: str) -> bool:
        return ("" in layers and path != "") or path.startswith(prefixes)

    return inner


def _native_paths(labels, mods, traces, name_map):
    """Rows for models xinit did not build: the reference's traced paths in its order, the
    others' renamed by ``name_map`` (in place in ``traces``). Returns (paths to compare,
    path -> kind, label -> parameter-free paths only that model has)."""
    from xinit.backends import backend_of

    from .namemap import NameMap

    names = NameMap(name_map)
    kinds: dict[str, str] = {}
    holders: set[str] = set()  # paths of layers that hold parameters, in any model
    for i, (label, module) in enumerate(zip(labels, mods)):
        adapter = backend_of(module)
        rename = names if (i and names) else (lambda p: p)
        if i and names:
            traces[label] = names.rename(traces[label])[0]
        for path, sub in adapter.named_layers(module):
            new = rename(path)
            if new is None:
                continue
            kinds.setdefault(new, adapter.native_kind(sub) or type(sub).__name__)
            if adapter.own_parameters(sub):
                holders.add(new)
    reference = traces[labels[0]]
    everywhere = [p for p in reference if all(p in traces[label] for label in labels)]
    missing = [p for t in traces.values() for p in t if p in holders and p not in everywhere]
    paths = everywhere + list(dict.fromkeys(missing))
    compared = set(paths)
    unmatched = {label: [p for p in traces[label] if p not in compared] for label in labels}
    return paths, kinds, unmatched


def execution_order(spec) -> list[str]:
    """Every node's path in the order of its last call in a forward pass (children before
    their parent), the order ``trace`` outputs relate to: a shared child reports its last call.
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
                visit(node.node(name), join(path, name))
        calls.append(path)

    visit(spec, "")
    last = {p: i for i, p in enumerate(calls)}
    return sorted(last, key=last.__getitem__)


# ---- BatchNorm in training mode ------------------------------------------------------------
def _bn_layers(spec) -> list[tuple[str, Any]]:
    return [(path, node) for path, node in walk(spec) if getattr(node, "kind", "") == "batchnorm"]


def _bn_step(module, x: np.ndarray, bns) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One training step's statistics of every BatchNorm of ``module`` (state restored):
    ``{"path|statistic": array}`` and the train-mode output.

    Three steps on ``x``, from running statistics set to 0, to 1, and as they are. From 0 a
    step leaves ``m * batch``; from 1 it leaves ``(1 - m) + m * batch``; so the difference
    gives the momentum the framework really applied (``momentum``, neutral convention: the
    weight of the new batch), and ``batch / spec momentum`` the batch mean and the variance
    the framework's rule stores. The third step gives the running statistics after one step.
    """
    from xinit.backends import backend_of

    adapter = backend_of(module)
    snap = state_dict(module)

    def step(value: float | None) -> tuple[dict[str, np.ndarray], np.ndarray]:
        start = dict(snap)
        if value is not None:
            for path, _ in bns:
                for leaf in ("running_mean", "running_var"):
                    key = f"{path}.{leaf}"
                    start[key] = np.full_like(snap[key], value)
        load_state_dict(module, start)
        out = adapter.run_train(module, x)
        return state_dict(module), out

    try:
        from_zero, _ = step(0.0)
        from_one, _ = step(1.0)
        after, out = step(None)
    finally:
        load_state_dict(module, snap)
    stats: dict[str, np.ndarray] = {}
    for path, node in bns:
        m = float(node.momentum)
        rm0 = from_zero[f"{path}.running_mean"].astype(np.float64)
        rm1 = from_one[f"{path}.running_mean"].astype(np.float64)
        stats[f"{path}|momentum"] = 1.0 - (rm1 - rm0)
        for leaf, name in (("running_mean", "batch_mean"), ("running_var", "batch_var")):
            value = from_zero[f"{path}.{leaf}"].astype(np.float64)
            stats[f"{path}|{name}"] = value / m if m > 0 else np.full_like(value, np.nan)
        stats[f"{path}|running_mean"] = after[f"{path}.running_mean"]
        stats[f"{path}|running_var"] = after[f"{path}.running_var"]
    return stats, out


def bn_parity(
    modules: Sequence[Any] | Mapping[str, Any],
    x: np.ndarray,
    *,
    atol: float = 0.0,
    rtol: float | None = None,
) -> ParityReport:
    """Compare one training-mode step of every BatchNorm across modules: the momentum each
    framework really applies (neutral convention, after the adapters' translation), the
    batch mean and the batch variance the running one takes (unbiased with PyTorch's rule,
    biased in Paddle's and Flax's own BatchNorms: build with ``BatchNorm(train_stats=
    "torch")`` to compare PyTorch's rule everywhere), the running statistics after the step,
    and the train-mode output. Modules are restored afterwards; ``report.bn_stats`` has the
    values.

    Batch statistics are read through the running ones: from zeroed running statistics one
    step leaves ``momentum * batch value`` (a momentum of 0 makes them unobservable: NaN).
    Training-mode outputs of deep models over small batches amplify upstream rounding (a
    channel with tiny batch variance is divided by it), so a looser ``rtol`` may be needed
    there than in eval mode.
    """
    from xinit.backends import backend_of

    labels, mods = _labelled(modules)
    spec = _same_spec(mods)
    x = check_input(x)
    bns = _bn_layers(spec)
    backend = {label: backend_of(m).name for label, m in zip(labels, mods)}
    results = {label: _bn_step(m, x, bns) for label, m in zip(labels, mods)}
    pairs = list(itertools.combinations(labels, 2))
    rtols = {f"{a} vs {b}": _rtol_of(a, b, backend, rtol) for a, b in pairs}
    rows = []
    keys = list(results[labels[0]][0])
    for key in keys:
        path, stat = key.split("|")
        diffs = {
            f"{a} vs {b}": compare(
                results[a][0][key], results[b][0][key], atol=atol, rtol=rtols[f"{a} vs {b}"]
            )
            for a, b in pairs
        }
        rows.append(ParityRow(path, stat, tuple(results[labels[0]][0][key].shape), diffs))
    outs = {label: results[label][1] for label in labels}
    diffs = {
        f"{a} vs {b}": compare(outs[a], outs[b], atol=atol, rtol=rtols[f"{a} vs {b}"])
        for a, b in pairs
    }
    rows.append(ParityRow("", "train output", tuple(outs[labels[0]].shape), diffs))
    return ParityReport(
        labels,
        pairs,
        rtols,
        atol,
        [],
        bn_rows=rows,
        bn_stats={label: results[label][0] for label in labels},
        input_shape=tuple(x.shape),
    )


# ---- test inputs ---------------------------------------------------------------------------
def randomize_batchnorm(module: Any, seed: int = 0) -> None:
    """Give every BatchNorm of ``module`` (built by xinit or a native model) random affine
    parameters and running statistics (seeded), so a parity check exercises them: fresh ones
    are 1/0/0/1."""
    from xinit.native import layers_of

    state = state_dict(module)
    rng = np.random.default_rng(seed)
    for path, _, node in layers_of(module):
        if node.kind != "batchnorm":
            continue
        c = (node.num_features,)
        prefix = f"{path}." if path else ""
        if node.affine:
            state[f"{prefix}weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            state[f"{prefix}bias"] = rng.normal(0.0, 0.1, c).astype(np.float32)
        state[f"{prefix}running_mean"] = rng.normal(0.0, 0.1, c).astype(np.float32)
        state[f"{prefix}running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    load_state_dict(module, state)


__all__ = [
    "parity",
    "bn_parity",
    "compare",
    "check_input",
    "randomize_batchnorm",
    "ParityReport",
    "ParityRow",
    "Diff",
]

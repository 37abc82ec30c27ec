"""Re-parameterisation: parallel conv+BatchNorm branches fused into one conv, as PaddleOCR
(``LearnableRepLayer.rep``), RepVGG and MobileOne do before exporting an inference model.

In a :class:`~xinit.graph.Graph`, an ``Add`` whose inputs are all branches of one input,
each a ``Conv``, a ``Conv`` then ``BatchNorm`` (a two-step Sequential), a ``BatchNorm``
alone or an ``Identity`` (the last two: the identity kernel), becomes one biased ``Conv``
named ``reparam_conv`` (PaddleOCR's name) whose output equals the sum at inference; a
"sum" of one such branch (PaddleOCR's ``pw_conv`` that changes the width: its ``conv_kxk``
list alone) becomes one too, at the block's path as PaddleOCR names it. With
``conv_bn=True`` every ``Conv`` directly followed by a ``BatchNorm`` is folded too. The
work is on the spec and its neutral state (numpy, float64 arithmetic), so it is the same in
every framework; :func:`reparameterize` rebuilds the model in its own framework.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .blocks import Residual, Sequential, join, param_specs
from .errors import ArgumentError
from .graph import Graph, Reuse
from .layers import Add, BatchNorm, Conv, ConvTranspose, Identity


@dataclass
class ReparamReport:
    """What :func:`fuse` did: blocks fused, sums left alone (and why), sizes before/after."""

    fused: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    values_before: int = 0  # parameters and buffers (BatchNorm statistics) together
    values_after: int = 0

    def summary(self) -> str:
        lines = [
            f"re-parameterised {len(self.fused)} block(s): parameters {self.params_before:,} -> "
            f"{self.params_after:,}; parameters and buffers {self.values_before:,} -> "
            f"{self.values_after:,}"
        ]
        lines += [f"  fused {f}" for f in self.fused]
        lines += [f"  left as is: {why}" for why in self.left]
        return "\n".join(lines)


def _tup(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


def _bn_scale(state, path: str, bn: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """(scale, shift) of an inference-mode BatchNorm: y = x * scale + shift."""
    mean = state[join(path, "running_mean")].astype(np.float64)
    var = state[join(path, "running_var")].astype(np.float64)
    gamma = state[join(path, "weight")].astype(np.float64) if bn.affine else np.ones_like(mean)
    beta = state[join(path, "bias")].astype(np.float64) if bn.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.eps)
    return scale, beta - mean * scale


def _identity_kernel(channels: int, groups: int, dims: int) -> np.ndarray:
    per = channels // groups
    kernel = np.zeros((channels, per, *([1] * dims)))
    for c in range(channels):
        kernel[(c, c % per, *([0] * dims))] = 1.0
    return kernel


def _branch(spec, path: str, state) -> tuple[Any, np.ndarray | None, np.ndarray | None]:
    """(the branch's conv or None for an identity, kernel, bias) in float64, or (None,
    None, None) when the branch is not one that fuses."""
    if isinstance(spec, Conv) and not isinstance(spec, ConvTranspose):  # (in, out/g, *k)
        w = state[join(path, "weight")].astype(np.float64)
        b = state[join(path, "bias")].astype(np.float64) if spec.bias else np.zeros(len(w))
        return spec, w, b
    if isinstance(spec, Sequential) and len(spec.steps) == 2:
        (cname, conv), (bname, bn) = spec.steps
        if isinstance(conv, Conv) and isinstance(bn, BatchNorm):
            if isinstance(conv, ConvTranspose):
                return None, None, None  # (in, out/g, *k): not a branch of a sum here
            _, w, b = _branch(conv, join(path, cname), state)
            scale, shift = _bn_scale(state, join(path, bname), bn)
            shape = (-1, *([1] * (w.ndim - 1)))
            return conv, w * scale.reshape(shape), b * scale + shift
    if isinstance(spec, Graph):
        return _branch_sum(spec, path, state)
    if isinstance(spec, BatchNorm):
        scale, shift = _bn_scale(state, path, spec)
        return None, scale, shift  # the identity kernel, scaled, once the conv is known
    if isinstance(spec, Identity):
        return None, None, np.zeros(0)
    return None, None, None


def _branch_sum(graph: Graph, path: str, state):
    """A nested graph of like conv branches of its one input, summed by an ``Add`` (or a
    single one): PaddleOCR's ``conv_kxk`` list of ``num_conv_branches`` ConvBNLayers."""
    none = (None, None, None)
    if len(graph.inputs) != 1 or graph.returns != "single":
        return none
    ((_, out),) = graph.outputs
    nodes = [(n, s, r) for n, s, r in graph.nodes]
    adds = [n for n, s, _ in nodes if isinstance(s, Add)]
    leaves = [(n, s) for n, s, r in nodes if not isinstance(s, Add) and r == graph.inputs]
    if len(leaves) + len(adds) != len(nodes) or len(adds) > 1:
        return none
    if adds and (out != adds[0] or set(graph.inputs_of(out)) != {n for n, _ in leaves}):
        return none
    if not adds and (len(leaves) != 1 or out != leaves[0][0]):
        return none
    parts = [_branch(s, join(path, n), state) for n, s in leaves]
    convs = [c for c, _, _ in parts]
    if any(c is None for c in convs) or len({_geometry(c) for c in convs}) != 1:
        return none
    return convs[0], sum(w for _, w, _ in parts), sum(b for _, _, b in parts)


def _geometry(conv: Conv) -> tuple:
    return (
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    )


def _fuse_sum(graph: Graph, name: str, refs, path: str, state, report) -> tuple | None:
    """The fused Conv and its (weight, bias) for Add node ``name`` of ``graph``, or None."""
    where = join(path, name)
    nodes = {n: (s, r) for n, s, r in graph.nodes}
    uses: dict[str, int] = {}
    for _, _, rs in graph.nodes:
        for r in rs:
            uses[r.partition(".")[0]] = uses.get(r.partition(".")[0], 0) + 1
    for _, r in graph.outputs:
        uses[r.partition(".")[0]] = uses.get(r.partition(".")[0], 0) + 1
    if any(r not in nodes or uses.get(r, 0) != 1 for r in refs):
        return None  # not a sum of branches used only by it
    shared = {s.node for s, _ in nodes.values() if isinstance(s, Reuse)}
    if any(r in shared or isinstance(nodes[r][0], Reuse) for r in refs):
        return None  # a branch's layer runs elsewhere too (a Reuse node): it must stay
    sources = {nodes[r][1] for r in refs}
    if len(sources) != 1:
        return None
    if len(refs) == 1 and isinstance(nodes[refs[0]][0], Conv):
        return None  # a lone plain conv: nothing to fuse
    parts = [(r, *_branch(nodes[r][0], join(path, r), state)) for r in refs]
    if any(k is None and b is None for _, _, k, b in parts):
        return None
    convs = [c for _, c, _, _ in parts if c is not None]
    if not convs:
        return None
    first = convs[0]
    dims = len(_tup(first.kernel_size, first.dims or 2))
    stride, groups = _tup(first.stride, dims), first.groups
    kmax = tuple(max(_tup(c.kernel_size, dims)[d] for c in convs) for d in range(dims))
    centre = None
    for c in convs:
        k, p = _tup(c.kernel_size, dims), _tup(c.padding, dims)
        if (
            _tup(c.stride, dims) != stride
            or c.groups != groups
            or _tup(c.dilation, dims) != (1,) * dims
            or (c.in_channels, c.out_channels) != (first.in_channels, first.out_channels)
            or any(kk % 2 == 0 for kk in k)
        ):
            report.left.append(f"{where}: its convs differ in stride, groups, size or dilation")
            return None
        offset = tuple(kk // 2 - pp for kk, pp in zip(k, p))
        if centre not in (None, offset):
            report.left.append(f"{where}: its convs' paddings do not align their outputs")
            return None
        centre = offset
    weight = np.zeros((first.out_channels, first.in_channels // groups, *kmax))
    bias = np.zeros(first.out_channels)
    for _, conv, kernel, b in parts:
        if conv is None:  # identity (BatchNorm-scaled or plain): the centre tap
            if stride != (1,) * dims or first.in_channels != first.out_channels:
                report.left.append(f"{where}: an identity branch beside a strided conv")
                return None
            ident = _identity_kernel(first.out_channels, groups, dims)
            kernel = ident * (kernel.reshape(-1, *([1] * (dims + 1))) if kernel is not None else 1)
        pad = [(0, 0), (0, 0)] + [
            ((m - s) // 2, (m - s) // 2) for m, s in zip(kmax, kernel.shape[2:])
        ]
        weight += np.pad(kernel, pad)
        bias += b if len(b) else 0.0
    padding = tuple(m // 2 - c for m, c in zip(kmax, centre))
    conv = Conv(
        first.in_channels,
        first.out_channels,
        kmax,
        stride=stride,
        padding=padding,
        groups=groups,
        bias=True,
        dims=first.dims,
    )
    report.fused.append(
        f"{where}: {len(parts)} branches ({', '.join(refs)}) -> one {'x'.join(map(str, kmax))} conv"
    )
    return conv, weight, bias


def _fold_graph(graph: Graph, path: str, state, out, report, conv_bn: bool) -> Graph:
    rows = [(n, s, r) for n, s, r in graph.nodes]
    rename: dict[str, str] = {}
    removed: set[str] = set()
    new_rows = []
    taken = {n for n, _, _ in rows}
    for name, spec, refs in rows:
        if isinstance(spec, Add) and refs:
            fused = _fuse_sum(graph, name, refs, path, state, report)
            if fused is not None:
                conv, w, b = fused
                new = "reparam_conv" if "reparam_conv" not in taken else f"reparam_conv_{name}"
                taken.add(new)
                source = graph.inputs_of(refs[0])
                for r in refs:
                    removed.add(r)
                    _drop(out, join(path, r))
                out[join(join(path, new), "weight")] = w
                out[join(join(path, new), "bias")] = b
                rename[name] = new
                new_rows.append((new, conv, source))
                continue
        new_rows.append((name, spec, refs))
    rows = [(n, s, r) for n, s, r in new_rows if n not in removed]
    rows = [(n, _fold(s, join(path, n), state, out, report, conv_bn), r) for n, s, r in rows]

    def ref(r: str) -> str:
        head, dot, rest = r.partition(".")
        return rename.get(head, head) + dot + rest

    rows = [(n, s, tuple(ref(r) for r in refs)) for n, s, refs in rows]
    outputs = {k: ref(r) for k, r in graph.outputs}
    if graph.returns == "single":
        outputs = next(iter(outputs.values()))
    elif graph.returns == "tuple":
        outputs = tuple(outputs.values())
    return Graph(rows, inputs=graph.inputs, outputs=outputs, kind=graph.kind)


def _drop(out: dict, prefix: str) -> None:
    for key in [k for k in out if k.startswith(prefix + ".")]:
        del out[key]


def _fold(spec, path: str, state, out, report, conv_bn: bool):
    """``spec`` with its sums of branches (and, with ``conv_bn``, its conv+BN pairs) fused;
    ``out`` (the state being built) updated to match."""
    if isinstance(spec, Graph):
        return _fold_graph(spec, path, state, out, report, conv_bn)
    if isinstance(spec, Sequential):
        steps = [(n, _fold(s, join(path, n), state, out, report, conv_bn)) for n, s in spec.steps]
        if conv_bn:
            steps = _fold_pairs(steps, path, state, out, report)
        return Sequential(*steps)
    if isinstance(spec, Residual):  # body children sit under the block's own path
        body = _fold(spec.body, path, state, out, report, conv_bn)
        shortcut = spec.shortcut
        if shortcut is not None:
            where = join(path, spec.shortcut_name)
            shortcut = _fold(shortcut, where, state, out, report, conv_bn)
        return replace(spec, body=body, shortcut=shortcut)
    return spec


def _fold_into_transpose(conv: ConvTranspose, cpath: str, bn: BatchNorm, bpath: str, out):
    """(weight, bias) of transposed ``conv`` with ``bn`` after it folded in: its weight is
    (in, out/groups, *k), so the BatchNorm scales axis 1 within each group."""
    w = out[join(cpath, "weight")].astype(np.float64)
    b = out[join(cpath, "bias")].astype(np.float64) if conv.bias else np.zeros(conv.out_channels)
    scale, shift = _bn_scale(out, bpath, bn)
    g, k = conv.groups, w.shape[2:]
    grouped = w.reshape(g, -1, conv.out_channels // g, *k)
    grouped = grouped * scale.reshape(g, 1, -1, *([1] * len(k)))
    return grouped.reshape(w.shape), b * scale + shift


def _fold_pairs(steps, path: str, state, out, report):
    """Each ``Conv`` (or ``ConvTranspose``) step directly followed by a ``BatchNorm`` step:
    the BN folded into it."""
    kept: list = []
    for name, spec in steps:
        if isinstance(spec, BatchNorm) and kept and isinstance(kept[-1][1], Conv):
            cname, conv = kept[-1]
            cpath, bpath = join(path, cname), join(path, name)
            if isinstance(conv, ConvTranspose):
                w, b = _fold_into_transpose(conv, cpath, spec, bpath, out)
            else:
                _, w, b = _branch(Sequential((cname, conv), (name, spec)), path, out)
            out[join(cpath, "weight")], out[join(cpath, "bias")] = w, b
            _drop(out, bpath)
            kept[-1] = (cname, replace(conv, bias=True))
            report.fused.append(f"{bpath}: BatchNorm folded into {cpath}")
            continue
        kept.append((name, spec))
    return kept


def _sizes(spec) -> tuple[int, int]:
    specs = [p for p in param_specs(spec).values() if p.name != "num_batches_tracked"]
    return sum(p.numel for p in specs if p.trainable), sum(p.numel for p in specs)


def fuse(spec, state: Mapping[str, Any], *, conv_bn: bool = False):
    """``(fused spec, its neutral state, ReparamReport)`` for ``spec`` and its neutral
    ``state`` (:func:`xinit.state_dict`); the arrays keep the state's dtype."""
    out = {k: np.asarray(v) for k, v in state.items()}
    dtype = next((v.dtype for v in out.values() if v.dtype.kind == "f"), np.dtype("float32"))
    report = ReparamReport()
    fused = _fold(spec, "", out, out, report, conv_bn)
    out = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in out.items()}
    out = {k: out[k] for k in param_specs(fused) if k in out}  # the fused spec's order
    report.params_before, report.values_before = _sizes(spec)
    report.params_after, report.values_after = _sizes(fused)
    return fused, out, report


def reparameterize(model: Any, *, conv_bn: bool = False) -> tuple[Any, ReparamReport]:
    """The model xinit built (any framework) with its re-parameterisable blocks fused, as a
    new model of the same framework in eval mode, and the :class:`ReparamReport`."""
    spec = getattr(model, "_xinit_spec", None)
    if spec is None:
        raise ArgumentError(
            "reparameterize needs a model xinit built (xinit.build) or traced and built "
            "(xinit.convert); this one carries no spec"
        )
    from xinit.backends import backend_of

    from . import _build, state

    framework = backend_of(model).name
    fused, values, report = fuse(spec, state.state_dict(model), conv_bn=conv_bn)
    new = _build.build(fused, framework)
    state.load_state_dict(new, values)
    if callable(getattr(new, "eval", None)):
        new.eval()  # torch, Paddle and NNX modules all run BatchNorm on statistics in eval
    return new, report


__all__ = ["reparameterize", "fuse", "ReparamReport"]

"""BatchNorm for parity: its training step compared across frameworks, and the statistics a
check needs (random, or calibrated from a training-mode pass as a trained model has them)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._parity_base import check_input, compare, labelled, rtol_of
from ._parity_report import ParityReport, ParityRow
from .blocks import walk
from .state import load_state_dict, spec_of, state_dict


def _bn_layers(spec) -> list[tuple[str, Any]]:
    return [(path, node) for path, node in walk(spec) if getattr(node, "kind", "") == "batchnorm"]


def _same_spec(mods) -> Any:
    spec = spec_of(mods[0])
    for m in mods[1:]:
        other = spec_of(m)
        if other is not spec and other != spec:
            raise ValueError("parity: the modules were built from different specs")
    return spec


def _step_from(module, x, bns, snap, value: float | None):
    """One training-mode forward from ``snap`` with every running statistic of ``bns`` set
    to ``value`` (as they are: None); the state after it and the output."""
    from xinit.backends import backend_of

    start = dict(snap)
    if value is not None:
        for path, _ in bns:
            prefix = f"{path}." if path else ""
            for leaf in ("running_mean", "running_var"):
                start[prefix + leaf] = np.full_like(snap[prefix + leaf], value)
    load_state_dict(module, start)
    out = backend_of(module).run_train(module, x)
    return state_dict(module), out


def _bn_step(module, x: np.ndarray, bns) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One training step's statistics of every BatchNorm of ``module`` (state restored):
    ``{"path|statistic": array}`` and the train-mode output.

    Three steps on ``x``, from running statistics set to 0, to 1, and as they are. From 0 a
    step leaves ``m * batch``; from 1 it leaves ``(1 - m) + m * batch``; so the difference
    gives the momentum the framework really applied (``momentum``, neutral convention: the
    weight of the new batch), and ``batch / spec momentum`` the batch mean and the variance
    the framework's rule stores. The third step gives the running statistics after one real step.
    """
    snap = state_dict(module)
    try:
        from_zero, _ = _step_from(module, x, bns, snap, 0.0)
        from_one, _ = _step_from(module, x, bns, snap, 1.0)
        after, out = _step_from(module, x, bns, snap, None)
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
    atol: float | None = None,
    rtol: float | None = None,
) -> ParityReport:
    """Compare one training-mode step of every BatchNorm across modules: the momentum each
    framework really applies (neutral convention, after the adapters' translation), the
    batch mean and the batch variance the running one takes (unbiased with PyTorch's rule,
    biased in Paddle's and Flax's own BatchNorms: build with ``BatchNorm(train_stats=
    "torch")`` to compare PyTorch's rule everywhere), the running statistics after the step,
    and the train-mode output. Modules are restored afterwards; ``report.bn_stats`` has the values.

    Batch statistics are read through the running ones: from zeroed running statistics one
    step leaves ``momentum * batch value`` (a momentum of 0 makes them unobservable: NaN).
    Judged with ``rtol`` (default: the pair's looser framework ``PARITY_RTOL``): training-mode
    outputs of deep models over small batches amplify upstream rounding (a channel with tiny
    batch variance is divided by it), so a looser ``rtol`` may be needed than in eval mode.
    """
    from xinit.backends import backend_of

    labels, mods = labelled(modules)
    spec = _same_spec(mods)
    x = check_input(x)
    bns = _bn_layers(spec)
    backend = {label: backend_of(m).name for label, m in zip(labels, mods)}
    results = {label: _bn_step(m, x, bns) for label, m in zip(labels, mods)}
    pairs = list(itertools.combinations(labels, 2))
    rtols = {f"{a} vs {b}": rtol_of(a, b, backend, rtol) for a, b in pairs}
    atol = atol or 0.0
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


# ---- statistics for a check ----------------------------------------------------------------
def _batchnorms(module) -> list[tuple[str, Any]]:
    from xinit.native import layers_of

    return [(path, node) for path, _, node in layers_of(module) if node.kind == "batchnorm"]


def randomize_batchnorm(module: Any, seed: int = 0) -> None:
    """Give every BatchNorm of ``module`` (built by xinit or a native model) random affine
    parameters and running statistics (seeded), so a parity check exercises them: fresh ones
    are 1/0/0/1. :func:`calibrate_batchnorm` gives the statistics a trained model has."""
    state = state_dict(module)
    rng = np.random.default_rng(seed)
    for path, node in _batchnorms(module):
        c = (node.num_features,)
        prefix = f"{path}." if path else ""
        if node.affine:
            state[f"{prefix}weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            state[f"{prefix}bias"] = rng.normal(0.0, 0.1, c).astype(np.float32)
        state[f"{prefix}running_mean"] = rng.normal(0.0, 0.1, c).astype(np.float32)
        state[f"{prefix}running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    load_state_dict(module, state)


def calibrate_batchnorm(module: Any, x: Any) -> None:
    """Set every BatchNorm's running statistics of ``module`` to the batch mean and unbiased
    variance its input has in a training-mode pass on ``x``, as training leaves them: the
    realistic statistics a parity check must pass on (channels of small variance included),
    which random ones hide. Everything else in the state is kept."""
    bns = _batchnorms(module)
    for path, node in bns:
        if not node.momentum:
            raise ValueError(f"{path or '<root>'}: BatchNorm momentum {node.momentum}: no step")
    snap = state_dict(module)
    try:
        stepped, _ = _step_from(module, check_input(x), bns, snap, 0.0)
    except BaseException:
        load_state_dict(module, snap)
        raise
    for path, node in bns:
        prefix = f"{path}." if path else ""
        for leaf in ("running_mean", "running_var"):
            value = stepped[prefix + leaf].astype(np.float64) / float(node.momentum)
            snap[prefix + leaf] = value.astype(snap[prefix + leaf].dtype)
    load_state_dict(module, snap)

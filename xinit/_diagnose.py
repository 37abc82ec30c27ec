"""``xinit.diagnose``: the signal at initialisation, per layer, per framework and per policy.

(A private module: ``xinit.diagnose`` is the function.)

For each backend and policy the model (a spec, built; or a native module, as it is) runs one
training-mode forward on a batch (N(0, 1) by default) and one backward pass of the fixed loss
``sum(y ** 2)`` (``y`` the model's output, so the output's gradient is ``2 y``). Each layer
gives one :class:`LayerSignal`: its output's mean and std, the signal propagation plot
quantities of Brock et al. (2021) (average channel squared mean, average channel variance;
channels are axis 1), the residual branch's average channel variance for residual blocks,
the std of its output's gradient and of each of its parameters' gradients.

The adapters measure (``Backend.signal_pass``, per-channel moments computed in the framework);
everything here is numpy. The model is left as it was: mode and running statistics restored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._compat import renamed
from .blocks import Residual, infer
from .errors import XinitError
from .layers import Layer
from .policy import Policy, Rule


class DiagnoseError(XinitError, ValueError):
    """A policy name, backend or input that :func:`diagnose` cannot use."""


# ---- policies by name --------------------------------------------------------------------
def _default(framework: str) -> Policy:
    from .init import Default

    return Policy(Rule(Default(framework), param="*"), name=f"default-{framework}")


def _kaiming() -> Policy:
    from .initializers import KaimingNormal, Zeros

    rule = Rule(
        KaimingNormal(mode="fan_in", nonlinearity="relu"),
        kind=("conv", "linear"),
        bias=Zeros(),
    )
    return Policy(rule, name="kaiming")


def policy_names() -> list[str]:
    """Every name :func:`named_policy` knows: each framework's default, ``kaiming``, the
    spec's own initializers (``spec``) and the presets."""
    from . import presets
    from .backends import FRAMEWORKS

    return [*(f"default-{f}" for f in FRAMEWORKS), "kaiming", "spec", *presets.PRESETS]


def named_policy(name: str) -> Policy | None:
    """The policy called ``name`` (None for ``spec``: the spec's own initializers).

    ``default-<framework>`` is that framework's default init for every parameter; ``kaiming``
    is Kaiming normal (fan_in, ReLU gain) on conv and linear weights with zero biases."""
    from . import presets
    from .backends import FRAMEWORKS

    if name.startswith("default-") and name.removeprefix("default-") in FRAMEWORKS:
        return _default(name.removeprefix("default-"))
    if name == "kaiming":
        return _kaiming()
    if name == "spec":
        return None
    if name in presets.PRESETS:
        return presets.get(name)
    raise DiagnoseError(f"unknown policy {name!r}; known: {', '.join(policy_names())}")


def _policy(item) -> tuple[str, Policy | None]:
    if isinstance(item, str):
        return item, named_policy(item)
    if isinstance(item, Policy):
        return item.name or "policy", item
    if item is None:
        return "spec", None
    raise DiagnoseError(f"a policy must be a name or an xinit Policy; got {item!r}")


# ---- rows and the result -------------------------------------------------------------------
@dataclass(frozen=True)
class LayerSignal:
    """One layer's signal at initialisation in one backend under one policy."""

    backend: str
    policy: str
    index: int  # position in forward order among the rows of its run
    path: str
    kind: str
    mean: float  # of the layer's output
    std: float
    second_moment: float  # mean of the output squared
    channel_sq_mean: float  # average over channels of the squared channel mean (Brock et al.)
    channel_var: float  # average over channels of the channel variance (Brock et al.)
    residual_var: float | None  # residual blocks: the branch's average channel variance
    grad_std: float | None  # std of d loss / d output (None: the output has no gradient)
    param_grad_std: tuple[tuple[str, float], ...]  # (leaf, std of its gradient)

    @property
    def weighted(self) -> bool:
        """Whether the layer has a weight (conv, linear, ...): the rows a plot shows."""
        return any(leaf == "weight" for leaf, _ in self.param_grad_std)


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"


@dataclass(frozen=True)
class Diagnosis:
    """Rows of every (backend, policy) run, in forward order within each run."""

    rows: tuple[LayerSignal, ...]
    loss: tuple[tuple[str, str, float], ...]  # (backend, policy, sum(y**2))
    input_shape: tuple[int, ...]

    def __add__(self, other: Diagnosis) -> Diagnosis:
        """Both results' runs in one (e.g. each framework under its own default)."""
        if other.input_shape != self.input_shape:
            raise DiagnoseError(f"inputs differ: {self.input_shape} vs {other.input_shape}")
        return Diagnosis(self.rows + other.rows, self.loss + other.loss, self.input_shape)

    @property
    def runs(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys((r.backend, r.policy) for r in self.rows))

    def run(self, backend: str, policy: str) -> list[LayerSignal]:
        """The rows of one run, in forward order."""
        rows = [r for r in self.rows if r.backend == backend and r.policy == policy]
        if not rows:
            raise KeyError(f"no run {backend}/{policy}; runs: {self.runs}")
        return rows

    def records(self) -> list[dict[str, Any]]:
        """Every row as a JSON-ready dict (NaN becomes None)."""

        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v

        return [{k: clean(v) for k, v in asdict(r).items()} for r in self.rows]

    def to_json(self) -> str:
        return json.dumps({"input_shape": list(self.input_shape), "rows": self.records()})

    def _summary(self, weighted_only: bool = True) -> tuple[list[str], list[list[str]]]:
        """The comparison table: one line per layer, the output std and the output
        gradient's std of each run side by side."""
        runs = self.runs
        first = self.run(*runs[0])
        keep = [
            r
            for r in first
            if r.weighted or r.residual_var is not None or r.path == "" or not weighted_only
        ]
        by_run = {run: {r.path: r for r in self.run(*run)} for run in runs}
        header = ["#", "layer", "kind"]
        header += [f"std {b}/{p}" for b, p in runs] + [f"grad std {b}/{p}" for b, p in runs]
        lines = []
        for r in keep:
            cells = [str(r.index), r.path or "<output>", r.kind]
            cells += [_fmt(getattr(by_run[run].get(r.path), "std", None)) for run in runs]
            cells += [_fmt(getattr(by_run[run].get(r.path), "grad_std", None)) for run in runs]
            lines.append(cells)
        return header, lines

    def to_markdown(self) -> str:
        header, lines = self._summary()
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)

    def table(self):
        """A rich table of :meth:`to_markdown`'s content."""
        from rich.table import Table

        header, lines = self._summary()
        t = Table(title=f"signal at initialisation, input {self.input_shape}, loss sum(y**2)")
        for i, h in enumerate(header):
            t.add_column(h, justify="left" if i in (1, 2) else "right")
        for cells in lines:
            t.add_row(*cells)
        return t

    def plot(self, path: str) -> None:
        """Std of each weighted layer's output (left) and of its output gradient (right)
        against depth, one line per backend x policy, log scale."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for backend, policy in self.runs:
            rows = [r for r in self.run(backend, policy) if r.weighted]
            depth = np.arange(1, len(rows) + 1)
            style = {"torch": "-", "paddle": "--", "flax": ":"}.get(backend, "-.")
            label = f"{backend} / {policy}"
            axes[0].plot(depth, [r.std for r in rows], style, marker=".", label=label)
            grads = [np.nan if r.grad_std is None else r.grad_std for r in rows]
            axes[1].plot(depth, grads, style, marker=".", label=label)
        for ax, title in zip(axes, ("activation std", "gradient std (loss sum(y^2))")):
            ax.set_yscale("log")
            ax.set_xlabel("layer with weights (forward order)")
            ax.set_title(title)
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)


# ---- the measurement -----------------------------------------------------------------------
def _stats(moments) -> tuple[float, float, float, float, float]:
    """(mean, std, second moment, avg channel squared mean, avg channel variance) from the
    per-channel means and variances (channels have equal counts)."""
    m = np.asarray(moments[0], np.float64)
    v = np.asarray(moments[1], np.float64)
    mean = float(m.mean())
    second = float((v + m * m).mean())
    var = float((v + (m - mean) ** 2).mean())  # law of total variance over channels
    return mean, math.sqrt(max(var, 0.0)), second, float((m * m).mean()), float(v.mean())


def _layer_nodes(spec, input_shape) -> list[tuple[str, Any]]:
    """(path, node) of every layer and residual block in forward order, and the whole model
    last (checks ``input_shape``). A shared child (one ``relu`` run three times in a
    bottleneck) is one row, at its last call, as the measurement reports it."""
    rows = infer(spec, input_shape)
    nodes = {}
    for r in rows:
        if isinstance(r.spec, (Layer, Residual)) or r.path == "":
            nodes.pop(r.path, None)
            nodes[r.path] = r.spec
    return list(nodes.items())


def _rows_of(measured, backend: str, policy: str, nodes) -> list[LayerSignal]:
    by_layer: dict[str, list[tuple[str, float]]] = {}
    for path, std in measured.param_grads.items():
        layer, _, leaf = path.rpartition(".")
        by_layer.setdefault(layer, []).append((leaf, std))
    if nodes is None:  # a native model: every recorded submodule, in first-call order
        nodes = [(p, None) for p in measured.outputs if p != ""] + [("", None)]
    rows = []
    for index, (path, node) in enumerate(nodes):
        calls = measured.outputs.get(path)
        if not calls:
            continue
        mean, std, second, sq_mean, ch_var = _stats(calls[-1])
        grads = measured.output_grads.get(path) or [None]
        grad_std = None if grads[-1] is None else _stats(grads[-1])[1]
        residual = None
        if isinstance(node, Residual):
            last = node.body.steps[-1][0]
            branch = measured.outputs.get(f"{path}.{last}" if path else last)
            if branch:
                residual = _stats(branch[0])[4]
        kind = measured.kinds.get(path, "") if node is None else getattr(node, "kind", "")
        rows.append(
            LayerSignal(
                backend=backend,
                policy=policy,
                index=index,
                path=path,
                kind=kind,
                mean=mean,
                std=std,
                second_moment=second,
                channel_sq_mean=sq_mean,
                channel_var=ch_var,
                residual_var=residual,
                grad_std=grad_std,
                param_grad_std=tuple(by_layer.get(path, ())),
            )
        )
    return rows


def _is_spec(model) -> bool:
    from .blocks import is_spec

    return is_spec(model)


def diagnose(
    model,
    input_shape: Sequence[int] | None = None,
    *,
    frameworks: Iterable[str] | None = None,
    policies: Iterable[str | Policy | None] = ("spec",),
    seed: int = 0,
    rng: str = "xinit",
    data: np.ndarray | None = None,
    train: bool = True,
    backends: Iterable[str] | None = None,
) -> Diagnosis:
    """Per-layer signal of ``model`` at initialisation, for each framework and policy.

    * ``model``: an xinit spec (built per framework and policy with ``seed``/``rng``), or a
      native module (measured as it is: ``frameworks`` and ``policies`` do not apply).
    * ``frameworks``: default every installed one (``backends=`` is its deprecated name).
    * ``input_shape``: channel-first, batch first; the input is N(0, 1) drawn with ``seed``
      (the same array in every backend) unless ``data`` is given.
    * ``policies``: names (``default-torch``, ``kaiming``, ``spec``, presets; see
      :func:`policy_names`) or :class:`~xinit.policy.Policy` objects.
    * ``train``: BatchNorm uses batch statistics (what the first training step sees); the
      running statistics are restored afterwards.
    """
    from .backends import FRAMEWORKS, available, backend_of

    frameworks = renamed("diagnose", "backends", backends, "frameworks", frameworks)
    if data is not None:
        x = np.ascontiguousarray(data, dtype=np.float32)
        if input_shape is not None and tuple(input_shape) != x.shape:
            raise DiagnoseError(f"data has shape {x.shape}, input_shape says {tuple(input_shape)}")
    elif input_shape is None:
        raise DiagnoseError("diagnose needs input_shape (N, C, ...) or data")
    else:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) < 2 or min(shape) < 1:
            raise DiagnoseError(f"input_shape must be (N, C, ...) with positive sizes; got {shape}")
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    if not _is_spec(model):
        backend = backend_of(model)
        measured = backend.signal_pass(model, x, train=train)
        rows = _rows_of(measured, backend.name, "as-is", None)
        return Diagnosis(tuple(rows), ((backend.name, "as-is", measured.loss),), x.shape)

    nodes = _layer_nodes(model, x.shape)  # an input shape the spec rejects fails here
    names = list(available()) if frameworks is None else list(frameworks)
    for name in names:
        if name not in FRAMEWORKS:
            raise DiagnoseError(f"unknown framework {name!r}; known: {', '.join(FRAMEWORKS)}")
        if name not in available():
            raise DiagnoseError(f"backend {name!r} is not installed")
    chosen = [_policy(p) for p in policies]  # every name checked before anything is built
    from ._build import build

    rows: list[LayerSignal] = []
    losses = []
    for label, policy in chosen:
        for name in names:
            module = build(model, name, seed=seed, rng=rng, policy=policy)
            measured = backend_of(module).signal_pass(module, x, train=train)
            rows.extend(_rows_of(measured, name, label, nodes))
            losses.append((name, label, measured.loss))
    return Diagnosis(tuple(rows), tuple(losses), x.shape)


__all__ = [
    "diagnose",
    "Diagnosis",
    "LayerSignal",
    "DiagnoseError",
    "named_policy",
    "policy_names",
]

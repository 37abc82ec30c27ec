"""``xinit.convert``: any native model into another framework, with its weights and a proof.

Trace the model into a spec (:func:`xinit.trace`: its layers under their module paths, so
the spec's state keys are the model's own), build the spec in the target framework, move
every weight by name (:func:`xinit.transfer`: the conventions' names and layouts, Paddle's
``_mean`` as PyTorch's ``running_mean``, HWIO kernels), then compare the two models layer by
layer (:func:`xinit.parity`, the float64-derived verdict). No twin of the model need exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ArgumentError

STAGES = ("trace", "build", "transfer", "parity")


@dataclass
class ConvertReport:
    """What :func:`convert` did: the traced ``spec``, the weights moved (``transfer``, a
    :class:`~xinit.state.LoadReport`), the layer-by-layer ``parity`` report (None when
    skipped), the seconds each stage took and where the models' layer paths differ."""

    source: str  # the source model's framework
    target: str
    spec: Any
    transfer: Any
    parity: Any = None
    seconds: dict[str, float] = field(default_factory=dict)
    # source path -> target path where they differ in parity: a module called more than once
    layer_map: dict[str, str] = field(default_factory=dict)

    def name_map(self) -> Any:
        """The name map :func:`xinit.parity` takes to compare the two models again (on
        another input), as convert did; None when the paths agree."""
        if not self.layer_map:
            return None
        return lambda path: self.layer_map.get(path, path)

    @property
    def ok(self) -> bool:
        """Whether the parity verdict passes (True when parity was skipped)."""
        return self.parity is None or bool(self.parity.ok)

    def summary(self) -> str:
        """One paragraph: what was converted, the weights moved, the verdict."""
        from .blocks import param_specs

        params = param_specs(self.spec)
        values = sum(p.numel for p in params.values())
        lines = [
            f"converted {self.source} -> {self.target}: {len(params)} tensors, {values:,} values; "
            f"weights {self.transfer.summary()}"
        ]
        if self.parity is not None:
            lines.append(self.parity.summary())
        else:
            lines.append("parity skipped")
        taken = ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items())
        lines.append(f"time: {taken}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (the CLI's ``parity.json``)."""
        return {
            "source": self.source,
            "target": self.target,
            "ok": self.ok,
            "transfer": {
                "loaded": len(self.transfer.loaded),
                "summary": self.transfer.summary(),
            },
            "parity": self.parity.to_dict() if self.parity is not None else None,
            "seconds": dict(self.seconds),
        }


def _arrays(example_input: Any, adapter) -> np.ndarray | tuple[np.ndarray, ...]:
    """The example input as numpy (native tensors read through the source's adapter)."""
    if isinstance(example_input, (tuple, list)):
        return tuple(_arrays(x, adapter) for x in example_input)  # type: ignore[misc]
    if isinstance(example_input, np.ndarray):
        return example_input
    if isinstance(example_input, (int, float)) or example_input is None:
        raise ArgumentError(
            f"convert needs an example input array (batch first); got {example_input!r}"
        )
    return adapter.to_numpy(example_input)


def _last_calls(spec: Any, source_paths: set[str]) -> dict[str, str]:
    """{source path: traced node path} for a parameter-free module the model calls more than
    once (torchvision's ``relu`` in a BasicBlock): the trace has a node per call (``relu``,
    ``relu_1``, ...), the source's hooks report the module's last call, so parity compares
    that with the last node."""
    import re

    from .blocks import children, join, walk

    out: dict[str, str] = {}
    for path, node in walk(spec):
        kids = dict(children(node))
        for name, child in kids.items():
            base = join(path, name)
            if base not in source_paths:
                continue
            again = re.compile(rf"{re.escape(name)}_(\d+)")
            repeats = [
                (int(m.group(1)), other)
                for other, spec_ in kids.items()
                if (m := again.fullmatch(other))
                and join(path, other) not in source_paths
                and spec_ == child
            ]
            if repeats:
                out[base] = join(path, max(repeats)[1])
    return out


def convert(
    model: Any,
    to: str,
    example_input: Any,
    *,
    spec: Any = None,
    seed: int = 0,
    device: str = "cpu",
    parity: bool = True,
    threshold: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> tuple[Any, ConvertReport]:
    """``model`` (a torch ``nn.Module``, ``paddle.nn.Layer`` or Flax NNX module) as a model of
    framework ``to``, with its weights: returns ``(module, report)``.

    ``example_input`` (a numpy array or the source framework's tensor, batch first, or a
    tuple of them) is what the model is traced on (``options`` go to :func:`xinit.trace`)
    and, with ``parity=True``, what both models are compared on, layer by layer, with the
    float64-derived verdict (``threshold``, or explicit ``rtol``/``atol``); ``report.ok``
    says whether it passes. ``spec`` skips the trace (a spec traced earlier and loaded with
    :func:`xinit.load_spec`, or a hand-written one with the model's names). ``progress(stage)``
    is called as each stage (``trace``, ``build``, ``transfer``, ``parity``) begins.
    """
    from xinit.backends import backend_of, get_backend

    from ._build import build
    from ._parity import parity as compare
    from .blocks import is_spec
    from .native import NativeModelError
    from .state import transfer

    get_backend(to)  # a known framework, installed: checked before any work
    if is_spec(model):
        raise ArgumentError(
            "convert takes a native model (torch, paddle or flax); a spec is built in any "
            "framework with xinit.build"
        )
    try:
        adapter = backend_of(model)
    except TypeError as err:
        raise NativeModelError(f"convert: {err}") from None
    x = _arrays(example_input, adapter)
    seconds: dict[str, float] = {}

    def stage(name: str) -> float:
        if progress is not None:
            progress(name)
        return time.perf_counter()

    start = stage("trace")
    if spec is None:
        from ._trace import trace

        native_x = (
            tuple(adapter.from_numpy(np.ascontiguousarray(a)) for a in x)
            if isinstance(x, tuple)
            else adapter.from_numpy(np.ascontiguousarray(x))
        )
        spec = trace(model, native_x, **options)
    elif options:
        raise ArgumentError(f"convert: {sorted(options)} are trace options, and spec= skips it")
    seconds["trace"] = time.perf_counter() - start
    start = stage("build")
    module = build(spec, to, seed=seed, device=device)
    seconds["build"] = time.perf_counter() - start
    start = stage("transfer")
    moved = transfer(model, module)
    seconds["transfer"] = time.perf_counter() - start
    report = ConvertReport(adapter.name, to, spec, moved, seconds=seconds)
    report.layer_map = _last_calls(spec, {path for path, _ in adapter.named_layers(model)})
    if parity:
        start = stage("parity")
        labels = (adapter.name, to) if adapter.name != to else ("source", "converted")
        verdict = {"rtol": rtol, "atol": atol}
        verdict = {k: v for k, v in verdict.items() if v is not None}
        if threshold is not None:
            verdict["threshold"] = threshold
        modules = dict(zip(labels, (model, module)))
        report.parity = compare(modules, x, name_map=report.name_map(), **verdict)
        seconds["parity"] = time.perf_counter() - start
    return module, report


__all__ = ["convert", "ConvertReport", "STAGES"]

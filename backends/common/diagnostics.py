"""Diagnostics (``xinit.diagnose``, ``xinit.lsuv``): the one signal pass an adapter runs, what
it measured, and the recorder that torch- and Paddle-style hooks share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .native_models import NativeParam


class Diagnostics:
    """What ``xinit.diagnose`` and ``xinit.lsuv`` need of an adapter: :meth:`signal_pass`
    (optional; without it those two refuse the framework) and :meth:`scale_param`."""

    name: str  # the framework (the adapter sets it)

    def signal_pass(self, module: Any, x: np.ndarray, *, train: bool = True) -> SignalPass:
        """One forward of channel-first ``x`` recording the channel moments of every
        submodule's output (each call), then one backward pass of ``sum(y**2)`` (``y`` the
        model's output) recording those of each output's gradient and the std of each
        parameter's gradient. The module's mode and its running statistics are left as they
        were, and no ``.grad`` is written."""
        raise NotImplementedError(f"the {self.name} adapter cannot run a diagnostic pass")

    def scale_param(self, param: NativeParam, factor: float) -> None:
        """Multiply native parameter ``param`` by ``factor`` in place (layout-independent)."""
        self.assign(
            param.holder,
            self.from_numpy(
                self.to_numpy(param.holder) * np.float32(factor), self.holder_device(param.holder)
            ),
        )


@dataclass(frozen=True)
class SignalPass:
    """What :meth:`Backend.signal_pass` measured, in neutral terms.

    Moments are ``(channel means, channel variances)`` over every axis but the neutral
    channel axis 1 (population variance), one pair per call of the submodule, in call
    order; paths are the native module's dotted submodule paths ("" is the whole model).
    """

    outputs: dict[str, list[tuple[np.ndarray, np.ndarray]]]
    output_grads: dict[str, list[tuple[np.ndarray, np.ndarray] | None]]  # None: no gradient
    param_grads: dict[str, float]  # neutral parameter path -> std of its gradient
    kinds: dict[str, str]  # submodule path -> neutral kind ("" when unknown)
    loss: float


class OutputRecorder:
    """Per-path output moments, and output-gradient moments, for :meth:`Backend.signal_pass`
    with forward hooks. A tensor seen before (a container's output is its last child's, a
    shared ReLU's) is measured once, its gradient too.

    ``moments(tensor)`` gives (channel means, channel variances); ``watch(tensor, fn)``
    registers ``fn(grad)`` on a tensor that takes part in the backward pass, returning
    whether it did.
    """

    def __init__(self, moments: Callable, watch: Callable):
        self._moments, self._watch = moments, watch
        self.outputs: dict[str, list] = {}
        self._grads: dict[str, dict[int, tuple]] = {}
        self._seen: dict[int, tuple] = {}  # id -> (tensor kept alive, moments, grad targets)

    def record(self, path: str, out: Any) -> None:
        calls = self.outputs.setdefault(path, [])
        entry = self._seen.get(id(out))
        if entry is None:
            targets: list[tuple[str, int]] = []
            if not self._watch(out, lambda g, targets=targets: self._gradient(targets, g)):
                targets = None
            entry = self._seen[id(out)] = (out, self._moments(out), targets)
        calls.append(entry[1])
        if entry[2] is not None:
            entry[2].append((path, len(calls) - 1))

    def _gradient(self, targets, grad) -> None:
        moments = self._moments(grad)
        for path, call in targets:
            self._grads.setdefault(path, {})[call] = moments

    def output_grads(self) -> dict[str, list]:
        return {k: [v.get(i) for i in range(len(self.outputs[k]))] for k, v in self._grads.items()}

"""Running a native module: the forward passes every adapter gives (``trace``, ``forward``)
and the helpers adapters share for a module's nested inputs and outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np


class Running(ABC):
    """Forward passes on channel-first numpy (``xinit.run``, ``trace``, ``parity``): an
    adapter implements :meth:`trace` and :meth:`forward`."""

    @abstractmethod
    def trace(self, module: Any, x: np.ndarray) -> dict[str, np.ndarray]:
        """Eval-mode forward recording every submodule's output (dotted path -> channel-first
        numpy; "" is the whole model). A module applied twice reports its last call."""

    def float64(self, module: Any):
        """A context in which ``module`` computes in float64 (its float32 parameters and
        buffers cast, restored exactly on exit): the reference run that measures float32
        rounding for :func:`xinit.parity`."""
        raise NotImplementedError(f"{self.name}: no float64 run")

    def trace_shapes(self, module: Any, x: np.ndarray) -> dict[str, tuple[int, ...]]:
        """Like :meth:`trace`, the channel-first output shape of every submodule only. An
        adapter whose framework can infer shapes without computing (Flax) does so."""
        return {path: tuple(v.shape) for path, v in self.trace(module, x).items()}

    @abstractmethod
    def forward(self, module: Any, x: np.ndarray, train: bool) -> np.ndarray:
        """A gradient-free forward of channel-first numpy ``x`` in training or eval mode,
        leaving the module in the mode it was in; channel-first numpy out."""

    def run(self, module: Any, x: np.ndarray, device: str | None = None) -> np.ndarray:
        """Eval-mode, gradient-free forward of channel-first numpy ``x``; channel-first out."""
        return self.forward(module, x, train=False)

    def run_train(self, module: Any, x: np.ndarray) -> np.ndarray:
        """One training-mode forward without gradients (BatchNorm uses the batch statistics
        and updates its running ones); the module's mode is restored."""
        return self.forward(module, x, train=True)


class LayerTracker:
    """Which layer a traced forward was in when it failed: a native model's own error (an
    input too small for a conv) becomes one line naming the layer path and class."""

    def __init__(self):
        self.entered: list[tuple[str, Any]] = []
        self.done: set[str] = set()

    def enter(self, path: str, layer: Any) -> None:
        self.entered.append((path, layer))

    def leave(self, path: str) -> None:
        self.done.add(path)

    def error(self, err: BaseException) -> ValueError:
        """The innermost layer entered and not left, named, with the error's first line."""
        path, layer = next(
            ((p, m) for p, m in reversed(self.entered) if p not in self.done), ("", None)
        )
        what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return ValueError(f"layer {path or '<root>'} ({type(layer).__name__}): {what}")


def map_arrays(fn: Callable[[Any], Any], value: Any, leaf: type | tuple = ()) -> Any:
    """``fn`` applied to every array of a nested tuple/list/dict (a graph's inputs or
    outputs), keeping the structure; ``leaf`` types are arrays even if iterable."""
    if isinstance(value, dict):
        return {k: map_arrays(fn, v, leaf) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and not isinstance(value, leaf or ()):
        return tuple(map_arrays(fn, v, leaf) for v in value)
    return fn(value)


def array_leaves(value: Any) -> list:
    """The arrays of a nested tuple/dict output (a graph's several outputs), in order."""
    out: list = []
    map_arrays(out.append, value)
    return out


def as_args(x: Any) -> tuple:
    """A module's positional inputs: a tuple/list is several, anything else one."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def set_mode(module: Any, train: bool) -> None:
    """Training or eval mode, for frameworks with separate ``train()`` and ``eval()`` calls."""
    if train:
        module.train()
    else:
        module.eval()

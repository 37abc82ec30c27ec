"""The spec protocol every layer follows: ``Layer``, ``ParamSpec`` and the checks they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..errors import XinitError
from ..fans import Fans
from ..initializers import (
    Initializer,
    KaimingUniform,
)

_TORCH_DEFAULT = KaimingUniform(a=math.sqrt(5.0))  # U(+-1/sqrt(fan_in)) for weight and bias


class SpecError(XinitError, ValueError):
    """A spec that cannot run; the message names the layer path and the shapes involved."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter or buffer of a layer, in neutral terms."""

    name: str  # neutral leaf name: weight, bias, running_mean, running_var, num_batches_tracked
    shape: tuple[int, ...]
    role: str  # fan role: linear, conv, conv_transpose, embedding, vector
    init: Initializer
    kind: str  # the owning layer's neutral kind
    fans: Fans | None = None  # fans for fan-based inits (a bias uses its weight's)
    trainable: bool = True
    dtype: str = "float32"
    layer: Layer | None = field(default=None, repr=False, compare=False)  # the owning spec

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def owner(self, path: str) -> str:
        """The layer path of this parameter's full ``path``; a leaf name may be dotted
        (``out_proj.weight`` of attention), so the path is cut at the name, not the last dot;
        an empty name (a learned-parameter node's) is the layer path itself."""
        if not self.name:
            return path
        if path == self.name:
            return ""
        if path.endswith("." + self.name):
            return path[: -len(self.name) - 1]
        return path.rpartition(".")[0]


def _tuple(value, n: int, what: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * n
    value = tuple(value)
    if len(value) != n or not all(isinstance(v, int) for v in value):
        raise SpecError(f"{what} must be an int or a tuple of {n} ints; got {value!r}")
    return value


def _dims_of(kernel, dims: int | None) -> int:
    if dims is not None:
        return dims
    return len(kernel) if isinstance(kernel, (tuple, list)) else 2


class Layer:
    """Base of layer specs. ``kind`` is the neutral kind policies match on."""

    kind: ClassVar[str] = ""
    # What ``xinit.run`` lets the first layer take: "float" (its parameters' float type),
    # "ids" (integer token ids) or "any" (only the shape is read).
    takes: ClassVar[str] = "float"

    def params(self) -> tuple[ParamSpec, ...]:
        """Parameters and buffers (neutral names, shapes, roles, default initializers)."""
        cached = self.__dict__.get("_params_cache")  # specs are frozen: compute once
        if cached is None:
            cached = tuple(replace(p, layer=self) for p in self._params())
            object.__setattr__(self, "_params_cache", cached)
        return cached

    def _params(self) -> tuple[ParamSpec, ...]:
        return ()

    def buffer_value(self, name: str):
        """The start value of buffer ``name`` where no constant gives it (Swin's
        ``relative_position_index``): a numpy array, neutral layout; None: its init's
        constant (running statistics, counters)."""
        return None

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape)

    def inputs_taken(self) -> tuple[int, int | None]:
        """(fewest, most) inputs a graph node of this layer takes (None: no limit); a layer
        of several inputs gets their shapes as a tuple in :meth:`output_shape`."""
        return (1, 1)

    def channels(self, c: int | None) -> int | None:
        """The channel (feature) count out, given ``c`` in (None: unknown), for the check a
        build can make without an input size; SpecError when ``c`` is not what it takes."""
        return c

    def _take_channels(self, need: int, c: int | None) -> None:
        if c is not None and need != c:
            raise SpecError(f"{type(self).__name__} expects {need} input channels but receives {c}")

    def _need_rank(self, shape, ranks, what="input") -> None:
        if len(shape) not in ranks:
            raise SpecError(
                f"{type(self).__name__} expects a {'/'.join(map(str, ranks))}-d {what} "
                f"(N, C, ...); got shape {tuple(shape)}"
            )

    def _need_channels(self, shape, channels) -> None:
        if shape[1] != channels:
            raise SpecError(
                f"{type(self).__name__} expects {channels} input channels; got {shape[1]} "
                f"(input shape {tuple(shape)})"
            )


def inputs_text(lo: int, hi: int | None) -> str:
    """``one input``, ``2 inputs``, ``1 to 3 inputs``, ``1 or more inputs``: for errors."""
    if hi == 1:
        return "one input"
    if hi is None:
        return f"{lo} or more inputs"
    return f"{lo} inputs" if lo == hi else f"{lo} to {hi} inputs"


def _dim(dim: int, ndim: int, who: str) -> int:
    if not -ndim <= dim < ndim:
        raise SpecError(f"{who}: dim {dim} is out of range for a {ndim}-d input")
    return dim % ndim


def _set(obj, **kw) -> None:
    for k, v in kw.items():
        object.__setattr__(obj, k, v)


def _positive_int(obj, **kw) -> None:
    for k, v in kw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SpecError(f"{type(obj).__name__}.{k} must be a positive int; got {v!r}")

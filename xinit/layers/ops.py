"""The functional glue of traced models as graph nodes: arithmetic with a number, reductions,
split/slice, channel shuffle, padding, and learned tensors used in a graph's arithmetic.

Every dim is neutral (channel-first, batch = dim 0, as PyTorch's); each framework's lowering
maps it onto the layout it holds.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..initializers import Initializer, Normal
from .base import Layer, ParamSpec, SpecError, _dim, _positive_int, _set
from .channelwise import _finite_number

# op -> (x, value) -> y, on any framework's tensors (their Python operators broadcast a number)
SCALAR_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "rsub": lambda x, v: v - x,
    "mul": operator.mul,
    "div": operator.truediv,
    "rdiv": lambda x, v: v / x,
    "pow": operator.pow,
}
REDUCE_OPS = ("mean", "sum", "max")
PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _int(obj, **kw) -> None:
    for k, v in kw.items():
        if not isinstance(v, int) or isinstance(v, bool):
            raise SpecError(f"{type(obj).__name__}.{k} must be an int; got {v!r}")


def _ints(obj, name: str, value) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a tuple, set on ``obj`` as ``name``."""
    values = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        values = (value,)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise SpecError(f"{type(obj).__name__}.{name} must be ints; got {value!r}")
    _set(obj, **{name: values})
    return values


def _not_batch(obj, dim: int, shape) -> int:
    """``dim`` of ``shape`` as an index from 0; SpecError when it is the batch (dim 0)."""
    d = _dim(dim, len(shape), type(obj).__name__)
    if d == 0:
        raise SpecError(f"{type(obj).__name__}: dim {dim} is the batch of input {tuple(shape)}")
    return d


@kinds.layer(example=lambda: kinds.Example(ScalarOp("rsub", 2.5), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class ScalarOp(Layer):
    """``x <op> value`` with a number: ``add``, ``sub``, ``rsub`` (value - x), ``mul``,
    ``div``, ``rdiv`` (value / x), ``pow`` (x ** value)."""

    kind: ClassVar[str] = "scalar_op"
    op: str = "mul"
    value: float = 1.0

    def __post_init__(self):
        if self.op not in SCALAR_OPS:
            raise SpecError(f"ScalarOp.op must be one of {tuple(SCALAR_OPS)}; got {self.op!r}")
        _finite_number(self, value=self.value)

    def apply(self, x):
        """The op on ``x``, any framework's array (their operators take a Python number)."""
        return SCALAR_OPS[self.op](x, self.value)


@kinds.layer(example=lambda: kinds.Example(Reduce("mean", (2, 3), keepdim=True), ((2, 3, 4, 5),)))
@dataclass(frozen=True)
class Reduce(Layer):
    """``x.mean(dims, keepdim)`` (``sum``, ``max``: amax) over neutral ``dims``."""

    kind: ClassVar[str] = "reduce"
    op: str = "mean"
    dims: int | tuple[int, ...] = -1
    keepdim: bool = False

    def __post_init__(self):
        if self.op not in REDUCE_OPS:
            raise SpecError(f"Reduce.op must be one of {REDUCE_OPS}; got {self.op!r}")
        dims = _ints(self, "dims", self.dims)
        if not dims or len(set(dims)) != len(dims):
            raise SpecError(f"Reduce.dims must be distinct dims, at least one; got {self.dims}")
        if not isinstance(self.keepdim, bool):
            raise SpecError(f"Reduce.keepdim must be True or False; got {self.keepdim!r}")

    def axes(self, ndim: int) -> tuple[int, ...]:
        """The reduced dims of an ``ndim``-d input, counted from 0, sorted."""
        axes = sorted(_dim(d, ndim, "Reduce") for d in self.dims)
        if len(set(axes)) != len(axes):
            raise SpecError(f"Reduce: dims {self.dims} name one dim twice for a {ndim}-d input")
        return tuple(axes)

    def channels(self, c):
        return c if min(self.dims) >= 2 else None

    def output_shape(self, shape):
        axes = self.axes(len(shape))
        if self.keepdim:
            return tuple(1 if i in axes else n for i, n in enumerate(shape))
        return tuple(n for i, n in enumerate(shape) if i not in axes)


@kinds.layer(example=lambda: kinds.Example(Split((1, 2), 1), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Split(Layer):
    """``torch.split(x, sizes, dim)``: parts of ``sizes`` along neutral ``dim``, as a dict
    ``{"0": part0, "1": part1, ...}``; a graph node takes part k as the input ``"node.k"``."""

    kind: ClassVar[str] = "split"
    sizes: tuple[int, ...] = (1,)
    dim: int = 1

    def __post_init__(self):
        sizes = _ints(self, "sizes", self.sizes)
        if not sizes or min(sizes) < 1:
            raise SpecError(f"Split.sizes must be sizes >= 1; got {self.sizes!r}")
        _int(self, dim=self.dim)

    def bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each part along the dim."""
        ends = [sum(self.sizes[: i + 1]) for i in range(len(self.sizes))]
        return list(zip([0, *ends[:-1]], ends))

    def parts(self, x) -> dict:
        """The parts of ``x`` (any framework's array, indexed by slices) by key."""
        d = self.dim % x.ndim
        lead = (slice(None),) * d
        return {str(i): x[(*lead, slice(a, b))] for i, (a, b) in enumerate(self.bounds())}

    def channels(self, c):
        # dim 2 may be a sequence's features, a negative dim any: unknown without the rank
        same = c if self.dim >= 3 else None
        return {str(i): n if self.dim == 1 else same for i, n in enumerate(self.sizes)}

    def output_shape(self, shape):
        d = _not_batch(self, self.dim, shape)
        if sum(self.sizes) != shape[d]:
            raise SpecError(
                f"Split: sizes {self.sizes} sum to {sum(self.sizes)}, not the {shape[d]} of dim "
                f"{self.dim} of input {tuple(shape)}"
            )
        return {str(i): (*shape[:d], n, *shape[d + 1 :]) for i, n in enumerate(self.sizes)}


@kinds.layer(example=lambda: kinds.Example(Slice(2, 1, None, 2), ((2, 3, 5, 4),)))
@dataclass(frozen=True)
class Slice(Layer):
    """``x[..., start:stop:step]`` on neutral ``dim`` (stop None: to the end; negative start
    and stop count from the end, as Python's)."""

    kind: ClassVar[str] = "slice"
    dim: int = 1
    start: int = 0
    stop: int | None = None
    step: int = 1

    def __post_init__(self):
        _int(self, dim=self.dim, start=self.start, step=self.step)
        if self.stop is not None:
            _int(self, stop=self.stop)
        if self.step < 1:
            raise SpecError(f"Slice.step must be >= 1; got {self.step}")

    def index(self, ndim: int) -> tuple[slice, ...]:
        """The index of an ``ndim``-d array that takes this slice."""
        return (*(slice(None),) * (self.dim % ndim), slice(self.start, self.stop, self.step))

    def channels(self, c):
        return c if self.dim >= 2 else None

    def output_shape(self, shape):
        d = _not_batch(self, self.dim, shape)
        n = len(range(*slice(self.start, self.stop, self.step).indices(shape[d])))
        if n < 1:
            raise SpecError(
                f"Slice {self.start}:{self.stop}:{self.step} of dim {self.dim} is empty for "
                f"input {tuple(shape)}"
            )
        return (*shape[:d], n, *shape[d + 1 :])


@kinds.layer(
    channels="",
    example=lambda: kinds.Example(ChannelShuffle(2), ((2, 6, 3, 3),)),
)
@dataclass(frozen=True)
class ChannelShuffle(Layer):
    """ShuffleNet's channel shuffle (``nn.ChannelShuffle``): channels (N, g·k, ...) viewed as
    (g, k), transposed to (k, g), flattened back."""

    kind: ClassVar[str] = "channel_shuffle"
    groups: int = 1

    def __post_init__(self):
        _positive_int(self, groups=self.groups)

    def channels(self, c):
        if c is not None and c % self.groups:
            raise SpecError(f"ChannelShuffle: {c} channels do not split into {self.groups} groups")
        return c

    def output_shape(self, shape):
        self._need_rank(shape, (3, 4, 5))
        self.channels(shape[1])
        return tuple(shape)


@kinds.layer(example=lambda: kinds.Example(Pad((1, 2, 0, 1), "reflect"), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Pad(Layer):
    """``F.pad(x, pads, mode, value)``: ``pads`` in PyTorch's order, the last dim first
    (left, right, then the dim before it, ...); ``mode`` constant (``value``), reflect,
    replicate (edge) or circular (wrap)."""

    kind: ClassVar[str] = "pad"
    pads: tuple[int, ...] = ()
    mode: str = "constant"
    value: float = 0.0

    def __post_init__(self):
        pads = _ints(self, "pads", self.pads)
        if not pads or len(pads) % 2 or min(pads) < 0:
            raise SpecError(f"Pad.pads must be (left, right) pairs of sizes >= 0; got {pads}")
        if self.mode not in PAD_MODES:
            raise SpecError(f"Pad.mode must be one of {PAD_MODES}; got {self.mode!r}")
        _finite_number(self, value=self.value)

    def widths(self, ndim: int) -> list[tuple[int, int]]:
        """(before, after) for each dim of an ``ndim``-d input, first dim first."""
        pairs = [(self.pads[i], self.pads[i + 1]) for i in range(0, len(self.pads), 2)]
        return [(0, 0)] * (ndim - len(pairs)) + pairs[::-1]

    def channels(self, c):
        return None  # the channels may be padded too (a 2-d input's last dim)

    def output_shape(self, shape):
        n = len(shape)
        padded = len(self.pads) // 2
        if padded > n - 1 or (self.mode != "constant" and padded > n - 2):
            what = "the batch" if self.mode == "constant" else "the batch or the channels"
            raise SpecError(
                f"Pad {self.pads} ({self.mode}) would pad {what} of input {tuple(shape)}"
            )
        widths = self.widths(n)
        if self.mode == "reflect":
            for size, (a, b) in zip(shape, widths):
                if max(a, b) >= size:
                    raise SpecError(
                        f"Pad: reflect padding {self.pads} needs each pad below its dim's size; "
                        f"input {tuple(shape)}"
                    )
        return tuple(size + a + b for size, (a, b) in zip(shape, widths))


@kinds.layer(
    params=("",),
    example=lambda: kinds.Example(LearnedTensor((3, 1, 1)), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class LearnedTensor(Layer):
    """A learned tensor used in a graph's arithmetic (LearnableAffineBlock's ``scale`` and
    ``bias``, a layer-scale ``gamma`` used by hand): the node outputs the tensor itself, of
    neutral ``shape`` as given (no batch axis added), broadcast as numpy's by what takes it.

    Like :class:`LearnedParameter`, its one parameter has the empty leaf name and lives on
    the enclosing container: a node named ``scale`` is the state key ``scale``. The node
    takes one input only to place it in the graph; the input is ignored. Default init
    N(0, 0.02) (give ``init=Constant(1.0)`` for a scale)."""

    kind: ClassVar[str] = "learned_tensor"
    needs_container: ClassVar[bool] = True  # its parameter lives on the enclosing container
    op: ClassVar[str] = "tensor"  # what the container does with it: hand the tensor on
    takes: ClassVar[str] = "any"
    shape: tuple[int, ...] = (1,)
    init: Initializer | None = None

    def __post_init__(self):
        shape = _ints(self, "shape", self.shape)
        if not shape or min(shape) < 1:
            raise SpecError(f"LearnedTensor.shape must be sizes >= 1; got {self.shape!r}")

    def channels(self, c):
        return None

    def _params(self):
        init = self.init or Normal(0.0, 0.02)
        return (ParamSpec("", self.shape, "vector", init, self.kind),)

    def output_shape(self, shape):
        return self.shape

"""Sequence helpers: learned parameters (ViT's ``cls_token``), ``Select``, ``PositionIds``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..initializers import (
    Initializer,
    Normal,
)
from .base import Layer, ParamSpec, SpecError, _dim, _positive_int, _set

LEARNED_OPS = ("add", "prepend")


@kinds.layer(
    params=("",),
    aliases=("learned", "parameter"),
    example=lambda: kinds.Example(LearnedParameter((1, 3, 4)), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class LearnedParameter(Layer):
    """A learned tensor as a node of a container (ViT's ``cls_token``, ``pos_embed``).

    Its single parameter has an empty leaf name, so its path is the node's: a node named
    ``cls_token`` is the state-dict key ``cls_token``, a parameter of the container itself
    as timm registers it. ``shape`` is the whole parameter, batch axis 1 first. ``op`` is
    what the node does to its input (N, L, *rest): ``"prepend"`` concatenates the parameter
    (1, T, *rest), broadcast over the batch, before the sequence, giving (N, T + L, *rest)
    (a class token); ``"add"`` adds the parameter (1, L, *rest) (positions). Default init
    N(0, 0.02), as torchvision's ViT gives its positions."""

    kind: ClassVar[str] = "learned_parameter"
    needs_container: ClassVar[bool] = True  # its parameter lives on the enclosing container
    shape: tuple[int, ...]
    op: str = "add"
    init: Initializer | None = None

    def __post_init__(self):
        shape = (self.shape,) if isinstance(self.shape, int) else tuple(self.shape)
        if (
            len(shape) < 2
            or shape[0] != 1
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
        ):
            raise SpecError(
                f"LearnedParameter.shape must be (1, L, *rest) with positive sizes (axis 0 is "
                f"broadcast over the batch); got {self.shape!r}"
            )
        _set(self, shape=shape)
        if self.op not in LEARNED_OPS:
            raise SpecError(f"LearnedParameter.op must be one of {LEARNED_OPS}; got {self.op!r}")

    def channels(self, c):
        return c  # the feature (last) size is kept

    def _params(self):
        init = self.init or Normal(0.0, 0.02)
        return (ParamSpec("", self.shape, "vector", init, self.kind),)

    def output_shape(self, shape):
        p, shape = self.shape, tuple(shape)
        if len(shape) != len(p):
            raise SpecError(
                f"LearnedParameter (op={self.op!r}) of shape {p} needs a {len(p)}-d input; got "
                f"shape {shape}"
            )
        if self.op == "add":
            if shape[1:] != p[1:]:
                raise SpecError(
                    f"LearnedParameter (op='add') of shape {p} does not match input {shape}: "
                    f"{p[1]} positions for {shape[1]} tokens"
                    if shape[2:] == p[2:]
                    else f"LearnedParameter (op='add') of shape {p} does not match input {shape}"
                )
            return shape
        if shape[2:] != p[2:]:
            raise SpecError(
                f"LearnedParameter (op='prepend') of shape {p} cannot be put before input "
                f"{shape}: the sizes after the sequence axis differ"
            )
        return (shape[0], shape[1] + p[1], *shape[2:])


@kinds.layer(
    example=lambda: kinds.Example(Select(1, 0), ((2, 3, 4),)),
)
@dataclass(frozen=True)
class Select(Layer):
    """``x.select(dim, index)``: one index of neutral dim ``dim``, that dim removed (ViT's
    class-token pooling ``x[:, 0]``)."""

    kind: ClassVar[str] = "select"
    dim: int = 1
    index: int = 0

    def __post_init__(self):
        for name in ("dim", "index"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise SpecError(f"Select.{name} must be an int; got {value!r}")
        if self.dim == 0:
            raise SpecError("Select: dim 0 is the batch")

    def channels(self, c):
        return None

    def output_shape(self, shape):
        d = _dim(self.dim, len(shape), "Select")
        if d == 0:
            raise SpecError(f"Select: dim {self.dim} is the batch of input {tuple(shape)}")
        if not -shape[d] <= self.index < shape[d]:
            raise SpecError(
                f"Select: index {self.index} is out of range for dim {self.dim} of input "
                f"{tuple(shape)}"
            )
        return (*shape[:d], *shape[d + 1 :])

    def position(self, size: int) -> int:
        """The index in ``0 .. size - 1`` (a negative index counts from the end)."""
        return self.index % size


@kinds.layer(
    example=lambda: kinds.Example(PositionIds(8), ((2, 5),), ids=8),
)
@dataclass(frozen=True)
class PositionIds(Layer):
    """Token ids (N, L) in, their positions ``arange(L)`` for every sample out (N, L): what
    GPT-2 feeds its position embedding ``wpe``. ``num_positions`` (the table's size), when
    given, bounds L."""

    kind: ClassVar[str] = "position_ids"
    takes: ClassVar[str] = "any"
    num_positions: int | None = None

    def __post_init__(self):
        if self.num_positions is not None:
            _positive_int(self, num_positions=self.num_positions)

    def channels(self, c):
        return None

    def output_shape(self, shape):
        if len(shape) != 2:
            raise SpecError(f"PositionIds expects token ids (N, L); got shape {tuple(shape)}")
        if self.num_positions is not None and shape[1] > self.num_positions:
            raise SpecError(
                f"PositionIds: {shape[1]} tokens exceed the {self.num_positions} positions "
                f"(input shape {tuple(shape)})"
            )
        return tuple(shape)

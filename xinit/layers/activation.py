"""Element-wise layers: activations, ``Identity`` and ``Dropout``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError


# ---- activations and shape-only layers -----------------------------------------------------
@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(ReLU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class ReLU(Layer):
    kind: ClassVar[str] = "relu"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(LeakyReLU(0.2), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class LeakyReLU(Layer):
    kind: ClassVar[str] = "leaky_relu"
    negative_slope: float = 0.01


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(GELU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class GELU(Layer):
    """Exact (erf) GELU by default, as PyTorch; ``approximate="tanh"`` for the tanh form."""

    kind: ClassVar[str] = "gelu"
    approximate: str = "none"

    def __post_init__(self):
        if self.approximate not in ("none", "tanh"):
            raise SpecError(f"GELU.approximate must be 'none' or 'tanh'; got {self.approximate!r}")


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(SiLU(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class SiLU(Layer):
    kind: ClassVar[str] = "silu"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Sigmoid(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Sigmoid(Layer):
    kind: ClassVar[str] = "sigmoid"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Tanh(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Tanh(Layer):
    kind: ClassVar[str] = "tanh"


@kinds.layer(activation=True, example=lambda: kinds.Example(Hardswish(), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Hardswish(Layer):
    """x · relu6(x + 3) / 6 (MobileNetV3's activation, PyTorch's ``nn.Hardswish``)."""

    kind: ClassVar[str] = "hardswish"


@kinds.layer(
    activation=True,
    example=lambda: kinds.Example(Identity(), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Identity(Layer):
    kind: ClassVar[str] = "identity"


@kinds.layer(
    example=lambda: kinds.Example(Dropout(0.3), ((2, 3, 4, 4),)),
)
@dataclass(frozen=True)
class Dropout(Layer):
    kind: ClassVar[str] = "dropout"
    p: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.p < 1.0:
            raise SpecError(f"Dropout.p must be in [0, 1); got {self.p!r}")

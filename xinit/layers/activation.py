"""Element-wise layers: activations, ``Identity``, ``Dropout``, ``StochasticDepth``; and the
softmaxes over one dim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from .base import Layer, SpecError, _dim
from .channelwise import _finite_number

DROPOUT_MODES = ("upscale_in_train", "downscale_in_infer")


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


@kinds.layer(activation=True, example=lambda: kinds.Example(Hardsigmoid(), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Hardsigmoid(Layer):
    """clip(x · slope + offset, 0, 1): PyTorch's ``nn.Hardsigmoid`` with the defaults (slope
    1/6), Paddle's ``F.hardsigmoid(x, slope, offset)`` (PaddleOCR's slope 0.2) otherwise."""

    kind: ClassVar[str] = "hardsigmoid"
    slope: float = 1.0 / 6.0
    offset: float = 0.5

    def __post_init__(self):
        _finite_number(self, slope=self.slope, offset=self.offset)

    @property
    def is_default(self) -> bool:
        """Whether this is PyTorch's hardsigmoid (slope 1/6, offset 1/2): the native classes."""
        return abs(self.slope - 1.0 / 6.0) < 1e-7 and self.offset == 0.5


@kinds.layer(activation=True, example=lambda: kinds.Example(ReLU6(), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class ReLU6(Layer):
    """min(max(x, 0), 6) (MobileNet's ``nn.ReLU6``)."""

    kind: ClassVar[str] = "relu6"


@kinds.layer(activation=True, example=lambda: kinds.Example(Clip(-0.5, 0.75), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Clip(Layer):
    """x clamped to [min, max] (``torch.clamp``, ``nn.Hardtanh``, ``paddle.clip``); one bound
    may be None (no bound on that side). Defaults: Hardtanh's [-1, 1]."""

    kind: ClassVar[str] = "clip"
    min: float | None = -1.0
    max: float | None = 1.0

    def __post_init__(self):
        bounds = {k: v for k, v in (("min", self.min), ("max", self.max)) if v is not None}
        if not bounds:
            raise SpecError("Clip needs a min or a max (both are None)")
        _finite_number(self, **bounds)
        if len(bounds) == 2 and self.min > self.max:
            raise SpecError(f"Clip: min {self.min} is above max {self.max}")


@dataclass(frozen=True)
class _OverDim(Layer):
    """A normalisation over one neutral (channel-first) dim ``dim``."""

    dim: int = -1

    def __post_init__(self):
        if not isinstance(self.dim, int) or isinstance(self.dim, bool):
            raise SpecError(f"{type(self).__name__}.dim must be an int; got {self.dim!r}")

    def output_shape(self, shape):
        _dim(self.dim, len(shape), type(self).__name__)
        return tuple(shape)


@kinds.layer(example=lambda: kinds.Example(Softmax(1), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class Softmax(_OverDim):
    """exp(x) / sum(exp(x)) over neutral dim ``dim`` (``nn.Softmax(dim)``; dim 1 of an image:
    its channels, in every framework's layout)."""

    kind: ClassVar[str] = "softmax"


@kinds.layer(example=lambda: kinds.Example(LogSoftmax(-1), ((2, 5, 7),)))
@dataclass(frozen=True)
class LogSoftmax(_OverDim):
    """log(softmax(x)) over neutral dim ``dim`` (``nn.LogSoftmax(dim)``: a CTC head's output)."""

    kind: ClassVar[str] = "log_softmax"


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
    """Dropout of probability ``p``. ``mode`` is Paddle's: ``"upscale_in_train"`` (PyTorch's
    and Flax's only one: kept values scaled by 1/(1 - p) in training, identity at inference);
    ``"downscale_in_infer"`` (kept values as they are in training, x · (1 - p) at inference)."""

    kind: ClassVar[str] = "dropout"
    p: float = 0.5
    mode: str = "upscale_in_train"

    def __post_init__(self):
        if not 0.0 <= self.p < 1.0:
            raise SpecError(f"Dropout.p must be in [0, 1); got {self.p!r}")
        if self.mode not in DROPOUT_MODES:
            raise SpecError(f"Dropout.mode must be one of {DROPOUT_MODES}; got {self.mode!r}")


@kinds.layer(example=lambda: kinds.Example(StochasticDepth(0.2), ((2, 3, 4, 4),)))
@dataclass(frozen=True)
class StochasticDepth(Layer):
    """Drops whole samples with probability ``p`` in training, the kept ones scaled by
    1/(1 - p) (torchvision's ``StochasticDepth(p, "row")``, timm's ``DropPath``); identity at
    inference."""

    kind: ClassVar[str] = "stochastic_depth"
    p: float = 0.0

    def __post_init__(self):
        if isinstance(self.p, bool) or not 0.0 <= self.p < 1.0:
            raise SpecError(f"StochasticDepth.p must be in [0, 1); got {self.p!r}")

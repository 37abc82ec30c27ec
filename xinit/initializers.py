"""Initializer specs: frozen, validated, framework-neutral.

An initializer is a recipe; ``resolve(shape, role, fans)`` turns it into a concrete
:mod:`xinit.distributions` law once the parameter's neutral shape and fans are known.
Names and defaults follow PyTorch's ``torch.nn.init`` unless said otherwise.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from .distributions import (
    ConstantDist,
    DiracDist,
    Distribution,
    EyeDist,
    NormalDist,
    OrthogonalDist,
    TruncNormalDist,
    UniformDist,
)
from .errors import InitializerError
from .fans import Fans, check_role, compute_fans

# std of N(0, 1) truncated to [-2, 2]: the variance correction of JAX/Keras variance_scaling.
TRUNC_STD_2 = 0.87962566103423978

NONLINEARITIES = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
)
MODES = ("fan_in", "fan_out")
VS_MODES = ("fan_in", "fan_out", "fan_avg")
VS_DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")


def gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's ``nn.init.calculate_gain`` table (Paddle's is the same)."""
    if nonlinearity not in NONLINEARITIES:
        raise InitializerError(f"unknown nonlinearity {nonlinearity!r}; accepted: {NONLINEARITIES}")
    if nonlinearity in ("tanh",):
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 3.0 / 4.0
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise InitializerError(f"negative_slope {param!r} is not a valid number")
        else:
            slope = float(param)
        try:
            return math.sqrt(2.0 / (1.0 + slope**2))
        except OverflowError:
            raise InitializerError(
                f"leaky_relu negative_slope a={param!r} is too large: 1 + a**2 overflows"
            ) from None
    return 1.0


def _positive(name: str, value: float) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise InitializerError(f"{name} must be a positive, finite number; got {value!r}")


def _finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InitializerError(f"{name} must be a finite number; got {value!r}")


def _normal_mass(a: float, b: float) -> float:
    """P(a <= Z <= b) for a standard normal Z, accurate in either tail (erfc, not 1 - erf)."""
    if a > 0:  # upper tail: Phi(b) - Phi(a) = Q(a) - Q(b)
        return 0.5 * (math.erfc(a / math.sqrt(2.0)) - math.erfc(b / math.sqrt(2.0)))
    if b < 0:
        return _normal_mass(-b, -a)
    return 1.0 - 0.5 * (math.erfc(-a / math.sqrt(2.0)) + math.erfc(b / math.sqrt(2.0)))


def _choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise InitializerError(f"{name} must be one of {accepted}; got {value!r}")


FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


def _finite_law(init: Initializer, dist: Distribution) -> Distribution:
    """``dist`` if its mean, std (and an orthogonal law's gain) are finite in float32, the
    dtype weights are drawn in; otherwise ValueError (``Orthogonal(gain=1e308)`` would fill
    a tensor with inf and report success)."""
    values = []
    for name in ("mean", "std"):
        with contextlib.suppress(NotImplementedError, TypeError, AttributeError):
            values.append(float(getattr(dist, name)()))
    if isinstance(dist, OrthogonalDist):
        values.append(float(dist.gain))
    for value in values:
        if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
            raise InitializerError(
                f"{init}: resolves to {dist}, not finite in float32 ({value!r}); the weights "
                "would be inf or nan"
            )
    return dist


class Initializer:
    """Base of all initializer specs."""

    def __str__(self) -> str:
        """Compact form: only the arguments that differ from the defaults."""
        import dataclasses

        args = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            text = f"{value:.4g}" if isinstance(value, float) else repr(value)
            args.append(f"{f.name}={text}")
        return f"{type(self).__name__}({', '.join(args)})"

    def resolve(
        self,
        shape: tuple[int, ...],
        role: str = "linear",
        fans: Fans | None = None,
        *,
        param=None,
    ) -> Distribution:
        """The distribution for a parameter of neutral ``shape`` and ``role``.

        ``fans`` overrides the fans computed from the shape (a layer passes its weight's fans
        for the bias, as PyTorch's default bias init does). ``param`` is the full
        :class:`xinit.layers.ParamSpec` when known (framework defaults need the layer).
        """
        check_role(role, tuple(shape))
        return _finite_law(self, self._resolve(tuple(shape), role, fans))

    def _resolve(self, shape, role, fans) -> Distribution:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def _fans(shape, role, fans: Fans | None, who: str) -> Fans:
        if fans is not None:
            return fans
        try:
            return compute_fans(shape, role)
        except ValueError as err:
            raise InitializerError(f"{who}: {err}") from None


@dataclass(frozen=True)
class Constant(Initializer):
    value: float = 0.0

    def __post_init__(self):
        _finite("Constant.value", self.value)

    def __str__(self) -> str:
        """``Zeros()`` for 0 (reports would otherwise print ``Constant()``), else the value."""
        return "Zeros()" if self.value == 0 else f"Constant({self.value:.4g})"

    def _resolve(self, shape, role, fans):
        return ConstantDist(float(self.value))


@dataclass(frozen=True)
class Zeros(Initializer):
    def _resolve(self, shape, role, fans):
        return ConstantDist(0.0)


@dataclass(frozen=True)
class Ones(Initializer):
    def _resolve(self, shape, role, fans):
        return ConstantDist(1.0)


@dataclass(frozen=True)
class Normal(Initializer):
    """N(mean, std^2), untruncated (``nn.init.normal_``)."""

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self):
        _finite("Normal.mean", self.mean)
        _positive("Normal.std", self.std)

    def _resolve(self, shape, role, fans):
        return NormalDist(float(self.mean), float(self.std))


@dataclass(frozen=True)
class Uniform(Initializer):
    """U(low, high) (``nn.init.uniform_``; defaults 0 and 1 as there)."""

    low: float = 0.0
    high: float = 1.0

    def __post_init__(self):
        _finite("Uniform.low", self.low)
        _finite("Uniform.high", self.high)
        if not self.low < self.high:
            raise InitializerError(
                f"Uniform needs low < high; got low={self.low}, high={self.high}"
            )

    def _resolve(self, shape, role, fans):
        return UniformDist(float(self.low), float(self.high))


@dataclass(frozen=True)
class TruncatedNormal(Initializer):
    """N(mean, std^2) cut to the **absolute** interval [low, high] (PyTorch's ``trunc_normal_``).

    ``std`` is the pre-truncation scale. For bounds in standard deviations (JAX/Keras meaning)
    use :meth:`TruncatedNormal.in_stds`.
    """

    mean: float = 0.0
    std: float = 1.0
    low: float = -2.0
    high: float = 2.0

    def __post_init__(self):
        _finite("TruncatedNormal.mean", self.mean)
        _positive("TruncatedNormal.std", self.std)
        _finite("TruncatedNormal.low", self.low)
        _finite("TruncatedNormal.high", self.high)
        if not self.low < self.high:
            raise InitializerError(
                f"TruncatedNormal needs low < high; got low={self.low}, high={self.high}"
            )
        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        mass = _normal_mass(a, b)
        if not mass > 1e-9:
            raise InitializerError(
                f"TruncatedNormal: [low, high] = [{self.low}, {self.high}] holds {mass:.3g} of the "
                f"probability of N({self.mean}, {self.std}^2) (needs > 1e-9); low and high are "
                "absolute bounds: for bounds in standard deviations use TruncatedNormal.in_stds"
            )

    @classmethod
    def in_stds(
        cls, mean: float = 0.0, std: float = 1.0, lower: float = -2.0, upper: float = 2.0
    ) -> TruncatedNormal:
        """Bounds given in units of ``std`` around ``mean`` (``jax.random.truncated_normal``)."""
        _positive("TruncatedNormal.std", std)
        _finite("TruncatedNormal.in_stds lower", lower)
        _finite("TruncatedNormal.in_stds upper", upper)
        if not lower < upper:
            raise InitializerError(
                f"TruncatedNormal.in_stds needs lower < upper; got lower={lower}, upper={upper}"
            )
        return cls(mean, std, mean + lower * std, mean + upper * std)

    def _resolve(self, shape, role, fans):
        return TruncNormalDist(float(self.mean), float(self.std), float(self.low), float(self.high))


@dataclass(frozen=True)
class VarianceScaling(Initializer):
    """The general form: variance ``scale / n`` with n the fan chosen by ``mode``.

    ``truncated_normal`` is cut at +-2 pre-truncation sigmas and variance-corrected, so its
    true std is sqrt(scale / n) (JAX/Flax meaning); ``normal`` is untruncated; ``uniform``
    has bound sqrt(3 * scale / n).
    """

    scale: float = 1.0
    mode: str = "fan_in"
    distribution: str = "truncated_normal"

    def __post_init__(self):
        _positive("VarianceScaling.scale", self.scale)
        _choice("VarianceScaling.mode", self.mode, VS_MODES)
        _choice("VarianceScaling.distribution", self.distribution, VS_DISTRIBUTIONS)

    def _resolve(self, shape, role, fans):
        f = self._fans(shape, role, fans, type(self).__name__)
        n = f.get(self.mode)
        if n <= 0:
            raise InitializerError(f"{type(self).__name__}: {self.mode} is 0 for shape {shape}")
        std = math.sqrt(self.scale / n)
        if self.distribution == "normal":
            return NormalDist(0.0, std)
        if self.distribution == "uniform":
            bound = math.sqrt(3.0) * std
            return UniformDist(-bound, bound)
        sigma = std / TRUNC_STD_2
        return TruncNormalDist(0.0, sigma, -2.0 * sigma, 2.0 * sigma)


@dataclass(frozen=True)
class XavierUniform(Initializer):
    gain: float = 1.0

    def __post_init__(self):
        _positive("XavierUniform.gain", self.gain)

    def _resolve(self, shape, role, fans):
        f = self._fans(shape, role, fans, "XavierUniform")
        bound = self.gain * math.sqrt(6.0 / (f.fan_in + f.fan_out))
        return UniformDist(-bound, bound)


@dataclass(frozen=True)
class XavierNormal(Initializer):
    """Untruncated, as ``nn.init.xavier_normal_`` (JAX's glorot_normal is truncated)."""

    gain: float = 1.0

    def __post_init__(self):
        _positive("XavierNormal.gain", self.gain)

    def _resolve(self, shape, role, fans):
        f = self._fans(shape, role, fans, "XavierNormal")
        return NormalDist(0.0, self.gain * math.sqrt(2.0 / (f.fan_in + f.fan_out)))


@dataclass(frozen=True)
class _Kaiming(Initializer):
    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"

    def __post_init__(self):
        name = type(self).__name__
        _finite(f"{name}.a", self.a)
        _choice(f"{name}.mode", self.mode, MODES)
        _choice(f"{name}.nonlinearity", self.nonlinearity, NONLINEARITIES)

    def _std(self, shape, role, fans) -> float:
        f = self._fans(shape, role, fans, type(self).__name__)
        n = f.get(self.mode)
        if n <= 0:
            raise InitializerError(f"{type(self).__name__}: {self.mode} is 0 for shape {shape}")
        return gain(self.nonlinearity, self.a) / math.sqrt(n)


@dataclass(frozen=True)
class KaimingUniform(_Kaiming):
    """``nn.init.kaiming_uniform_``: bound = gain * sqrt(3 / fan)."""

    def _resolve(self, shape, role, fans):
        bound = math.sqrt(3.0) * self._std(shape, role, fans)
        return UniformDist(-bound, bound)


@dataclass(frozen=True)
class KaimingNormal(_Kaiming):
    """``nn.init.kaiming_normal_``: N(0, (gain / sqrt(fan))^2), untruncated."""

    def _resolve(self, shape, role, fans):
        return NormalDist(0.0, self._std(shape, role, fans))


@dataclass(frozen=True)
class LecunNormal(Initializer):
    """Flax's default kernel init: truncated at +-2 sigma, variance-corrected to 1/fan_in."""

    def _resolve(self, shape, role, fans):
        fans = self._fans(shape, role, fans, "LecunNormal")
        return VarianceScaling(1.0, "fan_in", "truncated_normal")._resolve(shape, role, fans)


@dataclass(frozen=True)
class LecunUniform(Initializer):
    def _resolve(self, shape, role, fans):
        fans = self._fans(shape, role, fans, "LecunUniform")
        return VarianceScaling(1.0, "fan_in", "uniform")._resolve(shape, role, fans)


@dataclass(frozen=True)
class Orthogonal(Initializer):
    """(Semi-)orthogonal rows or columns of the shape flattened to (shape[0], rest), times gain.
    ``blocks``: split dim 0 into that many equal blocks, each orthogonal on its own (one per
    gate of a recurrent kernel (G*H, H), as Flax initialises each gate's kernel)."""

    gain: float = 1.0
    blocks: int = 1

    def __post_init__(self):
        _positive("Orthogonal.gain", self.gain)
        if not isinstance(self.blocks, int) or isinstance(self.blocks, bool) or self.blocks < 1:
            raise InitializerError(f"Orthogonal.blocks must be a positive int; got {self.blocks!r}")

    def _resolve(self, shape, role, fans):
        if len(shape) < 2:
            raise InitializerError(f"Orthogonal needs at least 2 dims; got shape {shape}")
        if shape[0] % self.blocks:
            raise InitializerError(
                f"Orthogonal(blocks={self.blocks}) does not divide dim 0 of shape {shape}"
            )
        size = max(shape[0] // self.blocks, math.prod(shape[1:]))
        return OrthogonalDist(float(self.gain), self.blocks, size)


@dataclass(frozen=True)
class Dirac(Initializer):
    """Identity conv kernel (``nn.init.dirac_``), centre k//2, per group."""

    groups: int = 1

    def __post_init__(self):
        if not isinstance(self.groups, int) or isinstance(self.groups, bool) or self.groups < 1:
            raise InitializerError(f"Dirac.groups must be a positive int; got {self.groups!r}")

    def _resolve(self, shape, role, fans):
        if role not in ("conv", "conv_transpose") or not 3 <= len(shape) <= 5:
            raise InitializerError(
                f"Dirac needs a conv weight of 3 to 5 dims; got shape {shape} with role {role!r}"
            )
        if shape[0] % self.groups:
            raise InitializerError(
                f"Dirac.groups={self.groups} does not divide the {shape[0]} output channels"
            )
        return DiracDist(self.groups)


@dataclass(frozen=True)
class Eye(Initializer):
    def _resolve(self, shape, role, fans):
        if len(shape) != 2:
            raise InitializerError(f"Eye needs a 2-d shape; got {shape}")
        return EyeDist()


@dataclass(frozen=True)
class BiasPrior(Initializer):
    """Focal-loss prior bias: constant -log((1 - p) / p); p = 0.1 gives -2.197."""

    prob: float = 0.01

    def __post_init__(self):
        if not isinstance(self.prob, (int, float)) or not 0.0 < self.prob < 1.0:
            raise InitializerError(f"BiasPrior.prob must be in (0, 1); got {self.prob!r}")

    @property
    def value(self) -> float:
        return -math.log((1.0 - self.prob) / self.prob)

    def _resolve(self, shape, role, fans):
        return ConstantDist(self.value)


@dataclass(frozen=True)
class AsLinear(Initializer):
    """``init`` with the fans of the weight viewed as a Linear ``(out, in * prod(kernel))``:
    MAE's patch embedding, ``xavier_uniform_(w.view([w.shape[0], -1]))`` (fan_out is the
    output channels, not PyTorch's conv ``out * prod(kernel)``)."""

    init: Initializer

    def __post_init__(self):
        if not isinstance(self.init, Initializer):
            raise InitializerError(f"AsLinear wraps an initializer; got {self.init!r}")

    def __str__(self) -> str:
        return f"AsLinear({self.init})"

    def _resolve(self, shape, role, fans):
        if len(shape) < 2:
            raise InitializerError(f"AsLinear needs a weight of 2 or more dims; got shape {shape}")
        return self.init.resolve((shape[0], math.prod(shape[1:])), "linear")


__all__ = [
    "AsLinear",
    "Initializer",
    "Constant",
    "Zeros",
    "Ones",
    "Normal",
    "Uniform",
    "TruncatedNormal",
    "VarianceScaling",
    "XavierUniform",
    "XavierNormal",
    "KaimingUniform",
    "KaimingNormal",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "Dirac",
    "Eye",
    "BiasPrior",
    "gain",
]

"""Resolved distributions: what an initializer becomes once the parameter's fans are known.

Backends only ever see these (explicit mean/std/bounds), never a framework's own fan logic;
that is what makes the statistics identical everywhere. Each has an analytic mean, std and CDF,
or is a deterministic construction (constant, orthogonal, dirac, eye).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _std_normal_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr  # lazy: scipy is only needed for analytic CDFs

    return ndtr(x)


def _std_normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class Distribution:
    """Base class: an element-wise i.i.d. law (or a deterministic construction)."""

    random: bool = True

    @property
    def mean(self) -> float:
        raise NotImplementedError

    @property
    def std(self) -> float:
        raise NotImplementedError

    def cdf(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return repr(self)


@dataclass(frozen=True)
class ConstantDist(Distribution):
    value: float
    random = False

    @property
    def mean(self) -> float:
        return float(self.value)

    @property
    def std(self) -> float:
        return 0.0

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x) >= self.value).astype(float)

    def describe(self) -> str:
        return f"Constant({self.value:g})"


@dataclass(frozen=True)
class NormalDist(Distribution):
    mu: float
    sigma: float

    @property
    def mean(self) -> float:
        return float(self.mu)

    @property
    def std(self) -> float:
        return float(self.sigma)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return _std_normal_cdf((np.asarray(x, dtype=float) - self.mu) / self.sigma)

    def describe(self) -> str:
        return f"N({self.mu:g}, {self.sigma:.4g}^2)"


@dataclass(frozen=True)
class UniformDist(Distribution):
    low: float
    high: float

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def std(self) -> float:
        return (self.high - self.low) / math.sqrt(12.0)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        return np.clip((np.asarray(x, dtype=float) - self.low) / (self.high - self.low), 0.0, 1.0)

    def describe(self) -> str:
        return f"U({self.low:.4g}, {self.high:.4g})"


@dataclass(frozen=True)
class TruncNormalDist(Distribution):
    """N(mu, sigma^2) restricted to the absolute interval [low, high] (PyTorch's meaning).

    ``sigma`` is the pre-truncation scale; ``std`` is the true (post-truncation) std.
    """

    mu: float
    sigma: float
    low: float
    high: float

    def _ab(self) -> tuple[float, float]:
        return (self.low - self.mu) / self.sigma, (self.high - self.mu) / self.sigma

    @property
    def mean(self) -> float:
        a, b = self._ab()
        z = _phi(b) - _phi(a)
        return self.mu + self.sigma * (_std_normal_pdf(a) - _std_normal_pdf(b)) / z

    @property
    def std(self) -> float:
        a, b = self._ab()
        z = _phi(b) - _phi(a)
        pa, pb = _std_normal_pdf(a), _std_normal_pdf(b)
        ta = a * pa if math.isfinite(a) else 0.0
        tb = b * pb if math.isfinite(b) else 0.0
        var = 1.0 + (ta - tb) / z - ((pa - pb) / z) ** 2
        return self.sigma * math.sqrt(var)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        a, b = self._ab()
        fa, fb = _phi(a), _phi(b)
        z = (np.asarray(x, dtype=float) - self.mu) / self.sigma
        return np.clip((_std_normal_cdf(z) - fa) / (fb - fa), 0.0, 1.0)

    def describe(self) -> str:
        return f"TN({self.mu:g}, {self.sigma:.4g}^2, [{self.low:.4g}, {self.high:.4g}])"


@dataclass(frozen=True)
class OrthogonalDist(Distribution):
    """(Semi-)orthogonal matrix from the QR of a standard normal draw, times ``gain``;
    with ``blocks`` > 1, each of that many equal row blocks on its own (a recurrent layer's
    gate blocks, as Flax draws each gate's recurrent kernel). ``size``: the larger side of
    a block once the shape is known (0: not known)."""

    gain: float
    blocks: int = 1
    size: int = 0
    random = True

    @property
    def mean(self) -> float:
        return 0.0

    @property
    def std(self) -> float:
        """Each row (or column) of a (semi-)orthogonal block has unit norm over the block's
        larger side, so every element's mean square is gain² / size (nan: size unknown)."""
        return self.gain / math.sqrt(self.size) if self.size else float("nan")

    def describe(self) -> str:
        per = f", each of {self.blocks} row blocks" if self.blocks != 1 else ""
        return f"Orthogonal(gain={self.gain:g}{per})"


@dataclass(frozen=True)
class DiracDist(Distribution):
    """Identity-preserving conv kernel (PyTorch's ``dirac_``: centre index k//2)."""

    groups: int = 1
    random = False

    def describe(self) -> str:
        return f"Dirac(groups={self.groups})"


@dataclass(frozen=True)
class EyeDist(Distribution):
    random = False

    def describe(self) -> str:
        return "Eye"


def _orthogonal(flat: np.ndarray) -> np.ndarray:
    """The Haar (semi-)orthogonal matrix of a standard normal ``flat`` (rows, cols): the Q of
    its QR (of its transpose when wide), signs fixed by R's diagonal."""
    rows, cols = flat.shape
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    return q.T if rows < cols else q


def construct(dist: Distribution, shape: tuple[int, ...], normal_draw=None) -> np.ndarray:
    """Build a deterministic (or QR-based) tensor in neutral layout as float32 numpy.

    ``normal_draw(shape)`` supplies the standard normal matrix for orthogonal init, so that
    each backend can use its own generator (or xinit's keyed one).
    """
    if isinstance(dist, ConstantDist):
        return np.full(shape, dist.value, dtype=np.float32)
    if isinstance(dist, EyeDist):
        return np.eye(shape[0], shape[1], dtype=np.float32)
    if isinstance(dist, DiracDist):
        out = np.zeros(shape, dtype=np.float32)
        per_group = shape[0] // dist.groups
        centre = tuple(k // 2 for k in shape[2:])
        for g in range(dist.groups):
            for d in range(min(per_group, shape[1])):
                out[(g * per_group + d, d, *centre)] = 1.0
        return out
    if isinstance(dist, OrthogonalDist):
        rows = shape[0]
        cols = int(np.prod(shape[1:]))
        flat = np.asarray(normal_draw((rows, cols)), dtype=np.float64)
        per = rows // dist.blocks  # independent normal rows for each block
        q = np.concatenate([_orthogonal(flat[i * per : (i + 1) * per]) for i in range(dist.blocks)])
        return (dist.gain * q).reshape(shape).astype(np.float32)
    raise TypeError(f"{dist!r} is not a deterministic construction")

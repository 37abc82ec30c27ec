"""Reusable statistical checks for initializer tests (numpy + scipy; no framework imports).

The tolerances are derived from the sample size, never hand-tuned:

* sample mean: standard error ``sigma / sqrt(n)``;
* sample std: the delta-method standard error ``sqrt((mu4 - sigma^4) / (4 sigma^2 n))`` with
  ``mu4`` the analytic 4th central moment (3 sigma^4 for a normal, 9/5 sigma^4 for a uniform,
  from scipy's kurtosis for a truncated normal);
* a check passes when both ``|z| <= Z_MAX``; KS tests pass when ``p > P_MIN`` (PyTorch's own
  init tests use the same p threshold).

With ``n >= N_MIN`` elements a std that is 3% off shifts the std's z-score by
``(1 - 1/1.03) * sqrt(2 n) > 10`` for the heaviest-tailed law used (the normal; uniform and
truncated normals have smaller standard errors). So a sample that passes (|z| <= 5) always
fails against a 3%-off std: :func:`assert_has_power` asserts exactly that on every sample.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import stats

from xinit.distributions import (
    ConstantDist,
    Distribution,
    NormalDist,
    TruncNormalDist,
    UniformDist,
)

Z_MAX = 5.0
P_MIN = 1e-4
N_MIN = 60_000  # smallest sample the statistics suite draws (see the module docstring)
POWER_FACTOR = 1.03  # a std this far off (either way) must be rejected


def case_seed(*parts: object) -> int:
    """A fixed, distinct seed per test case, so cases do not share their random streams."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Moments:
    """Analytic mean, std and 4th central moment of an element-wise law."""

    mean: float
    std: float
    mu4: float

    def scaled(self, factor: float) -> Moments:
        """The law of ``mean + factor * (X - mean)``: std times ``factor``, same mean."""
        return Moments(self.mean, self.std * factor, self.mu4 * factor**4)


@functools.lru_cache(maxsize=1024)
def moments_of(dist: Distribution) -> Moments:
    """Analytic moments of a resolved xinit distribution (computed independently of it)."""
    if isinstance(dist, ConstantDist):
        return Moments(float(dist.value), 0.0, 0.0)
    if isinstance(dist, NormalDist):
        return Moments(dist.mu, dist.sigma, 3.0 * dist.sigma**4)
    if isinstance(dist, UniformDist):
        s = (dist.high - dist.low) / math.sqrt(12.0)
        return Moments(0.5 * (dist.low + dist.high), s, 1.8 * s**4)
    if isinstance(dist, TruncNormalDist):
        law = scipy_law(dist)
        mean, var, kurt = (float(v) for v in law.stats(moments="mvk"))
        return Moments(mean, math.sqrt(var), (kurt + 3.0) * var * var)
    raise TypeError(f"no analytic moments for {dist!r}")


def scipy_law(dist: Distribution):
    """The frozen scipy.stats law equal to ``dist`` (an independent reference CDF)."""
    if isinstance(dist, NormalDist):
        return stats.norm(dist.mu, dist.sigma)
    if isinstance(dist, UniformDist):
        return stats.uniform(dist.low, dist.high - dist.low)
    if isinstance(dist, TruncNormalDist):
        a, b = (dist.low - dist.mu) / dist.sigma, (dist.high - dist.mu) / dist.sigma
        return stats.truncnorm(a, b, loc=dist.mu, scale=dist.sigma)
    raise TypeError(f"no scipy law for {dist!r}")


@dataclass(frozen=True)
class MomentCheck:
    n: int
    mean: float
    std: float
    z_mean: float
    z_std: float

    @property
    def ok(self) -> bool:
        return abs(self.z_mean) <= Z_MAX and abs(self.z_std) <= Z_MAX

    def __str__(self) -> str:
        return (
            f"n={self.n} mean={self.mean:.6g} (z={self.z_mean:+.2f}) "
            f"std={self.std:.6g} (z={self.z_std:+.2f})"
        )


def moment_check(x: np.ndarray, expected: Moments) -> MomentCheck:
    """z-scores of the sample mean and std against ``expected`` (standard errors from n)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        raise ValueError("need at least 2 elements")
    mean = float(x.mean())
    std = float(x.std(ddof=1))
    s = expected.std
    if s <= 0:
        raise ValueError("moment_check is for random laws; compare constants exactly")
    se_mean = s / math.sqrt(n)
    se_std = math.sqrt(max(expected.mu4 - s**4, 0.0) / (4.0 * s * s * n))
    return MomentCheck(n, mean, std, (mean - expected.mean) / se_mean, (std - s) / se_std)


def assert_moments(x: np.ndarray, expected: Moments | Distribution, what: str = "") -> MomentCheck:
    if isinstance(expected, Distribution):
        expected = moments_of(expected)
    check = moment_check(x, expected)
    assert check.ok, (
        f"{what}: sample off the analytic mean={expected.mean:.6g} std={expected.std:.6g}: "
        f"{check} (|z| must be <= {Z_MAX})"
    )
    return check


def assert_has_power(x: np.ndarray, expected: Moments | Distribution, what: str = "") -> None:
    """The moment check on ``x`` would reject a law whose std is 3% larger or smaller."""
    if isinstance(expected, Distribution):
        expected = moments_of(expected)
    for factor in (POWER_FACTOR, 1.0 / POWER_FACTOR):
        check = moment_check(x, expected.scaled(factor))
        assert not check.ok, (
            f"{what}: the check cannot tell std {expected.std:.6g} from {factor:.4f}x it: {check}"
        )


def ks_statistic(x: np.ndarray, cdf) -> float:
    """The one-sample KS distance sup |F_n - F| (the same value scipy.stats.kstest computes)."""
    x = np.sort(np.asarray(x).ravel()).astype(np.float64)
    n = x.size
    f = np.asarray(cdf(x), dtype=np.float64)
    hi = np.arange(1, n + 1, dtype=np.float64) / n
    return float(max((hi - f).max(), (f - (hi - 1.0 / n)).max()))


def ks_pvalue(d: float, n: float) -> float:
    """P(D_n >= d) from Kolmogorov's limit law. For the n >= 10^4 used here it is within 1%
    (relative) of the exact law, which scipy's ``kstwo.sf`` computes in up to 0.2 s."""
    return float(stats.kstwobign.sf(d * math.sqrt(n)))


def ks_one(x: np.ndarray, dist: Distribution) -> float:
    """One-sample KS p-value of ``x`` against the analytic CDF of ``dist``."""
    return ks_pvalue(ks_statistic(x, dist.cdf), np.asarray(x).size)


def assert_ks_one(x: np.ndarray, dist: Distribution, what: str = "", redraw=None) -> float:
    """One-sample KS, p > P_MIN. With ``redraw`` (a callable giving an independent sample
    under another fixed seed), a first rejection must be confirmed by a second one: the false
    alarm rate per check drops from 1e-4 to 1e-8, while a real difference in law, which
    rejects both draws, still fails."""
    p = ks_one(x, dist)
    if p <= P_MIN and redraw is not None:
        p2 = ks_one(redraw(), dist)
        assert p2 > P_MIN, (
            f"{what}: one-sample KS vs {dist.describe()} rejects twice, p={p:.3g} then {p2:.3g}"
        )
        return p2
    assert p > P_MIN, f"{what}: one-sample KS vs {dist.describe()} rejects, p={p:.3g}"
    return p


def assert_plan_laws(spec, neutral, min_size: int = 64) -> list[str]:
    """Each parameter of ``spec``'s init plan, read from ``neutral`` (path -> array: another
    model's state ported to neutral names), fits the law the plan gives it: a constant equal
    as float32 holds it, a random law by KS when it has ``min_size`` values or more. Returns
    the paths KS-tested."""
    from xinit.plan import init_plan

    checked = []
    for item in init_plan(spec):
        values = np.asarray(neutral[item.path], np.float64).ravel()
        if isinstance(item.dist, ConstantDist):
            assert np.all(values == np.float32(item.dist.mean)), item.path
        elif values.size >= min_size:
            assert_ks_one(values, item.dist, what=item.path)
            checked.append(item.path)
    return checked


def ks_two(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample KS p-value (are ``x`` and ``y`` drawn from the same law?).

    The statistic is exact; the p-value is the limit law at the effective size n m / (n + m).
    """
    x = np.sort(np.asarray(x).ravel()).astype(np.float64)
    y = np.sort(np.asarray(y).ravel()).astype(np.float64)
    n, m = x.size, y.size
    both = np.concatenate([x, y])
    d = np.abs(
        np.searchsorted(x, both, side="right") / n - np.searchsorted(y, both, side="right") / m
    ).max()
    return ks_pvalue(float(d), n * m / (n + m))


def assert_ks_two(x: np.ndarray, y: np.ndarray, what: str = "", redraw=None) -> float:
    """Two-sample KS, p > P_MIN; ``redraw`` returns a fresh ``(x, y)`` pair (see assert_ks_one)."""
    p = ks_two(x, y)
    if p <= P_MIN and redraw is not None:
        p2 = ks_two(*redraw())
        assert p2 > P_MIN, f"{what}: two-sample KS rejects twice, p={p:.3g} then {p2:.3g}"
        return p2
    assert p > P_MIN, f"{what}: two-sample KS says the laws differ, p={p:.3g}"
    return p


def assert_same_law(x: np.ndarray, dist: Distribution, what: str = "", redraw=None) -> None:
    """Moments (|z| <= 5, with power against 3% std errors) and one-sample KS."""
    assert_moments(x, dist, what)
    assert_has_power(x, dist, what)
    assert_ks_one(x, dist, what, redraw)


def assert_orthogonal(w: np.ndarray, gain: float = 1.0, atol: float = 1e-5, what: str = ""):
    """Rows (if rows <= cols) or columns of ``w`` flattened to 2-D are gain-scaled orthonormal."""
    m = np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)
    rows, cols = m.shape
    gram = m @ m.T if rows <= cols else m.T @ m
    err = float(np.abs(gram - gain**2 * np.eye(min(rows, cols))).max())
    assert err <= atol * gain**2, f"{what}: W W^T (or W^T W) is off gain^2 I by {err:.3g}"
    return err


def assert_haar_orthogonal(mats, gain: float, what: str = "") -> None:
    """Each matrix of ``mats`` (a Haar (semi-)orthogonal draw times ``gain``, any side
    longer) has orthonormal rows or columns (its smaller Gram matrix is gain² I within
    float32 rounding of an n-term dot product: 4 n eps), and its elements follow the exact
    marginal of such a draw: a coordinate of a uniform point on the sphere S^(n-1) of radius
    gain, (x/gain + 1)/2 ~ Beta((n-1)/2, (n-1)/2), n the longer side (one-sample KS; the
    elements of one matrix are weakly dependent, which makes the test conservative)."""
    mats = [np.asarray(m, np.float64) for m in mats]
    n = max(mats[0].shape)
    tol = 4 * n * float(np.finfo(np.float32).eps) * gain * gain
    for m in mats:
        gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        err = float(np.abs(gram - gain * gain * np.eye(gram.shape[0])).max())
        assert err <= tol, (
            f"{what}: not (semi-)orthogonal: |Gram - gain² I| = {err:.3g} > {tol:.3g}"
        )
    law = stats.beta((n - 1) / 2, (n - 1) / 2, loc=-gain, scale=2 * gain)
    x = np.concatenate([m.ravel() for m in mats])
    p = ks_pvalue(ks_statistic(x, law.cdf), x.size)
    assert p > P_MIN, f"{what}: elements are not a uniform sphere's coordinates (n={n}): p={p:.3g}"

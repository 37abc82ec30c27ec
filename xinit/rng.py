"""xinit's own keyed, counter-based generator, and per-parameter seed derivation.

Element ``i`` of a parameter at ``path`` is a pure function of ``(seed, path, i)``: a
SplitMix64 finalizer over a Weyl counter. Values therefore do not depend on build order, on
other layers, or on how a tensor is split into slices (a sharded init gets exactly the slices
of the whole), and every backend receives the same numbers because they are computed here, in
numpy, then copied into the framework.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .distributions import Distribution, NormalDist, TruncNormalDist, UniformDist

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_CHUNK = 1 << 16
_TWO_PI = 2.0 * np.pi


def derive_seed(seed: int, path: str, bits: int = 31) -> int:
    """A stable integer seed for the parameter at ``path`` (used by ``rng="native"``)."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << bits) - 1)


def derive_key(seed: int, path: str) -> np.uint64:
    """The 64-bit key of the keyed generator for ``(seed, path)``."""
    digest = hashlib.blake2b(f"xinit\x00{int(seed)}\x00{path}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _bits(key: np.uint64, start: int, stop: int) -> np.ndarray:
    """64 random bits for each element index in [start, stop)."""
    x = np.arange(start, stop, dtype=np.uint64)
    x += np.uint64(1)
    x *= _GOLDEN
    x ^= key
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def _uniform01(bits: np.ndarray) -> np.ndarray:
    """Open-interval (0, 1) float64 uniforms with 53 bits."""
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _normal_chunk(key, start, stop) -> np.ndarray:
    bits = _bits(key, start, stop)
    hi = ((bits >> np.uint64(32)).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    lo = ((bits & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    np.log(hi, out=hi)
    hi *= -2.0
    np.sqrt(hi, out=hi)
    lo *= _TWO_PI
    np.cos(lo, out=lo)
    hi *= lo
    return hi


def _chunked(fn: Callable[[int, int], np.ndarray], start: int, stop: int, out: np.ndarray):
    n = stop - start
    spans = [(s, min(s + _CHUNK, stop)) for s in range(start, stop, _CHUNK)]

    def work(span):
        a, b = span
        out[a - start : b - start] = fn(a, b)

    workers = min(os.cpu_count() or 1, 8)
    if workers > 1 and n > 4 * _CHUNK:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(work, spans))
    else:
        for span in spans:
            work(span)
    return out


def keyed_sample(
    dist: Distribution,
    shape: tuple[int, ...],
    seed: int,
    path: str,
    *,
    start: int = 0,
    stop: int | None = None,
    dtype=np.float32,
) -> np.ndarray:
    """Elements [start, stop) (flat, row-major, neutral layout) of the keyed draw.

    With the defaults it returns the whole tensor reshaped to ``shape``; with a slice it
    returns the flat slice, which equals the same slice of the whole tensor exactly.
    """
    total = int(np.prod(shape, dtype=np.int64))
    whole = stop is None and start == 0
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise ValueError(f"slice [{start}, {stop}) is outside a tensor of {total} elements")
    key = derive_key(seed, path)
    out = np.empty(stop - start, dtype=dtype)
    if isinstance(dist, NormalDist):
        mu, sigma = dist.mu, dist.sigma

        def fn(a, b):
            z = _normal_chunk(key, a, b)
            z *= sigma
            z += mu
            return z

    elif isinstance(dist, UniformDist):
        lo, width = dist.low, dist.high - dist.low

        def fn(a, b):
            u = _uniform01(_bits(key, a, b))
            u *= width
            u += lo
            return u

    elif isinstance(dist, TruncNormalDist):
        from scipy.special import ndtr, ndtri

        mu, sigma = dist.mu, dist.sigma
        fa, fb = ndtr((dist.low - mu) / sigma), ndtr((dist.high - mu) / sigma)

        def fn(a, b):
            u = _uniform01(_bits(key, a, b))
            u *= fb - fa
            u += fa
            z = ndtri(u)
            z *= sigma
            z += mu
            return np.clip(z, dist.low, dist.high)

    else:
        raise TypeError(f"the keyed generator cannot sample {dist!r}")
    _chunked(fn, start, stop, out)
    return out.reshape(shape) if whole else out


def keyed_normal_draw(seed: int, path: str) -> Callable[[tuple[int, ...]], np.ndarray]:
    """A standard-normal source for constructions (orthogonal) keyed by ``(seed, path)``."""
    return lambda shape: keyed_sample(NormalDist(0.0, 1.0), shape, seed, path, dtype=np.float64)

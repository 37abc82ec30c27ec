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
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .distributions import Distribution, NormalDist, TruncNormalDist, UniformDist
from .errors import ArgumentError

RNG_MODES = ("native", "xinit")  # each framework's own generator, or xinit's keyed one


def check_rng(rng: str) -> str:
    """``rng`` if it is one of :data:`RNG_MODES`; ValueError otherwise."""
    if rng not in RNG_MODES:
        raise ArgumentError(f"rng must be one of {RNG_MODES}; got {rng!r}")
    return rng


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PAIRS = 1 << 16  # counters per work unit: long numpy calls let threads overlap (GIL)
_IOTA = np.arange(_PAIRS, dtype=np.uint64)
_LOW_WORD = 0 if sys.byteorder == "little" else 1
_THETA = np.float32(2.0 * np.pi / 4294967296.0)
_FALLBACK = np.uint64(0xA5A5A5A5DEADBEEF)
_POOLS: dict[int, ThreadPoolExecutor] = {}
_LOCAL = threading.local()


def check_seed(seed: int) -> int:
    """``seed`` as an int; a float (``1.5`` would silently act as ``1``), a bool or anything
    else that is not an integer is refused with ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ArgumentError(f"seed must be an integer; got {seed!r} ({type(seed).__name__})")
    return int(seed)


def derive_seed(seed: int, path: str, bits: int = 31) -> int:
    """A stable integer seed for the parameter at ``path`` (used by ``rng="native"``)."""
    seed = check_seed(seed)
    digest = hashlib.blake2b(f"{int(seed)}\x00{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << bits) - 1)


def derive_key(seed: int, path: str) -> np.uint64:
    """The 64-bit key of the keyed generator for ``(seed, path)``."""
    seed = check_seed(seed)
    digest = hashlib.blake2b(f"xinit\x00{int(seed)}\x00{path}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


class _Scratch:
    """Per-thread work buffers, reused across chunks so no call allocates."""

    def __init__(self):
        self.u = np.empty(_PAIRS, np.uint64)
        self.t = np.empty(_PAIRS, np.uint64)
        self.a = np.empty(_PAIRS, np.float32)
        self.b = np.empty(_PAIRS, np.float32)
        self.c = np.empty(_PAIRS, np.float32)
        self.pairs = np.empty((_PAIRS, 2), np.float32)


def _scratch() -> _Scratch:
    sc = getattr(_LOCAL, "scratch", None)
    if sc is None:
        sc = _LOCAL.scratch = _Scratch()
    return sc


def _hash(key: np.uint64, c0: int, n: int, sc: _Scratch) -> np.ndarray:
    """64 random bits for counters [c0, c0 + n): SplitMix64 of a keyed Weyl sequence."""
    u = sc.u[:n]
    np.add(_IOTA[:n], np.uint64(c0 + 1), out=u)
    return _finish(key, u, sc.t[:n])


def _hash_grid(key: np.uint64, firsts: np.ndarray, width: int, sc: _Scratch) -> np.ndarray:
    """The bits of :func:`_hash` for counters [f, f + width) of each f in ``firsts``, row
    after row in one flat scratch array (len(firsts) * width <= _PAIRS): many short runs of
    a box in one pass instead of one pass each."""
    n = len(firsts) * width
    u = sc.u[:n]
    np.add((firsts + 1).astype(np.uint64)[:, None], _IOTA[None, :width], out=u.reshape(-1, width))
    return _finish(key, u, sc.t[:n])


def _finish(key: np.uint64, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """In place: ``u`` (counters + 1) -> their 64 random bits; ``t`` is scratch."""
    u *= _GOLDEN
    u ^= key
    for shift, mult in ((30, _M1), (27, _M2)):
        np.right_shift(u, np.uint64(shift), out=t)
        u ^= t
        u *= mult
    np.right_shift(u, np.uint64(31), out=t)
    u ^= t
    return u


def _hash_counters(key: np.uint64, counters: np.ndarray) -> np.ndarray:
    """The same bits as :func:`_hash` for an arbitrary array of counters."""
    u = (counters + np.uint64(1)) * _GOLDEN
    u ^= key
    for shift, mult in ((30, _M1), (27, _M2)):
        u ^= u >> np.uint64(shift)
        u *= mult
    u ^= u >> np.uint64(31)
    return u


def _bits(key: np.uint64, start: int, stop: int) -> np.ndarray:
    """A copy of the 64 random bits of counters [start, stop) (any length)."""
    out = np.empty(stop - start, np.uint64)
    sc = _scratch()
    for c in range(start, stop, _PAIRS):
        n = min(_PAIRS, stop - c)
        out[c - start : c - start + n] = _hash(key, c, n, sc)
    return out


def _uniform01(bits: np.ndarray) -> np.ndarray:
    """Open-interval (0, 1) float64 uniforms with 53 bits."""
    return ((bits >> np.uint64(11)).view(np.int64).astype(np.float64) + 0.5) * 2.0**-53


def _normal_pairs_into(key, j0: int, n: int, dest: np.ndarray, sc: _Scratch) -> None:
    """Standard normals of pairs [j0, j0 + n) into ``dest`` (n, 2) float32 (Box-Muller).

    The radius uses the high 32 bits (tails to 6.7 sigma), the angle the low 32 bits; both in
    float32 math, accurate to an ulp or two and several times faster than float64's trig.
    """
    _box_muller(_hash(key, j0, n, sc), dest, sc)


def _box_muller(u: np.ndarray, dest: np.ndarray, sc: _Scratch) -> None:
    """The two standard normals of each pair's 64 bits ``u`` into ``dest`` (n, 2) float32."""
    n = len(u)
    t, r, theta = sc.t[:n], sc.b[:n], sc.a[:n]
    np.right_shift(u, np.uint64(32), out=t)
    np.copyto(r, t.view(np.int64), casting="unsafe")  # fp32 keeps u > 0 down to 2^-33
    r += np.float32(0.5)
    r *= np.float32(1.0 / 4294967296.0)
    np.log(r, out=r)
    r *= np.float32(-2.0)
    np.sqrt(r, out=r)
    np.copyto(theta, u.view(np.uint32)[_LOW_WORD::2], casting="unsafe")
    theta *= _THETA
    trig = sc.c[:n]  # contiguous temporaries: numpy's broadcast multiply is slow here
    np.cos(theta, out=trig)
    np.multiply(trig, r, out=dest[:, 0])
    np.sin(theta, out=trig)
    np.multiply(trig, r, out=dest[:, 1])


def _normal_span(key, start: int, stop: int, out: np.ndarray, sc: _Scratch) -> None:
    """Standard normals of elements [start, stop) into ``out``; element 2j, 2j+1 = pair j."""
    pos = start
    while pos < stop:
        j0 = pos // 2
        n = min(_PAIRS, (stop + 1) // 2 - j0)
        lo, hi = 2 * j0, 2 * (j0 + n)  # elements this unit of pairs covers
        if lo == pos and hi <= stop:
            _normal_pairs_into(key, j0, n, out[pos - start : hi - start].reshape(n, 2), sc)
        else:
            tmp = sc.pairs[:n]
            _normal_pairs_into(key, j0, n, tmp, sc)
            end = min(hi, stop)
            out[pos - start : end - start] = tmp.reshape(-1)[pos - lo : end - lo]
        pos = min(hi, stop)


def _uniform_span(key, start, stop, out, sc, low, width) -> None:
    """U(low, low + width) float32 of elements [start, stop): 24-bit uniforms, exact in fp32."""
    for c in range(start, stop, _PAIRS):
        n = min(_PAIRS, stop - c)
        u = _hash(key, c, n, sc)
        t = sc.t[:n]
        np.right_shift(u, np.uint64(40), out=t)
        dest = out[c - start : c - start + n]
        np.copyto(dest, t.view(np.int64), casting="unsafe")
        dest += np.float32(0.5)
        dest *= np.float32(width * 2.0**-24)
        dest += np.float32(low)


def _trunc_span(key, start, stop, out, sc, dist: TruncNormalDist) -> None:
    """Element i keeps its normal draw if inside [a, b]; otherwise it takes the inverse CDF of
    its own second uniform on [F(a), F(b)]. That mixture is exactly the truncated normal,
    needs no retries, and keeps every element a function of (key, i) alone."""
    from scipy.special import ndtr, ndtri

    a, b = (dist.low - dist.mu) / dist.sigma, (dist.high - dist.mu) / dist.sigma
    fa, fb = ndtr(a), ndtr(b)
    if fb - fa < 0.5:  # narrow window: inverse CDF for every element (same rule for any slice)
        out[:] = ndtri(fa + _uniform01(_bits(key ^ _FALLBACK, start, stop)) * (fb - fa))
        bad = np.empty(0, np.int64)
    else:
        _normal_span(key, start, stop, out, sc)
        bad = np.flatnonzero((out < a) | (out > b))
    if bad.size:
        u = _uniform01(_hash_counters(key ^ _FALLBACK, bad.astype(np.uint64) + np.uint64(start)))
        out[bad] = ndtri(fa + u * (fb - fa))
    out *= np.float32(dist.sigma)
    out += np.float32(dist.mu)
    np.clip(out, dist.low, dist.high, out=out)


# ---- many short runs at once (a box's rows): each unit holds <= _PAIRS counters ----------
def _normal_grid(key, starts: np.ndarray, run: int, out: np.ndarray, sc: _Scratch) -> None:
    """Standard normals of elements [s, s + run) of each s in ``starts`` into ``out``
    (len(starts), run): the pairs covering every row in one Box-Muller pass, then each row
    cut from them (a row that starts at an odd element skips the first value)."""
    width = run // 2 + 1  # pairs covering ``run`` elements from either parity
    u = _hash_grid(key, starts // 2, width, sc)
    vals = sc.pairs[: len(u)]
    _box_muller(u, vals, sc)
    vals = vals.reshape(len(starts), 2 * width)
    odd = (starts & 1).astype(bool)
    if not odd.any():
        out[...] = vals[:, :run]
    elif odd.all():
        out[...] = vals[:, 1 : run + 1]
    else:
        out[~odd] = vals[~odd, :run]
        out[odd] = vals[odd, 1 : run + 1]


def _uniform_grid(key, starts, run, out, sc, low, width) -> None:
    """:func:`_uniform_span` for elements [s, s + run) of each s in ``starts`` (rows of
    ``out``, C-contiguous)."""
    u = _hash_grid(key, starts, run, sc)
    t = sc.t[: len(u)]
    np.right_shift(u, np.uint64(40), out=t)
    dest = out.reshape(-1)
    np.copyto(dest, t.view(np.int64), casting="unsafe")
    dest += np.float32(0.5)
    dest *= np.float32(width * 2.0**-24)
    dest += np.float32(low)


def _trunc_grid(key, starts, run, out, sc, dist: TruncNormalDist) -> None:
    """:func:`_trunc_span` for elements [s, s + run) of each s in ``starts``: the same
    draw, fallback counters and inverse CDF, element by element."""
    from scipy.special import ndtr, ndtri

    a, b = (dist.low - dist.mu) / dist.sigma, (dist.high - dist.mu) / dist.sigma
    fa, fb = ndtr(a), ndtr(b)
    index = starts[:, None] + np.arange(run, dtype=np.int64)[None, :]
    if fb - fa < 0.5:
        u = _uniform01(_hash_counters(key ^ _FALLBACK, index.astype(np.uint64)))
        out[...] = ndtri(fa + u * (fb - fa))
    else:
        _normal_grid(key, starts, run, out, sc)
        bad = np.nonzero((out < a) | (out > b))
        if bad[0].size:
            u = _uniform01(_hash_counters(key ^ _FALLBACK, index[bad].astype(np.uint64)))
            out[bad] = ndtri(fa + u * (fb - fa))
    out *= np.float32(dist.sigma)
    out += np.float32(dist.mu)
    np.clip(out, dist.low, dist.high, out=out)


def workers() -> int:
    """Threads the keyed generator draws on: ``XINIT_NUM_THREADS``, else ``OMP_NUM_THREADS``
    (what torchrun sets for each of several ranks on a node, so ranks do not oversubscribe
    the cores), else the cores this process may run on; at most 8. The values never depend
    on it."""
    for name in ("XINIT_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return max(1, min(int(value), 8))
            except ValueError:
                msg = f"{name} must be a whole number of threads; got {value!r}"
                raise ValueError(msg) from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 8))


def _pool(n: int) -> ThreadPoolExecutor:
    """The pool of ``n`` threads (made once per size: the setting rarely changes)."""
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="xinit-rng")
    return _POOLS[n]


def _parallel(span_fn: Callable, start: int, stop: int, out: np.ndarray) -> None:
    """Run ``span_fn(a, b, out_view, scratch)`` over [start, stop) on :func:`workers` threads."""
    n = stop - start
    n_workers = workers()
    if n_workers == 1 or n < 8 * _PAIRS:
        span_fn(start, stop, out, _scratch())
        return
    step = -(-n // (4 * n_workers))
    step += step % 2  # even spans keep normal pairs whole
    spans = [(a, min(a + step, stop)) for a in range(start, stop, step)]
    futures = [
        _pool(n_workers).submit(
            lambda a, b: span_fn(a, b, out[a - start : b - start], _scratch()), a, b
        )
        for a, b in spans
    ]
    for f in futures:
        f.result()


def keyed_sample(
    dist: Distribution,
    shape: tuple[int, ...],
    seed: int,
    path: str,
    *,
    start: int = 0,
    stop: int | None = None,
    dtype=np.float32,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Elements [start, stop) (flat, row-major, neutral layout) of the keyed draw.

    With the defaults it returns the whole tensor reshaped to ``shape``; with a slice it
    returns the flat slice, which equals the same slice of the whole tensor exactly.
    ``out``: a C-contiguous float32 array of stop - start elements to write into (e.g. a
    parameter's own memory), instead of a new array.
    """
    total = int(np.prod(shape, dtype=np.int64))
    whole = stop is None and start == 0
    stop = total if stop is None else stop
    if not 0 <= start <= stop <= total:
        raise ValueError(f"slice [{start}, {stop}) is outside a tensor of {total} elements")
    key = derive_key(seed, path)
    span = _span_fn(dist, key)
    if out is None:
        out = np.empty(stop - start, dtype=np.float32)
    else:
        if out.dtype != np.float32 or out.size != stop - start or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous float32 array of {stop - start} elements; got "
                f"{out.dtype} {out.shape}"
            )
        out = out.reshape(-1)
    _parallel(span, start, stop, out)
    out = out if dtype == np.float32 else out.astype(dtype)
    return out.reshape(shape) if whole else out


def _writer(dist: Distribution, key: np.uint64, normal, uniform, trunc) -> Callable:
    """``write(where, n, out, scratch)`` of ``dist``'s keyed draw, from the standard-normal,
    uniform and truncated-normal kernels of one access pattern (spans or grids)."""
    if isinstance(dist, NormalDist):
        mu, sigma = np.float32(dist.mu), np.float32(dist.sigma)

        def write(where, n, out, sc):
            normal(key, where, n, out, sc)
            out *= sigma
            out += mu

    elif isinstance(dist, UniformDist):

        def write(where, n, out, sc):
            uniform(key, where, n, out, sc, dist.low, dist.high - dist.low)

    elif isinstance(dist, TruncNormalDist):

        def write(where, n, out, sc):
            trunc(key, where, n, out, sc, dist)

    else:
        raise TypeError(f"the keyed generator cannot sample {dist!r}")
    return write


def _span_fn(dist: Distribution, key: np.uint64) -> Callable:
    """``span(a, b, out_view, scratch)`` writing elements [a, b) of ``dist``'s keyed draw."""
    return _writer(dist, key, _normal_span, _uniform_span, _trunc_span)


def _grid_fn(dist: Distribution, key: np.uint64) -> Callable:
    """``grid(starts, run, out_rows, scratch)`` writing elements [s, s + run) of each start
    into the rows of ``out_rows``; one call takes at most ``_grid_rows(run)`` rows."""
    return _writer(dist, key, _normal_grid, _uniform_grid, _trunc_grid)


def _grid_rows(run: int) -> int:
    """Rows of ``run`` elements one grid call takes: <= _PAIRS counters (or pairs) in all."""
    return max(1, _PAIRS // (run + 2))


GRID_RUN = _PAIRS // 2  # runs shorter than this are computed many rows per pass


def _box_runs(shape, offset, size) -> tuple[np.ndarray, int]:
    """The flat starts of the contiguous runs a box of a C-ordered tensor is made of, and
    their common length: the box's innermost partial axis and every full axis after it."""
    nd = len(shape)
    k = nd - 1
    while k > 0 and offset[k] == 0 and size[k] == shape[k]:
        k -= 1
    inner = int(np.prod(shape[k + 1 :], dtype=np.int64))
    strides = [int(np.prod(shape[i + 1 :], dtype=np.int64)) for i in range(nd)]
    starts = np.array([offset[k] * strides[k] if nd else 0], dtype=np.int64)
    for i in range(k - 1, -1, -1):  # outer axes, innermost first: runs stay in C order
        rows = (offset[i] + np.arange(size[i], dtype=np.int64)) * strides[i]
        starts = (rows[:, None] + starts[None, :]).reshape(-1)
    return starts, (size[k] * inner if nd else 1)


def keyed_box(
    dist: Distribution,
    shape: tuple[int, ...],
    seed: int,
    path: str,
    offset: tuple[int, ...],
    size: tuple[int, ...],
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """The box ``[offset, offset + size)`` of the keyed draw of a tensor of ``shape`` (float32,
    C order): exactly that block of the whole, computed without the whole. A shard of
    ``Shard(1)`` is one run per row; memory is the box plus per-thread scratch.

    ``out``: a C-contiguous float32 array of shape ``size`` to write into.
    """
    shape, offset, size = (tuple(int(v) for v in t) for t in (shape, offset, size))
    if not len(shape) == len(offset) == len(size):
        raise ValueError(f"box offset {offset} / size {size} do not match a {len(shape)}-d shape")
    if any(o < 0 or n < 0 or o + n > s for s, o, n in zip(shape, offset, size)):
        raise ValueError(f"box at {offset} of size {size} is outside a tensor of shape {shape}")
    if out is None:
        out = np.empty(size, dtype=np.float32)
    elif out.dtype != np.float32 or tuple(out.shape) != size or not out.flags.c_contiguous:
        raise ValueError(
            f"out must be a C-contiguous float32 array of shape {size}; got {out.dtype} {out.shape}"
        )
    if 0 in size:
        return out
    key = derive_key(seed, path)
    span = _span_fn(dist, key)
    starts, run = _box_runs(shape, offset, size)
    flat = out.reshape(-1)
    if run >= 8 * _PAIRS or len(starts) == 1:  # long runs: each one on every thread
        for j, a in enumerate(starts.tolist()):
            _parallel(span, a, a + run, flat[j * run : (j + 1) * run])
        return out
    n_workers = workers()
    per = max(1, -(-(8 * _PAIRS) // run))  # runs per task: ~half a million values each
    grid = _grid_fn(dist, key) if run < GRID_RUN else None

    def task(j0: int, j1: int) -> None:
        sc = _scratch()
        if grid is not None:  # short runs: a block of rows per pass
            step = _grid_rows(run)
            for a in range(j0, j1, step):
                b = min(a + step, j1)
                grid(starts[a:b], run, flat[a * run : b * run].reshape(b - a, run), sc)
            return
        for j in range(j0, j1):
            a = int(starts[j])
            span(a, a + run, flat[j * run : (j + 1) * run], sc)

    groups = [(j, min(j + per, len(starts))) for j in range(0, len(starts), per)]
    if n_workers == 1 or len(groups) == 1:
        for j0, j1 in groups:
            task(j0, j1)
        return out
    for f in [_pool(n_workers).submit(task, j0, j1) for j0, j1 in groups]:
        f.result()
    return out


def keyed_normal_draw(seed: int, path: str) -> Callable[[tuple[int, ...]], np.ndarray]:
    """A standard-normal source for constructions (orthogonal) keyed by ``(seed, path)``."""
    return lambda shape: keyed_sample(NormalDist(0.0, 1.0), shape, seed, path, dtype=np.float64)

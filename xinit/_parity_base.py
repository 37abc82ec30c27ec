"""What parity compares and how it judges one layer: the inputs, the labels of the modules,
and a verdict against float32 rounding measured in float64 (or explicit tolerances)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# A pair passes a layer when its difference is at most THRESHOLD times the float32 rounding
# both sides make there (each side's float32 output against its own float64 run). A correct
# port stays at or under 1 (triangle inequality); docs/porting.md has the measured gap.
THRESHOLD = 4.0
# The rounding floor: one float32 ulp of the layer's largest value (an exact layer, a copy).
ULP = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Diff:
    """One pair at one layer: the difference, and the verdict on it."""

    max_abs: float
    max_rel: float
    passed: bool
    nonfinite: int = 0  # NaN/Inf values in the reference (matched by the other, or it fails)
    noise: float | None = None  # the float32 rounding both sides make here (float64 run)
    ratio: float | None = None  # max_abs / noise: the verdict when no tolerance is given
    note: str = ""  # why nothing could be compared (shapes differ)


def rounding(a32: Any, a64: Any) -> float:
    """max |a32 - a64| over the finite values: the float32 rounding of one side at one
    layer (0 when the shapes differ or nothing is finite: that layer says nothing here)."""
    a32 = np.asarray(a32, dtype=np.float64)
    a64 = np.asarray(a64, dtype=np.float64)
    if a32.shape != a64.shape or a32.size == 0:
        return 0.0
    keep = np.isfinite(a32) & np.isfinite(a64)
    return float(np.max(np.abs(a32[keep] - a64[keep]), initial=0.0))


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def compare(
    a: np.ndarray,
    b: np.ndarray,
    *,
    atol: float | None = 0.0,
    rtol: float | None = None,
    noise: float | None = None,
    threshold: float = THRESHOLD,
) -> Diff:
    """max |a - b|, that over max |a|, and the verdict, over the finite values.

    With ``noise`` (the rounding both sides make, :func:`rounding`) and no ``rtol``/``atol``
    the pair passes when max |a - b| <= ``threshold`` x noise, the noise floored at one
    float32 ulp of max |a|; else when max |a - b| <= atol + rtol x max |a|. A NaN or Inf of
    ``b`` not matched at the same place of the reference ``a`` (or the reverse) fails, and
    so does an output with no finite value to compare; different shapes fail, said so."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        note = f"shapes differ: {shape_text(a.shape)} vs {shape_text(b.shape)}"
        return Diff(math.inf, math.inf, False, note=note)
    if a.size == 0:
        return Diff(math.inf, math.inf, False, note="empty output")
    finite_a, finite_b = np.isfinite(a), np.isfinite(b)
    nonfinite = int(a.size - np.count_nonzero(finite_a))
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(invalid="ignore"):
        unmatched = (~finite_a | ~finite_b) & ~(both_nan | (a == b))
    keep = finite_a & finite_b
    if unmatched.any() or not keep.any():
        return Diff(math.inf, math.inf, False, nonfinite, note="NaN/Inf not matched")
    diff = float(np.max(np.abs(a[keep] - b[keep])))
    scale = float(np.max(np.abs(a[keep])))
    rel = diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)
    if noise is None or rtol is not None or atol is not None:
        bound = (atol or 0.0) + (rtol or 0.0) * scale
        return Diff(diff, rel, bool(diff <= bound), nonfinite)
    noise = max(float(noise), ULP * scale)
    ratio = diff / noise if noise > 0 else (0.0 if diff == 0 else math.inf)
    return Diff(diff, rel, bool(ratio <= threshold), nonfinite, noise, ratio)


def check_input(x: Any) -> np.ndarray | tuple:
    """The parity input as contiguous float32 (integers, token ids, as int64); an empty one
    (a batch of 0) compares nothing and is refused, as is one holding NaN or Inf. A tuple is
    a graph's several inputs (a decoder's target and memory, masks): each checked, bool
    masks kept bool, -inf allowed (PyTorch's float attention masks)."""
    if isinstance(x, (tuple, list)):
        return tuple(_mask_or_input(a) for a in x)
    x = np.asarray(x)
    x = np.ascontiguousarray(x, dtype=np.int64 if x.dtype.kind in "iu" else np.float32)
    if x.size == 0:
        raise ValueError(
            f"parity needs a non-empty input; got shape {tuple(x.shape)} "
            "(a dimension of 0 leaves nothing to compare)"
        )
    if not np.isfinite(x).all():
        raise ValueError("parity input holds NaN or Inf; outputs would compare nothing")
    return x


def _mask_or_input(a: Any) -> np.ndarray:
    """One of several parity inputs: a bool mask as it is, else float32 as :func:`check_input`
    makes it, where -inf (a float mask's blocked position) is allowed."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return np.ascontiguousarray(a)
    if a.dtype.kind in "iu":  # token ids
        return check_input(a)
    out = np.ascontiguousarray(a, dtype=np.float32)
    check_input(np.where(np.isneginf(out), np.float32(0.0), out))  # empty, NaN, +inf refused
    return out


def widened(x: np.ndarray | tuple) -> np.ndarray | tuple:
    """The checked input for the float64 run: float arrays as float64, ids and masks kept."""
    if isinstance(x, tuple):
        return tuple(widened(a) for a in x)
    return x.astype(np.float64) if x.dtype == np.float32 else x


def shape_of(x) -> tuple:
    """The input's shape, or the shapes of several inputs."""
    return tuple(tuple(a.shape) for a in x) if isinstance(x, tuple) else tuple(x.shape)


def labelled(modules) -> tuple[list[str], list[Any]]:
    """Labels and modules: a dict's keys, else each module's framework (numbered if twice)."""
    from xinit.backends import backend_of

    if isinstance(modules, Mapping):
        labels, mods = [str(k) for k in modules], list(modules.values())
    else:
        mods = list(modules)
        names = [backend_of(m).name for m in mods]
        counts: dict[str, int] = {}
        labels = []
        for n in names:
            counts[n] = counts.get(n, 0) + 1
            labels.append(n if names.count(n) == 1 else f"{n}#{counts[n]}")
    if len(mods) < 2:
        raise ValueError("parity needs two or more modules")
    return labels, mods


def rtol_of(a: str, b: str, labels_to_backend: dict[str, str], rtol: float | None) -> float:
    """The pair's rtol: the caller's, else the looser of the two frameworks' own (each
    ``backends/<name>/__init__.py`` states its ``PARITY_RTOL``)."""
    from xinit.backends import info

    if rtol is not None:
        return float(rtol)
    return max(info(labels_to_backend[a]).PARITY_RTOL, info(labels_to_backend[b]).PARITY_RTOL)

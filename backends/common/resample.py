"""The resize matrix of one axis of an ``Upsample`` (PyTorch's rule), shared by the Paddle
and Flax modules, whose own interpolation differs from PyTorch's at the edges."""

from __future__ import annotations

import numpy as np


def upsample_matrix(spec, n: int, o: int, factor: float | None):
    """The (o, n) float64 numpy matrix of one axis of ``spec``'s resize (PyTorch's rule):
    output[i] = sum_j M[i, j] * input[j]. The same matrix serves all three frameworks."""
    ratio = (1.0 / factor) if factor else n / o  # torch: 1/scale_factor when one is given
    i = np.arange(o, dtype=np.float64)
    m = np.zeros((o, n), np.float64)
    if spec.mode == "nearest":
        src = np.minimum(np.floor(i * np.float32(ratio)).astype(np.int64), n - 1)
        m[np.arange(o), src] = 1.0
        return m
    if spec.align_corners:
        src = i * ((n - 1) / (o - 1)) if o > 1 else np.zeros(o)
    else:
        src = np.maximum((i + 0.5) * ratio - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    np.add.at(m, (np.arange(o), lo), 1.0 - frac)
    np.add.at(m, (np.arange(o), hi), frac)
    return m

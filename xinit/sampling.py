"""``xinit.sample``: draw one initializer in any backend, returned in neutral layout."""

from __future__ import annotations

import math
import operator

import numpy as np

from ._compat import renamed
from .errors import ArgumentError
from .initializers import Initializer
from .memory import check_allocation
from .rng import check_seed


def sample(
    initializer: Initializer,
    shape: tuple[int, ...],
    *,
    role: str,
    framework: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    rng: str = "native",
    path: str = "sample",
    backend: str | None = None,
) -> np.ndarray:
    """Sample ``initializer`` for a parameter of neutral ``shape`` and ``role`` in ``framework``
    (``backend=`` is its deprecated name).

    The framework draws in its own native layout (Paddle Linear ``(in, out)``, Flax HWIO
    kernels) on ``device``; the result comes back as numpy in the neutral (PyTorch) layout.
    """
    from xinit.backends import get_backend

    framework = renamed("sample", "backend", backend, "framework", framework)
    if framework is None:
        raise TypeError("sample() missing its framework: 'torch', 'paddle' or 'flax'")

    if not isinstance(initializer, Initializer):
        raise TypeError(f"expected an xinit initializer; got {initializer!r}")
    adapter = get_backend(framework)
    adapter.check_device(device)
    try:
        shape = tuple(operator.index(s) for s in shape)  # ints only: 4.5 is not truncated to 4
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints; got {shape!r}") from None
    check_seed(seed)
    if any(s < 0 for s in shape):
        raise ArgumentError(f"shape must not have negative sizes; got {shape!r}")
    # the draw in native layout and its neutral copy, float32
    check_allocation(2 * 4 * math.prod(shape), f"sampling a {shape} tensor")
    dist = initializer.resolve(shape, role)
    return adapter.sample_neutral(dist, shape, role, seed=seed, path=path, device=device, rng=rng)

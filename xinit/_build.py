"""``xinit.build`` and ``xinit.run``: a spec becomes a native module; run it on numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._compat import renamed
from .blocks import infer


def build(
    spec,
    framework: str | None = None,
    *,
    seed: int = 0,
    device: str = "cpu",
    rng: str = "native",
    policy=None,
    input_shape: tuple[int, ...] | None = None,
    backend: str | None = None,
) -> Any:
    """Build ``spec`` (a spec, or a zoo model's name such as ``"resnet18"``) as a
    ``torch.nn.Module``, ``paddle.nn.Layer`` or Flax NNX module.

    Every trainable parameter is drawn from its initializer (the layer's own, or the
    ``policy``'s) with ``rng="native"`` (the framework's generator, seeded per parameter
    path) or ``rng="xinit"`` (identical values in every framework). With ``input_shape`` the
    whole spec is shape-checked first, so nothing is built half-way. ``framework`` is
    ``"torch"``, ``"paddle"`` or ``"flax"`` (``backend=`` is its deprecated name).
    """
    from xinit.backends import get_backend

    framework = renamed("build", "backend", backend, "framework", framework)
    if framework is None:
        raise TypeError("build() missing its framework: 'torch', 'paddle' or 'flax'")

    if isinstance(spec, str):  # a zoo model's name
        from . import models

        spec = models.get(spec)
    elif not hasattr(spec, "kind"):
        raise TypeError(
            f"build: pass a spec (xinit.layers / xinit.blocks) or a zoo model's name; got "
            f"{type(spec).__name__}"
        )
    if input_shape is not None:
        infer(spec, input_shape)
    return get_backend(framework).build(spec, seed=seed, device=device, rng=rng, policy=policy)


def run(module: Any, x: np.ndarray | tuple) -> np.ndarray | tuple | dict:
    """Eval-mode, gradient-free forward of a built module on channel-first numpy input (a
    tuple for a graph of several inputs); a graph of several outputs returns a tuple or a
    dict of channel-first numpy arrays."""
    from xinit.backends import backend_of

    x = tuple(np.asarray(a) for a in x) if isinstance(x, (tuple, list)) else np.asarray(x)
    return backend_of(module).run(module, x)

"""``xinit.build`` and ``xinit.run``: a spec becomes a native module; run it on numpy."""

from __future__ import annotations

from typing import Any

import numpy as np

from .blocks import infer


def build(
    spec,
    backend: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    rng: str = "native",
    policy=None,
    input_shape: tuple[int, ...] | None = None,
) -> Any:
    """Build ``spec`` (a spec, or a zoo model's name such as ``"resnet18"``) as a
    ``torch.nn.Module``, ``paddle.nn.Layer`` or Flax NNX module.

    Every trainable parameter is drawn from its initializer (the layer's own, or the
    ``policy``'s) with ``rng="native"`` (the framework's generator, seeded per parameter
    path) or ``rng="xinit"`` (identical values in every backend). With ``input_shape`` the
    whole spec is shape-checked first, so nothing is built half-way.
    """
    from xinit.backends import get_backend

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
    return get_backend(backend).build(spec, seed=seed, device=device, rng=rng, policy=policy)


def run(module: Any, x: np.ndarray | tuple) -> np.ndarray | tuple | dict:
    """Eval-mode, gradient-free forward of a built module on channel-first numpy input (a
    tuple for a graph of several inputs); a graph of several outputs returns a tuple or a
    dict of channel-first numpy arrays."""
    from xinit.backends import backend_of

    x = tuple(np.asarray(a) for a in x) if isinstance(x, (tuple, list)) else np.asarray(x)
    return backend_of(module).run(module, x)

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


def _check_run_input(spec, x: np.ndarray | tuple) -> None:
    """Refuse, in xinit's words, an input the module built from ``spec`` cannot take: a
    shape its layers reject (the layer path and shapes named) or a dtype its first layer
    cannot compute in (token ids for an embedding, its parameters' float type otherwise)."""
    from .blocks import param_specs, walk
    from .layers import Layer, SpecError

    arrays = x if isinstance(x, tuple) else (x,)
    for i, a in enumerate(arrays):
        if a.dtype.kind not in "biuf":
            which = f"input {i}" if isinstance(x, tuple) else "the input"
            raise SpecError(f"run: {which} has dtype {a.dtype}; a module takes real numbers")
    shape = tuple(a.shape for a in arrays) if isinstance(x, tuple) else x.shape
    try:
        infer(spec, shape)
    except SpecError as err:
        raise SpecError(f"run: an input of shape {shape} does not fit the module: {err}") from None
    if isinstance(x, tuple):  # several inputs (masks, memory): each layer checks its own
        return
    path, first = next(((p, n) for p, n in walk(spec) if isinstance(n, Layer)), ("", None))
    if first is None:
        return
    where = f"{path or '<root>'} ({first.kind})"
    if first.takes == "any":
        return
    if first.takes == "ids":
        if x.dtype.kind not in "iu":
            raise SpecError(f"run: {where} takes integer token ids; got {x.dtype}")
        return
    floats = [np.dtype(ps.dtype) for ps in param_specs(spec).values()]
    want = next((d for d in floats if d.kind == "f"), np.dtype(np.float32))
    if x.dtype != want:
        raise SpecError(
            f"run: {where} computes in {want}; got a {x.dtype} input of shape "
            f"{tuple(x.shape)} (pass x.astype(np.{want}))"
        )


def run(module: Any, x: np.ndarray | tuple) -> np.ndarray | tuple | dict:
    """Eval-mode, gradient-free forward of a built module on channel-first numpy input (a
    tuple for a graph of several inputs); a graph of several outputs returns a tuple or a
    dict of channel-first numpy arrays.

    For a module xinit built, an input of the wrong shape or dtype raises
    :class:`~xinit.SpecError` naming the layer and the shapes, before the framework runs."""
    from xinit.backends import backend_of

    x = tuple(np.asarray(a) for a in x) if isinstance(x, (tuple, list)) else np.asarray(x)
    spec = getattr(module, "_xinit_spec", None)
    if spec is not None:
        _check_run_input(spec, x)
    return backend_of(module).run(module, x)

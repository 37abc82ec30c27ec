"""Prove a port: the source checkpoint run in the source framework's model against the
ported checkpoint run in the destination's, layer by layer (``xinit port``'s report)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ._parity import THRESHOLD, parity
from ._parity_report import ParityReport


def _framework(convention: str) -> str:
    """The framework that runs a convention's checkpoint (neutral names are PyTorch's)."""
    return "torch" if convention == "neutral" else convention


def port_parity(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    ported: str | os.PathLike | Mapping[str, Any],
    model: Any,
    x: Any,
    *,
    src: str,
    dst: str,
    source_model: Any = None,
    strip_prefix: str | Iterable[str] | None = None,
    prefix_map: Mapping[str, str | None] | None = None,
    name_map: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    threshold: float = THRESHOLD,
) -> ParityReport:
    """Load ``checkpoint`` (convention ``src``) into the source model and ``ported`` (what
    :func:`xinit.port` gave, or its file, convention ``dst``) into ``model``, then compare
    them layer by layer on ``x`` with :func:`xinit.parity` (its verdict, ``rtol``/``atol``
    overrides and ``name_map``, the source's paths into the model's).

    The source model is ``source_model`` (the real model of the source framework) when
    given, else ``model`` itself built in ``src``'s framework when it is a spec (or a zoo
    name); a native ``model`` needs ``source_model``. ``strip_prefix``/``prefix_map`` read
    ``checkpoint`` as :func:`xinit.port` did."""
    from . import factories, models
    from ._build import build
    from ._port import port
    from .blocks import infer
    from .state import load_state_dict

    spec = models.get(model) if isinstance(model, str) else model
    is_spec = factories.is_spec(spec)
    if not is_spec and source_model is None:
        raise ValueError(
            "port_parity: a native model needs source_model= (the source framework's model) "
            "to compare against"
        )
    if is_spec:
        infer(spec, _shapes(x))  # too small an input: a SpecError naming the layer
        target = build(spec, _framework(dst), rng="xinit")
    else:
        target = spec
    source = source_model if source_model is not None else build(spec, _framework(src))
    read = {"strip_prefix": strip_prefix, "prefix_map": prefix_map}
    load_state_dict(source, port(checkpoint, source, src=src, dst="neutral", **read))
    load_state_dict(target, port(ported, target, src=dst, dst="neutral"))
    return parity(
        {f"{src} (in)": source, f"{dst} (out)": target},
        x,
        rtol=rtol,
        atol=atol,
        threshold=threshold,
        name_map=name_map,
    )


def _shapes(x: Any):
    """The shape (or shapes, several inputs) of the parity input."""
    if isinstance(x, (tuple, list)):
        return tuple(np.shape(a) for a in x)
    return np.shape(x)


__all__ = ["port_parity"]

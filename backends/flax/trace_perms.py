"""What the Flax tracer's parts share: axis permutations of channel-last arrays (physical
-> neutral), the token of a non-array node output, and flattening of nested outputs. A module
of its own so tracing, trace_ops and trace_layers import it without a circle."""

from __future__ import annotations

from typing import Any


def channel_perm(ndim: int) -> tuple[int, ...]:
    """The perm of a channel-last array of ``ndim`` dims (:func:`layouts.channel_last_axes`)."""
    from .layouts import channel_last_axes

    return channel_last_axes(ndim)


class _Token:
    """A node output that is no jax array (a Permute view of one): bound by identity."""


def _ident(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def _needed(layout: str | None, ndim: int, current: tuple[int, ...]) -> tuple[int, ...]:
    """The perm a layer of ``layout`` takes (or gives) an ``ndim``-d array in."""
    from . import layouts

    if layout == layouts.CHANNELS:
        return channel_perm(ndim)
    if layout == layouts.NEUTRAL:
        return _ident(ndim)
    return current if len(current) == ndim else _ident(ndim)


def _canonical(perm: tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """An output's perm as the spec returns it: a channel-last image channel-first, anything
    else as the model returns it."""
    return perm if perm == channel_perm(ndim) else _ident(ndim)


def _flat(items: list) -> list:
    out = []
    for v in items:
        if isinstance(v, (tuple, list)):
            out.extend(_flat(list(v)))
        elif isinstance(v, dict):
            out.extend(_flat(list(v.values())))
        else:
            out.append(v)
    return out


def _map(value: Any, fn) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_map(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map(v, fn) for k, v in value.items()}
    return fn(value)


__all__ = ["channel_perm", "_Token", "_ident", "_needed", "_canonical", "_flat", "_map"]

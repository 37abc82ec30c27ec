"""The one table of layer kinds: what policies, the defaults catalogue and the adapters agree on.

Every layer spec class registers its kind here (``@kinds.layer(...)`` in :mod:`xinit.layers`),
and a kind that xinit knows only in native models is registered with :func:`register` (no
spec); a later ``@kinds.layer`` on a spec for it upgrades that entry. A kind's row also holds
its traits (an element-wise activation, the attribute counting the channels it takes), read
by ``xinit.blocks`` and ``xinit.transformer`` instead of guessing by name, and a small
:class:`Example` that ``tests/backends/test_conformance.py`` runs in every framework. A new
layer kind is its spec, decorated, plus one lowering per framework (``backends/<framework>/
lowerings.py``; an activation: one line of that file's ``ACTIVATIONS`` table): nothing else
lists kinds.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import UnknownNameError


@dataclass(frozen=True)
class Example:
    """A small spec of a kind and the inputs it takes: what the conformance suite
    (``tests/backends/test_conformance.py``) builds, runs, moves and ports in every framework.

    ``inputs`` holds one channel-first shape per input; ``ids`` > 0 makes them integer ids
    below ``ids`` (token ids for an embedding) instead of floats.
    """

    spec: Any
    inputs: tuple[tuple[int, ...], ...]
    ids: int = 0


@dataclass(frozen=True)
class Kind:
    """One neutral layer kind.

    ``weight_role`` is the fan role of its ``weight`` (``conv``, ``linear``, ...; None when
    the weight is a per-feature vector or there is none); ``params`` its neutral leaf names
    in state-dict order; ``optional`` the leaves a framework may keep no counterpart of.
    """

    name: str
    spec: type | None = None
    weight_role: str | None = None
    params: tuple[str, ...] = ()
    optional: frozenset[str] = frozenset()
    aliases: tuple[str, ...] = ()
    buffers: frozenset[str] = frozenset()  # leaves that are state, not trainable parameters
    # traits: an element-wise activation (each framework's activation table lowers it, a
    # transformer layer may use it); the attribute naming the channel (feature) count the
    # layer takes ("" when none); whether the layer takes no fixed channel count at all
    activation: bool = False
    channels: str = ""
    channel_free: bool = False
    example: Callable[[], Example] | None = None  # its small example for the conformance suite


_TABLE: dict[str, Kind] = {}
_ALIASES: dict[str, str] = {}


def register(
    name: str,
    *,
    spec: type | None = None,
    weight_role: str | None = None,
    params: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    buffers: tuple[str, ...] = (),
    activation: bool = False,
    channels: str = "",
    channel_free: bool = False,
    example: Callable[[], Example] | None = None,
) -> Kind:
    """Add kind ``name`` to the table (again with the same spec class: a no-op)."""
    old = _TABLE.get(name)
    if old is not None and old.spec is not None and spec is not None and old.spec is not spec:
        raise ValueError(f"layer kind {name!r} is registered already, by {old.spec.__name__}")
    kind = Kind(
        name,
        spec,
        weight_role,
        tuple(params),
        frozenset(optional),
        tuple(aliases),
        frozenset(buffers),
        activation,
        channels,
        channel_free,
        example,
    )
    _TABLE[name] = kind
    for alias in aliases:
        _ALIASES[alias] = name
    return kind


def layer(
    *,
    weight_role: str | None = None,
    params: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    buffers: tuple[str, ...] = (),
    activation: bool = False,
    channels: str = "",
    channel_free: bool = False,
    example: Callable[[], Example] | None = None,
):
    """Class decorator for a layer spec: registers ``cls.kind`` with ``cls`` as its spec
    (the keywords are :func:`register`'s; ``example`` is called only when asked for)."""

    def decorate(cls):
        register(
            cls.kind,
            spec=cls,
            weight_role=weight_role,
            params=params,
            optional=optional,
            aliases=aliases,
            buffers=buffers,
            activation=activation,
            channels=channels,
            channel_free=channel_free,
            example=example,
        )
        return cls

    return decorate


def names() -> tuple[str, ...]:
    """Every registered kind, sorted."""
    return tuple(sorted(_TABLE))


def canonical(name: str) -> str:
    """``name`` or the kind it is an alias of."""
    return _ALIASES.get(name, name)


def get(name: str) -> Kind:
    """The kind ``name`` (or alias); KeyError with a suggestion when unknown."""
    kind = _TABLE.get(canonical(name))
    if kind is None:
        close = difflib.get_close_matches(name, [*_TABLE, *_ALIASES], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(names())
        raise UnknownNameError(f"unknown layer kind {name!r}{hint} (known kinds: {known})")
    return kind


def is_known(name: str) -> bool:
    return canonical(name) in _TABLE


def weight_role(name: str) -> str | None:
    """The fan role of kind ``name``'s weight (None for unknown kinds and vector weights)."""
    kind = _TABLE.get(name)
    return kind.weight_role if kind is not None else None


def activations() -> tuple[str, ...]:
    """The element-wise activation kinds, sorted (read now: kinds registered later count)."""
    return tuple(name for name in names() if _TABLE[name].activation)


def example(name: str) -> Example:
    """The small example of kind ``name``; LookupError naming the kind when it has none."""
    kind = get(name)
    if kind.example is None:
        raise LookupError(
            f"layer kind {kind.name!r} has no example: give its registration an "
            "example=lambda: kinds.Example(spec, input_shapes) for the conformance suite"
        )
    return kind.example()


def is_optional(kind: str, leaf: str) -> bool:
    """Whether a framework may keep no counterpart of ``leaf`` of a ``kind`` layer."""
    entry = _TABLE.get(kind)
    return entry is not None and leaf in entry.optional


__all__ = [
    "Kind",
    "Example",
    "activations",
    "example",
    "register",
    "layer",
    "names",
    "get",
    "canonical",
    "is_known",
    "weight_role",
]

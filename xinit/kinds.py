"""The one table of layer kinds: what policies, the defaults catalogue and the adapters agree on.

Every layer spec class registers its kind here (``@kinds.layer(...)`` in :mod:`xinit.layers`),
and a kind that xinit knows only in native models is registered with :func:`register` (no
spec); a later ``@kinds.layer`` on a spec for it upgrades that entry. A new layer kind is
its spec, decorated, plus one lowering per framework (``backends/<framework>/lowerings.py``):
nothing else lists kinds.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from .errors import UnknownNameError


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
):
    """Class decorator for a layer spec: registers ``cls.kind`` with ``cls`` as its spec."""

    def decorate(cls):
        register(
            cls.kind,
            spec=cls,
            weight_role=weight_role,
            params=params,
            optional=optional,
            aliases=aliases,
            buffers=buffers,
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


def is_optional(kind: str, leaf: str) -> bool:
    """Whether a framework may keep no counterpart of ``leaf`` of a ``kind`` layer."""
    entry = _TABLE.get(kind)
    return entry is not None and leaf in entry.optional


__all__ = ["Kind", "register", "layer", "names", "get", "canonical", "is_known", "weight_role"]

"""The recurrent kinds' lowering shape, written once: each framework writes one lowering for
both ``lstm`` and ``gru`` (their specs differ only in the gates), registered here per kind."""

from __future__ import annotations

from xinit import layers as L

from ..registry import Lowering, Registry

RECURRENT_SPECS = (L.LSTM, L.GRU)  # the recurrent layer kinds, in the order registered


def register_recurrent(registry: Registry, lowering: type[Lowering]) -> tuple[type, ...]:
    """Register ``lowering`` for every recurrent kind as a subclass named as the spec class
    (``LSTM``, ``GRU``), whose ``native_name`` is that name (the framework's own class and the
    spec class share it); the subclasses, in :data:`RECURRENT_SPECS` order."""
    out = []
    for spec in RECURRENT_SPECS:
        cls = type(spec.__name__, (lowering,), {"native_name": spec.__name__})
        cls.__module__ = lowering.__module__
        out.append(registry.register(spec.kind)(cls))
    return tuple(out)

"""The recurrent kinds' lowering shape, written once: each framework writes one lowering for
``lstm``, ``gru`` and ``rnn`` (their specs differ only in the gates; the vanilla RNN adds its
nonlinearity), registered here per kind."""

from __future__ import annotations

from xinit import layers as L

from ..registry import Lowering, Registry

RECURRENT_SPECS = (L.LSTM, L.GRU, L.RNN)  # the recurrent layer kinds, in the order registered


def register_recurrent(registry: Registry, lowering: type[Lowering]) -> tuple[type, ...]:
    """Register ``lowering`` for every recurrent kind as a subclass named as the spec class
    (``LSTM``, ``GRU``, ``RNN``), whose ``native_name`` is that name (the framework's own
    class and the spec class share it, but Paddle's ``SimpleRNN``); the subclasses, in
    :data:`RECURRENT_SPECS` order."""
    out = []
    for spec in RECURRENT_SPECS:
        cls = type(spec.__name__, (lowering,), {"native_name": spec.__name__})
        cls.__module__ = lowering.__module__
        out.append(registry.register(spec.kind)(cls))
    return tuple(out)


def recurrent_keywords(spec, activation: str = "nonlinearity") -> dict:
    """A PyTorch-style recurrent module's keywords beyond the shared ones: an RNN's
    nonlinearity (under the framework's keyword ``activation``), an LSTM's ``proj_size``
    where it has one."""
    if spec.kind == "rnn":
        return {activation: spec.nonlinearity}
    if spec.kind == "lstm" and spec.proj_size:
        return {"proj_size": spec.proj_size}
    return {}

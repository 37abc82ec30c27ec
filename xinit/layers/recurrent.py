"""Recurrent layers: ``LSTM``, ``GRU`` and the vanilla ``RNN`` as PyTorch's ``batch_first``
modules."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..fans import compute_fans
from ..initializers import (
    Uniform,
)
from .base import Layer, ParamSpec, SpecError, _positive_int

# ---- recurrent -----------------------------------------------------------------------------
RNN_BIASES = (True, False, "ih", "hh")


_RNN_LEAF = re.compile(r"^(weight|bias)_(ih|hh|hr)_l(\d+)(_reverse)?$")


@dataclass(frozen=True)
class _Recurrent(Layer):
    """A stack of recurrent layers with PyTorch's parameters (``nn.LSTM``/``nn.GRU``), on a
    batch-first (N, L, input_size) sequence; the output is the last layer's sequence (N, L,
    hidden_size * directions) alone: a graph node yields one array, so the final states
    (h_n, c_n) are not returned.

    Parameters, per layer ``k`` and direction (``_reverse`` for the backward one), in
    PyTorch's state-dict order: ``weight_ih_l{k}`` (G·H, in_k) with role ``rnn_input``,
    ``weight_hh_l{k}`` (G·H, H) with role ``rnn_recurrent``, ``bias_ih_l{k}`` and
    ``bias_hh_l{k}`` (G·H,); the G gate blocks are stacked along dim 0 in PyTorch's order;
    ``in_0 = input_size``, deeper layers take H·directions. Default init: PyTorch's
    U(±1/√H) on every one of them. No leaf is named ``weight``, so a policy rule for these
    layers names its leaves: ``Rule(init, kind="lstm", param="weight_hh*")`` (recurrent
    kernels), ``param="weight_ih*"`` (input kernels), ``param="*"`` (all); a plain
    ``Rule(init, kind="lstm")`` selects nothing and warns, listing the leaves.

    ``bias``: True (both biases, PyTorch), False (none), or ``"ih"``/``"hh"``: that bias
    alone, the other one zero in the math. Flax's own cells have one bias per gate
    (``nnx.LSTMCell`` the recurrent one, ``nnx.GRUCell`` the input one); specs read from
    them are one-bias specs, which PyTorch's modules cannot build.
    """

    gates: ClassVar[int] = 0
    gate_names: ClassVar[tuple[str, ...]] = ()
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool | str = True
    bidirectional: bool = False

    def __post_init__(self):
        _positive_int(self, input_size=self.input_size, hidden_size=self.hidden_size)
        _positive_int(self, num_layers=self.num_layers)
        if not any(self.bias is b or (isinstance(b, str) and self.bias == b) for b in RNN_BIASES):
            raise SpecError(
                f"{type(self).__name__}.bias must be True, False, 'ih' or 'hh'; got {self.bias!r}"
            )
        if not isinstance(self.bidirectional, bool):
            raise SpecError(
                f"{type(self).__name__}.bidirectional must be a bool; got {self.bidirectional!r}"
            )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def projected_size(self) -> int:
        """The size of the state fed back and output per direction: H, or an LSTM's P."""
        return getattr(self, "proj_size", 0) or self.hidden_size

    @property
    def output_size(self) -> int:
        return self.projected_size * self.directions

    def has_bias(self, side: str) -> bool:
        """Whether the layer has the ``"ih"`` or ``"hh"`` bias."""
        return self.bias is True or self.bias == side

    def layer_input(self, k: int) -> int:
        """The input size of layer ``k``: ``input_size``, then H·directions."""
        return self.input_size if k == 0 else self.output_size

    def cells(self) -> tuple[tuple[int, str], ...]:
        """``(layer, suffix)`` of every cell in PyTorch's order: ("", "_reverse") per layer."""
        suffixes = ("", "_reverse")[: self.directions]
        return tuple((k, s) for k in range(self.num_layers) for s in suffixes)

    @staticmethod
    def leaf_parts(name: str) -> tuple[str, int, bool] | None:
        """``"weight_ih_l1_reverse"`` -> ``("weight_ih", 1, True)``; None for other names."""
        m = _RNN_LEAF.match(name)
        return None if m is None else (f"{m[1]}_{m[2]}", int(m[3]), m[4] is not None)

    def channels(self, c):
        return self.output_size  # features of (N, L, D) in; the input's checked in output_shape

    def _params(self):
        g, h, kind = self.gates, self.hidden_size, self.kind
        bound = 1.0 / math.sqrt(h)
        init = Uniform(-bound, bound)
        out = []
        for k, sfx in self.cells():
            w_ih, w_hh = (g * h, self.layer_input(k)), (g * h, self.projected_size)
            f_ih, f_hh = compute_fans(w_ih, "rnn_input"), compute_fans(w_hh, "rnn_recurrent")
            out.append(ParamSpec(f"weight_ih_l{k}{sfx}", w_ih, "rnn_input", init, kind, f_ih))
            out.append(ParamSpec(f"weight_hh_l{k}{sfx}", w_hh, "rnn_recurrent", init, kind, f_hh))
            for side, fans in (("ih", f_ih), ("hh", f_hh)):
                if self.has_bias(side):
                    out.append(
                        ParamSpec(f"bias_{side}_l{k}{sfx}", (g * h,), "vector", init, kind, fans)
                    )
            if self.projected_size != h:  # an LSTM's projection h = W_hr (o * tanh(c))
                w_hr = (self.projected_size, h)
                f_hr = compute_fans(w_hr, "rnn_recurrent")
                out.append(
                    ParamSpec(f"weight_hr_l{k}{sfx}", w_hr, "rnn_recurrent", init, kind, f_hr)
                )
        return tuple(out)

    def output_shape(self, shape):
        if len(shape) != 3 or shape[-1] != self.input_size:
            raise SpecError(
                f"{type(self).__name__} expects a batch-first (N, L, input_size={self.input_size}) "
                f"sequence; got shape {tuple(shape)}"
            )
        return (shape[0], shape[1], self.output_size)

    def shape_hint(self, name: str, shape: tuple[int, ...]) -> str:
        """Why a tensor of ``shape`` does not fit leaf ``name``: a gate count that is another
        recurrent kind's (a GRU's 3 gates for an LSTM's 4), or another hidden size."""
        h = self.hidden_size
        if not shape or shape[0] % h or shape[0] // h == self.gates:
            return ""
        n = shape[0] // h
        return (
            f" ({n} gate blocks of hidden size {h}; {type(self).__name__} has {self.gates}: "
            f"{', '.join(self.gate_names)})"
        )


@kinds.layer(
    params=("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"),
    channels="input_size",
    example=lambda: kinds.Example(LSTM(4, 3), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class LSTM(_Recurrent):
    """PyTorch's ``nn.LSTM(batch_first=True)``: 4 gates (i, f, g, o); see :class:`_Recurrent`.

    ``proj_size`` P > 0 (PyTorch's and Paddle's): h = W_hr (o ⊙ tanh(c)), a
    ``weight_hr_l{k}`` (P, H) per cell (role ``rnn_recurrent``, U(±1/√H) as the rest),
    ``weight_hh_l{k}`` (4H, P), and the output (N, L, P·directions)."""

    kind: ClassVar[str] = "lstm"
    gates: ClassVar[int] = 4
    gate_names: ClassVar[tuple[str, ...]] = ("i", "f", "g", "o")
    proj_size: int = 0

    def __post_init__(self):
        super().__post_init__()
        p = self.proj_size
        if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < self.hidden_size:
            raise SpecError(
                f"LSTM.proj_size must be an int in [0, hidden_size={self.hidden_size}); got {p!r}"
            )


@kinds.layer(
    params=("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
    channels="input_size",
    example=lambda: kinds.Example(GRU(4, 3), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class GRU(_Recurrent):
    """PyTorch's ``nn.GRU(batch_first=True)``: 3 gates (r, z, n), with b_hn inside
    r ⊙ (W_hn h + b_hn); see :class:`_Recurrent`."""

    kind: ClassVar[str] = "gru"
    gates: ClassVar[int] = 3
    gate_names: ClassVar[tuple[str, ...]] = ("r", "z", "n")


RNN_NONLINEARITIES = ("tanh", "relu")


@kinds.layer(
    params=("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
    channels="input_size",
    example=lambda: kinds.Example(RNN(4, 3, nonlinearity="relu"), ((2, 5, 4),)),
)
@dataclass(frozen=True)
class RNN(_Recurrent):
    """PyTorch's ``nn.RNN(batch_first=True)``: one gate, h' = act(W_ih x + b_ih + W_hh h +
    b_hh) with ``nonlinearity`` tanh or relu; see :class:`_Recurrent`. Paddle's
    ``SimpleRNN`` (``activation=``) is the same; Flax's ``nnx.SimpleCell`` keeps the input
    side's bias alone (``bias="ih"``)."""

    kind: ClassVar[str] = "rnn"
    gates: ClassVar[int] = 1
    gate_names: ClassVar[tuple[str, ...]] = ("h",)
    nonlinearity: str = "tanh"

    def __post_init__(self):
        super().__post_init__()
        if self.nonlinearity not in RNN_NONLINEARITIES:
            raise SpecError(f"RNN.nonlinearity must be 'tanh' or 'relu'; got {self.nonlinearity!r}")

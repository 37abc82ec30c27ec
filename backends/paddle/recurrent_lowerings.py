"""Paddle's lowering of the recurrent kinds (``lstm``, ``gru``, ``rnn``; registered for each by
``lowerings.py`` through ``backends/common/recurrent.py``): ``paddle.nn``'s own layers, their
tensors under both of Paddle's names. Nothing here imports ``lowerings.py``, which imports
it."""

from __future__ import annotations

import math

from xinit import layers as L
from xinit.initializers import Uniform
from xinit.parammap import Extra, Leaf

from ..common.recurrent import recurrent_keywords
from ..registry import Lowering
from .lowering_base import _modules, _paddle, _seeded


class _Recurrent(Lowering):
    """``paddle.nn.LSTM``/``GRU``/``SimpleRNN`` (batch first, ``direction="bidirect"`` for
    two), returning the output sequence alone. Paddle's gates, layouts and biases are
    PyTorch's (LSTM i, f, g, o; GRU r, z, c with b_hc inside r * (W_hc h + b_hc),
    h = (h_prev - c) * z + c: the same as PyTorch's (1 - z) * n + z * h_prev; SimpleRNN's
    tanh or relu), weights (G*H, in).

    Paddle saves every tensor twice: under the cell's structured name (``0.cell_fw.weight_ih``,
    ``0.cell.weight_ih`` one way), the leaves of this map, which are always right, and under
    PyTorch-style names the layer sets as attributes (``weight_ih_l0_reverse``), the extras
    (second names). A bias the spec lacks is a frozen zero tensor here: Paddle's own
    ``bias_*_attr=False`` leaves the attributes misnamed and its CPU kernel crashes (Paddle
    3.3), so xinit keeps all four tensors per cell and freezes the absent biases at zero."""

    native_name: str = ""

    @property
    def paddle_name(self) -> str:
        """Paddle's class of this kind: ``LSTM``, ``GRU``, ``SimpleRNN``."""
        return _PADDLE_RNN_NAMES.get(self.native_name, self.native_name)

    def default_rule(self, spec, param):
        bound = 1.0 / math.sqrt(spec.hidden_size)
        cell = f"{self.paddle_name}Cell"
        src = f"python/paddle/nn/layer/rnn.py {cell} (default_initializer Uniform(-std, std))"
        text = "Uniform(-1/√H, 1/√H), H = hidden_size, on every weight and bias"
        return Uniform(-bound, bound), None, text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), self.paddle_name)
        return cls(spec.input_size, spec.hidden_size, **recurrent_keywords(spec, "activation"))

    def _cells(self, spec):
        """``(neutral suffix "l{k}[_reverse]", native cell path)`` in Paddle's order."""
        out = []
        for k, sfx in spec.cells():
            cell = ("cell_bw" if sfx else "cell_fw") if spec.bidirectional else "cell"
            out.append((f"l{k}{sfx}", f"{k}.{cell}"))
        return out

    def params(self, spec):
        names = {p.name for p in spec.params()}
        out = {}
        for sfx, cell in self._cells(spec):
            for leaf in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if f"{leaf}_{sfx}" in names:
                    out[f"{leaf}_{sfx}"] = (Leaf(f"{cell}.{leaf}"),)
            if f"weight_hr_{sfx}" in names:  # the LSTM's projection, stored (H, P), one name
                out[f"weight_hr_{sfx}"] = (Leaf(f"{cell}.weight_ho", (1, 0)),)
        return out

    def extras(self, spec):
        """The layer's PyTorch-style attribute names (second names of the cells' tensors,
        in Paddle's order) and the absent biases (frozen zeros). Paddle gives its tensors,
        in order, four such names per cell; an LSTM with ``proj_size`` has five tensors per
        cell (``weight_ho`` last), so its names shift onto other tensors (``weight_ih_l0_
        reverse`` is ``0.cell_fw.weight_ho``), as Paddle 3.3 saves them."""
        g = spec.gates * spec.hidden_size
        leaves = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        proj = ("weight_ho",) if getattr(spec, "proj_size", 0) else ()
        tensors = [f"{cell}.{leaf}" for _, cell in self._cells(spec) for leaf in leaves + proj]
        out = {}
        for i, (sfx, cell) in enumerate(self._cells(spec)):
            for side in ("ih", "hh"):
                if not spec.has_bias(side):
                    out[f"{cell}.bias_{side}"] = Extra(shape=(g,), fill=0.0)
            for j, leaf in enumerate(leaves):
                out[f"{leaf}_{sfx}"] = Extra(of=tensors[4 * i + j])
        return out

    def build(self, spec, device):
        m = _modules()
        frozen = _paddle().ParamAttr(
            initializer=_paddle().nn.initializer.Constant(0.0), trainable=False
        )
        bias = {side: m._placeholder() if spec.has_bias(side) else frozen for side in ("ih", "hh")}
        return getattr(m, self.paddle_name)(
            spec.input_size,
            spec.hidden_size,
            spec.num_layers,
            direction="bidirect" if spec.bidirectional else "forward",
            time_major=False,
            weight_ih_attr=m._placeholder(),
            weight_hh_attr=m._placeholder(),
            bias_ih_attr=bias["ih"],
            bias_hh_attr=bias["hh"],
            **recurrent_keywords(spec, "activation"),
        )

    def natives(self):
        return (getattr(_paddle().nn, self.paddle_name),)

    def read(self, m):
        first = m[0]
        cell = first.cell_fw if m.num_directions == 2 else first.cell

        def has(name):
            p = getattr(cell, name)
            return not (p.stop_gradient and not bool((p != 0).any()))  # a frozen zero: none

        ih, hh = has("bias_ih"), has("bias_hh")
        bias = True if ih and hh else "ih" if ih else "hh" if hh else False
        spec = getattr(L, self.native_name)
        extra = {"nonlinearity": m.activation} if spec.kind == "rnn" else {}
        if spec.kind == "lstm":
            extra = {"proj_size": m.proj_size}
        return spec(m.input_size, m.hidden_size, m.num_layers, bias, m.num_directions == 2, **extra)


_PADDLE_RNN_NAMES = {"RNN": "SimpleRNN"}  # Paddle's class where its name is not the spec's

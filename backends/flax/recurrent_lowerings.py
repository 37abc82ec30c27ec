"""Flax's lowering of the recurrent kinds (``lstm``, ``gru``; registered for both by
``lowerings.py`` through ``backends/common/recurrent.py``): xinit's own module with PyTorch's
math (``recurrent.py``), and Flax's own cells read as one-bias specs through their own
layouts. Nothing here imports ``lowerings.py``, which imports it."""

from __future__ import annotations

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import LecunNormal, Orthogonal, Zeros
from xinit.parammap import Leaf

from ..registry import Lowering


def _nnx():
    from flax import nnx

    return nnx


def _recurrent():
    from . import recurrent

    return recurrent


# Per-gate names of xinit's cells, input side then hidden side, in PyTorch's gate order:
# nnx.LSTMCell's own names (``if_``: ``if`` is a keyword), and a GRU's in the same style.
GATES = {
    "lstm": (("ii", "if_", "ig", "io"), ("hi", "hf", "hg", "ho")),
    "gru": (("ir", "iz", "in_"), ("hr", "hz", "hn")),
}
_FLAX_CELL = "_xinit_flax_cell"  # on a spec read from one of Flax's own cells: its class name


FLAX_CELLS = {  # Flax's own cells: (spec, the one bias they keep)
    "LSTMCell": (L.LSTM, "hh"),
    "OptimizedLSTMCell": (L.LSTM, "hh"),
    "GRUCell": (L.GRU, "ih"),  # dense_i's bias; no b_hn
}


def cell_spec(cell: str, n_in: int, hidden: int):
    """The one-bias spec of Flax's own cell class ``cell`` (its math is PyTorch's with the
    other bias zero), marked so that its map is that cell's own layout."""
    spec_cls, bias = FLAX_CELLS[cell]
    spec = spec_cls(n_in, hidden, bias=bias)
    object.__setattr__(spec, _FLAX_CELL, cell)
    return spec


def _per_gate(prefix: str, names, leaf: str, h: int, perm) -> tuple[Leaf, ...]:
    """A neutral gate-stacked tensor as one native tensor per gate (rows j*H:(j+1)*H)."""
    return tuple(
        Leaf(f"{prefix}{name}.{leaf}", perm, part=(0, j * h, (j + 1) * h))
        for j, name in enumerate(names)
    )


class RecurrentLowering(Lowering):
    """xinit's :class:`recurrent.Recurrent` (PyTorch's math, both biases; cells ``l{k}`` and
    ``l{k}_reverse`` with per-gate kernels (in, H)), which takes and returns the neutral
    (N, L, D) sequence. Flax's own cells are read too, as one-bias specs (their math is
    PyTorch's with the other bias zero), through their own layouts: ``nnx.LSTMCell``
    (per-gate ``ii.kernel`` ... ``ho.bias``), ``nnx.OptimizedLSTMCell`` (``dense_i``/
    ``dense_h`` kernels (in, 4H)) and ``nnx.GRUCell`` (``dense_i`` with the bias,
    ``dense_h`` (H, 3H)); ``xinit.apply`` then sets their input and recurrent kernels by
    role, and state/port move them (a torch/paddle module needs both biases: see
    ``docs/architecture.md``)."""

    layout = "sequence"
    native_name = ""

    def default_spec(self, spec):
        """Flax's own default layer is its cell (``nnx.LSTMCell``/``nnx.GRUCell``): one
        bias per gate, in its own layout."""
        return cell_spec(f"{self.native_name}Cell", spec.input_size, spec.hidden_size)

    def default_rule(self, spec, param):
        cell = f"{self.native_name}Cell"
        src = f"flax/nnx/nn/recurrent.py {cell} (linen: the same)"
        if param == "weight_ih_l0":
            text = "lecun_normal on each gate's kernel (in, H): fan_in = in"
            return LecunNormal(), Fans(spec.input_size, spec.hidden_size), text, src
        if param == "weight_hh_l0" and cell == "LSTMCell":
            text = "orthogonal on each gate's kernel (H, H) (modified_orthogonal)"
            return Orthogonal(blocks=4), None, text, src
        if param == "weight_hh_l0":
            text = "orthogonal on the stacked (H, 3H) kernel: orthonormal rows"
            return Orthogonal(), None, text, src
        text = "zeros_init(): one bias per gate (PyTorch's other bias: none, zero in the math)"
        return Zeros(), None, text, src

    def native_default(self, spec, seed):
        cell = getattr(_nnx(), f"{self.native_name}Cell")
        return cell(spec.input_size, spec.hidden_size, rngs=_nnx().Rngs(seed))

    def params(self, spec):
        cell = getattr(spec, _FLAX_CELL, None)
        if cell is not None:
            return self._native_cell_params(spec, cell)
        names = {p.name for p in spec.params()}
        h = spec.hidden_size
        inputs, hidden = GATES[spec.kind]
        out = {}
        for k, sfx in spec.cells():
            prefix, tail = f"l{k}{sfx}.", f"l{k}{sfx}"
            out[f"weight_ih_{tail}"] = _per_gate(prefix, inputs, "kernel", h, (1, 0))
            out[f"weight_hh_{tail}"] = _per_gate(prefix, hidden, "kernel", h, (1, 0))
            if f"bias_ih_{tail}" in names:
                out[f"bias_ih_{tail}"] = _per_gate(prefix, inputs, "bias", h, None)
            if f"bias_hh_{tail}" in names:
                out[f"bias_hh_{tail}"] = _per_gate(prefix, hidden, "bias", h, None)
        return out

    def _native_cell_params(self, spec, cell: str):
        h = spec.hidden_size
        if cell == "LSTMCell":
            inputs, hidden = GATES["lstm"]
            return {
                "weight_ih_l0": _per_gate("", inputs, "kernel", h, (1, 0)),
                "weight_hh_l0": _per_gate("", hidden, "kernel", h, (1, 0)),
                "bias_hh_l0": _per_gate("", hidden, "bias", h, None),
            }
        bias = "bias_hh_l0" if cell == "OptimizedLSTMCell" else "bias_ih_l0"
        dense = "dense_h" if cell == "OptimizedLSTMCell" else "dense_i"
        return {
            "weight_ih_l0": (Leaf("dense_i.kernel", (1, 0)),),
            "weight_hh_l0": (Leaf("dense_h.kernel", (1, 0)),),
            bias: (Leaf(f"{dense}.bias"),),
        }

    def build(self, spec, device):
        if getattr(spec, _FLAX_CELL, None) is not None:
            raise TypeError(
                f"{spec!r} was read from Flax's own {getattr(spec, _FLAX_CELL)}; xinit builds "
                f"its own module: build {type(spec).__name__}(...) made anew"
            )
        return getattr(_recurrent(), self.native_name)(spec, GATES[spec.kind])

    def natives(self):
        own = (c for c, (spec, _) in FLAX_CELLS.items() if spec.__name__ == self.native_name)
        return (getattr(_recurrent(), self.native_name), *(getattr(_nnx(), c) for c in own))

    def read(self, m):
        if isinstance(m, _recurrent().Recurrent):
            return m.spec
        return cell_spec(type(m).__name__, m.in_features, m.hidden_features)

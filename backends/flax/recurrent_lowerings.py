"""Flax's lowering of the recurrent kinds (``lstm``, ``gru``, ``rnn``; registered for each by
``lowerings.py`` through ``backends/common/recurrent.py``): xinit's own module with PyTorch's
math (``recurrent.py``), and Flax's own cells read as one-bias specs through their own
layouts. Nothing here imports ``lowerings.py``, which imports it."""

from __future__ import annotations

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import LecunNormal, Orthogonal, Zeros
from xinit.parammap import Leaf

from ..registry import Lowering
from .lowering_base import _nnx


def _recurrent():
    from . import recurrent

    return recurrent


# Per-gate names of xinit's cells, input side then hidden side, in PyTorch's gate order:
# nnx.LSTMCell's own names (``if_``: ``if`` is a keyword), and a GRU's in the same style.
GATES = {
    "lstm": (("ii", "if_", "ig", "io"), ("hi", "hf", "hg", "ho")),
    "gru": (("ir", "iz", "in_"), ("hr", "hz", "hn")),
    "rnn": (("dense_i",), ("dense_h",)),  # nnx.SimpleCell's names of its one gate per side
}
_FLAX_CELL = "_xinit_flax_cell"  # on a spec read from one of Flax's own cells: its class name


FLAX_CELLS = {  # Flax's own cells: (spec, the one bias they keep)
    "LSTMCell": (L.LSTM, "hh"),
    "OptimizedLSTMCell": (L.LSTM, "hh"),
    "GRUCell": (L.GRU, "ih"),  # dense_i's bias; no b_hn
    "SimpleCell": (L.RNN, "ih"),  # dense_i's bias
}
OWN_CELL = {"lstm": "LSTMCell", "gru": "GRUCell", "rnn": "SimpleCell"}  # a kind's default cell

LINEN_CELLS = {  # what flax.linen's cell of the same name draws (flax/linen/recurrent.py)
    "LSTMCell": "linen.LSTMCell: the same laws, per-gate names",
    "SimpleCell": "linen.SimpleCell: the same laws (i.kernel with i.bias, h.kernel (H, H))",
    "OptimizedLSTMCell": (
        "not linen's: linen.OptimizedLSTMCell keeps linen.LSTMCell's per-gate ii..io (in, H) "
        "and hi..ho (H, H) kernels (biases on hi..ho), each (H, H) orthogonal on its own: std "
        "1/√H, 2x nnx's stacked (H, 4H); the same values as linen.LSTMCell from the same key"
    ),
    "GRUCell": (
        "not linen's: linen.GRUCell keeps per-gate ir/iz/in (in, H) kernels with biases and "
        "hr/hz/hn (H, H) kernels (a bias on hn), each (H, H) orthogonal on its own: std 1/√H, "
        "√3x nnx's stacked (H, 3H)"
    ),
}


def cell_spec(cell: str, n_in: int, hidden: int, **fields):
    """The one-bias spec of Flax's own cell class ``cell`` (its math is PyTorch's with the
    other bias zero), marked so that its map is that cell's own layout."""
    spec_cls, bias = FLAX_CELLS[cell]
    spec = spec_cls(n_in, hidden, bias=bias, **fields)
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
    ``dense_h`` kernels (in, 4H)), ``nnx.GRUCell`` (``dense_i`` with the bias, ``dense_h``
    (H, 3H)) and ``nnx.SimpleCell`` (``dense_i`` with the bias, ``dense_h`` (H, H));
    ``xinit.apply`` then sets their input and recurrent kernels by role, and state/port
    move them (a torch/paddle module needs both biases: see
    ``docs/architecture.md``)."""

    layout = "sequence"
    native_name = ""

    def default_missing(self, spec):
        if getattr(spec, "proj_size", 0):
            note = "Flax's LSTM cells have no projection (PyTorch's proj_size, weight_hr)"
            return note, "flax/nnx/nn/recurrent.py LSTMCell, OptimizedLSTMCell"
        return None

    def default_spec(self, spec):
        """Flax's own default layer is its cell (``nnx.LSTMCell``/``GRUCell``/``SimpleCell``,
        or the cell ``spec`` was read from): one bias per gate, in its own layout."""
        if getattr(spec, _FLAX_CELL, None) is not None:
            return spec
        extra = {"nonlinearity": spec.nonlinearity} if spec.kind == "rnn" else {}
        return cell_spec(OWN_CELL[spec.kind], spec.input_size, spec.hidden_size, **extra)

    def default_rule(self, spec, param):
        """What the cell draws (``spec``'s own cell when read from one, else the kind's
        default cell): lecun_normal input kernels, orthogonal recurrent ones (per gate in
        ``LSTMCell``, one stacked (H, G·H) matrix in the others), zero biases."""
        cell = getattr(spec, _FLAX_CELL, None) or OWN_CELL[spec.kind]
        src = f"flax/nnx/nn/recurrent.py {cell} ({LINEN_CELLS[cell]})"
        g = spec.gates
        if param == "weight_ih_l0":
            text = f"lecun_normal on the input kernel{'s' if g > 1 else ''} (in, H): fan_in = in"
            return LecunNormal(), Fans(spec.input_size, spec.hidden_size), text, src
        if param == "weight_hh_l0" and cell == "LSTMCell":
            text = "orthogonal on each gate's kernel (H, H) (modified_orthogonal)"
            return Orthogonal(blocks=4), None, text, src
        if param == "weight_hh_l0":
            stacked = f"{g}H" if g > 1 else "H"
            text = f"orthogonal on the stacked (H, {stacked}) kernel: orthonormal rows"
            return Orthogonal(), None, text, src
        text = "zeros_init(): one bias per gate (PyTorch's other bias: none, zero in the math)"
        return Zeros(), None, text, src

    def native_default(self, spec, seed):
        cell = getattr(_nnx(), getattr(spec, _FLAX_CELL, None) or OWN_CELL[spec.kind])
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
            if f"weight_hr_{tail}" in names:  # LSTM proj_size: the projection kernel (H, P)
                out[f"weight_hr_{tail}"] = (Leaf(f"{prefix}proj.kernel", (1, 0)),)
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
        side = spec.bias  # the one bias of the cell: dense_h's ("hh") or dense_i's ("ih")
        bias, dense = f"bias_{side}_l0", "dense_h" if side == "hh" else "dense_i"
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
        if isinstance(m, _nnx().SimpleCell):
            act = _simple_activations().get(m.activation_fn)
            if act is None or m.residual:  # another activation, or h + act(...): no RNN
                return None
            return cell_spec("SimpleCell", m.in_features, m.hidden_features, nonlinearity=act)
        return cell_spec(type(m).__name__, m.in_features, m.hidden_features)


def _simple_activations():
    """``nnx.SimpleCell``'s activation functions that are a vanilla RNN's nonlinearity."""
    import jax

    return {jax.numpy.tanh: "tanh", _nnx().tanh: "tanh", jax.nn.relu: "relu", _nnx().relu: "relu"}

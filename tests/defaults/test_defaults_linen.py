"""What the Flax rows of the recurrent catalogue say about Linen, measured on ``flax.linen``'s
own cells: every Linen cell draws its recurrent kernels one (H, H) gate at a time (each a Haar
orthogonal matrix, std 1/√H), its input kernels with lecun_normal (fan_in = in) and its biases
zero. So Linen initialises as NNX where NNX's cell is per gate too (``LSTMCell``, the one-gate
``SimpleCell``), and differs for ``GRUCell`` and ``OptimizedLSTMCell``, which NNX stacks into
one orthogonal (H, G·H) matrix; the catalogue's source text must say which."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import assert_haar_orthogonal, assert_ks_one

from xinit.backends import part
from xinit.fans import Fans
from xinit.initializers import LecunNormal, Orthogonal

N_IN, H = 48, 64
LINEN = {  # cell: (input gates, recurrent gates, gates with a bias), as Linen names them
    "LSTMCell": ("ii if ig io", "hi hf hg ho", "hi hf hg ho"),
    "OptimizedLSTMCell": ("ii if ig io", "hi hf hg ho", "hi hf hg ho"),
    "GRUCell": ("ir iz in", "hr hz hn", "ir iz in hn"),
    "SimpleCell": ("i", "h", "i"),
}


def _linen_params(cell: str, key: int = 2) -> dict[str, dict[str, np.ndarray]]:
    import jax
    import jax.numpy as jnp
    from flax import linen

    module = getattr(linen, cell)(features=H)
    x = jnp.ones((1, N_IN))
    carry = module.initialize_carry(jax.random.key(1), x.shape)
    params = module.init(jax.random.key(key), carry, x)["params"]
    return {g: {k: np.asarray(v) for k, v in leaves.items()} for g, leaves in params.items()}


@pytest.mark.parametrize("cell", sorted(LINEN))
def test_linen_cells_draw_per_gate_and_the_catalogue_says_so(cell):
    require_backend("flax")
    inputs, hidden, biased = (names.split() for names in LINEN[cell])
    got = _linen_params(cell)
    assert set(got) == set(inputs) | set(hidden), sorted(got)
    for gate in inputs:
        assert got[gate]["kernel"].shape == (N_IN, H), gate
    for gate in hidden:
        assert got[gate]["kernel"].shape == (H, H), gate
    assert {g for g in got if "bias" in got[g]} == set(biased)
    for g in biased:
        np.testing.assert_array_equal(got[g]["bias"], 0.0)
    # each recurrent gate its own orthogonal (H, H): std 1/√H
    assert_haar_orthogonal([got[g]["kernel"] for g in hidden], 1.0, f"linen.{cell} gates")
    law = LecunNormal().resolve((H, N_IN), "linear", Fans(N_IN, H))
    assert_ks_one(np.concatenate([got[g]["kernel"].ravel() for g in inputs]), law, cell)

    # the catalogue: NNX's own cell and what its source text says of Linen's
    from xinit.backends.flax.recurrent_lowerings import FLAX_CELLS, cell_spec

    kind = FLAX_CELLS[cell][0].kind
    spec = cell_spec(cell, N_IN, H)
    lowering = part("flax", "lowerings").REGISTRY[kind]
    init, fans, _, source = lowering.default_rule(spec, "weight_hh_l0")
    gates = len(hidden)
    nnx_law = init.resolve((gates * H, H), "rnn_recurrent", fans)
    nnx_per_gate = gates == 1 or init == Orthogonal(blocks=gates)
    assert nnx_law.std == pytest.approx(1 / math.sqrt(H if nnx_per_gate else gates * H))
    if nnx_per_gate:
        assert f"linen.{cell}: the same laws" in source, source
    else:
        ratio = {3: "√3x", 4: "2x"}[gates]
        assert f"not linen's: linen.{cell} keeps" in source, source
        assert f"std 1/√H, {ratio} nnx's stacked (H, {gates}H)" in source, source


def test_linen_optimized_lstm_cell_is_linen_lstm_cell():
    """The catalogue says Linen's OptimizedLSTMCell draws the same values as its LSTMCell from
    the same key (per-gate parameters of the same names), unlike NNX's."""
    require_backend("flax")
    a, b = _linen_params("OptimizedLSTMCell", 7), _linen_params("LSTMCell", 7)
    assert a.keys() == b.keys()
    for gate in a:
        for leaf in a[gate]:
            np.testing.assert_array_equal(a[gate][leaf], b[gate][leaf], err_msg=gate)

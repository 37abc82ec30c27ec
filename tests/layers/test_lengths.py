"""The lengths-and-masks kinds (``xinit/layers/lengths.py``) and ``sdpa``'s additive mask:
their values against numpy's in every framework (ties, the float64 run's dtype), and bad
specs refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit.graph import Graph
from xinit.layers import ArgMax, Compare, CumSum, LengthMask, ScaledDotProductAttention, SpecError


@pytest.mark.parametrize("fw", ["torch", "paddle", "flax"])
def test_values_are_numpys(fw):
    """ArgMax takes the first of tied maxima, as numpy; Compare and ArgMax give floats of the
    input's dtype; LengthMask is -inf exactly at keys j >= length and on the diagonal."""
    require_backend(fw)
    x = np.array([[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], [[0.0, 0.0, 0.0], [5.0, -1.0, 5.0]]])
    x = x.astype(np.float32)
    cases = {
        "argmax": (ArgMax(-1), x, np.argmax(x, -1)),
        "cumsum": (CumSum(2), x, np.cumsum(x, 2)),
        "compare": (Compare("ge", 2.0), x, x >= 2.0),
    }
    for name, (layer, inp, want) in cases.items():
        out = np.asarray(xinit.run(xinit.build(layer, fw), inp))
        assert out.dtype == np.float32, (name, out.dtype)
        np.testing.assert_array_equal(out, want.astype(np.float32), err_msg=name)
    lengths = np.array([1.0, 3.0, 2.5], np.float32)
    out = np.asarray(
        xinit.run(xinit.build(Graph([("m", LengthMask(4, diagonal=True))]), fw), lengths)
    )
    j, i = np.arange(4)[None, None, :], np.arange(4)[None, :, None]
    blocked = (j >= lengths[:, None, None]) | (i == j)
    np.testing.assert_array_equal(out, np.where(blocked, -np.inf, 0.0)[:, None].astype(np.float32))


@pytest.mark.parametrize("fw", ["torch", "paddle", "flax"])
def test_sdpa_adds_the_mask_to_the_scores(fw):
    """A float mask of -inf on all keys but one makes each query return that key's value."""
    require_backend(fw)
    rng = np.random.default_rng(0)
    packed = rng.standard_normal((2, 4, 3 * 6)).astype(np.float32)
    keep = np.array([2, 0], np.int64)  # sample n sees only key keep[n]
    mask = np.full((2, 1, 4, 4), -np.inf, np.float32)
    mask[np.arange(2), 0, :, keep] = 0.0
    node = ScaledDotProductAttention(2, attn_mask=True)
    graph = Graph([("attention", node, ("x", "mask"))], inputs=("x", "mask"))
    out = np.asarray(xinit.run(xinit.build(graph, fw), (packed, mask)))
    values = packed[np.arange(2), keep, 12:]  # the rows v of the kept key
    np.testing.assert_allclose(out, np.broadcast_to(values[:, None], out.shape), rtol=1e-6)


def test_bad_specs_are_refused_by_name():
    with pytest.raises(SpecError, match="Compare.op must be one of"):
        Compare("is", 0.0)
    with pytest.raises(SpecError, match="ArgMax: dim 0 is the batch"):
        ArgMax(0).output_shape((2, 3))
    with pytest.raises(SpecError, match=r"LengthMask takes lengths \(N,\); got shape \(2, 3\)"):
        LengthMask(3).output_shape((2, 3))
    with pytest.raises(SpecError, match="attn_mask excludes causal"):
        ScaledDotProductAttention(2, causal=True, attn_mask=True)
    with pytest.raises(SpecError, match=r"attn_mask \(2, 3, 4, 4\) does not broadcast"):
        ScaledDotProductAttention(2, attn_mask=True).output_shape(((2, 4, 12), (2, 3, 4, 4)))
    assert ScaledDotProductAttention(2, attn_mask=True).output_shape(
        ((2, 4, 12), (2, 1, 4, 4))
    ) == (2, 4, 4)

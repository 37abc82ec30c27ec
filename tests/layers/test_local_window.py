"""``sdpa``'s ``local_window``: SVTR's ``Local`` mixer, where each token of an (H, W) grid
attends only to an hk x wk window around it. Ground truth: the mask as PaddleOCR builds it
(a padded (H + hk - 1, W + wk - 1) window per query, cropped), retyped in numpy, and the
masked attention computed directly in float64."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend

import xinit
from xinit.blocks import Sequential, infer
from xinit.layers import Linear, ScaledDotProductAttention, SpecError
from xinit.state import state_dict

# float32 against float64: scores and value sums are E- and L-long sums of O(1) terms; O(1)
# outputs agree to a few float32 ulps (rtol), with an atol for those near 0. A wrong window
# (shifted by one, transposed, or none) is off by O(0.1) on these inputs (checked below).
RTOL, ATOL = 2e-5, 2e-6


def padded_window_mask(grid, window) -> np.ndarray:
    """PaddleOCR's construction, retyped: ones (HW, H + hk - 1, W + wk - 1), zeros at
    [h : h + hk, w : w + wk] for query (h, w), cropped by (hk // 2, wk // 2); True = masked."""
    (h, w), (hk, wk) = grid, window
    mask = np.ones((h * w, h + hk - 1, w + wk - 1))
    for i in range(h):
        for j in range(w):
            mask[i * w + j, i : i + hk, j : j + wk] = 0.0
    return mask[:, hk // 2 : h + hk // 2, wk // 2 : w + wk // 2].reshape(h * w, h * w) > 0.5


def masked_attention64(x, heads, blocked) -> np.ndarray:
    """softmax(q kᵀ/√d + (-inf where blocked)) v on a packed (N, L, 3E) input, in float64."""
    x = x.astype(np.float64)
    n, length, packed = x.shape
    e = packed // 3
    d = e // heads
    qkv = x.reshape(n, length, 3, heads, d).transpose(2, 0, 3, 1, 4)
    scores = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) / np.sqrt(d)
    if blocked is not None:
        scores = np.where(blocked, -np.inf, scores)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    out = (scores / scores.sum(-1, keepdims=True)) @ qkv[2]
    return out.transpose(0, 2, 1, 3).reshape(n, length, e)


@pytest.mark.parametrize(
    "grid, window", [((8, 25), (7, 11)), ((4, 25), (7, 11)), ((3, 5), (2, 4)), ((1, 6), (1, 3))]
)
def test_window_mask_is_paddleocrs_cropped_padded_window(grid, window):
    """Odd and even windows, windows larger than the grid: the same mask as PaddleOCR's."""
    spec = ScaledDotProductAttention(2, local_window=window, grid=grid)
    np.testing.assert_array_equal(spec.window_mask(), padded_window_mask(grid, window))


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_local_attention_values_against_float64(backend):
    """Each framework's masked core equals the direct float64 computation; the unmasked and a
    transposed-window result are far off (the comparison catches a wrong mask)."""
    require_backend(backend)
    grid, window, heads, e = (4, 6), (3, 5), 2, 8
    spec = ScaledDotProductAttention(heads, local_window=window, grid=grid)
    x = np.random.default_rng(3).standard_normal((2, 24, 3 * e)).astype(np.float32) * 2
    got = np.asarray(xinit.run(xinit.build(spec, backend, seed=0), x))
    want = masked_attention64(x, heads, padded_window_mask(grid, window))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    for wrong in (None, padded_window_mask(grid, window[::-1])):
        assert np.abs(masked_attention64(x, heads, wrong) - want).max() > 0.1


def test_a_token_outside_the_window_changes_nothing():
    """Query (0, 0) with a (3, 3) window sees (0..1, 0..1) only: changing token (2, 2) leaves
    its output as it is, changing (1, 1) does not, in every framework."""
    spec = Sequential(
        qkv=Linear(8, 24),
        sdpa=ScaledDotProductAttention(2, local_window=(3, 3), grid=(3, 3)),
        proj=Linear(8, 8),
    )
    x = np.random.default_rng(4).standard_normal((1, 9, 8)).astype(np.float32)
    far, near = x.copy(), x.copy()
    far[0, 8] += 1.0  # (2, 2)
    near[0, 4] += 1.0  # (1, 1)
    for backend in installed():
        m = xinit.build(spec, backend, seed=1, rng="xinit")
        base = np.asarray(xinit.run(m, x))[0, 0]
        np.testing.assert_array_equal(np.asarray(xinit.run(m, far))[0, 0], base, backend)
        assert np.abs(np.asarray(xinit.run(m, near))[0, 0] - base).max() > 1e-3, backend


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_the_window_is_no_state_key(backend):
    """The mask is a constant of the spec (PaddleOCR keeps it as a plain attribute): the
    state holds the Linears' parameters only, as without a window."""
    require_backend(backend)
    spec = Sequential(
        qkv=Linear(8, 24),
        sdpa=ScaledDotProductAttention(2, local_window=(3, 3), grid=(2, 4)),
        proj=Linear(8, 8),
    )
    keys = set(state_dict(xinit.build(spec, backend, seed=0)))
    assert keys == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}


def test_bad_local_window_specs_are_refused():
    with pytest.raises(SpecError, match="local_window and grid go together"):
        ScaledDotProductAttention(2, local_window=(7, 11))
    with pytest.raises(SpecError, match="local_window must be an int or a tuple of 2"):
        ScaledDotProductAttention(2, local_window=(7, 11, 1), grid=(8, 25))
    with pytest.raises(SpecError, match="causal and local_window"):
        ScaledDotProductAttention(2, causal=True, local_window=(3, 3), grid=(2, 2))
    spec = Sequential(sdpa=ScaledDotProductAttention(2, local_window=(7, 11), grid=(8, 25)))
    with pytest.raises(SpecError, match=r"sdpa: .*grid \(8, 25\) needs L = 200 tokens"):
        infer(spec, (1, 100, 24))


@pytest.mark.parametrize("framework", ["torch", "paddle"])
@pytest.mark.parametrize("grid, window", [((8, 25), (7, 11)), ((3, 5), (2, 4)), ((1, 6), (1, 3))])
def test_the_exported_files_window_is_paddleocrs(framework, grid, window):
    """The code export writes the window as a ``local_window_mask`` function of the file
    (True where a key is seen): the negation of PaddleOCR's mask, odd and even windows."""
    from xinit import export_code

    require_backend(framework)
    spec = Sequential(sdpa=ScaledDotProductAttention(2, local_window=window, grid=grid))
    namespace: dict = {}
    exec(compile(export_code(spec, framework), "model.py", "exec"), namespace)  # noqa: S102
    seen = np.asarray(namespace["local_window_mask"](grid, window))
    np.testing.assert_array_equal(~seen, padded_window_mask(grid, window))

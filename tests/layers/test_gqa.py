"""Grouped-query attention (``MultiheadAttention(num_kv_heads=K)``): PyTorch's separate
projection names with K·D key/value rows. Torch and Paddle build xinit's own modules (neither
has such a layer), Flax its own ``nnx.MultiHeadAttention(num_kv_heads=K)``. Checked against a
float64 numpy reference, across the frameworks, against Flax's own layer, and Flax's default
law measured on its own layer."""

from __future__ import annotations

import numpy as np
import pytest
import test_rnn
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit.layers import MultiheadAttention, SpecError
from xinit.state import load_state_dict, state_dict, transfer

EPS32 = float(np.finfo(np.float32).eps)
SPECS = {
    "h4k2": MultiheadAttention(16, 4, num_kv_heads=2),
    "h4k1_kdim12_nobias": MultiheadAttention(16, 4, bias=False, kdim=12, vdim=12, num_kv_heads=1),
    "h4k2_causal_pad": MultiheadAttention(
        16, 4, key_padding_mask=True, is_causal=True, num_kv_heads=2
    ),
}


def _inputs(spec):
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 5, 16)).astype(np.float32)
    if spec.kdim:
        return (q, rng.standard_normal((2, 7, 12)).astype(np.float32))
    if spec.key_padding_mask:
        return (q, np.array([[False] * 4 + [True], [False] * 5]))
    return q


def _reference(spec, state, xs) -> np.ndarray:
    """Grouped-query attention in float64 numpy: query head i attends with key/value head
    i // (H/K); masks as PyTorch means them."""
    st = {k: v.astype(np.float64) for k, v in state.items()}
    q = np.asarray(xs[0] if isinstance(xs, tuple) else xs, np.float64)
    kv = np.asarray(xs[1], np.float64) if spec.kdim else q
    rows = np.cumsum((0, *spec.proj_rows))
    d, h, k = spec.head_dim, spec.num_heads, spec.kv_heads
    heads = []
    for i, (x, n) in enumerate(((q, h), (kv, k), (kv, k))):
        y = x @ st[f"{'qkv'[i]}_proj_weight"].T
        if spec.bias:
            y = y + st["in_proj_bias"][rows[i] : rows[i + 1]]
        y = y.reshape(*x.shape[:2], n, d).transpose(0, 2, 1, 3)
        heads.append(np.repeat(y, h // n, axis=1))
    scores = heads[0] @ heads[1].transpose(0, 1, 3, 2) / np.sqrt(d)
    if spec.is_causal:
        scores = np.where(np.triu(np.ones(scores.shape[-2:], bool), 1), -np.inf, scores)
    if spec.key_padding_mask:
        scores = np.where(xs[1][:, None, None, :], -np.inf, scores)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    y = (w / w.sum(-1, keepdims=True)) @ heads[2]
    y = y.transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[1], -1) @ st["out_proj.weight"].T
    return y + st["out_proj.bias"] if spec.bias else y


def _tolerance(spec) -> float:
    """float32 rounding of the projections and score sums (E + S terms, O(1) each) and of the
    out projection (E terms): a few eps per term, outputs O(1)."""
    return 4 * (2 * spec.embed_dim + 8) * EPS32


def test_spec_parameters_and_bad_heads():
    spec = SPECS["h4k2"]
    assert {p.name: p.shape for p in spec.params()} == {
        "q_proj_weight": (16, 16),
        "k_proj_weight": (8, 16),
        "v_proj_weight": (8, 16),
        "in_proj_bias": (32,),
        "out_proj.weight": (16, 16),
        "out_proj.bias": (16,),
    }
    assert MultiheadAttention(16, 4, num_kv_heads=4) == MultiheadAttention(16, 4)
    with pytest.raises(SpecError, match="num_kv_heads 3 does not divide num_heads 4"):
        MultiheadAttention(16, 4, num_kv_heads=3)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_every_framework_computes_grouped_query_attention(fw, name):
    """Each framework's build, with the keyed weights (identical neutral state everywhere),
    gives the float64 reference's outputs, masks included."""
    require_backend(fw)
    spec = SPECS[name]
    module = xinit.build(spec, fw, seed=1, rng="xinit")
    state = state_dict(module)
    xs = _inputs(spec)
    want = _reference(spec, state, xs)
    np.testing.assert_allclose(xinit.run(module, xs), want, rtol=0, atol=_tolerance(spec))


def test_transfer_is_exact_between_frameworks():
    require_backends(*FRAMEWORKS)
    spec = SPECS["h4k2"]
    rng = np.random.default_rng(3)
    noisy = {p.name: rng.standard_normal(p.shape).astype(np.float32) for p in spec.params()}
    src = xinit.build(spec, "paddle", seed=0)
    load_state_dict(src, noisy)
    for dst in ("torch", "flax"):
        other = xinit.build(spec, dst, seed=5)
        transfer(src, other)
        for k, v in state_dict(other).items():
            np.testing.assert_array_equal(v, noisy[k], err_msg=f"{dst} {k}")


def test_flax_own_layer_is_read_and_its_outputs_kept():
    """``nnx.MultiHeadAttention(num_kv_heads=2)`` is read as the spec (key kernel (E, K, D)),
    and its weights in xinit's torch build give Flax's outputs."""
    require_backends("flax", "torch")
    import jax.numpy as jnp
    from flax import nnx

    m = nnx.MultiHeadAttention(4, 16, num_kv_heads=2, decode=False, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    for _, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):  # nonzero biases too
        value = np.asarray(var.get_value())
        var.set_value(value + rng.uniform(-0.3, 0.3, value.shape).astype(np.float32))
    assert test_rnn._read(nnx.Sequential(m))["layers.0"] == SPECS["h4k2"]
    x = _inputs(SPECS["h4k2"])
    want = np.asarray(m(jnp.asarray(x)))
    built = xinit.build(SPECS["h4k2"], "torch", seed=0)
    assert transfer(m, built).summary() == "6 loaded"
    np.testing.assert_allclose(xinit.run(built, x), want, rtol=0, atol=_tolerance(SPECS["h4k2"]))


def test_default_rules():
    """Flax's own layer draws lecun_normal on each kernel (fan_in = its input size) and zero
    biases, measured; torch and Paddle have no such layer, and their lowerings say so."""
    require_backend("flax")
    test_rnn._assert_rule_is_measured("flax", MultiheadAttention(128, 8, num_kv_heads=2))
    from xinit.backends import part

    for fw in ("torch", "paddle"):
        missing = part(fw, "lowerings").REGISTRY["multihead_attention"].default_missing
        assert "no grouped-query attention" in missing(SPECS["h4k2"])[0]

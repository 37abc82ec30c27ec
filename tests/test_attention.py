"""Self-attention (MultiheadAttention) with each framework's own names and layouts: PyTorch's
packed (3E, E) ``in_proj_weight``, Paddle's q/k/v/out projections stored (in, out), Flax's
(E, H, D) and (H, D, E) kernels. Native weights give native outputs; transfer is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import (
    BACKENDS,
    flax_sequences_neutral,
    installed,
    require_backend,
    require_backends,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xinit
from xinit.blocks import Sequential, infer
from xinit.layers import LayerNorm, MultiheadAttention, SpecError
from xinit.plan import init_plan
from xinit.state import state_dict, transfer

# float32 rounding: two E-long products, a softmax over L and a product over L; each
# framework sums in its own order, so outputs of size O(1) agree to a few ulps (atol) and a
# few ulps relative (rtol). A transposed or misplaced projection is off by O(1).
RTOL, ATOL = 1e-5, 1e-6

SPECS = {
    "e8h2": MultiheadAttention(8, 2),
    "e12h3_nobias": MultiheadAttention(12, 3, bias=False),
    "e6h1": MultiheadAttention(6, 1),
}


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run_built(backend, module, *xs):
    """The eval-mode output of an xinit-built attention layer on neutral (N, L, E) inputs.
    The Flax layer takes and returns the neutral layout itself: it is called directly until
    the Flax adapter hands sequences over unchanged (``flax_sequences_neutral``)."""
    if backend == "flax" and not flax_sequences_neutral():
        import jax.numpy as jnp

        return np.asarray(module(*[jnp.asarray(x) for x in xs]))
    return np.asarray(xinit.run(module, xs[0] if len(xs) == 1 else xs))


def _native(backend, spec):
    """The framework's own attention module for ``spec`` with random weights, and a function
    running it as self-attention on a (N, L, E) numpy sequence."""
    e, h = spec.embed_dim, spec.num_heads
    rng = np.random.default_rng(11)
    if backend == "torch":
        import torch

        m = torch.nn.MultiheadAttention(e, h, bias=spec.bias, batch_first=True)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)))
        m.eval()

        def run(x):
            t = torch.from_numpy(x)
            with torch.no_grad():
                return m(t, t, t, need_weights=False)[0].numpy()

        return m, run
    if backend == "paddle":
        import paddle

        m = paddle.nn.MultiHeadAttention(e, h, bias_attr=None if spec.bias else False)
        for p in m.parameters():
            p.set_value(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32))
        m.eval()
        return m, lambda x: m(paddle.to_tensor(x)).numpy()
    import jax.numpy as jnp
    from flax import nnx

    m = nnx.MultiHeadAttention(h, e, use_bias=spec.bias, decode=False, rngs=nnx.Rngs(0))
    for _, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
        shape = var.get_value().shape
        var.set_value(jnp.asarray(rng.uniform(-0.5, 0.5, shape), jnp.float32))
    return m, lambda x: np.asarray(m(jnp.asarray(x), deterministic=True))


def _keys(backend, m):
    if backend == "flax":
        from flax import nnx

        flat = nnx.to_flat_state(nnx.state(m, nnx.Param))
        return {".".join(map(str, k)): tuple(v.get_value().shape) for k, v in flat}
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_keys_are_the_native_modules(backend, name):
    require_backend(backend)
    spec = SPECS[name]
    native, _ = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    assert _keys(backend, built) == _keys(backend, native)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_native_weights_give_native_outputs(backend, name):
    """The framework's own attention, read through the map and transferred into the xinit
    build, gives the native outputs on a (N, L, E) sequence."""
    require_backend(backend)
    spec = SPECS[name]
    native, run = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(2, 5, spec.embed_dim, seed=3)
    np.testing.assert_allclose(run_built(backend, built, x), run(x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "torch"])
def test_torch_weights_give_torch_outputs(backend):
    """PyTorch's module's weights, moved into Paddle's or Flax's layout, give PyTorch's
    outputs: the packed rows land on q, k, v in that order, each transposed as it must be."""
    require_backends("torch", backend)
    spec = SPECS["e8h2"]
    native, run = _native("torch", spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(3, 4, 8, seed=5)
    np.testing.assert_allclose(run_built(backend, built, x), run(x), rtol=RTOL, atol=ATOL)
    w = native.in_proj_weight.detach().numpy()
    if backend == "paddle":
        np.testing.assert_array_equal(built.k_proj.weight.numpy(), w[8:16].T)
    else:
        kernel = np.asarray(built.key.kernel.get_value())
        np.testing.assert_array_equal(kernel, w[8:16].T.reshape(8, 2, 4))


def test_transfer_exact_and_parity_across_frameworks():
    require_backends(*BACKENDS)
    spec = Sequential(ln=LayerNorm(8), attn=MultiheadAttention(8, 2))
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in BACKENDS}
    ref = state_dict(mods[BACKENDS[0]])
    for b in BACKENDS[1:]:
        state = state_dict(mods[b])
        assert state.keys() == ref.keys()
        for k, v in ref.items():
            np.testing.assert_array_equal(state[k], v, err_msg=f"{b} {k}")
    for src in BACKENDS:
        for dst in BACKENDS:
            if src != dst:
                other = xinit.build(spec, dst, seed=99)
                transfer(mods[src], other)
                for k, v in state_dict(other).items():
                    np.testing.assert_array_equal(v, ref[k], err_msg=f"{src}->{dst} {k}")
    if not flax_sequences_neutral():  # Flax runs sequence graphs after the layout change
        mods.pop("flax")
    report = xinit.parity(mods, rand(2, 6, 8, seed=1))
    assert report.ok, str(report.first_divergent)


def test_default_init_is_pytorchs():
    """PyTorch's defaults: Xavier-uniform on the packed (3E, E) matrix (fan_out 3E), zero
    biases, out_proj.weight U(±1/√E)."""
    e = 8
    laws = {item.path: item.dist for item in init_plan(MultiheadAttention(e, 2))}
    xavier = math.sqrt(6.0 / (e + 3 * e))
    assert (laws["in_proj_weight"].low, laws["in_proj_weight"].high) == pytest.approx(
        (-xavier, xavier), rel=1e-12
    )
    bound = 1.0 / math.sqrt(e)
    assert (laws["out_proj.weight"].low, laws["out_proj.weight"].high) == pytest.approx(
        (-bound, bound), rel=1e-12
    )
    assert laws["in_proj_bias"].std == laws["out_proj.bias"].std == 0.0
    assert laws["in_proj_bias"].mean == laws["out_proj.bias"].mean == 0.0


def test_bad_attention_specs():
    with pytest.raises(SpecError, match=r"embed_dim 10 is not divisible by num_heads 3"):
        MultiheadAttention(10, 3)
    spec = Sequential(attn=MultiheadAttention(8, 2))
    with pytest.raises(SpecError, match=r"attn: MultiheadAttention .*E=8.*\(2, 5, 6\)"):
        infer(spec, (2, 5, 6))
    with pytest.raises(SpecError, match=r"attn: .*\(2, 8\)"):
        infer(spec, (2, 8))


def test_port_torch_checkpoint_to_paddle_and_flax_keys():
    """``xinit.port`` splits the packed matrix without any framework: Paddle's own
    ``set_state_dict`` takes the result, Flax's names come back, and porting back is exact."""
    require_backends("torch", "paddle")
    spec = Sequential(attn=MultiheadAttention(8, 2))
    native, run = _native("torch", SPECS["e8h2"])
    ckpt = {f"attn.{k}": v.detach().numpy() for k, v in native.state_dict().items()}
    to_paddle = xinit.port(ckpt, spec, src="torch", dst="paddle")
    import paddle

    module = xinit.build(spec, "paddle", seed=3)
    missing, unexpected = module.set_state_dict(
        {k: paddle.to_tensor(v) for k, v in to_paddle.items()}
    )
    assert not missing and not unexpected
    x = rand(2, 3, 8, seed=8)
    np.testing.assert_allclose(xinit.run(module, x), run(x), rtol=RTOL, atol=ATOL)
    to_flax = xinit.port(ckpt, spec, src="torch", dst="flax")
    assert {k: v.shape for k, v in to_flax.items()} == {
        **{f"attn.{n}.kernel": (8, 2, 4) for n in ("query", "key", "value")},
        **{f"attn.{n}.bias": (2, 4) for n in ("query", "key", "value")},
        "attn.out.kernel": (2, 4, 8),
        "attn.out.bias": (8,),
    }
    back = xinit.port(dict(to_flax), spec, src="flax", dst="torch")
    for k, v in ckpt.items():
        np.testing.assert_array_equal(back[k], v)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    heads=st.integers(1, 4),
    head_dim=st.integers(1, 5),
    bias=st.booleans(),
    n=st.integers(1, 3),
    length=st.integers(1, 6),
)
def test_random_configurations_agree_with_torch(heads, head_dim, bias, n, length):
    """Any (heads, head_dim, bias, batch, length): every framework's build has the (N, L, E)
    output shape and, with rng="xinit", PyTorch's own module's values."""
    if "torch" not in installed():
        pytest.skip("needs torch for the reference")
    import torch

    e = heads * head_dim
    spec = MultiheadAttention(e, heads, bias=bias)
    x = rand(n, length, e, seed=heads * 100 + length)
    ref = torch.nn.MultiheadAttention(e, heads, bias=bias, batch_first=True)
    state = state_dict(xinit.build(spec, "torch", seed=4, rng="xinit"))
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    with torch.no_grad():
        t = torch.from_numpy(x)
        want = ref(t, t, t, need_weights=False)[0].numpy()
    for backend in installed():
        out = run_built(backend, xinit.build(spec, backend, seed=4, rng="xinit"), x)
        assert out.shape == (n, length, e)
        np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL, err_msg=backend)

"""MultiheadAttention with each framework's own names and layouts: PyTorch's packed (3E, E)
``in_proj_weight`` (separate ``q/k/v_proj_weight`` with kdim/vdim), Paddle's q/k/v/out
projections stored (in, out), Flax's (in, H, D) and (H, D, E) kernels. Self- and
cross-attention, ``attn_mask``/``key_padding_mask`` inputs with PyTorch's meaning and a causal
option. Native weights give native outputs; transfer is exact; the defaults are each
framework's own."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import FRAMEWORKS, assert_transfers_exact, installed, require_backend, require_backends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stats_helpers import N_MIN, assert_same_law, case_seed

import xinit
from xinit.blocks import Sequential, infer
from xinit.defaults.catalogue import Default
from xinit.graph import Graph
from xinit.layers import LayerNorm, MultiheadAttention, SpecError
from xinit.native import neutral_values, read_layers
from xinit.plan import init_plan
from xinit.state import state_dict, transfer

# float32 rounding: two E-long products, a softmax over L and a product over L; each
# framework sums in its own order, so outputs of size O(1) agree to a few ulps (atol) and a
# few ulps relative (rtol). A transposed or misplaced projection is off by O(1).
RTOL, ATOL = 1e-5, 1e-6
EPS32 = float(np.finfo(np.float32).eps)


def tol(spec: MultiheadAttention, s_len: int, want: np.ndarray) -> float:
    """The absolute tolerance between two frameworks' outputs ``want``-sized: each output is
    three chained float32 sums, each computed in its own order per framework: the input
    projections (max(E, kdim, vdim) terms), the scores and the weighted sum over the S keys,
    and out_proj (E terms). Each sum of n terms is off by at most n ulps of the summed
    magnitudes, which the inputs and weights used here (|values| <= ~4, weights <= 0.5) keep
    within a small multiple of max|y|: 4 ulps per term of the chain. A misplaced, transposed
    or unmasked projection is off by O(max|y|), thousands of times more."""
    terms = max(spec.embed_dim, spec.key_features, spec.value_features) + s_len + spec.embed_dim
    return 4 * EPS32 * terms * max(1.0, float(np.abs(want).max()))


SPECS = {
    "e8h2": MultiheadAttention(8, 2),
    "e12h3_nobias": MultiheadAttention(12, 3, bias=False),
    "e6h1": MultiheadAttention(6, 1),
}

# (spec kwargs, how many sequence inputs the node takes): self, (query, key_value), (q, k, v)
CROSS = {
    "self_e8h2": (dict(embed_dim=8, num_heads=2), 1),
    "kv_e8h2_k6": (dict(embed_dim=8, num_heads=2, kdim=6, vdim=6), 2),
    "qkv_e12h3_k5v7": (dict(embed_dim=12, num_heads=3, kdim=5, vdim=7), 3),
    "qkv_e6h1_k4_nobias": (dict(embed_dim=6, num_heads=1, bias=False, kdim=4, vdim=4), 3),
}
# Bool masks (PyTorch's meaning: True is masked out), which every native module also takes
MASKS = ("none", "attn_2d+padding", "attn_3d", "causal+padding")


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _mask_spec(name: str, masks: str) -> MultiheadAttention:
    kwargs, _ = CROSS[name]
    return MultiheadAttention(
        **kwargs,
        attn_mask=masks.startswith("attn"),
        key_padding_mask="padding" in masks,
        is_causal=masks.startswith("causal"),
    )


def _inputs(spec: MultiheadAttention, n_seq: int, masks: str, n=2, length=4, s_len=6, seed=0):
    """The node's inputs for ``spec`` (query[, key[, value]], masks) and the full bool
    "blocked" array (N, H, L, S) they mean, PyTorch's way. Key 0 is never blocked, so no
    row is fully masked."""
    s_len = length if n_seq == 1 else s_len
    rng = np.random.default_rng(seed)
    q = rand(n, length, spec.embed_dim, seed=seed)
    k = rand(n, s_len, spec.key_features, seed=seed + 1)
    v = k if n_seq == 2 else rand(n, s_len, spec.value_features, seed=seed + 2)
    xs = [q, k, v][:n_seq]
    h = spec.num_heads
    blocked = np.zeros((n, h, length, s_len), bool)
    if spec.attn_mask:
        shape = (length, s_len) if masks == "attn_2d+padding" else (n * h, length, s_len)
        attn = rng.random(shape) < 0.4
        attn[..., 0] = False
        xs.append(attn)
        blocked |= attn.reshape((1, 1, length, s_len) if attn.ndim == 2 else blocked.shape)
    if spec.key_padding_mask:
        pad = np.zeros((n, s_len), bool)
        pad[-1, s_len // 2 + 1 :] = True  # the last sequence is padded at its end
        xs.append(pad)
        blocked |= pad[:, None, None, :]
    if spec.is_causal:
        blocked |= np.triu(np.ones((length, s_len), bool), 1)
    return xs, blocked


def _native(backend, spec, seed=11):
    """The framework's own attention module for ``spec`` with random weights, and a function
    running it on (query, key, value) numpy arrays and a bool (N, H, L, S) "blocked" array
    (or None), given to the module in the framework's own mask convention."""
    e, h = spec.embed_dim, spec.num_heads
    rng = np.random.default_rng(seed)
    if backend == "torch":
        import torch

        m = torch.nn.MultiheadAttention(
            e, h, bias=spec.bias, kdim=spec.kdim, vdim=spec.vdim, batch_first=True
        )
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32)))
        m.eval()

        def run(q, k, v, blocked=None):  # torch: True masks out, (N·H, L, S)
            t = torch.from_numpy
            mask = None if blocked is None else t(blocked.reshape(-1, *blocked.shape[2:]))
            with torch.no_grad():
                return m(t(q), t(k), t(v), attn_mask=mask, need_weights=False)[0].numpy()

        return m, run
    if backend == "paddle":
        import paddle

        m = paddle.nn.MultiHeadAttention(
            e, h, kdim=spec.kdim, vdim=spec.vdim, bias_attr=None if spec.bias else False
        )
        for p in m.parameters():
            p.set_value(rng.uniform(-0.5, 0.5, p.shape).astype(np.float32))
        m.eval()

        def run(q, k, v, blocked=None):  # paddle: a bool True KEEPS, [N, H, L, S]
            t = paddle.to_tensor
            mask = None if blocked is None else t(~blocked)
            return m(t(q), t(k), t(v), attn_mask=mask).numpy()

        return m, run
    import jax.numpy as jnp
    from flax import nnx

    if spec.key_features != spec.value_features:
        raise ValueError("nnx.MultiHeadAttention has one key/value input size")
    m = nnx.MultiHeadAttention(
        h, e, in_kv_features=spec.key_features, use_bias=spec.bias, decode=False, rngs=nnx.Rngs(0)
    )
    for _, var in nnx.to_flat_state(nnx.state(m, nnx.Param)):
        shape = var.get_value().shape
        var.set_value(jnp.asarray(rng.uniform(-0.5, 0.5, shape), jnp.float32))

    def run(q, k, v, blocked=None):  # flax: a bool True KEEPS, [N, H, L, S]
        a = jnp.asarray
        mask = None if blocked is None else a(~blocked)
        return np.asarray(m(a(q), a(k), a(v), mask=mask, deterministic=True))

    return m, run


def _keys(backend, m):
    if backend == "flax":
        from flax import nnx

        flat = nnx.to_flat_state(nnx.state(m, nnx.Param))
        return {".".join(map(str, k)): tuple(v.get_value().shape) for k, v in flat}
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def _torch_reference(spec, module_state, xs):
    """PyTorch's own ``nn.MultiheadAttention`` with ``module_state`` (neutral names: torch's)
    on the node inputs ``xs``, masks given to it as they are (the semantics' definition); a
    causal spec gets PyTorch's own causal mask."""
    import torch

    ref = torch.nn.MultiheadAttention(
        spec.embed_dim,
        spec.num_heads,
        bias=spec.bias,
        kdim=spec.kdim,
        vdim=spec.vdim,
        batch_first=True,
    )
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in module_state.items()})
    ref.eval()
    q, k, v, attn, pad = spec.split_inputs([torch.from_numpy(x) for x in xs])
    if spec.is_causal:  # generate_square_subsequent_mask's rule: key j > query i gets -inf
        length, s_len = q.shape[1], k.shape[1]
        above = torch.ones(length, s_len, dtype=torch.bool).triu(1)
        causal = torch.zeros(length, s_len).masked_fill(above, -torch.inf)
        if attn is None:
            attn = causal
        elif attn.dtype == torch.bool:
            attn = causal.masked_fill(attn, -torch.inf)
        else:
            attn = attn + causal
    if attn is not None and pad is not None and attn.dtype != pad.dtype:  # both float
        pad, attn = (
            m if m.dtype != torch.bool else torch.zeros(m.shape).masked_fill(m, -torch.inf)
            for m in (pad, attn)
        )
    with torch.no_grad():
        out = ref(q, k, v, key_padding_mask=pad, attn_mask=attn, need_weights=False)
    return out[0].numpy()


# ---- self-attention (the first release's cases) ----------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_keys_are_the_native_modules(backend, name):
    require_backend(backend)
    spec = SPECS[name]
    native, _ = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    assert _keys(backend, built) == _keys(backend, native)


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_native_weights_give_native_outputs(backend, name):
    """The framework's own attention, read through the map and transferred into the xinit
    build, gives the native outputs on a (N, L, E) sequence."""
    require_backend(backend)
    spec = SPECS[name]
    native, run = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(2, 5, spec.embed_dim, seed=3)
    np.testing.assert_allclose(xinit.run(built, x), run(x, x, x), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("backend", [b for b in FRAMEWORKS if b != "torch"])
def test_torch_weights_give_torch_outputs(backend):
    """PyTorch's module's weights, moved into Paddle's or Flax's layout, give PyTorch's
    outputs: the packed rows land on q, k, v in that order, each transposed as it must be."""
    require_backends("torch", backend)
    spec = SPECS["e8h2"]
    native, run = _native("torch", spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(3, 4, 8, seed=5)
    np.testing.assert_allclose(xinit.run(built, x), run(x, x, x), rtol=RTOL, atol=ATOL)
    w = native.in_proj_weight.detach().numpy()
    if backend == "paddle":
        np.testing.assert_array_equal(built.k_proj.weight.numpy(), w[8:16].T)
    else:
        kernel = np.asarray(built.key.kernel.get_value())
        np.testing.assert_array_equal(kernel, w[8:16].T.reshape(8, 2, 4))


def test_transfer_exact_and_parity_across_frameworks():
    require_backends(*FRAMEWORKS)
    spec = Sequential(ln=LayerNorm(8), attn=MultiheadAttention(8, 2))
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    ref = state_dict(mods[FRAMEWORKS[0]])
    for b in FRAMEWORKS[1:]:
        state = state_dict(mods[b])
        assert state.keys() == ref.keys()
        for k, v in ref.items():
            np.testing.assert_array_equal(state[k], v, err_msg=f"{b} {k}")
    assert_transfers_exact(spec, mods, ref)
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
    np.testing.assert_allclose(xinit.run(module, x), run(x, x, x), rtol=RTOL, atol=ATOL)
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
        out = np.asarray(xinit.run(xinit.build(spec, backend, seed=4, rng="xinit"), x))
        assert out.shape == (n, length, e)
        np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL, err_msg=backend)


# ---- cross-attention, kdim/vdim, masks -----------------------------------------------------
def _native_cases():
    """(backend, config, masks) with a native module to compare to: Flax's has one key/value
    input size, so kdim != vdim has no native Flax module (the torch-reference tests cover
    xinit's Flax module there)."""
    out = []
    for backend in FRAMEWORKS:
        for name, (kwargs, _) in CROSS.items():
            if backend == "flax" and kwargs.get("kdim") != kwargs.get("vdim"):
                continue
            out += [(backend, name, masks) for masks in MASKS]
    return out


@pytest.mark.parametrize("name", sorted(CROSS))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_cross_attention_keys_are_the_native_modules(backend, name):
    """With kdim/vdim: torch's ``q/k/v_proj_weight``, Paddle's (kdim, E)/(vdim, E) k/v
    projections, Flax's (kdim, H, D) key kernel; Flax's value kernel is (vdim, H, D) in
    xinit's module, where nnx's has one key/value size."""
    require_backend(backend)
    spec = _mask_spec(name, "none")
    built = xinit.build(spec, backend, seed=0)
    if backend == "flax" and spec.key_features != spec.value_features:
        kv_spec = MultiheadAttention(
            spec.embed_dim, spec.num_heads, spec.bias, spec.kdim, spec.kdim
        )
        want = _keys(backend, _native(backend, kv_spec)[0])
        want["value.kernel"] = (spec.value_features, spec.num_heads, spec.head_dim)
    else:
        want = _keys(backend, _native(backend, spec)[0])
    assert _keys(backend, built) == want
    if backend == "torch":
        assert list(built.state_dict()) == list(_native(backend, spec)[0].state_dict())


@pytest.mark.parametrize("backend, name, masks", _native_cases())
def test_native_cross_attention_weights_give_native_outputs(backend, name, masks):
    """The framework's own attention (kdim/vdim, one to three sequence inputs), transferred
    into the xinit build, gives the native outputs with bool masks: xinit's masks mean
    PyTorch's (True: masked out), each native module gets the same positions in its own
    convention (Paddle and Flax: True keeps), and the causal option blocks key j > query i."""
    require_backend(backend)
    spec = _mask_spec(name, masks)
    native, run = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    xs, blocked = _inputs(spec, CROSS[name][1], masks, seed=case_seed(backend, name, masks))
    q, k, v, _, _ = spec.split_inputs(xs)
    want = run(q, k, v, blocked if blocked.any() else None)
    got = xinit.run(built, tuple(xs) if len(xs) > 1 else xs[0])
    assert got.shape == q.shape[:2] + (spec.embed_dim,)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(spec, k.shape[1], want))


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_float_masks_and_causal_give_torchs_outputs(backend):
    """Float masks are added to the scores (-inf blocks), combined with a bool padding mask
    and the causal option, in every framework as in PyTorch's own module; key and value of
    different sizes (kdim 5, vdim 7) and S != L."""
    require_backends("torch", backend)
    spec = MultiheadAttention(
        12, 3, kdim=5, vdim=7, attn_mask=True, key_padding_mask=True, is_causal=True
    )
    n, length, s_len = 2, 4, 6
    rng = np.random.default_rng(case_seed("float-masks"))
    attn = rng.standard_normal((n * 3, length, s_len)).astype(np.float32)
    attn[rng.random(attn.shape) < 0.3] = -np.inf
    attn[..., 0] = 0.5  # key 0 open everywhere: no row fully blocked
    pad = np.zeros((n, s_len), bool)
    pad[0, 4:] = True
    xs = (rand(n, length, 12, seed=1), rand(n, s_len, 5, seed=2), rand(n, s_len, 7, seed=3))
    xs = (*xs, attn, pad)
    built = xinit.build(spec, backend, seed=7, rng="xinit")
    want = _torch_reference(spec, state_dict(built), xs)
    got = xinit.run(built, xs)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol(spec, s_len, want))
    plain = xinit.build(MultiheadAttention(12, 3, kdim=5, vdim=7), backend, seed=7, rng="xinit")
    unmasked = xinit.run(plain, xs[:3])
    assert np.abs(unmasked - want).max() > 100 * tol(spec, s_len, want)  # the masks mattered


def test_cross_attention_transfer_exact_between_all_pairs_and_parity():
    """Separate q/k/v projections (kdim 5, vdim 7) move between every pair of frameworks
    bit for bit, and the three builds agree layer by layer on the node's five inputs."""
    require_backends(*FRAMEWORKS)
    spec = MultiheadAttention(12, 3, kdim=5, vdim=7, attn_mask=True, key_padding_mask=True)
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    ref = state_dict(mods["torch"])
    assert list(ref) == [
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ]
    assert_transfers_exact(spec, mods, ref)
    xs, _ = _inputs(spec, 3, "attn_3d", seed=4)  # (N·H, L, S) bool mask, then padding
    report = xinit.parity(mods, tuple(xs))
    assert report.ok, str(report.first_divergent)
    assert report.input_shape == ((2, 4, 12), (2, 6, 5), (2, 6, 7), (6, 4, 6), (2, 6))


def test_port_separate_projections_to_paddle_and_flax():
    """A torch checkpoint with kdim/vdim ports to Paddle (what its ``set_state_dict`` takes)
    and Flax (key/value kernels (kdim, H, D), (vdim, H, D)), and back exactly."""
    require_backends("torch", "paddle")
    import paddle

    spec = Sequential(attn=MultiheadAttention(8, 2, kdim=6, vdim=6))
    native, run = _native("torch", spec["attn"])
    ckpt = {f"attn.{k}": v.detach().numpy() for k, v in native.state_dict().items()}
    module = xinit.build(spec, "paddle", seed=3)
    to_paddle = xinit.port(ckpt, spec, src="torch", dst="paddle")
    assert to_paddle["attn.k_proj.weight"].shape == (6, 8)
    missing, unexpected = module.set_state_dict(
        {k: paddle.to_tensor(v) for k, v in to_paddle.items()}
    )
    assert not missing and not unexpected
    q, kv = rand(2, 3, 8, seed=8), rand(2, 5, 6, seed=9)
    graph = Graph({"attn": (spec["attn"], ("q", "kv"))}, inputs=("q", "kv"))
    g = xinit.build(graph, "paddle", seed=3)
    g.set_state_dict({k: paddle.to_tensor(v) for k, v in to_paddle.items()})
    want = run(q, kv, kv)
    np.testing.assert_allclose(xinit.run(g, (q, kv)), want, rtol=0, atol=tol(spec["attn"], 5, want))
    to_flax = xinit.port(ckpt, spec, src="torch", dst="flax")
    assert to_flax["attn.key.kernel"].shape == to_flax["attn.value.kernel"].shape == (6, 2, 4)
    assert to_flax["attn.query.kernel"].shape == (8, 2, 4)
    back = xinit.port(dict(to_flax), spec, src="flax", dst="torch")
    for k, v in ckpt.items():
        np.testing.assert_array_equal(back[k], v)


@st.composite
def attention_cases(draw):
    """A random attention node: heads, head size, kdim/vdim, bias, batch, lengths, one to
    three sequence inputs, bool or float masks (2-d or 3-d, -inf entries), padding, causal."""
    heads, head_dim = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    e = heads * head_dim
    n_seq = draw(st.integers(1, 3))
    kdim = vdim = None
    if n_seq >= 2:
        kdim = draw(st.one_of(st.none(), st.integers(1, 6)))
        vdim = kdim if n_seq == 2 else draw(st.one_of(st.none(), st.integers(1, 6)))
    attn = draw(st.sampled_from((None, "bool2", "bool3", "float2", "float3")))
    spec = MultiheadAttention(
        e,
        heads,
        bias=draw(st.booleans()),
        kdim=kdim,
        vdim=vdim,
        attn_mask=attn is not None,
        key_padding_mask=draw(st.booleans()),
        is_causal=draw(st.booleans()),
    )
    n, length = draw(st.integers(1, 2)), draw(st.integers(1, 5))
    s_len = length if n_seq == 1 else draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    seqs = [rand(n, length, e, seed=int(rng.integers(1 << 30)))]
    seqs.append(rand(n, s_len, spec.key_features, seed=int(rng.integers(1 << 30))))
    seqs.append(rand(n, s_len, spec.value_features, seed=int(rng.integers(1 << 30))))
    xs = seqs[:n_seq] if n_seq != 2 else [seqs[0], seqs[1]]
    if attn is not None:
        shape = (length, s_len) if attn.endswith("2") else (n * heads, length, s_len)
        if attn.startswith("bool"):
            mask = rng.random(shape) < 0.4
            mask[..., 0] = False
        else:
            mask = rng.standard_normal(shape).astype(np.float32)
            mask[rng.random(shape) < 0.3] = -np.inf
            mask[..., 0] = 0.0
        xs.append(mask)
    if spec.key_padding_mask:
        pad = rng.random((n, s_len)) < 0.4
        pad[:, 0] = False
        xs.append(pad)
    return spec, xs, s_len


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=attention_cases())
def test_random_attention_configurations(case):
    """Any attention node: shape inference gives every framework's output shape, and with
    rng="xinit" every framework gives the values of PyTorch's own module with the same
    weights and masks."""
    if "torch" not in installed():
        pytest.skip("needs torch for the reference")
    spec, xs, s_len = case
    shapes = tuple(x.shape for x in xs)
    want_shape = infer(
        Graph(
            {"attn": (spec, tuple(f"x{i}" for i in range(len(xs))))},
            inputs=tuple(f"x{i}" for i in range(len(xs))),
        ),
        shapes,
    )[-1].output_shape
    state = state_dict(xinit.build(spec, "torch", seed=4, rng="xinit"))
    want = _torch_reference(spec, state, xs)
    assert want.shape == want_shape
    for backend in installed():
        built = xinit.build(spec, backend, seed=4, rng="xinit")
        out = np.asarray(xinit.run(built, tuple(xs) if len(xs) > 1 else xs[0]))
        assert out.shape == want_shape, backend
        np.testing.assert_allclose(out, want, rtol=0, atol=tol(spec, s_len, want), err_msg=backend)


# ---- bad input -----------------------------------------------------------------------------
def _node(spec, n_inputs, where="block"):
    names = tuple(f"x{i}" for i in range(n_inputs))
    inner = Graph({"attn": (spec, names)}, inputs=names)
    return Graph({where: (inner, names)}, inputs=names)


def test_score_bias_is_pytorchs_mask_meaning_in_numpy():
    """The one additive mask Paddle and Flax take, computed by the spec on numpy: entry
    (n, h, i, j) is -inf exactly where PyTorch masks score (n, h, i, j) (bool attn_mask of
    head n*H+h, padding of key j in sample n, causal j > i), else the float masks' sum."""
    n, heads, length, s_len = 2, 3, 4, 5
    spec = MultiheadAttention(6, heads, attn_mask=True, key_padding_mask=True, is_causal=True)
    rng = np.random.default_rng(case_seed("score-bias"))
    attn = rng.random((n * heads, length, s_len)) < 0.3
    pad = rng.standard_normal((n, s_len)).astype(np.float32)
    q, k = np.zeros((n, length, 6), np.float32), np.zeros((n, s_len, 6), np.float32)
    bias = spec.score_bias(np, q, k, attn, pad)
    assert bias.shape == (n, heads, length, s_len) and bias.dtype == np.float32
    for b, h, i, j in np.ndindex(bias.shape):
        masked = attn[b * heads + h, i, j] or j > i
        assert bias[b, h, i, j] == (-np.inf if masked else pad[b, j])
    plain = MultiheadAttention(6, heads, attn_mask=True)
    shared = plain.score_bias(np, q, k, attn[0])  # one (L, S) mask for every sample and head
    assert shared.shape == (1, 1, length, s_len)
    assert np.array_equal(shared[0, 0] == -np.inf, attn[0])
    assert MultiheadAttention(6, heads).score_bias(np, q, k) is None


def test_wrong_mask_shapes_name_the_node_and_the_shapes():
    spec = MultiheadAttention(8, 2, kdim=6, vdim=6, attn_mask=True, key_padding_mask=True)
    graph = _node(spec, 4)
    good = ((2, 4, 8), (2, 7, 6), (4, 7), (2, 7))
    assert infer(graph, good)[-1].output_shape == (2, 4, 8)
    assert infer(graph, ((2, 4, 8), (2, 7, 6), (4, 4, 7), (2, 7)))[-1].output_shape == (2, 4, 8)
    with pytest.raises(
        SpecError,
        match=r"block\.attn: .*attn_mask must be \(L, S\) = \(4, 7\) or \(N\*num_heads, L, S\) = "
        r"\(4, 4, 7\); got \(4, 6\).*key_value \(2, 7, 6\)",
    ):
        infer(graph, ((2, 4, 8), (2, 7, 6), (4, 6), (2, 7)))
    with pytest.raises(SpecError, match=r"block\.attn: .*\(N\*num_heads, L, S\).*got \(2, 4, 7\)"):
        infer(graph, ((2, 4, 8), (2, 7, 6), (2, 4, 7), (2, 7)))  # (N, L, S): heads missing
    with pytest.raises(
        SpecError,
        match=r"block\.attn: .*key_padding_mask must be \(N, S\) = \(2, 7\); got \(2, 4\)",
    ):
        infer(graph, ((2, 4, 8), (2, 7, 6), (4, 7), (2, 4)))


def test_key_and_value_sizes_must_match_kdim_vdim():
    spec = MultiheadAttention(8, 2, kdim=6, vdim=5)
    graph = _node(spec, 3)
    with pytest.raises(
        SpecError, match=r"block\.attn: .*\(N, S, kdim=6\) key; got shape \(2, 7, 8\)"
    ):
        infer(graph, ((2, 4, 8), (2, 7, 8), (2, 7, 5)))
    with pytest.raises(
        SpecError, match=r"block\.attn: .*\(N, S, vdim=5\) value; got shape \(2, 7, 6\)"
    ):
        infer(graph, ((2, 4, 8), (2, 7, 6), (2, 7, 6)))
    with pytest.raises(SpecError, match=r"block\.attn: .*one batch size and key/value one length"):
        infer(graph, ((2, 4, 8), (2, 7, 6), (2, 6, 5)))
    with pytest.raises(SpecError, match=r"attn: .*kdim=6\) key; got shape \(2, 4, 8\)"):
        infer(Sequential(attn=spec), (2, 4, 8))  # one input: self-attention needs kdim = E


def test_wrong_input_counts_and_values():
    with pytest.raises(SpecError, match=r"node 'attn' \(MultiheadAttention\) takes 1 to 3 inputs"):
        Graph(
            {"attn": (MultiheadAttention(8, 2), ("a", "b", "c", "d"))}, inputs=("a", "b", "c", "d")
        )
    with pytest.raises(SpecError, match=r"node 'attn' \(MultiheadAttention\) takes 2 to 4 inputs"):
        Graph({"attn": (MultiheadAttention(8, 2, attn_mask=True), "x")})
    with pytest.raises(SpecError, match=r"node 'ln' \(LayerNorm\) takes one input"):
        Graph({"ln": (LayerNorm(8), ("a", "b"))}, inputs=("a", "b"))
    with pytest.raises(SpecError, match=r"attn: multihead_attention takes 3 to 5 inputs"):
        infer(
            Sequential(attn=MultiheadAttention(8, 2, attn_mask=True, key_padding_mask=True)),
            (2, 4, 8),
        )
    for bad in (0, -2, True, 2.5):
        with pytest.raises(SpecError, match=r"MultiheadAttention\.kdim must be a positive int"):
            MultiheadAttention(8, 2, kdim=bad)
    assert MultiheadAttention(8, 2, kdim=8, vdim=8) == MultiheadAttention(8, 2)  # one layer


def test_policy_on_native_cross_attention_reaches_every_parameter():
    """``xinit.apply`` on each framework's own attention with a key/value size of 6 (torch's
    separate q/k/v_proj_weight, Paddle's (6, E) k/v Linears, Flax's (6, H, D) LinearGeneral
    kernels) selects every parameter by its neutral name, and with rng="xinit" all three hold
    the same neutral values afterwards."""
    require_backends(*FRAMEWORKS)
    from xinit.init import XavierNormal
    from xinit.policy import Policy, Rule

    policy = Policy(
        [
            Rule(XavierNormal(), kind="multihead_attention", param=("*_weight", "*.weight")),
            Rule(0.25, kind="multihead_attention", param=("in_proj_bias", "out_proj.bias")),
        ]
    )
    spec = MultiheadAttention(8, 2, kdim=6, vdim=6)
    values = {}
    for backend in FRAMEWORKS:
        native, _ = _native(backend, spec)
        report = xinit.apply(policy, native, seed=5, rng="xinit", strict=True)
        assert {e.status for e in report.entries} == {"initialized"}, backend
        values[backend] = neutral_values(native)
    assert set(values["torch"]) == {p.name for p in spec.params()}
    for backend in ("paddle", "flax"):
        for k, v in values["torch"].items():
            np.testing.assert_array_equal(values[backend][k], v, err_msg=f"{backend} {k}")
    np.testing.assert_array_equal(values["flax"]["in_proj_bias"], np.full(24, 0.25, np.float32))


def test_extra_key_value_rows_are_not_read_as_neutral_attention():
    """``add_bias_kv`` adds (1, 1, E) rows no neutral spec has: the native model reader keeps
    the layer's own tensors as stored, by name, rather than guess an attention spec."""
    require_backend("torch")
    import torch

    m = torch.nn.Sequential(torch.nn.MultiheadAttention(8, 2, add_bias_kv=True))
    read = {path: spec for path, _, spec in read_layers(m)}
    assert type(read["0"]).__name__ == "OwnTensors"
    assert {p.name for p in read["0"].params()} >= {"in_proj_weight", "bias_k", "bias_v"}
    assert read["0"].params()[0].kind == ""


# ---- defaults: each framework's own, with kdim/vdim ---------------------------------------------
DEFAULT_CASES = {
    "packed": MultiheadAttention(64, 4),
    "kdim48": MultiheadAttention(64, 4, kdim=48, vdim=48),
    "k48v80": MultiheadAttention(64, 4, kdim=48, vdim=80),
}


def _rule_law(framework, spec, param):
    from xinit.backends import part

    lowering = part(framework, "lowerings").REGISTRY[spec.kind]
    init, fans, _, _ = lowering.default_rule(spec, param.name)
    return init.resolve(param.shape, param.role, fans)


def _native_default_values(framework, spec, n_min):
    """Neutral values of ``framework``'s own default attention layer for ``spec``, as the
    catalogue's builder (``native_defaults``) makes it with successive seeds, read back
    through the lowering's parameter map, until each parameter has ``n_min`` values."""
    from xinit.backends import part
    from xinit.parammap import to_neutral

    lowering = part(framework, "lowerings").REGISTRY[spec.kind]
    state_of = part(framework, "defaults").native_state
    pmap = part(framework, "lowerings").REGISTRY.param_map(spec)
    out: dict[str, list[np.ndarray]] = {p.name: [] for p in spec.params()}
    seed = case_seed(framework, spec)
    while min(sum(a.size for a in v) for v in out.values()) < n_min:
        seed += 1
        state = state_of(lowering.native_default(spec, seed))
        assert set(state) == {leaf.name for leaves in pmap.values() for leaf in leaves}
        for p in spec.params():
            out[p.name].append(to_neutral(state, pmap[p.name], p.shape).ravel())
    return {k: np.concatenate(v) for k, v in out.items()}


@pytest.mark.parametrize("case", sorted(DEFAULT_CASES))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_attention_default_rules_are_the_frameworks_own(framework, case):
    """Each framework's default rule for every attention parameter (its lowering's
    ``default_rule``) is the law its own default layer draws: PyTorch Xavier on the packed
    matrix (fan_out 3E) or on each projection; Paddle Xavier on each (in, E) Linear; Flax
    lecun_normal with fan_in = the projection's input size; zero biases. Moments and KS on
    at least N_MIN values per parameter (stats_helpers)."""
    require_backend(framework)
    spec = DEFAULT_CASES[case]
    from xinit.backends import part

    lowering = part(framework, "lowerings").REGISTRY[spec.kind]
    missing = lowering.default_missing(spec)
    if missing is not None:
        assert framework == "flax" and spec.key_features != spec.value_features, missing
        with pytest.raises(ValueError, match="one in_kv_features"):
            lowering.native_default(spec, 0)
        return
    values = _native_default_values(framework, spec, N_MIN)
    for p in spec.params():
        law = _rule_law(framework, spec, p)
        if p.name.endswith("bias"):
            assert law.std == 0.0 and law.mean == 0.0
            assert not values[p.name].any(), f"{framework} {p.name}"
        else:
            assert_same_law(values[p.name], law, f"{framework} {case} {p.name}")


def test_attention_default_rules_differ_as_the_issue_says():
    """The three defaults on the packed matrix: torch Xavier with fan_out 3E (std √(2/(4E))),
    Paddle Xavier per (E, E) block (std √(2/(2E))), Flax lecun_normal (std 1/√E)."""
    spec = MultiheadAttention(64, 4)
    p = next(p for p in spec.params() if p.name == "in_proj_weight")
    stds = {fw: _rule_law(fw, spec, p).std for fw in FRAMEWORKS}
    assert stds["torch"] == pytest.approx(math.sqrt(2 / (4 * 64)), rel=1e-12)
    assert stds["paddle"] == pytest.approx(math.sqrt(2 / (2 * 64)), rel=1e-12)
    assert stds["flax"] == pytest.approx(1 / math.sqrt(64), rel=1e-6)
    k = next(p for p in DEFAULT_CASES["k48v80"].params() if p.name == "v_proj_weight")
    assert _rule_law("paddle", DEFAULT_CASES["k48v80"], k).std == pytest.approx(
        math.sqrt(2 / (80 + 64)), rel=1e-12
    )


@pytest.mark.parametrize("case", sorted(DEFAULT_CASES))
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_default_initializer_on_attention_is_the_rule(framework, case):
    """``xinit.init.Default(fw)`` on attention parameters, kdim/vdim included, resolves to
    the rule's law (the catalogue reads the same rules); Flax with kdim != vdim has no
    default layer to reproduce, and says so."""
    spec = DEFAULT_CASES[case]
    for p in spec.params():
        if framework == "flax" and spec.key_features != spec.value_features:
            with pytest.raises(ValueError, match="one in_kv_features"):
                Default(framework).resolve(p.shape, p.role, param=p)
            continue
        law = Default(framework).resolve(p.shape, p.role, param=p)
        assert law == _rule_law(framework, spec, p), p.name

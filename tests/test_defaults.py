"""The defaults catalogue (xinit.defaults) against the frameworks' own default layers.

Each framework's layers are built here directly (``torch.nn.Conv2d(...)``, ``paddle.nn.Conv2D``,
``nnx.Conv``), never through xinit, under fixed seeds, for several shapes. Their parameters are
tested against the catalogue's distribution: mean and std with z-scores from the sample size
(|z| <= 5, with power against a 3% std error), and a one-sample KS test (p > 1e-4); constants
exactly. Test ids name the catalogue entry (``paddle-conv2d-weight-64x128k3g4``), so a framework
that changes a default fails on the entry that moved.
"""

from __future__ import annotations

import inspect
import json
import math
import re
import sys
import warnings

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import (
    N_MIN,
    Z_MAX,
    assert_haar_orthogonal,
    assert_ks_one,
    assert_ks_two,
    assert_same_law,
)

import xinit
from xinit import defaults as D
from xinit import kinds
from xinit import layers as L
from xinit.distributions import (
    ConstantDist,
    NormalDist,
    OrthogonalDist,
    TruncNormalDist,
    UniformDist,
)

N_CAP = 100_000  # elements per parameter kept for the statistics (>= N_MIN)
warnings.filterwarnings("ignore", category=DeprecationWarning)

# tag -> layer dims; shapes picked so torch's random biases reach N_MIN in a few hundred draws
CASES = {
    "64x4096": D.dims("linear", 64, 4096),
    "37x3000": D.dims("linear", 37, 3000),
    "32x1024k5": D.dims("conv1d", 32, 1024, 5),
    "16x1024k3": D.dims("conv2d", 16, 1024, 3),
    "64x128k3g4": D.dims("conv2d", 64, 128, 3, groups=4),
    "dw256k3": D.dims("depthwise_conv2d", 256, 256, 3),
    "8x1024k3g2": D.dims("conv3d", 8, 1024, 3, groups=2),
    "32x256k3": D.dims("conv_transpose2d", 32, 256, 3),
    "64x1024k3g4t": D.dims("conv_transpose2d", 64, 1024, 3, groups=4),
    "1000x64": D.dims("embedding", 1000, 64),
    "50x512": D.dims("embedding", 50, 512),
    "bn64": D.dims("batchnorm", 64),
    "ln64": D.dims("layernorm", 64),
    "gn64": D.dims("groupnorm", 64, groups=8),
    "rms64": D.dims("rmsnorm", 64),
    "e256h8": D.dims("multihead_attention", 256, heads=8),
    "e96h4": D.dims("multihead_attention", 96, heads=4),
    # blocks: torch's random biases (d_model 128 each) reach N_MIN in 469 layers
    "enc128h4f512": D.dims("transformer_encoder_layer", 128, 512, heads=4),
    "dec128h4f512": D.dims("transformer_decoder_layer", 128, 512, heads=4),
    "lstm64x256": D.dims("lstm", 64, 256),
    "gru48x256": D.dims("gru", 48, 256),
}


# ---- the frameworks' own layers (not through xinit) ------------------------------------------
def _torch_layer(d: D.LayerDims):
    import torch.nn as nn

    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    return {
        "linear": lambda: nn.Linear(i, o),
        "conv1d": lambda: nn.Conv1d(i, o, k, groups=g),
        "conv2d": lambda: nn.Conv2d(i, o, k, groups=g),
        "conv3d": lambda: nn.Conv3d(i, o, k, groups=g),
        "conv_transpose2d": lambda: nn.ConvTranspose2d(i, o, k, groups=g),
        "embedding": lambda: nn.Embedding(i, o),
        "batchnorm": lambda: nn.BatchNorm2d(i),
        "layernorm": lambda: nn.LayerNorm(i),
        "groupnorm": lambda: nn.GroupNorm(g, i),
        "rmsnorm": lambda: nn.RMSNorm(i),
        "multihead_attention": lambda: nn.MultiheadAttention(i, d.heads),
        "lstm": lambda: nn.LSTM(i, o),
        "gru": lambda: nn.GRU(i, o),
    }[d.layer]()


def _paddle_layer(d: D.LayerDims):
    import paddle.nn as nn

    i, o, k, g = d.in_features, d.out_features, list(d.kernel), d.groups
    return {
        "linear": lambda: nn.Linear(i, o),
        "conv1d": lambda: nn.Conv1D(i, o, k, groups=g),
        "conv2d": lambda: nn.Conv2D(i, o, k, groups=g),
        "conv3d": lambda: nn.Conv3D(i, o, k, groups=g),
        "conv_transpose2d": lambda: nn.Conv2DTranspose(i, o, k, groups=g),
        "embedding": lambda: nn.Embedding(i, o),
        "batchnorm": lambda: nn.BatchNorm2D(i),
        "layernorm": lambda: nn.LayerNorm(i),
        "groupnorm": lambda: nn.GroupNorm(g, i),
        "multihead_attention": lambda: nn.MultiHeadAttention(i, d.heads),
        "lstm": lambda: nn.LSTM(i, o),
        "gru": lambda: nn.GRU(i, o),
    }[d.layer]()


def _flax_layer(d: D.LayerDims, rngs):
    from flax import nnx

    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    return {
        "linear": lambda: nnx.Linear(i, o, rngs=rngs),
        "conv1d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv2d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv3d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv_transpose2d": lambda: nnx.ConvTranspose(i, o, k, rngs=rngs),
        "embedding": lambda: nnx.Embed(i, o, rngs=rngs),
        "batchnorm": lambda: nnx.BatchNorm(i, rngs=rngs),
        "layernorm": lambda: nnx.LayerNorm(i, rngs=rngs),
        "groupnorm": lambda: nnx.GroupNorm(i, num_groups=g, rngs=rngs),
        "rmsnorm": lambda: nnx.RMSNorm(i, rngs=rngs),
        "multihead_attention": lambda: nnx.MultiHeadAttention(d.heads, i, rngs=rngs),
        "lstm": lambda: nnx.LSTMCell(i, o, rngs=rngs),
        "gru": lambda: nnx.GRUCell(i, o, rngs=rngs),
    }[d.layer]()


def _linen_params(d: D.LayerDims, seed: int) -> dict[str, np.ndarray]:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    i, o, k = d.in_features, d.out_features, d.kernel
    if d.layer == "linear":
        m, x = nn.Dense(o), jnp.ones((1, i))
    elif d.layer == "conv2d":
        m, x = nn.Conv(o, k, feature_group_count=d.groups), jnp.ones((1, 8, 8, i))
    elif d.layer == "conv_transpose2d":
        m, x = nn.ConvTranspose(o, k), jnp.ones((1, 8, 8, i))
    else:
        m, x = nn.Embed(i, o), jnp.zeros((1,), jnp.int32)
    variables = m.init(jax.random.key(seed), x)
    return {name: np.asarray(v) for name, v in variables["params"].items()}


def _state(framework: str, d: D.LayerDims, seed: int) -> dict[str, np.ndarray]:
    """One native default layer's state: native names, native layout."""
    if d.block_class:
        return _block_state(framework, d, seed)
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        return {n: t.detach().numpy() for n, t in _torch_layer(d).state_dict().items()}
    if framework == "paddle":
        import paddle

        paddle.seed(seed)
        state = {n: np.array(t.numpy()) for n, t in _paddle_layer(d).state_dict().items()}
        if d.kind in ("lstm", "gru"):  # each tensor twice: "weight_ih_l0" is "0.cell.weight_ih"
            for name in [n for n in state if ".cell." not in n]:
                leaf = name.rsplit("_l0", 1)[0]
                np.testing.assert_array_equal(state.pop(name), state[f"0.cell.{leaf}"])
        return state
    if framework == "flax_linen":
        return _linen_params(d, seed)
    from flax import nnx

    module = _flax_layer(d, nnx.Rngs(seed))
    return {
        ".".join(map(str, path)): np.asarray(v.get_value())
        for path, v in nnx.to_flat_state(nnx.state(module))
    }


_CACHE: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def measured(framework: str, tag: str) -> dict[str, np.ndarray]:
    """Enough independent native layers that each random parameter has >= N_MIN elements
    (as the catalogue sizes them), concatenated per native name (up to N_CAP elements)."""
    key = (framework, tag)
    if key in _CACHE:
        return _CACHE[key]
    d = CASES[tag]
    catalogue_fw = "flax" if framework == "flax_linen" else framework
    sizes = [
        math.prod(e.native_shape)
        for e in D.catalogue(d, frameworks=(catalogue_fw,))
        if e.distribution is not None and e.distribution.random
    ]
    draws = max([math.ceil(N_MIN / n) for n in sizes] or [1])
    chunks: dict[str, list[np.ndarray]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(draws):
        for name, value in _state(framework, d, 1000 + i).items():
            shapes[name] = value.shape
            have = sum(c.size for c in chunks.get(name, []))
            if have < N_CAP:
                chunks.setdefault(name, []).append(value.ravel())
    out = {name: np.concatenate(c) for name, c in chunks.items()}
    out["__shapes__"] = shapes  # type: ignore[assignment]
    _CACHE[key] = out
    return out


def _catalogue_cases():
    for fw in D.FRAMEWORKS:
        for tag, d in CASES.items():
            if d.block_class and fw == "flax":  # no nnx block: test_flax_composes_its_layers
                continue
            for param in D.params_of(fw, d):
                yield pytest.param(fw, tag, param, id=f"{fw}-{d.layer}-{param}-{tag}")


# ---- 1. the catalogue against measurement ------------------------------------------------------
def _still_unsupported(framework: str, d: D.LayerDims) -> str | None:
    """Why a layer the catalogue marks unsupported still is (None: the framework gained it)."""
    if framework == "flax" and d.kind == "conv_transpose":
        from flax import nnx

        params = inspect.signature(nnx.ConvTranspose.__init__).parameters
        if "feature_group_count" not in params and "groups" not in params:
            return "flax ConvTranspose has no groups argument"
    if framework == "paddle" and d.kind == "rmsnorm":
        import paddle

        if not hasattr(paddle.nn, "RMSNorm"):
            return "paddle.nn has no RMSNorm"
    return None


@pytest.mark.parametrize("framework, tag, param", list(_catalogue_cases()))
def test_catalogue_matches_native_default(framework, tag, param):
    require_backend(framework)
    d = CASES[tag]
    entry = D.default_entry(framework, d, param)
    what = f"{entry.id} [{d.describe()}] catalogue says {entry.rule}"
    if entry.distribution is None:  # the framework has no such layer: check it still has none
        assert _still_unsupported(framework, d), (
            f"{entry.id}: the catalogue says {entry.note!r}, but {framework} has the layer now; "
            "catalogue it"
        )
        return
    state = measured(framework, tag)
    if param == D.params_of(framework, d)[0]:  # the catalogue lists all the state, no more
        listed = {
            name
            for p in D.params_of(framework, d)
            for name in D.default_entry(framework, d, p).native_names
        }
        assert listed == set(state["__shapes__"]), f"{framework} {d.describe()}: state names"
    for name in entry.native_names:  # each native leaf on its own (Paddle's q/k/v_proj, ...)
        assert name in state, f"{what}: no {name!r} in {sorted(state)}"
        assert state["__shapes__"][name] == entry.native_shape, (
            f"{what}: native shape of {name} {state['__shapes__'][name]} != catalogue "
            f"{entry.native_shape}"
        )
        values = state[name]
        dist = entry.distribution
        if isinstance(dist, OrthogonalDist):  # per draw: a leaf is one block, or all of them
            assert len(entry.native_names) in (1, dist.blocks), what
            if len(entry.native_names) == 1 and dist.blocks > 1:
                raise AssertionError(f"{what}: blocks of one native tensor are not measured here")
            mats = values.reshape(-1, *entry.native_shape)
            assert_haar_orthogonal(mats, dist.gain, f"{what} ({name})")
            assert np.mean(np.square(mats)) == pytest.approx(dist.std**2, rel=1e-4), what
            continue
        if isinstance(dist, ConstantDist):
            assert np.all(values == dist.value), (
                f"{what}: expected every element of {name} == {dist.value}, got mean "
                f"{values.mean():.4g} std {values.std():.4g}"
            )
            continue
        assert values.size >= N_MIN, f"{what}: only {values.size} elements of {name} measured"
        assert_same_law(values, dist, f"{what} ({name})")


@pytest.mark.parametrize(
    "tag", ["64x4096", "64x128k3g4", "32x256k3", "1000x64"], ids=lambda t: f"linen-{t}"
)
def test_flax_linen_initialises_as_nnx(tag):
    """Linen's Dense/Conv/ConvTranspose/Embed use the same default inits as NNX."""
    require_backend("flax")
    d = CASES[tag]
    state = measured("flax_linen", tag)
    for param in D.params_of("flax", d):
        entry = D.default_entry("flax", d, param)
        values = state[entry.native_name]
        assert state["__shapes__"][entry.native_name] == entry.native_shape
        if isinstance(entry.distribution, ConstantDist):
            assert np.all(values == entry.distribution.value), entry.id
        else:
            assert_same_law(values, entry.distribution, f"linen {entry.id}")


# ---- the catalogue's formulas (no framework needed) ------------------------------------------
def test_catalogue_formulas():
    def std(fw, d, param="weight"):
        return D.default_entry(fw, d, param).std

    conv = D.dims("conv2d", 64, 128, 3, groups=4)
    fi = 16 * 9
    assert std("torch", conv) == pytest.approx(1 / math.sqrt(3 * fi))
    assert std("torch", conv, "bias") == pytest.approx(1 / math.sqrt(3 * fi))
    assert isinstance(D.default_entry("torch", conv, "weight").distribution, UniformDist)
    paddle_w = D.default_entry("paddle", conv, "weight").distribution
    assert isinstance(paddle_w, NormalDist)
    assert paddle_w.sigma == pytest.approx(math.sqrt(2 / (64 * 9)))  # full C_in, groups ignored
    flax_w = D.default_entry("flax", conv, "weight").distribution
    assert isinstance(flax_w, TruncNormalDist)
    assert flax_w.std == pytest.approx(1 / math.sqrt(fi))
    assert flax_w.high == pytest.approx(2 * flax_w.sigma)
    for fw in ("paddle", "flax"):
        assert D.default_entry(fw, conv, "bias").distribution == ConstantDist(0.0)

    convt = D.dims("conv_transpose2d", 64, 32, 3)
    assert std("torch", convt) == pytest.approx(1 / math.sqrt(3 * 32 * 9))  # C_out as fan_in
    assert std("flax", convt) == pytest.approx(1 / math.sqrt(64 * 9))  # C_in as fan_in
    assert std("paddle", convt) == pytest.approx(math.sqrt(2 / (9 * (64 + 32))))
    assert D.default_entry("flax", D.dims("conv_transpose2d", 64, 32, 3, groups=2), "weight").note

    lin = D.dims("linear", 1024, 512)
    assert std("torch", lin) == pytest.approx(1 / math.sqrt(3 * 1024))
    assert std("paddle", lin) == pytest.approx(math.sqrt(2 / 1536))
    assert D.default_entry("paddle", lin, "weight").native_shape == (1024, 512)
    assert std("flax", lin) == pytest.approx(1 / 32)

    emb = D.dims("embedding", 1000, 64)
    assert std("torch", emb) == 1.0
    assert std("paddle", emb) == pytest.approx(math.sqrt(2 / 1064))
    assert std("flax", emb) == pytest.approx(1 / 8)
    assert isinstance(D.default_entry("flax", emb, "weight").distribution, NormalDist)

    assert [e.param for e in D.catalogue("batchnorm", 8) if e.framework == "torch"] == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert D.default_entry("paddle", D.dims("bn", 8), "running_var").native_name == "_variance"
    assert D.default_entry("flax", D.dims("ln", 8), "weight").native_name == "scale"

    # attention: which fans each framework's init sees (Xavier: std = √(2/(fan_in+fan_out)))
    e, h = 512, 8
    mha = D.dims("multihead_attention", e, heads=h)
    assert std("torch", mha, "in_proj_weight") == pytest.approx(math.sqrt(2 / (e + 3 * e)))
    assert std("paddle", mha, "in_proj_weight") == pytest.approx(math.sqrt(2 / (e + e)))
    assert std("flax", mha, "in_proj_weight") == pytest.approx(1 / math.sqrt(e))
    assert std("torch", mha, "out_proj.weight") == pytest.approx(1 / math.sqrt(3 * e))
    assert std("paddle", mha, "out_proj.weight") == pytest.approx(math.sqrt(2 / (e + e)))
    assert std("flax", mha, "out_proj.weight") == pytest.approx(1 / math.sqrt(e))
    for fw in D.FRAMEWORKS:
        for p in ("in_proj_bias", "out_proj.bias"):
            assert D.default_entry(fw, mha, p).distribution == ConstantDist(0.0), (fw, p)
    q = {fw: D.default_entry(fw, mha, "in_proj_weight") for fw in D.FRAMEWORKS}
    assert q["torch"].leaves == (("in_proj_weight", (3 * e, e)),)
    assert q["paddle"].native_names == ("q_proj.weight", "k_proj.weight", "v_proj.weight")
    assert q["paddle"].native_shape == (e, e)
    assert q["flax"].native_name == "{query,key,value}.kernel"
    assert q["flax"].native_shape == (e, h, e // h)
    assert D.default_entry("flax", mha, "out_proj.weight").native_shape == (h, e // h, e)

    rms = D.dims("rmsnorm", 16)
    assert D.default_entry("torch", rms, "weight").distribution == ConstantDist(1.0)
    assert D.default_entry("flax", rms, "weight").native_name == "scale"
    assert not D.default_entry("paddle", rms, "weight").supported
    assert "no RMSNorm" in D.default_entry("paddle", rms, "weight").note


def test_catalogue_accepts_specs_and_rejects_bad_input():
    spec = L.Conv(64, 128, 3, groups=4)
    assert D.catalogue(spec) == D.catalogue("conv2d", 64, 128, 3, groups=4)
    assert D.as_dims(L.ConvTranspose2d(8, 4, 3)).layer == "conv_transpose2d"
    assert D.as_dims(L.Embedding(10, 4)) == D.dims("embedding", 10, 4)
    assert D.as_dims({"layer": "linear", "in_features": 3, "out_features": 5}).out_features == 5
    assert D.dims("depthwise_conv2d", 32, 64, 3).groups == 32
    assert D.default_init("flax", "embedding", "weight", D.dims("embed", 10, 16)).std == 0.25
    mha = D.dims("multihead_attention", 64, heads=8)
    assert D.as_dims(L.MultiheadAttention(64, 8)) == mha
    assert D.as_dims(L.RMSNorm(16)) == D.dims("rmsnorm", 16)
    assert D.as_dims(L.LayerNorm((4, 8))) == D.dims("ln", 32)
    for name in ("mha", "attention", "MultiHeadAttention", "multi-head attention"):
        assert D.dims(name, 64, heads=8) == mha, name
    assert D.dims("mha", 32, 64, heads=8).in_features == 64  # one count: the out features
    assert D.dims("LayerNorm", 8).layer == "layernorm"
    assert D.dims("linear", 8, 4, heads=8).heads == 1  # heads apply to attention only
    with pytest.raises(
        ValueError, match="unknown layer kind 'layernrom'; did you mean 'layernorm'"
    ):
        D.dims("layernrom", 8)
    with pytest.raises(ValueError, match="heads=3 does not divide the embed dim 64"):
        D.dims("mha", 64, heads=3)
    with pytest.raises(ValueError, match="linear has no heads"):
        D.LayerDims("linear", 8, 8, heads=2)
    with pytest.raises(ValueError, match="groups=3 does not divide"):
        D.dims("conv2d", 64, 128, 3, groups=3)
    with pytest.raises(ValueError, match="unknown framework 'keras'"):
        D.default_entry("keras", D.dims("linear", 2, 2), "weight")
    with pytest.raises(ValueError, match="no parameter 'num_batches_tracked'"):
        D.default_entry("paddle", D.dims("batchnorm", 4), "num_batches_tracked")
    with pytest.raises(ValueError, match="no groups"):
        D.default_init("flax", "conv_transpose2d", "weight", D.dims("conv_transpose2d", 4, 4, 3, 2))


def test_records_are_json_with_the_required_keys():
    recs = D.records(D.catalogue("conv2d", 64, 128, 3), reference="torch")
    text = json.dumps(recs)
    assert len(json.loads(text)) == 6
    for r in recs:
        assert {"framework", "layer", "param", "distribution", "std"} <= set(r)
    paddle_w = next(r for r in recs if r["framework"] == "paddle" and r["param"] == "weight")
    assert paddle_w["ratio"] == pytest.approx(math.sqrt(2 / 576) * math.sqrt(3 * 576))
    assert paddle_w["law"] == {"type": "NormalDist", "mu": 0.0, "sigma": math.sqrt(2 / 576)}


# ---- 3. Default(framework) as an initializer --------------------------------------------------
def _param(layer, name):
    return next(p for p in layer.params() if p.name == name)


def _draw_native(framework, d, native_name, n_min):
    out, i = [], 0
    while sum(a.size for a in out) < n_min:
        out.append(_state(framework, d, 5000 + i)[native_name].ravel())
        i += 1
    return np.concatenate(out)


def _draw_backend(backend, dist, p, n_min):
    from xinit.backends import get_backend

    adapter = get_backend(backend)
    out, i = [], 0
    while sum(a.size for a in out) < n_min:
        t = adapter.sample(dist, p.shape, p.role, seed=i, path=f"m.{p.name}")
        out.append(adapter.to_numpy(t).ravel())
        i += 1
    return np.concatenate(out)


DEFAULT_TRANSFERS = [
    ("torch", "paddle", L.Conv2d(64, 128, 3, groups=4), "weight"),
    ("torch", "flax", L.Linear(64, 4096), "bias"),
    ("paddle", "flax", L.Conv2d(256, 256, 3, groups=256), "weight"),
    ("paddle", "torch", L.Embedding(1000, 64), "weight"),
    ("flax", "torch", L.ConvTranspose2d(32, 256, 3), "weight"),
    ("flax", "paddle", L.Conv1d(32, 1024, 5), "weight"),
]


@pytest.mark.parametrize(
    "framework, backend, layer, param",
    DEFAULT_TRANSFERS,
    ids=[f"{f}-default-in-{b}-{D.as_dims(s).layer}-{p}" for f, b, s, p in DEFAULT_TRANSFERS],
)
def test_default_sampled_elsewhere_matches_the_native_layer(framework, backend, layer, param):
    """Default(fw) drawn by another backend has fw's own layer's law (two-sample KS + std z)."""
    require_backend(framework)
    require_backend(backend)
    p = _param(layer, param)
    dist = xinit.init.Default(framework).resolve(p.shape, p.role, param=p)
    d = D.as_dims(layer)
    entry = D.default_entry(framework, d, param)
    assert dist == entry.distribution
    theirs = _draw_backend(backend, dist, p, N_MIN)
    native = _draw_native(framework, d, entry.native_name, N_MIN)
    what = f"Default({framework!r}) via {backend} vs {framework}'s own {d.describe()}.{param}"
    assert_ks_two(theirs, native, what)
    # variances agree within the standard error of their difference (sample 4th moments)
    z = _two_sample_var_z(theirs, native)
    assert abs(z) <= Z_MAX, f"{what}: std {theirs.std():.5g} vs {native.std():.5g}, z={z:+.2f}"
    assert_same_law(theirs, dist, what)


def _two_sample_var_z(x, y):
    def var_and_se2(a):
        a = np.asarray(a, np.float64)
        c = a - a.mean()
        v = float(np.mean(c * c))
        return v, (float(np.mean(c**4)) - v * v) / a.size

    vx, sx = var_and_se2(x)
    vy, sy = var_and_se2(y)
    return (vx - vy) / math.sqrt(sx + sy)


@pytest.mark.parametrize("backend", ["paddle", "flax"])
def test_default_in_a_policy_gives_a_model_torchs_init(backend):
    """xinit.build with Rule(Default("torch")) gives a Paddle/Flax conv PyTorch's defaults."""
    require_backend(backend)
    spec = L.Conv2d(64, 1024, 3, groups=4)
    policy = xinit.Policy(xinit.Rule(xinit.init.Default("torch"), kind="conv", param="*"))
    module = xinit.build(spec, backend, policy=policy, seed=3)
    if backend == "paddle":
        weight, bias = module.weight.numpy(), module.bias.numpy()
    else:
        weight, bias = module.kernel.get_value(), module.bias.get_value()
    d = D.as_dims(spec)
    what = f"{backend} build with Default('torch')"
    assert_same_law(np.asarray(weight), D.default_init("torch", "conv2d", "weight", d), what)
    b = D.default_init("torch", "conv2d", "bias", d)
    assert np.abs(bias).max() <= b.high and np.abs(bias).max() > 0.9 * b.high, what
    assert_ks_one(np.asarray(bias), b, f"{what}: bias")


ATTENTION = L.MultiheadAttention(256, 8)  # each (E, E) leaf holds 65536 >= N_MIN elements


@pytest.mark.parametrize("framework", D.FRAMEWORKS)
@pytest.mark.parametrize("backend", D.FRAMEWORKS)
def test_default_on_attention_reproduces_each_native_leaf(framework, backend):
    """Default(framework) on a MultiheadAttention spec, built in ``backend``: every native
    tensor ``framework`` keeps (torch's packed (3E, E) matrix, each of Paddle's q/k/v/out
    [E, E] weights, each of Flax's (E, H, D) kernels) has that framework's own law; the
    neutral tensor is cut into them by ``framework``'s parameter map."""
    from xinit.backends import part

    from xinit.parammap import piece
    from xinit.state import state_dict

    require_backend(framework)
    require_backend(backend)
    rule = xinit.Rule(xinit.init.Default(framework), kind="multihead_attention", param="*")
    built = state_dict(xinit.build(ATTENTION, backend, policy=xinit.Policy(rule), seed=7))
    leaves = part(framework, "lowerings").REGISTRY.param_map(ATTENTION)
    d = D.as_dims(ATTENTION)
    native = _state(framework, d, 4321)  # the framework's own default layer
    for entry in D.catalogue(ATTENTION, frameworks=(framework,)):
        for leaf in leaves[entry.param]:
            ours = piece(built[entry.param], leaf)
            what = (
                f"Default({framework!r}) in {backend}: {entry.param} as {framework}'s {leaf.name}"
            )
            assert ours.shape == native[leaf.name].shape == entry.native_shape, what
            if isinstance(entry.distribution, ConstantDist):
                assert np.all(ours == entry.distribution.value), what
                assert np.all(native[leaf.name] == entry.distribution.value), what
                continue
            assert_same_law(ours.ravel(), entry.distribution, what)
            assert_ks_two(ours.ravel(), native[leaf.name].ravel(), f"{what} vs its own layer")


@pytest.mark.parametrize("framework", D.FRAMEWORKS)
def test_default_on_norms(framework):
    """Default(framework) on LayerNorm (any normalized_shape) and GroupNorm gives ones and
    zeros; on RMSNorm it does too, except Paddle's, which has no RMSNorm layer to copy."""
    from xinit.state import state_dict

    require_backend("torch")
    policy = xinit.Policy(xinit.Rule(xinit.init.Default(framework), param="*"))
    for spec in (L.LayerNorm((4, 8)), L.GroupNorm(2, 8), L.RMSNorm(8)):
        if framework == "paddle" and spec.kind == "rmsnorm":
            with pytest.raises(ValueError, match="paddle.nn has no RMSNorm layer"):
                xinit.build(spec, "torch", policy=policy)
            continue
        state = state_dict(xinit.build(spec, "torch", policy=policy))
        for name, value in state.items():
            want = D.default_entry(framework, D.as_dims(spec), name).distribution
            assert np.all(value == want.value), (framework, spec, name)
        assert np.all(state["weight"] == 1.0), (framework, spec)


def test_default_is_an_initializer_on_xinit_init():
    from xinit.init import Default, KaimingNormal

    assert Default is D.Default and issubclass(KaimingNormal, xinit.init.Initializer)
    assert xinit.init is sys.modules["xinit.init"]
    assert isinstance(xinit.init.Default("torch"), xinit.init.Initializer)
    assert xinit.init.Default("paddle") == D.Default("paddle")
    assert hash(xinit.init.Default("flax")) == hash(D.Default("flax"))
    with pytest.raises(AttributeError):
        xinit.init.NoSuchThing  # noqa: B018
    with pytest.raises(ValueError, match="unknown framework"):
        xinit.init.Default("keras")


def test_default_torch_equals_the_specs_torch_defaults():
    """The layer specs' built-in (PyTorch) defaults and Default("torch") agree everywhere."""
    specs = [
        L.Conv2d(64, 128, 3, groups=4),
        L.Conv1d(3, 8, 5),
        L.ConvTranspose2d(64, 32, 3, groups=2),
        L.Linear(37, 11),
        L.Embedding(100, 16),
        L.BatchNorm(8),
    ]
    for spec in specs:
        for p in spec.params():
            if p.shape == ():
                assert D.Default("torch").resolve((), "vector", param=p) == ConstantDist(0.0)
                continue
            ours = D.Default("torch").resolve(p.shape, p.role, param=p)
            theirs = p.init.resolve(p.shape, p.role, p.fans)
            assert type(ours) is type(theirs), (spec, p.name)
            assert ours.mean == pytest.approx(theirs.mean, abs=1e-12), (spec, p.name)
            assert ours.std == pytest.approx(theirs.std, rel=1e-12), (spec, p.name)


def test_default_errors_name_the_problem():
    conv = L.Conv2d(64, 128, 3, groups=4)
    w = _param(conv, "weight")
    # a weight's law follows from role and shape alone, groups taken as 1: torch's fans are
    # the weight's own; Paddle's default counts all input channels, so it needs the layer
    assert D.Default("torch").resolve(w.shape, w.role) == D.Default("torch").resolve(
        w.shape, w.role, param=w
    )
    plain = _param(L.Conv2d(64, 128, 3), "weight")
    assert D.Default("paddle").resolve(plain.shape, "conv") == D.Default("paddle").resolve(
        plain.shape, "conv", param=plain
    )
    with pytest.raises(ValueError, match="cannot tell a layer from role 'vector'"):
        D.Default("torch").resolve((128,), "vector")
    with pytest.raises(ValueError, match="does not know layer kind 'attention'"):
        D.Default("torch").resolve(
            w.shape, w.role, param=L.ParamSpec("weight", w.shape, "conv", w.init, "attention")
        )
    with pytest.raises(ValueError, match="needs the owning layer"):
        D.Default("paddle").resolve(
            w.shape, w.role, param=L.ParamSpec("weight", w.shape, "conv", w.init, "conv")
        )
    with pytest.raises(ValueError, match="has neutral shape"):
        D.Default("torch").resolve((1, 2, 3, 3), "conv", param=w)
    t = _param(L.ConvTranspose2d(8, 8, 3, groups=2), "weight")
    with pytest.raises(ValueError, match="no groups"):
        D.Default("flax").resolve(t.shape, t.role, param=t)
    # without the layer, shapes that say everything are enough
    lin = L.ParamSpec("weight", (10, 40), "linear", w.init, "linear")
    assert D.Default("paddle").resolve((10, 40), "linear", param=lin).high == pytest.approx(
        math.sqrt(6 / 50)
    )


# ---- transformer layers: blocks, their rows composed of their layers' rows ----------------------
def _block_state(framework: str, d: D.LayerDims, seed: int) -> dict[str, np.ndarray]:
    """The framework's own transformer layer (or nn.Transformer, one layer per stack) for block
    ``d``, built directly under ``seed``: its state, native names and layout."""
    e, h, f = d.in_features, d.heads, d.out_features
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        nn = torch.nn
        if d.layer == "transformer":
            m = nn.Transformer(e, h, 1, 1, f, batch_first=True)
        elif d.layer == "transformer_encoder_layer":
            m = nn.TransformerEncoderLayer(e, h, f, batch_first=True)
        else:
            m = nn.TransformerDecoderLayer(e, h, f, batch_first=True)
        return {n: t.detach().numpy() for n, t in m.state_dict().items()}
    import paddle

    paddle.seed(seed)
    nn = paddle.nn
    if d.layer == "transformer":
        m = nn.Transformer(e, h, 1, 1, f)
    elif d.layer == "transformer_encoder_layer":
        m = nn.TransformerEncoderLayer(e, h, f)
    else:
        m = nn.TransformerDecoderLayer(e, h, f)
    return {n: np.array(t.numpy()) for n, t in m.state_dict().items()}


def _child_entry(framework: str, d: D.LayerDims, path: str) -> D.DefaultEntry:
    """The catalogue entry of the layer that holds ``path`` of block ``d``, read from the
    block's xinit graph (not from the catalogue's composition)."""
    from xinit.blocks import param_specs
    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    e, h, f = d.in_features, d.heads, d.out_features
    if d.layer == "transformer":  # encoder.layers.0.* / decoder.layers.0.*, and each norm
        stack, _, rest = path.partition(".")
        if rest.startswith("norm."):
            return D.default_entry(framework, D.dims("layernorm", e), rest[len("norm.") :])
        layer = dict(encoder=TransformerEncoderLayer, decoder=TransformerDecoderLayer)[stack]
        graph, path = layer(e, h, f), rest[len("layers.0.") :]
    elif d.layer == "transformer_encoder_layer":
        graph = TransformerEncoderLayer(e, h, f)
    else:
        graph = TransformerDecoderLayer(e, h, f)
    p = param_specs(graph)[path]
    return D.default_entry(framework, D.as_dims(p.layer), p.name)


BLOCK_DIMS = [D.dims(b, 64, heads=4) for b in D.BLOCKS] + [
    D.dims("transformer_decoder_layer", 96, 200, heads=3)
]


@pytest.mark.parametrize("d", BLOCK_DIMS, ids=lambda d: f"{d.layer}-{d.in_features}")
def test_block_rows_are_their_layers_rows(d):
    """Each framework's row for a block parameter is its layer's row (the same initializer,
    fans and law, the native names under the framework's child path), except where the
    framework's block re-initialises: torch's nn.Transformer, Xavier on every >1-d tensor
    with the tensor's own fans."""
    paths = [e.param for e in D.catalogue(d, frameworks=("torch",))]
    assert (
        len(paths)
        == len(set(paths))
        == {"transformer_encoder_layer": 12}.get(
            d.layer, 18 if d.layer == "transformer_decoder_layer" else 12 + 2 + 18 + 2
        )
    )
    for fw in D.FRAMEWORKS:
        assert D.params_of(fw, d) == tuple(paths), fw  # every framework has every parameter
        for path in paths:
            entry, child = D.default_entry(fw, d, path), _child_entry(fw, d, path)
            owner = path[: -len(child.param) - 1]
            if fw == "paddle":  # Paddle names the decoder's cross-attention cross_attn
                owner = owner.replace("multihead_attn", "cross_attn")
            assert entry.leaves == tuple((f"{owner}.{n}", s) for n, s in child.leaves), path
            assert entry.neutral_shape == child.neutral_shape and entry.note, (fw, path)
            if fw == "torch" and d.layer == "transformer" and len(entry.neutral_shape) > 1:
                out, fan_in = entry.neutral_shape
                bound = math.sqrt(6 / (fan_in + out))
                assert entry.distribution == UniformDist(-bound, bound), path
                assert "xavier_uniform_" in entry.rule and child.rule in entry.rule, path
                continue
            assert (entry.initializer, entry.fans, entry.distribution) == (
                child.initializer,
                child.fans,
                child.distribution,
            ), (fw, path)
            assert entry.rule.endswith(child.rule), (fw, path)
            assert entry.rule.startswith("composed, nnx.") == (fw == "flax"), (fw, path)


def test_block_dims_and_names():
    enc = D.dims("TransformerEncoderLayer", 512, heads=8)
    assert enc == D.LayerDims("transformer_encoder_layer", 512, 2048, heads=8)  # 4·d_model
    for name in ("transformer_encoder", "encoder_layer", "Transformer Encoder Layer"):
        assert D.dims(name, 512, heads=8) == enc, name
    assert D.dims("decoder_layer", 64, 100, heads=2).layer == "transformer_decoder_layer"
    assert D.dims("Transformer", 64).layer == "transformer" and D.is_block("transformer")
    assert not D.is_block("mha") and not D.is_block("depthwise_conv2d")
    assert enc.describe() == "transformer_encoder_layer(d_model=512, nhead=8, dim_feedforward=2048)"
    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    assert D.as_dims(TransformerEncoderLayer(512, 8)) == enc  # torch's dim_feedforward 2048
    assert D.catalogue(TransformerEncoderLayer(512, 8)) == D.catalogue(enc)
    with pytest.raises(ValueError, match="heads=3 does not divide the embed dim 64"):
        D.dims("transformer_encoder_layer", 64, heads=3)
    with pytest.raises(ValueError, match="with bias and PyTorch's child names"):
        D.as_dims(TransformerEncoderLayer(64, 4, 128, bias=False))
    with pytest.raises(ValueError, match="with bias and PyTorch's child names"):
        D.as_dims(TransformerDecoderLayer(64, 4, 128, cross_attn_name="cross_attn"))
    with pytest.raises(ValueError, match="has no parameter 'weight'"):
        D.default_entry("torch", enc, "weight")
    with pytest.raises(ValueError, match="is a block of layers"):
        D.plot_defaults(enc, "unused.png")


def _layer_draws(framework: str, d: D.LayerDims, seed: int) -> dict[str, np.ndarray]:
    """The framework's own encoder and decoder layers for ``d``'s dims, built one after the
    other under ``seed`` (the order nn.Transformer builds them), under nn.Transformer's
    names."""
    e, h, f = d.in_features, d.heads, d.out_features
    out = {}
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        nn = torch.nn
        layers = {
            "encoder": nn.TransformerEncoderLayer(e, h, f, batch_first=True),
            "decoder": nn.TransformerDecoderLayer(e, h, f, batch_first=True),
        }
        for stack, m in layers.items():
            out |= {f"{stack}.layers.0.{n}": t.detach().numpy() for n, t in m.state_dict().items()}
        return out
    import paddle

    paddle.seed(seed)
    layers = {
        "encoder": paddle.nn.TransformerEncoderLayer(e, h, f),
        "decoder": paddle.nn.TransformerDecoderLayer(e, h, f),
    }
    for stack, m in layers.items():
        out |= {f"{stack}.layers.0.{n}": np.array(t.numpy()) for n, t in m.state_dict().items()}
    return out


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_transformer_model_reinit_is_the_catalogues(framework):
    """nn.Transformer: torch's _reset_parameters re-draws every >1-d parameter with
    xavier_uniform_ (measured: moments and KS over independent models, each tensor on its
    own), and leaves every 1-d one exactly as its layer drew it (the same values as the
    encoder and decoder layers built alone, in the same order, under the same seed); Paddle's
    re-draws nothing (every value equal). The layers' own laws are measured above."""
    require_backend(framework)
    d = D.dims("transformer", 128, 512, heads=4)
    entries = D.catalogue(d, frameworks=(framework,))
    redrawn = [e for e in entries if e.rule.startswith("xavier_uniform_ (nn.Transformer")]
    assert (len(redrawn) == 10) == (framework == "torch") and (framework == "torch" or not redrawn)
    # the smallest re-drawn tensor, out_proj.weight (E, E), has 16384 elements: 4 models
    draws = math.ceil(N_MIN / 128**2)
    states = [_block_state(framework, d, 9000 + i) for i in range(draws)]
    assert set(states[0]) == {n for e in entries for n in e.native_names}
    alone = _layer_draws(framework, d, 9000)
    for e in entries:
        for name in e.native_names:
            if e in redrawn:
                values = np.concatenate([s[name].ravel() for s in states])
                assert_same_law(values, e.distribution, f"{e.id} ({name})")
                assert not np.array_equal(states[0][name], alone[name]), name
            elif name in alone:  # a layer's parameter: exactly what the layer drew
                np.testing.assert_array_equal(states[0][name], alone[name], err_msg=name)
            else:  # encoder.norm, decoder.norm: the stacks' final LayerNorms
                assert np.all(states[0][name] == e.distribution.value), name
    assert D.native_defaults(framework, d, seed=9000).keys() == states[0].keys()


def test_flax_composes_its_layers():
    """flax.nnx has no transformer layer (checked, so a Flax that gains one fails here); the
    catalogue's Flax rows name the tensors of xinit's Flax build, which composes
    nnx.MultiHeadAttention, nnx.Linear and nnx.LayerNorm (their laws are measured above)."""
    require_backend("flax")
    from flax import nnx

    from xinit.transformer import TransformerDecoderLayer, TransformerEncoderLayer

    assert not [n for n in dir(nnx) if "transformer" in n.lower() or "encoder" in n.lower()]
    for graph in (TransformerEncoderLayer(64, 4, 128), TransformerDecoderLayer(64, 4, 128)):
        module = xinit.build(graph, "flax")
        state = {
            ".".join(map(str, path)): np.asarray(v.get_value()).shape
            for path, v in nnx.to_flat_state(nnx.state(module, nnx.Param))
        }
        entries = D.catalogue(graph, frameworks=("flax",))
        assert {n: e.native_shape for e in entries for n in e.native_names} == state
        with pytest.raises(ValueError, match="flax.nnx has no transformer layer"):
            D.native_defaults("flax", D.as_dims(graph))


BLOCK_DEFAULTS = [(fw, backend) for fw in ("torch", "paddle") for backend in D.FRAMEWORKS]


@pytest.mark.parametrize(
    "framework, backend", BLOCK_DEFAULTS, ids=[f"{f}-in-{b}" for f, b in BLOCK_DEFAULTS]
)
def test_default_on_a_transformer_layer_reproduces_each_native_leaf(framework, backend):
    """Default(framework) in a policy on xinit's TransformerEncoderLayer graph, built in
    ``backend``: every tensor of the framework's own nn.TransformerEncoderLayer (torch's packed
    in_proj_weight, Paddle's q/k/v_proj, linear1/2, norms) gets that framework's law, the
    catalogue's block row: moments and KS for each leaf of >= N_MIN elements, KS and the
    support for torch's small random biases, two-sample KS against the native layer's."""
    from xinit.backends import part

    from xinit.blocks import param_specs
    from xinit.parammap import piece
    from xinit.state import state_dict
    from xinit.transformer import TransformerEncoderLayer

    require_backend(framework)
    require_backend(backend)
    graph = TransformerEncoderLayer(256, 8, 1024)  # each (E, E) leaf: 65536 >= N_MIN
    rule = xinit.Rule(xinit.init.Default(framework), param="*")
    built = state_dict(xinit.build(graph, backend, policy=xinit.Policy(rule), seed=11))
    native = _block_state(framework, D.as_dims(graph), 4321)
    registry = part(framework, "lowerings").REGISTRY
    specs = param_specs(graph)
    for entry in D.catalogue(graph, frameworks=(framework,)):
        p = specs[entry.param]
        leaves = registry.param_map(p.layer)[p.name]
        for name, leaf in zip(entry.native_names, leaves, strict=True):
            ours = piece(built[entry.param], leaf)
            what = f"Default({framework!r}) in {backend}: {entry.param} as {name}"
            assert ours.shape == native[name].shape == entry.native_shape, what
            dist = entry.distribution
            if isinstance(dist, ConstantDist):
                assert np.all(ours == dist.value) and np.all(native[name] == dist.value), what
                continue
            if ours.size >= N_MIN:
                assert_same_law(ours.ravel(), dist, what)
            else:  # torch's linear biases (1024 and 256): the law's support, and KS
                assert np.abs(ours).max() <= dist.high, what
                assert np.abs(ours).max() > 0.9 * dist.high, what  # P(miss) = 0.9^256 < 1e-11
                assert_ks_one(ours.ravel(), dist, what)
            assert_ks_two(ours.ravel(), native[name].ravel(), f"{what} vs its own layer")


# ---- conventions, measured ---------------------------------------------------------------------
def _bn_one_step(framework):
    """(weight of a new batch, running variance written) after one training batch [0, 1, 2, 3]."""
    x = np.arange(4, dtype=np.float32).reshape(4, 1)  # mean 1.5, biased var 1.25
    if framework == "torch":
        import torch

        bn = torch.nn.BatchNorm1d(1)
        bn.train()
        bn(torch.tensor(x))
        mean, var = bn.running_mean.item(), bn.running_var.item()
    elif framework == "paddle":
        import paddle

        bn = paddle.nn.BatchNorm1D(1)
        bn.train()
        bn(paddle.to_tensor(x))
        mean, var = float(bn._mean.numpy()[0]), float(bn._variance.numpy()[0])
    else:
        import jax.numpy as jnp
        from flax import nnx

        bn = nnx.BatchNorm(1, rngs=nnx.Rngs(0))
        bn(jnp.asarray(x))
        mean, var = float(bn.mean.get_value()[0]), float(bn.var.get_value()[0])
    w = mean / 1.5
    written = (var - (1 - w)) / w
    if math.isclose(written, 1.25, rel_tol=1e-3):
        return w, "biased"
    if math.isclose(written, 5 / 3, rel_tol=1e-3):
        return w, "unbiased"
    return w, f"neither ({written})"


def _eps(framework, kind):
    if framework == "torch":
        import torch

        return (torch.nn.BatchNorm2d(4) if kind == "bn" else torch.nn.LayerNorm(4)).eps
    if framework == "paddle":
        import paddle

        return (paddle.nn.BatchNorm2D(4) if kind == "bn" else paddle.nn.LayerNorm(4))._epsilon
    from flax import nnx

    cls = nnx.BatchNorm if kind == "bn" else nnx.LayerNorm
    return cls(4, rngs=nnx.Rngs(0)).epsilon


def _momentum(framework):
    if framework == "torch":
        import torch

        return torch.nn.BatchNorm2d(4).momentum
    if framework == "paddle":
        import paddle

        return paddle.nn.BatchNorm2D(4)._momentum
    from flax import nnx

    return nnx.BatchNorm(4, rngs=nnx.Rngs(0)).momentum


def _conv_padding(framework):
    x = np.ones((1, 1, 5, 5), np.float32)
    if framework == "torch":
        import torch

        out = torch.nn.Conv2d(1, 1, 3)(torch.tensor(x)).shape[-1]
    elif framework == "paddle":
        import paddle

        out = paddle.nn.Conv2D(1, 1, 3)(paddle.to_tensor(x)).shape[-1]
    else:
        import jax.numpy as jnp
        from flax import nnx

        out = nnx.Conv(1, 1, (3, 3), rngs=nnx.Rngs(0))(jnp.ones((1, 5, 5, 1))).shape[1]
    return {3: 0, 5: "SAME"}[out]


def _avg_pool(framework, x, k, s=None, p=0, ceil_mode=False):
    """(output spatial size, output) of the framework's default-argument average pool."""
    if framework == "torch":
        import torch

        kw = {} if s is None else {"stride": s}
        y = torch.nn.AvgPool2d(k, padding=p, ceil_mode=ceil_mode, **kw)(torch.tensor(x)).numpy()
        return y[0, 0]
    if framework == "paddle":
        import paddle

        kw = {} if s is None else {"stride": s}
        y = paddle.nn.AvgPool2D(k, padding=p, ceil_mode=ceil_mode, **kw)(paddle.to_tensor(x))
        return y.numpy()[0, 0]
    import jax.numpy as jnp
    from flax import nnx

    kw = {} if s is None else {"strides": (s, s)}
    y = nnx.avg_pool(jnp.asarray(x[0].transpose(1, 2, 0)), (k, k), padding=((p, p), (p, p)), **kw)
    return np.asarray(y)[..., 0]


def _pool_stride(framework):
    y = _avg_pool(framework, np.ones((1, 1, 4, 4), np.float32), 2)
    return {2: "kernel", 3: 1}[y.shape[-1]]


def _count_include_pad(framework):
    """Corner of a 3x3/s2/p1 average pool over ones: 4/9 if padding counts, 1 if not."""
    corner = float(_avg_pool(framework, np.ones((1, 1, 4, 4), np.float32), 3, 2, 1)[0, 0])
    if math.isclose(corner, 1.0, rel_tol=1e-6):
        return False
    return True if math.isclose(corner, 4 / 9, rel_tol=1e-6) else f"neither ({corner})"


def _ceil_mode(framework):
    if framework == "flax":
        from flax import nnx

        return "none" if "ceil_mode" not in inspect.signature(nnx.avg_pool).parameters else "?"
    x = np.arange(25, dtype=np.float32).reshape(1, 1, 5, 5)
    y = _avg_pool(framework, x, 2, 2, 1, ceil_mode=True)
    return {3: "drop", 4: "keep"}[y.shape[-1]]


def _truncated_bounds(framework):
    """Is trunc-normal's default (-2, 2) absolute, or in stddevs? Drawn at std 0.01."""
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        x = torch.nn.init.trunc_normal_(torch.empty(100_000), std=0.01).numpy()
    elif framework == "paddle":
        import paddle

        paddle.seed(0)
        init = paddle.nn.initializer.TruncatedNormal(std=0.01)
        x = paddle.create_parameter([100_000], "float32", default_initializer=init).numpy()
    else:
        import jax

        x = np.asarray(jax.nn.initializers.truncated_normal(0.01)(jax.random.key(0), (100_000,)))
    return "absolute" if np.abs(x).max() > 0.025 else "stddevs"


def _build_order(framework):
    """Does a layer's init change when another layer is built before it?"""
    if framework == "flax":
        from flax import nnx

        r = nnx.Rngs(0)
        a1 = nnx.Linear(8, 8, rngs=r).kernel.get_value()
        r = nnx.Rngs(0)
        nnx.Linear(8, 8, rngs=r)
        a2 = nnx.Linear(8, 8, rngs=r).kernel.get_value()
        return not np.array_equal(np.asarray(a1), np.asarray(a2))
    if framework == "torch":
        import torch

        def build_one():
            return torch.nn.Linear(8, 8).weight.detach().numpy().copy()

        seed = torch.manual_seed
    else:
        import paddle

        def build_one():
            return paddle.nn.Linear(8, 8).weight.numpy().copy()

        seed = paddle.seed
    seed(0)
    a1 = build_one()
    seed(0)
    build_one()
    a2 = build_one()
    return not np.array_equal(a1, a2)


def _norm_consumes(framework):
    """RNG draws a BatchNorm's construction consumes."""
    if framework == "flax":
        from flax import nnx

        r = nnx.Rngs(0)
        before = int(r.params.count.get_value())
        nnx.BatchNorm(4, rngs=r)
        return int(r.params.count.get_value()) - before
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        a = torch.rand(4)
        torch.manual_seed(0)
        torch.nn.BatchNorm2d(4)
        b = torch.rand(4)
        return 0 if torch.equal(a, b) else -1
    import paddle

    paddle.seed(0)
    a = paddle.rand([4]).numpy()
    paddle.seed(0)
    paddle.nn.BatchNorm2D(4)
    return 0 if np.array_equal(a, paddle.rand([4]).numpy()) else -1


def _bool_mask_meaning(framework):
    """What a True in a bool attention mask does in the framework's own attention: with one
    query attending to two keys of different values, True on key 0 leaves only key 1's value
    ("masked") or only key 0's ("keep")."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 4)).astype(np.float32)
    kv = rng.standard_normal((1, 2, 4)).astype(np.float32)
    mask = np.array([[True, False]])  # (L, S) = (1, 2)
    if framework == "torch":
        import torch

        m = torch.nn.MultiheadAttention(4, 1, batch_first=True).eval()
        t = torch.from_numpy
        with torch.no_grad():
            out = m(t(q), t(kv), t(kv), attn_mask=t(mask), need_weights=False)[0].numpy()
            alone = [m(t(q), t(kv[:, i : i + 1]), t(kv[:, i : i + 1]))[0].numpy() for i in (0, 1)]
    elif framework == "paddle":
        import paddle

        m = paddle.nn.MultiHeadAttention(4, 1)
        m.eval()
        t = paddle.to_tensor
        out = m(t(q), t(kv), t(kv), attn_mask=t(mask)).numpy()
        alone = [m(t(q), t(kv[:, i : i + 1]), t(kv[:, i : i + 1])).numpy() for i in (0, 1)]
    else:
        import jax.numpy as jnp
        from flax import nnx

        m = nnx.MultiHeadAttention(1, 4, decode=False, rngs=nnx.Rngs(0))
        a = jnp.asarray
        out = np.asarray(m(a(q), a(kv), mask=a(mask)[None, None]))
        alone = [np.asarray(m(a(q), a(kv[:, i : i + 1]))) for i in (0, 1)]
    if np.allclose(out, alone[1], atol=1e-6):
        return "masked"
    return "keep" if np.allclose(out, alone[0], atol=1e-6) else "neither"


def _norm_eps(framework, kind):
    """The eps of the framework's own GroupNorm (``gn``) or RMSNorm (``rms``)."""
    if framework == "torch":
        import torch

        return (torch.nn.GroupNorm(2, 4) if kind == "gn" else torch.nn.RMSNorm(4)).eps
    if framework == "paddle":
        import paddle

        if kind == "gn":
            return paddle.nn.GroupNorm(2, 4)._epsilon
        assert not hasattr(paddle.nn, "RMSNorm")  # no layer: the function's default
        return inspect.signature(paddle.nn.functional.rms_norm).parameters["eps"].default
    from flax import nnx

    if kind == "gn":
        return nnx.GroupNorm(4, num_groups=2, rngs=nnx.Rngs(0)).epsilon
    return nnx.RMSNorm(4, rngs=nnx.Rngs(0)).epsilon


def _attention_fans(framework, e=16, heads=4):
    """(fan_in, fan_out) / E that the framework's default init computes for the query
    projection of its own attention layer, caught by a spy on the init function."""
    from unittest import mock

    seen = []
    if framework == "torch":
        import torch

        activation = torch.nn.modules.activation
        real = activation.xavier_uniform_

        def spy(t, *a, **k):
            seen.append(torch.nn.init._calculate_fan_in_and_fan_out(t))
            return real(t, *a, **k)

        with mock.patch.object(activation, "xavier_uniform_", spy):
            torch.nn.MultiheadAttention(e, heads)
    elif framework == "paddle":
        import paddle
        from paddle.nn.initializer.xavier import XavierInitializer

        real = XavierInitializer._compute_fans

        def spy(self, var):
            seen.append(real(self, var))
            return seen[-1]

        with mock.patch.object(XavierInitializer, "_compute_fans", spy):
            paddle.nn.MultiHeadAttention(e, heads)
        assert len(seen) == 4, seen  # q, k, v, out: one Xavier each
    else:
        from flax import nnx

        real = nnx.initializers.lecun_normal()

        def spy(key, shape, dtype):  # lecun_normal's fans: in_axis=-2, out_axis=-1
            seen.append((shape[-2], shape[-1]))
            return real(key, shape, dtype)

        nnx.MultiHeadAttention(heads, e, kernel_init=spy, rngs=nnx.Rngs(0))
        assert len(seen) == 4, seen  # query, key, value, out
    fan_in, fan_out = seen[0]  # the query projection's (torch: the packed q, k, v)
    return (fan_in // e, fan_out // e) if fan_in % e == fan_out % e == 0 else seen[0]


def _stack_copies(framework):
    """Are the layers of the framework's own TransformerEncoder equal at init?"""
    if framework == "flax":
        from flax import nnx

        return "none" if not [n for n in dir(nnx) if "transformer" in n.lower()] else "?"
    if framework == "torch":
        import torch

        layer = torch.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        state = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).state_dict()
        state = {k: v.numpy() for k, v in state.items()}
    else:
        import paddle

        layer = paddle.nn.TransformerEncoderLayer(16, 4, 32)
        state = paddle.nn.TransformerEncoder(layer, 2).state_dict()
        state = {k: np.array(v.numpy()) for k, v in state.items()}
    names = [k[len("layers.0.") :] for k in state if k.startswith("layers.0.")]
    same = [np.array_equal(state[f"layers.0.{k}"], state[f"layers.1.{k}"]) for k in names]
    if all(same):
        return "identical"
    # every random tensor differs (the norms' ones and zeros and Paddle's zero biases are equal)
    random = [k for k, eq in zip(names, same) if np.unique(state[f"layers.0.{k}"]).size > 1]
    shared = [k for k, eq in zip(names, same) if eq and k in random]
    return "independent" if random and not shared else f"neither (equal: {shared})"


MEASURED_CONVENTIONS = {
    "bn.momentum": _momentum,
    "bn.new_batch_weight": lambda fw: round(_bn_one_step(fw)[0], 4),
    "bn.running_var": lambda fw: _bn_one_step(fw)[1],
    "bn.eps": lambda fw: _eps(fw, "bn"),
    "ln.eps": lambda fw: _eps(fw, "ln"),
    "gn.eps": lambda fw: _norm_eps(fw, "gn"),
    "rmsnorm.eps": lambda fw: _norm_eps(fw, "rms"),
    "attention.fans": _attention_fans,
    "conv.padding": _conv_padding,
    "pool.stride": _pool_stride,
    "pool.avg_count_include_pad": _count_include_pad,
    "pool.ceil_mode": _ceil_mode,
    "init.truncated_normal": _truncated_bounds,
    "rng.build_order": _build_order,
    "rng.norm_consumes": _norm_consumes,
    "attention.bool_mask": _bool_mask_meaning,
    "transformer.stack_copies": _stack_copies,
}


@pytest.mark.parametrize(
    "framework, key",
    [(fw, key) for key in MEASURED_CONVENTIONS for fw in D.FRAMEWORKS],
    ids=[f"{fw}-{key}" for key in MEASURED_CONVENTIONS for fw in D.FRAMEWORKS],
)
def test_convention_measured(framework, key):
    require_backend(framework)
    conv = D.convention_record(key)
    expected = conv.value(framework)
    got = MEASURED_CONVENTIONS[key](framework)
    if isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-3), f"{framework} {conv.topic}: {got}"
    else:
        assert got == expected, (
            f"{framework} {conv.topic}: catalogue {expected!r}, measured {got!r}"
        )


def test_conventions_name_every_framework_and_every_value_is_measured():
    """Every convention speaks of exactly the frameworks in FRAMEWORKS (text, and machine
    values in that order), and a machine value exists only where a measurement checks it."""
    keys = [c.key for c in D.CONVENTIONS]
    assert len(keys) == len(set(keys))
    assert D.conventions() == list(D.CONVENTIONS)
    with_values = set()
    for c in D.CONVENTIONS:
        assert all(c.text(fw).strip() for fw in D.FRAMEWORKS), c.key
        if c.values:
            assert tuple(fw for fw, _ in c.values) == tuple(D.FRAMEWORKS), c.key
            with_values.add(c.key)
        assert c.record()["values"] == dict(c.values)
    assert with_values == set(MEASURED_CONVENTIONS)
    with pytest.raises(ValueError, match="unknown framework"):
        D.CONVENTIONS[0].text("keras")
    with pytest.raises(KeyError, match="no convention"):
        D.convention_record("bn.no_such_thing")


@pytest.mark.parametrize("framework", D.FRAMEWORKS)
def test_bn_momentum_matches_the_frameworks_layer_attributes(framework):
    """BatchNorm momentum as each framework's own layer stores it, read from the layer (not
    from one update): torch ``momentum``, paddle ``_momentum``, flax nnx ``momentum``; the
    weight of a new batch is the momentum (torch) or its complement (paddle, flax)."""
    require_backend(framework)
    m = _momentum(framework)
    assert m == pytest.approx(D.convention_record("bn.momentum").value(framework))
    new = m if framework == "torch" else 1.0 - m
    assert new == pytest.approx(D.convention_record("bn.new_batch_weight").value(framework))


# ---- 4. the CLI ------------------------------------------------------------------------------
def _cli(capsys, *argv):
    from xinit.cli import main

    rc = main(["defaults", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_json(capsys):
    rc, out, _ = _cli(
        capsys,
        "--layer",
        "conv2d,linear",
        "--in",
        "64",
        "--out",
        "128",
        "--kernel",
        "3",
        "--format",
        "json",
    )
    assert rc == 0
    recs = json.loads(out)
    assert {(r["layer"], r["param"], r["framework"]) for r in recs} >= {
        ("conv2d", "weight", "paddle"),
        ("linear", "bias", "torch"),
    }
    for r in recs:
        assert {"framework", "layer", "param", "distribution", "std", "ratio"} <= set(r)
    w = {r["framework"]: r for r in recs if r["layer"] == "conv2d" and r["param"] == "weight"}
    assert w["paddle"]["std"] == pytest.approx(math.sqrt(2 / 576))
    assert w["torch"]["ratio"] == 1.0
    assert w["flax"]["ratio"] == pytest.approx(math.sqrt(3))


def test_cli_md_and_table(capsys):
    rc, out, _ = _cli(
        capsys,
        "--layer",
        "conv2d",
        "--in",
        "64",
        "--out",
        "128",
        "--groups",
        "4",
        "--format",
        "md",
        "--reference",
        "paddle",
    )
    assert rc == 0
    assert "| conv2d (groups=4) | weight |" in out and "| conv2d (groups=4) | bias |" in out
    assert "U(±0.08333)" in out and "N(0, 0.05893²)" in out
    rc, out, _ = _cli(capsys, "--layer", "batchnorm,embedding", "--in", "1000", "--out", "64")
    assert rc == 0
    assert "running_var" in out and "paddle" in out and "N(0, 1²)" in out


def test_cli_conventions_and_errors(capsys):
    rc, out, _ = _cli(capsys, "--conventions")
    assert rc == 0 and "momentum" in out and "exclusive" in out
    rc, out, _ = _cli(capsys, "--conventions", "--format", "json")
    assert rc == 0 and json.loads(out)[0]["key"] == "layout.linear"
    rc, out, _ = _cli(capsys, "--conventions", "--format", "md")
    assert rc == 0 and out.startswith("| topic |")
    fans = D.convention_record("attention.fans")  # the attention row, each framework's text
    row = next(line for line in out.splitlines() if line.startswith(f"| {fans.topic} |"))
    assert all(fans.text(fw) in row for fw in D.FRAMEWORKS), row
    rc, out, _ = _cli(capsys, "--conventions", "--format", "json")
    assert next(r for r in json.loads(out) if r["key"] == "attention.fans")["values"] == {
        fw: list(v) for fw, v in fans.values
    }
    rc, _, err = _cli(capsys, "--layer", "atention")
    assert rc == 2 and "unknown layer kind 'atention'; did you mean 'attention'" in err
    rc, _, err = _cli(capsys, "--layer", "conv2d", "--reference", "keras")
    assert rc == 2 and "keras" in err


def _md_table(out: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header and the rows (by param) of ``xinit defaults --format md``'s table."""

    def cells(line):
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    lines = [line for line in out.splitlines() if line.startswith("| ")]
    return cells(lines[0]), {row[1]: row for row in map(cells, lines[1:])}


@pytest.mark.parametrize("layer", D.LAYERS)
def test_cli_one_layer_side_by_side(capsys, layer):
    """``xinit defaults --layer NAME``: one row per parameter, one column per framework, each
    cell the catalogue's law, rule and native tensors, for every layer the catalogue has."""
    rc, out, _ = _cli(capsys, "--layer", layer, "--in", "96", "--heads", "4", "--format", "md")
    assert rc == 0
    one = D.one_feature_count(layer)  # norms, attention: --in is their count without --out
    d = D.dims(layer, 96, None if one else 128, 3, 1, heads=4)
    assert d.describe() in out.splitlines()[0]
    header, rows = _md_table(out)
    assert header == ["layer", "param", *D.FRAMEWORKS]
    params = [
        p for p in kinds.get(d.kind).params if any(p in D.params_of(f, d) for f in D.FRAMEWORKS)
    ]
    assert list(rows) == params
    for param, row in rows.items():
        for fw, cell in zip(D.FRAMEWORKS, row[2:]):
            if param not in D.params_of(fw, d):
                assert cell == "-", (fw, param, cell)
                continue
            e = D.default_entry(fw, d, param)
            if not e.supported:
                assert cell == f"n/a ({e.note})", (fw, param, cell)
                continue
            lines = cell.split("<br>")
            assert lines[0].startswith(D.short(e.distribution)), (fw, param, cell)
            assert lines[1:] == [
                e.rule,
                f"{e.native_name} {e.native_shape}" + (" each" if len(e.leaves) > 1 else ""),
            ], (fw, param, cell)


def test_cli_attention_side_by_side(capsys):
    """The attention table states each framework's own law: torch's Xavier over the packed
    (3E, E), paddle's per (E, E) projection (std ×√2), flax's LeCun normal (std 1/√E)."""
    e, h = 512, 8
    rc, out, _ = _cli(capsys, "--layer", "mha", "--in", str(e), "--heads", str(h), "--format", "md")
    assert rc == 0
    _, rows = _md_table(out)
    torch_q, paddle_q, flax_q = rows["in_proj_weight"][2:]
    assert torch_q.startswith(f"U(±{math.sqrt(6 / (e + 3 * e)):.4g})")
    assert paddle_q.startswith(f"U(±{math.sqrt(6 / (e + e)):.4g})")
    assert f"×{math.sqrt(2):.3g}" in paddle_q
    assert f"std {1 / math.sqrt(e):.4g}" in flax_q and flax_q.startswith("TN(0,")
    assert f"{{query,key,value}}.kernel ({e}, {h}, {e // h}) each" in flax_q
    assert f"{{q_proj,k_proj,v_proj}}.weight ({e}, {e}) each" in paddle_q
    assert rows["out_proj.weight"][2].startswith(f"U(±{1 / math.sqrt(e):.4g})")
    assert f"out.kernel ({h}, {e // h}, {e})" in rows["out_proj.weight"][4]
    for name in ("attention", "multihead_attention", "MultiHeadAttention"):
        rc, again, _ = _cli(capsys, "--layer", name, "--in", str(e), "--format", "md")
        assert rc == 0 and again == out, name
    rc, out, _ = _cli(capsys, "--layer", "mha", "--out", "64", "--heads", "4")  # rich table
    assert rc == 0
    assert "multihead_attention(E=64, heads=4)" in out and "{query,key,value}.kernel" in out
    assert all(fw in out for fw in D.FRAMEWORKS)


def test_cli_layer_names_and_errors(capsys):
    rc, ln, _ = _cli(capsys, "--layer", "ln", "--in", "32", "--format", "md")
    rc2, layernorm, _ = _cli(capsys, "--layer", "LayerNorm", "--in", "32", "--format", "md")
    assert rc == rc2 == 0 and ln == layernorm and "layernorm(32)" in ln
    rc, _, err = _cli(capsys, "--layer", "layernrom")
    assert rc == 2 and "did you mean 'layernorm'?" in err
    assert all(name in err for name in D.LAYERS)  # the accepted names, listed
    rc, _, err = _cli(capsys, "--layer", "mha", "--in", "100", "--heads", "8")
    assert rc == 2 and "heads=8 does not divide the embed dim 100" in err


def test_cli_plot(capsys, tmp_path):
    for fw in ("torch", "paddle", "flax"):
        require_backend(fw)
    png = tmp_path / "conv.png"
    argv = ["--layer", "linear", "--in", "64", "--out", "4096", "--format", "json", "--plot"]
    rc, out, _ = _cli(capsys, *argv, str(png))
    assert rc == 0
    json.loads(out)  # the plot note goes to stderr, stdout stays JSON
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize("block", D.BLOCKS)
def test_cli_block_side_by_side(capsys, block):
    """``xinit defaults --layer BLOCK``: a row per parameter of the block, each cell the
    catalogue's entry (law, rule, native tensors), then each framework's note; d_model is
    --in, nhead --heads, dim_feedforward --out or 4·d_model."""
    rc, out, _ = _cli(capsys, "--layer", block, "--in", "64", "--heads", "4", "--format", "md")
    assert rc == 0
    d = D.dims(block, 64, 256, heads=4)
    assert d.describe() in out.splitlines()[0]
    header, rows = _md_table(out)
    assert header == ["layer", "param", *D.FRAMEWORKS]
    assert list(rows) == list(D.params_of("torch", d))
    for param, row in rows.items():
        assert row[0] == block
        for fw, cell in zip(D.FRAMEWORKS, row[2:]):
            e = D.default_entry(fw, d, param)
            lines = cell.split("<br>")
            assert lines[0].startswith(D.short(e.distribution)), (fw, param, cell)
            each = " each" if len(e.leaves) > 1 else ""
            assert lines[1:] == [e.rule, f"{e.native_name} {e.native_shape}{each}"], (fw, cell)
    first = next(iter(rows))
    notes = [line for line in out.splitlines() if line.startswith("- ")]
    assert notes == [f"- {fw}: {D.default_entry(fw, d, first).note}" for fw in D.FRAMEWORKS]
    argv = ("--layer", block, "--in", "64", "--heads", "4")
    rc, again, _ = _cli(capsys, *argv, "--out", "256", "--format", "md")
    assert rc == 0 and again == out
    rc, text, _ = _cli(capsys, *argv, "--out", "96", "--format", "json")
    recs = json.loads(text)
    assert rc == 0 and len(recs) == 3 * len(rows)
    assert {r["dims"]["out"] for r in recs} == {96}
    assert {r["note"] for r in recs} == {
        D.default_entry(fw, D.dims(block, 64, 96, heads=4), first).note for fw in D.FRAMEWORKS
    }


def test_cli_transformer_layer_names_and_the_torch_model(capsys):
    """The aliases print the same table; nn.Transformer's table shows torch's Xavier where the
    layer alone has kaiming_uniform_; --plot refuses a block before printing anything."""
    argv = ("--in", "512", "--heads", "8", "--format", "md")
    rc, out, _ = _cli(capsys, "--layer", "transformer_encoder_layer", *argv)
    assert rc == 0
    for name in ("transformer_encoder", "encoder_layer", "TransformerEncoderLayer"):
        rc, again, _ = _cli(capsys, "--layer", name, *argv)
        assert rc == 0 and again == out, name
    _, rows = _md_table(out)
    e = 512
    assert rows["linear1.weight"][2].startswith(f"U(±{1 / math.sqrt(e):.4g})")  # kaiming, a=√5
    assert rows["linear1.weight"][3].startswith(f"U(±{math.sqrt(6 / (e + 4 * e)):.4g})")
    rc, model, _ = _cli(capsys, "--layer", "transformer", *argv)
    _, rows = _md_table(model)
    cell = rows["encoder.layers.0.linear1.weight"][2]
    assert cell.startswith(f"U(±{math.sqrt(6 / (e + 4 * e)):.4g})") and "xavier_uniform_" in cell
    assert rows["decoder.layers.0.multihead_attn.in_proj_weight"][3].split("<br>")[2] == (
        f"decoder.layers.0.cross_attn.{{q_proj,k_proj,v_proj}}.weight ({e}, {e}) each"
    )
    rc, out, err = _cli(capsys, "--layer", "decoder_layer", "--plot", "unused.png")
    assert rc == 2 and out == "" and "transformer_decoder_layer is a block" in err


# ---- recurrent layers: Default(framework) on every tensor of a deep bidirectional LSTM --------
RECURRENT_DEFAULTS = [("flax", "torch"), ("flax", "paddle"), ("torch", "flax"), ("paddle", "flax")]


@pytest.mark.parametrize(
    "framework, backend", RECURRENT_DEFAULTS, ids=[f"{f}-in-{b}" for f, b in RECURRENT_DEFAULTS]
)
def test_default_on_a_recurrent_spec(framework, backend):
    """Default(fw) on every tensor of a 2-layer bidirectional LSTM built in another backend:
    the deeper layer's input kernels take its own input size (2H) as fan_in, Flax's
    recurrent kernels are orthogonal gate by gate, the bias Flax's own cell lacks is zero,
    PyTorch's and Paddle's U(±1/√H) everywhere; each law measured (over several builds for
    the biases, to reach N_MIN elements)."""
    require_backend(framework)
    require_backend(backend)
    h = 256
    spec = L.LSTM(128, h, num_layers=2, bidirectional=True)
    rule = xinit.Rule(xinit.init.Default(framework), kind="lstm", param="*")
    groups: dict[str, list[np.ndarray]] = {}
    for seed in range(math.ceil(N_MIN / (8 * 4 * h))):  # the 8 biases of a build: 8·4H values
        state = xinit.state_dict(xinit.build(spec, backend, policy=xinit.Policy(rule), seed=seed))
        for name, value in state.items():
            if name.startswith("bias") or seed == 0:
                groups.setdefault(name, []).append(value)
    for p in spec.params():
        dist = xinit.init.Default(framework).resolve(p.shape, p.role, param=p)
        what = f"Default({framework!r}) in {backend}: {p.name}"
        values = np.stack(groups[p.name])
        if framework != "flax":
            bound = 1 / math.sqrt(h)
            assert (dist.low, dist.high) == pytest.approx((-bound, bound)), what
        elif p.name.startswith("weight_ih"):
            fan_in = 128 if "_l0" in p.name else 2 * h
            assert dist.std == pytest.approx(1 / math.sqrt(fan_in)), what
        elif p.name.startswith("weight_hh"):
            assert isinstance(dist, OrthogonalDist) and dist.blocks == 4, what
            assert_haar_orthogonal(values[0].reshape(4, h, h), dist.gain, what)
            continue
        elif p.name.startswith("bias_ih"):
            assert dist == ConstantDist(0.0), what  # nnx.LSTMCell has no input-side bias
        if isinstance(dist, ConstantDist):
            assert not np.any(values), what
        elif p.name.startswith("weight") or values.size >= N_MIN:
            assert_same_law(values.ravel(), dist, what)
    biases = np.concatenate([np.ravel(groups[p.name]) for p in spec.params() if "bias" in p.name])
    if framework != "flax":
        assert biases.size >= N_MIN
        assert_same_law(
            biases,
            xinit.init.Default(framework).resolve((4 * h,), param=spec.params()[2]),
            "biases",
        )


def test_recurrent_catalogue_formulas():
    """The catalogue's LSTM/GRU rows: PyTorch's and Paddle's U(±1/√H) everywhere; Flax's
    lecun_normal input kernels (fan_in = in per gate), orthogonal recurrent kernels (per gate
    for LSTMCell, on the stacked (H, 3H) kernel for GRUCell) and the one bias it keeps."""
    lstm, gru = D.dims("lstm", 64, 256), D.dims("gru", 64, 256)
    for fw in ("torch", "paddle"):
        for d in (lstm, gru):
            assert D.params_of(fw, d) == (
                "weight_ih_l0",
                "weight_hh_l0",
                "bias_ih_l0",
                "bias_hh_l0",
            )
            for p in D.params_of(fw, d):
                assert D.default_entry(fw, d, p).std == pytest.approx(1 / 16 / math.sqrt(3))
    assert D.params_of("flax", lstm) == ("weight_ih_l0", "weight_hh_l0", "bias_hh_l0")
    assert D.params_of("flax", gru) == ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0")
    w_ih = D.default_entry("flax", lstm, "weight_ih_l0")
    assert w_ih.native_names == ("ii.kernel", "if_.kernel", "ig.kernel", "io.kernel")
    assert w_ih.native_shape == (64, 256) and w_ih.std == pytest.approx(1 / 8)
    w_hh = D.default_entry("flax", lstm, "weight_hh_l0")
    assert w_hh.distribution == OrthogonalDist(1.0, 4, 256) and w_hh.std == pytest.approx(1 / 16)
    g_hh = D.default_entry("flax", gru, "weight_hh_l0")
    assert (g_hh.native_name, g_hh.native_shape) == ("dense_h.kernel", (256, 768))
    assert g_hh.std == pytest.approx(1 / math.sqrt(768))  # unit columns of the (3H, H) tensor
    assert D.default_entry("paddle", lstm, "weight_ih_l0").native_name == "0.cell.weight_ih"
    assert D.as_dims(L.GRU(8, 4, num_layers=3)) == D.dims("gru", 8, 4)


def test_cli_recurrent_layers(capsys):
    rc, out, _ = _cli(capsys, "--layer", "lstm", "--in", "64", "--out", "256", "--format", "md")
    assert rc == 0
    assert "| lstm | weight_hh_l0 |" in out and "| lstm | bias_ih_l0 |" in out
    assert "Orthogonal(gain=1, each of 4 row blocks)" in out and "U(±0.0625)" in out
    assert "{hi,hf,hg,ho}.kernel (256, 256) each" in out and "0.cell.weight_ih (1024, 64)" in out
    rc, out, _ = _cli(capsys, "--layer", "gru", "--in", "64", "--out", "256", "--format", "md")
    assert rc == 0 and "dense_h.kernel (256, 768)" in out

"""``Default(framework)``, a framework's defaults as an initializer: drawn by another
framework, in a policy, on attention, norms and recurrent layers, it gives each native tensor
the law of that framework's own layer (measured against the layer, built directly)."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
from defaults_native import draw_native, native_state, param_of
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
from xinit import layers as L
from xinit.distributions import ConstantDist, OrthogonalDist

warnings.filterwarnings("ignore", category=DeprecationWarning)


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
    ids=[f"{f}-default-in-{b}-{D.layer_name(s)}-{p}" for f, b, s, p in DEFAULT_TRANSFERS],
)
def test_default_sampled_elsewhere_matches_the_native_layer(framework, backend, layer, param):
    """Default(fw) drawn by another backend has fw's own layer's law (two-sample KS + std z)."""
    require_backend(framework)
    require_backend(backend)
    p = param_of(layer, param)
    dist = xinit.init.Default(framework).resolve(p.shape, p.role, param=p)
    entry = D.default_entry(framework, layer, param)
    assert dist == entry.distribution
    theirs = _draw_backend(backend, dist, p, N_MIN)
    native = draw_native(framework, layer, entry.native_name, N_MIN)
    what = f"Default({framework!r}) via {backend} vs {framework}'s own {D.describe(layer)}.{param}"
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
    what = f"{backend} build with Default('torch')"
    assert_same_law(np.asarray(weight), D.default_init("torch", "conv2d", "weight", spec), what)
    b = D.default_init("torch", "conv2d", "bias", spec)
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
    native = native_state(framework, ATTENTION, 4321)  # the framework's own default layer
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
            want = D.default_entry(framework, spec, name).distribution
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
    w = param_of(conv, "weight")
    # a weight's law follows from role and shape alone, groups taken as 1: torch's fans are
    # the weight's own; Paddle's default counts all input channels, so it needs the layer
    assert D.Default("torch").resolve(w.shape, w.role) == D.Default("torch").resolve(
        w.shape, w.role, param=w
    )
    plain = param_of(L.Conv2d(64, 128, 3), "weight")
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
    t = param_of(L.ConvTranspose2d(8, 8, 3, groups=2), "weight")
    with pytest.raises(ValueError, match="no groups"):
        D.Default("flax").resolve(t.shape, t.role, param=t)
    # without the layer, shapes that say everything are enough
    lin = L.ParamSpec("weight", (10, 40), "linear", w.init, "linear")
    assert D.Default("paddle").resolve((10, 40), "linear", param=lin).high == pytest.approx(
        math.sqrt(6 / 50)
    )


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

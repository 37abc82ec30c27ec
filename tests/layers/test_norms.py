"""LayerNorm, GroupNorm and RMSNorm: the frameworks' own names and layouts, PyTorch's values
in every framework (Flax included, whose adapter holds activations channel-last), transfer
between the three, and the bad specs refused with the layer path and the shapes."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, assert_transfers_exact, require_backend, require_backends

import xinit
from xinit import init
from xinit.blocks import Sequential, infer
from xinit.layers import GroupNorm, LayerNorm, Linear, RMSNorm, SpecError
from xinit.plan import init_plan
from xinit.policy import Policy, Rule
from xinit.state import state_dict, transfer

# float32 rounding: a norm's output is O(1) after a mean and a variance over at most a few
# hundred values, each framework summing in its own order, so outputs agree to a few ulps
# of 1 (atol) and a few ulps relative (rtol); a wrong axis or eps is off by orders more.
RTOL, ATOL = 1e-5, 1e-6

RANDOM = dict(weight_init=init.Uniform(0.5, 1.5))  # not the ones default: a scale shows


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# (spec, channel-first input shape): sequences (N, L, D), vectors (N, D), images (N, C, H, W)
CASES = {
    "ln_seq": (LayerNorm(6, **RANDOM, bias_init=init.Normal()), (2, 5, 6)),
    "ln_vec": (LayerNorm(6, eps=1e-3, **RANDOM, bias_init=init.Normal()), (3, 6)),
    "ln_2d": (LayerNorm((5, 6), **RANDOM, bias_init=init.Normal()), (2, 3, 5, 6)),
    "ln_nobias": (LayerNorm(6, bias=False, **RANDOM), (2, 5, 6)),
    "ln_plain": (LayerNorm(6, elementwise_affine=False), (2, 5, 6)),
    "gn_img": (GroupNorm(2, 6, **RANDOM, bias_init=init.Normal()), (2, 6, 4, 3)),
    "gn_seq": (GroupNorm(3, 6, eps=1e-3, **RANDOM, bias_init=init.Normal()), (2, 6, 7)),
    "rms_seq": (RMSNorm(6, **RANDOM), (2, 5, 6)),
    "rms_eps": (RMSNorm(6, eps=1e-2, **RANDOM), (3, 6)),
    "rms_2d": (RMSNorm((5, 6), **RANDOM), (2, 3, 5, 6)),
}


def torch_native(spec):
    import torch

    nn = torch.nn
    if spec.kind == "layernorm":
        return nn.LayerNorm(spec.normalized_shape, spec.eps, spec.elementwise_affine, spec.bias)
    if spec.kind == "groupnorm":
        return nn.GroupNorm(spec.num_groups, spec.num_channels, spec.eps, spec.affine)
    return nn.RMSNorm(spec.normalized_shape, spec.eps, spec.elementwise_affine)


def torch_reference(spec, state, x):
    """PyTorch's own module with ``state`` (neutral = PyTorch names) on ``x``."""
    import torch

    m = torch_native(spec)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_values_equal_torch_modules(backend, case):
    """Built by xinit in any framework, a norm computes what PyTorch's module computes."""
    require_backends(backend, "torch")
    spec, shape = CASES[case]
    m = xinit.build(spec, backend, seed=3, rng="xinit")
    x = rand(*shape, seed=1) * 3 + 0.5
    out = np.asarray(xinit.run(m, x))
    ref = torch_reference(spec, state_dict(m), x)
    assert out.shape == ref.shape == shape
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)


def _native_keys(backend, spec):
    """{native key: shape} of the framework's own module for ``spec``."""
    if backend == "torch":
        return {k: tuple(v.shape) for k, v in torch_native(spec).state_dict().items()}
    if backend == "paddle":
        import paddle

        nn = paddle.nn
        if spec.kind == "layernorm":
            m = nn.LayerNorm(list(spec.normalized_shape), spec.eps)
        elif spec.kind == "groupnorm":
            m = nn.GroupNorm(spec.num_groups, spec.num_channels, spec.eps)
        else:
            return None  # Paddle 3.3 has no RMSNorm
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}
    from flax import nnx

    rngs = nnx.Rngs(0)
    if spec.kind == "layernorm":
        m = nnx.LayerNorm(spec.normalized_shape[0], rngs=rngs)
    elif spec.kind == "groupnorm":
        m = nnx.GroupNorm(spec.num_channels, num_groups=spec.num_groups, rngs=rngs)
    else:
        m = nnx.RMSNorm(spec.normalized_shape[0], rngs=rngs)
    return _flax_keys(m)


def _flax_keys(m):
    from flax import nnx

    state = nnx.to_flat_state(nnx.state(m, nnx.Param))
    return {".".join(map(str, k)): tuple(v.get_value().shape) for k, v in state}


def _built_keys(backend, m):
    if backend == "flax":
        return _flax_keys(m)
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


KEY_SPECS = {
    "layernorm": LayerNorm(6),
    "layernorm_2d": LayerNorm((4, 6)),  # Paddle flattens its weight to (24,)
    "groupnorm": GroupNorm(2, 6),
    "rmsnorm": RMSNorm(6),
}


@pytest.mark.parametrize("name", sorted(KEY_SPECS))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_keys_are_the_native_modules(backend, name):
    require_backend(backend)
    spec = KEY_SPECS[name]
    if backend == "flax" and len(getattr(spec, "normalized_shape", ())) > 1:
        pytest.skip("nnx.LayerNorm has a 1-d scale only")
    native = _native_keys(backend, spec)
    if native is None:
        native = {"weight": spec.normalized_shape}  # xinit's RMSNorm layer for Paddle
    m = xinit.build(spec, backend, seed=0)
    assert _built_keys(backend, m) == native


# The framework's own class each case builds, where that class computes the spec exactly;
# None: xinit's module (Paddle has no RMSNorm; nnx keeps its scale 1-D and a fixed epsilon,
# so several normalised dims and RMSNorm's dtype-dependent eps=None stay xinit's).
OWN_CLASS = {
    "paddle": {"ln": "LayerNorm", "gn": "GroupNorm", "rms": None},
    "flax": {"ln": "LayerNorm", "gn": "GroupNorm", "rms": "RMSNorm"},
}
XINIT_MODULE = {"ln_2d", "rms_seq", "rms_2d"}  # flax: the cases nnx's classes cannot hold


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("backend", ("paddle", "flax"))
def test_builds_are_the_frameworks_own_classes(backend, case):
    """Users' code that looks for ``paddle.nn.LayerNorm``/``nnx.LayerNorm`` (to exclude norms
    from weight decay, say) finds the built norm: the framework's own class, exactly."""
    require_backend(backend)
    spec, _ = CASES[case]
    if backend == "paddle":
        import paddle as fw

        owner = fw.nn
    else:
        from flax import nnx as owner
    name = OWN_CLASS[backend][case.split("_")[0]]
    if backend == "flax" and case in XINIT_MODULE:
        name = None
    m = xinit.build(Sequential(("norm", spec)), backend, seed=0)
    layer = m._sub_layers["norm"] if backend == "paddle" else m.norm
    if name is None:
        assert type(layer).__module__.startswith("xinit.backends."), type(layer)
    else:
        assert type(layer) is getattr(owner, name), type(layer)


def _native_module(backend, spec, seed=5):
    """The framework's own module for ``spec`` with random weights, and a function running
    it on channel-first numpy input."""
    rng = np.random.default_rng(seed)
    if backend == "torch":
        import torch

        m = torch_native(spec)
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        return m, lambda x: m(torch.from_numpy(x)).detach().numpy()
    if backend == "paddle":
        import paddle

        nn = paddle.nn
        if spec.kind == "layernorm":
            m = nn.LayerNorm(list(spec.normalized_shape), spec.eps)
        else:
            m = nn.GroupNorm(spec.num_groups, spec.num_channels, spec.eps)
        for p in m.parameters():
            p.set_value(rng.uniform(0.5, 1.5, p.shape).astype(np.float32))
        return m, lambda x: m(paddle.to_tensor(x)).numpy()
    import jax.numpy as jnp
    from flax import nnx

    rngs = nnx.Rngs(0)
    if spec.kind == "layernorm":
        m = nnx.LayerNorm(spec.normalized_shape[0], epsilon=spec.eps, rngs=rngs)
    elif spec.kind == "rmsnorm":
        m = nnx.RMSNorm(spec.normalized_shape[0], epsilon=spec.eps, rngs=rngs)
    else:
        m = nnx.GroupNorm(
            spec.num_channels, num_groups=spec.num_groups, epsilon=spec.eps, rngs=rngs
        )
    for p in (m.scale, getattr(m, "bias", None)):
        if p is not None:
            p.set_value(jnp.asarray(rng.uniform(0.5, 1.5, p.get_value().shape), jnp.float32))
    if spec.kind == "groupnorm":  # nnx's own GroupNorm takes channel-last images
        return m, lambda x: np.moveaxis(np.asarray(m(jnp.moveaxis(x, 1, -1))), -1, 1)
    return m, lambda x: np.asarray(m(jnp.asarray(x)))


NATIVE = {
    "layernorm": (LayerNorm(6, eps=1e-4), (2, 5, 6)),
    "groupnorm": (GroupNorm(2, 6, eps=1e-4), (2, 6, 4, 3)),
    "rmsnorm": (RMSNorm(6, eps=1e-4), (2, 5, 6)),
}


@pytest.mark.parametrize("name", sorted(NATIVE))
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_native_weights_give_native_outputs(backend, name):
    """A framework's own norm, read through the lowering and transferred into the xinit
    build of the same spec, gives the native outputs."""
    require_backend(backend)
    spec, shape = NATIVE[name]
    if backend == "paddle" and name == "rmsnorm":
        pytest.skip("Paddle 3.3 has no RMSNorm of its own")
    native, forward = _native_module(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(*shape, seed=2) * 2 - 1
    np.testing.assert_allclose(np.asarray(xinit.run(built, x)), forward(x), rtol=RTOL, atol=ATOL)


def test_transfer_and_parity_across_frameworks():
    """rng="xinit" draws the same values everywhere; transfer is bit-exact both ways and the
    three builds agree layer by layer."""
    require_backends(*FRAMEWORKS)
    spec = Sequential(ln=CASES["ln_seq"][0], rms=CASES["rms_seq"][0])
    mods = {b: xinit.build(spec, b, seed=7, rng="xinit") for b in FRAMEWORKS}
    states = {b: state_dict(m) for b, m in mods.items()}
    for b in FRAMEWORKS[1:]:
        assert states[b].keys() == states[FRAMEWORKS[0]].keys()
        for k, v in states[FRAMEWORKS[0]].items():
            np.testing.assert_array_equal(states[b][k], v)
    assert_transfers_exact(spec, mods, states[FRAMEWORKS[0]])
    report = xinit.parity(mods, rand(2, 5, 6, seed=4))
    assert report.ok, str(report.first_divergent)
    img = Sequential(gn=CASES["gn_img"][0])
    report = xinit.parity(
        {b: xinit.build(img, b, seed=1, rng="xinit") for b in FRAMEWORKS}, rand(2, 6, 4, 3)
    )
    assert report.ok, str(report.first_divergent)


def test_layernorm_shape_mismatch_names_path_and_shapes():
    spec = Sequential(fc=Linear(8, 5), norm=LayerNorm(6))
    with pytest.raises(SpecError, match=r"norm: LayerNorm .*\(6,\).*\(2, 5\)"):
        infer(spec, (2, 8))
    with pytest.raises(SpecError, match=r"RMSNorm .*\(4, 6\).*\(2, 3, 6\)"):
        infer(Sequential(n=RMSNorm((4, 6))), (2, 3, 6))


def test_groupnorm_bad_groups_and_channels():
    with pytest.raises(SpecError, match=r"num_groups 4 does not divide num_channels 6"):
        GroupNorm(4, 6)
    with pytest.raises(SpecError, match=r"gn: GroupNorm expects 6 input channels; got 4"):
        infer(Sequential(gn=GroupNorm(2, 6)), (2, 4, 3, 3))
    with pytest.raises(SpecError, match="normalized_shape"):
        LayerNorm(0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_default_resolves_norm_parameters(framework):
    """Default(framework) on a spec's LayerNorm and GroupNorm: weight ones, bias zeros, as
    every framework's own layer."""
    spec = Sequential(ln=LayerNorm(6), gn=GroupNorm(2, 6))
    plan = init_plan(spec, Policy(Rule(init.Default(framework))))
    laws = {item.path: item.dist for item in plan}
    assert set(laws) == {"ln.weight", "ln.bias", "gn.weight", "gn.bias"}
    for path, law in laws.items():
        assert (law.mean, law.std) == ((1.0, 0.0) if path.endswith("weight") else (0.0, 0.0))

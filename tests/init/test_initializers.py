"""The statistics suite: every initializer x role x backend x device x rng.

What each sample must satisfy (helpers in ``stats_helpers``):

* mean and std within |z| <= 5 of the analytic values, standard errors derived from n;
* the same check rejects a law whose std is 3% off (asserted on every sample drawn);
* one-sample KS against the analytic CDF (xinit's and scipy's), p > 1e-4;
* two-sample KS between every pair of backends, p > 1e-4;
* the frameworks' own named initializers agree with xinit's lowering of the equivalent spec,
  and where a framework's convention differs the test states and checks the difference;
* exact values for the deterministic constructions (constant, dirac, eye, orthogonality).

Seeds are fixed (one per case, see ``case_seed``), so the suite is deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import backends_on, installed, require_backend, require_backends, require_device
from stats_helpers import (
    N_MIN,
    P_MIN,
    POWER_FACTOR,
    Z_MAX,
    Moments,
    assert_has_power,
    assert_ks_one,
    assert_ks_two,
    assert_moments,
    assert_orthogonal,
    assert_same_law,
    case_seed,
    ks_one,
    moment_check,
    moments_of,
    scipy_law,
)

import xinit
from xinit import init as I
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.rng import keyed_sample

SQRT2 = math.sqrt(2.0)

# Neutral (PyTorch-layout) shapes, each >= N_MIN elements, with fan_in != fan_out.
ROLES = {
    "linear": ("linear", (320, 192)),  # fan_in 192, fan_out 320
    "conv1d": ("conv", (128, 96, 5)),  # fan_in 480, fan_out 640
    "conv2d": ("conv", (112, 64, 3, 3)),  # fan_in 576, fan_out 1008
    "conv3d": ("conv", (64, 40, 3, 3, 3)),  # fan_in 1080, fan_out 1728
    "grouped_conv": ("conv", (160, 16, 5, 5)),  # groups=4 of a 64-channel input: fan_in 400
    "depthwise_conv": ("conv", (1280, 1, 7, 7)),  # fan_in 49, fan_out 62720
    "conv_transpose": ("conv_transpose", (64, 112, 3, 3)),  # (in, out, k, k): fan_in 1008
    "embedding": ("embedding", (1280, 48)),
    "vector": ("vector", (65536,)),
}
MATRIX_ROLES = [r for r in ROLES if r != "vector"]

# Laws that do not depend on fans: every role, the 1-D vector included.
FAN_FREE = {
    "Normal(0.1,0.02)": I.Normal(0.1, 0.02),
    "Uniform(-0.3,0.5)": I.Uniform(-0.3, 0.5),
    "TruncatedNormal(std=0.02)": I.TruncatedNormal(std=0.02),  # absolute [-2, 2]: ~untruncated
    "TruncatedNormal(0.5,1,-0.5,3)": I.TruncatedNormal(0.5, 1.0, -0.5, 3.0),
    "TruncatedNormal.in_stds(0,0.02)": I.TruncatedNormal.in_stds(0.0, 0.02),
    "TruncatedNormal.in_stds(1,2,-1,3)": I.TruncatedNormal.in_stds(1.0, 2.0, -1.0, 3.0),
}

# Fan-based laws: every role with at least 2 dims.
FAN_BASED = {
    "XavierUniform()": I.XavierUniform(),
    "XavierNormal(gain=sqrt2)": I.XavierNormal(gain=SQRT2),
    "KaimingUniform()": I.KaimingUniform(),
    "KaimingUniform(a=sqrt5)": I.KaimingUniform(a=math.sqrt(5.0)),
    "KaimingUniform(fan_out,tanh)": I.KaimingUniform(mode="fan_out", nonlinearity="tanh"),
    "KaimingNormal()": I.KaimingNormal(),
    "KaimingNormal(fan_out,relu)": I.KaimingNormal(mode="fan_out", nonlinearity="relu"),
    "KaimingNormal(a=0.2)": I.KaimingNormal(a=0.2),
    "KaimingNormal(fan_out,selu)": I.KaimingNormal(mode="fan_out", nonlinearity="selu"),
    "KaimingNormal(sigmoid)": I.KaimingNormal(nonlinearity="sigmoid"),
    "LecunNormal()": I.LecunNormal(),
    "LecunUniform()": I.LecunUniform(),
}
for _i, (_mode, _dist) in enumerate(
    (m, d)
    for m in ("fan_in", "fan_out", "fan_avg")
    for d in ("normal", "truncated_normal", "uniform")
):
    _scale = (0.5, 1.0, 2.0)[_i % 3]
    FAN_BASED[f"VarianceScaling({_scale},{_mode},{_dist})"] = I.VarianceScaling(
        _scale, _mode, _dist
    )

CASES = {f"{n}-{r}": (init, r) for n, init in FAN_FREE.items() for r in ROLES}
CASES.update({f"{n}-{r}": (init, r) for n, init in FAN_BASED.items() for r in MATRIX_ROLES})
CASE_IDS = list(CASES)


def _case(case_id: str):
    init, role_id = CASES[case_id]
    role, shape = ROLES[role_id]
    return init, role, shape


def _sample(case_id, backend, device="cpu", rng="native", draw=0):
    """The case's fixed-seed sample; ``draw=1`` is the independent confirmation draw."""
    init, role, shape = _case(case_id)
    seed = case_seed(case_id, draw) if draw else case_seed(case_id)
    x = xinit.sample(init, shape, role=role, framework=backend, seed=seed, device=device, rng=rng)
    assert x.shape == shape, f"{backend} returned {x.shape}, not the neutral shape {shape}"
    assert x.dtype == np.float32
    return x


# ---- the suite's own power ----------------------------------------------------------------


def test_suite_sample_sizes_have_power():
    """Every case draws >= N_MIN elements, enough that a sample passing |z| <= Z_MAX is
    guaranteed to fail against a std 3% off (normal law: SE of std = std / sqrt(2 n))."""
    sizes = {cid: math.prod(_case(cid)[2]) for cid in CASE_IDS}
    assert min(sizes.values()) >= N_MIN, min(sizes.items(), key=lambda kv: kv[1])
    assert (POWER_FACTOR - 1.0) * math.sqrt(2 * N_MIN) > Z_MAX * (1.0 + POWER_FACTOR)


@pytest.mark.parametrize("factor", [POWER_FACTOR, 1.0 / POWER_FACTOR], ids=["+3%", "-3%"])
@pytest.mark.parametrize(
    "base",
    [
        I.Normal(0.0, 0.02),
        I.Uniform(-0.1, 0.1),
        I.TruncatedNormal.in_stds(0.0, 0.02, -2.0, 2.0),
        I.TruncatedNormal(0.5, 1.0, -0.5, 3.0),
    ],
    ids=["normal", "uniform", "truncnormal-2sd", "truncnormal-asym"],
)
def test_std_off_by_3_percent_is_rejected(backend, base, factor):
    """Real draws of a law whose std is 3% off must fail the moment check the suite uses."""
    shape = (N_MIN,)
    dist = base.resolve(shape, "vector")
    if isinstance(dist, NormalDist):
        wrong = I.Normal(dist.mu, dist.sigma * factor)
    elif isinstance(dist, UniformDist):
        m, h = 0.5 * (dist.low + dist.high), 0.5 * (dist.high - dist.low)
        wrong = I.Uniform(m - h * factor, m + h * factor)
    else:  # m + f (X - m), X truncated normal with mean m: again one, same mean, std times f
        assert isinstance(dist, TruncNormalDist)
        m = dist.mean
        wrong = I.TruncatedNormal(
            m + (dist.mu - m) * factor,
            dist.sigma * factor,
            m + (dist.low - m) * factor,
            m + (dist.high - m) * factor,
        )
    assert wrong.resolve(shape, "vector").mean == pytest.approx(dist.mean, rel=1e-9, abs=1e-12)
    assert wrong.resolve(shape, "vector").std == pytest.approx(dist.std * factor, rel=1e-9)
    seed = case_seed("power", repr(base), factor)
    right = xinit.sample(base, shape, role="vector", framework=backend, seed=seed)
    off = xinit.sample(wrong, shape, role="vector", framework=backend, seed=seed + 1)
    assert moment_check(right, moments_of(dist)).ok  # control: the true law passes
    check = moment_check(off, moments_of(dist))
    assert abs(check.z_std) > Z_MAX, f"a {factor:.4f}x std went unnoticed: {check}"
    assert not check.ok


# ---- analytic values ----------------------------------------------------------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_analytic_moments_match_scipy(case_id):
    """xinit's analytic mean/std equal an independent computation (scipy for truncations)."""
    init, role, shape = _case(case_id)
    dist = init.resolve(shape, role)
    ref = moments_of(dist)
    assert dist.mean == pytest.approx(ref.mean, rel=1e-9, abs=1e-12)
    assert dist.std == pytest.approx(ref.std, rel=1e-9)
    xs = np.linspace(ref.mean - 4 * ref.std, ref.mean + 4 * ref.std, 41)
    np.testing.assert_allclose(dist.cdf(xs), scipy_law(dist).cdf(xs), atol=1e-12)


@pytest.mark.parametrize(
    "init, role_id, mean, std",
    [
        (I.KaimingNormal(mode="fan_out"), "conv2d", 0.0, math.sqrt(2 / 1008)),
        (I.KaimingNormal(), "depthwise_conv", 0.0, math.sqrt(2 / 49)),
        (I.KaimingNormal(), "grouped_conv", 0.0, math.sqrt(2 / 400)),
        (I.KaimingNormal(), "conv_transpose", 0.0, math.sqrt(2 / 1008)),  # torch: size(1) * k
        (I.KaimingNormal(nonlinearity="tanh"), "conv1d", 0.0, 5 / 3 / math.sqrt(480)),
        (I.KaimingNormal(a=0.2), "linear", 0.0, math.sqrt(2 / 1.04 / 192)),
        (I.KaimingUniform(a=math.sqrt(5)), "linear", 0.0, 1 / 24),  # bound 1/sqrt(fan_in)
        (I.XavierUniform(), "conv3d", 0.0, math.sqrt(2 / (1080 + 1728))),
        (I.XavierNormal(gain=2.0), "embedding", 0.0, 2 * math.sqrt(2 / (48 + 1280))),
        (I.LecunNormal(), "embedding", 0.0, math.sqrt(1 / 48)),
        (I.LecunUniform(), "conv2d", 0.0, math.sqrt(1 / 576)),
        (
            I.VarianceScaling(2, "fan_avg", "truncated_normal"),
            "conv_transpose",
            0,
            math.sqrt(2 / 792),
        ),
        (I.TruncatedNormal.in_stds(0.0, 1.0), "vector", 0.0, 0.87962566103423978),
        (I.TruncatedNormal.in_stds(0.0, 0.02), "vector", 0.0, 0.02 * 0.87962566103423978),
        (I.TruncatedNormal(std=0.02), "vector", 0.0, 0.02),  # +-2 absolute: 100 sigma out
        (I.Uniform(-0.3, 0.5), "vector", 0.1, 0.8 / math.sqrt(12)),
        (I.Normal(0.1, 0.02), "linear", 0.1, 0.02),
    ],
)
def test_analytic_values_by_hand(init, role_id, mean, std):
    role, shape = ROLES[role_id]
    dist = init.resolve(shape, role)
    assert dist.mean == pytest.approx(mean, abs=1e-12)
    assert dist.std == pytest.approx(std, rel=1e-9)


def test_gain_table_matches_torch():
    torch = pytest.importorskip("torch")
    from xinit.initializers import NONLINEARITIES

    for nl in NONLINEARITIES:
        assert xinit.gain(nl) == pytest.approx(torch.nn.init.calculate_gain(nl), rel=1e-12), nl
    for slope in (0.0, 0.2, 1.0, 3):
        assert xinit.gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-12
        )


# ---- the core of the suite: every case in every backend, device and rng -------------------


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_statistics(case_id, backend, device, rng):
    x = _sample(case_id, backend, device, rng)
    init, role, shape = _case(case_id)
    what = f"{case_id} [{backend}/{device}/{rng}]"
    redraw = lambda: _sample(case_id, backend, device, rng, draw=1)  # noqa: E731
    assert_same_law(x, init.resolve(shape, role), what, redraw)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_backends_agree_pairwise(case_id, device):
    """Two-sample KS between every pair of backends (each with its own generator)."""
    names = backends_on(device)
    if len(names) < 2:
        pytest.skip(f"fewer than two backends see {device}")
    xs = {b: _sample(case_id, b, device, "native") for b in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not np.array_equal(xs[a], xs[b]), f"{a} and {b} drew the same values"
            redraw = lambda a=a, b=b: (  # noqa: E731
                _sample(case_id, a, device, draw=1),
                _sample(case_id, b, device, draw=1),
            )
            assert_ks_two(xs[a], xs[b], f"{case_id}: {a} vs {b} [{device}]", redraw)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_xinit_rng_is_identical_across_backends(case_id, device):
    """rng='xinit': the very same float32 bits in every backend, equal to keyed_sample."""
    names = backends_on(device)
    if not names:
        pytest.skip(f"no backend sees {device}")
    init, role, shape = _case(case_id)
    ref = keyed_sample(init.resolve(shape, role), shape, case_seed(case_id), "sample")
    for b in names:
        x = _sample(case_id, b, device, "xinit")
        np.testing.assert_array_equal(x.view(np.uint32), ref.view(np.uint32), err_msg=b)


# ---- the keyed generator ------------------------------------------------------------------


@pytest.mark.parametrize(
    "dist",
    [NormalDist(0.0, 1.0), UniformDist(-1.0, 2.0), TruncNormalDist(0.0, 1.0, -0.5, 3.0)],
    ids=["normal", "uniform", "truncnormal"],
)
def test_keyed_slices_equal_slices_of_the_whole(dist):
    shape = (5, 60_000)  # big enough for the threaded path of keyed_sample
    total = math.prod(shape)
    whole = keyed_sample(dist, shape, 7, "layer.weight")
    assert whole.shape == shape
    flat = whole.ravel()
    # odd and even starts (normal pairs), around powers of two (work units), and the ends
    spans = [(0, 1), (1, 2), (9, 9), (16_383, 16_385), (32_767, 32_769), (65_535, 65_537)]
    spans += [(123, 250_001), (total - 1, total), (0, total)]
    for a, b in spans:
        part = keyed_sample(dist, shape, 7, "layer.weight", start=a, stop=b)
        np.testing.assert_array_equal(part, flat[a:b], err_msg=f"[{a}, {b})")
    # a sharded init: the concatenated shards are the whole, bit for bit
    cuts = [0, 1000, 77_777, 150_000, 299_999, total]
    shards = [
        keyed_sample(dist, shape, 7, "layer.weight", start=a, stop=b)
        for a, b in zip(cuts, cuts[1:])
    ]
    np.testing.assert_array_equal(np.concatenate(shards), flat)


def test_keyed_values_depend_on_seed_and_path_only():
    d = NormalDist(0.0, 1.0)
    a = keyed_sample(d, (100, 100), 0, "a.weight")
    np.testing.assert_array_equal(a, keyed_sample(d, (100, 100), 0, "a.weight"))
    np.testing.assert_array_equal(a.ravel(), keyed_sample(d, (10_000,), 0, "a.weight"))
    assert not np.array_equal(a, keyed_sample(d, (100, 100), 1, "a.weight"))
    assert not np.array_equal(a, keyed_sample(d, (100, 100), 0, "b.weight"))


# ---- layouts: the adapters draw in native layout, return neutral --------------------------

# Expected native shapes, written out by hand (not derived from the adapters' permutations).
NATIVE = {
    ("paddle", "linear"): (192, 320),
    ("flax", "linear"): (192, 320),
    ("flax", "conv1d"): (5, 96, 128),
    ("flax", "conv2d"): (3, 3, 64, 112),
    ("flax", "conv3d"): (3, 3, 3, 40, 64),
    ("flax", "grouped_conv"): (5, 5, 16, 160),
    ("flax", "depthwise_conv"): (7, 7, 1, 1280),
    ("flax", "conv_transpose"): (3, 3, 64, 112),  # flax ConvTranspose kernel: (*k, in, out)
}


def _by_hand_to_native(backend, role_id, x):
    if NATIVE.get((backend, role_id)) is None:
        return x
    if role_id == "linear":
        return x.T
    if role_id == "conv_transpose":  # (in, out, *k) -> (*k, in, out)
        return np.moveaxis(x, (0, 1), (-2, -1))
    return np.moveaxis(x, (0, 1), (-1, -2))  # (out, in, *k) -> (*k, in, out)


@pytest.mark.parametrize("role_id", list(ROLES))
def test_native_layout_and_neutral_round_trip(role_id, backend, device):
    adapter = require_backend(backend)
    role, shape = ROLES[role_id]
    dist = I.Normal().resolve(shape, role)
    native = adapter.sample(dist, shape, role, seed=3, path="w", device=device, rng="xinit")
    arr = adapter.to_numpy(native)
    assert tuple(arr.shape) == NATIVE.get((backend, role_id), shape)
    neutral = keyed_sample(dist, shape, 3, "w")
    np.testing.assert_array_equal(arr, _by_hand_to_native(backend, role_id, neutral))
    back = xinit.sample(
        I.Normal(),
        shape,
        role=role,
        framework=backend,
        seed=3,
        path="w",
        device=device,
        rng="xinit",
    )
    np.testing.assert_array_equal(back, neutral)


# ---- deterministic constructions: exact ---------------------------------------------------

CONSTANTS = {
    "Constant(0.5)": (I.Constant(0.5), 0.5),
    "Constant(-3.25)": (I.Constant(-3.25), -3.25),
    "Zeros": (I.Zeros(), 0.0),
    "Ones": (I.Ones(), 1.0),
    "BiasPrior(0.1)": (I.BiasPrior(0.1), -math.log(9.0)),
}


@pytest.mark.parametrize("role_id", list(ROLES))
@pytest.mark.parametrize("name", list(CONSTANTS))
def test_constants_exact(name, role_id, backend, device, rng):
    init, value = CONSTANTS[name]
    role, shape = ROLES[role_id]
    x = xinit.sample(init, shape, role=role, framework=backend, device=device, rng=rng)
    assert x.shape == shape and x.dtype == np.float32
    assert np.all(x == np.float32(value)), f"{name} in {backend}: {np.unique(x)[:5]}"


def test_bias_prior_value():
    assert I.BiasPrior(0.1).value == pytest.approx(-2.1972245, abs=1e-7)
    assert I.BiasPrior(0.01).value == pytest.approx(-4.59511985, abs=1e-7)
    assert I.BiasPrior(0.5).value == 0.0
    x = xinit.sample(I.BiasPrior(0.1), (80,), role="vector", framework=installed()[0])
    assert np.all(x == np.float32(-2.1972245773362196))


def _dirac_by_hand(shape, groups):
    out = np.zeros(shape, np.float32)
    per = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(min(per, shape[1])):
            out[(g * per + d, d) + centre] = 1.0
    return out


DIRAC = [
    ((8, 8, 3), 1),
    ((16, 8, 3, 3), 1),  # more outputs than inputs
    ((4, 8, 5, 5), 1),  # more inputs than outputs
    ((12, 6, 3, 3), 2),
    ((8, 2, 3, 3), 4),
    ((8, 4, 3, 3, 3), 2),
    ((4, 4, 4, 4), 1),  # even kernel: centre index k//2 = 2
    ((6, 6, 2), 3),
]


@pytest.mark.parametrize("shape, groups", DIRAC, ids=[f"{s}-g{g}" for s, g in DIRAC])
def test_dirac_exact(shape, groups, backend, device, rng):
    x = xinit.sample(I.Dirac(groups), shape, role="conv", framework=backend, device=device, rng=rng)
    np.testing.assert_array_equal(x, _dirac_by_hand(shape, groups))
    assert x.sum() == groups * min(shape[0] // groups, shape[1])


@pytest.mark.parametrize("shape, groups", DIRAC, ids=[f"{s}-g{g}" for s, g in DIRAC])
def test_dirac_matches_torch_dirac_(shape, groups):
    torch = pytest.importorskip("torch")
    w = torch.empty(shape)
    torch.nn.init.dirac_(w, groups=groups)
    x = xinit.sample(I.Dirac(groups), shape, role="conv", framework=installed()[0])
    np.testing.assert_array_equal(x, w.numpy())


def test_dirac_kernel_is_an_identity_conv(backend, device):
    """The native dirac kernel, used by the framework's own conv, reproduces its input."""
    adapter = require_backend(backend)
    shape = (6, 6, 3, 3)
    kernel = adapter.sample(I.Dirac().resolve(shape, "conv"), shape, "conv", device=device)
    x = np.random.default_rng(0).standard_normal((2, 6, 8, 8)).astype(np.float32)
    if backend == "torch":
        import torch

        y = torch.nn.functional.conv2d(adapter.from_numpy(x, device), kernel, padding=1)
        y = adapter.to_numpy(y)
    elif backend == "paddle":
        import paddle

        y = adapter.to_numpy(
            paddle.nn.functional.conv2d(adapter.from_numpy(x, device), kernel, padding=1)
        )
    else:
        import jax

        xh = adapter.from_numpy(x.transpose(0, 2, 3, 1), device)  # NHWC
        y = jax.lax.conv_general_dilated(
            xh, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        y = adapter.to_numpy(y).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, x, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (64, 64)])
def test_eye_exact(shape, backend, device, rng):
    x = xinit.sample(I.Eye(), shape, role="linear", framework=backend, device=device, rng=rng)
    np.testing.assert_array_equal(x, np.eye(*shape, dtype=np.float32))
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(x, torch.nn.init.eye_(torch.empty(shape)).numpy())


ORTHO = {
    "linear(96,64)": ("linear", (96, 64)),  # rows > cols: W^T W = g^2 I
    "linear(64,96)": ("linear", (64, 96)),  # rows < cols: W W^T = g^2 I
    "square(48,48)": ("linear", (48, 48)),
    "conv2d(32,16,3,3)": ("conv", (32, 16, 3, 3)),
    "conv1d(256,4,3)": ("conv", (256, 4, 3)),
    "conv_transpose(16,24,3,3)": ("conv_transpose", (16, 24, 3, 3)),
    "embedding(300,32)": ("embedding", (300, 32)),
}


@pytest.mark.parametrize("gain", [1.0, SQRT2], ids=["g1", "g-sqrt2"])
@pytest.mark.parametrize("case", list(ORTHO))
def test_orthogonal_exact(case, gain, backend, device, rng):
    role, shape = ORTHO[case]
    x = xinit.sample(
        I.Orthogonal(gain), shape, role=role, framework=backend, device=device, rng=rng, seed=5
    )
    assert x.shape == shape
    assert_orthogonal(x, gain, 1e-5, f"{case} [{backend}/{rng}]")
    rows, cols = shape[0], math.prod(shape[1:])
    # each of the min(rows, cols) unit vectors has squared norm gain^2
    assert float(np.mean(np.float64(x) ** 2)) == pytest.approx(gain**2 / max(rows, cols), rel=1e-5)


@pytest.mark.parametrize("case", list(ORTHO))
def test_orthogonal_across_backends(case, device):
    role, shape = ORTHO[case]
    names = backends_on(device)
    if not names:
        pytest.skip(f"no backend sees {device}")
    keyed = {
        b: xinit.sample(I.Orthogonal(), shape, role=role, framework=b, device=device, rng="xinit")
        for b in names
    }
    for b in names[1:]:  # rng='xinit': the same matrix everywhere (QR of the same keyed draw)
        np.testing.assert_array_equal(keyed[b], keyed[names[0]])
    native = {
        b: xinit.sample(I.Orthogonal(), shape, role=role, framework=b, device=device) for b in names
    }
    for i, a in enumerate(names):  # native: different Haar draws of the same law
        for b in names[i + 1 :]:
            assert not np.allclose(native[a], native[b])
            # entries of a Haar matrix are only weakly dependent; the two laws must still agree
            assert_ks_two(native[a], native[b], f"orthogonal {case}: {a} vs {b}")


@pytest.mark.parametrize("case", list(ORTHO))
def test_torch_orthogonal_matches(case):
    torch = pytest.importorskip("torch")
    role, shape = ORTHO[case]
    gen = torch.Generator().manual_seed(11)
    w = torch.nn.init.orthogonal_(torch.empty(shape), gain=SQRT2, generator=gen).numpy()
    assert_orthogonal(w, SQRT2, 1e-5, f"torch orthogonal_ {case}")
    x = xinit.sample(I.Orthogonal(SQRT2), shape, role=role, framework="torch", seed=11)
    assert_ks_two(w, x, f"torch orthogonal_ vs xinit Orthogonal {case}")


# ---- the frameworks' own named initializers -----------------------------------------------


def _check_native(values, spec, role_id, backend, device, what):
    """``values`` (a framework's own draw, any layout) follow xinit's lowering of ``spec``."""
    role, shape = ROLES[role_id]
    dist = spec.resolve(shape, role)
    values = np.asarray(values, dtype=np.float32)
    assert values.size == math.prod(shape)
    assert_same_law(values, dist, what)
    seed = case_seed("own", what)
    mine = xinit.sample(spec, shape, role=role, framework=backend, seed=seed, device=device)
    assert_ks_two(values, mine, f"{what} vs xinit's {backend} lowering")
    keyed = xinit.sample(
        spec, shape, role=role, framework=backend, seed=seed, device=device, rng="xinit"
    )
    assert_ks_two(values, keyed, f"{what} vs xinit's keyed draw")


def _rejects(values, spec, role_id):
    """The law of ``values`` is told apart from xinit's lowering of ``spec``."""
    role, shape = ROLES[role_id]
    dist = spec.resolve(shape, role)
    return not moment_check(values, moments_of(dist)).ok or ks_one(values, dist) < P_MIN


def _torch_cases():
    import torch.nn.init as ti

    return [
        (
            "kaiming_normal_",
            lambda w, g: ti.kaiming_normal_(w, generator=g),
            I.KaimingNormal(),
            "conv2d",
        ),
        (
            "kaiming_normal_(fan_out,relu)",
            lambda w, g: ti.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", generator=g),
            I.KaimingNormal(mode="fan_out", nonlinearity="relu"),
            "conv2d",
        ),
        (
            "kaiming_normal_(a=0.2)",
            lambda w, g: ti.kaiming_normal_(w, a=0.2, generator=g),
            I.KaimingNormal(a=0.2),
            "linear",
        ),
        (
            "kaiming_normal_ transpose",
            lambda w, g: ti.kaiming_normal_(w, generator=g),
            I.KaimingNormal(),
            "conv_transpose",
        ),
        (
            "kaiming_normal_ depthwise",
            lambda w, g: ti.kaiming_normal_(w, generator=g),
            I.KaimingNormal(),
            "depthwise_conv",
        ),
        (
            "kaiming_uniform_(a=sqrt5)",  # nn.Linear / nn.Conv default weight init
            lambda w, g: ti.kaiming_uniform_(w, a=math.sqrt(5), generator=g),
            I.KaimingUniform(a=math.sqrt(5)),
            "conv1d",
        ),
        (
            "kaiming_uniform_(fan_out,tanh)",
            lambda w, g: ti.kaiming_uniform_(w, mode="fan_out", nonlinearity="tanh", generator=g),
            I.KaimingUniform(mode="fan_out", nonlinearity="tanh"),
            "grouped_conv",
        ),
        (
            "xavier_uniform_",
            lambda w, g: ti.xavier_uniform_(w, generator=g),
            I.XavierUniform(),
            "conv3d",
        ),
        (
            "xavier_normal_(gain=sqrt2)",
            lambda w, g: ti.xavier_normal_(w, gain=SQRT2, generator=g),
            I.XavierNormal(SQRT2),
            "embedding",
        ),
        (
            "trunc_normal_(std=.02)",
            lambda w, g: ti.trunc_normal_(w, std=0.02, generator=g),
            I.TruncatedNormal(std=0.02),
            "vector",
        ),
        (
            "trunc_normal_(0.5,1,-0.5,3)",
            lambda w, g: ti.trunc_normal_(w, 0.5, 1.0, -0.5, 3.0, generator=g),
            I.TruncatedNormal(0.5, 1.0, -0.5, 3.0),
            "linear",
        ),
        (
            "normal_(0.1,0.02)",
            lambda w, g: ti.normal_(w, 0.1, 0.02, generator=g),
            I.Normal(0.1, 0.02),
            "embedding",
        ),
        (
            "uniform_(-0.3,0.5)",
            lambda w, g: ti.uniform_(w, -0.3, 0.5, generator=g),
            I.Uniform(-0.3, 0.5),
            "vector",
        ),
    ]


TORCH_IDS = [
    "kaiming_normal_",
    "kaiming_normal_(fan_out,relu)",
    "kaiming_normal_(a=0.2)",
    "kaiming_normal_ transpose",
    "kaiming_normal_ depthwise",
    "kaiming_uniform_(a=sqrt5)",
    "kaiming_uniform_(fan_out,tanh)",
    "xavier_uniform_",
    "xavier_normal_(gain=sqrt2)",
    "trunc_normal_(std=.02)",
    "trunc_normal_(0.5,1,-0.5,3)",
    "normal_(0.1,0.02)",
    "uniform_(-0.3,0.5)",
]


@pytest.mark.parametrize("name", TORCH_IDS)
def test_torch_named_initializers_agree(name, device):
    require_device("torch", device)
    import torch

    cases = {c[0]: c[1:] for c in _torch_cases()}
    fn, spec, role_id = cases[name]
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    gen = torch.Generator(device=dev).manual_seed(case_seed("torch", name))
    w = torch.empty(ROLES[role_id][1], device=dev)  # torch's layout is the neutral one
    with torch.no_grad():
        fn(w, gen)
    _check_native(w.cpu().numpy(), spec, role_id, "torch", device, f"torch {name}")


def _paddle_draw(shape, initializer, seed, device):
    import paddle

    state, previous = paddle.get_rng_state(), paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    paddle.seed(seed)
    try:
        p = paddle.create_parameter(list(shape), "float32", default_initializer=initializer)
        return p.numpy()
    finally:
        paddle.set_device(previous)
        paddle.set_rng_state(state)


PADDLE = [
    # (id, paddle initializer factory, xinit spec, role) -- drawn on Paddle's native shape
    ("KaimingNormal linear", lambda pi: pi.KaimingNormal(), I.KaimingNormal(), "linear"),
    (
        "KaimingNormal(fan_out)",
        lambda pi: pi.KaimingNormal(mode="fan_out"),
        I.KaimingNormal(mode="fan_out"),
        "conv2d",
    ),
    (
        "KaimingNormal(leaky 0.2)",
        lambda pi: pi.KaimingNormal(negative_slope=0.2, nonlinearity="leaky_relu"),
        I.KaimingNormal(a=0.2),
        "conv1d",
    ),
    (
        "KaimingUniform transpose",
        lambda pi: pi.KaimingUniform(),
        I.KaimingUniform(),
        "conv_transpose",
    ),
    (
        "KaimingUniform(fan_out,tanh)",
        lambda pi: pi.KaimingUniform(nonlinearity="tanh", mode="fan_out"),
        I.KaimingUniform(mode="fan_out", nonlinearity="tanh"),
        "grouped_conv",
    ),
    ("XavierNormal linear", lambda pi: pi.XavierNormal(), I.XavierNormal(), "linear"),
    (
        "XavierUniform(gain=2)",
        lambda pi: pi.XavierUniform(gain=2.0),
        I.XavierUniform(2.0),
        "conv3d",
    ),
    (
        "TruncatedNormal(0,.02)",
        lambda pi: pi.TruncatedNormal(0.0, 0.02),
        I.TruncatedNormal(std=0.02),
        "vector",
    ),
    (
        "TruncatedNormal(0.5,1,a=-0.5,b=3)",  # a, b are absolute bounds, as in torch
        lambda pi: pi.TruncatedNormal(0.5, 1.0, a=-0.5, b=3.0),
        I.TruncatedNormal(0.5, 1.0, -0.5, 3.0),
        "embedding",
    ),
    ("Normal(0.1,0.02)", lambda pi: pi.Normal(0.1, 0.02), I.Normal(0.1, 0.02), "linear"),
    ("Uniform(-0.3,0.5)", lambda pi: pi.Uniform(-0.3, 0.5), I.Uniform(-0.3, 0.5), "depthwise_conv"),
]


@pytest.mark.parametrize("pid, factory, spec, role_id", PADDLE, ids=[c[0] for c in PADDLE])
def test_paddle_named_initializers_agree(pid, factory, spec, role_id, device):
    require_device("paddle", device)
    import paddle

    native_shape = NATIVE.get(("paddle", role_id), ROLES[role_id][1])
    w = _paddle_draw(native_shape, factory(paddle.nn.initializer), case_seed("paddle", pid), device)
    assert tuple(w.shape) == native_shape
    _check_native(w, spec, role_id, "paddle", device, f"paddle {pid}")


def test_paddle_2d_fan_rule_follows_its_in_out_layout(device):
    """Paddle's rule for 2-D weights is fan_in = shape[0]: right on its Linear (in, out) layout.

    On that layout it equals xinit's KaimingNormal on the neutral (out, in) shape. The same
    initializer on a 2-D tensor laid out (out, in), as torch's Linear is, would take
    fan_in = out: that is xinit's fan_out, and it is told apart from the fan_in law.
    """
    require_device("paddle", device)
    import paddle

    kn = paddle.nn.initializer.KaimingNormal()
    on_native = _paddle_draw((192, 320), kn, 1, device)  # Linear(192 -> 320) weight
    _check_native(on_native, I.KaimingNormal(), "linear", "paddle", device, "paddle (in,out)")
    on_neutral = _paddle_draw((320, 192), kn, 2, device)  # the torch/neutral layout
    assert_same_law(on_neutral, I.KaimingNormal(mode="fan_out").resolve((320, 192), "linear"))
    assert _rejects(on_neutral, I.KaimingNormal(), "linear")


def test_paddle_layers_with_param_attr(device):
    """The PaddleOCR idiom: nn.Conv2D / nn.Linear with ParamAttr(initializer=KaimingNormal())."""
    require_device("paddle", device)
    import paddle

    state, previous = paddle.get_rng_state(), paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    paddle.seed(case_seed("paddle layers"))
    try:
        attr = paddle.ParamAttr(initializer=paddle.nn.initializer.KaimingNormal())
        conv = paddle.nn.Conv2D(64, 112, 3, weight_attr=attr, bias_attr=False)
        lin = paddle.nn.Linear(192, 320, weight_attr=attr, bias_attr=False)
        conv_w, lin_w = conv.weight.numpy(), lin.weight.numpy()
    finally:
        paddle.set_device(previous)
        paddle.set_rng_state(state)
    assert conv_w.shape == (112, 64, 3, 3) and lin_w.shape == (192, 320)
    _check_native(conv_w, I.KaimingNormal(), "conv2d", "paddle", device, "paddle Conv2D")
    _check_native(lin_w, I.KaimingNormal(), "linear", "paddle", device, "paddle Linear")


JAX = [
    # (id, jax initializer factory, xinit spec equal in law, role, xinit spec it must NOT equal)
    (
        "he_normal",
        lambda ji: ji.he_normal(),
        I.VarianceScaling(2.0, "fan_in", "truncated_normal"),
        "conv2d",
        I.KaimingNormal(),
    ),
    ("he_uniform", lambda ji: ji.he_uniform(), I.KaimingUniform(), "grouped_conv", None),
    (
        "lecun_normal",
        lambda ji: ji.lecun_normal(),
        I.LecunNormal(),
        "linear",
        I.Normal(0.0, 1 / math.sqrt(192)),
    ),
    ("lecun_uniform", lambda ji: ji.lecun_uniform(), I.LecunUniform(), "conv2d", None),
    (
        "lecun_uniform on a (num, dim) table",  # JAX: fan_in = shape[-2] = num; torch: dim
        lambda ji: ji.lecun_uniform(),
        I.VarianceScaling(1.0, "fan_out", "uniform"),
        "embedding",
        I.LecunUniform(),
    ),
    ("glorot_uniform", lambda ji: ji.glorot_uniform(), I.XavierUniform(), "conv1d", None),
    (
        "glorot_normal",  # truncated in JAX, untruncated in torch's xavier_normal_
        lambda ji: ji.glorot_normal(),
        I.VarianceScaling(1.0, "fan_avg", "truncated_normal"),
        "conv3d",
        I.XavierNormal(),
    ),
    (
        "variance_scaling(0.5,fan_out,normal)",
        lambda ji: ji.variance_scaling(0.5, "fan_out", "normal"),
        I.VarianceScaling(0.5, "fan_out", "normal"),
        "grouped_conv",
        None,
    ),
    (
        "variance_scaling(2,fan_avg,uniform)",
        lambda ji: ji.variance_scaling(2.0, "fan_avg", "uniform"),
        I.VarianceScaling(2.0, "fan_avg", "uniform"),
        "depthwise_conv",
        None,
    ),
    (
        "truncated_normal(.02)",  # bounds -2, 2 in std units, no variance correction
        lambda ji: ji.truncated_normal(0.02),
        I.TruncatedNormal.in_stds(0.0, 0.02, -2.0, 2.0),
        "vector",
        I.TruncatedNormal(std=0.02),  # torch meaning: absolute +-2, i.e. 100 sigma
    ),
    (
        "truncated_normal(1,lower=-1,upper=3)",
        lambda ji: ji.truncated_normal(1.0, lower=-1.0, upper=3.0),
        I.TruncatedNormal.in_stds(0.0, 1.0, -1.0, 3.0),
        "linear",
        None,
    ),
    ("normal(.02)", lambda ji: ji.normal(0.02), I.Normal(0.0, 0.02), "embedding", None),
    ("uniform(.5)", lambda ji: ji.uniform(0.5), I.Uniform(0.0, 0.5), "vector", None),
]


def _jax_device(device):
    import jax

    return jax.devices("gpu" if device == "gpu" else "cpu")[0]


@pytest.mark.parametrize("jid, factory, spec, role_id, not_spec", JAX, ids=[c[0] for c in JAX])
def test_jax_named_initializers_agree(jid, factory, spec, role_id, not_spec, device):
    require_device("flax", device)
    import jax
    import jax.numpy as jnp

    native_shape = NATIVE.get(("flax", role_id), ROLES[role_id][1])
    with jax.default_device(_jax_device(device)):
        key = jax.random.key(case_seed("jax", jid))
        w = np.asarray(factory(jax.nn.initializers)(key, native_shape, jnp.float32))
    assert w.shape == native_shape
    _check_native(w, spec, role_id, "flax", device, f"jax {jid}")
    if not_spec is not None:
        assert _rejects(w, not_spec, role_id), f"jax {jid} should differ from {not_spec}"


def test_jax_he_normal_is_truncated_kaiming(device):
    """he_normal has KaimingNormal's std but is cut at 2 pre-truncation sigmas (~2.27 std)."""
    require_device("flax", device)
    import jax
    import jax.numpy as jnp

    with jax.default_device(_jax_device(device)):
        w = np.asarray(
            jax.nn.initializers.he_normal()(jax.random.key(0), (3, 3, 64, 112), jnp.float32)
        )
    shape, std = (112, 64, 3, 3), math.sqrt(2.0 / 576)
    assert np.abs(w).max() <= 2.0 * std / 0.87962566103423978 * (1 + 1e-6)
    truncated = I.VarianceScaling(2.0, "fan_in", "truncated_normal").resolve(shape, "conv")
    kaiming = I.KaimingNormal().resolve(shape, "conv")
    assert truncated.std == pytest.approx(kaiming.std, rel=1e-12) == std
    assert_moments(w, truncated, "he_normal")
    assert ks_one(w, kaiming) < P_MIN  # same std, different law


def test_flax_module_defaults(device):
    """Flax's default kernel init is lecun_normal on its native kernel, whose fans are:

    * nnx.Linear (in, out) and nnx.Conv (*k, in, out): the neutral fan_in -> LecunNormal();
    * nnx.ConvTranspose (*k, in, out): fan_in = in * k, which on the neutral (in, out, *k)
      shape is PyTorch's **fan_out**: VarianceScaling(1, 'fan_out', 'truncated_normal'), not
      LecunNormal() (which uses out * k).
    """
    require_device("flax", device)
    import jax
    from flax import nnx

    with jax.default_device(_jax_device(device)):
        rngs = nnx.Rngs(case_seed("flax defaults"))
        lin = np.asarray(nnx.Linear(192, 320, rngs=rngs).kernel[...])
        conv = np.asarray(nnx.Conv(64, 112, kernel_size=(3, 3), rngs=rngs).kernel[...])
        tconv = np.asarray(nnx.ConvTranspose(64, 112, kernel_size=(3, 3), rngs=rngs).kernel[...])
    assert (
        lin.shape == (192, 320) and conv.shape == (3, 3, 64, 112) and tconv.shape == (3, 3, 64, 112)
    )
    _check_native(lin, I.LecunNormal(), "linear", "flax", device, "nnx.Linear default")
    _check_native(conv, I.LecunNormal(), "conv2d", "flax", device, "nnx.Conv default")
    flax_meaning = I.VarianceScaling(1.0, "fan_out", "truncated_normal")
    _check_native(
        tconv, flax_meaning, "conv_transpose", "flax", device, "nnx.ConvTranspose default"
    )
    assert _rejects(tconv, I.LecunNormal(), "conv_transpose")


def test_ks_helpers_match_scipy():
    """Same statistics as scipy; p-values from the limit law, within 2% of scipy's exact ones."""
    from scipy import stats
    from stats_helpers import ks_statistic, ks_two

    r = np.random.default_rng(1)
    for dist in (NormalDist(0.0, 1.0), UniformDist(-1.0, 1.0), TruncNormalDist(0, 1, -1, 2)):
        x = scipy_law(dist).rvs(N_MIN, random_state=r).astype(np.float32)
        y = (scipy_law(dist).rvs(N_MIN // 2, random_state=r) * 1.01).astype(np.float32)
        ref = stats.kstest(x.astype(np.float64), dist.cdf)
        assert ks_statistic(x, dist.cdf) == pytest.approx(ref.statistic, rel=1e-12)
        assert ks_one(x, dist) == pytest.approx(ref.pvalue, rel=2e-2)
        ref = stats.ks_2samp(x.astype(np.float64), y.astype(np.float64), method="asymp").pvalue
        assert ks_two(x, y) == pytest.approx(ref, rel=2e-2)
    assert ks_two(x, x + 0.05) < P_MIN


def test_has_power_helper_rejects_scaled_moments():
    """The helper the suite calls on every sample: it must fail for a 3%-off analytic std."""
    x = np.random.default_rng(0).standard_normal(N_MIN)
    assert_has_power(x, Moments(0.0, 1.0, 3.0))
    assert_moments(x, Moments(0.0, 1.0, 3.0))
    with pytest.raises(AssertionError):
        assert_moments(x, Moments(0.0, 1.03, 3.0 * 1.03**4))
    with pytest.raises(AssertionError):
        assert_ks_one(x + 0.1, NormalDist(0.0, 1.0))


# ---- the `xinit stats` verb ------------------------------------------------------------------


def test_cli_stats_json_agrees_with_the_analytic_law(capsys):
    """`xinit stats` measures in every installed backend; its numbers pass the suite's checks."""
    import json

    from xinit.cli import main

    shape = "112,64,3,3"
    argv = ["stats", "--init", "KaimingNormal(mode='fan_out')", "--shape", shape]
    assert main([*argv, "--format", "json", "--seed", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["analytic"]["std"] == pytest.approx(math.sqrt(2 / 1008), rel=1e-12)
    assert [r["backend"] for r in out["rows"]] == list(installed())
    n = 112 * 64 * 9
    for r in out["rows"]:
        assert r["n"] == n and r["ks_p"] > P_MIN
        se = r["analytic_std"] / math.sqrt(2 * n)
        assert abs(r["std"] - r["analytic_std"]) <= Z_MAX * se
        assert r["std_ratio"] == pytest.approx(r["std"] / r["analytic_std"])
    require_backends("torch", "flax")  # the keyed generator gives both the same bits
    assert main([*argv, "--format", "md", "--rng", "xinit", "--backends", "torch,flax"]) == 0
    md = capsys.readouterr().out
    lines = [ln for ln in md.splitlines() if ln.startswith("| torch") or ln.startswith("| flax")]
    assert len(lines) == 2 and lines[0].split("|")[4:] == lines[1].split("|")[4:]  # same bits


def test_cli_stats_table_and_deterministic_inits(capsys):
    from xinit.cli import main

    argv = ["stats", "--init", "Dirac(groups=2)", "--shape", "8,4,3,3", "--format", "table"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Dirac(groups=2)" in out and "analytic std" in out
    for name in installed():
        assert name in out
    argv = ["stats", "--init", "TruncatedNormal.in_stds(0, 0.02)", "--role", "vector"]
    assert main([*argv, "--shape", "70000"]) == 0
    assert "no fans (1-d)" in capsys.readouterr().out
    assert main(argv) == 0  # a 4-d per-element tensor too: LayerNorm((C, H, W))'s weight
    capsys.readouterr()
    wrong = ["stats", "--init", "Normal(0, 0.02)", "--role", "linear", "--shape", "70000"]
    assert main(wrong) == 2
    assert "role 'linear' needs a 2-d shape" in capsys.readouterr().err

"""rng="xinit": values from xinit's counter-based generator keyed by (seed, path, index).

* resnet50 built in torch, paddle and flax holds bit-identical parameters (after layout
  conversion), each equal to the keyed draw of its path;
* a tensor generated in slices (as a sharded init would) equals the slices of the whole;
* the generator's normal, uniform and truncated normal pass the foundation suite's checks
  (moments |z| <= 5 with power against 3% std errors, one-sample KS p > 1e-4), elements and
  paths are uncorrelated, and orthogonal matrices built from it are orthogonal;
* ``xinit.sample(..., rng="xinit")`` and ``xinit.apply(..., rng="xinit")`` give the same values
  whatever the backend, and a hand-written model gets exactly the numbers of the xinit build.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from helpers import installed, require_backend
from hypothesis import given, settings
from hypothesis import strategies as st
from stats_helpers import N_MIN, Z_MAX, assert_orthogonal, assert_same_law

import xinit
from xinit import init as I
from xinit.blocks import param_specs
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist
from xinit.native import neutral_values
from xinit.policy import Policy, Rule
from xinit.rng import _PAIRS, keyed_box, keyed_sample, workers

LAWS = {
    "normal": NormalDist(0.5, 2.0),
    "uniform": UniformDist(-0.3, 0.7),
    "trunc_symmetric": TruncNormalDist(0.0, 0.02, -0.04, 0.04),
    "trunc_one_sided": TruncNormalDist(1.0, 1.0, 0.5, 4.0),
}


def test_resnet50_is_bit_identical_in_torch_paddle_and_flax():
    spec = xinit.models.resnet50()
    specs = {p: s for p, s in param_specs(spec).items() if s.trainable}
    values = {}
    for backend in ("torch", "paddle", "flax"):
        require_backend(backend)
        values[backend] = neutral_values(xinit.build(spec, backend, seed=11, rng="xinit"))
        assert set(values[backend]) == set(specs)
    ref = values["torch"]
    for backend, got in values.items():
        for path, value in ref.items():
            assert got[path].shape == specs[path].shape
            assert np.array_equal(got[path], value), f"{backend} differs from torch at {path}"
    # ... and each is the keyed draw of its own path, independent of the rest of the model.
    for path in ("conv1.weight", "layer3.5.conv2.weight", "fc.weight", "fc.bias"):
        ps = specs[path]
        dist = ps.init.resolve(ps.shape, ps.role, ps.fans)
        np.testing.assert_array_equal(ref[path], keyed_sample(dist, ps.shape, 11, path))
    assert_same_law(
        ref["layer4.0.conv2.weight"],
        specs["layer4.0.conv2.weight"].init.resolve((512, 512, 3, 3), "conv"),
        "resnet50 layer4.0.conv2.weight",
    )


@pytest.mark.parametrize("law", list(LAWS))
def test_slices_equal_slices_of_the_whole(law):
    dist, shape = LAWS[law], (256, 64, 7, 7)  # 802,816 elements: many work units, threaded
    whole = keyed_sample(dist, shape, 3, "encoder.conv.weight")
    flat = whole.ravel()
    n = flat.size
    assert n > 8 * _PAIRS
    edges = ((0, 1), (1, 2), (1, 4), (_PAIRS - 1, _PAIRS + 2), (2 * _PAIRS - 3, 2 * _PAIRS + 5))
    for a, b in (*edges, (n - 7, n), (n - 1, n), (12_345, 250_001), (5, 5)):
        part = keyed_sample(dist, shape, 3, "encoder.conv.weight", start=a, stop=b)
        np.testing.assert_array_equal(part, flat[a:b])
    # A sharded init: each of 4 ranks draws its rows; concatenated, they are the whole tensor.
    rows = shape[0] // 4
    per_row = n // shape[0]
    shards = [
        keyed_sample(
            dist,
            shape,
            3,
            "encoder.conv.weight",
            start=r * rows * per_row,
            stop=(r + 1) * rows * per_row,
        ).reshape(rows, *shape[1:])
        for r in range(4)
    ]
    np.testing.assert_array_equal(np.concatenate(shards), whole)


@settings(max_examples=40, deadline=None)
@given(
    law=st.sampled_from(list(LAWS)),
    a=st.integers(0, 200_000),
    length=st.integers(0, 100_000),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_slice_equals_the_slice_of_the_whole(law, a, length, seed):
    shape, dist = (200_000 + 100_000,), LAWS[law]
    b = a + length
    part = keyed_sample(dist, shape, seed, "w", start=a, stop=b)
    np.testing.assert_array_equal(part, keyed_sample(dist, shape, seed, "w")[a:b])


def test_slice_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"slice \[5, 11\) is outside a tensor of 10"):
        keyed_sample(LAWS["normal"], (10,), 0, "w", start=5, stop=11)


@pytest.mark.parametrize("law", list(LAWS))
def test_keyed_laws_pass_the_statistics_suite(law):
    x = keyed_sample(LAWS[law], (N_MIN * 2,), 2024, f"stats.{law}")
    assert_same_law(x, LAWS[law], f"keyed {law}")


def test_keyed_draws_are_uncorrelated_across_elements_and_paths():
    n = 200_000
    a = keyed_sample(NormalDist(0.0, 1.0), (n,), 0, "layer.weight").astype(np.float64)
    b = keyed_sample(NormalDist(0.0, 1.0), (n,), 0, "layer.bias").astype(np.float64)
    c = keyed_sample(NormalDist(0.0, 1.0), (n,), 1, "layer.weight").astype(np.float64)
    for what, x, y in (("lag 1", a[:-1], a[1:]), ("paths", a, b), ("seeds", a, c)):
        r = float(np.corrcoef(x, y)[0, 1])
        assert abs(r) * math.sqrt(x.size) <= Z_MAX, f"{what}: correlation {r:.4g}"
    u = keyed_sample(UniformDist(0.0, 1.0), (n,), 0, "u")
    assert u.min() > 0.0 and u.max() < 1.0


@pytest.mark.parametrize(
    ("shape", "role", "gain"),
    [((64, 128), "linear", 1.0), ((96, 24), "linear", 2.0), ((32, 16, 3, 3), "conv", 1.5)],
)
def test_orthogonal_from_the_keyed_generator(shape, role, gain):
    got = {
        b: xinit.sample(I.Orthogonal(gain), shape, role=role, framework=b, rng="xinit", seed=4)
        for b in installed()
    }
    first = next(iter(got.values()))
    assert_orthogonal(first, gain, what=f"keyed orthogonal {shape}")
    for b, value in got.items():
        np.testing.assert_array_equal(value, first, err_msg=b)


CASES = {
    "kaiming_normal_conv": (I.KaimingNormal(mode="fan_out"), (64, 32, 3, 3), "conv"),
    "xavier_uniform_linear": (I.XavierUniform(), (300, 200), "linear"),
    "trunc_normal_linear": (I.TruncatedNormal(std=0.02), (300, 200), "linear"),
    "lecun_normal_convT": (I.LecunNormal(), (32, 64, 4, 4), "conv_transpose"),
    "normal_embedding": (I.Normal(), (1000, 64), "embedding"),
    "uniform_vector": (I.Uniform(-1, 1), (5000,), "vector"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_sample_is_the_same_in_every_backend(case):
    init, shape, role = CASES[case]
    expected = keyed_sample(init.resolve(shape, role), shape, 9, "sample")
    for b in installed():
        got = xinit.sample(init, shape, role=role, framework=b, seed=9, rng="xinit")
        assert got.dtype == np.float32 and got.shape == shape
        np.testing.assert_array_equal(got, expected, err_msg=f"{b} {case}")


def test_hand_written_torch_resnet_gets_exactly_the_xinit_build_numbers():
    """A torchvision-style ResNet written in plain torch, initialised by xinit.apply with
    rng='xinit', holds the very numbers of xinit's resnet18 built in paddle and flax."""
    require_backend("torch")
    from reference_models import torch_resnet18

    policy = xinit.presets.torchvision_resnet(zero_init_residual=True) + Rule(
        I.TruncatedNormal(std=0.02), kind="linear", bias=0.0
    )
    model = torch_resnet18(num_classes=10)
    report = xinit.apply(policy, model, seed=7, rng="xinit")
    assert not report.unmatched
    hand = neutral_values(model)
    for backend in ("paddle", "flax"):
        if backend not in installed():
            continue
        spec = xinit.models.resnet18(num_classes=10)
        built = neutral_values(xinit.build(spec, backend, seed=7, rng="xinit", policy=policy))
        assert set(built) == set(hand)
        for path, value in hand.items():
            np.testing.assert_array_equal(built[path], value, err_msg=f"{backend} {path}")


def test_xinit_rng_apply_does_not_depend_on_other_layers():
    torch = require_backend("torch") and __import__("torch")
    nn = torch.nn
    policy = Policy(Rule(I.KaimingUniform(), kind="conv"), Rule(I.Normal(0, 0.02), kind="linear"))
    small = nn.Sequential()
    small.add_module("stem", nn.Conv2d(3, 8, 3))
    small.add_module("fc", nn.Linear(8, 4))
    big = nn.Sequential()
    big.add_module("fc", nn.Linear(8, 4))
    big.add_module("extra", nn.Conv2d(8, 8, 3))
    big.add_module("stem", nn.Conv2d(3, 8, 3))
    xinit.apply(policy, small, rng="xinit")
    xinit.apply(policy, big, rng="xinit")
    for name in ("stem.weight", "fc.weight"):
        assert torch.equal(small.get_parameter(name), big.get_parameter(name)), name


def test_thread_count_follows_the_environment_and_never_the_values(monkeypatch):
    """XINIT_NUM_THREADS, else OMP_NUM_THREADS (torchrun sets it to 1 per rank), else the
    cores: the draws (long spans; a box whose 256 rows of 9,000 go to 5 tasks) are the same
    bit for bit."""
    monkeypatch.delenv("XINIT_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert workers() == 1
    law, n = NormalDist(0.0, 1.0), 40 * _PAIRS
    trunc = TruncNormalDist(0.0, 1.0, -2.0, 2.0)
    one = keyed_sample(law, (n,), 3, "w")
    box_one = keyed_box(trunc, (256, 20000), 3, "t", (0, 100), (256, 9000))
    monkeypatch.setenv("XINIT_NUM_THREADS", "4")  # xinit's own setting wins
    assert workers() == 4
    np.testing.assert_array_equal(keyed_sample(law, (n,), 3, "w"), one)
    box_four = keyed_box(trunc, (256, 20000), 3, "t", (0, 100), (256, 9000))
    np.testing.assert_array_equal(box_four, box_one)
    monkeypatch.setenv("XINIT_NUM_THREADS", "99")
    assert workers() == 8
    monkeypatch.setenv("XINIT_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="XINIT_NUM_THREADS must be a whole number"):
        workers()


# ---- the values are the documented generator's, not only self-consistent ------------------
MASK64 = (1 << 64) - 1


def splitmix64(key: int, counter: int) -> int:
    """SplitMix64's finalizer of the Weyl value ``(counter + 1) * golden``, xor-keyed: the
    generator as the rng module's docstring defines it, in Python integers."""
    u = (((counter + 1) * 0x9E3779B97F4A7C15) & MASK64) ^ key
    u = ((u ^ (u >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    u = ((u ^ (u >> 27)) * 0x94D049BB133111EB) & MASK64
    return u ^ (u >> 31)


def key_of(seed: int, path: str) -> int:
    digest = hashlib.blake2b(f"xinit\x00{seed}\x00{path}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def test_keyed_values_are_splitmix64_of_each_elements_counter():
    """Element i of a U(low, high) draw is the top 24 bits of SplitMix64(key, i) mapped onto
    [low, high): a counter off by one anywhere (contiguous runs, a box's rows, the truncated
    normal's fallback) changes the values while slices stay consistent, so it is pinned here
    against the definition."""
    from scipy.special import ndtr, ndtri

    seed, path, shape = 7, "layer1.0.conv1.weight", (4, 64)
    key = key_of(seed, path)
    low, high = -0.3, 0.7
    ref = np.array(
        [low + ((splitmix64(key, i) >> 40) + 0.5) * 2.0**-24 * (high - low) for i in range(256)]
    ).reshape(shape)
    ulps = 4 * np.spacing(np.float32(1.0))  # float32 rounding of the map onto [low, high)
    law = UniformDist(low, high)
    np.testing.assert_allclose(keyed_sample(law, shape, seed, path), ref, rtol=0, atol=ulps)
    box = keyed_box(law, shape, seed, path, (1, 5), (2, 35))  # one run per row (grid path)
    np.testing.assert_allclose(box, ref[1:3, 5:40], rtol=0, atol=ulps)

    # truncated normal, wide window: an element whose normal falls outside [a, b] takes the
    # inverse CDF of its own fallback uniform, SplitMix64(key ^ FALLBACK, i)
    normal = keyed_sample(NormalDist(0.0, 1.0), shape, seed, path).reshape(-1)
    trunc = keyed_sample(TruncNormalDist(0.0, 1.0, -1.0, 1.0), shape, seed, path).reshape(-1)
    outside = np.flatnonzero(np.abs(normal) > 1.0)
    assert 40 < outside.size < 120  # about 32% of 256
    inside = np.setdiff1d(np.arange(normal.size), outside)
    np.testing.assert_array_equal(trunc[inside], normal[inside])
    fallback = key ^ 0xA5A5A5A5DEADBEEF
    u = np.array([((splitmix64(fallback, int(i)) >> 11) + 0.5) * 2.0**-53 for i in outside])
    fa, fb = ndtr(-1.0), ndtr(1.0)
    np.testing.assert_allclose(trunc[outside], ndtri(fa + u * (fb - fa)), rtol=0, atol=ulps)

"""Neutral state: state_dict / load_state_dict / transfer across torch, paddle and flax.

Round trips in all six directions keep every tensor bit-exact; layouts and names come from
the spec's roles; strict accounting lists every missing, unexpected and mismatched entry.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend

import xinit
from xinit.blocks import Sequential, param_specs
from xinit.layers import (
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    ConvTranspose,
    Embedding,
    Flatten,
    Linear,
    ReLU,
)
from xinit.state import StateError, load_state_dict, state_dict, transfer

DIRECTIONS = list(itertools.permutations(FRAMEWORKS, 2))  # all six


def roles_spec() -> Sequential:
    """Every layout-bearing role, runnable on 2x3x8x8: a non-square kernel (catches H/W
    swaps), a grouped conv, a grouped strided conv-transpose, two BatchNorms, a Linear."""
    return Sequential(
        {
            "conv": Conv(3, 8, 3, padding=1),
            "bn": BatchNorm(8),
            "act": ReLU(),
            "gconv": Conv(8, 8, (3, 1), padding=(1, 0), groups=2, bias=False),
            "deconv": ConvTranspose(8, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
            "bn2": BatchNorm(6, momentum=0.3),
            "pool": AdaptiveAvgPool(1),
            "flat": Flatten(),
            "fc": Linear(6, 5),
        }
    )


def dims_spec() -> Sequential:
    """1-d and 3-d layers and an embedding: state only (never run)."""
    return Sequential(
        {
            "emb": Embedding(10, 4),
            "conv1d": Conv(4, 6, 3, dims=1),
            "bn1d": BatchNorm(6, dims=1),
            "deconv1d": ConvTranspose(6, 4, 3, dims=1),
            "conv3d": Conv(4, 2, (1, 2, 3), dims=3),
            "bn3d": BatchNorm(2, dims=3, affine=False),
        }
    )


def random_state(spec, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for path, ps in param_specs(spec).items():
        if ps.dtype == "int64":
            out[path] = np.array(7 + seed, dtype=np.int64).reshape(ps.shape)
        else:
            v = rng.standard_normal(ps.shape).astype(np.float32)
            out[path] = np.abs(v) + 0.5 if ps.name == "running_var" else v
    return out


def assert_bits(a: np.ndarray, b: np.ndarray, key: str) -> None:
    assert a.dtype == b.dtype, f"{key}: dtype {a.dtype} != {b.dtype}"
    assert a.shape == b.shape, f"{key}: shape {a.shape} != {b.shape}"
    assert a.tobytes() == b.tobytes(), f"{key}: values differ"


def has_counter(backend: str) -> bool:
    return backend == "torch"


@pytest.mark.parametrize("make_spec", [roles_spec, dims_spec], ids=["roles", "dims"])
@pytest.mark.parametrize("src,dst", DIRECTIONS, ids=[f"{a}-{b}" for a, b in DIRECTIONS])
def test_round_trip_bit_exact(src, dst, make_spec):
    require_backend(src)
    require_backend(dst)
    spec = make_spec()
    state = random_state(spec)
    a = xinit.build(spec, src, rng="xinit")
    load_state_dict(a, state)
    sa = state_dict(a)
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert set(sa) == set(state) - (set() if has_counter(src) else set(counters))
    for k, v in sa.items():
        assert_bits(v, state[k], k)

    b = xinit.build(spec, dst, seed=1, rng="xinit")
    report = transfer(a, b)
    sb = state_dict(b)
    for k, v in sb.items():
        if k in counters and not has_counter(src):
            assert v == 0, "a destination counter the source lacks keeps its own value"
        else:
            assert_bits(v, state[k], k)
    if has_counter(src) and not has_counter(dst):
        assert sorted(report.skipped) == sorted(counters)
    if has_counter(dst) and not has_counter(src):
        assert sorted(report.kept) == sorted(counters)

    a2 = xinit.build(spec, src, seed=2, rng="xinit")
    transfer(b, a2)
    for k, v in state_dict(a2).items():
        if k in counters and not (has_counter(src) and has_counter(dst)):
            assert v == 0 and v.dtype == np.int64  # the rule: kept from the fresh module
        else:
            assert_bits(v, sa[k], k)


@pytest.mark.parametrize("src,dst", DIRECTIONS, ids=[f"{a}-{b}" for a, b in DIRECTIONS])
def test_transfer_then_run_agrees(src, dst):
    require_backend(src)
    require_backend(dst)
    spec = roles_spec()
    a = xinit.build(spec, src, rng="xinit")
    load_state_dict(a, random_state(spec, 3))
    b = xinit.build(spec, dst, seed=5, rng="xinit")
    transfer(a, b)
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    ya, yb = xinit.run(a, x), xinit.run(b, x)
    rtol = 1e-4 if "flax" in (src, dst) else 1e-5
    assert np.abs(ya - yb).max() <= rtol * np.abs(ya).max()


@pytest.mark.parametrize("dst", FRAMEWORKS)
def test_loaded_values_are_copies(dst):
    """A destination never shares memory with the source module or the caller's arrays
    (Flax's device_put adopts host memory on CPU: it must be handed a fresh copy)."""
    require_backend(dst)
    spec = roles_spec()
    state = random_state(spec)
    kept = {k: v.copy() for k, v in state.items()}
    m = xinit.build(spec, dst, rng="xinit")
    load_state_dict(m, state)
    for v in state.values():
        v[...] = 0
    for k, v in state_dict(m).items():
        assert_bits(v, kept[k], k)
    for src in FRAMEWORKS:
        require_backend(src)
        a = xinit.build(spec, src, rng="xinit")
        load_state_dict(a, kept)
        b = xinit.build(spec, dst, seed=1, rng="xinit")
        transfer(a, b)
        load_state_dict(a, {k: np.zeros_like(v) for k, v in kept.items()}, strict=False)
        for k, v in state_dict(b).items():
            if not k.endswith("num_batches_tracked"):
                assert_bits(v, kept[k], k)


def test_torch_autograd_sees_a_load_as_in_place():
    """Loading into a torch module moves each tensor's version counter, as torch's own
    load_state_dict does: a backward through values saved before the load refuses to run
    rather than mixing old and new weights (the numpy memcpy path included)."""
    require_backend("torch")
    spec = roles_spec()
    m = xinit.build(spec, "torch", rng="xinit")
    weight = m.fc.weight
    before = weight._version
    y = weight.square().sum()  # its backward reads the weight it saved
    load_state_dict(m, random_state(spec))
    assert weight._version > before
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_native_layouts_and_names_follow_roles():
    """Paddle Linear (in, out) and BN _mean/_variance; Flax HWIO kernels, (*k, in, out/g)
    conv-transpose kernels, scale/mean/var; torch as neutral."""
    for name in FRAMEWORKS:
        require_backend(name)
    from xinit.backends import get_backend

    spec = roles_spec()
    state = random_state(spec)
    mods = {}
    for name in FRAMEWORKS:
        mods[name] = xinit.build(spec, name, rng="xinit")
        load_state_dict(mods[name], state)

    def native(name, owner, leaf):
        ad = get_backend(name)
        return ad.to_numpy(ad.get_value(ad.submodule(mods[name], owner), leaf))

    assert np.array_equal(native("torch", "fc", "weight"), state["fc.weight"])
    assert np.array_equal(native("paddle", "fc", "weight"), state["fc.weight"].T)
    assert np.array_equal(native("flax", "fc", "kernel"), state["fc.weight"].T)
    assert np.array_equal(native("paddle", "gconv", "weight"), state["gconv.weight"])
    assert np.array_equal(
        native("flax", "gconv", "kernel"), state["gconv.weight"].transpose(2, 3, 1, 0)
    )
    assert np.array_equal(native("paddle", "deconv", "weight"), state["deconv.weight"])
    assert np.array_equal(
        native("flax", "deconv", "kernel"), state["deconv.weight"].transpose(2, 3, 0, 1)
    )
    assert np.array_equal(native("paddle", "bn", "_mean"), state["bn.running_mean"])
    assert np.array_equal(native("paddle", "bn", "_variance"), state["bn.running_var"])
    assert np.array_equal(native("flax", "bn", "mean"), state["bn.running_mean"])
    assert np.array_equal(native("flax", "bn", "var"), state["bn.running_var"])
    assert np.array_equal(native("flax", "bn", "scale"), state["bn.weight"])
    # torch's own state_dict has exactly the neutral names
    assert list(mods["torch"].state_dict()) == list(param_specs(spec))
    assert list(state_dict(mods["torch"])) == list(param_specs(spec))


def test_state_dict_is_a_copy():
    require_backend("torch")
    spec = roles_spec()
    m = xinit.build(spec, "torch", rng="xinit")
    before = state_dict(m)
    saved = before["bn.running_mean"].copy()
    m.train()
    import torch

    with torch.no_grad():
        m(torch.randn(2, 3, 8, 8))
    assert np.array_equal(before["bn.running_mean"], saved)
    assert not np.array_equal(state_dict(m)["bn.running_mean"], saved)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_strict_errors_list_every_key_and_change_nothing(backend):
    require_backend(backend)
    spec = roles_spec()
    m = xinit.build(spec, backend, rng="xinit")
    before = state_dict(m)
    state = random_state(spec)
    del state["conv.weight"]
    state["head.weight"] = np.zeros((2, 2), np.float32)
    state["fc.bias"] = np.zeros((7,), np.float32)
    with pytest.raises(StateError) as info:
        load_state_dict(m, state)
    msg = str(info.value)
    assert "1 missing" in msg and "conv.weight" in msg
    assert "1 unexpected" in msg and "head.weight" in msg
    assert "fc.bias: state has (7,) float32, expected (5,) float32" in msg
    assert info.value.missing == ["conv.weight"]
    assert info.value.unexpected == ["head.weight"]
    after = state_dict(m)
    for k in before:
        assert_bits(after[k], before[k], k)


def test_non_strict_tolerates_missing_and_unexpected_never_mismatch():
    require_backend("paddle")
    spec = roles_spec()
    m = xinit.build(spec, "paddle", rng="xinit")
    state = random_state(spec)
    del state["conv.weight"]
    state["extra"] = np.zeros(3, np.float32)
    report = load_state_dict(m, state, strict=False)
    assert report.missing == ["conv.weight"] and report.unexpected == ["extra"]
    assert np.array_equal(state_dict(m)["fc.weight"], state["fc.weight"])
    state["fc.weight"] = state["fc.weight"].T.copy()
    with pytest.raises(StateError, match=r"fc\.weight: state has \(6, 5\)"):
        load_state_dict(m, state, strict=False)


def test_float64_is_cast_int_for_float_is_refused():
    require_backend("torch")
    spec = roles_spec()
    m = xinit.build(spec, "torch", rng="xinit")
    state = {
        k: v.astype(np.float64) if v.dtype == np.float32 else v
        for k, v in random_state(spec).items()
    }
    load_state_dict(m, state)
    got = state_dict(m)
    assert got["fc.weight"].dtype == np.float32
    assert np.array_equal(got["fc.weight"], state["fc.weight"].astype(np.float32))
    state["fc.weight"] = np.zeros((5, 6), np.int32)
    with pytest.raises(StateError, match="fc.weight"):
        load_state_dict(m, state)


def test_transfer_between_different_specs_lists_the_differences():
    require_backend("torch")
    require_backend("paddle")
    a = xinit.build(Sequential({"fc": Linear(4, 3)}), "torch", rng="xinit")
    b = xinit.build(Sequential({"fc": Linear(4, 2), "out": Linear(2, 2)}), "paddle", rng="xinit")
    with pytest.raises(StateError) as info:
        transfer(a, b)
    msg = str(info.value)
    assert "different specs" in msg and "out.weight" in msg and "fc.weight" in msg


def test_a_native_layer_class_no_lowering_reads_gives_its_own_tensors():
    torch = pytest.importorskip("torch")

    class Gate(torch.nn.Module):  # a parameter of a class xinit does not know
        def __init__(self):
            super().__init__()
            self.alpha = torch.nn.Parameter(torch.arange(3.0))

    net = torch.nn.Sequential(torch.nn.Linear(2, 3), Gate())
    state = state_dict(net)
    assert list(state) == ["0.weight", "0.bias", "1.alpha"]
    np.testing.assert_array_equal(state["1.alpha"], [0.0, 1.0, 2.0])


def test_public_names():
    assert xinit.state_dict is state_dict
    assert xinit.load_state_dict is load_state_dict
    assert xinit.transfer is transfer
    assert callable(xinit.port) and callable(xinit.parity)

"""Flax's ``nnx.LinearGeneral`` read as the ``linear`` kind: its ``(*in, *out)`` kernel is the
neutral (out, in) weight of ``in = prod(in)``, ``out = prod(out)``, transposed and reshaped, so
its weights move into every framework's Linear and give the native output; ``Default("flax")``
gives what Flax draws (lecun_normal on the kernel flattened to (prod in, prod out)); with batch
axes (one kernel per batch index, no neutral layer) its tensors are read as stored."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import installed, require_backend
from native_kinds import randomize, read_spec
from stats_helpers import assert_ks_one

import xinit
from xinit import Policy, Rule, init
from xinit.layers import Linear

F32_EPS = float(np.finfo(np.float32).eps)


def _general(in_shape, out_shape, axis=-1, seed=0, **kw):
    require_backend("flax")
    from flax import nnx

    return nnx.LinearGeneral(in_shape, out_shape, axis=axis, rngs=nnx.Rngs(seed), **kw)


def test_read_as_linear_and_weights_give_the_native_output_everywhere():
    """A (4, 6) -> (3, 5) LinearGeneral over the last two axes, random weights: read as
    ``Linear(24, 15)``; its neutral weight is the kernel as a (24, 15) matrix, transposed; moved
    into each framework's Linear it gives the native output on the same input, flattened, within
    the float32 dot-product bound (24 terms) around the float64 result."""
    native = _general((4, 6), (3, 5), axis=(-2, -1))
    randomize("flax", native)
    spec = read_spec(native)
    assert type(spec).__name__ == "LinearGeneral" and spec.kind == "linear"
    assert (spec.in_features, spec.out_features, spec.bias) == (24, 15, True)
    kernel = np.asarray(native.kernel[...])
    state = xinit.state_dict(native)
    np.testing.assert_array_equal(state["weight"], kernel.reshape(24, 15).T)
    np.testing.assert_array_equal(state["bias"], np.asarray(native.bias[...]).ravel())

    x = np.random.default_rng(1).standard_normal((2, 4, 6)).astype(np.float32)
    want = np.asarray(native(x)).reshape(2, 15)
    flat = x.reshape(2, 24).astype(np.float64)
    w64 = state["weight"].astype(np.float64)
    exact = flat @ w64.T + state["bias"]
    bound = 26 * F32_EPS * (np.abs(flat) @ np.abs(w64).T + np.abs(state["bias"]))
    assert np.all(np.abs(want - exact) <= bound)
    for fw in installed():
        built = xinit.build(Linear(24, 15), fw, seed=0, rng="xinit")
        xinit.transfer(native, built)
        got = np.asarray(xinit.run(built, x.reshape(2, 24)))
        assert np.all(np.abs(got - exact) <= bound), fw


def test_transfer_into_a_second_instance_is_exact_and_build_again_is_a_twin():
    """Between two LinearGenerals (and into xinit's build of the read spec, the same Flax
    class) every element moves bit-exactly, in the native (4, 6, 3, 5) layout."""
    a, b = _general((4, 6), (3, 5), axis=(-2, -1)), _general((4, 6), (3, 5), (-2, -1), seed=1)
    randomize("flax", a)
    xinit.transfer(a, b)
    np.testing.assert_array_equal(np.asarray(b.kernel[...]), np.asarray(a.kernel[...]))
    np.testing.assert_array_equal(np.asarray(b.bias[...]), np.asarray(a.bias[...]))
    twin = xinit.build(read_spec(a), "flax", seed=0)
    assert type(twin).__name__ == "LinearGeneral" and twin.kernel.shape == (4, 6, 3, 5)
    xinit.transfer(a, twin)
    x = np.random.default_rng(2).standard_normal((3, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(twin(x)), np.asarray(a(x)))


def test_flax_default_is_what_flax_draws():
    """``Default("flax")`` on a (16, 32) -> (8, 16) LinearGeneral: the catalogue's Linear(512,
    128) law, lecun_normal with fan_in 512 (Flax flattens the kernel before drawing it); the
    values apply draws and Flax's own draws of a fresh layer both pass a KS test against it,
    and the bias is zero as Flax's is."""
    native = _general((16, 32), (8, 16), axis=(-2, -1))
    own = np.asarray(native.kernel[...]).ravel()
    randomize("flax", native)
    report = xinit.apply(Policy(Rule(init.Default("flax"), param="*")), native, seed=3)
    assert set(report.initialized) == {"weight", "bias"} and not report.left
    law = init.Default("flax").resolve((128, 512), param=Linear(512, 128).params()[0])
    assert law.std == pytest.approx(512**-0.5, rel=1e-6)
    assert_ks_one(np.asarray(native.kernel[...]).ravel(), law, "apply's draws")
    assert_ks_one(own, law, "Flax's own LinearGeneral draws")
    np.testing.assert_array_equal(np.asarray(native.bias[...]), 0.0)


def test_batch_axes_are_read_as_stored_and_left_with_the_reason():
    """``batch_axis={0: 3}``: three (16, 7) kernels, no neutral layer. The tensors are state
    under their own names, transfer exactly, and ``Default("flax")`` leaves them, saying why."""
    a = _general(16, 7, batch_axis={0: 3})
    b = _general(16, 7, batch_axis={0: 3}, seed=1)
    state = xinit.state_dict(a)
    assert {k: v.shape for k, v in state.items()} == {"kernel": (3, 16, 7), "bias": (3, 7)}
    before = np.asarray(a.kernel[...]).copy()
    report = xinit.apply(Policy(Rule(init.Default("flax"), param="*")), a, seed=3)
    assert set(report.left) == {"kernel", "bias"} and not report.initialized
    assert all("LinearGeneral" in why for why in report.left.values())
    np.testing.assert_array_equal(np.asarray(a.kernel[...]), before)
    xinit.transfer(a, b)
    np.testing.assert_array_equal(np.asarray(b.kernel[...]), before)

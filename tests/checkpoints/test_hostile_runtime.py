"""Runtime probes of a hostile or careless user: NaN and Inf must not pass parity, an empty
batch is refused, and Paddle's native draws are the same from many threads as from one."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit._parity import compare
from xinit.checkpoints import save_checkpoint
from xinit.cli import main
from xinit.models import lenet
from xinit.state import load_state_dict, state_dict

X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


# ---- NaN and Inf -------------------------------------------------------------------------
def test_compare_fails_on_a_non_finite_value_the_reference_lacks():
    a = np.array([1.0, 2.0, 3.0])
    for bad in (np.nan, np.inf, -np.inf):
        b = a.copy()
        b[1] = bad
        assert not compare(a, b, atol=0, rtol=1e-5).passed
        assert not compare(b, a, atol=0, rtol=1e-5).passed


def test_compare_accepts_the_same_non_finite_value_in_the_same_place():
    a = np.array([1.0, np.inf, np.nan, 4.0])
    d = compare(a, a.copy(), atol=0, rtol=1e-5)
    assert d.passed and d.max_abs == 0.0 and d.nonfinite == 2
    assert not compare(a, np.array([1.0, -np.inf, np.nan, 4.0]), atol=0, rtol=1e-5).passed
    assert not compare(a, np.array([1.0, np.nan, np.inf, 4.0]), atol=0, rtol=1e-5).passed


def test_compare_fails_when_nothing_finite_is_left():
    nan = np.full(5, np.nan)
    d = compare(nan, nan.copy(), atol=0, rtol=1e-5)
    assert not d.passed and d.nonfinite == 5 and math.isinf(d.max_rel)


def nan_model(where: str):
    torch_model = xinit.build(lenet(), "torch", rng="xinit")
    state = state_dict(torch_model)
    state[where] = np.full_like(state[where], np.nan)
    load_state_dict(torch_model, state)
    return torch_model


def test_all_nan_outputs_do_not_pass_parity():
    require_backend("torch")
    report = xinit.parity({"a": nan_model("conv1.weight"), "b": nan_model("conv1.weight")}, X)
    assert not report.ok
    assert report.first_divergent.path == "conv1"
    assert "FAIL" in report.summary() and "NaN/Inf" in report.summary()


def test_a_nan_only_in_the_other_model_fails_parity_at_its_layer():
    require_backend("torch")
    good = xinit.build(lenet(), "torch", rng="xinit")
    report = xinit.parity({"good": good, "bad": nan_model("fc2.bias")}, X)
    assert not report.ok and report.first_divergent.path == "fc2"


def test_port_warns_on_non_finite_weights(tmp_path, capsys):
    require_backend("torch")
    state = state_dict(xinit.build(lenet(), "torch", rng="xinit"))
    state["conv1.weight"][0, 0, 0, :2] = np.nan
    state["fc1.bias"][3] = np.inf
    src = tmp_path / "in.safetensors"
    save_checkpoint(state, src)
    out = tmp_path / "out.pt"
    code = main(["port", str(src), str(out), "--model", "lenet", "--to", "torch", "--no-parity"])
    err = capsys.readouterr().err
    assert code == 0
    assert "xinit port: warning:" in err
    assert "conv1.weight (2 NaN, 0 Inf)" in err and "fc1.bias (0 NaN, 1 Inf)" in err


# ---- empty batches -----------------------------------------------------------------------
def test_parity_refuses_an_empty_batch():
    require_backend("torch")
    a = xinit.build(lenet(), "torch", rng="xinit")
    b = xinit.build(lenet(), "torch", rng="xinit")
    with pytest.raises(ValueError, match=r"non-empty input; got shape \(0, 3, 32, 32\)"):
        xinit.parity({"a": a, "b": b}, np.zeros((0, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        xinit.bn_parity({"a": a, "b": b}, np.zeros((0, 3, 32, 32), np.float32))


def test_cli_parity_and_port_refuse_an_empty_batch(tmp_path, capsys):
    require_backend("torch")
    src = tmp_path / "in.safetensors"
    save_checkpoint(state_dict(xinit.build(lenet(), "torch", rng="xinit")), src)
    out = tmp_path / "out.pt"
    code = main(
        ["port", str(src), str(out), "--model", "lenet", "--to", "torch", "--input", "0,3,32,32"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("xinit port: error: --input 0,3,32,32")
    assert not out.exists()
    code = main(["parity", "lenet", "--backends", "torch,torch", "--input", "0,3,32,32"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("xinit parity: error: --input 0,3,32,32")


# ---- threads -----------------------------------------------------------------------------
def test_paddle_native_draws_are_thread_safe():
    """8 threads building resnet18 with rng="native" get the single-threaded weights."""
    require_backend("paddle")
    spec = xinit.models.resnet18()
    want = state_dict(xinit.build(spec, "paddle", seed=3, rng="native"))
    got: dict[int, dict] = {}
    errors: list[BaseException] = []

    def build(i):
        try:
            got[i] = state_dict(xinit.build(spec, "paddle", seed=3, rng="native"))
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=build, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i in range(8):
        differing = [k for k in want if not np.array_equal(want[k], got[i][k])]
        assert differing == [], f"thread {i}: {len(differing)} tensors differ, {differing[:3]}"


def test_a_built_flax_module_called_with_nchw_says_it_takes_nhwc():
    require_backend("flax")
    import jax.numpy as jnp

    module = xinit.build(xinit.models.lenet(), "flax", rng="xinit")
    x = np.zeros((2, 3, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"channel-last.*xinit.run"):
        module(jnp.asarray(x))
    assert module(jnp.moveaxis(jnp.asarray(x), 1, -1)).shape == (2, 10)
    assert xinit.run(module, x).shape == (2, 10)

"""LSTM with ``proj_size`` (h = W_hr (o ⊙ tanh(c))) against PyTorch's and Paddle's own layers:
PyTorch's ``weight_hr_l{k}`` (P, H) is Paddle's ``{k}.cell.weight_ho`` (H, P), stored once,
and the ``proj`` kernel (H, P) of xinit's Flax module. Native weights give native outputs;
reading native layers gives the spec; the default law (U(±1/√H) on every tensor, the
projection included) is measured on the frameworks' own layers; Flax has no such cell."""

from __future__ import annotations

import numpy as np
import pytest
import test_recurrent as R
import test_rnn
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit.blocks import Sequential
from xinit.layers import LSTM, SpecError
from xinit.state import state_dict, transfer

SPECS = {
    "5p2": LSTM(4, 5, proj_size=2),
    "6p3_l2_bi": LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=3),
    "4p1_l2_nobias": LSTM(3, 4, num_layers=2, bias=False, proj_size=1),
}


def _paddle_lstm(spec, seed=3):
    """A real Paddle LSTM with a projection, its own init: (layer, run, its state_dict)."""
    import paddle

    paddle.seed(seed)
    direction = "bidirect" if spec.bidirectional else "forward"
    m = paddle.nn.LSTM(
        spec.input_size, spec.hidden_size, spec.num_layers, direction, proj_size=spec.proj_size
    )
    state = {k: np.array(v.numpy()) for k, v in m.state_dict().items()}
    return m, lambda x: m(paddle.to_tensor(x))[0].numpy(), state


def test_spec_shapes_and_bad_proj_size():
    spec = SPECS["6p3_l2_bi"]
    shapes = {p.name: p.shape for p in spec.params()}
    assert shapes["weight_hh_l0"] == (24, 3) and shapes["weight_hr_l0_reverse"] == (3, 6)
    assert shapes["weight_ih_l1"] == (24, 6)  # deeper layers take P·directions
    assert xinit.blocks.output_shape(Sequential(rnn=spec), (2, 5, 3)) == (2, 5, 6)
    for bad in (6, 7, -1, 1.5):
        with pytest.raises(SpecError, match=r"proj_size must be an int in \[0, hidden_size=6\)"):
            LSTM(3, 6, proj_size=bad)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_torch_weights_give_torch_outputs_everywhere(name):
    """``nn.LSTM(proj_size=P)``'s weights, transferred into xinit's build in every framework,
    give PyTorch's outputs (Paddle: its own LSTM with proj_size; Flax: xinit's module)."""
    spec = SPECS[name]
    require_backends(*FRAMEWORKS)
    m, run = R._native("torch", spec)
    x = R.rand(2, 6, spec.input_size, seed=3)
    want = run(x)
    assert want.shape == (2, 6, spec.output_size)
    for fw in FRAMEWORKS:
        if fw == "paddle" and spec.bias is False:
            continue  # Paddle's own bias_attr=False RNN crashes on CPU (see test_recurrent)
        built = xinit.build(spec, fw, seed=0)
        assert len(transfer(m, built).loaded) == len(spec.params()), fw
        got = np.asarray(xinit.run(built, x))
        np.testing.assert_allclose(got, want, rtol=0, atol=R.tolerance(spec, 6), err_msg=fw)


def test_paddle_checkpoint_ports_to_torch():
    """A real Paddle ``LSTM(proj_size=3)``'s state_dict (``weight_ho`` (H, P) under one name,
    the rest under two) has the build's keys, ports to PyTorch's names (``weight_hr`` (P, H))
    and PyTorch's module, loading it strictly, gives Paddle's outputs."""
    require_backends("torch", "paddle")
    import torch

    spec = SPECS["6p3_l2_bi"]
    native, run, ckpt = _paddle_lstm(spec)
    assert ckpt["0.cell_fw.weight_ho"].shape == (6, 3) and "weight_ho_l0" not in ckpt
    assert set(ckpt) == set(xinit.build(spec, "paddle", seed=0).state_dict())
    to_torch = xinit.port(ckpt, spec, src="paddle", dst="torch")
    ref = torch.nn.LSTM(3, 6, 2, batch_first=True, bidirectional=True, proj_size=3)
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in to_torch.items()}, strict=True)
    np.testing.assert_array_equal(to_torch["weight_hr_l1_reverse"], ckpt["1.cell_bw.weight_ho"].T)
    x = R.rand(2, 7, 3, seed=9)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(run(x), want, rtol=0, atol=R.tolerance(spec, 7))
    back = xinit.port(dict(to_torch), spec, src="torch", dst="paddle")  # Paddle's shifted names
    assert sorted(back) == sorted(ckpt)
    for k, v in back.items():
        np.testing.assert_array_equal(v, ckpt[k], err_msg=k)


def test_reading_native_layers_gives_the_spec():
    require_backends("torch", "paddle")
    import paddle
    import torch

    t = torch.nn.Sequential(torch.nn.LSTM(3, 6, 2, bidirectional=True, proj_size=3))
    assert test_rnn._read(t)["0"] == SPECS["6p3_l2_bi"]
    p = paddle.nn.Sequential(paddle.nn.LSTM(3, 6, 2, "bidirect", proj_size=3))
    assert test_rnn._read(p)["0"] == SPECS["6p3_l2_bi"]
    assert state_dict(p).keys() == state_dict(t).keys()
    assert transfer(p, t).summary() == "20 loaded"  # 4 cells, 5 tensors each


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_default_rules_are_the_frameworks_own(framework):
    """PyTorch's and Paddle's own LSTM(proj_size) draw U(±1/√H) on every tensor, the
    projection too (measured on >= N_MIN values of each)."""
    require_backend(framework)
    own, values = test_rnn._assert_rule_is_measured(framework, LSTM(48, 64, proj_size=32))
    assert values["weight_hr_l0"][0].shape == (32, 64)


def test_flax_has_no_default_projection():
    """Flax's LSTM cells have no projection: apply(Default("flax")) says so, naming it."""
    from xinit.backends import part

    missing = part("flax", "lowerings").REGISTRY["lstm"].default_missing(LSTM(4, 6, proj_size=2))
    assert missing is not None and "no projection" in missing[0]
    assert part("flax", "lowerings").REGISTRY["lstm"].default_missing(LSTM(4, 6)) is None

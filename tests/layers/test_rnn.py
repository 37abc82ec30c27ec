"""The vanilla RNN (``layers.RNN``, tanh or relu) against each framework's own layer: PyTorch's
``nn.RNN``, Paddle's ``SimpleRNN`` and Flax's ``nnx.SimpleCell`` (one bias, read as
``bias="ih"``). Native weights give native outputs through xinit's build; reading a native
layer gives the right spec; each framework's default rule is the law its own layer draws
(KS and moments, tolerances from the sample size). Flax's ``OptimizedLSTMCell`` is read
with its own default law: one orthogonal (H, 4H) recurrent kernel, not four (H, H) blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import test_recurrent as R
from helpers import FRAMEWORKS, require_backend, require_backends
from stats_helpers import N_MIN, assert_haar_orthogonal, assert_same_law, case_seed

import xinit
from xinit.distributions import OrthogonalDist
from xinit.initializers import Zeros
from xinit.layers import LSTM, RNN, SpecError
from xinit.native import read_layers
from xinit.parammap import to_neutral
from xinit.state import state_dict, transfer

SPECS = {
    "tanh_3x5": RNN(3, 5),
    "relu_4x3_l2_bi": RNN(4, 3, num_layers=2, bidirectional=True, nonlinearity="relu"),
    "tanh_2x4_l3_nobias": RNN(2, 4, num_layers=3, bias=False),
}


def _flax_cell(n_in, hidden, activation="tanh", seed=0, residual=False):
    """``nnx.SimpleCell`` with its default init plus independent noise (its bias too)."""
    import jax
    from flax import nnx

    fn = {"tanh": jax.numpy.tanh, "relu": jax.nn.relu, "gelu": jax.nn.gelu}[activation]
    cell = nnx.SimpleCell(n_in, hidden, activation_fn=fn, residual=residual, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed + 1)
    for _, var in nnx.to_flat_state(nnx.state(cell, nnx.Param)):
        value = np.asarray(var.get_value())
        var.set_value(value + rng.uniform(-0.3, 0.3, value.shape).astype(np.float32))
    return cell


def _read(module) -> dict:
    """Path -> layer spec of every layer of a native model, as xinit reads it."""
    return {path: spec for path, _, spec in read_layers(module)}


def _run(module, x):
    return np.asarray(xinit.run(module, x))


# ---- values: native weights, native outputs -------------------------------------------------
@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("native", ["torch", "paddle"])
def test_native_weights_give_native_outputs_everywhere(native, name):
    """PyTorch's ``nn.RNN`` or Paddle's ``SimpleRNN``, transferred into xinit's build in each
    framework, gives the native outputs (Flax's: xinit's module on Flax's scan)."""
    spec = SPECS[name]
    if native == "paddle" and spec.bias is False:
        pytest.skip("Paddle's own bias_attr=False RNN misnames its tensors and crashes on CPU")
    require_backends(native, *FRAMEWORKS)
    m, run = R._native(native, spec)
    x = R.rand(2, 6, spec.input_size, seed=3)
    want = run(x)
    assert want.shape == (2, 6, spec.output_size)
    for fw in FRAMEWORKS:
        built = xinit.build(spec, fw, seed=0)
        assert len(transfer(m, built).loaded) == len(spec.params()), fw
        got = _run(built, x)
        np.testing.assert_allclose(got, want, rtol=0, atol=R.tolerance(spec, 6), err_msg=fw)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_flax_simple_cell_gives_its_outputs(activation):
    """``nnx.SimpleCell`` in ``nnx.RNN``, read as a one-bias spec (``bias="ih"``) and moved
    into xinit's Flax module, gives Flax's outputs; into PyTorch's ``nn.RNN`` with the
    hidden-side bias zero, the same: its math is PyTorch's with one bias."""
    require_backends("flax", "torch")
    import jax.numpy as jnp
    from flax import nnx

    cell = _flax_cell(4, 3, activation)
    spec = RNN(4, 3, bias="ih", nonlinearity=activation)
    assert _read(nnx.Sequential(cell))["layers.0"] == spec
    x = R.rand(2, 7, 4, seed=6)
    want = np.asarray(nnx.RNN(cell)(jnp.asarray(x)))
    built = xinit.build(spec, "flax", seed=0)
    assert transfer(cell, built).summary() == "3 loaded"
    np.testing.assert_allclose(_run(built, x), want, rtol=0, atol=R.tolerance(spec, 7))
    both = RNN(4, 3, nonlinearity=activation)
    state = {"bias_hh_l0": np.zeros(3, np.float32), **state_dict(cell)}
    module = xinit.build(both, "torch", seed=0)
    xinit.load_state_dict(module, state)
    np.testing.assert_allclose(_run(module, x), want, rtol=0, atol=R.tolerance(spec, 7))


def test_a_wrong_nonlinearity_is_caught():
    """The value checks above can see a wrong activation: relu weights run as tanh differ
    from the native outputs by far more than the tolerance."""
    require_backend("torch")
    spec = SPECS["relu_4x3_l2_bi"]
    m, run = R._native("torch", spec)
    x = R.rand(2, 6, spec.input_size, seed=3)
    wrong = xinit.build(RNN(4, 3, 2, bidirectional=True), "torch", seed=0)
    transfer(m, wrong)
    assert np.abs(_run(wrong, x) - run(x)).max() > 100 * R.tolerance(spec, 6)


# ---- reading native layers -----------------------------------------------------------------
def test_reading_native_classes_gives_the_spec():
    require_backends(*FRAMEWORKS)
    import paddle
    import torch
    from flax import nnx

    t = torch.nn.Sequential(torch.nn.RNN(3, 4, 2, nonlinearity="relu", bidirectional=True))
    assert _read(t)["0"] == RNN(3, 4, 2, True, True, "relu")
    t = torch.nn.Sequential(torch.nn.RNN(3, 4, bias=False))
    assert _read(t)["0"] == RNN(3, 4, bias=False)
    p = paddle.nn.Sequential(paddle.nn.SimpleRNN(3, 4, 2, "bidirect", activation="relu"))
    assert _read(p)["0"] == RNN(3, 4, 2, True, True, "relu")
    f = nnx.Sequential(_flax_cell(3, 4, "relu"))
    assert _read(f)["layers.0"] == RNN(3, 4, bias="ih", nonlinearity="relu")
    for cell in (_flax_cell(3, 4, "gelu"), _flax_cell(4, 4, residual=True)):
        # no vanilla RNN's math: not read as one; its two Linears still move as Linears
        kinds = {path: spec.kind for path, spec in _read(nnx.Sequential(cell)).items()}
        assert kinds == {"layers.0.dense_h": "linear", "layers.0.dense_i": "linear"}


def test_bad_nonlinearity_is_refused():
    with pytest.raises(SpecError, match=r"RNN\.nonlinearity must be 'tanh' or 'relu'; got 'gelu'"):
        RNN(3, 4, nonlinearity="gelu")


def test_torch_cannot_build_flax_one_bias_rnn():
    require_backend("torch")
    with pytest.raises(TypeError, match=r"nn\.RNN keeps both biases or none.*bias='ih'"):
        xinit.build(RNN(3, 4, bias="ih"), "torch")


# ---- each framework's own default law --------------------------------------------------------
def _lowering(framework, kind):
    from xinit.backends import part

    return part(framework, "lowerings").REGISTRY[kind]


def _rule(framework, spec, param):
    """(initializer, fans, text, source): ``framework``'s default rule for ``param``."""
    return _lowering(framework, spec.kind).default_rule(spec, param.name)


def _native_default_values(framework, spec, n_min):
    """Neutral values of ``framework``'s own default layer for ``spec`` (its lowering's
    ``native_default`` of ``default_spec``), with successive seeds, read back through that
    layer's own parameter map, until each randomly drawn parameter has ``n_min`` values:
    one array per draw per parameter."""
    from xinit.backends import part

    lowering = _lowering(framework, spec.kind)
    own = lowering.default_spec(spec)
    pmap = part(framework, "lowerings").REGISTRY.param_map(own)
    state_of = part(framework, "defaults").native_state
    out: dict[str, list[np.ndarray]] = {p.name: [] for p in own.params()}
    seed = case_seed(framework, own)
    drawn = [p.name for p in own.params() if not isinstance(_rule(framework, own, p)[0], Zeros)]
    while min(sum(a.size for a in out[k]) for k in drawn) < n_min:
        seed += 1
        state = state_of(lowering.native_default(own, seed))
        for p in own.params():
            out[p.name].append(to_neutral(state, pmap[p.name], p.shape))
    return own, out


def _assert_rule_is_measured(framework, spec, n_min=N_MIN):
    """Every parameter of ``framework``'s own default layer follows the lowering's
    ``default_rule``: orthogonal kernels as Haar draws (each native matrix), zeros exactly,
    the rest by moments and one-sample KS on >= ``n_min`` values."""
    own, values = _native_default_values(framework, spec, n_min)
    for p in own.params():
        init, fans, text, _ = _rule(framework, own, p)
        law = init.resolve(p.shape, p.role, fans)
        what = f"{framework} {own!r} {p.name}: {text}"
        if isinstance(law, OrthogonalDist):
            blocks = [b for w in values[p.name] for b in np.split(w, law.blocks)]
            assert_haar_orthogonal(blocks, law.gain, what)
            continue
        x = np.concatenate([v.ravel() for v in values[p.name]])
        if law.std == 0:
            assert not x.any(), what
            continue
        assert_same_law(x, law, what)
    return own, values


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_rnn_default_rules_are_the_frameworks_own(framework):
    """torch ``nn.RNN`` and Paddle ``SimpleRNN``: U(±1/√H) on all four tensors; Flax
    ``nnx.SimpleCell``: lecun_normal input kernel, orthogonal (H, H) recurrent kernel, the
    input-side bias zero and no hidden-side bias."""
    require_backend(framework)
    own, _ = _assert_rule_is_measured(framework, RNN(96, 64))
    names = [p.name for p in own.params()]
    if framework == "flax":
        assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"]
    else:
        assert names == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]


def test_optimized_lstm_cell_reads_and_draws_one_orthogonal_matrix():
    """``nnx.OptimizedLSTMCell``: one stacked (in, 4H) input kernel and one (H, 4H)
    recurrent kernel, read as an LSTM with the hidden-side bias; its own default law is an
    orthogonal (H, 4H) matrix (std 1/√(4H)), not LSTMCell's four orthogonal (H, H) gates
    (std 1/√H), and the measured draws say so."""
    require_backend("flax")
    from flax import nnx

    h = 32
    cell = nnx.OptimizedLSTMCell(48, h, rngs=nnx.Rngs(0))
    spec = _read(nnx.Sequential(cell))["layers.0"]
    assert spec == LSTM(48, h, bias="hh")
    lowering = _lowering("flax", "lstm")
    init, fans, _, _ = lowering.default_rule(spec, "weight_hh_l0")
    law = init.resolve((4 * h, h), "rnn_recurrent", fans)
    assert law == OrthogonalDist(1.0, 1, 4 * h)
    assert law.std == pytest.approx(1 / math.sqrt(4 * h))
    _, values = _assert_rule_is_measured("flax", spec, n_min=N_MIN)
    w = values["weight_hh_l0"][0]  # (4H, H) neutral: one gate block is not orthogonal
    with pytest.raises(AssertionError, match="not \\(semi-\\)orthogonal"):
        assert_haar_orthogonal(np.split(w, 4), 1.0, "one gate of OptimizedLSTMCell")
    per_gate = lowering.default_rule(LSTM(48, h), "weight_hh_l0")[0]  # LSTMCell's, for contrast
    assert per_gate.resolve((4 * h, h), "rnn_recurrent", None).std == pytest.approx(
        1 / math.sqrt(h)
    )

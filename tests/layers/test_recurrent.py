"""LSTM and GRU with each framework's own names and layouts: PyTorch's ``nn.LSTM``/``nn.GRU``
(batch first), Paddle's ``nn.LSTM``/``nn.GRU`` (every tensor saved under two keys) and xinit's
Flax module (per-gate kernels (in, H) as Flax's cells name them, PyTorch's two biases).
Native weights give native outputs; transfer and port are exact; a bad input or checkpoint
is refused naming the path and the shapes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend, require_backends
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stats_helpers import N_MIN, assert_same_law, case_seed

import xinit
from xinit.backends.common.recurrent import recurrent_keywords
from xinit.blocks import Sequential, infer
from xinit.distributions import UniformDist
from xinit.layers import GRU, LSTM, Linear, SpecError
from xinit.plan import init_plan
from xinit.policy import Policy, PolicyWarning, Rule
from xinit.state import StateError, load_state_dict, state_dict, transfer

KINDS = {"lstm": LSTM, "gru": GRU}
SPECS = {
    "lstm_3x5": LSTM(3, 5),
    "lstm_4x3_l2_bi": LSTM(4, 3, num_layers=2, bidirectional=True),
    "lstm_2x4_l3_nobias": LSTM(2, 4, num_layers=3, bias=False),
    "gru_3x5": GRU(3, 5),
    "gru_4x3_l2_bi": GRU(4, 3, num_layers=2, bidirectional=True),
    "gru_2x4_l2_bi_nobias": GRU(2, 4, num_layers=2, bias=False, bidirectional=True),
}
EPS32 = float(np.finfo(np.float32).eps)


def tolerance(spec, length: int) -> float:
    """Absolute tolerance between two frameworks' outputs of ``spec`` on a sequence of
    ``length`` steps, float32. Each gate's pre-activation is a sum of in + H + 2 products
    (two biases), so its rounding error is at most (in + H + 2)·eps times the sum of the
    absolute terms, which is O(1) here (|x| ~ 1, |w| <= 1/√H, |h| < 1). sigmoid and tanh are
    1-Lipschitz and the state update (c' = f c + i g, f < 1; h' = (1 - z) n + z h) does not
    grow an error, so errors add at most once per step and per layer; the output |h| < 1."""
    n = max(spec.input_size, spec.output_size) + spec.hidden_size + 2
    return n * EPS32 * length * spec.num_layers * spec.directions


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _noisy_state(spec, seed):
    """A neutral state of ``spec`` with independent U(-0.5, 0.5) values (not xinit's init)."""
    rng = np.random.default_rng(seed)
    return {p.name: rng.uniform(-0.5, 0.5, p.shape).astype(np.float32) for p in spec.params()}


# ---- the frameworks' own modules (not through xinit) -----------------------------------------
def _native(backend, spec, seed=11):
    """The framework's own recurrent module for ``spec`` holding independent random weights,
    and a function running it on a batch-first (N, L, D) numpy sequence."""
    state = _noisy_state(spec, seed)
    if backend == "torch":
        import torch

        cls = getattr(torch.nn, type(spec).__name__)
        m = cls(
            spec.input_size,
            spec.hidden_size,
            spec.num_layers,
            bias=spec.bias,
            batch_first=True,
            bidirectional=spec.bidirectional,
            **recurrent_keywords(spec),
        )
        m.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})

        def run(x):
            with torch.no_grad():
                return m(torch.from_numpy(x))[0].numpy()

        return m, run
    if backend == "paddle":
        import paddle

        cls = getattr(paddle.nn, {"RNN": "SimpleRNN"}.get(type(spec).__name__, type(spec).__name__))
        direction = "bidirect" if spec.bidirectional else "forward"
        extra = recurrent_keywords(spec, "activation")
        m = cls(spec.input_size, spec.hidden_size, spec.num_layers, direction=direction, **extra)
        for k, v in m.state_dict().items():  # each tensor once, under its top-level name
            if "cell" not in k:
                v.set_value(state[k] if k in state else np.zeros(v.shape, np.float32))
        return m, lambda x: m(paddle.to_tensor(x))[0].numpy()
    raise ValueError(backend)


def _keys(backend, m):
    if backend == "flax":
        from flax import nnx

        flat = nnx.to_flat_state(nnx.state(m, nnx.Param))
        return {".".join(map(str, k)): tuple(v.get_value().shape) for k, v in flat}
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def _run(module, x):
    return np.asarray(xinit.run(module, x))


NATIVE = ("torch", "paddle")  # frameworks whose own module has PyTorch's two-bias math


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", NATIVE)
def test_keys_are_the_native_modules(backend, name):
    """The build has exactly the native module's state-dict keys and shapes (Paddle's 32
    entries of a bidirectional 2-layer LSTM: each tensor under two names)."""
    require_backend(backend)
    spec = SPECS[name]
    if backend == "paddle" and spec.bias is False:
        pytest.skip("Paddle's own bias_attr=False RNN misnames its tensors and crashes on CPU")
    native, _ = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    assert _keys(backend, built) == _keys(backend, native)


def test_paddle_keeps_each_tensor_under_two_names():
    require_backend("paddle")
    built = xinit.build(LSTM(4, 3, num_layers=2, bidirectional=True), "paddle", seed=0)
    keys = list(built.state_dict())
    assert len(keys) == 32
    assert keys[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert keys[16:18] == ["0.cell_fw.weight_ih", "0.cell_fw.weight_hh"]
    assert keys[-1] == "1.cell_bw.bias_hh"


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", NATIVE)
def test_native_weights_give_native_outputs(backend, name):
    """The framework's own module, read through the map and transferred into the xinit
    build, gives the native outputs on a (N, L, D) sequence."""
    require_backend(backend)
    spec = SPECS[name]
    if backend == "paddle" and spec.bias is False:
        pytest.skip("Paddle's own bias_attr=False RNN crashes on CPU; see the torch case")
    native, run = _native(backend, spec)
    built = xinit.build(spec, backend, seed=0)
    report = transfer(native, built)
    assert len(report.loaded) == len(spec.params())
    x = rand(2, 6, spec.input_size, seed=3)
    np.testing.assert_allclose(_run(built, x), run(x), rtol=0, atol=tolerance(spec, 6))


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("backend", [b for b in FRAMEWORKS if b != "torch"])
def test_torch_weights_give_torch_outputs(backend, name):
    """PyTorch's module's weights, moved into another framework's layout, give PyTorch's
    outputs: the gates land where that framework computes them."""
    require_backends("torch", backend)
    spec = SPECS[name]
    native, run = _native("torch", spec)
    built = xinit.build(spec, backend, seed=0)
    transfer(native, built)
    x = rand(3, 5, spec.input_size, seed=5)
    np.testing.assert_allclose(_run(built, x), run(x), rtol=0, atol=tolerance(spec, 5))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_transfer_exact_between_all_pairs(name):
    """With rng="xinit" every framework's build holds the same neutral state, bit for bit,
    and a transfer in any direction moves it exactly."""
    require_backends(*FRAMEWORKS)
    spec = SPECS[name]
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    ref = state_dict(mods["torch"])
    assert list(ref) == [p.name for p in spec.params()]
    for b in FRAMEWORKS:
        for k, v in state_dict(mods[b]).items():
            np.testing.assert_array_equal(v, ref[k], err_msg=f"{b} {k}")
    noisy = _noisy_state(spec, 7)
    load_state_dict(mods["torch"], noisy)
    for src in FRAMEWORKS:
        for dst in FRAMEWORKS:
            if src == dst:
                continue
            load_state_dict(mods[src], noisy)
            other = xinit.build(spec, dst, seed=99)
            transfer(mods[src], other)
            for k, v in state_dict(other).items():
                np.testing.assert_array_equal(v, noisy[k], err_msg=f"{src}->{dst} {k}")


# ---- init and policies ------------------------------------------------------------------------
def test_default_init_is_pytorchs_on_every_tensor():
    """U(±1/√H) on every weight and bias, input and recurrent alike, as PyTorch's
    reset_parameters; the kernels carry the rnn_input / rnn_recurrent roles."""
    spec = LSTM(6, 16, num_layers=2, bidirectional=True)
    plan = init_plan(spec)
    assert len(plan) == 16
    for item in plan:
        assert (item.dist.low, item.dist.high) == pytest.approx((-0.25, 0.25), rel=1e-12)
    roles = {p.name: p.role for p in spec.params()}
    assert roles["weight_ih_l1_reverse"] == "rnn_input"
    assert roles["weight_hh_l0"] == "rnn_recurrent"
    fans = {p.name: p.fans for p in spec.params()}
    assert (fans["weight_ih_l0"].fan_in, fans["weight_ih_l0"].fan_out) == (6, 64)
    assert (fans["weight_ih_l1"].fan_in, fans["weight_hh_l1"].fan_in) == (32, 16)


@pytest.mark.parametrize("rng", ["native", "xinit"])
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_default_init_statistics(backend, rng):
    """The spec's own init drawn by each framework (its own generator, or xinit's keyed one):
    every tensor, input and recurrent kernels and both biases, is U(±1/√H); measured on a
    GRU's 24 tensors pooled by kind of tensor (>= N_MIN values each)."""
    require_backend(backend)
    h = 128
    spec = GRU(128, h, num_layers=2, bidirectional=True)
    state = state_dict(xinit.build(spec, backend, seed=case_seed(backend, rng), rng=rng))
    law = UniformDist(-1 / math.sqrt(h), 1 / math.sqrt(h))
    for prefix in ("weight_ih", "weight_hh"):
        values = np.concatenate([v.ravel() for k, v in state.items() if k.startswith(prefix)])
        assert values.size >= N_MIN
        assert_same_law(values, law, f"{backend} {rng} {prefix}")
    biases = []
    for seed in range(math.ceil(N_MIN / (8 * 3 * h))):  # 8 biases of 3H per build
        built = xinit.build(spec, backend, seed=case_seed(backend, rng, seed), rng=rng)
        biases += [v for k, v in state_dict(built).items() if k.startswith("bias")]
    assert_same_law(np.concatenate(biases), law, f"{backend} {rng} biases")


def test_policy_rules_target_input_and_recurrent_kernels():
    """``param`` globs tell the kernels apart; a plain Rule(kind="lstm") selects nothing
    (no leaf is named "weight") and says so, naming the leaves."""
    spec = Sequential(rnn=LSTM(5, 8, num_layers=2), fc=Linear(8, 3))
    policy = Policy(
        Rule(xinit.init.Orthogonal(), kind="lstm", param="weight_hh*"),
        Rule(xinit.init.XavierUniform(), kind="lstm", param="weight_ih*"),
        Rule(xinit.init.Zeros(), kind="lstm", param="bias_*"),
    )
    laws = {item.path: item.dist for item in init_plan(spec, policy)}
    assert laws["rnn.weight_hh_l1"].describe() == "Orthogonal(gain=1)"
    bound = math.sqrt(6 / (8 + 32))  # Xavier on the stacked (4H, in): fan_out = 4H
    assert laws["rnn.weight_ih_l1"].high == pytest.approx(bound)
    assert laws["rnn.bias_hh_l0"].describe() == "Constant(0)"
    assert laws["fc.weight"].describe().startswith("U(")
    built = xinit.build(spec, require_backend("torch").name, policy=policy)
    w = state_dict(built)["rnn.weight_hh_l0"]  # (4H, H): orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)
    with pytest.warns(PolicyWarning, match=r"param 'weight' matches no parameter.*weight_hh_l0"):
        Policy(Rule(xinit.init.Orthogonal(), kind="lstm")).plan(xinit.blocks.param_specs(spec))


# ---- bad input ---------------------------------------------------------------------------------
def test_bad_specs_and_inputs():
    with pytest.raises(SpecError, match=r"bias must be True, False, 'ih' or 'hh'; got 'both'"):
        LSTM(3, 4, bias="both")
    with pytest.raises(SpecError, match="num_layers must be a positive int"):
        GRU(3, 4, num_layers=0)
    spec = Sequential(enc=Sequential(rnn=LSTM(8, 4)))
    with pytest.raises(SpecError, match=r"enc\.rnn: LSTM expects .*input_size=8.*\(2, 5, 6\)"):
        infer(spec, (2, 5, 6))
    with pytest.raises(SpecError, match=r"enc\.rnn: .*\(2, 8\)"):
        infer(spec, (2, 8))
    assert infer(Sequential(rnn=GRU(8, 4, bidirectional=True)), (2, 5, 8))[-1].output_shape == (
        2,
        5,
        8,
    )


def test_checkpoint_with_the_wrong_gate_count_is_refused():
    """A GRU's checkpoint for an LSTM: port and load name the key, both shapes and the gate
    count; nothing is loaded."""
    spec = Sequential(rnn=LSTM(3, 4))
    gru = {f"rnn.{k}": v for k, v in _noisy_state(GRU(3, 4), 1).items()}
    with pytest.raises(xinit.PortError) as err:
        xinit.port(gru, spec, src="torch", dst="neutral")
    text = str(err.value)
    assert "rnn.weight_ih_l0: checkpoint has (12, 3) float32" in text
    assert "(16, 3)" in text and "3 gate blocks of hidden size 4; LSTM has 4: i, f, g, o" in text
    built = xinit.build(spec, require_backend("torch").name, seed=0)
    before = state_dict(built)
    with pytest.raises(StateError, match=r"rnn\.weight_hh_l0: state has \(12, 4\).*3 gate blocks"):
        load_state_dict(built, gru)
    for k, v in state_dict(built).items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("backend", ["torch", "paddle"])
def test_one_bias_specs(backend):
    """A one-bias spec (Flax's own cells' math): Paddle builds it with the other bias a
    frozen zero; PyTorch's module cannot, and says why."""
    require_backend(backend)
    spec = GRU(3, 4, bias="ih")
    assert [p.name for p in spec.params()] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"]
    if backend == "torch":
        with pytest.raises(TypeError, match=r"nn\.GRU keeps both biases or none.*bias='ih'"):
            xinit.build(spec, "torch")
        return
    built = xinit.build(spec, "paddle", seed=0, rng="xinit")
    assert built[0].cell.bias_hh.stop_gradient and not built[0].cell.bias_ih.stop_gradient
    assert not np.any(built[0].cell.bias_hh.numpy())
    assert list(state_dict(built)) == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0"]


# ---- Paddle's two names of each tensor, through port ---------------------------------------
def _paddle_checkpoint(spec, seed=3):
    """A real Paddle LSTM/GRU's own state_dict: 4 tensors per cell, each under two keys."""
    import paddle

    paddle.seed(seed)
    cls = getattr(paddle.nn, type(spec).__name__)
    direction = "bidirect" if spec.bidirectional else "forward"
    m = cls(spec.input_size, spec.hidden_size, spec.num_layers, direction=direction)
    return m, {f"rnn.{k}": np.array(v.numpy()) for k, v in m.state_dict().items()}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_paddle_checkpoint_ports_to_torch_and_back(kind):
    """A Paddle LSTM/GRU's 32-entry state_dict ports to PyTorch (nn.LSTM loads it strictly
    and gives Paddle's outputs); PyTorch's ports back to all 32 keys, which Paddle's own
    set_state_dict takes with nothing missing or unexpected."""
    require_backends("torch", "paddle")
    import paddle
    import torch

    spec = KINDS[kind](4, 3, num_layers=2, bidirectional=True)
    native, ckpt = _paddle_checkpoint(spec)
    assert len(ckpt) == 32
    to_torch = xinit.port(ckpt, Sequential(rnn=spec), src="paddle", dst="torch")
    assert len(to_torch) == 16 and len(to_torch.report.extras_read) == 16
    ref = getattr(torch.nn, type(spec).__name__)(4, 3, 2, batch_first=True, bidirectional=True)
    ref.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in to_torch.items()}, strict=True)
    x = rand(2, 7, 4, seed=9)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))[0].numpy()
    got = native(paddle.to_tensor(x))[0].numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=tolerance(spec, 7))
    back = xinit.port(
        {f"rnn.{k}": v.numpy() for k, v in ref.state_dict().items()},
        Sequential(rnn=spec),
        src="torch",
        dst="paddle",
    )
    assert sorted(back) == sorted(ckpt)
    fresh = getattr(paddle.nn, type(spec).__name__)(4, 3, 2, direction="bidirect")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        missing, unexpected = fresh.set_state_dict({k[4:]: v for k, v in back.items()})
    assert not missing and not unexpected and not caught
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ckpt[f"rnn.{k}"])


def test_paddle_checkpoint_in_either_form_and_conflicts():
    """Either of Paddle's two names suffices; when both are there they must agree, else
    the error names both keys."""
    require_backend("paddle")
    spec = LSTM(4, 3, num_layers=2, bidirectional=True)
    model = Sequential(rnn=spec)
    _, ckpt = _paddle_checkpoint(spec)
    full = xinit.port(ckpt, model, src="paddle", dst="neutral")
    for keep in (lambda k: ".cell" in k, lambda k: ".cell" not in k):
        part = xinit.port(
            {k: v for k, v in ckpt.items() if keep(k)}, model, src="paddle", dst="neutral"
        )
        for k, v in full.items():
            np.testing.assert_array_equal(part[k], v)
    bad = dict(ckpt)
    bad["rnn.weight_hh_l1_reverse"] = bad["rnn.weight_hh_l1_reverse"] + 1
    with pytest.raises(
        xinit.PortError,
        match=r"rnn\.weight_hh_l1_reverse and rnn\.1\.cell_bw\.weight_hh name one paddle tensor "
        "but differ",
    ):
        xinit.port(bad, model, src="paddle", dst="torch")
    nobias = LSTM(4, 3, bias=False)
    to_paddle = xinit.port(_noisy_state(nobias, 0), nobias, src="neutral", dst="paddle")
    leaves = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    assert set(to_paddle) == {f"{x}_l0" for x in leaves} | {f"0.cell.{x}" for x in leaves}
    assert not np.any(to_paddle["0.cell.bias_ih"]) and not np.any(to_paddle["bias_hh_l0"])
    back = xinit.port(to_paddle, nobias, src="paddle", dst="neutral")
    assert sorted(back) == ["weight_hh_l0", "weight_ih_l0"]
    _, with_bias = _paddle_checkpoint(LSTM(4, 3))
    with pytest.raises(
        xinit.PortError, match=r"rnn\.0\.cell\.bias_ih: checkpoint has \(12,\) float32.*constant 0"
    ):
        xinit.port(with_bias, Sequential(rnn=nobias), src="paddle", dst="neutral")


# ---- native models of each framework ------------------------------------------------------------
def _torch_model():
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.GRU(3, 4, 2, batch_first=True, bidirectional=True)
            self.fc = torch.nn.Linear(8, 5)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    return Net()


def _paddle_model():
    import paddle

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.rnn = paddle.nn.GRU(3, 4, 2, direction="bidirect")
            self.fc = paddle.nn.Linear(8, 5)

        def forward(self, x):
            return self.fc(self.rnn(x)[0])

    return Net()


def test_native_models_are_read_through_the_lowerings():
    """Hand-written PyTorch and Paddle models with a GRU: state, transfer (outputs equal)
    and apply, whose policy sets the recurrent kernels orthogonal by their role."""
    require_backends("torch", "paddle")
    import paddle
    import torch

    t, p = _torch_model(), _paddle_model()
    assert list(state_dict(p)) == list(state_dict(t))
    assert transfer(p, t).summary() == "18 loaded"
    x = rand(2, 5, 3, seed=4)
    with torch.no_grad():
        want = t(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(p(paddle.to_tensor(x)).numpy(), want, rtol=0, atol=1e-5)
    policy = Policy(
        Rule(xinit.init.Orthogonal(), kind="gru", param="weight_hh*"),
        Rule(xinit.init.Zeros(), kind="gru", param="bias*"),
    )
    for model in (t, p):
        report = xinit.apply(policy, model, seed=0)
        rows = {e.path: e for e in report.entries}
        assert rows["rnn.weight_hh_l1_reverse"].kind == "gru"
        assert rows["rnn.weight_ih_l0"].status == "unmatched"
        w = state_dict(model)["rnn.weight_hh_l1_reverse"]
        np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)
        assert not np.any(state_dict(model)["rnn.bias_ih_l0"])
    assert not np.any(p.rnn[1].cell_bw.bias_hh.numpy())  # both of Paddle's names: one tensor
    assert not np.any(p.rnn.bias_hh_l1_reverse.numpy())


# ---- Flax: xinit's module and Flax's own cells --------------------------------------------------
FLAX_CELLS = {
    "LSTMCell": (LSTM, "hh"),
    "OptimizedLSTMCell": (LSTM, "hh"),
    "GRUCell": (GRU, "ih"),
}


def _flax_cell(name, n_in, hidden, seed=0):
    """One of Flax's own cells with its default init plus independent noise (biases too)."""
    from flax import nnx

    cell = getattr(nnx, name)(n_in, hidden, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed + 1)
    for _, var in nnx.to_flat_state(nnx.state(cell, nnx.Param)):
        value = np.asarray(var.get_value())
        var.set_value(value + rng.uniform(-0.3, 0.3, value.shape).astype(np.float32))
    return cell


def test_flax_cells_keys_and_layouts():
    """xinit's Flax LSTM cell holds nnx.LSTMCell's very leaves (per-gate kernels (in, H) and
    (H, H), the hidden side's biases), plus PyTorch's input-side biases; its GRU's gate
    kernels stacked are nnx.GRUCell's (in, 3H) and (H, 3H) kernels."""
    require_backend("flax")
    cell = _flax_cell("LSTMCell", 5, 3)
    one_bias = _keys("flax", xinit.build(LSTM(5, 3, bias="hh"), "flax", seed=0))
    assert one_bias == {f"l0.{k}": v for k, v in _keys("flax", cell).items()}
    both = _keys("flax", xinit.build(LSTM(5, 3), "flax", seed=0))
    assert set(both) - set(one_bias) == {f"l0.{g}.bias" for g in ("ii", "if_", "ig", "io")}
    gru = _keys("flax", xinit.build(GRU(5, 3, num_layers=2, bidirectional=True), "flax", seed=0))
    native = _keys("flax", _flax_cell("GRUCell", 5, 3))
    assert (native["dense_i.kernel"], native["dense_h.kernel"]) == ((5, 9), (3, 9))
    for cell_name, n_in in (("l0", 5), ("l1_reverse", 6)):  # deeper layers take 2H = 6
        for g in ("ir", "iz", "in_"):
            assert gru[f"{cell_name}.{g}.kernel"] == (n_in, 3)  # 3 of them: (in, 3H) stacked
        for g in ("hr", "hz", "hn"):
            assert gru[f"{cell_name}.{g}.kernel"] == (3, 3)  # (H, 3H) stacked


@pytest.mark.parametrize("name", sorted(FLAX_CELLS))
def test_flax_own_cells_weights_give_their_outputs(name):
    """Flax's own cell (in nnx.RNN), read as a one-bias spec and transferred into xinit's
    Flax module, gives Flax's outputs; into PyTorch's module with the absent bias zero,
    the same: its math is PyTorch's with one bias."""
    require_backend("flax")
    import jax.numpy as jnp
    from flax import nnx

    spec_cls, bias = FLAX_CELLS[name]
    cell = _flax_cell(name, 4, 3)
    spec = spec_cls(4, 3, bias=bias)
    x = rand(2, 7, 4, seed=6)
    want = np.asarray(nnx.RNN(cell)(jnp.asarray(x)))
    built = xinit.build(spec, "flax", seed=0)
    assert transfer(cell, built).summary() == "3 loaded"
    np.testing.assert_allclose(_run(built, x), want, rtol=0, atol=tolerance(spec, 7))
    if "torch" not in installed():
        return
    torch_spec = spec_cls(4, 3)  # both biases; the one Flax lacks is zero
    state = {k: np.zeros(v.shape, np.float32) for k, v in _noisy_state(torch_spec, 0).items()}
    state.update(state_dict(cell))
    module = xinit.build(torch_spec, "torch", seed=0)
    load_state_dict(module, state)
    np.testing.assert_allclose(_run(module, x), want, rtol=0, atol=tolerance(spec, 7))


def test_flax_own_cells_in_a_model_state_apply_port():
    """A hand-written Flax model with an nnx.RNN(LSTMCell) and a Bidirectional GRU: its
    kernels are read as the recurrent kinds (not as ``linear`` layers), apply sets the
    recurrent kernels orthogonal by their role (per gate for the LSTMCell: one
    (4H, H) neutral tensor split over hi, hf, hg, ho), and port moves the checkpoint."""
    require_backend("flax")
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self):
            self.lstm = nnx.RNN(_flax_cell("LSTMCell", 3, 4))
            fw, bw = _flax_cell("GRUCell", 4, 2, 1), _flax_cell("GRUCell", 4, 2, 2)
            self.gru = nnx.Bidirectional(nnx.RNN(fw), nnx.RNN(bw))
            self.fc = nnx.Linear(4, 2, rngs=nnx.Rngs(0))

        def __call__(self, x):
            return self.fc(self.gru(self.lstm(x)))

    net = Net()
    state = state_dict(net)
    assert {k: v.shape for k, v in state.items() if k.startswith("lstm")} == {
        "lstm.cell.weight_ih_l0": (16, 3),
        "lstm.cell.weight_hh_l0": (16, 4),
        "lstm.cell.bias_hh_l0": (16,),
    }
    assert "gru.backward_rnn.cell.bias_ih_l0" in state
    policy = Policy(
        Rule(xinit.init.Orthogonal(), kind=("lstm", "gru"), param="weight_hh*"),
        Rule(xinit.init.XavierUniform(), kind="lstm", param="weight_ih*"),
    )
    report = xinit.apply(policy, net, seed=0)
    rows = {e.path: e for e in report.entries}
    assert rows["lstm.cell.weight_hh_l0"].kind == "lstm"
    assert rows["lstm.cell.weight_hh_l0"].native == "+".join(
        f"lstm.cell.{g}.kernel" for g in ("hi", "hf", "hg", "ho")
    )
    assert rows["gru.forward_rnn.cell.weight_ih_l0"].status == "unmatched"
    assert rows["fc.weight"].kind == "linear"
    w = state_dict(net)["lstm.cell.weight_hh_l0"]  # (16, 4): orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)
    ckpt = {
        ".".join(map(str, k)): np.asarray(v.get_value())
        for k, v in nnx.to_flat_state(nnx.state(net, nnx.Param))
    }
    neutral = xinit.port(ckpt, net, src="flax", dst="neutral")
    for k, v in state_dict(net).items():
        np.testing.assert_array_equal(neutral[k], v)
    again = xinit.port(
        dict(xinit.port(neutral, net, src="neutral", dst="flax")), net, src="flax", dst="neutral"
    )
    assert sorted(again) == sorted(neutral)


# ---- random configurations ----------------------------------------------------------------------
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(KINDS)),
    input_size=st.integers(1, 6),
    hidden=st.integers(1, 6),
    layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    bias=st.booleans(),
    n=st.integers(1, 3),
    length=st.integers(1, 6),
)
def test_random_configurations_agree_across_frameworks(
    kind, input_size, hidden, layers, bidirectional, bias, n, length
):
    """Any configuration: every framework's build has the (N, L, H·directions) output and,
    with rng="xinit", the same state bit for bit and PyTorch's own module's outputs."""
    if "torch" not in installed():
        pytest.skip("needs torch for the reference")
    import torch

    spec = KINDS[kind](input_size, hidden, layers, bias, bidirectional)
    x = rand(n, length, input_size, seed=hidden * 100 + length)
    ref, run = _native("torch", spec)
    state = state_dict(xinit.build(spec, "torch", seed=4, rng="xinit"))
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    want = run(x)
    assert want.shape == (n, length, hidden * spec.directions)
    for backend in installed():
        built = xinit.build(spec, backend, seed=4, rng="xinit")
        for k, v in state_dict(built).items():
            np.testing.assert_array_equal(v, state[k], err_msg=f"{backend} {k}")
        out = _run(built, x)
        assert out.shape == want.shape
        np.testing.assert_allclose(out, want, rtol=0, atol=tolerance(spec, length), err_msg=backend)

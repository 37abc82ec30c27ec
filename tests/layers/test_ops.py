"""The op kinds traced models need (issue 23), against each framework's own op: broadcasting
arithmetic (an SE block's gate), numbers, learned tensors (PaddleOCR's LearnableAffineBlock),
the activations Paddle and MobileNet use, softmaxes over a neutral dim, and Dropout's Paddle
mode. Every case runs in each framework's xinit build and is compared with the native op
computed in float64 (torch.nn.functional, paddle.nn.functional, jax.nn), within 4x the
native float32 op's own rounding (floored at 4 ulps of the output's scale)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend
from op_checks import RNG, assert_native, built, paddle_fn, run, torch_fn, x_of

import xinit
from xinit import layers as L
from xinit.graph import Graph
from xinit.initializers import Constant


# ---- broadcasting arithmetic ----------------------------------------------------------------
def se_block(c: int) -> Graph:
    """MobileNetV3's squeeze-excitation: x · hardsigmoid(conv(relu(conv(pool(x))))), the gate
    (N, C, 1, 1) broadcast over (N, C, H, W)."""
    return Graph(
        {
            "pool": (L.AdaptiveAvgPool(1), "x"),
            "fc1": L.Conv(c, 2, 1),
            "act": L.ReLU(),
            "fc2": L.Conv(2, c, 1),
            "gate": L.Hardsigmoid(),
            "scale": (L.Mul(), ("x", "gate")),
        }
    )


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_se_block_broadcasts_the_gate_over_the_image(fw):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    spec, x = se_block(4), x_of(2, 4, 5, 6)
    state = xinit.state_dict(built(spec, "torch"))

    def native(x, w1, b1, w2, b2):
        gate = F.hardsigmoid(
            F.conv2d(F.relu(F.conv2d(F.adaptive_avg_pool2d(x, 1), w1, b1)), w2, b2)
        )
        return x * gate

    weights = [state[k] for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
    assert_native(run(spec, fw, x, state=state), torch_fn(native), x, *weights, what=fw)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "kind, shapes",
    [
        ("add", ((2, 3, 4, 5), (2, 3, 1, 1))),
        ("mul", ((2, 1, 4, 5), (2, 3, 4, 1))),
        ("sub", ((2, 3, 4, 5), (2, 1, 4, 5))),
        ("div", ((2, 3, 4, 5), (2, 3, 1, 5))),
        ("sub", ((2, 5, 3), (2, 1, 3))),
    ],
)
def test_graph_arithmetic_broadcasts_as_numpy(fw, kind, shapes):
    """Two graph inputs of different shapes, behind a conv each where they are images (so Flax
    holds them channel-last), combined as torch broadcasts them."""
    torch = pytest.importorskip("torch")
    spec = Graph({"out": (kinds_spec(kind), ("a", "b"))}, inputs=("a", "b"))
    a, b = x_of(*shapes[0]), x_of(*shapes[1]) + (3.0 if kind == "div" else 0.0)
    ops = {"add": torch.add, "mul": torch.mul, "sub": torch.sub, "div": torch.div}
    out = run(spec, fw, a, b)
    assert out.shape == xinit.blocks.output_shape(spec, shapes)
    assert_native(out, torch_fn(ops[kind]), a, b, what=f"{kind} {fw}")


def kinds_spec(kind: str):
    return {"add": L.Add(), "mul": L.Mul(), "sub": L.Sub(), "div": L.Div()}[kind]


def test_arithmetic_that_cannot_broadcast_names_the_inputs():
    spec = Graph({"out": (L.Sub(), ("a", "b"))}, inputs=("a", "b"))
    with pytest.raises(L.SpecError, match=r"out: .*sub needs shapes that broadcast.*\(2, 3, 4\)"):
        xinit.blocks.output_shape(spec, ((2, 3, 4), (2, 2, 4)))
    with pytest.raises(L.SpecError, match="takes 2 inputs"):
        Graph({"out": (L.Div(), ("a",))}, inputs=("a",))


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("op", ["add", "sub", "rsub", "mul", "div", "rdiv", "pow"])
def test_scalar_op(fw, op):
    torch = pytest.importorskip("torch")
    x = np.abs(x_of(2, 3, 4, 4)) + 0.5  # rdiv and a fractional power need x > 0
    native = {
        "add": lambda t: t + 1.5,
        "sub": lambda t: t - 1.5,
        "rsub": lambda t: torch.rsub(t, 1.5),
        "mul": lambda t: t * 1.5,
        "div": lambda t: t / 1.5,
        "rdiv": lambda t: 1.5 / t,
        "pow": lambda t: torch.pow(t, 1.5),
    }[op]
    assert_native(run(L.ScalarOp(op, 1.5), fw, x), torch_fn(native), x, what=f"{op} {fw}")


# ---- learned tensors -----------------------------------------------------------------------
def affine_block() -> Graph:
    """PaddleOCR's ``LearnableAffineBlock`` after a conv: ``scale * x + bias``, scale and bias
    of shape (1,), nodes named as its attributes."""
    return Graph(
        {
            "conv": (L.Conv(3, 4, 3, padding=1), "x"),
            "scale": (L.LearnedTensor((1,), Constant(1.0)), "x"),
            "bias": (L.LearnedTensor((1,), Constant(0.0)), "x"),
            "mul": (L.Mul(), ("scale", "conv")),
            "add": (L.Add(), ("mul", "bias")),
        }
    )


def test_learned_tensor_state_keys_are_the_containers():
    """Its parameter is the node itself: keys ``scale``/``bias`` on the container, as
    PaddleOCR's LearnableAffineBlock (``self.scale = create_parameter([1])``) and torch's."""
    spec = affine_block()
    want = {"conv.weight", "conv.bias", "scale", "bias"}
    for fw in ("torch", "paddle"):
        module = built(spec, fw)
        assert set(xinit.state_dict(module)) == want
        native = module.state_dict()
        assert set(native) == want, fw
        assert tuple(native["scale"].shape) == (1,)
        np.testing.assert_array_equal(np.asarray(native["scale"]), [1.0])


@pytest.mark.parametrize("src", FRAMEWORKS)
def test_learned_tensors_move_and_compute_scale_x_plus_bias(src):
    """Values set in one framework move by transfer to the others, each giving the native
    ``scale * conv(x) + bias``."""
    torch = pytest.importorskip("torch")
    spec, x = affine_block(), x_of(2, 3, 5, 5)
    state = {**xinit.state_dict(built(spec, "torch")), "scale": np.float32([1.7])}
    state["bias"] = np.float32([-0.3])
    module = built(spec, src, state)

    def native(x, w, b, scale, bias):
        return scale * torch.nn.functional.conv2d(x, w, b, padding=1) + bias

    args = [state[k] for k in ("conv.weight", "conv.bias", "scale", "bias")]
    for dst in installed():
        other = built(spec, dst)
        xinit.transfer(module, other)
        got = xinit.state_dict(other)
        for key, value in state.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"{src}->{dst} {key}")
        assert_native(xinit.run(other, x), torch_fn(native), x, *args, what=f"{src}->{dst}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1), (5,), (4, 5, 1)])
@pytest.mark.parametrize("first", [True, False])
def test_learned_tensor_broadcasts_as_its_neutral_shape(fw, shape, first):
    """A (C, 1, 1) gamma on a conv's image multiplies channels in every framework (Flax holds
    the image channel-last, the tensor as it is), whichever side of the product it is on;
    so do a full-rank (1, C, 1, 1), a last-dim vector and a (C, H, 1)."""
    torch = pytest.importorskip("torch")
    gamma = RNG.uniform(0.5, 2.0, shape).astype(np.float32)
    refs = ("gamma", "conv") if first else ("conv", "gamma")
    spec = Graph(
        {
            "conv": (L.Conv(3, 4, 1), "x"),
            "gamma": (L.LearnedTensor(shape), "x"),
            "out": (L.Mul(), refs),
            "act": L.ReLU(),
        }
    )
    state = {**xinit.state_dict(built(spec, "torch")), "gamma": gamma}
    x = x_of(2, 3, 5, 5)

    def native(x, w, b, g):
        y = torch.nn.functional.conv2d(x, w, b)
        return torch.relu(g * y if first else y * g)

    out = run(spec, fw, x, state=state)
    assert out.shape == xinit.blocks.output_shape(spec, x.shape)
    args = (state["conv.weight"], state["conv.bias"], gamma)
    assert_native(out, torch_fn(native), x, *args, what=f"{fw} {shape}")


def test_learned_tensor_spec():
    assert L.LearnedTensor((3, 1, 1)).output_shape((2, 3, 4, 4)) == (3, 1, 1)
    (param,) = L.LearnedTensor(2).params()
    assert (param.name, param.shape) == ("", (2,))
    with pytest.raises(L.SpecError, match="LearnedTensor.shape"):
        L.LearnedTensor((3, 0))
    with pytest.raises(TypeError, match="parameter of its container"):
        xinit.build(L.LearnedTensor((3,)), "torch")


# ---- activations -----------------------------------------------------------------------------
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_hardsigmoid_with_paddles_slope_is_paddles(fw):
    """PaddleOCR's ``F.hardsigmoid(x, slope=0.2, offset=0.5)`` in every framework."""
    require_backend("paddle")
    import paddle.nn.functional as PF

    x = x_of(2, 3, 4, 4) * 4
    spec = L.Hardsigmoid(slope=0.2, offset=0.5)
    native = paddle_fn(lambda t: PF.hardsigmoid(t, slope=0.2, offset=0.5))
    assert_native(run(spec, fw, x), native, x, what=fw)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "spec, native",
    [
        (L.Hardsigmoid(), "hardsigmoid"),
        (L.ReLU6(), "relu6"),
        (L.Clip(-0.5, 0.75), "hardtanh"),
        (L.Clip(None, 0.25), "clamp_max"),
        (L.Clip(0.0, None), "clamp_min"),
    ],
)
def test_activation_is_torchs(fw, spec, native):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fn = {
        "hardsigmoid": F.hardsigmoid,
        "relu6": F.relu6,
        "hardtanh": lambda t: F.hardtanh(t, -0.5, 0.75),
        "clamp_max": lambda t: t.clamp(max=0.25),
        "clamp_min": lambda t: t.clamp(min=0.0),
    }[native]
    x = x_of(2, 3, 4, 4) * 5
    assert_native(run(spec, fw, x), torch_fn(fn), x, what=f"{spec} {fw}")


def test_clip_needs_a_bound_in_order():
    with pytest.raises(L.SpecError, match="min or a max"):
        L.Clip(None, None)
    with pytest.raises(L.SpecError, match="above max"):
        L.Clip(1.0, 0.0)


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [1, -1, 2])
def test_softmax_over_a_neutral_dim_of_an_image(fw, log, dim):
    """After a conv (Flax holds its image channel-last) a Softmax(dim=1) is over channels,
    dim -1 over the width, as torch's."""
    torch = pytest.importorskip("torch")
    cls, fn = (L.LogSoftmax, torch.log_softmax) if log else (L.Softmax, torch.softmax)
    spec = Graph({"conv": (L.Conv(3, 4, 1), "x"), "soft": cls(dim)})
    state = xinit.state_dict(built(spec, "torch"))
    x = x_of(2, 3, 4, 5)

    def native(x, w, b):
        return fn(torch.nn.functional.conv2d(x, w, b), dim)

    args = (state["conv.weight"], state["conv.bias"])
    assert_native(run(spec, fw, x, state=state), torch_fn(native), x, *args, what=fw)


# ---- dropout and stochastic depth --------------------------------------------------------------
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_downscale_in_infer_dropout_is_paddles_at_inference(fw):
    require_backend("paddle")
    import paddle

    native = paddle.nn.Dropout(0.3, mode="downscale_in_infer")
    native.eval()
    x = x_of(2, 3, 4, 4)
    got = run(L.Dropout(0.3, mode="downscale_in_infer"), fw, x)
    assert_native(got, paddle_fn(native), x, what=fw)
    np.testing.assert_array_equal(run(L.Dropout(0.3), fw, x), x)  # upscale_in_train: identity


def training_output(module, fw: str, x: np.ndarray) -> np.ndarray:
    """One training-mode forward of a built module (dropout active)."""
    return np.asarray(xinit.backends.get_backend(fw).run_train(module, x))


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_dropout_modes_in_training(fw):
    """In training, downscale_in_infer keeps values as they are, upscale_in_train divides them
    by 1 - p; about p of them are dropped (binomial: within 5 sigma)."""
    x = np.abs(x_of(4, 8, 16, 16)) + 0.5
    p = 0.3
    for mode, kept in (("downscale_in_infer", 1.0), ("upscale_in_train", 1 / (1 - p))):
        y = training_output(built(L.Dropout(p, mode=mode), fw), fw, x)
        dropped = y == 0
        np.testing.assert_allclose(y[~dropped], x[~dropped] * kept, rtol=1e-6, err_msg=mode)
        n = x.size
        assert abs(dropped.sum() - p * n) < 5 * np.sqrt(n * p * (1 - p)), (mode, dropped.sum())


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_stochastic_depth_drops_whole_samples_in_training_only(fw):
    x = np.abs(x_of(64, 3, 2, 2)) + 0.5
    module = built(L.StochasticDepth(0.5), fw)
    np.testing.assert_array_equal(xinit.run(module, x), x)
    y = training_output(module, fw, x).reshape(64, -1)
    dropped = (y == 0).all(axis=1)
    np.testing.assert_allclose(y[~dropped], x.reshape(64, -1)[~dropped] * 2.0, rtol=1e-6)
    assert 0 < dropped.sum() < 64  # P(all or none of 64 kept at p = 0.5) = 2^-63

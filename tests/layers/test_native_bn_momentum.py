"""Reading a natively constructed BatchNorm gives the neutral momentum.

Paddle's ``momentum`` (``paddle.nn.BatchNorm2D``, default 0.9) and nnx's (``nnx.BatchNorm``,
default 0.99) weigh the running value; the neutral one (PyTorch's) weighs the new batch, so
reading translates ``m -> 1 - m``. Checked twice: in the spec reading produces, and in
behaviour, where one training step of the native layer moves its running mean exactly as a
PyTorch BatchNorm built from that spec moves the same running mean on the same batch.

Only the running mean is compared: Paddle's and nnx's own layers keep the biased batch
variance (a property of the framework's layer, not of reading), and the mean alone already
shows the momentum: ``(1 - m) * old + m * batch``.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit.blocks import Sequential
from xinit.layers import BatchNorm
from xinit.native import layers_of, read_layers

EPS32 = float(np.finfo(np.float32).eps)
X = np.random.default_rng(0).standard_normal((8, 4, 5, 5)).astype(np.float32) * 2.0 + 0.5


def read_bn(model) -> BatchNorm:
    """The spec reading gives the model's one BatchNorm (through ``read_layers`` and
    ``layers_of``, which must agree)."""
    read = read_layers(model)
    assert [(path, type(spec)) for path, _, spec in read] == [("bn", BatchNorm)]
    assert [spec for _, _, spec in layers_of(model)] == [read[0][2]]
    return read[0][2]


def torch_step(spec: BatchNorm, state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The running mean a PyTorch BatchNorm built from ``spec`` holds after one training step
    on ``x`` from ``state``."""
    model = xinit.build(Sequential(("bn", spec)), "torch", rng="xinit")
    xinit.load_state_dict(model, {**xinit.state_dict(model), **state})
    model.train()
    import torch

    with torch.no_grad():
        model(torch.from_numpy(x))
    return xinit.state_dict(model)["bn.running_mean"]


def assert_neutral_step(native: np.ndarray, torch_mean: np.ndarray, old: np.ndarray, m: float):
    """The native running mean after one step equals PyTorch's and the neutral rule
    ``(1 - m) * old + m * batch mean`` (computed in float64), to float32 rounding: the batch
    mean sums n values per channel (rounding grows like sqrt(n) ulps of the largest), plus a
    few ulps of the old value and of the weighted sum."""
    n = X.size // X.shape[1]
    atol = float(EPS32 * ((8 + 4 * np.sqrt(n)) * np.abs(X).max() + 8 * np.abs(old).max()))
    np.testing.assert_allclose(native, torch_mean, rtol=0, atol=atol)
    rule = (1 - m) * old.astype(np.float64) + m * X.mean(axis=(0, 2, 3), dtype=np.float64)
    np.testing.assert_allclose(native, rule, rtol=0, atol=atol)


def start_state(c: int) -> dict[str, np.ndarray]:
    """Running statistics away from 0 and 1, so both ``m`` and ``1 - m`` show in a step."""
    rng = np.random.default_rng(1)
    return {
        "bn.running_mean": rng.uniform(-3, 3, c).astype(np.float32),
        "bn.running_var": rng.uniform(0.5, 2, c).astype(np.float32),
    }


@pytest.mark.parametrize("paddle_momentum, neutral", [(None, 0.1), (0.7, 0.3)])
@pytest.mark.parametrize("cls", ["BatchNorm2D", "BatchNorm"])
def test_reading_a_native_paddle_batchnorm_translates_its_momentum(cls, paddle_momentum, neutral):
    require_backend("paddle")
    require_backend("torch")
    import paddle

    kwargs = {} if paddle_momentum is None else {"momentum": paddle_momentum}
    layer = getattr(paddle.nn, cls)(4, **kwargs)  # Paddle's default momentum is 0.9
    model = paddle.nn.Sequential(("bn", layer))
    spec = read_bn(model)
    assert spec.momentum == pytest.approx(neutral, abs=1e-12)

    state = start_state(4)
    xinit.load_state_dict(model, {**xinit.state_dict(model), **state})
    want = torch_step(spec, xinit.state_dict(model), X)
    model.train()
    model(paddle.to_tensor(X))
    got = xinit.state_dict(model)["bn.running_mean"]
    assert_neutral_step(got, want, state["bn.running_mean"], neutral)


@pytest.mark.parametrize("nnx_momentum, neutral", [(None, 0.01), (0.9, 0.1)])
def test_reading_a_native_nnx_batchnorm_translates_its_momentum(nnx_momentum, neutral):
    require_backend("flax")
    require_backend("torch")
    import jax.numpy as jnp
    from flax import nnx

    kwargs = {} if nnx_momentum is None else {"momentum": nnx_momentum}

    class Model(nnx.Module):
        def __init__(self):
            self.bn = nnx.BatchNorm(4, rngs=nnx.Rngs(0), **kwargs)  # nnx's default: 0.99

        def __call__(self, x):
            return self.bn(x)

    model = Model()
    spec = read_bn(model)
    assert spec.momentum == pytest.approx(neutral, abs=1e-12)

    state = start_state(4)
    xinit.load_state_dict(model, {**xinit.state_dict(model), **state})
    want = torch_step(spec, xinit.state_dict(model), X)
    model(jnp.asarray(np.moveaxis(X, 1, -1)))  # nnx's layer: channel-last, batch statistics
    got = xinit.state_dict(model)["bn.running_mean"]
    assert_neutral_step(got, want, state["bn.running_mean"], neutral)

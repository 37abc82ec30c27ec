"""Tracing a model that calls one module twice in the same forward: the second call becomes a
:class:`xinit.Reuse` node, so the spec builds with the model's one set of weights (its own
state keys) and computes what the model computes: bit for bit in the source framework, parity
PASS in the others."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend, require_backends

import xinit
from xinit.blocks import param_specs
from xinit.graph import Reuse
from xinit.tracing import TraceError

torch = pytest.importorskip("torch")


class _LinearTwice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


class _ConvTwice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.conv(self.bn(self.conv(x)))) + x


class _Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(6, 6)
        self.norm = torch.nn.LayerNorm(6)

    def forward(self, x, y):
        return self.norm(self.proj(x)) + y


class _BlockThrice(torch.nn.Module):
    """ABINet's pattern: one block (a module, traced as a sub-graph) run on new inputs."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Linear(4, 6)
        self.block = _Block()
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x):
        e = self.embed(x)
        a = self.block(e, torch.tanh(e))
        b = self.block(torch.relu(a), e)
        return self.head(self.block(b, a))


def _seeded(cls):
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():  # BatchNorm statistics other than 0 and 1
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return model


MODELS = {
    "linear": (_LinearTwice, (3, 5, 6), {"fc_1": "fc"}),
    "conv": (_ConvTwice, (2, 4, 6, 6), {"conv_1": "conv"}),
    "block": (_BlockThrice, (3, 5, 4), {"block_1": "block", "block_2": "block"}),
}


@pytest.mark.parametrize("name", MODELS)
def test_a_second_call_traces_as_a_reuse_and_builds_bit_for_bit(name):
    cls, shape, reused = MODELS[name]
    model = _seeded(cls)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    spec = xinit.trace(model, torch.from_numpy(x))
    assert {n: s.node for n, s, _ in spec.nodes if isinstance(s, Reuse)} == reused
    assert set(param_specs(spec)) == set(model.state_dict())
    built, report = xinit.convert(model, "torch", x, spec=spec)
    assert report.ok
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(xinit.run(built, x), want)


@pytest.mark.parametrize("to", ["paddle", "flax"])
@pytest.mark.parametrize("name", ["conv", "block"])
def test_a_traced_reuse_converts_with_parity(name, to):
    require_backend(to)
    cls, shape, _ = MODELS[name]
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    _, report = xinit.convert(_seeded(cls), to, x)
    assert report.ok, report.parity.first_divergent


def test_a_conversion_with_the_second_call_wrong_fails_parity():
    """Planted fault: the converted model's Reuse node fed the first call's input again."""
    require_backend("paddle")
    model = _seeded(_ConvTwice)
    x = np.random.default_rng(2).standard_normal((2, 4, 6, 6)).astype(np.float32)
    built, _ = xinit.convert(model, "paddle", x, parity=False)
    built._xinit_nodes = [
        (n, ("x",) if n == "conv_1" else refs, callee) for n, refs, callee in built._xinit_nodes
    ]
    report = xinit.parity({"torch": model, "paddle": built}, x)
    assert not report.ok and report.first_divergent.path == "conv"


class _Sliced(torch.nn.Module):
    """A block whose steps depend on its input's width: the second call skips the slice."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.fc(x[:, :3] if x.shape[1] > 3 else x)


class _SlicedTwice(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = _Sliced()

    def forward(self, x):
        return self.block(self.block(x))


def test_a_module_computing_otherwise_the_second_time_is_refused():
    with pytest.raises(TraceError, match="'block' .* called twice and computes otherwise"):
        xinit.trace(_SlicedTwice(), torch.zeros(1, 5))


def test_a_paddle_layer_called_twice_traces_as_a_reuse():
    require_backends("paddle", "flax")
    import paddle

    class LinearTwice(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(6, 6)

        def forward(self, x):
            return self.fc(paddle.nn.functional.relu(self.fc(x)))

    paddle.seed(0)
    model = LinearTwice()
    x = np.random.default_rng(3).standard_normal((3, 6)).astype(np.float32)
    spec = xinit.trace(model, paddle.to_tensor(x))
    assert spec["fc_1"] == Reuse("fc")
    for to in ("torch", "flax"):
        _, report = xinit.convert(model, to, x, spec=spec)
        assert report.ok, (to, report.parity.first_divergent)


def test_a_flax_module_called_twice_traces_as_a_reuse():
    require_backends("flax", "paddle")
    import jax.numpy as jnp
    from flax import nnx

    class LinearTwice(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(6, 6, rngs=rngs)

        def __call__(self, x):
            return self.fc(nnx.relu(self.fc(x)))

    model = LinearTwice(nnx.Rngs(0))
    x = np.random.default_rng(4).standard_normal((3, 6)).astype(np.float32)
    spec = xinit.trace(model, jnp.asarray(x))
    assert spec["fc_1"] == Reuse("fc")
    _, report = xinit.convert(model, "paddle", x, spec=spec)
    assert report.ok, report.parity.first_divergent

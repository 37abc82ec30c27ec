"""The torch tracer's shapes-only run (fake tensors, no arithmetic): the same spec as a run on
the real tensors, and a forward that reads a value traced by the real run instead."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real

import xinit
from xinit.blocks import children

torch = pytest.importorskip("torch")


def _input():
    return torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 32, 32), np.float32))


@pytest.mark.parametrize("name", ["resnet18", "vit"])
def test_the_shapes_only_run_gives_the_spec_of_the_real_run(name):
    from xinit.backends.torch import tracing

    models = real.vision("torchvision").models
    torch.manual_seed(0)
    if name == "vit":
        model = models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
    else:
        model = models.resnet18(num_classes=10)
    inputs = tracing._widened((_input(),), None)
    fake = tracing._run(model.eval(), inputs, shapes_only=True)
    assert fake == tracing._run(model, inputs, shapes_only=False)
    assert xinit.trace(model, _input()) == fake


class _Branchy(torch.nn.Module):
    """Control flow on a value (a buffer's): a shapes-only run cannot follow it."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.register_buffer("gate", torch.tensor(1.0), persistent=False)

    def forward(self, x):
        y = self.conv(x)
        return torch.relu(y) if self.gate > 0 else torch.sigmoid(y)


def test_a_forward_that_reads_a_value_is_traced_on_the_real_tensors():
    from xinit.backends.torch import tracing

    model = _Branchy().eval()
    with pytest.raises(Exception):  # noqa: B017 - torch's own data-dependent error
        tracing._run(model, tracing._widened((_input(),), None), shapes_only=True)
    x = _input()
    for gate, act in ((1.0, xinit.layers.ReLU), (-1.0, xinit.layers.Sigmoid)):
        model.gate.fill_(gate)
        spec = xinit.trace(model, x)
        assert [type(c) for _, c in children(spec)] == [xinit.layers.Conv, act]
        built = xinit.build(spec, "torch").eval()
        built.load_state_dict(model.state_dict())
        with torch.no_grad():
            np.testing.assert_array_equal(built(x).numpy(), model(x).numpy())

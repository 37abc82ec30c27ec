"""Re-parameterisation (xinit.reparameterize): a LearnableRepLayer-style sum of conv+BN
branches, an identity BN branch among them, fused into one conv; and plain conv+BN folding
on a whole ResNet. The fused model's outputs equal the original's within float32 noise
(measured against the same models in float64, where they agree to 1e-10), in torch and
Paddle, and its parameter count is the framework's own count of the fused model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backends

import xinit
from xinit.blocks import Sequential
from xinit.graph import Graph
from xinit.layers import Add, BatchNorm, Conv, ReLU
from xinit.reparam import fuse

EPS = 0.1  # a large eps: a fusion that forgot it would be far outside the noise


def _rep_layer(stride: int = 1, groups: int = 8) -> Graph:
    """PaddleOCR's LearnableRepLayer at inference before ``rep()``: an identity BatchNorm
    (stride 1 only), ``conv_kxk`` (two kxk conv+BN branches, summed: ``conv_kxk.0``,
    ``conv_kxk.1``) and a 1x1 conv+BN branch, summed, then act."""

    def conv_bn(k):
        conv = Conv(8, 8, k, stride=stride, padding=k // 2, groups=groups, bias=False)
        return Sequential(("conv", conv), ("bn", BatchNorm(8, eps=EPS)))

    nodes = {"identity": (BatchNorm(8, eps=EPS), "x")} if stride == 1 else {}
    kxk = Graph({"0": conv_bn(3), "1": (conv_bn(3), "x"), "sum": (Add(), ("0", "1"))})
    nodes |= {"conv_kxk": (kxk, "x"), "conv_1x1": (conv_bn(1), "x")}
    nodes["add"] = (Add(), tuple(nodes))
    nodes["act"] = (ReLU(), "add")
    return Graph(nodes)


def _calibrated(spec, framework):
    model = xinit.build(spec, framework, seed=3)
    xinit.randomize_batchnorm(model, seed=4)  # statistics as a trained model has them
    model.eval()
    return model


def _forward(model, x, framework):
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(torch.as_tensor(x)).numpy()
    import paddle

    return model(paddle.to_tensor(x)).numpy()


def _float64_twin(spec, state):
    """The torch model of ``spec`` in float64 holding ``state`` (no float32 rounding)."""
    import torch

    model = xinit.build(spec, "torch").double()
    own = model.state_dict()
    own.update({k: torch.as_tensor(np.asarray(v)) for k, v in state.items() if k in own})
    model.load_state_dict(own)
    return model.eval()


def _count(model) -> tuple[int, int]:
    """(trainable parameters, every saved value but step counters) as the framework counts."""
    trainable = sum(
        int(np.prod(p.shape))
        for p in model.parameters()
        if getattr(p, "requires_grad", None) or getattr(p, "trainable", False)
    )
    saved = sum(
        int(np.prod(v.shape)) for k, v in model.state_dict().items() if "num_batches" not in k
    )
    return trainable, saved


@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_a_rep_layer_becomes_one_conv_with_equal_outputs(framework):
    require_backends(framework, "torch")
    import torch

    spec = _rep_layer()
    model = _calibrated(spec, framework)
    fused_model, report = xinit.reparameterize(model)
    x = np.random.default_rng(0).standard_normal((2, 8, 12, 12)).astype(np.float32)
    before, after = _forward(model, x, framework), _forward(fused_model, x, framework)
    # float64 twins of both: the fusion is exact arithmetic, only float32 rounding differs
    state = {k: v.astype(np.float64) for k, v in xinit.state_dict(model).items()}
    fused_spec, fused_state, _ = fuse(spec, state)  # float64 in, float64 out
    with torch.no_grad():
        ref64 = _float64_twin(spec, state)(torch.as_tensor(x, dtype=torch.float64))
        fused64 = _float64_twin(fused_spec, fused_state)(torch.as_tensor(x, dtype=torch.float64))
    ref64, fused64 = ref64.numpy(), fused64.numpy()
    assert np.abs(fused64 - ref64).max() < 1e-10 * np.abs(ref64).max()
    noise = np.abs(before - ref64).max()  # what float32 alone does to the original
    assert 0 < noise < 1e-4
    assert np.abs(after - ref64).max() <= 8 * noise
    assert [k for k in fused_model.state_dict()] == ["reparam_conv.weight", "reparam_conv.bias"]
    assert (report.params_after, report.values_after) == _count(fused_model)
    assert (report.params_before, report.values_before) == _count(model)
    assert "3 branches (identity, conv_kxk, conv_1x1) -> one 3x3 conv" in report.summary()


def test_plain_conv_bn_pairs_fold_across_a_resnet():
    require_backends("torch")
    spec = xinit.models.resnet18(num_classes=10)
    model = _calibrated(spec, "torch")
    fused_model, report = xinit.reparameterize(model, conv_bn=True)
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    before, after = _forward(model, x, "torch"), _forward(fused_model, x, "torch")
    import torch

    ref64 = model.double()(torch.as_tensor(x, dtype=torch.float64)).detach().numpy()
    noise = np.abs(before - ref64).max()
    assert np.abs(after - ref64).max() <= 8 * noise
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused_model.modules())
    assert (report.params_after, report.values_after) == _count(fused_model)
    assert len(report.fused) == 20  # every conv of resnet18 has its BatchNorm


def test_what_does_not_fuse_is_left_and_said():
    """A strided block has no identity branch; branches whose paddings do not align their
    outputs are left as they are, with the reason."""
    spec = Graph(
        {
            "a": (Conv(4, 4, 3, padding=1), "x"),
            "b": (Conv(4, 4, 1, padding=1), "x"),  # a 1x1 padded by 1: shifted outputs
            "add": (Add(), ("a", "b")),
        }
    )
    rng = np.random.default_rng(0)
    state = {
        "a.weight": rng.standard_normal((4, 4, 3, 3)),
        "a.bias": rng.standard_normal(4),
        "b.weight": rng.standard_normal((4, 4, 1, 1)),
        "b.bias": rng.standard_normal(4),
    }
    fused, out, report = fuse(spec, state)
    assert fused == spec and set(out) == set(state)
    assert report.left == ["add: its convs' paddings do not align their outputs"]


def test_a_model_without_a_spec_is_refused():
    require_backends("torch")
    import torch

    with pytest.raises(xinit.ArgumentError, match="carries no spec"):
        xinit.reparameterize(torch.nn.Conv2d(3, 3, 3))


@pytest.mark.parametrize("groups", [1, 2])
def test_a_batchnorm_after_a_transposed_conv_folds_along_its_output_axis(groups):
    """DBHead's ConvTranspose2d + BatchNorm: the transposed conv's weight is (in, out/groups,
    k, k), so the BN scales axis 1. Square channels (6 -> 6) would hide a fold along axis 0
    from any shape check; only the outputs show it."""
    require_backends("torch")
    import torch

    from xinit.layers import ConvTranspose

    spec = Sequential(
        ("conv", ConvTranspose(6, 6, 2, stride=2, groups=groups, bias=True)),
        ("bn", BatchNorm(6, eps=EPS)),
        ("relu", ReLU()),
    )
    model = _calibrated(spec, "torch")
    fused_model, report = xinit.reparameterize(model, conv_bn=True)
    assert report.fused == ["bn: BatchNorm folded into conv"]
    x = np.random.default_rng(2).standard_normal((2, 6, 5, 5)).astype(np.float32)
    before, after = _forward(model, x, "torch"), _forward(fused_model, x, "torch")
    ref64 = model.double()(torch.as_tensor(x, dtype=torch.float64)).detach().numpy()
    noise = np.abs(before - ref64).max()
    assert 0 < noise < 1e-4
    assert np.abs(after - ref64).max() <= 8 * noise

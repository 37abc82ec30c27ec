"""LayerScale: a learned per-channel multiplier, as timm's ``LayerScale`` (``gamma`` (C,) on
(N, L, C)) and torchvision's ConvNeXt ``layer_scale`` ((C, 1, 1) on (N, C, H, W)). No
framework has a layer of its own for it, so xinit builds one in each; the tests check the
product against PyTorch's own broadcasting of those tensors, the keys against timm's, the
read of xinit's layers, and that ``Default(framework)`` says there is no framework default."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend
from native_kinds import read_spec

import xinit
from xinit.backends import part
from xinit.backends.registry import NO_LAYER_SCALE
from xinit.layers import LayerScale, SpecError

CASES = {  # spec, channel-first input shape
    "timm_vit": (LayerScale(6), (2, 5, 6)),
    "convnext": (LayerScale(4, 1e-6, spatial=2), (2, 4, 3, 5)),
    "conv1d": (LayerScale(4, spatial=1), (2, 4, 7)),
}


def timm_layer_scale(dim: int, init_values: float = 1e-5):
    """timm's ``LayerScale`` (timm/layers/layer_scale.py) as it is defined."""
    import torch

    class LayerScale(torch.nn.Module):
        def __init__(self, dim, init_values=1e-5, inplace=False):
            super().__init__()
            self.inplace = inplace
            self.gamma = torch.nn.Parameter(init_values * torch.ones(dim))

        def forward(self, x):
            return x.mul_(self.gamma) if self.inplace else x * self.gamma

    return LayerScale(dim, init_values)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_product_is_pytorchs_and_weights_move_exactly(fw, case):
    """Random gamma: each framework's output is PyTorch's ``x * gamma`` exactly (one float32
    product per element), and the weights move into every other framework unchanged."""
    require_backend(fw)
    torch = pytest.importorskip("torch")
    spec, shape = CASES[case]
    rng = np.random.default_rng(4)
    gamma = rng.uniform(0.5, 1.5, spec.shape).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    want = (torch.from_numpy(x) * torch.from_numpy(gamma)).numpy()
    built = xinit.build(spec, fw, seed=0)
    xinit.load_state_dict(built, {"gamma": gamma})
    np.testing.assert_array_equal(np.asarray(xinit.run(built, x)), want)
    assert read_spec(built) == spec
    for dst in installed():
        other = xinit.build(spec, dst, seed=1)
        xinit.transfer(built, other)
        np.testing.assert_array_equal(xinit.state_dict(other)["gamma"], gamma)
        np.testing.assert_array_equal(np.asarray(xinit.run(other, x)), want, err_msg=dst)


def test_timm_keys_and_values_load_into_every_framework():
    """A timm ``LayerScale``'s state dict ({'gamma': (C,)}) is the neutral state of
    ``LayerScale(C)``: it loads into each framework's build, which then computes timm's
    output; the spec's default gamma is timm's init_values·ones."""
    torch = pytest.importorskip("torch")
    timm = timm_layer_scale(6, 1e-5)
    with torch.no_grad():
        timm.gamma.mul_(torch.arange(1.0, 7.0))
    state = {k: v.detach().numpy() for k, v in timm.state_dict().items()}
    x = np.random.default_rng(5).standard_normal((2, 5, 6)).astype(np.float32)
    want = timm(torch.from_numpy(x)).detach().numpy()
    for fw in installed():
        built = xinit.build(LayerScale(6), fw, seed=0)
        np.testing.assert_array_equal(xinit.state_dict(built)["gamma"], np.full(6, 1e-5, "f4"))
        xinit.load_state_dict(built, state)
        np.testing.assert_array_equal(np.asarray(xinit.run(built, x)), want, err_msg=fw)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_no_framework_default_is_said(fw):
    """No framework has a layer-scale layer: the lowering says so, and ``apply`` with
    ``Default(framework)`` names why instead of drawing a made-up law."""
    require_backend(fw)
    spec = LayerScale(6)
    assert part(fw, "lowerings").REGISTRY["layer_scale"].default_missing(spec) == NO_LAYER_SCALE
    policy = xinit.Policy(xinit.Rule(xinit.init.Default(fw), param="*"))
    module = xinit.build(spec, fw, seed=0)
    before = xinit.state_dict(module)["gamma"]
    report = xinit.apply(policy, module, seed=1)  # left as it is, the reason said
    assert NO_LAYER_SCALE[0] in report.left["gamma"]
    assert np.array_equal(xinit.state_dict(module)["gamma"], before)


def test_bad_specs_and_inputs_are_refused_naming_the_layer():
    with pytest.raises(SpecError, match="spatial must be 0, 1, 2 or 3"):
        LayerScale(4, spatial=4)
    with pytest.raises(SpecError, match="num_features must be a positive int"):
        LayerScale(0)
    seq = xinit.blocks.Sequential(ls=LayerScale(6))
    with pytest.raises(SpecError, match=r"ls: LayerScale\(6\) scales the last axis"):
        xinit.blocks.infer(seq, (2, 5, 4))
    img = xinit.blocks.Sequential(ls=LayerScale(4, spatial=2))
    with pytest.raises(
        SpecError, match=r"ls: LayerScale\(4, spatial=2\) scales the channels .* \(2, 3, 5, 5\)"
    ):
        xinit.blocks.infer(img, (2, 3, 5, 5))

"""LayerNorm2d (ConvNeXt's channels-first LayerNorm) against what each framework has:
timm's and torchvision's ``LayerNorm2d`` (an ``nn.LayerNorm`` subclass over axis 1, retyped
here as both define it), Paddle's ``nn.LayerNorm`` on the channel-last image, Flax's
``nnx.LayerNorm`` on its channel-last image. Each is read into the right spec where it is one
layer, its weights move into xinit's build in every framework with the native outputs, and
each lowering's default rule is what the framework's own LayerNorm holds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend
from native_kinds import (
    F32_EPS,
    assert_default_is_native,
    assert_transfer_gives_native_outputs,
    randomize,
    read_spec,
    run_native,
)

import xinit
from xinit.layers import LayerNorm, LayerNorm2d, SpecError
from xinit.state import transfer

# float32 rounding: a LayerNorm over C channels is within 2 ulps of the output's scale of the
# float64 result in each framework (measured: flax's fast variance 5.4e-7 at scale 2.5), so
# 8 ulps between two of them leaves room; a norm over the wrong axis is off by O(1).
ULPS = 8


def image(shape=(2, 6, 4, 5), seed=1):
    return (np.random.default_rng(seed).standard_normal(shape) * 3 + 0.5).astype(np.float32)


def reference(x, eps, weight, bias):
    """LayerNorm over axis 1 of (N, C, *) in float64."""
    x = x.astype(np.float64)
    mean = x.mean(1, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(1, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return y * np.reshape(weight, shape) + np.reshape(bias, shape)


def timm_layernorm2d():
    """timm's ``LayerNorm2d`` (timm/layers/norm.py) as it is defined: an ``nn.LayerNorm``
    over the channels of NCHW input (torchvision's convnext.LayerNorm2d is the same)."""
    import torch

    class LayerNorm2d(torch.nn.LayerNorm):
        def __init__(self, num_channels, eps=1e-6, affine=True):
            super().__init__(num_channels, eps=eps, elementwise_affine=affine)

        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = torch.nn.functional.layer_norm(
                x, self.normalized_shape, self.weight, self.bias, self.eps
            )
            return x.permute(0, 3, 1, 2)

    return LayerNorm2d


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_native_weights_give_native_outputs_everywhere(fw):
    """The framework's own channels-first LayerNorm (timm's class in torch; Paddle's and
    Flax's LayerNorm on the channel-last image, xinit's LayerNorm2d build holding the weights)
    gives the float64 result to float32, and its weights moved into every framework's build
    give its output."""
    require_backend(fw)
    x = image()
    if fw == "torch":
        layer = timm_layernorm2d()(6)
        randomize(fw, layer)
        state = xinit.state_dict(layer)
        want = reference(x, 1e-6, state["weight"], state["bias"])
        atol = ULPS * F32_EPS * float(np.abs(want).max())
        np.testing.assert_allclose(run_native(fw, layer, x), want, rtol=0, atol=atol / 2)
        assert_transfer_gives_native_outputs(fw, layer, x, rtol=0, atol=atol)
        return
    # Paddle and Flax have no channels-first LayerNorm: their LayerNorm(C) on the image moved
    # channel-last is one, and the weights come from it through xinit's LayerNorm2d build.
    if fw == "paddle":
        import paddle

        native = paddle.nn.LayerNorm(6, epsilon=1e-6)
    else:
        from flax import nnx

        native = nnx.LayerNorm(6, epsilon=1e-6, rngs=nnx.Rngs(0))
    randomize(fw, native)
    moved = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    want = np.moveaxis(run_native(fw, native, moved), -1, 1)
    state = xinit.state_dict(native)
    ref = reference(x, 1e-6, state["weight"], state["bias"])
    atol = ULPS * F32_EPS * float(np.abs(ref).max())
    np.testing.assert_allclose(want, ref, rtol=0, atol=atol / 2, err_msg=f"{fw} vs float64")
    for dst in FRAMEWORKS:
        built = xinit.build(LayerNorm2d(6), dst, seed=0, rng="xinit")
        xinit.load_state_dict(built, state)
        got = np.asarray(xinit.run(built, x))
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{fw} -> {dst}")


def test_timm_and_torchvision_layernorm2d_are_read_as_this_kind():
    """A ``LayerNorm2d`` subclass of ``nn.LayerNorm`` (timm's, torchvision's) is this kind, so
    Flax's build of it normalises the channels; a plain ``nn.LayerNorm`` stays LayerNorm."""
    torch = pytest.importorskip("torch")
    assert read_spec(timm_layernorm2d()(6)) == LayerNorm2d(6)
    assert read_spec(timm_layernorm2d()(6, eps=1e-5, affine=False)) == LayerNorm2d(6, 1e-5, False)
    assert read_spec(torch.nn.LayerNorm(6)) == LayerNorm(6)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_xinit_builds_are_read_back(fw):
    """xinit's own layer in each framework (none has one) reads back as its spec, and the
    weights of another framework's build move into it exactly."""
    require_backend(fw)
    spec = LayerNorm2d(6, eps=1e-4, bias=False)
    built = xinit.build(spec, fw, seed=0)
    assert read_spec(built) == spec
    src = "paddle" if fw == "torch" else "torch"
    require_backend(src)
    other = xinit.build(spec, src, seed=1, rng="xinit")
    transfer(other, built)
    got = xinit.state_dict(built)
    for key, value in xinit.state_dict(other).items():
        np.testing.assert_array_equal(got[key], value, err_msg=f"{src} -> {fw} {key}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_default_rule_is_the_frameworks_own_layernorm(fw):
    """weight (scale) ones and bias zeros, as each framework's own LayerNorm(C) holds."""
    assert_default_is_native(fw, LayerNorm2d(6), {"weight": 1.0, "bias": 0.0})


def test_bad_inputs_are_refused_naming_the_layer():
    seq = xinit.blocks.Sequential(norm=LayerNorm2d(6))
    with pytest.raises(SpecError, match=r"norm: LayerNorm2d expects 6 input channels; got 5"):
        xinit.blocks.infer(seq, (2, 5, 3, 3))
    with pytest.raises(SpecError, match=r"channels of an \(N, C, \*spatial\) input"):
        xinit.blocks.infer(seq, (2, 6))

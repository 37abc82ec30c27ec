"""InstanceNorm against each framework's own layer: torch ``nn.InstanceNorm{1,2,3}d``
(affine=False by default), Paddle ``nn.InstanceNorm{1,2,3}D`` (``scale``/``bias`` by
default), Flax ``nnx.InstanceNorm`` (channel-last, ``scale``/``bias``). Each is read into the
right spec, its weights move into xinit's build in every framework with the native outputs,
and each lowering's default rule is what the framework's own layer holds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends
from native_kinds import (
    F32_EPS,
    assert_default_is_native,
    assert_transfer_gives_native_outputs,
    randomize,
    read_spec,
    run_native,
)

import xinit
from xinit.layers import InstanceNorm, SpecError
from xinit.native import OwnTensors
from xinit.state import transfer

# float32 rounding: each framework's instance norm is within 2 ulps of the output's scale of
# the float64 result (measured: torch 1.3e-7, paddle 4.2e-7, flax 2.8e-7 at scale 3.4), so
# two of them differ by at most 4; 8 ulps leaves room. A wrong axis or eps is off by far more.
ULPS = 8


def image(shape, seed=1):
    return (np.random.default_rng(seed).standard_normal(shape) * 3 + 0.5).astype(np.float32)


def reference(x: np.ndarray, eps: float, weight=None, bias=None) -> np.ndarray:
    """Instance norm in float64: each sample's channel over its positions, biased variance."""
    x = x.astype(np.float64)
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axes, keepdims=True)
    y = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axes, keepdims=True) + eps)
    if weight is not None:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = y * np.reshape(weight, shape) + np.reshape(bias, shape)
    return y


def native(fw: str, dims: int, affine: bool, eps: float = 1e-5):
    """The framework's own instance norm over 4 channels (Flax's takes any rank)."""
    require_backend(fw)
    if fw == "torch":
        import torch

        cls = getattr(torch.nn, f"InstanceNorm{dims}d")
        return cls(4, eps=eps, affine=affine)
    if fw == "paddle":
        import paddle

        cls = getattr(paddle.nn, f"InstanceNorm{dims}D")
        return cls(4, epsilon=eps, weight_attr=None if affine else False,
                   bias_attr=None if affine else False)  # fmt: skip
    from flax import nnx

    return nnx.InstanceNorm(4, epsilon=eps, use_scale=affine, use_bias=affine, rngs=nnx.Rngs(0))


CASES = {1: (2, 4, 7), 2: (2, 4, 6, 5), 3: (2, 4, 3, 4, 2)}


@pytest.mark.parametrize("dims", sorted(CASES))
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_native_weights_give_native_outputs_everywhere(fw, dims):
    """The native layer (random scale and bias), read and moved into xinit's build in every
    framework: the native output, which is itself the float64 instance norm to float32.
    (``nnx.InstanceNorm`` takes any rank and is read as 2-d: its 1-d and 3-d cases are the
    torch and Paddle ones.)"""
    if fw == "flax" and dims != 2:
        pytest.skip("nnx.InstanceNorm has no rank; it is read as InstanceNorm(dims=2)")
    layer = native(fw, dims, affine=True, eps=1e-3)
    randomize(fw, layer)
    x = image(CASES[dims])
    state = xinit.state_dict(layer)
    want = reference(x, 1e-3, state["weight"], state["bias"])
    atol = ULPS * F32_EPS * float(np.abs(want).max())
    got = run_native(fw, layer, x, channels_last=fw == "flax")
    np.testing.assert_allclose(got, want, rtol=0, atol=atol / 2, err_msg=f"{fw} vs float64")
    assert_transfer_gives_native_outputs(
        fw, layer, x, channels_last=fw == "flax", rtol=0, atol=atol
    )


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_read_gives_the_spec_with_each_frameworks_defaults(fw):
    """Each framework's default instance norm is read with its own defaults: torch without
    weights, Paddle and Flax with scale and bias (Paddle's momentum 0.9 is the neutral 0.1;
    Flax's eps 1e-6 and no rank: read as 2-d)."""
    require_backend(fw)
    if fw == "torch":
        import torch

        assert read_spec(torch.nn.InstanceNorm1d(4)) == InstanceNorm(4, dims=1)
        got = read_spec(torch.nn.InstanceNorm3d(4, eps=1e-3, momentum=0.2, affine=True))
        assert got == InstanceNorm(4, 1e-3, 0.2, affine=True, dims=3)
        tracked = read_spec(torch.nn.InstanceNorm2d(4, track_running_stats=True))
        assert tracked == InstanceNorm(4, track_running_stats=True)
        assert [p.name for p in tracked.params()] == [
            "running_mean",
            "running_var",
            "num_batches_tracked",
        ]
    elif fw == "paddle":
        import paddle

        got = read_spec(paddle.nn.InstanceNorm2D(4))
        assert got == InstanceNorm(4, momentum=0.1, affine=True)
        got = read_spec(paddle.nn.InstanceNorm1D(4, weight_attr=False, bias_attr=False))
        assert got == InstanceNorm(4, momentum=0.1, dims=1)
    else:
        from flax import nnx

        assert read_spec(nnx.InstanceNorm(4, rngs=nnx.Rngs(0))) == InstanceNorm(
            4, 1e-6, affine=True
        )
        lone = nnx.InstanceNorm(4, use_bias=False, rngs=nnx.Rngs(0))
        got = read_spec(lone)  # a scale alone: no neutral InstanceNorm, not guessed
        assert isinstance(got, OwnTensors) and got.module_type == "InstanceNorm"
        assert [t.name for t in got.tensors] == ["scale"]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_default_rule_is_the_frameworks_own(fw):
    """weight (scale) ones and bias zeros, as every framework's own affine instance norm."""
    assert_default_is_native(fw, InstanceNorm(6, affine=True), {"weight": 1.0, "bias": 0.0})


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_running_statistics_follow_pytorchs_in_every_framework(fw):
    """torch's running statistics (track_running_stats=True; Paddle and Flax have no such
    layer of their own, so xinit's) are state: moved from torch, two training steps update
    them as torch's (each sample's statistics, the batch average of their means and unbiased
    variances), and eval mode normalises with them, as torch does."""
    require_backends("torch", fw)
    import torch

    layer = torch.nn.InstanceNorm2d(4, momentum=0.3, affine=True, track_running_stats=True)
    randomize("torch", layer)
    spec = read_spec(layer)
    assert spec == InstanceNorm(4, momentum=0.3, affine=True, track_running_stats=True)
    built = xinit.build(spec, fw, seed=0)
    transfer(layer, built)
    adapter = xinit.backends.backend_of(built)
    for step in range(2):
        x = image((3, 4, 5, 6), seed=10 + step)
        layer.train()
        want = run_native("torch", layer, x)
        got = adapter.run_train(built, x)
        atol = ULPS * F32_EPS * float(np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=f"{fw} train {step}")
    ref, state = xinit.state_dict(layer), xinit.state_dict(built)
    for key in ("running_mean", "running_var"):  # O(1) values, updated twice
        np.testing.assert_allclose(state[key], ref[key], rtol=0, atol=ULPS * F32_EPS * 4)
    layer.eval()
    x = image((2, 4, 5, 6), seed=20)
    want = run_native("torch", layer, x)
    atol = ULPS * F32_EPS * float(np.abs(want).max())
    np.testing.assert_allclose(np.asarray(xinit.run(built, x)), want, rtol=0, atol=atol)


def test_bad_specs_are_refused_naming_the_layer():
    with pytest.raises(SpecError, match="dims must be 1, 2 or 3"):
        InstanceNorm(4, dims=4)
    with pytest.raises(SpecError, match="n: InstanceNorm expects 4 input channels; got 3"):
        xinit.blocks.infer(xinit.blocks.Sequential(n=InstanceNorm(4)), (2, 3, 5, 5))
    with pytest.raises(SpecError, match=r"InstanceNorm expects a 4-d input"):
        xinit.blocks.infer(xinit.blocks.Sequential(n=InstanceNorm(4)), (2, 4, 5))

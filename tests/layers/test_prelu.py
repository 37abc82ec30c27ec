"""PReLU against each framework's own layer: torch ``nn.PReLU`` and Paddle ``nn.PReLU`` (one
slope or one per channel of axis 1, init 0.25), Flax ``nnx.PReLU`` (one 0-d slope, init
0.01; xinit's subclass holds one per channel). Each is read into the right spec, its slopes
move into xinit's build in every framework with the native outputs, and each lowering's
default rule is what the framework's own layer holds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend
from native_kinds import (
    assert_default_is_native,
    assert_transfer_gives_native_outputs,
    randomize,
    read_spec,
)

import xinit
from xinit.layers import PReLU, SpecError
from xinit.native import OwnTensors

# PReLU is max(0, x) + a·min(0, x): one float32 product per element, rounded the same in
# every framework, so the outputs are equal exactly (rtol = atol = 0).
EXACT = dict(rtol=0, atol=0)


def native(fw: str, n: int):
    """The framework's own PReLU with ``n`` slopes (Flax's own has one)."""
    require_backend(fw)
    if fw == "torch":
        import torch

        return torch.nn.PReLU(n)
    if fw == "paddle":
        import paddle

        return paddle.nn.PReLU(n)
    from flax import nnx

    return nnx.PReLU()


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 6), (4, 3)])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_native_slopes_give_native_outputs_everywhere(fw, n, shape):
    """Random slopes in the native layer, read and moved into xinit's build of the read spec
    in every framework: the native output, exactly (images, sequences and vectors)."""
    if fw == "flax" and n > 1:
        pytest.skip("nnx.PReLU has one slope (xinit's per-channel layer: test_flax_per_channel)")
    layer = native(fw, n)
    randomize(fw, layer)
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    assert_transfer_gives_native_outputs(fw, layer, x, **EXACT)


def test_flax_per_channel_slopes_are_pytorchs():
    """xinit's Flax PReLU with one slope per channel (nnx.PReLU has one) computes torch's on a
    channel-first image and sequence, moved channel-last inside."""
    require_backend("flax")
    torch = pytest.importorskip("torch")
    layer = torch.nn.PReLU(3)
    randomize("torch", layer)
    built = xinit.build(PReLU(3), "flax", seed=0)
    xinit.transfer(layer, built)
    for shape in [(2, 3, 4, 5), (2, 3, 6)]:
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        want = layer(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_array_equal(np.asarray(xinit.run(built, x)), want)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_read_gives_the_spec(fw):
    require_backend(fw)
    if fw == "torch":
        import torch

        assert read_spec(torch.nn.PReLU()) == PReLU(1)
        assert read_spec(torch.nn.PReLU(5, init=0.1)) == PReLU(5, 0.1)
    elif fw == "paddle":
        import paddle

        assert read_spec(paddle.nn.PReLU()) == PReLU(1)
        assert read_spec(paddle.nn.PReLU(5, init=0.1)) == PReLU(5, 0.1)
        last = paddle.nn.PReLU(5, data_format="NHWC")  # slopes on the last axis
        got = read_spec(last)  # not guessed as a PReLU: its own tensor, moved as it is
        assert isinstance(got, OwnTensors) and got.module_type == "PReLU"
        assert [t.name for t in got.tensors] == ["_weight"]
    else:
        from flax import nnx

        assert read_spec(nnx.PReLU()) == PReLU(1, 0.01)
        assert read_spec(nnx.PReLU(0.2)) == PReLU(1, 0.01)  # nnx keeps no init: its default
        spec = PReLU(4, 0.3)
        assert read_spec(xinit.build(spec, "flax", seed=0)) == spec


@pytest.mark.parametrize("n", [1, 4])
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_default_rule_is_the_frameworks_own(fw, n):
    """torch and Paddle start every slope at 0.25, Flax's nnx.PReLU at 0.01."""
    if fw == "flax" and n > 1:
        pytest.skip("nnx.PReLU has one slope: no per-channel layer of Flax's own to measure")
    slope = 0.01 if fw == "flax" else 0.25
    assert_default_is_native(fw, PReLU(n), {"weight": slope})


def test_bad_specs_are_refused_naming_the_layer():
    with pytest.raises(SpecError, match="num_parameters must be a positive int"):
        PReLU(0)
    with pytest.raises(SpecError, match="init must be a finite number"):
        PReLU(1, float("nan"))
    seq = xinit.blocks.Sequential(act=PReLU(3))
    with pytest.raises(SpecError, match=r"act: PReLU expects 3 input channels; got 4"):
        xinit.blocks.infer(seq, (2, 4, 5))
    assert xinit.blocks.output_shape(xinit.blocks.Sequential(act=PReLU()), (2, 4, 5)) == (2, 4, 5)

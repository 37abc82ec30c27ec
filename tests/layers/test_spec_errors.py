"""Bad input: a spec that cannot run fails at summary/build time, naming the layer path and the
shapes involved, and nothing is built half-way (no native layer is even constructed)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend

from xinit import build, models, run, summary
from xinit.blocks import Residual, Sequential, check_channels, infer
from xinit.layers import (
    AvgPool,
    BatchNorm,
    Conv,
    ConvTranspose2d,
    Dropout,
    Flatten,
    Linear,
    MaxPool,
    ReLU,
    SpecError,
)


@pytest.fixture
def layers_made(monkeypatch):
    """Counts native layers each adapter constructs (the real method still runs)."""
    counts: dict[str, int] = {}
    for name in FRAMEWORKS:
        ad = require_backend(name)
        original = ad.make_layer

        def counting(layer, device, initial=None, *, _name=name, _original=original):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(layer, device, initial)

        monkeypatch.setattr(ad, "make_layer", counting)
    return counts


def assert_fails_everywhere(spec, input_shape, layers_made, *needles, at_build=True):
    """summary, and build with ``input_shape`` (and without it, when channels alone tell),
    raise a SpecError containing every needle, in every backend, before any layer is made."""
    with pytest.raises(SpecError) as err:
        summary(spec, input_shape)
    message = str(err.value)
    for needle in needles:
        assert needle in message, (needle, message)
    for backend in FRAMEWORKS:
        with pytest.raises(SpecError) as err:
            build(spec, backend, input_shape=input_shape)
        assert str(err.value) == message
        if at_build:  # channel errors need no input size: build itself checks them
            with pytest.raises(SpecError, match=re.escape(needles[0])):
                build(spec, backend)
    assert layers_made == {}, f"layers were built before the error: {layers_made}"
    return message


def test_channel_mismatch_names_path_and_shapes(layers_made):
    spec = Sequential(
        ("stem", Conv(3, 8, 3)),
        ("act", ReLU()),
        ("body", Sequential(("conv", Conv(4, 8, 3)), ("bn", BatchNorm(8)))),
    )
    message = assert_fails_everywhere(
        spec, (1, 3, 16, 16), layers_made, "body.conv", "4 input channels", "(1, 8, 14, 14)"
    )
    assert "got 8" in message
    with pytest.raises(SpecError, match=r"body\.conv: Conv expects 4 input channels but rec"):
        check_channels(spec)


def test_batchnorm_channel_mismatch(layers_made):
    spec = Sequential(("conv", Conv(3, 8, 3)), ("bn", BatchNorm(6)))
    assert_fails_everywhere(spec, (2, 3, 8, 8), layers_made, "bn", "6 input channels", "got 8")


def test_linear_feature_mismatch_in_lenet():
    """LeNet on 28x28 instead of 32x32: the first Linear sees 256 features, not 400."""
    with pytest.raises(SpecError) as err:
        summary(models.lenet(), (1, 3, 28, 28))
    assert str(err.value).startswith("fc1: ")
    assert "400 input features; got 256" in str(err.value) and "(1, 256)" in str(err.value)


def test_zoo_model_wrong_input_channels(layers_made):
    spec = models.resnet18()
    with pytest.raises(SpecError, match=r"^conv1: .*3 input channels; got 1 .*\(1, 1, 64, 64\)"):
        build(spec, "torch", input_shape=(1, 1, 64, 64))
    assert layers_made == {}


def test_kernel_larger_than_padded_input(layers_made):
    spec = Sequential(Conv(3, 8, 3), ReLU(), Conv(8, 8, 9, padding=1))
    assert_fails_everywhere(
        spec, (1, 3, 8, 8), layers_made, "2: ", "(9, 9)", "(1, 8, 6, 6)", at_build=False
    )
    x = np.zeros((1, 3, 16, 16), np.float32)  # large enough for the 9x9 kernel
    want = infer(spec, x.shape)[-1].output_shape
    for backend in FRAMEWORKS:  # without an input size build cannot know; with one it refuses
        assert run(build(spec, backend), x).shape == want == (1, 8, 8, 8)


def test_dilated_kernel_larger_than_input(layers_made):
    spec = Sequential(("a", Sequential(("conv", Conv(3, 4, 3, dilation=4)))))
    assert_fails_everywhere(
        spec, (1, 3, 8, 8), layers_made, "a.conv", "dilation (4, 4)", "(1, 3, 8, 8)", at_build=False
    )


def test_pool_kernel_larger_than_input(layers_made):
    spec = Sequential(("conv", Conv(1, 2, 3)), ("pool", MaxPool(4)))
    assert_fails_everywhere(
        spec, (1, 1, 5, 5), layers_made, "pool", "(4, 4)", "(1, 2, 3, 3)", at_build=False
    )


def test_groups_must_divide_channels():
    with pytest.raises(SpecError, match="groups=4 does not divide in_channels=6"):
        Conv(6, 8, 3, groups=4)
    with pytest.raises(SpecError, match="groups=3 does not divide out_channels=8"):
        Conv(6, 8, 3, groups=3)
    with pytest.raises(SpecError, match="does not divide"):
        ConvTranspose2d(4, 6, 3, groups=4)


def test_residual_channels_differ_at_build(layers_made):
    block = Residual(Sequential(("conv1", Conv(8, 16, 1)), ("bn1", BatchNorm(16))))
    spec = Sequential(("stem", Conv(3, 8, 3, padding=1)), ("block", block))
    assert_fails_everywhere(
        spec, (1, 3, 8, 8), layers_made, "block", "residual branches differ", "(1, 16, 8, 8)"
    )
    with pytest.raises(SpecError, match="block: residual branches differ: body gives 16 channels"):
        check_channels(spec)


def test_residual_spatial_shapes_differ(layers_made):
    """Same channels, different strides: only an input size reveals it; build refuses then."""
    body = Sequential(("conv1", Conv(8, 8, 3, stride=2, padding=1)), ("bn1", BatchNorm(8)))
    spec = Sequential(("layer", Sequential(Residual(body))))
    message = assert_fails_everywhere(
        spec,
        (1, 8, 8, 8),
        layers_made,
        "layer.0",
        "body gives (1, 8, 4, 4)",
        "identity gives (1, 8, 8, 8)",
        at_build=False,
    )
    assert message.startswith("layer.0: ")
    wrong_shortcut = Residual(body, shortcut=Sequential(Conv(8, 8, 1), BatchNorm(8)))
    with pytest.raises(SpecError, match=r"<root>: .*shortcut gives \(1, 8, 8, 8\)"):
        infer(wrong_shortcut, (1, 8, 8, 8))


def test_linear_needs_flatten():
    """Linear acts on the last dim (as torch's): a 4-d input whose last dim is not its
    in_features is refused, naming the shape and suggesting a Flatten."""
    spec = Sequential(("conv", Conv(3, 4, 3)), ("fc", Linear(4, 2)))
    with pytest.raises(
        SpecError, match=r"^fc: Linear expects 4 input features in the last dim; got 6 .*Flatten"
    ):
        summary(spec, (1, 3, 8, 8))


def test_wrong_rank_names_layer():
    spec = Sequential(("conv", Conv(3, 4, 3, dims=1)))
    with pytest.raises(SpecError, match=r"^conv: Conv expects a 3-d input .*\(1, 3, 8, 8\)"):
        summary(spec, (1, 3, 8, 8))


def test_unknown_zoo_model(capsys):
    with pytest.raises(KeyError, match="unknown zoo model 'resnet19'.*resnet18"):
        models.get("resnet19")
    from xinit.cli import main

    assert main(["summary", "resnet19"]) == 2
    err = capsys.readouterr().err
    assert "unknown zoo model 'resnet19'" in err and "resnet45" in err


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Sequential(("a", Conv(3, 4, 3)), ("a", Conv(4, 4, 3))), "repeats"),
        (lambda: Sequential(("a.b", ReLU())), "without '.'"),
        (lambda: Sequential(("x", 3)), "not a spec"),
        (lambda: Residual(Conv(3, 3, 1)), "must be a Sequential"),
        (
            lambda: Residual(Sequential(("downsample", ReLU())), shortcut=ReLU()),
            "is a body child",
        ),
        (lambda: BatchNorm(4, momentum=1.5), "momentum"),
        (lambda: BatchNorm(0), "positive int"),
        (
            lambda: BatchNorm(4, train_stats="pytorch"),
            r"train_stats must be one of \('native', 'torch'\)",
        ),
        (lambda: Dropout(1.0), r"\[0, 1\)"),
        (lambda: MaxPool(3, 2, 2), "at most half the kernel"),
        (lambda: AvgPool(0), ">= 1"),
        (lambda: Conv(3, 4, (3, 3, 3, 3)), "1 to 3 spatial dims"),
        (lambda: Conv(3, 4, (3, 3), stride=(1, 1, 1)), "tuple of 2 ints"),
        (lambda: Conv(3, 4, 3, padding=-1), "padding must be >= 0"),
        (lambda: ConvTranspose2d(4, 4, 3, stride=2, output_padding=2), "output_padding"),
    ],
)
def test_invalid_layer_arguments(make, match):
    with pytest.raises(SpecError, match=match):
        make()


def test_a_valid_spec_still_builds(layers_made):
    """The counting fixture itself works: a valid spec builds every layer once and runs."""
    spec = Sequential(Conv(3, 4, 3), ReLU(), Flatten(), Linear(4 * 6 * 6, 2))
    module = build(spec, "torch", input_shape=(1, 3, 8, 8))
    assert layers_made == {"torch": 4}
    assert run(module, np.zeros((1, 3, 8, 8), np.float32)).shape == (1, 2)

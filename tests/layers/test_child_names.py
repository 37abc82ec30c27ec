"""Any child name PyTorch accepts builds in every framework: the containers keep their own
bookkeeping under private names, so children called ``shortcut``, ``body``, ``activation``
or ``steps`` (seed 002's ResNet18_2D names its projection ``shortcut``) are plain children."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend

import xinit
from xinit.blocks import Residual, Sequential
from xinit.layers import BatchNorm, Conv, ReLU
from xinit.state import state_dict, transfer


def block(shortcut: str, activation: str, first: str = "body", second: str = "steps"):
    """A projection block whose children carry the containers' former attribute names."""
    body = Sequential({first: Conv(3, 4, 3, stride=2, padding=1), second: BatchNorm(4)})
    return Residual(
        body,
        shortcut=Sequential(Conv(3, 4, 1, stride=2), BatchNorm(4)),
        shortcut_name=shortcut,
        activation=ReLU(),
        activation_name=activation,
    )


NAMES = [("shortcut", "activation"), ("body", "steps"), ("activation", "shortcut")]


@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("shortcut,activation", NAMES)
def test_container_attribute_names_are_free_child_names(backend, shortcut, activation):
    require_backend(backend)
    first, second = ("conv", "bn") if "body" in (shortcut, activation) else ("body", "steps")
    spec = Sequential(
        {"steps": block(shortcut, activation, first, second), "activation": ReLU(), "body": ReLU()}
    )
    module = xinit.build(spec, backend, seed=0, rng="xinit")
    keys = list(state_dict(module))
    assert f"steps.{first}.weight" in keys
    assert f"steps.{shortcut}.0.weight" in keys
    assert f"steps.{shortcut}.1.running_mean" in keys
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = xinit.run(module, x)
    assert y.shape == (2, 4, 4, 4)
    assert (y >= 0).all() and (y > 0).any()


def test_renamed_children_agree_across_frameworks():
    for name in FRAMEWORKS:
        require_backend(name)
    spec = Sequential({"steps": block("shortcut", "activation")})
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    mods = {b: xinit.build(spec, b, seed=3, rng="xinit") for b in FRAMEWORKS}
    ref = xinit.run(mods["torch"], x)
    for b in FRAMEWORKS[1:]:
        np.testing.assert_allclose(xinit.run(mods[b], x), ref, rtol=1e-4, atol=1e-5)
    fresh = xinit.build(spec, "paddle", seed=9, rng="xinit")
    transfer(mods["flax"], fresh)
    np.testing.assert_allclose(xinit.run(fresh, x), ref, rtol=1e-4, atol=1e-5)

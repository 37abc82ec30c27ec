"""Flax holds images channel-last and sequences (N, L, D) as they are: a sequence model takes
its input unchanged, a patch embedding turns an image into a sequence, and every traced
output comes back in the neutral layout, equal to PyTorch's."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backends

import xinit
from xinit.backends import backend_of
from xinit.blocks import Sequential
from xinit.graph import Graph
from xinit.layers import (
    GELU,
    Concat,
    Conv,
    Flatten,
    LayerNorm,
    Linear,
    MultiheadAttention,
    Permute,
    ReLU,
)

# float32: each output is a few sums of at most a few hundred products of O(1) terms, each
# framework summing in its own order: agreement to ~1e-6 relative; a misplaced axis is O(1).
RTOL, ATOL = 2e-5, 2e-6


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


SEQUENCE = Sequential(
    {
        "norm": LayerNorm(16),
        "attn": MultiheadAttention(16, 4),
        "fc1": Linear(16, 32),
        "act": GELU(),
        "fc2": Linear(32, 16),
    }
)

# a ViT-style stem: conv patches, flatten(2) + transpose(1, 2) into (N, L, D), then tokens
PATCHES = Sequential(
    {
        "proj": Conv(3, 8, 4, stride=4),
        "flat": Flatten(start_dim=2),
        "seq": Permute((0, 2, 1)),
        "norm": LayerNorm(8),
        "fc": Linear(8, 8),
    }
)

# an image branch and a sequence branch meeting in a concat along the sequence
MIXED = Graph(
    {
        "proj": (Conv(3, 8, 4, stride=4), "img"),
        "flat": Flatten(start_dim=2),
        "seq": Permute((0, 2, 1)),
        "tok": (Linear(8, 8), "tokens"),
        "cat": (Concat(dim=1), ("seq", "tok")),
        "norm": LayerNorm(8),
        "relu": ReLU(),
    },
    inputs=("img", "tokens"),
)


def trace(module, x):
    """Every layer's output of a module, neutral layout, by path (the adapters' trace)."""
    return backend_of(module).trace(module, x)


def _flax_build(spec):
    require_backends("torch", "flax")
    return xinit.build(spec, "flax", rng="xinit", seed=3), xinit.build(
        spec, "torch", rng="xinit", seed=3
    )


def test_a_sequence_model_takes_n_l_d_as_it_is_in_flax():
    fx, tm = _flax_build(SEQUENCE)  # skips unless torch and flax are installed
    import jax.numpy as jnp

    x = rand(2, 5, 16)
    want = xinit.run(tm, x)
    direct = np.asarray(fx(jnp.asarray(x)))  # no axis moved: Flax's own (N, L, D)
    np.testing.assert_allclose(direct, want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(xinit.run(fx, x), want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("spec", [SEQUENCE, PATCHES], ids=["sequence", "patches"])
def test_every_traced_output_is_neutral_and_equal_to_torch(spec):
    fx, tm = _flax_build(spec)
    x = rand(2, 5, 16) if spec is SEQUENCE else rand(2, 3, 16, 16)
    got, want = trace(fx, x), trace(tm, x)
    assert set(got) == set(want)
    for path in want:
        assert got[path].shape == want[path].shape, path
        np.testing.assert_allclose(got[path], want[path], rtol=RTOL, atol=ATOL, err_msg=path)


def test_an_image_model_still_takes_nhwc_directly():
    fx, tm = _flax_build(PATCHES)  # skips unless torch and flax are installed
    import jax.numpy as jnp

    x = rand(2, 3, 16, 16)
    direct = np.asarray(fx(jnp.asarray(np.moveaxis(x, 1, -1))))  # Flax's NHWC image in
    np.testing.assert_allclose(direct, xinit.run(tm, x), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="channel-last"):
        fx(jnp.asarray(x))


def test_a_graph_mixing_images_and_sequences():
    fx, tm = _flax_build(MIXED)
    xs = (rand(2, 3, 8, 8), rand(2, 3, 8, seed=1))
    want = xinit.run(tm, xs)
    assert want.shape == (2, 4 + 3, 8)
    np.testing.assert_allclose(xinit.run(fx, xs), want, rtol=RTOL, atol=ATOL)
    got, ref = trace(fx, xs), trace(tm, xs)
    for path in ref:
        np.testing.assert_allclose(got[path], ref[path], rtol=RTOL, atol=ATOL, err_msg=path)


def test_a_native_flax_sequence_model_traces_in_its_own_layout():
    """A model xinit did not build: Dense and attention outputs are sequences, not images."""
    require_backends("flax")
    import jax.numpy as jnp
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, rngs):
            self.norm = nnx.LayerNorm(12, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(3, 12, decode=False, rngs=rngs)
            self.fc = nnx.Linear(12, 6, rngs=rngs)

        def __call__(self, x):
            h = self.norm(x)
            return self.fc(x + self.attn(h, deterministic=True))

    m = Block(nnx.Rngs(0))
    x = rand(2, 7, 12)
    got = trace(m, x)
    h = m.norm(jnp.asarray(x))
    np.testing.assert_allclose(got["norm"], np.asarray(h), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got[""], np.asarray(m(jnp.asarray(x))), rtol=RTOL, atol=ATOL)
    assert got["attn"].shape == (2, 7, 12) and got["fc"].shape == (2, 7, 6)

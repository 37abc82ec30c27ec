"""Parity cases with realistic numbers, shared by tests/parity/test_parity_verdict.py and
tools/parity_ratios.py: deep models whose BatchNorm statistics come from a training-mode
pass on image-like inputs, ported correctly between frameworks or with one planted fault.

A planted fault is a slip a porter could make, put into one framework's live model: a
BatchNorm or LayerNorm eps, one conv output channel scaled by 1 + 1e-3, a square Linear
transposed, GELU exact for tanh, Paddle's ``downscale_in_infer`` Dropout, bilinear
``align_corners`` flipped. Each names the layer where parity must first FAIL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

import xinit
from xinit import layers as L
from xinit import models
from xinit.backends import backend_of
from xinit.blocks import Sequential
from xinit.state import load_state_dict, state_dict, transfer
from xinit.transformer import TransformerEncoder, TransformerEncoderLayer


def images(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Image-like input (N, C, H, W): smooth random fields (correlated neighbours, as in
    photographs) per channel, a per-image brightness, normalised to about unit std."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal(shape), sigma=(0, 0, 2, 2))
    x /= x.std(axis=(2, 3), keepdims=True)
    x += rng.normal(0.0, 0.5, (shape[0], 1, 1, 1))
    return x.astype(np.float32)


def sequences(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Sequence input (N, L, D): smooth along L, as embedded tokens of a sentence vary."""
    rng = np.random.default_rng(seed)
    x = gaussian_filter(rng.standard_normal(shape), sigma=(0, 1.5, 0))
    return (x / x.std()).astype(np.float32)


def tokens(shape: tuple[int, ...], seed: int, vocab: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, vocab, shape)


def segmenter() -> Sequential:
    """A small segmentation head: conv-BN-ReLU twice, bilinear 2x upsampling, a 1x1 conv."""
    return Sequential(
        {
            "conv1": L.Conv(3, 16, 3, padding=1, bias=False),
            "bn1": L.BatchNorm(16),
            "relu1": L.ReLU(),
            "conv2": L.Conv(16, 16, 3, stride=2, padding=1, bias=False),
            "bn2": L.BatchNorm(16),
            "relu2": L.ReLU(),
            "up": L.Upsample(scale_factor=2, mode="bilinear"),
            "head": L.Conv(16, 4, 1),
        }
    )


def encoder():
    """A 2-layer post-norm Transformer encoder (PyTorch's), dropout 0.1, GELU."""
    layer = TransformerEncoderLayer(64, 4, 128, dropout=0.1, activation="gelu")
    return TransformerEncoder(layer, 2)


@dataclass(frozen=True)
class Case:
    """A model, how to make its calibration and comparison inputs, and its input size."""

    name: str
    spec: Callable[[], Any]
    inputs: Callable[[int], Any]  # seed -> input


CASES = {
    "resnet45": Case("resnet45", models.resnet45, lambda s: images((2, 3, 32, 64), s)),
    "crnn": Case(
        "crnn",
        lambda: models.crnn(width=0.5, hidden_size=64),
        lambda s: images((4, 3, 32, 64), s),
    ),
    "gpt2": Case(
        "gpt2",
        lambda: models.gpt2(n_layer=2, n_head=4, n_embd=64, vocab_size=500, n_positions=64),
        lambda s: tokens((2, 24), s, 500),
    ),
    "encoder": Case("encoder", encoder, lambda s: sequences((2, 16, 64), s)),
    "segmenter": Case("segmenter", segmenter, lambda s: images((4, 3, 32, 32), s)),
    # the deep ones (slow)
    "resnet152": Case("resnet152", models.resnet152, lambda s: images((2, 3, 64, 64), s)),
    "vit_base": Case(
        "vit_base", models.vit_base_patch16_224, lambda s: images((1, 3, 224, 224), s)
    ),
    "gpt2_12": Case(
        "gpt2_12",
        lambda: models.gpt2(n_layer=12, vocab_size=1000, n_positions=64),
        lambda s: tokens((1, 32), s, 1000),
    ),
}


def ported(case: Case, frameworks: tuple[str, ...], seed: int = 0) -> dict[str, Any]:
    """The case's model built in ``frameworks[0]``, BatchNorm affine parameters random and
    running statistics calibrated on a training-mode pass, then moved into the others."""
    spec = case.spec()
    first = xinit.build(spec, frameworks[0], seed=seed, rng="xinit")
    xinit.randomize_batchnorm(first, seed=seed + 1)
    xinit.calibrate_batchnorm(first, case.inputs(seed + 100))
    mods = {frameworks[0]: first}
    for name in frameworks[1:]:
        mods[name] = xinit.build(spec, name, seed=seed + 2, rng="xinit")
        transfer(first, mods[name])
    return mods


# ---- planted faults -------------------------------------------------------------------------
def layer(module, path: str):
    """The live layer at ``path`` of a torch or paddle module."""
    if backend_of(module).name == "torch":
        return module.get_submodule(path)
    return dict(module.named_sublayers(include_self=True))[path]


def _edit_state(module, key: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    state = state_dict(module)
    state[key] = np.ascontiguousarray(change(state[key]))
    load_state_dict(module, state)


def bn_eps(module, path):
    """BatchNorm eps 1e-3 where the original has 1e-5."""
    bn = layer(module, path)
    setattr(bn, "eps" if hasattr(bn, "eps") else "_epsilon", 1e-3)


def ln_eps(module, path):
    """LayerNorm eps 1e-6 where the original has 1e-5."""
    ln = layer(module, path)
    setattr(ln, "eps" if hasattr(ln, "eps") else "_epsilon", 1e-6)


def conv_channel(module, path):
    """One output channel of a conv weight scaled by 1 + 1e-3."""

    def scale(w):
        w = w.copy()
        w[w.shape[0] // 2] *= np.float32(1 + 1e-3)
        return w

    _edit_state(module, f"{path}.weight", scale)


def linear_transposed(module, path):
    """A square Linear weight transposed (the one slip a shape check cannot see)."""
    _edit_state(module, f"{path}.weight", lambda w: w.T)


def gelu_exact(module, path):
    """GELU computed exactly where the original uses the tanh approximation."""
    act = layer(module, path)
    if hasattr(act, "approximate"):
        act.approximate = "none"
    else:
        act._approximate = False


def paddle_dropout(module, path):
    """Paddle's Dropout(mode="downscale_in_infer") for PyTorch's: x (1 - p) at inference."""
    import paddle

    parent, _, name = path.rpartition(".")
    holder = layer(module, parent) if parent else module
    setattr(holder, name, paddle.nn.Dropout(layer(module, path).p, mode="downscale_in_infer"))


def align_corners(module, path):
    """Bilinear upsampling with align_corners flipped."""
    up = layer(module, path)
    if hasattr(up, "spec"):  # xinit's Paddle Upsample
        up.spec = dataclasses.replace(up.spec, align_corners=not up.spec.align_corners)
    else:
        up.align_corners = not up.align_corners


# (case, fault, layer path, the framework that gets it)
FAULTS = [
    ("resnet45", bn_eps, "layer3.2.bn1", "paddle"),
    ("resnet45", conv_channel, "layer4.1.conv2", "torch"),
    ("crnn", bn_eps, "backbone.conv4.bn", "torch"),
    ("crnn", conv_channel, "backbone.conv3.conv", "flax"),
    ("gpt2", linear_transposed, "h.1.attn.c_proj", "paddle"),
    ("gpt2", gelu_exact, "h.0.mlp.act", "torch"),
    ("gpt2", ln_eps, "h.1.ln_2", "paddle"),
    ("encoder", paddle_dropout, "layers.1.dropout1", "paddle"),
    ("encoder", ln_eps, "layers.0.norm1", "torch"),
    ("segmenter", align_corners, "up", "paddle"),
]

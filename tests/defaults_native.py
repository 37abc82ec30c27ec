"""The frameworks' own default layers, built directly (``torch.nn.Conv2d(...)``,
``paddle.nn.Conv2D``, ``nnx.Conv``), never through xinit, under fixed seeds: what the
``test_defaults_*`` files measure the catalogue (``xinit.defaults``) against. ``CASES`` are
the catalogue layers measured, by tag; shapes picked so torch's random biases reach N_MIN in
a few hundred draws."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from stats_helpers import N_MIN

from xinit import defaults as D
from xinit.graph import Graph

N_CAP = 100_000  # elements per parameter kept for the statistics (>= N_MIN)


CASES = {  # tag -> the catalogue layer (a spec, or a block's graph)
    "64x4096": D.layer_spec("linear", 64, 4096),
    "37x3000": D.layer_spec("linear", 37, 3000),
    "32x1024k5": D.layer_spec("conv1d", 32, 1024, 5),
    "16x1024k3": D.layer_spec("conv2d", 16, 1024, 3),
    "64x128k3g4": D.layer_spec("conv2d", 64, 128, 3, groups=4),
    "dw256k3": D.layer_spec("depthwise_conv2d", 256, 256, 3),
    "8x1024k3g2": D.layer_spec("conv3d", 8, 1024, 3, groups=2),
    "32x256k3": D.layer_spec("conv_transpose2d", 32, 256, 3),
    "64x1024k3g4t": D.layer_spec("conv_transpose2d", 64, 1024, 3, groups=4),
    "1000x64": D.layer_spec("embedding", 1000, 64),
    "50x512": D.layer_spec("embedding", 50, 512),
    "bn64": D.layer_spec("batchnorm", 64),
    "ln64": D.layer_spec("layernorm", 64),
    "gn64": D.layer_spec("groupnorm", 64, groups=8),
    "rms64": D.layer_spec("rmsnorm", 64),
    "e256h8": D.layer_spec("multihead_attention", 256, heads=8),
    "e96h4": D.layer_spec("multihead_attention", 96, heads=4),
    # blocks: torch's random biases (d_model 128 each) reach N_MIN in 469 layers
    "enc128h4f512": D.layer_spec("transformer_encoder_layer", 128, 512, heads=4),
    "dec128h4f512": D.layer_spec("transformer_decoder_layer", 128, 512, heads=4),
    "lstm64x256": D.layer_spec("lstm", 64, 256),
    "gru48x256": D.layer_spec("gru", 48, 256),
}


def _numbers(d: Any) -> tuple:
    """(in, out, kernel, groups, heads) of a catalogue layer, read from its spec's fields."""
    n = D.layer_numbers(d)
    return n["in"], n["out"], tuple(n["kernel"]), n["groups"], n["heads"]


def _torch_layer(d):
    import torch.nn as nn

    i, o, k, g, h = _numbers(d)
    return {
        "linear": lambda: nn.Linear(i, o),
        "conv1d": lambda: nn.Conv1d(i, o, k, groups=g),
        "conv2d": lambda: nn.Conv2d(i, o, k, groups=g),
        "conv3d": lambda: nn.Conv3d(i, o, k, groups=g),
        "conv_transpose2d": lambda: nn.ConvTranspose2d(i, o, k, groups=g),
        "embedding": lambda: nn.Embedding(i, o),
        "batchnorm": lambda: nn.BatchNorm2d(i),
        "layernorm": lambda: nn.LayerNorm(i),
        "groupnorm": lambda: nn.GroupNorm(g, i),
        "rmsnorm": lambda: nn.RMSNorm(i),
        "multihead_attention": lambda: nn.MultiheadAttention(i, h),
        "lstm": lambda: nn.LSTM(i, o),
        "gru": lambda: nn.GRU(i, o),
    }[D.layer_name(d)]()


def _paddle_layer(d):
    import paddle.nn as nn

    i, o, k, g, h = _numbers(d)
    k = list(k)
    return {
        "linear": lambda: nn.Linear(i, o),
        "conv1d": lambda: nn.Conv1D(i, o, k, groups=g),
        "conv2d": lambda: nn.Conv2D(i, o, k, groups=g),
        "conv3d": lambda: nn.Conv3D(i, o, k, groups=g),
        "conv_transpose2d": lambda: nn.Conv2DTranspose(i, o, k, groups=g),
        "embedding": lambda: nn.Embedding(i, o),
        "batchnorm": lambda: nn.BatchNorm2D(i),
        "layernorm": lambda: nn.LayerNorm(i),
        "groupnorm": lambda: nn.GroupNorm(g, i),
        "multihead_attention": lambda: nn.MultiHeadAttention(i, h),
        "lstm": lambda: nn.LSTM(i, o),
        "gru": lambda: nn.GRU(i, o),
    }[D.layer_name(d)]()


def _flax_layer(d, rngs):
    from flax import nnx

    i, o, k, g, h = _numbers(d)
    return {
        "linear": lambda: nnx.Linear(i, o, rngs=rngs),
        "conv1d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv2d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv3d": lambda: nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs),
        "conv_transpose2d": lambda: nnx.ConvTranspose(i, o, k, rngs=rngs),
        "embedding": lambda: nnx.Embed(i, o, rngs=rngs),
        "batchnorm": lambda: nnx.BatchNorm(i, rngs=rngs),
        "layernorm": lambda: nnx.LayerNorm(i, rngs=rngs),
        "groupnorm": lambda: nnx.GroupNorm(i, num_groups=g, rngs=rngs),
        "rmsnorm": lambda: nnx.RMSNorm(i, rngs=rngs),
        "multihead_attention": lambda: nnx.MultiHeadAttention(h, i, rngs=rngs),
        "lstm": lambda: nnx.LSTMCell(i, o, rngs=rngs),
        "gru": lambda: nnx.GRUCell(i, o, rngs=rngs),
    }[D.layer_name(d)]()


def _linen_params(d, seed: int) -> dict[str, np.ndarray]:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    i, o, k, g, _ = _numbers(d)
    name = D.layer_name(d)
    if name == "linear":
        m, x = nn.Dense(o), jnp.ones((1, i))
    elif name == "conv2d":
        m, x = nn.Conv(o, k, feature_group_count=g), jnp.ones((1, 8, 8, i))
    elif name == "conv_transpose2d":
        m, x = nn.ConvTranspose(o, k), jnp.ones((1, 8, 8, i))
    else:
        m, x = nn.Embed(i, o), jnp.zeros((1,), jnp.int32)
    variables = m.init(jax.random.key(seed), x)
    return {name: np.asarray(v) for name, v in variables["params"].items()}


def native_state(framework: str, d, seed: int) -> dict[str, np.ndarray]:
    """One native default layer's state: native names, native layout."""
    if isinstance(d, Graph):
        return block_state(framework, d, seed)
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        return {n: t.detach().numpy() for n, t in _torch_layer(d).state_dict().items()}
    if framework == "paddle":
        import paddle

        paddle.seed(seed)
        state = {n: np.array(t.numpy()) for n, t in _paddle_layer(d).state_dict().items()}
        if d.kind in ("lstm", "gru"):  # each tensor twice: "weight_ih_l0" is "0.cell.weight_ih"
            for name in [n for n in state if ".cell." not in n]:
                leaf = name.rsplit("_l0", 1)[0]
                np.testing.assert_array_equal(state.pop(name), state[f"0.cell.{leaf}"])
        return state
    if framework == "flax_linen":
        return _linen_params(d, seed)
    from flax import nnx

    module = _flax_layer(d, nnx.Rngs(seed))
    return {
        ".".join(map(str, path)): np.asarray(v.get_value())
        for path, v in nnx.to_flat_state(nnx.state(module))
    }


_CACHE: dict[tuple[str, str], dict[str, np.ndarray]] = {}


def measured(framework: str, tag: str) -> dict[str, np.ndarray]:
    """Enough independent native layers that each random parameter has >= N_MIN elements
    (as the catalogue sizes them), concatenated per native name (up to N_CAP elements)."""
    key = (framework, tag)
    if key in _CACHE:
        return _CACHE[key]
    d = CASES[tag]
    catalogue_fw = "flax" if framework == "flax_linen" else framework
    sizes = [
        math.prod(e.native_shape)
        for e in D.catalogue(d, frameworks=(catalogue_fw,))
        if e.distribution is not None and e.distribution.random
    ]
    draws = max([math.ceil(N_MIN / n) for n in sizes] or [1])
    chunks: dict[str, list[np.ndarray]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(draws):
        for name, value in native_state(framework, d, 1000 + i).items():
            shapes[name] = value.shape
            have = sum(c.size for c in chunks.get(name, []))
            if have < N_CAP:
                chunks.setdefault(name, []).append(value.ravel())
    out = {name: np.concatenate(c) for name, c in chunks.items()}
    out["__shapes__"] = shapes  # type: ignore[assignment]
    _CACHE[key] = out
    return out


def block_state(framework: str, d, seed: int) -> dict[str, np.ndarray]:
    """The framework's own transformer layer (or nn.Transformer, one layer per stack) for block
    ``d``, built directly under ``seed``: its state, native names and layout."""
    e, f, _, _, h = _numbers(d)
    name = D.layer_name(d)
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        nn = torch.nn
        if name == "transformer":
            m = nn.Transformer(e, h, 1, 1, f, batch_first=True)
        elif name == "transformer_encoder_layer":
            m = nn.TransformerEncoderLayer(e, h, f, batch_first=True)
        else:
            m = nn.TransformerDecoderLayer(e, h, f, batch_first=True)
        return {n: t.detach().numpy() for n, t in m.state_dict().items()}
    import paddle

    paddle.seed(seed)
    nn = paddle.nn
    if name == "transformer":
        m = nn.Transformer(e, h, 1, 1, f)
    elif name == "transformer_encoder_layer":
        m = nn.TransformerEncoderLayer(e, h, f)
    else:
        m = nn.TransformerDecoderLayer(e, h, f)
    return {n: np.array(t.numpy()) for n, t in m.state_dict().items()}


def param_of(layer, name):
    return next(p for p in layer.params() if p.name == name)


def draw_native(framework, d, native_name, n_min):
    out, i = [], 0
    while sum(a.size for a in out) < n_min:
        out.append(native_state(framework, d, 5000 + i)[native_name].ravel())
        i += 1
    return np.concatenate(out)

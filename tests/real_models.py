"""Real models of torchvision, timm and paddle.vision (randomly initialised, nothing
downloaded), and a Flax NNX ViT and LSTM classifier written here as a Flax user would, for
tests/models/test_real_models.py. torchvision and timm are optional: the cases skip without them
(``./dev.sh`` installs them beside the pinned torch, ``--no-deps``)."""

from __future__ import annotations

import importlib
import sys
import types

import pytest


def vision(name: str):
    """``torchvision`` or ``timm``, or skip. torchvision's ``_meta_registrations`` registers
    kernels for a torch other than the pinned one: a stub stands in before the first import."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("stub"))
    try:
        return importlib.import_module(name)
    except ImportError as err:
        pytest.skip(f"{name} is not installed ({err}): pip install --no-deps torchvision timm")


def torchvision_small(name: str):
    """torchvision's own classes at small sizes: the same module classes as the named model,
    with fewer and thinner blocks, so a CPU test runs in a second."""
    tv = vision("torchvision")
    models = tv.models
    if name == "vit_small":
        return models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
    if name == "swin_small":
        return models.SwinTransformer([4, 4], 16, [2, 2], [1, 2], [4, 4], num_classes=10)
    if name == "swin_v2_small":
        return models.swin_transformer.SwinTransformer(
            [4, 4],
            16,
            [2, 2],
            [1, 2],
            [4, 4],
            num_classes=10,
            block=models.swin_transformer.SwinTransformerBlockV2,
            downsample_layer=models.swin_transformer.PatchMergingV2,
        )
    if name == "maxvit_small":
        return models.MaxVit((32, 32), 8, 2, [8, 16], [1, 1], 4, 0.0, num_classes=10)
    if name == "convnext_small":
        cfg = models.convnext.CNBlockConfig
        return models.ConvNeXt([cfg(8, 16, 1), cfg(16, None, 1)], num_classes=10)
    return getattr(models, name)(weights=None)


def timm_model(name: str):
    """A timm model, random init (``pretrained=False``)."""
    return vision("timm").create_model(name, pretrained=False)


def paddle_model(name: str):
    import paddle

    return getattr(paddle.vision.models, name)(pretrained=False)


def flax_vit(seed: int):
    """A small ViT in Flax NNX as a user writes one: a patch conv, a class token and position
    table held by the model itself (``nnx.Param``), pre-norm blocks of ``nnx.MultiHeadAttention``
    and an MLP, an ``nnx.LinearGeneral`` head on the class token."""
    import jax.numpy as jnp
    from flax import nnx

    class Block(nnx.Module):
        def __init__(self, dim: int, rngs: nnx.Rngs):
            self.norm1 = nnx.LayerNorm(dim, rngs=rngs)
            self.attn = nnx.MultiHeadAttention(2, dim, decode=False, rngs=rngs)
            self.norm2 = nnx.LayerNorm(dim, rngs=rngs)
            self.fc1 = nnx.Linear(dim, 2 * dim, rngs=rngs)
            self.fc2 = nnx.Linear(2 * dim, dim, rngs=rngs)

        def __call__(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.fc2(nnx.gelu(self.fc1(self.norm2(x))))

    class ViT(nnx.Module):
        def __init__(self, rngs: nnx.Rngs, dim: int = 16, patches: int = 64):
            self.patch = nnx.Conv(3, dim, (4, 4), strides=(4, 4), rngs=rngs)
            self.cls_token = nnx.Param(jnp.zeros((1, 1, dim)))
            table = nnx.initializers.normal(0.02)(rngs.params(), (1, patches + 1, dim))
            self.pos_embed = nnx.Param(table)
            self.blocks = nnx.List([Block(dim, rngs) for _ in range(2)])
            self.norm = nnx.LayerNorm(dim, rngs=rngs)
            self.head = nnx.LinearGeneral(dim, (2, 5), rngs=rngs)  # 10 logits as (2, 5)

        def __call__(self, x):  # x: (N, H, W, C)
            x = self.patch(x)
            x = x.reshape(x.shape[0], -1, x.shape[-1])
            cls = jnp.broadcast_to(self.cls_token[...], (x.shape[0], 1, x.shape[-1]))
            x = jnp.concatenate([cls, x], axis=1) + self.pos_embed[...]
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x)[:, 0]).reshape(x.shape[0], 10)

    return ViT(nnx.Rngs(seed))


def flax_lstm(seed: int, cell: str = "LSTMCell"):
    """A sequence classifier in Flax NNX: features (N, L, 8) in, a Linear projection, an
    ``nnx.RNN`` over one of Flax's cells (``nnx.LSTMCell`` by default), a learned output scale
    held by the model, and a Linear head on the last step."""
    import jax.numpy as jnp
    from flax import nnx

    class Classifier(nnx.Module):
        def __init__(self, rngs: nnx.Rngs, dim: int = 8, hidden: int = 12):
            self.proj = nnx.Linear(dim, dim, rngs=rngs)
            self.rnn = nnx.RNN(getattr(nnx, cell)(dim, hidden, rngs=rngs))
            self.scale = nnx.Param(jnp.ones((hidden,)))
            self.head = nnx.Linear(hidden, 3, rngs=rngs)

        def __call__(self, x):
            return self.head(self.rnn(self.proj(x))[:, -1] * self.scale[...])

    return Classifier(nnx.Rngs(seed))

"""timm's ``VisionTransformer`` (ViT-Ti/S/B, patch 16, 224 px), named and initialised as timm.

The state-dict keys are timm's, in timm's order: ``cls_token``, ``pos_embed`` (parameters of
the model itself: learned-parameter nodes), ``patch_embed.proj`` (a Conv with stride = kernel
= patch, then flatten(2) and transpose(1, 2) through the graph ops), ``blocks.N.norm1``,
``blocks.N.attn.qkv`` (one Linear(E, 3E), rows q, k, v), ``blocks.N.attn.proj``,
``blocks.N.norm2``, ``blocks.N.mlp.fc1``, ``blocks.N.mlp.fc2``, ``norm``, ``head``. Each
block is pre-norm with residual adds, ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``
(GELU, exact); LayerNorm eps 1e-6; the head reads the class token (``x[:, 0]`` after
``norm``). Parameter-free nodes timm has as modules (dropouts, identities) are left out.

The init is timm's default (``init_weights('')``): Linear weights trunc_normal(std=.02) cut
at the absolute +-2 (effectively a normal), biases 0, LayerNorm 1/0, ``pos_embed``
trunc_normal(std=.02), ``cls_token`` N(0, 1e-6), and ``patch_embed.proj`` PyTorch's Conv2d
default, which timm leaves as it is. ``xinit.presets.vit_timm()`` is the same as a policy.
"""

from __future__ import annotations

from ..blocks import Sequential
from ..graph import Graph
from ..initializers import Normal, TruncatedNormal, Zeros
from ..layers import (
    GELU,
    Add,
    Conv,
    Flatten,
    LayerNorm,
    LearnedParameter,
    Linear,
    Permute,
    ScaledDotProductAttention,
    Select,
    SpecError,
)
from ._arguments import zoo_model

TRUNC = TruncatedNormal(0.0, 0.02, -2.0, 2.0)  # timm's trunc_normal_(std=.02): a, b = -2, 2
EPS = 1e-6  # timm's LayerNorm


def _linear(cin: int, cout: int, bias: bool = True) -> Linear:
    return Linear(cin, cout, bias, weight_init=TRUNC, bias_init=Zeros())


def block(dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> Graph:
    """timm's pre-norm ``Block``: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``; ``attn``
    is {qkv Linear(E, 3E), the parameter-free attention core, proj Linear(E, E)}."""
    hidden = int(dim * mlp_ratio)
    attn = Sequential(
        qkv=_linear(dim, 3 * dim, qkv_bias),
        sdpa=ScaledDotProductAttention(num_heads),
        proj=_linear(dim, dim),
    )
    mlp = Sequential(fc1=_linear(dim, hidden), act=GELU(), fc2=_linear(hidden, dim))
    return Graph(
        [
            ("norm1", LayerNorm(dim, eps=EPS), "x"),
            ("attn", attn, "norm1"),
            ("residual1", Add(), ("x", "attn")),
            ("norm2", LayerNorm(dim, eps=EPS), "residual1"),
            ("mlp", mlp, "norm2"),
            ("residual2", Add(), ("residual1", "mlp")),
        ]
    )


def vision_transformer(
    embed_dim: int = 768,
    depth: int = 12,
    num_heads: int = 12,
    *,
    img_size: int = 224,
    patch_size: int = 16,
    in_chans: int = 3,
    num_classes: int = 1000,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = True,
) -> Graph:
    """timm's ``VisionTransformer`` with a class token, learned positions and token pooling;
    ``num_classes=0`` returns the pooled (N, E) features, as timm's head-less model."""
    if img_size % patch_size:
        raise SpecError(
            f"vision_transformer: img_size {img_size} is not a multiple of the "
            f"patch size {patch_size}"
        )
    if embed_dim % num_heads:
        raise SpecError(
            f"vision_transformer: embed_dim {embed_dim} is not divisible by num_heads {num_heads}"
        )
    tokens = (img_size // patch_size) ** 2
    patch_embed = Sequential(
        proj=Conv(in_chans, embed_dim, patch_size, stride=patch_size),
        flatten=Flatten(2),
        transpose=Permute((0, 2, 1)),
    )
    blocks = Sequential(*[block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
    nodes = [  # cls_token and pos_embed first: timm's state-dict order (the model's own)
        (
            "cls_token",
            LearnedParameter((1, 1, embed_dim), "prepend", Normal(0.0, 1e-6)),
            "patch_embed",
        ),
        ("pos_embed", LearnedParameter((1, tokens + 1, embed_dim), "add", TRUNC), "cls_token"),
        ("patch_embed", patch_embed, "x"),
        ("blocks", blocks, "pos_embed"),
        ("norm", LayerNorm(embed_dim, eps=EPS), "blocks"),
        ("pool", Select(1, 0), "norm"),
    ]
    if num_classes:
        nodes.append(("head", _linear(embed_dim, num_classes), "pool"))
    return Graph(nodes)


@zoo_model(forwards=vision_transformer, fixed=("embed_dim", "depth", "num_heads"))
def vit_tiny_patch16_224(num_classes: int = 1000, **kw) -> Graph:
    """ViT-Ti/16: E=192, 12 blocks, 3 heads (timm: 5,717,416 parameters)."""
    return vision_transformer(192, 12, 3, num_classes=num_classes, **kw)


@zoo_model(forwards=vision_transformer, fixed=("embed_dim", "depth", "num_heads"))
def vit_small_patch16_224(num_classes: int = 1000, **kw) -> Graph:
    """ViT-S/16: E=384, 12 blocks, 6 heads (timm: 22,050,664 parameters)."""
    return vision_transformer(384, 12, 6, num_classes=num_classes, **kw)


@zoo_model(forwards=vision_transformer, fixed=("embed_dim", "depth", "num_heads"))
def vit_base_patch16_224(num_classes: int = 1000, **kw) -> Graph:
    """ViT-B/16: E=768, 12 blocks, 12 heads (timm: 86,567,656 parameters)."""
    return vision_transformer(768, 12, 12, num_classes=num_classes, **kw)


__all__ = [
    "vision_transformer",
    "block",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
]

"""Ready policies reproducing the classic ``init_weights`` idioms, each one line of rules.

``xinit.presets.torchvision_resnet()`` and friends return a :class:`~xinit.policy.Policy`;
use it with ``xinit.build(spec, backend, policy=...)``, ``xinit.apply(policy, module)`` or
``xinit init MODEL --policy NAME``. Parameters a preset does not mention keep their
initializer (the spec's in a build, the framework's in ``apply``), as in the originals.
"""

from __future__ import annotations

import math

from .errors import UnknownNameError
from .initializers import (
    AsLinear,
    BiasPrior,
    Constant,
    KaimingNormal,
    LecunNormal,
    Normal,
    Ones,
    TruncatedNormal,
    XavierNormal,
    XavierUniform,
    Zeros,
)
from .policy import Policy, Rule

_NORMS = ("batchnorm", "layernorm", "groupnorm")


def torchvision_resnet(zero_init_residual: bool = False) -> Policy:
    """torchvision ``ResNet.__init__``: convs ``kaiming_normal_(mode="fan_out",
    nonlinearity="relu")``, BN (and GroupNorm) weight 1 / bias 0; with ``zero_init_residual``
    the last BN of each residual branch (``bn3`` of a Bottleneck, ``bn2`` of a BasicBlock)
    weight 0. The Linear head keeps PyTorch's default, as in torchvision."""
    rules = [
        Rule(KaimingNormal(mode="fan_out", nonlinearity="relu"), kind="conv"),
        Rule(Ones(), kind=("batchnorm", "groupnorm"), bias=Zeros()),
    ]
    if zero_init_residual:
        rules.append(Rule(Zeros(), kind="batchnorm", path="layer*.*.bn*", last=True))
    return Policy(rules, name="torchvision_resnet")


def paddleocr_resnet45() -> Policy:
    """PaddleOCR ``rec_resnet_45.py``: convs ``ParamAttr(initializer=KaimingNormal())``
    (fan_in, relu gain, untruncated); everything else Paddle's layer defaults: BN/LayerNorm
    weight 1 bias 0, Linear / ConvTranspose / Embedding weights Xavier uniform, biases 0."""
    return Policy(
        Rule(XavierUniform(), kind=("linear", "conv_transpose", "embedding"), bias=Zeros()),
        Rule(KaimingNormal(mode="fan_in", nonlinearity="relu"), kind="conv", bias=Zeros()),
        Rule(Ones(), kind=_NORMS, bias=Zeros()),
        name="paddleocr_resnet45",
    )


def xavier_bn_normal() -> Policy:
    """The common loop: convs ``xavier_normal_`` with zero bias, BN 1/0, Linear
    ``normal_(0, 0.01)`` with zero bias."""
    return Policy(
        Rule(XavierNormal(), kind="conv", bias=Zeros()),
        Rule(Ones(), kind="batchnorm", bias=Zeros()),
        Rule(Normal(0.0, 0.01), kind="linear", bias=Zeros()),
        name="xavier_bn_normal",
    )


CENTERNET_HM_BIAS = -2.19  # the constant in CenterNet's msra_resnet.py init_weights


def _under(name: str) -> tuple[str, ...]:
    """Globs for a module ``name`` at the top or nested, and everything under it."""
    return (name, f"{name}.*", f"*.{name}", f"*.{name}.*")


def centernet_heads(
    heads: tuple[str, ...] = ("hm", "wh", "reg"), hm_bias: float = CENTERNET_HM_BIAS
) -> Policy:
    """CenterNet's ``init_weights`` (``msra_resnet.py``), exactly: under ``deconv_layers``
    ConvTranspose weights ``normal_(std=0.001)`` and BatchNorm 1/0; the final conv of each
    head: ``hm`` heads bias -2.19 with the weight left as it is (PyTorch's default), other
    heads weight ``normal_(std=0.001)`` and bias 0. Every other parameter (the backbone, the
    heads' first convs, BatchNorms outside the deconvs) is left alone, as the seed leaves it
    (its backbone is then loaded from a checkpoint).

    ``heads`` are the head modules' names, matched at the top or nested (``heads.hm``); a
    head's last conv under its own container is its final conv. The generic focal-loss prior
    is :func:`focal_prior`."""
    if isinstance(heads, str):
        heads = (heads,)
    deconv = _under("deconv_layers")
    rules = [
        Rule(Normal(0.0, 0.001), kind="conv_transpose", path=deconv),
        Rule(Ones(), kind="batchnorm", path=deconv, bias=Zeros()),
    ]
    for h in heads:
        if "hm" in h:
            rules.append(
                Rule(Constant(hm_bias), kind="conv", path=_under(h), param="bias", last=True)
            )
        else:
            rules.append(
                Rule(Normal(0.0, 0.001), kind="conv", path=_under(h), bias=Zeros(), last=True)
            )
    return Policy(rules, name="centernet_heads")


def focal_prior(heads: tuple[str, ...] = ("hm",), prob: float = 0.1) -> Policy:
    """The focal-loss prior (RetinaNet, MMDetection's ``bias_init_with_prob``): the final
    conv of each head gets bias ``-log((1 - prob) / prob)`` (-2.1972 for 0.1); nothing else."""
    if isinstance(heads, str):
        heads = (heads,)
    rules = [
        Rule(BiasPrior(prob), kind="conv", path=_under(h), param="bias", last=True) for h in heads
    ]
    return Policy(rules, name="focal_prior")


# ---- transformers ---------------------------------------------------------------------------
# A learned-parameter node's single parameter answers to its node's name (``param=
# "cls_token"``), so these rules select a built ViT's nodes and a native model's top-level
# ``nn.Parameter`` alike (timm keeps ``cls_token``/``pos_embed`` on the model itself).
TIMM_TRUNC = TruncatedNormal(0.0, 0.02, -2.0, 2.0)  # trunc_normal_(std=.02): cut at +-2, not 2 std


def _tokens(cls_token, pos_embed) -> list[Rule]:
    return [Rule(pos_embed, param="pos_embed"), Rule(cls_token, param="cls_token")]


def vit_timm() -> Policy:
    """timm's ``VisionTransformer.init_weights('')``: ``pos_embed`` trunc_normal(std=.02),
    ``cls_token`` N(0, 1e-6), every Linear trunc_normal(std=.02) with timm's absolute cutoff
    at +-2 (100 sigma: effectively a normal) and bias 0, LayerNorm 1/0. The patch
    embedding's conv keeps PyTorch's default, as in timm."""
    return Policy(
        Rule(TIMM_TRUNC, kind="linear", bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
        *_tokens(Normal(0.0, 1e-6), TIMM_TRUNC),
        name="vit_timm",
    )


def vit_jax(head_bias: float = 0.0) -> Policy:
    """timm's ``init_weights('jax')`` (``init_weights_vit_jax``, the original JAX ViT's): every
    Linear Xavier-uniform (the packed qkv as one (3E, E) matrix), bias 0, except biases under
    an ``mlp`` N(0, 1e-6) and the ``head``: weight 0, bias ``head_bias`` (``'jax_nlhb'``:
    -log(num_classes)); convs (the patch embedding) lecun_normal (truncated at +-2 sigma),
    bias 0; LayerNorm 1/0; ``pos_embed`` trunc_normal(std=.02), ``cls_token`` N(0, 1e-6)."""
    return Policy(
        Rule(XavierUniform(), kind="linear", bias=Zeros()),
        Rule(Normal(0.0, 1e-6), kind="linear", path="*mlp*", param="bias"),  # 'mlp' in name
        Rule(Zeros(), kind="linear", path="head*", bias=Constant(head_bias)),  # startswith
        Rule(LecunNormal(), kind="conv", bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
        *_tokens(Normal(0.0, 1e-6), TIMM_TRUNC),
        name="vit_jax",
    )


def mae() -> Policy:
    """MAE's ``initialize_weights`` (facebookresearch/mae ``models_mae.py``): every Linear
    Xavier-uniform (the qkv projection as one packed (3E, E) matrix: fan_out 3E) with bias
    0, LayerNorm 1/0, the patch embedding's conv Xavier-uniform on its ``(out, in*k*k)``
    view (initialised like a Linear), ``cls_token`` (and a ``mask_token``) N(0, 0.02). MAE
    freezes ``pos_embed`` to a 2-D sin-cos table; a learned one gets N(0, 0.02) here."""
    return Policy(
        Rule(XavierUniform(), kind="linear", bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
        Rule(AsLinear(XavierUniform()), kind="conv", path=("patch_embed.*", "*.patch_embed.*")),
        Rule(Normal(0.0, 0.02), param=("cls_token", "pos_embed")),
        name="mae",
    )


def bert(std: float = 0.02) -> Policy:
    """HF ``BertPreTrainedModel._init_weights``: Linear and Embedding weights N(0, std)
    (``initializer_range``), biases 0, LayerNorm 1/0."""
    return Policy(
        Rule(Normal(0.0, std), kind=("linear", "embedding"), bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
        name="bert",
    )


_GPT2_PROJECTIONS = tuple(g for n in ("c_attn", "c_fc", "c_proj") for g in (n, f"*.{n}"))


def gpt2(n_layer: int = 12, std: float = 0.02) -> Policy:
    """HF ``GPT2PreTrainedModel._init_weights``: Linear/``Conv1D`` and Embedding weights
    N(0, std), biases 0, LayerNorm 1/0, then every ``c_proj.weight`` (attention and MLP
    output projections) N(0, std / sqrt(2 * n_layer)). The projections are also selected by
    name, whatever kind they are read as (HF's ``Conv1D`` in a native model)."""
    return Policy(
        Rule(Normal(0.0, std), kind=("linear", "embedding"), bias=Zeros()),
        Rule(Normal(0.0, std), path=_GPT2_PROJECTIONS, bias=Zeros()),
        Rule(Ones(), kind="layernorm", bias=Zeros()),
        Rule(Normal(0.0, std / math.sqrt(2 * n_layer)), path=("c_proj", "*.c_proj")),
        name="gpt2",
    )


def torchtitan_llama(n_layers: int = 12, dim: int = 768, depth_init: bool = True) -> Policy:
    """torchtitan's Llama ``init_weights`` on the GPT-2 layout (``xinit.models.gpt2``):
    ``wte`` (tok_embeddings) N(0, 1); per block, ``attn.c_attn`` (wq, wk, wv packed) and
    ``mlp.c_fc`` (w1) trunc_normal(std=0.02), ``attn.c_proj`` (wo) and ``mlp.c_proj`` (w2)
    trunc_normal(std=0.02 / sqrt(2 (layer_id + 1))) (``depth_init=False``: 0.02 / sqrt(2
    n_layers)), cut at the absolute +-2 of ``trunc_normal_``; norms 1/0; ``lm_head`` (output)
    trunc_normal(std=dim**-0.5) cut at +-3 std. torchtitan's Linears have no bias: GPT-2's
    are zeroed. ``wpe`` has no counterpart (Llama uses RoPE) and keeps its init."""
    trunc = TruncatedNormal(0.0, 0.02, -2.0, 2.0)
    rules = [
        Rule(Normal(0.0, 1.0), kind="embedding", path=("wte", "*.wte")),
        Rule(trunc, kind="linear", path=("*.attn.c_attn", "*.mlp.c_fc"), bias=Zeros()),
        Rule(Ones(), kind=("layernorm", "rmsnorm"), bias=Zeros()),
    ]
    for layer_id in range(n_layers):
        depth = 2 * (layer_id + 1) if depth_init else 2 * n_layers
        std = 0.02 / math.sqrt(depth)
        paths = tuple(f"{p}h.{layer_id}.{n}.c_proj" for p in ("", "*.") for n in ("attn", "mlp"))
        rules.append(
            Rule(TruncatedNormal(0.0, std, -2.0, 2.0), kind="linear", path=paths, bias=Zeros())
        )
    out = dim**-0.5
    rules.append(Rule(TruncatedNormal(0.0, out, -3 * out, 3 * out), kind="linear", path="lm_head"))
    return Policy(rules, name="torchtitan_llama")


PRESETS = {
    "torchvision_resnet": torchvision_resnet,
    "paddleocr_resnet45": paddleocr_resnet45,
    "xavier_bn_normal": xavier_bn_normal,
    "centernet_heads": centernet_heads,
    "focal_prior": focal_prior,
    "vit_timm": vit_timm,
    "vit_jax": vit_jax,
    "mae": mae,
    "bert": bert,
    "gpt2": gpt2,
    "torchtitan_llama": torchtitan_llama,
}


def get(name: str, **kwargs) -> Policy:
    """The preset ``name`` (``torchvision_resnet``, ...), called with ``kwargs``."""
    if name not in PRESETS:
        raise UnknownNameError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**kwargs)


__all__ = [*PRESETS, "PRESETS", "get"]

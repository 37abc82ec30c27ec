"""Ready policies reproducing the classic ``init_weights`` idioms, each one line of rules.

``xinit.presets.torchvision_resnet()`` and friends return a :class:`~xinit.policy.Policy`;
use it with ``xinit.build(spec, backend, policy=...)``, ``xinit.apply(policy, module)`` or
``xinit init MODEL --policy NAME``. Parameters a preset does not mention keep their
initializer (the spec's in a build, the framework's in ``apply``), as in the originals.
"""

from __future__ import annotations

from .initializers import (
    BiasPrior,
    Constant,
    KaimingNormal,
    Normal,
    Ones,
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


PRESETS = {
    "torchvision_resnet": torchvision_resnet,
    "paddleocr_resnet45": paddleocr_resnet45,
    "xavier_bn_normal": xavier_bn_normal,
    "centernet_heads": centernet_heads,
    "focal_prior": focal_prior,
}


def get(name: str, **kwargs) -> Policy:
    """The preset ``name`` (``torchvision_resnet``, ...), called with ``kwargs``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**kwargs)


__all__ = [*PRESETS, "PRESETS", "get"]

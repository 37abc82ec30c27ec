"""Ready policies reproducing the classic ``init_weights`` idioms, each one line of rules.

``xinit.presets.torchvision_resnet()`` and friends return a :class:`~xinit.policy.Policy`;
use it with ``xinit.build(spec, backend, policy=...)``, ``xinit.apply(policy, module)`` or
``xinit init MODEL --policy NAME``. Parameters a preset does not mention keep their
initializer (the spec's in a build, the framework's in ``apply``), as in the originals.
"""

from __future__ import annotations

from .initializers import (
    BiasPrior,
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


def centernet_heads(heads: tuple[str, ...] = ("hm", "wh", "reg"), prior: float = 0.1) -> Policy:
    """CenterNet's ``init_weights``: deconvs ``normal_(std=0.001)`` (bias 0), BN 1/0, and the
    final conv of each head ``normal_(std=0.001)`` with bias 0, except heads whose name
    contains ``hm`` whose bias is the focal-loss prior ``BiasPrior(prior)`` (-2.19 for 0.1).

    ``heads`` are the head modules' names; each is matched as a top-level or nested module
    (``hm``, ``heads.hm``, ...), and its last conv under its own container is "final"."""
    if isinstance(heads, str):
        heads = (heads,)
    rules = [
        Rule(Normal(0.0, 0.001), kind="conv_transpose", bias=Zeros()),
        Rule(Ones(), kind="batchnorm", bias=Zeros()),
    ]
    for h in heads:
        bias = BiasPrior(prior) if "hm" in h else Zeros()
        path = (h, f"{h}.*", f"*.{h}", f"*.{h}.*")
        rules.append(Rule(Normal(0.0, 0.001), kind="conv", path=path, bias=bias, last=True))
    return Policy(rules, name="centernet_heads")


PRESETS = {
    "torchvision_resnet": torchvision_resnet,
    "paddleocr_resnet45": paddleocr_resnet45,
    "xavier_bn_normal": xavier_bn_normal,
    "centernet_heads": centernet_heads,
}


def get(name: str, **kwargs) -> Policy:
    """The preset ``name`` (``torchvision_resnet``, ...), called with ``kwargs``."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name](**kwargs)


__all__ = [*PRESETS, "PRESETS", "get"]

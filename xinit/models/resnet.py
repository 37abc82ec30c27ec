"""ResNet family shaped and named like torchvision's ``models/resnet.py``.

The torch build has exactly torchvision's state_dict keys and shapes, and the same init:
convs KaimingNormal(fan_out, relu), BatchNorm 1/0, the Linear head PyTorch's default.
"""

from __future__ import annotations

from ..blocks import Residual, Sequential
from ..initializers import KaimingNormal, Zeros
from ..layers import AdaptiveAvgPool, BatchNorm, Conv, Flatten, Linear, MaxPool, ReLU, SpecError
from ._arguments import zoo_model

CONV_INIT = KaimingNormal(mode="fan_out", nonlinearity="relu")


def conv3x3(cin: int, cout: int, stride: int = 1, groups: int = 1) -> Conv:
    return Conv(cin, cout, 3, stride, 1, groups=groups, bias=False, weight_init=CONV_INIT)


def conv1x1(cin: int, cout: int, stride: int = 1) -> Conv:
    return Conv(cin, cout, 1, stride, bias=False, weight_init=CONV_INIT)


def _downsample(cin: int, cout: int, stride: int) -> Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return Sequential(conv1x1(cin, cout, stride), BatchNorm(cout))


def basic_block(cin: int, planes: int, stride: int = 1, zero_init_residual=False) -> Residual:
    """3x3 conv (carries the stride) + BN + ReLU, 3x3 conv + BN, add, ReLU. Expansion 1."""
    last_bn = BatchNorm(planes, weight_init=Zeros() if zero_init_residual else None)
    body = Sequential(
        ("conv1", conv3x3(cin, planes, stride)),
        ("bn1", BatchNorm(planes)),
        ("relu", ReLU()),
        ("conv2", conv3x3(planes, planes)),
        ("bn2", last_bn),
    )
    return Residual(body, _downsample(cin, planes, stride))


def bottleneck(
    cin: int,
    planes: int,
    stride: int = 1,
    zero_init_residual=False,
    groups: int = 1,
    base_width: int = 64,
) -> Residual:
    """1x1 reduce, 3x3 (carries the stride, grouped for ResNeXt), 1x1 expand (x4), add, ReLU."""
    width = int(planes * (base_width / 64.0)) * groups
    out = planes * 4
    last_bn = BatchNorm(out, weight_init=Zeros() if zero_init_residual else None)
    body = Sequential(
        ("conv1", conv1x1(cin, width)),
        ("bn1", BatchNorm(width)),
        ("relu", ReLU()),
        ("conv2", conv3x3(width, width, stride, groups)),
        ("bn2", BatchNorm(width)),
        ("relu", ReLU()),
        ("conv3", conv1x1(width, out)),
        ("bn3", last_bn),
    )
    return Residual(body, _downsample(cin, out, stride))


def _resnet(
    block: str,
    layers: tuple[int, ...],
    num_classes: int = 1000,
    in_channels: int = 3,
    zero_init_residual: bool = False,
    groups: int = 1,
    width_per_group: int = 64,
) -> Sequential:
    expansion = 1 if block == "basic" else 4
    children = [
        ("conv1", Conv(in_channels, 64, 7, 2, 3, bias=False, weight_init=CONV_INIT)),
        ("bn1", BatchNorm(64)),
        ("relu", ReLU()),
        ("maxpool", MaxPool(3, 2, 1)),
    ]
    cin = 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
        blocks = []
        for j in range(n):
            stride = 2 if (i > 0 and j == 0) else 1
            if block == "basic":
                blocks.append(basic_block(cin, planes, stride, zero_init_residual))
            else:
                blocks.append(
                    bottleneck(cin, planes, stride, zero_init_residual, groups, width_per_group)
                )
            cin = planes * expansion
        children.append((f"layer{i + 1}", Sequential(*blocks)))
    if num_classes < 0:
        raise SpecError(f"num_classes must be >= 0 (0: no classifier); got {num_classes}")
    children += [("avgpool", AdaptiveAvgPool(1)), ("flatten", Flatten())]
    if num_classes:  # 0: a headless backbone giving the pooled features (as timm's)
        children.append(("fc", Linear(512 * expansion, num_classes)))
    return Sequential(*children)


@zoo_model(forwards=_resnet, fixed=("block", "layers"))
def resnet18(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    """``resnet18(in_channels=1, num_classes=512)`` is the one-channel ResNet18_2D variant."""
    return _resnet("basic", (2, 2, 2, 2), num_classes, in_channels, **kw)


@zoo_model(forwards=_resnet, fixed=("block", "layers"))
def resnet34(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    return _resnet("basic", (3, 4, 6, 3), num_classes, in_channels, **kw)


@zoo_model(forwards=_resnet, fixed=("block", "layers"))
def resnet50(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    return _resnet("bottleneck", (3, 4, 6, 3), num_classes, in_channels, **kw)


@zoo_model(forwards=_resnet, fixed=("block", "layers"))
def resnet101(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    return _resnet("bottleneck", (3, 4, 23, 3), num_classes, in_channels, **kw)


@zoo_model(forwards=_resnet, fixed=("block", "layers"))
def resnet152(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    return _resnet("bottleneck", (3, 8, 36, 3), num_classes, in_channels, **kw)


@zoo_model(forwards=_resnet, fixed=("block", "layers", "groups", "width_per_group"))
def resnext50_32x4d(num_classes: int = 1000, in_channels: int = 3, **kw) -> Sequential:
    return _resnet(
        "bottleneck", (3, 4, 6, 3), num_classes, in_channels, groups=32, width_per_group=4, **kw
    )

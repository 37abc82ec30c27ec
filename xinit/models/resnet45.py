"""PaddleOCR's ResNet45 text-recognition backbone (``ppocr/modeling/backbones/rec_resnet_45.py``).

Stem 3x3 conv (32, stride 1) + BN + ReLU; five stages of BasicBlocks (3, 4, 6, 6, 3) with
planes (32, 64, 128, 256, 512). Unlike torchvision's block, the first conv is 1x1 and the
second, 3x3, carries the stride. No pooling, no head. All convs KaimingNormal (fan_in), no bias.
"""

from __future__ import annotations

from ..blocks import Residual, Sequential
from ..initializers import KaimingNormal
from ..layers import BatchNorm, Conv, ReLU
from ._arguments import zoo_model

# Paddle's KaimingNormal(): fan_in, relu gain, untruncated; the neutral spec says the same.
CONV_INIT = KaimingNormal(mode="fan_in", nonlinearity="relu")


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> Conv:
    return Conv(cin, cout, k, stride, k // 2, bias=False, weight_init=CONV_INIT)


def block45(cin: int, planes: int, stride: int = 1) -> Residual:
    body = Sequential(
        ("conv1", _conv(cin, planes, 1)),
        ("bn1", BatchNorm(planes)),
        ("relu", ReLU()),
        ("conv2", _conv(planes, planes, 3, stride)),
        ("bn2", BatchNorm(planes)),
    )
    shortcut = None
    if stride != 1 or cin != planes:
        shortcut = Sequential(_conv(cin, planes, 1, stride), BatchNorm(planes))
    return Residual(body, shortcut)


@zoo_model
def resnet45(
    in_channels: int = 3,
    strides: tuple[int, ...] = (2, 1, 2, 1, 1),
    layers: tuple[int, ...] = (3, 4, 6, 6, 3),
) -> Sequential:
    """Input 1x3x32x128 gives 1x512x8x32 with the default strides."""
    if len(strides) != 5 or len(layers) != 5:
        raise ValueError(f"resnet45 needs 5 strides and 5 layer counts; got {strides}, {layers}")
    children = [
        ("conv1", _conv(in_channels, 32, 3)),
        ("bn1", BatchNorm(32)),
        ("relu", ReLU()),
    ]
    cin = 32
    for i, (planes, n, stride) in enumerate(zip((32, 64, 128, 256, 512), layers, strides)):
        blocks = [block45(cin, planes, stride)]
        blocks += [block45(planes, planes) for _ in range(n - 1)]
        cin = planes
        children.append((f"layer{i + 1}", Sequential(*blocks)))
    return Sequential(*children)

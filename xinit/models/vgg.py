"""VGG shaped and named like torchvision's ``models/vgg.py``, and VGG-19's style encoder.

Keys are torchvision's (``features.0.weight``, ``classifier.6.bias``), so a torchvision
checkpoint loads strictly; the init is torchvision's: convs KaimingNormal(fan_out, relu) with
bias 0, BatchNorm 1/0, Linear N(0, 0.01) with bias 0.
"""

from __future__ import annotations

from ..blocks import Sequential
from ..graph import Graph, feature_extractor
from ..initializers import KaimingNormal, Normal, Zeros
from ..layers import AdaptiveAvgPool, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, ReLU
from ._arguments import zoo_model

CONV_INIT = KaimingNormal(mode="fan_out", nonlinearity="relu")
LINEAR_INIT = Normal(0.0, 0.01)

CONFIGS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
    + [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def vgg_features(depth: int, batch_norm: bool = False, in_channels: int = 3) -> Sequential:
    """torchvision's ``make_layers``: (conv 3x3 pad 1, [BN], ReLU) per width, max-pool 2 at M."""
    layers, c = [], in_channels
    for v in CONFIGS[depth]:
        if v == "M":
            layers.append(MaxPool(2, 2))
            continue
        layers.append(Conv(c, v, 3, padding=1, weight_init=CONV_INIT, bias_init=Zeros()))
        if batch_norm:
            layers.append(BatchNorm(v))
        layers.append(ReLU())
        c = v
    return Sequential(*layers)


def vgg(
    depth: int, batch_norm: bool = False, num_classes: int = 1000, in_channels: int = 3
) -> Sequential:
    """VGG-``depth`` (11, 13, 16, 19); ``num_classes=0`` drops the classifier (features and
    the 7x7 average pool remain, flattened)."""
    if depth not in CONFIGS:
        from ..layers import SpecError

        raise SpecError(f"VGG depth must be one of {sorted(CONFIGS)}; got {depth}")
    children = [
        ("features", vgg_features(depth, batch_norm, in_channels)),
        ("avgpool", AdaptiveAvgPool((7, 7))),
        ("flatten", Flatten()),
    ]
    if num_classes:

        def fc(cin, cout):
            return Linear(cin, cout, weight_init=LINEAR_INIT, bias_init=Zeros())

        head = (fc(512 * 7 * 7, 4096), ReLU(), Dropout(0.5), fc(4096, 4096), ReLU(), Dropout(0.5))
        children.append(("classifier", Sequential(*head, fc(4096, num_classes))))
    return Sequential(*children)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg11(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(11, False, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg11_bn(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(11, True, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg13(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(13, False, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg13_bn(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(13, True, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg16(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(16, False, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg16_bn(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(16, True, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg19(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(19, False, num_classes, **kw)


@zoo_model(forwards=vgg, fixed=("depth", "batch_norm"))
def vgg19_bn(num_classes: int = 1000, **kw) -> Sequential:
    return vgg(19, True, num_classes, **kw)


# relu1_1 .. relu4_1 of VGG-19's features (the style-transfer encoders' taps)
VGG19_TAPS = {"features.1": "relu1_1", "features.6": "relu2_1"}
VGG19_TAPS |= {"features.11": "relu3_1", "features.20": "relu4_1"}


@zoo_model
def vgg19_encoder(in_channels: int = 3) -> Graph:
    """VGG-19's ``features`` up to relu4_1, returning relu1_1, relu2_1, relu3_1 and relu4_1 as
    a dict (AdaIN-style encoders). Keys are torchvision's vgg19 ``features.N``, so its
    checkpoint loads with strict=False (the later layers and the classifier left out)."""
    return feature_extractor(vgg19(0, in_channels=in_channels), VGG19_TAPS)

"""CenterNet's ``msra_resnet`` (PoseResNet) with its heads, named as in CenterNet.

``conv1``, ``bn1``, ``layer1``-``layer4`` (torchvision's ResNet without pooling and fc), then
``deconv_layers``: three times (ConvTranspose2d 4x4, stride 2, padding 1, no bias, 256
filters; BatchNorm2d; ReLU), then one head per entry, ``hm.0`` (3x3 conv to ``head_conv``,
bias) / ReLU / ``hm.2`` (1x1 conv to the head's channels), registered in sorted order as
CenterNet does and returned as a dict in the order given.

The init is the seed's ``init_weights``: deconv weights N(0, 0.001), their BatchNorm 1/0;
each head's last conv: for ``hm`` bias -2.19 and PyTorch's default weight, else weight
N(0, 0.001) and bias 0; every other conv PyTorch's default (the backbone's convs keep
torchvision's ResNet init; CenterNet loads them from a checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..blocks import Sequential
from ..graph import Graph
from ..initializers import Constant, Normal, Zeros
from ..layers import BatchNorm, Conv, ConvTranspose, ReLU, SpecError
from ._arguments import zoo_model
from .resnet import _resnet

DEPTHS = {18: "resnet18", 34: "resnet34", 50: "resnet50", 101: "resnet101", 152: "resnet152"}
HM_BIAS = -2.19  # the seed's constant (not -log((1 - 0.1) / 0.1) = -2.1972)
SMALL = Normal(0.0, 0.001)


def _backbone(depth: int) -> list:
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
    blocks |= {101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
    kind = "basic" if depth < 50 else "bottleneck"
    full = _resnet(kind, blocks[depth], num_classes=0)
    return [(n, c) for n, c in full.steps if n not in ("avgpool", "flatten")]


def deconv_layers(cin: int, filters=(256, 256, 256), kernels=(4, 4, 4)) -> Sequential:
    layers = []
    for planes, k in zip(filters, kernels):
        pad, out_pad = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[k]
        deconv = ConvTranspose(
            cin, planes, k, 2, pad, bias=False, output_padding=out_pad, weight_init=SMALL
        )
        layers += [deconv, BatchNorm(planes), ReLU()]
        cin = planes
    return Sequential(*layers)


def head(name: str, cin: int, classes: int, head_conv: int) -> Sequential | Conv:
    last_init = {} if name == "hm" else {"weight_init": SMALL}
    bias = Constant(HM_BIAS) if name == "hm" else Zeros()
    if head_conv <= 0:
        return Conv(cin, classes, 1, bias_init=bias, **last_init)
    return Sequential(
        Conv(cin, head_conv, 3, padding=1),
        ReLU(),
        Conv(head_conv, classes, 1, bias_init=bias, **last_init),
    )


@zoo_model
def centernet_resnet(
    depth: int = 18,
    heads: Mapping[str, int] | None = None,
    head_conv: int = 64,
) -> Graph:
    """CenterNet on a ResNet-``depth`` (PoseResNet), heads ``{"hm": 80, "wh": 2, "reg": 2}``
    by default; the run returns ``{head: (N, classes, H/4, W/4)}``."""
    if depth not in DEPTHS:
        raise SpecError(f"centernet_resnet: depth must be one of {sorted(DEPTHS)}; got {depth}")
    heads = dict(heads or {"hm": 80, "wh": 2, "reg": 2})
    if not heads:
        raise SpecError("centernet_resnet: no heads")
    inplanes = 512 if depth < 50 else 2048
    nodes = _backbone(depth) + [("deconv_layers", deconv_layers(inplanes))]
    trunk = nodes[-1][0]
    for name in sorted(heads):
        nodes.append((name, head(name, 256, int(heads[name]), head_conv), trunk))
    return Graph(nodes, outputs={name: name for name in heads})

"""Hand-written reference models: the ground truth for "exactly torchvision's / PaddleOCR's keys".

Written from the published architectures, in plain framework code, without xinit:

* :func:`torch_resnet18`, :func:`torch_resnet34`, :func:`torch_resnet50`,
  :func:`torch_resnet101`, :func:`torch_resnet152`, :func:`torch_resnext50_32x4d`: a
  torchvision-style ResNet in ``torch.nn`` (``BasicBlock`` / ``Bottleneck`` with the stride on
  the 3x3 conv, ``downsample`` = 1x1 conv + BN, torchvision's init loop). Its ``state_dict``
  has torchvision's keys, shapes and order.
* :func:`flax_resnet18`, :func:`flax_resnet50`: the same structure in plain ``flax.nnx``
  (the build benchmark's "framework's own way" too);
* :func:`torch_vgg`: torchvision's VGG (``make_layers``, ``features`` / ``avgpool`` /
  ``classifier``, its init loop) retyped in ``torch.nn``;
* :func:`torch_pose_resnet`: CenterNet's ``msra_resnet`` PoseResNet with heads (the backbone,
  ``deconv_layers``, one head per entry registered in sorted order, ``init_weights``'s
  deconv/head loop) in ``torch.nn``, returning the heads as a dict;
* :func:`torch_unet`: the common PyTorch U-Net (``DoubleConv``/``Down``/``Up``/``OutConv``
  with transposed-conv up) in ``torch.nn``;
* :func:`torch_resnet45`: PaddleOCR's ResNet45 written by hand in ``torch.nn``;
* :func:`paddle_resnet45`: PaddleOCR's ResNet45 text-recognition backbone in ``paddle.nn``
  (``rec_resnet_45.py``: 1x1 conv then a strided 3x3 conv per block, every conv built with
  ``ParamAttr(initializer=KaimingNormal())``, Paddle's ``BatchNorm2D`` with ``_mean`` and
  ``_variance``).

Frameworks are imported inside the builders, so importing this module costs nothing; tests
(and the policy and benchmark suites) import it as ``from reference_models import ...`` with
``tests/`` on ``sys.path``.
"""

from __future__ import annotations

# ---- torchvision-style ResNet (torch.nn) ---------------------------------------------------


def _torch_classes():
    import torch
    from torch import nn

    def conv3x3(cin, cout, stride=1, groups=1):
        return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups, bias=False)

    def conv1x1(cin, cout, stride=1):
        return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, cin, planes, stride=1, downsample=None, groups=1, base_width=64):
            super().__init__()
            if groups != 1 or base_width != 64:
                raise ValueError("BasicBlock supports groups=1 and base_width=64 only")
            self.conv1 = conv3x3(cin, planes, stride)  # the stride sits on the first 3x3 conv
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + skip)

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, cin, planes, stride=1, downsample=None, groups=1, base_width=64):
            super().__init__()
            width = int(planes * (base_width / 64.0)) * groups
            self.conv1 = conv1x1(cin, width)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = conv3x3(width, width, stride, groups)  # ResNet v1.5: stride on 3x3
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = conv1x1(width, planes * self.expansion)
            self.bn3 = nn.BatchNorm2d(planes * self.expansion)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + skip)

    class ResNet(nn.Module):
        def __init__(
            self,
            block,
            layers,
            num_classes=1000,
            in_channels=3,
            zero_init_residual=False,
            groups=1,
            width_per_group=64,
        ):
            super().__init__()
            self.groups, self.base_width = groups, width_per_group
            self.inplanes = 64
            self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, 64, layers[0])
            self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
            self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
            self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512 * block.expansion, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            if zero_init_residual:
                for m in self.modules():
                    if isinstance(m, Bottleneck):
                        nn.init.constant_(m.bn3.weight, 0)
                    elif isinstance(m, BasicBlock):
                        nn.init.constant_(m.bn2.weight, 0)

        def _make_layer(self, block, planes, blocks, stride=1):
            downsample = None
            out = planes * block.expansion
            if stride != 1 or self.inplanes != out:
                downsample = nn.Sequential(conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
            layers = [
                block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)
            ]
            self.inplanes = out
            for _ in range(1, blocks):
                layers.append(
                    block(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                )
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return BasicBlock, Bottleneck, ResNet


def torch_resnet(block: str, layers, **kwargs):
    """A torchvision-style ResNet: ``block`` is ``"basic"`` or ``"bottleneck"``."""
    basic, bottleneck, resnet = _torch_classes()
    return resnet(basic if block == "basic" else bottleneck, list(layers), **kwargs)


def torch_resnet18(**kw):
    return torch_resnet("basic", (2, 2, 2, 2), **kw)


def torch_resnet34(**kw):
    return torch_resnet("basic", (3, 4, 6, 3), **kw)


def torch_resnet50(**kw):
    return torch_resnet("bottleneck", (3, 4, 6, 3), **kw)


def torch_resnet101(**kw):
    return torch_resnet("bottleneck", (3, 4, 23, 3), **kw)


def torch_resnet152(**kw):
    return torch_resnet("bottleneck", (3, 8, 36, 3), **kw)


def torch_resnext50_32x4d(**kw):
    return torch_resnet("bottleneck", (3, 4, 6, 3), groups=32, width_per_group=4, **kw)


TORCH_REFERENCES = {
    "resnet18": torch_resnet18,
    "resnet34": torch_resnet34,
    "resnet50": torch_resnet50,
    "resnet101": torch_resnet101,
    "resnet152": torch_resnet152,
    "resnext50_32x4d": torch_resnext50_32x4d,
}

# torchvision's published parameter counts (weights metadata "num_params").
TORCHVISION_NUM_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnext50_32x4d": 25_028_904,
}


def torch_lenet(num_classes: int = 10, in_channels: int = 3):
    """The PyTorch CIFAR-10 tutorial's ``Net`` (conv1, pool, conv2, fc1, fc2, fc3)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 6, 5)
            self.pool = nn.MaxPool2d(2, 2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, num_classes)

        def forward(self, x):
            x = self.pool(F.relu(self.conv1(x)))
            x = self.pool(F.relu(self.conv2(x)))
            x = torch.flatten(x, 1)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return Net()


# ---- PaddleOCR ResNet45 (paddle.nn) --------------------------------------------------------


def _paddle_classes():
    from paddle import ParamAttr, nn
    from paddle.nn.initializer import KaimingNormal

    def kaiming():
        return ParamAttr(initializer=KaimingNormal())

    def conv1x1(cin, cout):
        return nn.Conv2D(cin, cout, kernel_size=1, stride=1, weight_attr=kaiming(), bias_attr=False)

    def conv3x3(cin, cout, stride=1):
        return nn.Conv2D(
            cin,
            cout,
            kernel_size=3,
            stride=stride,
            padding=1,
            weight_attr=kaiming(),
            bias_attr=False,
        )

    class BasicBlock(nn.Layer):
        expansion = 1

        def __init__(self, cin, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = conv1x1(cin, planes)  # 1x1 first, never strided
            self.bn1 = nn.BatchNorm2D(planes)
            self.relu = nn.ReLU()
            self.conv2 = conv3x3(planes, planes, stride)  # the 3x3 carries the stride
            self.bn2 = nn.BatchNorm2D(planes)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return self.relu(y + skip)

    class ResNet45(nn.Layer):
        def __init__(self, in_channels=3, layers=(3, 4, 6, 6, 3), strides=(2, 1, 2, 1, 1)):
            super().__init__()
            self.inplanes = 32
            self.conv1 = nn.Conv2D(
                in_channels,
                32,
                kernel_size=3,
                stride=1,
                padding=1,
                weight_attr=kaiming(),
                bias_attr=False,
            )
            self.bn1 = nn.BatchNorm2D(32)
            self.relu = nn.ReLU()
            planes = (32, 64, 128, 256, 512)
            self.layer1 = self._make_layer(planes[0], layers[0], strides[0])
            self.layer2 = self._make_layer(planes[1], layers[1], strides[1])
            self.layer3 = self._make_layer(planes[2], layers[2], strides[2])
            self.layer4 = self._make_layer(planes[3], layers[3], strides[3])
            self.layer5 = self._make_layer(planes[4], layers[4], strides[4])
            self.out_channels = 512

        def _make_layer(self, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
                downsample = nn.Sequential(
                    nn.Conv2D(
                        self.inplanes,
                        planes * BasicBlock.expansion,
                        kernel_size=1,
                        stride=stride,
                        weight_attr=kaiming(),
                        bias_attr=False,
                    ),
                    nn.BatchNorm2D(planes * BasicBlock.expansion),
                )
            layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * BasicBlock.expansion
            layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            for stage in (self.layer1, self.layer2, self.layer3, self.layer4, self.layer5):
                x = stage(x)
            return x

    return BasicBlock, ResNet45


def paddle_resnet45(in_channels: int = 3, strides=(2, 1, 2, 1, 1), layers=(3, 4, 6, 6, 3)):
    """PaddleOCR's ResNet45 backbone (``ppocr/modeling/backbones/rec_resnet_45.py``)."""
    _, resnet45 = _paddle_classes()
    return resnet45(in_channels, tuple(layers), tuple(strides))


# ---- a hand-written torch ResNet45 (PaddleOCR's structure, written as a PyTorch user would) --
def torch_resnet45(in_channels: int = 3, strides=(2, 1, 2, 1, 1), layers=(3, 4, 6, 6, 3)):
    """PaddleOCR's ResNet45 in ``torch.nn``: 1x1 conv then a strided 3x3 conv per block; the
    names a PyTorch port of ``rec_resnet_45.py`` gets (``layer1.0.conv1``, ...)."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

        def forward(self, x):
            skip = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + skip)

    class ResNet45(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(32)
            self.relu = nn.ReLU(inplace=True)
            cin = 32
            for i, (planes, n, stride) in enumerate(zip((32, 64, 128, 256, 512), layers, strides)):
                blocks = [Block(cin, planes, stride)] + [
                    Block(planes, planes, 1) for _ in range(n - 1)
                ]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                cin = planes

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            for i in range(1, 6):
                x = getattr(self, f"layer{i}")(x)
            return x

    return ResNet45()


# ---- a hand-written Flax NNX ResNet (torchvision's structure, as a Flax user writes it) ----
def flax_resnet(block: str, layers, num_classes: int = 1000, seed: int = 0):
    """A torchvision-structured ResNet in plain ``flax.nnx`` (``nnx.Conv``/``nnx.BatchNorm``/
    ``nnx.Linear`` with their default initialisers, NHWC). Its stages are ``nnx.Sequential``,
    so its paths read ``layer1.layers.0.conv1``: a name map meets torchvision's."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    rngs = nnx.Rngs(seed)

    def bn(c):
        return nnx.BatchNorm(c, rngs=rngs)

    def conv(cin, cout, k, stride=1):
        pad = ((k // 2, k // 2),) * 2
        return nnx.Conv(cin, cout, (k, k), strides=stride, padding=pad, use_bias=False, rngs=rngs)

    class Block(nnx.Module):
        def __init__(self, cin, planes, stride):
            self.bottleneck = block == "bottleneck"
            out = planes * (4 if self.bottleneck else 1)
            if self.bottleneck:
                self.conv1, self.bn1 = conv(cin, planes, 1), bn(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3, stride), bn(planes)
                self.conv3, self.bn3 = conv(planes, out, 1), bn(out)
            else:
                self.conv1, self.bn1 = conv(cin, planes, 3, stride), bn(planes)
                self.conv2, self.bn2 = conv(planes, planes, 3), bn(planes)
            project = stride != 1 or cin != out  # one assignment: nnx fixes data vs static
            self.downsample = (
                nnx.Sequential(conv(cin, out, 1, stride), bn(out)) if project else None
            )
            self.out = out

        def __call__(self, x):
            y = jax.nn.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            if self.bottleneck:
                y = self.bn3(self.conv3(jax.nn.relu(y)))
            skip = x if self.downsample is None else self.downsample(x)
            return jax.nn.relu(y + skip)

    class ResNet(nnx.Module):
        def __init__(self):
            self.conv1 = nnx.Conv(
                3, 64, (7, 7), strides=2, padding=((3, 3), (3, 3)), use_bias=False, rngs=rngs
            )
            self.bn1 = nnx.BatchNorm(64, rngs=rngs)
            cin, stages = 64, []
            for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
                blocks = []
                for j in range(n):
                    blocks.append(Block(cin, planes, 2 if (i > 0 and j == 0) else 1))
                    cin = blocks[-1].out
                stages.append(nnx.Sequential(*blocks))
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.fc = nnx.Linear(cin, num_classes, rngs=rngs)

        def __call__(self, x):
            x = jax.nn.relu(self.bn1(self.conv1(x)))
            x = nnx.max_pool(x, (3, 3), (2, 2), ((1, 1), (1, 1)))
            for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
                x = stage(x)
            return self.fc(jnp.mean(x, axis=(1, 2)))

    return ResNet()


def flax_resnet18(**kw):
    return flax_resnet("basic", (2, 2, 2, 2), **kw)


def flax_resnet50(**kw):
    return flax_resnet("bottleneck", (3, 4, 6, 3), **kw)


# torchvision's paths from the hand-written Flax ResNet's, and back
FLAX_TO_TORCHVISION = [(r"\.layers\.", ".")]
TORCHVISION_TO_FLAX = [(r"^(layer\d)\.", r"\1.layers."), (r"downsample\.", "downsample.layers.")]


__all__ = [
    "torch_resnet",
    "torch_resnet18",
    "torch_resnet34",
    "torch_resnet50",
    "torch_resnet101",
    "torch_resnet152",
    "torch_resnext50_32x4d",
    "torch_lenet",
    "paddle_resnet45",
    "torch_resnet45",
    "flax_resnet",
    "flax_resnet18",
    "flax_resnet50",
    "FLAX_TO_TORCHVISION",
    "TORCHVISION_TO_FLAX",
    "TORCH_REFERENCES",
    "TORCHVISION_NUM_PARAMS",
]


# ---- torchvision-style VGG (torch.nn) ------------------------------------------------------
VGG_CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M"]
    + [512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def torch_vgg(depth: int, batch_norm: bool = False, num_classes: int = 1000):
    """torchvision's VGG: features from the config, 7x7 adaptive pool, the 3-Linear
    classifier with dropout, and its init (kaiming fan_out convs, BN 1/0, N(0, 0.01) fc)."""
    import torch
    from torch import nn

    layers, c = [], 3
    for v in VGG_CFGS[depth]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        layers.append(nn.Conv2d(c, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        c = v

    class VGG(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(4096, num_classes),
            )
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return VGG()


# ---- CenterNet's msra_resnet PoseResNet with heads (torch.nn) ------------------------------
def torch_pose_resnet(depth: int = 18, heads=None, head_conv: int = 64):
    """PoseResNet as in CenterNet's ``msra_resnet.py``: the torchvision-style backbone
    without avgpool and fc, three (ConvTranspose2d 4x4/2, BN, ReLU) ``deconv_layers`` of 256,
    a head per entry (sorted), and ``init_weights``'s loop for the deconvs and heads."""
    from torch import nn

    heads = dict(heads or {"hm": 80, "wh": 2, "reg": 2})
    blocks = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3))}
    blocks[50] = ("bottleneck", (3, 4, 6, 3))
    kind, layers = blocks[depth]
    base = torch_resnet(kind, layers)
    inplanes = 512 if kind == "basic" else 2048

    class PoseResNet(nn.Module):
        def __init__(self):
            super().__init__()
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3"):
                setattr(self, name, getattr(base, name))
            self.layer4 = base.layer4
            deconv, cin = [], inplanes
            for _ in range(3):
                deconv += [
                    nn.ConvTranspose2d(
                        cin, 256, 4, stride=2, padding=1, output_padding=0, bias=False
                    ),
                    nn.BatchNorm2d(256, momentum=0.1),
                    nn.ReLU(inplace=True),
                ]
                cin = 256
            self.deconv_layers = nn.Sequential(*deconv)
            self.heads = heads
            for head in sorted(heads):
                fc = nn.Sequential(
                    nn.Conv2d(256, head_conv, kernel_size=3, padding=1, bias=True),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(head_conv, heads[head], kernel_size=1, stride=1, padding=0),
                )
                self.__setattr__(head, fc)

        def init_weights(self):
            """The seed's loop (the backbone is then loaded from a checkpoint)."""
            for m in self.deconv_layers.modules():
                if isinstance(m, nn.ConvTranspose2d):
                    nn.init.normal_(m.weight, std=0.001)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            for head in self.heads:
                for m in getattr(self, head).modules():
                    if isinstance(m, nn.Conv2d) and m.weight.shape[0] == self.heads[head]:
                        if "hm" in head:
                            nn.init.constant_(m.bias, -2.19)
                        else:
                            nn.init.normal_(m.weight, std=0.001)
                            nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.deconv_layers(x)
            return {head: getattr(self, head)(x) for head in self.heads}

    model = PoseResNet()
    model.init_weights()
    return model


# ---- the common PyTorch U-Net (torch.nn) ---------------------------------------------------
def torch_unet(in_channels: int = 3, num_classes: int = 2, base: int = 64, depth: int = 4):
    """DoubleConv (conv-BN-ReLU twice, no conv bias), Down (max-pool, DoubleConv), Up
    (2x2 transposed conv, concatenate after the skip, DoubleConv), OutConv (1x1)."""
    import torch
    from torch import nn

    class DoubleConv(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.double_conv = nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            )

        def forward(self, x):
            return self.double_conv(x)

    class Down(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

        def forward(self, x):
            return self.maxpool_conv(x)

    class Up(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(cin, cout)

        def forward(self, x1, x2):
            return self.conv(torch.cat([x2, self.up(x1)], dim=1))

    class OutConv(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel_size=1)

        def forward(self, x):
            return self.conv(x)

    widths = [base * 2**i for i in range(depth + 1)]

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.inc = DoubleConv(in_channels, widths[0])
            for i in range(1, depth + 1):
                setattr(self, f"down{i}", Down(widths[i - 1], widths[i]))
            for j in range(1, depth + 1):
                cin = widths[depth - j + 1]
                setattr(self, f"up{j}", Up(cin, cin // 2))
            self.outc = OutConv(widths[0], num_classes)

        def forward(self, x):
            skips = [self.inc(x)]
            for i in range(1, depth + 1):
                skips.append(getattr(self, f"down{i}")(skips[-1]))
            y = skips.pop()
            for j in range(1, depth + 1):
                y = getattr(self, f"up{j}")(y, skips.pop())
            return self.outc(y)

    return UNet()


# ---- timm's VisionTransformer (torch.nn) ---------------------------------------------------
def torch_vit(
    embed_dim: int = 192,
    depth: int = 12,
    num_heads: int = 3,
    *,
    img_size: int = 224,
    patch_size: int = 16,
    in_chans: int = 3,
    num_classes: int = 1000,
    mlp_ratio: float = 4.0,
    weight_init: str = "",
):
    """timm's ``VisionTransformer`` (timm 1.0, ``timm/models/vision_transformer.py``) retyped:
    timm does not import beside this torch (its torchvision import), so this is the
    reference. ``PatchEmbed`` (``proj`` conv, flatten(2).transpose(1, 2)), ``Attention``
    (``qkv`` reshaped to (B, N, 3, H, D) and permuted, timm's unfused path: q * scale @ k^T,
    softmax, @ v), ``Mlp`` (fc1, GELU, fc2), pre-norm ``Block``, the model's own
    ``cls_token`` and ``pos_embed`` parameters, LayerNorm eps 1e-6, token pooling, and
    ``init_weights(mode, needs_reset=False)`` as timm calls it in ``__init__``:
    ``pos_embed`` trunc_normal(.02), ``cls_token`` N(0, 1e-6), then ``named_apply`` of
    ``init_weights_vit_timm`` (``weight_init=""``) or ``init_weights_vit_jax`` (``"jax"``).
    ``"skip"`` leaves every layer's own default (``cls_token``/``pos_embed`` uninitialised,
    as timm's ``torch.empty``). Dropouts and identities are kept as the modules timm has (all
    no-ops here)."""
    import math

    import torch
    from torch import nn

    def trunc_normal_(t, std):
        return nn.init.trunc_normal_(t, mean=0.0, std=std, a=-2.0, b=2.0)

    def lecun_normal_(t):  # variance_scaling_(mode="fan_in", distribution="truncated_normal")
        fan_in = t.shape[1] * math.prod(t.shape[2:])
        with torch.no_grad():
            nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0)  # trunc_normal_tf_: cut at +-2 sigma
            t.mul_(math.sqrt(1.0 / fan_in) / 0.87962566103423978)

    def init_weights_vit_timm(module, name=""):
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def init_weights_vit_jax(module, name="", head_bias=0.0):
        if isinstance(module, nn.Linear):
            if name.startswith("head"):
                nn.init.zeros_(module.weight)
                nn.init.constant_(module.bias, head_bias)
            else:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    if "mlp" in name:
                        nn.init.normal_(module.bias, std=1e-6)
                    else:
                        nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            lecun_normal_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def named_apply(fn, module, name="", include_root=False):
        for child_name, child in module.named_children():
            child_name = f"{name}.{child_name}" if name else child_name
            named_apply(fn, child, child_name, include_root=True)
        if include_root:
            fn(module, name)

    class PatchEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size, bias=True)
            self.norm = nn.Identity()

        def forward(self, x):
            return self.norm(self.proj(x).flatten(2).transpose(1, 2))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_heads = num_heads
            self.head_dim = embed_dim // num_heads
            self.scale = self.head_dim**-0.5
            self.qkv = nn.Linear(embed_dim, embed_dim * 3, bias=True)
            self.q_norm, self.k_norm = nn.Identity(), nn.Identity()
            self.attn_drop = nn.Dropout(0.0)
            self.norm = nn.Identity()
            self.proj = nn.Linear(embed_dim, embed_dim)
            self.proj_drop = nn.Dropout(0.0)

        def forward(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            attn = (q * self.scale) @ k.transpose(-2, -1)
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
            x = self.norm(x.transpose(1, 2).reshape(b, n, c))
            return self.proj_drop(self.proj(x))

    class Mlp(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = int(embed_dim * mlp_ratio)
            self.fc1, self.act = nn.Linear(embed_dim, hidden), nn.GELU()
            self.drop1, self.norm = nn.Dropout(0.0), nn.Identity()
            self.fc2, self.drop2 = nn.Linear(hidden, embed_dim), nn.Dropout(0.0)

        def forward(self, x):
            x = self.norm(self.drop1(self.act(self.fc1(x))))
            return self.drop2(self.fc2(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(embed_dim, eps=1e-6)
            self.attn = Attention()
            self.ls1, self.drop_path1 = nn.Identity(), nn.Identity()
            self.norm2 = nn.LayerNorm(embed_dim, eps=1e-6)
            self.mlp = Mlp()
            self.ls2, self.drop_path2 = nn.Identity(), nn.Identity()

        def forward(self, x):
            x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
            return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    class VisionTransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.num_classes = num_classes
            self.patch_embed = PatchEmbed()
            tokens = (img_size // patch_size) ** 2
            self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.empty(1, tokens + 1, embed_dim))
            self.pos_drop, self.patch_drop = nn.Dropout(0.0), nn.Identity()
            self.norm_pre = nn.Identity()
            self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
            self.fc_norm, self.head_drop = nn.Identity(), nn.Dropout(0.0)
            self.head = nn.Linear(embed_dim, num_classes) if num_classes else nn.Identity()
            if weight_init != "skip":  # timm's 'skip': the layers' own defaults only
                self.init_weights(weight_init)

        def init_weights(self, mode=""):
            head_bias = -math.log(self.num_classes) if "nlhb" in mode else 0.0
            trunc_normal_(self.pos_embed, std=0.02)
            nn.init.normal_(self.cls_token, std=1e-6)
            if mode.startswith("jax"):
                named_apply(lambda m, n: init_weights_vit_jax(m, n, head_bias), self)
            else:
                named_apply(init_weights_vit_timm, self)

        def forward(self, x):
            x = self.patch_embed(x)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
            x = self.norm_pre(self.patch_drop(self.pos_drop(x + self.pos_embed)))
            x = self.norm(self.blocks(x))
            return self.head(self.head_drop(self.fc_norm(x[:, 0])))

    return VisionTransformer()


# ---- Hugging Face's GPT2Model (torch.nn) ---------------------------------------------------
def torch_gpt2(
    n_layer: int = 2,
    n_head: int = 4,
    n_embd: int = 32,
    vocab_size: int = 97,
    n_positions: int = 64,
    init_std: float = 0.02,
    init: bool = True,
):
    """HF transformers' ``GPT2Model`` (``modeling_gpt2.py``) retyped, with its eager
    attention: ``Conv1D`` projections (weight (in, out), ``addmm``), ``c_attn`` split into q,
    k, v and heads, ``q k^T / sqrt(d)`` with the causal ``bias`` buffer (non-persistent, as
    current HF registers it) and ``finfo.min`` where masked, ``NewGELUActivation`` (tanh),
    LayerNorm eps 1e-5, ``wte + wpe(arange(L))`` and ``ln_f``; ``_init_weights`` applied
    module by module (Linear/Conv1D and Embedding N(0, initializer_range), biases 0,
    LayerNorm 1/0, every ``c_proj.weight`` N(0, initializer_range / sqrt(2 n_layer)))."""
    import math

    import torch
    from torch import nn

    class Conv1D(nn.Module):
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = nn.Parameter(torch.empty(nx, nf))
            self.bias = nn.Parameter(torch.zeros(nf))
            nn.init.normal_(self.weight, std=0.02)

        def forward(self, x):
            size_out = x.size()[:-1] + (self.nf,)
            x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
            return x.view(size_out)

    class NewGELUActivation(nn.Module):
        def forward(self, x):
            inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))
            return 0.5 * x * (1.0 + torch.tanh(inner))

    class GPT2Attention(nn.Module):
        def __init__(self):
            super().__init__()
            mask = torch.tril(torch.ones((n_positions, n_positions), dtype=torch.bool))
            self.register_buffer("bias", mask.view(1, 1, n_positions, n_positions), False)
            self.embed_dim, self.num_heads = n_embd, n_head
            self.head_dim = n_embd // n_head
            self.c_attn = Conv1D(3 * n_embd, n_embd)
            self.c_proj = Conv1D(n_embd, n_embd)
            self.attn_dropout, self.resid_dropout = nn.Dropout(0.0), nn.Dropout(0.0)

        def heads(self, t):
            return t.view(*t.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)

        def forward(self, hidden):
            q, k, v = self.c_attn(hidden).split(self.embed_dim, dim=2)
            q, k, v = self.heads(q), self.heads(k), self.heads(v)
            w = torch.matmul(q, k.transpose(-1, -2))
            w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype, device=w.device)
            length = q.size(-2)
            causal = self.bias[:, :, :length, :length]
            w = torch.where(causal, w, torch.finfo(w.dtype).min)
            w = self.attn_dropout(nn.functional.softmax(w, dim=-1))
            out = torch.matmul(w, v).transpose(1, 2).reshape(*hidden.shape[:-1], -1)
            return self.resid_dropout(self.c_proj(out))

    class GPT2MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = Conv1D(4 * n_embd, n_embd)
            self.c_proj = Conv1D(n_embd, 4 * n_embd)
            self.act, self.dropout = NewGELUActivation(), nn.Dropout(0.0)

        def forward(self, x):
            return self.dropout(self.c_proj(self.act(self.c_fc(x))))

    class GPT2Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
            self.attn = GPT2Attention()
            self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
            self.mlp = GPT2MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT2Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab_size, n_embd)
            self.wpe = nn.Embedding(n_positions, n_embd)
            self.drop = nn.Dropout(0.0)
            self.h = nn.ModuleList([GPT2Block() for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(n_embd, eps=1e-5)
            if init:  # post_init(); init=False keeps every layer's own default
                self.apply(self._init_weights)

        def _init_weights(self, module):
            if isinstance(module, (nn.Linear, Conv1D)):
                module.weight.data.normal_(mean=0.0, std=init_std)
                if module.bias is not None:
                    module.bias.data.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.data.normal_(mean=0.0, std=init_std)
            elif isinstance(module, nn.LayerNorm):
                module.bias.data.zero_()
                module.weight.data.fill_(1.0)
            for name, p in module.named_parameters():
                if name == "c_proj.weight":
                    p.data.normal_(mean=0.0, std=init_std / math.sqrt(2 * n_layer))

        def forward(self, input_ids):
            positions = torch.arange(input_ids.shape[-1], device=input_ids.device).unsqueeze(0)
            x = self.drop(self.wte(input_ids) + self.wpe(positions))
            for block in self.h:
                x = block(x)
            return self.ln_f(x)

    return GPT2Model()

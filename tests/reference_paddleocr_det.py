"""PaddleOCR's detection and classification networks retyped in Paddle from the structure of
``ppocr/modeling/`` (backbones/det_mobilenet_v3.py, rec_mobilenet_v3.py,
rec_lcnetv3.py with det=True, necks/db_fpn.py, heads/det_db_head.py, cls_head.py): module
names, shapes and forward only, so xinit's zoo specs can be checked against them key by key
and output by output. Initialisation is PaddleOCR's: Paddle's defaults where its code gives
no ParamAttr, and its KaimingUniform / Constant / Uniform attributes where it does."""

from __future__ import annotations

import math

import paddle
import paddle.nn.functional as F
from paddle import ParamAttr, nn
from paddle.nn.initializer import Constant, KaimingUniform, Uniform


def _kaiming_uniform():
    return ParamAttr(initializer=KaimingUniform())


def _uniform_bias(k):
    bound = 1.0 / math.sqrt(k)
    return ParamAttr(initializer=Uniform(-bound, bound))


def _md8(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvBN(nn.Layer):
    def __init__(self, cin, cout, k, stride, padding, groups=1, act=None):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride, padding, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "relu":
            return F.relu(x)
        if self.act == "hardswish":
            return F.hardswish(x)
        return x


class SE(nn.Layer):
    def __init__(self, c, reduction=4, slope=None):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(c, c // reduction, 1)
        self.conv2 = nn.Conv2D(c // reduction, c, 1)
        self.slope = slope

    def forward(self, x):
        y = F.relu(self.conv1(self.avg_pool(x)))
        y = self.conv2(y)
        y = F.hardsigmoid(y) if self.slope is None else F.hardsigmoid(y, self.slope, 0.5)
        return x * y


class Unit(nn.Layer):
    def __init__(self, cin, mid, cout, k, stride, se, act):
        super().__init__()
        self.shortcut = stride == 1 and cin == cout
        self.expand_conv = ConvBN(cin, mid, 1, 1, 0, act=act)
        self.bottleneck_conv = ConvBN(mid, mid, k, stride, (k - 1) // 2, mid, act)
        self.se = se
        if se:
            self.mid_se = SE(mid)
        self.linear_conv = ConvBN(mid, cout, 1, 1, 0)

    def forward(self, x):
        y = self.bottleneck_conv(self.expand_conv(x))
        if self.se:
            y = self.mid_se(y)
        y = self.linear_conv(y)
        return paddle.add(x, y) if self.shortcut else y


LARGE = [
    [3, 16, 16, False, "relu", 1], [3, 64, 24, False, "relu", 2],
    [3, 72, 24, False, "relu", 1], [5, 72, 40, True, "relu", 2],
    [5, 120, 40, True, "relu", 1], [5, 120, 40, True, "relu", 1],
    [3, 240, 80, False, "hardswish", 2], [3, 200, 80, False, "hardswish", 1],
    [3, 184, 80, False, "hardswish", 1], [3, 184, 80, False, "hardswish", 1],
    [3, 480, 112, True, "hardswish", 1], [3, 672, 112, True, "hardswish", 1],
    [5, 672, 160, True, "hardswish", 2], [5, 960, 160, True, "hardswish", 1],
    [5, 960, 160, True, "hardswish", 1],
]  # fmt: skip
SMALL = [
    [3, 16, 16, True, "relu", (2, 1)], [3, 72, 24, False, "relu", (2, 1)],
    [3, 88, 24, False, "relu", 1], [5, 96, 40, True, "hardswish", (2, 1)],
    [5, 240, 40, True, "hardswish", 1], [5, 240, 40, True, "hardswish", 1],
    [5, 120, 48, True, "hardswish", 1], [5, 144, 48, True, "hardswish", 1],
    [5, 288, 96, True, "hardswish", (2, 1)], [5, 576, 96, True, "hardswish", 1],
    [5, 576, 96, True, "hardswish", 1],
]  # fmt: skip


class DetMobileNetV3(nn.Layer):
    """Large, scale 0.5, SE disabled (PP-OCRv3 det's student)."""

    def __init__(self, scale=0.5, disable_se=True):
        super().__init__()
        inplanes = _md8(16 * scale)
        self.conv = ConvBN(3, inplanes, 3, 2, 1, act="hardswish")
        self.stages, self.out_channels, blocks = [], [], []
        for i, (k, exp, c, se, nl, s) in enumerate(LARGE):
            if s == 2 and i > 2:
                self.out_channels.append(inplanes)
                self.stages.append(nn.Sequential(*blocks))
                blocks = []
            blocks.append(Unit(inplanes, _md8(scale * exp), _md8(scale * c), k, s,
                               se and not disable_se, nl))  # fmt: skip
            inplanes = _md8(scale * c)
        blocks.append(ConvBN(inplanes, _md8(scale * 960), 1, 1, 0, act="hardswish"))
        self.stages.append(nn.Sequential(*blocks))
        self.out_channels.append(_md8(scale * 960))
        for i, stage in enumerate(self.stages):
            self.add_sublayer(sublayer=stage, name=f"stage{i}")

    def forward(self, x):
        x = self.conv(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


class RSELayer(nn.Layer):
    def __init__(self, cin, cout, k, shortcut=True):
        super().__init__()
        self.in_conv = nn.Conv2D(
            cin, cout, k, padding=k // 2, weight_attr=_kaiming_uniform(), bias_attr=False
        )
        self.se_block = SE(cout)
        self.shortcut = shortcut

    def forward(self, x):
        x = self.in_conv(x)
        return x + self.se_block(x) if self.shortcut else self.se_block(x)


def _up(x, s):
    return F.upsample(x, scale_factor=s, mode="nearest", align_mode=1)


class RSEFPN(nn.Layer):
    def __init__(self, in_channels, out_channels, shortcut=True):
        super().__init__()
        self.ins_conv = nn.LayerList()
        self.inp_conv = nn.LayerList()
        for c in in_channels:
            self.ins_conv.append(RSELayer(c, out_channels, 1, shortcut))
            self.inp_conv.append(RSELayer(out_channels, out_channels // 4, 3, shortcut))

    def forward(self, x):
        c2, c3, c4, c5 = x
        in5, in4 = self.ins_conv[3](c5), self.ins_conv[2](c4)
        in3, in2 = self.ins_conv[1](c3), self.ins_conv[0](c2)
        out4 = in4 + _up(in5, 2)
        out3 = in3 + _up(out4, 2)
        out2 = in2 + _up(out3, 2)
        p5, p4 = self.inp_conv[3](in5), self.inp_conv[2](out4)
        p3, p2 = self.inp_conv[1](out3), self.inp_conv[0](out2)
        return paddle.concat([_up(p5, 8), _up(p4, 4), _up(p3, 2), p2], axis=1)


class DBBranch(nn.Layer):
    def __init__(self, c):
        super().__init__()
        q = c // 4
        self.conv1 = nn.Conv2D(c, q, 3, padding=1, bias_attr=False)

        def bn():
            return nn.BatchNorm(
                q,
                act="relu",
                param_attr=ParamAttr(initializer=Constant(1.0)),
                bias_attr=ParamAttr(initializer=Constant(1e-4)),
            )

        self.conv_bn1 = bn()
        self.conv2 = nn.Conv2DTranspose(
            q, q, 2, 2, weight_attr=_kaiming_uniform(), bias_attr=_uniform_bias(q)
        )
        self.conv_bn2 = bn()
        self.conv3 = nn.Conv2DTranspose(
            q, 1, 2, 2, weight_attr=_kaiming_uniform(), bias_attr=_uniform_bias(q)
        )

    def forward(self, x):
        x = self.conv_bn2(self.conv2(self.conv_bn1(self.conv1(x))))
        return F.sigmoid(self.conv3(x))


class DBHead(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.binarize = DBBranch(c)
        self.thresh = DBBranch(c)

    def forward(self, x):
        return {"maps": self.binarize(x)}


class PPOCRv3Det(nn.Layer):
    """BaseModel: backbone, neck, head."""

    def __init__(self):
        super().__init__()
        self.backbone = DetMobileNetV3()
        self.neck = RSEFPN(self.backbone.out_channels, 96)
        self.head = DBHead(96)

    def forward(self, x):
        return self.head(self.neck(self.backbone(x)))


class ClsMobileNetV3(nn.Layer):
    """rec_mobilenet_v3 small, scale 0.35 (the classifier's backbone)."""

    def __init__(self, scale=0.35):
        super().__init__()
        inplanes = _md8(16 * scale)
        self.conv1 = ConvBN(3, inplanes, 3, 2, 1, act="hardswish")
        blocks = []
        for k, exp, c, se, nl, s in SMALL:
            blocks.append(Unit(inplanes, _md8(scale * exp), _md8(scale * c), k, s, se, nl))
            inplanes = _md8(scale * c)
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = ConvBN(inplanes, _md8(scale * 576), 1, 1, 0, act="hardswish")
        self.pool = nn.MaxPool2D(2, 2, 0)
        self.out_channels = _md8(scale * 576)

    def forward(self, x):
        return self.pool(self.conv2(self.blocks(self.conv1(x))))


class ClsHead(nn.Layer):
    def __init__(self, c, class_dim=2):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2D(1)
        bound = 1.0 / math.sqrt(c)
        self.fc = nn.Linear(c, class_dim, weight_attr=ParamAttr(initializer=Uniform(-bound, bound)))

    def forward(self, x):
        x = self.pool(x)
        x = paddle.reshape(x, [x.shape[0], x.shape[1]])
        return F.softmax(self.fc(x), axis=1)


class PPOCRCls(nn.Layer):
    def __init__(self):
        super().__init__()
        self.backbone = ClsMobileNetV3()
        self.head = ClsHead(self.backbone.out_channels)

    def forward(self, x):
        return self.head(self.backbone(x))

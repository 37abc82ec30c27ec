"""PaddleOCR's detection and classification networks retyped in Paddle from the structure of
``ppocr/modeling/`` (backbones/det_mobilenet_v3.py, rec_mobilenet_v3.py,
rec_lcnetv3.py with det=True, rec_hgnet.py with det=True, necks/db_fpn.py with ASFBlock,
necks/intracl.py, heads/det_db_head.py with PFHeadLocal, cls_head.py): module
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


def _top_down(convs, x):
    """The lateral ``convs`` on c2 .. c5, summed top-down: (out2, out3, out4, in5)."""
    c2, c3, c4, c5 = x
    in5, in4, in3, in2 = convs[3](c5), convs[2](c4), convs[1](c3), convs[0](c2)
    out4 = in4 + _up(in5, 2)
    out3 = in3 + _up(out4, 2)
    return in2 + _up(out3, 2), out3, out4, in5


def _fused(p2, p3, p4, p5):
    return paddle.concat([_up(p5, 8), _up(p4, 4), _up(p3, 2), p2], axis=1)


class RSEFPN(nn.Layer):
    """``intracl``: incl1 .. incl4 registered after the (then empty) lists, as PaddleOCR."""

    def __init__(self, in_channels, out_channels, shortcut=True, intracl=False):
        super().__init__()
        self.ins_conv = nn.LayerList()
        self.inp_conv = nn.LayerList()
        self.intracl = intracl
        if intracl:
            for i in range(1, 5):
                setattr(self, f"incl{i}", IntraCLBlock(out_channels // 4))
        for c in in_channels:
            self.ins_conv.append(RSELayer(c, out_channels, 1, shortcut))
            self.inp_conv.append(RSELayer(out_channels, out_channels // 4, 3, shortcut))

    def forward(self, x):
        ps = [conv(t) for conv, t in zip(self.inp_conv, _top_down(self.ins_conv, x))]
        if self.intracl:
            ps = [getattr(self, f"incl{i + 1}")(p) for i, p in enumerate(ps)]
        return _fused(*ps)


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

    def forward(self, x, return_f=False):
        f = self.conv_bn2(self.conv2(self.conv_bn1(self.conv1(x))))
        x = F.sigmoid(self.conv3(f))
        return (x, f) if return_f else x


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


# ---- heads/det_db_head.py: PFHeadLocal ----------------------------------------------------
class LocalModule(nn.Layer):
    def __init__(self, in_c, mid_c):
        super().__init__()
        self.last_3 = ConvBN(in_c + 1, mid_c, 3, 1, 1, act="relu")
        self.last_1 = nn.Conv2D(mid_c, 1, 1, 1, 0)

    def forward(self, x, init_map):
        return self.last_1(self.last_3(paddle.concat([init_map, x], axis=1)))


class PFHeadLocal(DBHead):
    def __init__(self, c, mode="small"):
        super().__init__(c)
        self.up_conv = nn.Upsample(scale_factor=2, mode="nearest", align_mode=1)
        self.cbn_layer = LocalModule(c // 4, c // 4 if mode == "large" else c // 8)

    def forward(self, x):
        shrink_maps, f = self.binarize(x, return_f=True)
        cbn_maps = F.sigmoid(self.cbn_layer(self.up_conv(f), shrink_maps))
        return {"maps": 0.5 * (shrink_maps + cbn_maps), "cbn_maps": cbn_maps}


# ---- necks/db_fpn.py: DBFPN (with ASFBlock), LKPAN; necks/intracl.py ----------------------
def _ku_conv(cin, cout, k, stride=1):
    return nn.Conv2D(cin, cout, k, stride, k // 2, weight_attr=_kaiming_uniform(), bias_attr=False)


class ASFBlock(nn.Layer):
    def __init__(self, cin, inter, n=4):
        super().__init__()
        self.conv = nn.Conv2D(cin, inter, 3, padding=1)
        self.spatial_scale = nn.Sequential(
            _ku_conv(1, 1, 3), nn.ReLU(), _ku_conv(1, 1, 1), nn.Sigmoid()
        )
        self.channel_scale = nn.Sequential(_ku_conv(inter, n, 1), nn.Sigmoid())
        self.n = n

    def forward(self, fuse, features):
        fuse = self.conv(fuse)
        scores = self.spatial_scale(paddle.mean(fuse, axis=1, keepdim=True)) + fuse
        scores = self.channel_scale(scores)
        return paddle.concat([scores[:, i : i + 1] * features[i] for i in range(self.n)], axis=1)


class DBFPN(nn.Layer):
    def __init__(self, in_channels, c, use_asf=False):
        super().__init__()
        for i, cin in enumerate(in_channels):
            setattr(self, f"in{i + 2}_conv", _ku_conv(cin, c, 1))
        for i in (5, 4, 3, 2):
            setattr(self, f"p{i}_conv", _ku_conv(c, c // 4, 3))
        self.use_asf = use_asf
        if use_asf:
            self.asf = ASFBlock(c, c // 4)

    def forward(self, x):
        lateral = [self.in2_conv, self.in3_conv, self.in4_conv, self.in5_conv]
        out2, out3, out4, in5 = _top_down(lateral, x)
        p5, p4 = _up(self.p5_conv(in5), 8), _up(self.p4_conv(out4), 4)
        p3, p2 = _up(self.p3_conv(out3), 2), self.p2_conv(out2)
        fuse = paddle.concat([p5, p4, p3, p2], axis=1)
        return self.asf(fuse, [p5, p4, p3, p2]) if self.use_asf else fuse


class IntraCLBlock(nn.Layer):
    def __init__(self, c, rf=2):
        super().__init__()
        r = c // rf
        self.conv1x1_reduce_channel = nn.Conv2D(c, r, 1)
        self.conv1x1_return_channel = nn.Conv2D(r, c, 1)
        for k in (7, 5, 3):
            setattr(self, f"v_layer_{k}x1", nn.Conv2D(r, r, (k, 1), padding=(k // 2, 0)))
        for k in (7, 5, 3):
            setattr(self, f"q_layer_1x{k}", nn.Conv2D(r, r, (1, k), padding=(0, k // 2)))
        for k in (7, 5, 3):
            setattr(self, f"c_layer_{k}x{k}", nn.Conv2D(r, r, k, padding=k // 2))
        self.bn = nn.BatchNorm2D(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv1x1_reduce_channel(x)
        for k in (7, 5, 3):
            c, v = getattr(self, f"c_layer_{k}x{k}"), getattr(self, f"v_layer_{k}x1")
            y = c(y) + v(y) + getattr(self, f"q_layer_1x{k}")(y)
        return x + self.relu(self.bn(self.conv1x1_return_channel(y)))


class LKPAN(nn.Layer):
    """mode "large"; intracl's blocks registered after the four lists."""

    def __init__(self, in_channels, c, intracl=False):
        super().__init__()
        q = c // 4
        self.ins_conv = nn.LayerList([_ku_conv(cin, c, 1) for cin in in_channels])
        self.inp_conv = nn.LayerList([_ku_conv(c, q, 9) for _ in in_channels])
        self.pan_head_conv = nn.LayerList([_ku_conv(q, q, 3, 2) for _ in in_channels[1:]])
        self.pan_lat_conv = nn.LayerList([_ku_conv(q, q, 9) for _ in in_channels])
        self.intracl = intracl
        if intracl:
            for i in range(1, 5):
                setattr(self, f"incl{i}", IntraCLBlock(q))

    def forward(self, x):
        f2, f3, f4, f5 = [conv(t) for conv, t in zip(self.inp_conv, _top_down(self.ins_conv, x))]
        pan3 = f3 + self.pan_head_conv[0](f2)
        pan4 = f4 + self.pan_head_conv[1](pan3)
        pan5 = f5 + self.pan_head_conv[2](pan4)
        ps = [lat(f) for lat, f in zip(self.pan_lat_conv, (f2, pan3, pan4, pan5))]
        if self.intracl:
            ps = [getattr(self, f"incl{i + 1}")(p) for i, p in enumerate(ps)]
        return _fused(*ps)


# ---- backbones/rec_hgnet.py with det=True ----------------------------------------------------
HGNET_SMALL_DET = (  # in, mid, out, blocks, downsample, stride
    (128, 128, 256, 1, False, 2),
    (256, 160, 512, 1, True, 2),
    (512, 192, 768, 2, True, 2),
    (768, 224, 1024, 1, True, 2),
)


def det_pphgnet(stem=(64, 64, 128), stages=HGNET_SMALL_DET, layer_num=6):
    """PPHGNet(det=True): stem, max pool, every stage's map out; its convs KaimingNormal."""
    import reference_paddleocr

    return reference_paddleocr._classes()["PPHGNet"](list(stem), stages, layer_num, det=True)


def DetModel(backbone, neck, head):  # noqa: N802 - PaddleOCR's BaseModel, as the rec one
    import reference_paddleocr

    return reference_paddleocr._classes()["RecModel"](backbone, neck, head)


def ppocrv4_server_det(stem=(64, 64, 128), stages=HGNET_SMALL_DET, layer_num=6, width=256):
    """PP-OCRv4 server detection (PPHGNet_small det, LKPAN intracl, PFHeadLocal large);
    narrower with smaller ``stem``/``stages``/``layer_num``/``width``."""
    bb = det_pphgnet(stem, stages, layer_num)
    return DetModel(bb, LKPAN(bb.out_channels, width, intracl=True), PFHeadLocal(width, "large"))


def mv3_rsefpn_intracl_pfhead(width=32):
    """MobileNetV3 (large, 0.5), RSEFPN with IntraCL blocks, PFHeadLocal "small"."""
    bb = DetMobileNetV3()
    return DetModel(bb, RSEFPN(bb.out_channels, width, intracl=True), PFHeadLocal(width, "small"))


def mv3_dbfpn_asf(width=32):
    """MobileNetV3 (large, 0.5), DBFPN with ASF (DBNet++'s neck), DBHead."""
    bb = DetMobileNetV3()
    return DetModel(bb, DBFPN(bb.out_channels, width, use_asf=True), DBHead(width))


# ---- backbones/rec_lcnetv3.py with det=True (PP-OCRv4 mobile detection) ---------------------
LCNET_DET = {  # k, in, out, stride, se (unscaled)
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 4,
    "blocks6": [
        (5, 256, 512, 2, True),
        (5, 512, 512, 1, True),
        (5, 512, 512, 1, False),
        (5, 512, 512, 1, False),
    ],
}


class DetPPLCNetV3(nn.Layer):
    """PPLCNetV3(det=True): conv1, blocks2 .. blocks6, then ``layer_list`` (1x1 convs with
    bias, Paddle's defaults) on blocks3 .. blocks6 to int(16, 24, 56, 480 x scale)."""

    def __init__(self, scale=0.75, conv_kxk_num=4):
        super().__init__()
        import reference_paddleocr

        c = reference_paddleocr._classes()
        md = c["make_divisible"]
        self.conv1 = c["LCConvBNLayer"](3, md(16 * scale), 3, 2)
        for name, rows in LCNET_DET.items():
            blocks = [c["LCNetV3Block"](md(i * scale), md(o * scale), s, k, se, conv_kxk_num)
                      for k, i, o, s, se in rows]  # fmt: skip
            setattr(self, name, nn.Sequential(*blocks))
        widths = [md(LCNET_DET[b][-1][2] * scale) for b in ("blocks3", "blocks4", "blocks5",
                                                              "blocks6")]  # fmt: skip
        self.out_channels = [int(w * scale) for w in (16, 24, 56, 480)]
        self.layer_list = nn.LayerList(
            [nn.Conv2D(a, b, 1, 1, 0) for a, b in zip(widths, self.out_channels)]
        )

    def forward(self, x):
        x = self.blocks2(self.conv1(x))
        outs = []
        for name in ("blocks3", "blocks4", "blocks5", "blocks6"):
            x = getattr(self, name)(x)
            outs.append(x)
        return [layer(o) for layer, o in zip(self.layer_list, outs)]


def ppocrv4_mobile_det(scale=0.75, conv_kxk_num=4, width=96):
    """PP-OCRv4 mobile detection (``PP-OCRv4_mobile_det.yml``): PPLCNetV3 det, RSEFPN,
    DBHead; narrower with a smaller ``scale``/``width``."""
    bb = DetPPLCNetV3(scale, conv_kxk_num)
    return DetModel(bb, RSEFPN(bb.out_channels, width), DBHead(width))

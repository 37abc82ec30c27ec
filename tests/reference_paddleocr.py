"""PaddleOCR's recognition models retyped in plain ``paddle.nn``: the ground truth for the
``xinit.models.paddleocr`` family (state-dict keys, shapes, initialisation, eval outputs).

Retyped from ``ppocr/modeling/`` (read for names, shapes and init, written anew):

* ``backbones/rec_mv1_enhance.py``: :class:`MobileNetV1Enhance` (``ConvBNLayer`` with
  ``_conv``/``_batch_norm``, the old ``paddle.nn.BatchNorm`` carrying a hard-swish,
  ``DepthwiseSeparable``, ``SEModule``), with ``last_conv_stride``/``last_pool_type``/
  ``last_pool_kernel_size`` as in PP-OCRv3's configs;
* ``backbones/rec_lcnetv3.py``: :class:`PPLCNetV3` (rec), ``LearnableRepLayer``,
  ``LearnableAffineBlock``, ``Act``, ``SELayer``;
* ``backbones/rec_svtrnet.py``: the SVTR ``Block`` (global mixer), ``Attention``, ``Mlp``,
  ``ConvBNLayer``;
* ``necks/rnn.py``: ``SequenceEncoder`` with ``Im2Seq``, ``EncoderWithRNN``,
  ``EncoderWithSVTR``;
* ``heads/rec_ctc_head.py``: ``CTCHead`` (softmax at inference);
* ``architectures/base_model.py``: :class:`RecModel` (``backbone``/``neck``/``head``), and
  ``heads/rec_multi_head.py``'s inference path (``ctc_encoder``/``ctc_head``).

Paddle is imported inside :func:`_classes`, so importing this module costs nothing.
"""

from __future__ import annotations

import functools
import math


@functools.cache
def _classes():  # noqa: C901 - one namespace of retyped classes, built once
    import paddle
    from paddle import ParamAttr, nn
    from paddle.nn import functional as F
    from paddle.nn.initializer import Constant, KaimingNormal, KaimingUniform, TruncatedNormal

    def kaiming():
        return ParamAttr(initializer=KaimingNormal())

    # ---- rec_mv1_enhance.py ---------------------------------------------------------------
    class MV1ConvBNLayer(nn.Layer):
        def __init__(self, cin, k, cout, stride, padding, groups=1, act="hard_swish"):
            super().__init__()
            self._conv = nn.Conv2D(
                cin, cout, k, stride, padding, groups=groups, weight_attr=kaiming(), bias_attr=False
            )
            self._batch_norm = nn.BatchNorm(cout, act=act)

        def forward(self, x):
            return self._batch_norm(self._conv(x))

    class SEModule(nn.Layer):
        def __init__(self, channel, reduction=4):
            super().__init__()
            self.avg_pool = nn.AdaptiveAvgPool2D(1)
            self.conv1 = nn.Conv2D(channel, channel // reduction, 1)
            self.conv2 = nn.Conv2D(channel // reduction, channel, 1)

        def forward(self, x):
            y = F.relu(self.conv1(self.avg_pool(x)))
            return paddle.multiply(x, F.hardsigmoid(self.conv2(y)))

    class DepthwiseSeparable(nn.Layer):
        def __init__(self, cin, f1, f2, groups, stride, scale, dw_size=3, padding=1, se=False):
            super().__init__()
            self.use_se = se
            mid = int(f1 * scale)
            self._depthwise_conv = MV1ConvBNLayer(
                cin, dw_size, mid, stride, padding, groups=int(groups * scale)
            )
            if se:
                self._se = SEModule(mid)
            self._pointwise_conv = MV1ConvBNLayer(mid, 1, int(f2 * scale), 1, 0)

        def forward(self, x):
            y = self._depthwise_conv(x)
            if self.use_se:
                y = self._se(y)
            return self._pointwise_conv(y)

    class MobileNetV1Enhance(nn.Layer):
        def __init__(
            self,
            in_channels=3,
            scale=0.5,
            last_conv_stride=1,
            last_pool_type="max",
            last_pool_kernel_size=(3, 2),
        ):
            super().__init__()
            s = scale
            self.conv1 = MV1ConvBNLayer(3, 3, int(32 * s), 2, 1)
            # (in, filters1, filters2, groups, stride, dw_size, padding, se)
            rows = [
                (32, 32, 64, 32, 1, 3, 1, False),
                (64, 64, 128, 64, 1, 3, 1, False),
                (128, 128, 128, 128, 1, 3, 1, False),
                (128, 128, 256, 128, (2, 1), 3, 1, False),
                (256, 256, 256, 256, 1, 3, 1, False),
                (256, 256, 512, 256, (2, 1), 3, 1, False),
            ]
            rows += [(512, 512, 512, 512, 1, 5, 2, False)] * 5
            rows += [
                (512, 512, 1024, 512, (2, 1), 5, 2, True),
                (1024, 1024, 1024, 1024, last_conv_stride, 5, 2, True),
            ]
            self.block_list = nn.Sequential(
                *[
                    DepthwiseSeparable(int(c * s), f1, f2, g, st, s, k, p, se)
                    for c, f1, f2, g, st, k, p, se in rows
                ]
            )
            if last_pool_type == "avg":
                k = list(last_pool_kernel_size)
                self.pool = nn.AvgPool2D(kernel_size=k, stride=k, padding=0)
            else:
                self.pool = nn.MaxPool2D(kernel_size=2, stride=2, padding=0)
            self.out_channels = int(1024 * s)

        def forward(self, x):
            return self.pool(self.block_list(self.conv1(x)))

    # ---- rec_lcnetv3.py -------------------------------------------------------------------
    def make_divisible(v, divisor=16):
        new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
        return new_v + divisor if new_v < 0.9 * v else new_v

    class LearnableAffineBlock(nn.Layer):
        def __init__(self, scale_value=1.0, bias_value=0.0):
            super().__init__()
            self.scale = self.create_parameter([1], default_initializer=Constant(scale_value))
            self.bias = self.create_parameter([1], default_initializer=Constant(bias_value))

        def forward(self, x):
            return self.scale * x + self.bias

    class LCConvBNLayer(nn.Layer):
        def __init__(self, cin, cout, k, stride, groups=1):
            super().__init__()
            self.conv = nn.Conv2D(
                cin,
                cout,
                k,
                stride,
                (k - 1) // 2,
                groups=groups,
                weight_attr=kaiming(),
                bias_attr=False,
            )
            self.bn = nn.BatchNorm2D(cout)

        def forward(self, x):
            return self.bn(self.conv(x))

    class Act(nn.Layer):
        def __init__(self, act="hswish"):
            super().__init__()
            self.act = nn.Hardswish() if act == "hswish" else nn.ReLU()
            self.lab = LearnableAffineBlock()

        def forward(self, x):
            return self.lab(self.act(x))

    class LearnableRepLayer(nn.Layer):
        def __init__(self, cin, cout, k, stride=1, groups=1, num_conv_branches=1):
            super().__init__()
            self.stride, self.k, self.cin, self.cout, self.groups = stride, k, cin, cout, groups
            self.is_repped = False
            self.identity = nn.BatchNorm2D(cin) if cout == cin and stride == 1 else None
            self.conv_kxk = nn.LayerList(
                [LCConvBNLayer(cin, cout, k, stride, groups) for _ in range(num_conv_branches)]
            )
            self.conv_1x1 = LCConvBNLayer(cin, cout, 1, stride, groups) if k > 1 else None
            self.lab = LearnableAffineBlock()
            self.act = Act()

        def forward(self, x):
            if self.is_repped:  # after rep(), as PaddleOCR's exported model runs
                out = self.lab(self.reparam_conv(x))
                return self.act(out) if self.stride != 2 else out
            out = 0
            if self.identity is not None:
                out += self.identity(x)
            if self.conv_1x1 is not None:
                out += self.conv_1x1(x)
            for conv in self.conv_kxk:
                out += conv(x)
            out = self.lab(out)
            return self.act(out) if self.stride != 2 else out

        @paddle.no_grad()
        def rep(self):
            """PaddleOCR's ``rep()``: each branch's kernel scaled by its BatchNorm (the
            1x1 one zero-padded to k x k, the identity a centre tap), summed in float32 into
            a new biased Conv2D ``reparam_conv`` (padding (k-1)/2); the branches deleted."""
            if self.is_repped:
                return

            def fused(kernel, bn):
                std = (bn._variance + bn._epsilon).sqrt()
                t = bn.weight / std
                return kernel * t.reshape((-1, 1, 1, 1)), bn.bias - bn._mean * t

            kernel, bias = 0, 0
            parts = [(c.conv.weight, c.bn) for c in self.conv_kxk]
            if self.conv_1x1 is not None:
                pad = self.k // 2
                parts.append((F.pad(self.conv_1x1.conv.weight, [pad] * 4), self.conv_1x1.bn))
            if self.identity is not None:
                per = self.cin // self.groups
                ident = paddle.zeros((self.cin, per, self.k, self.k), dtype="float32")
                for i in range(self.cin):
                    ident[i, i % per, self.k // 2, self.k // 2] = 1
                parts.append((ident, self.identity))
            for w, bn in parts:
                k, b = fused(w, bn)
                kernel, bias = kernel + k, bias + b
            self.reparam_conv = nn.Conv2D(
                self.cin, self.cout, self.k, self.stride, (self.k - 1) // 2, groups=self.groups
            )
            self.reparam_conv.weight.set_value(kernel)
            self.reparam_conv.bias.set_value(bias)
            del self.conv_kxk
            if self.conv_1x1 is not None:
                del self.conv_1x1
            if self.identity is not None:
                del self.identity
            self.is_repped = True

    class SELayer(nn.Layer):
        def __init__(self, channel, reduction=4):
            super().__init__()
            self.avg_pool = nn.AdaptiveAvgPool2D(1)
            self.conv1 = nn.Conv2D(channel, channel // reduction, 1)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2D(channel // reduction, channel, 1)
            self.hardsigmoid = nn.Hardsigmoid()

        def forward(self, x):
            y = self.relu(self.conv1(self.avg_pool(x)))
            return paddle.multiply(x, self.hardsigmoid(self.conv2(y)))

    class LCNetV3Block(nn.Layer):
        def __init__(self, cin, cout, stride, dw_size, use_se=False, conv_kxk_num=4):
            super().__init__()
            self.use_se = use_se
            self.dw_conv = LearnableRepLayer(cin, cin, dw_size, stride, cin, conv_kxk_num)
            if use_se:
                self.se = SELayer(cin)
            self.pw_conv = LearnableRepLayer(cin, cout, 1, 1, 1, conv_kxk_num)

        def forward(self, x):
            x = self.dw_conv(x)
            if self.use_se:
                x = self.se(x)
            return self.pw_conv(x)

    LCNET_REC = {  # k, in, out, stride, se
        "blocks2": [(3, 16, 32, 1, False)],
        "blocks3": [(3, 32, 64, 1, False), (3, 64, 64, 1, False)],
        "blocks4": [(3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)],
        "blocks5": [(3, 128, 256, (1, 2), False)] + [(5, 256, 256, 1, False)] * 4,
        "blocks6": [
            (5, 256, 512, (2, 1), True),
            (5, 512, 512, 1, True),
            (5, 512, 512, (2, 1), False),
            (5, 512, 512, 1, False),
        ],
    }

    class PPLCNetV3(nn.Layer):
        def __init__(self, scale=1.0, conv_kxk_num=4):
            super().__init__()
            md = make_divisible
            self.conv1 = LCConvBNLayer(3, md(16 * scale), 3, 2)
            for name, rows in LCNET_REC.items():
                blocks = [
                    LCNetV3Block(md(i * scale), md(o * scale), s, k, se, conv_kxk_num)
                    for k, i, o, s, se in rows
                ]
                setattr(self, name, nn.Sequential(*blocks))
            self.out_channels = md(512 * scale)

        def forward(self, x):
            x = self.conv1(x)
            for name in LCNET_REC:
                x = getattr(self, name)(x)
            return F.avg_pool2d(x, [3, 2])  # the eval path; training pools adaptively

    # ---- rec_hgnet.py ---------------------------------------------------------------------
    class ConvBNAct(nn.Layer):
        def __init__(self, cin, cout, k, stride, groups=1, use_act=True):
            super().__init__()
            self.use_act = use_act
            self.conv = nn.Conv2D(
                cin, cout, k, stride, (k - 1) // 2, groups=groups, bias_attr=False
            )
            self.bn = nn.BatchNorm2D(cout)
            if use_act:
                self.act = nn.ReLU()

        def forward(self, x):
            x = self.bn(self.conv(x))
            return self.act(x) if self.use_act else x

    class ESEModule(nn.Layer):
        def __init__(self, channels):
            super().__init__()
            self.avg_pool = nn.AdaptiveAvgPool2D(1)
            self.conv = nn.Conv2D(channels, channels, 1)
            self.sigmoid = nn.Sigmoid()

        def forward(self, x):
            return paddle.multiply(x, self.sigmoid(self.conv(self.avg_pool(x))))

    class HG_Block(nn.Layer):
        def __init__(self, cin, mid, cout, layer_num, identity=False):
            super().__init__()
            self.identity = identity
            self.layers = nn.LayerList(
                [ConvBNAct(cin if i == 0 else mid, mid, 3, 1) for i in range(layer_num)]
            )
            self.aggregation_conv = ConvBNAct(cin + layer_num * mid, cout, 1, 1)
            self.att = ESEModule(cout)

        def forward(self, x):
            outs, y = [x], x
            for layer in self.layers:
                y = layer(y)
                outs.append(y)
            y = self.att(self.aggregation_conv(paddle.concat(outs, axis=1)))
            return y + x if self.identity else y

    class HG_Stage(nn.Layer):
        def __init__(self, cin, mid, cout, block_num, layer_num, downsample=True, stride=(2, 1)):
            super().__init__()
            self.downsample = downsample
            if downsample:
                stride = stride if isinstance(stride, int) else list(stride)
                self.downsample = ConvBNAct(cin, cin, 3, stride, cin, use_act=False)
            blocks = [HG_Block(cin, mid, cout, layer_num)]
            blocks += [HG_Block(cout, mid, cout, layer_num, True) for _ in range(block_num - 1)]
            self.blocks = nn.Sequential(*blocks)

        def forward(self, x):
            return self.blocks(self.downsample(x) if self.downsample else x)

    class PPHGNet(nn.Layer):
        """``det``: a max pool after the stem, every stage's map out (det stage rows)."""

        def __init__(self, stem_channels, stage_config, layer_num, in_channels=3, det=False):
            super().__init__()
            self.det = det
            chans = [in_channels, *stem_channels]
            self.stem = nn.Sequential(
                *[
                    ConvBNAct(chans[i], chans[i + 1], 3, 2 if i == 0 else 1)
                    for i in range(len(chans) - 1)
                ]
            )
            if det:
                self.pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
            self.stages = nn.LayerList(
                [HG_Stage(*row[:4], layer_num, *row[4:]) for row in stage_config]
            )
            self.out_channels = [r[2] for r in stage_config] if det else stage_config[-1][2]
            for m in self.sublayers():
                if isinstance(m, nn.Conv2D):
                    KaimingNormal()(m.weight)
                elif isinstance(m, nn.BatchNorm2D):
                    Constant(1.0)(m.weight)
                    Constant(0.0)(m.bias)

        def forward(self, x):
            x = self.pool(self.stem(x)) if self.det else self.stem(x)
            outs = []
            for stage in self.stages:
                x = stage(x)
                outs.append(x)
            return outs if self.det else F.avg_pool2d(x, [3, 2])

    # ---- rec_svtrnet.py -------------------------------------------------------------------
    trunc_normal_ = TruncatedNormal(std=0.02)

    class SVTRConvBNLayer(nn.Layer):
        def __init__(self, cin, cout, kernel_size=3, stride=1, padding=0, act=nn.GELU):
            super().__init__()
            self.conv = nn.Conv2D(
                cin,
                cout,
                kernel_size,
                stride,
                padding,
                weight_attr=ParamAttr(initializer=KaimingUniform()),
                bias_attr=False,
            )
            self.norm = nn.BatchNorm2D(cout)
            self.act = act()

        def forward(self, x):
            return self.act(self.norm(self.conv(x)))

    class Mlp(nn.Layer):
        def __init__(self, dim, hidden, act_layer=nn.GELU, drop=0.0):
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = act_layer()
            self.fc2 = nn.Linear(hidden, dim)
            self.drop = nn.Dropout(drop)

        def forward(self, x):
            return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))

    class Attention(nn.Layer):
        def __init__(self, dim, num_heads=8, qkv_bias=False, attn_drop=0.0, proj_drop=0.0):
            super().__init__()
            self.num_heads, self.dim = num_heads, dim
            self.head_dim = dim // num_heads
            self.scale = self.head_dim**-0.5
            self.qkv = nn.Linear(dim, dim * 3, bias_attr=qkv_bias)
            self.attn_drop = nn.Dropout(attn_drop)
            self.proj = nn.Linear(dim, dim)
            self.proj_drop = nn.Dropout(proj_drop)

        def forward(self, x):
            qkv = self.qkv(x).reshape((0, -1, 3, self.num_heads, self.head_dim))
            qkv = qkv.transpose((2, 0, 3, 1, 4))
            q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
            attn = self.attn_drop(F.softmax(q.matmul(k.transpose((0, 1, 3, 2))), axis=-1))
            x = attn.matmul(v).transpose((0, 2, 1, 3)).reshape((0, -1, self.dim))
            return self.proj_drop(self.proj(x))

    class Block(nn.Layer):
        def __init__(
            self,
            dim,
            num_heads,
            mlp_ratio=4.0,
            qkv_bias=False,
            drop=0.0,
            attn_drop=0.0,
            act_layer=nn.GELU,
            epsilon=1e-6,
            prenorm=True,
        ):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
            self.mixer = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
            self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer, drop)
            self.prenorm = prenorm

        def forward(self, x):
            if self.prenorm:
                x = self.norm1(x + self.mixer(x))
                return self.norm2(x + self.mlp(x))
            x = x + self.mixer(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    def svtr_init(m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight)
            if m.bias is not None:
                Constant(0.0)(m.bias)
        elif isinstance(m, nn.LayerNorm):
            Constant(0.0)(m.bias)
            Constant(1.0)(m.weight)

    # ---- necks/rnn.py ---------------------------------------------------------------------
    class Im2Seq(nn.Layer):
        def forward(self, x):
            assert x.shape[2] == 1
            return x.squeeze(axis=2).transpose([0, 2, 1])

    class EncoderWithRNN(nn.Layer):
        def __init__(self, cin, hidden_size):
            super().__init__()
            self.out_channels = hidden_size * 2
            self.lstm = nn.LSTM(cin, hidden_size, direction="bidirectional", num_layers=2)

        def forward(self, x):
            return self.lstm(x)[0]

    class EncoderWithSVTR(nn.Layer):
        def __init__(
            self,
            cin,
            dims=64,
            depth=2,
            hidden_dims=120,
            num_heads=8,
            qkv_bias=True,
            mlp_ratio=2.0,
            drop_rate=0.1,
            attn_drop_rate=0.1,
            kernel_size=(3, 3),
        ):
            super().__init__()
            pad = [kernel_size[0] // 2, kernel_size[1] // 2]
            k = list(kernel_size)
            self.conv1 = SVTRConvBNLayer(cin, cin // 8, k, padding=pad, act=nn.Swish)
            self.conv2 = SVTRConvBNLayer(cin // 8, hidden_dims, 1, act=nn.Swish)
            self.svtr_block = nn.LayerList(
                [
                    Block(
                        hidden_dims,
                        num_heads,
                        mlp_ratio,
                        qkv_bias,
                        drop_rate,
                        attn_drop_rate,
                        nn.Swish,
                        1e-5,
                        prenorm=False,
                    )
                    for _ in range(depth)
                ]
            )
            self.norm = nn.LayerNorm(hidden_dims, epsilon=1e-6)
            self.conv3 = SVTRConvBNLayer(hidden_dims, cin, 1, act=nn.Swish)
            self.conv4 = SVTRConvBNLayer(2 * cin, cin // 8, k, padding=pad, act=nn.Swish)
            self.conv1x1 = SVTRConvBNLayer(cin // 8, dims, 1, act=nn.Swish)
            self.out_channels = dims
            self.apply(svtr_init)

        def forward(self, x):
            h = x
            z = self.conv2(self.conv1(x))
            _, c, hh, ww = z.shape
            z = z.flatten(2).transpose([0, 2, 1])
            for blk in self.svtr_block:
                z = blk(z)
            z = self.norm(z).reshape([0, hh, ww, c]).transpose([0, 3, 1, 2])
            z = paddle.concat((h, self.conv3(z)), axis=1)
            return self.conv1x1(self.conv4(z))

    class SequenceEncoder(nn.Layer):
        def __init__(self, in_channels, encoder_type, hidden_size=48, **kwargs):
            super().__init__()
            self.encoder_reshape = Im2Seq()
            self.encoder_type = encoder_type
            self.out_channels = in_channels
            if encoder_type == "rnn":
                self.encoder = EncoderWithRNN(in_channels, hidden_size)
            elif encoder_type == "svtr":
                self.encoder = EncoderWithSVTR(in_channels, **kwargs)
            if encoder_type != "reshape":
                self.out_channels = self.encoder.out_channels

        def forward(self, x):
            if self.encoder_type == "svtr":
                return self.encoder_reshape(self.encoder(x))
            x = self.encoder_reshape(x)
            return x if self.encoder_type == "reshape" else self.encoder(x)

    # ---- heads/rec_ctc_head.py ------------------------------------------------------------
    def uniform_attr(k):
        stdv = 1.0 / math.sqrt(k)
        return ParamAttr(initializer=nn.initializer.Uniform(-stdv, stdv))

    class CTCHead(nn.Layer):
        def __init__(self, in_channels, out_channels, mid_channels=None):
            super().__init__()
            self.mid_channels = mid_channels
            if mid_channels is None:
                self.fc = nn.Linear(
                    in_channels, out_channels, uniform_attr(in_channels), uniform_attr(in_channels)
                )
            else:
                self.fc1 = nn.Linear(
                    in_channels, mid_channels, uniform_attr(in_channels), uniform_attr(in_channels)
                )
                self.fc2 = nn.Linear(
                    mid_channels,
                    out_channels,
                    uniform_attr(mid_channels),
                    uniform_attr(mid_channels),
                )

        def forward(self, x):
            y = self.fc(x) if self.mid_channels is None else self.fc2(self.fc1(x))
            return y if self.training else F.softmax(y, axis=2)

    # ---- architectures ---------------------------------------------------------------------
    class RecModel(nn.Layer):
        def __init__(self, backbone, neck, head):
            super().__init__()
            self.backbone, self.neck, self.head = backbone, neck, head

        def forward(self, x):
            return self.head(self.neck(self.backbone(x)))

    class MultiHeadCTC(nn.Layer):
        """``MultiHead``'s inference path: ``ctc_encoder`` then ``ctc_head``."""

        def __init__(self, in_channels, out_channels, neck_args):
            super().__init__()
            args = dict(neck_args)
            self.ctc_encoder = SequenceEncoder(in_channels, args.pop("name"), **args)
            self.ctc_head = CTCHead(self.ctc_encoder.out_channels, out_channels)

        def forward(self, x):
            return self.ctc_head(self.ctc_encoder(x))

    class Identity(nn.Layer):
        def forward(self, x):
            return x

    return dict(locals())


def mv1_crnn(out_channels: int = 6625, scale=0.5, hidden_size=64, mid_channels=96, **backbone):
    """PP-OCRv2's CRNN (defaults: ``ch_PP-OCRv2_rec.yml``): MobileNetV1Enhance,
    SequenceEncoder(rnn), CTCHead."""
    c = _classes()
    bb = c["MobileNetV1Enhance"](scale=scale, **backbone)
    neck = c["SequenceEncoder"](bb.out_channels, "rnn", hidden_size=hidden_size)
    head = c["CTCHead"](neck.out_channels, out_channels, mid_channels)
    return c["RecModel"](bb, neck, head)


def lcnetv3_svtr(out_channels: int = 37, scale=0.95, multihead=False, conv_kxk_num=4, **neck):
    """PP-OCRv3/v4 mobile: PPLCNetV3, SequenceEncoder(svtr), CTCHead; ``multihead``: the
    MultiHead's inference names (``head.ctc_encoder``, ``head.ctc_head``)."""
    bb = _classes()["PPLCNetV3"](scale=scale, conv_kxk_num=conv_kxk_num)
    return svtr_rec(bb, out_channels, multihead, **neck)


# PPHGNet_small's rec stages: in, mid, out, blocks, downsample, stride
HGNET_SMALL = (
    (128, 128, 256, 1, True, (2, 1)),
    (256, 160, 512, 1, True, (1, 2)),
    (512, 192, 768, 2, True, (2, 1)),
    (768, 224, 1024, 1, True, (2, 1)),
)


def hgnet_svtr(out_channels=37, stem=(64, 64, 128), stages=HGNET_SMALL, layer_num=6, **neck):
    """PP-OCRv4 server: PPHGNet (PPHGNet_small by default) and MultiHead's CTC branch."""
    bb = _classes()["PPHGNet"](list(stem), stages, layer_num)
    return svtr_rec(bb, out_channels, True, **neck)


def svtr_rec(bb, out_channels: int, multihead: bool, **neck):
    """``bb`` then SequenceEncoder(svtr) and CTCHead (PP-OCRv4's neck arguments)."""
    c = _classes()
    args = {"dims": 120, "depth": 2, "hidden_dims": 120, "kernel_size": (1, 3), **neck}
    if multihead:
        head = c["MultiHeadCTC"](bb.out_channels, out_channels, {"name": "svtr", **args})
        return c["RecModel"](bb, c["Identity"](), head)
    seq = c["SequenceEncoder"](bb.out_channels, "svtr", **args)
    return c["RecModel"](bb, seq, c["CTCHead"](seq.out_channels, out_channels))


# The shape of PaddleOCR's configs/rec/PP-OCRv4/ch_PP-OCRv4_rec.yml (retyped: the sections
# xinit reads and a few it must skip), with the sizes as parameters.
V4_REC_YAML = """\
Global:
  debug: false
  use_gpu: true
  epoch_num: 200
  character_dict_path: {dict_path}
  max_text_length: &max_text_length 25
  infer_mode: false
  use_space_char: true
  save_res_path: ./output/rec/predicts_ppocrv3.txt
Optimizer:
  name: Adam
  lr:
    name: Cosine
    learning_rate: 0.001
Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Transform:
  Backbone:
    name: PPLCNetV3
    scale: {scale}
    conv_kxk_num: {conv_kxk_num}
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck:
            name: svtr
            dims: {dims}
            depth: {depth}
            hidden_dims: {dims}
            kernel_size: [1, 3]
            use_guide: True
          Head:
            fc_decay: 0.00001
      - NRTRHead:
          nrtr_dim: 384
          max_text_length: *max_text_length
Loss:
  name: MultiLoss
PostProcess:
  name: CTCLabelDecode
"""


def v4_rec_yaml(
    scale=0.95, dict_path="ppocr/utils/ppocr_keys_v1.txt", conv_kxk_num=4, dims=120, depth=2
) -> str:
    """A PP-OCRv4 mobile rec config's text (PaddleOCR's defaults: its own sizes)."""
    return V4_REC_YAML.format(
        scale=scale, dict_path=dict_path, conv_kxk_num=conv_kxk_num, dims=dims, depth=depth
    )

"""PaddleOCR's DBNet necks (``ppocr/modeling/necks/db_fpn.py``): ``DBFPN``, ``RSEFPN``
(PP-OCRv3/v4 mobile) and ``LKPAN`` (v4 server; ``mode`` large or lite).

Each takes the backbone's four maps ``c2`` .. ``c5`` and returns them fused at stride 4:
lateral convs to ``out_channels``, a top-down path of nearest 2x upsamplings and sums, a
conv per level to ``out_channels // 4``, each upsampled to stride 4 and concatenated (the
deepest first). The per-level layers are PaddleOCR's ``LayerList``s (``ins_conv.0`` ..),
graphs here whose inputs are the levels. Convs are ``KaimingUniform`` without bias.
``DBFPN(use_asf=True)`` (DBNet++) ends with ``asf``, an ``ASFBlock`` on the fused map.
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Zeros
from ...layers import (
    Add,
    BatchNorm,
    Concat,
    Conv,
    Hardswish,
    Mul,
    Reduce,
    ReLU,
    Sigmoid,
    Split,
    Upsample,
)
from .._arguments import zoo_model
from ._common import KAIMING_UNIFORM, paddle_conv_default
from .det_mobilenet_v3 import se_module

LEVELS = ("c2", "c3", "c4", "c5")


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> Conv:
    return Conv(cin, cout, kernel, stride, kernel // 2, bias=False, weight_init=KAIMING_UNIFORM)


def _per_level(layers, inputs) -> Graph:
    """A ``LayerList`` applied level by level: node ``i`` is ``layers[i]`` on ``inputs[i]``."""
    nodes = [(str(i), layer, name) for i, (layer, name) in enumerate(zip(layers, inputs))]
    return Graph(nodes, inputs=inputs, outputs={str(i): str(i) for i in range(len(layers))})


def _refs(node: str) -> tuple[str, ...]:
    """The four outputs ``node.0`` .. ``node.3`` of a per-level graph."""
    return tuple(f"{node}.{i}" for i in range(4))


def _top_down(ins) -> list:
    """``ins`` (in2 .. in5) summed top-down: ``out4 = in4 + up(in5)`` .. ``out2``."""
    up = Upsample(scale_factor=2, mode="nearest")
    return [
        ("up5", up, ins[3]),
        ("out4", Add(), (ins[2], "up5")),
        ("up4", up, "out4"),
        ("out3", Add(), (ins[1], "up4")),
        ("up3", up, "out3"),
        ("out2", Add(), (ins[0], "up3")),
    ]


def _fuse(ps) -> list:
    """``ps`` (p2 .. p5): p5, p4, p3 upsampled 8x, 4x, 2x, concatenated with p2."""
    return [
        ("p5", Upsample(scale_factor=8, mode="nearest"), ps[3]),
        ("p4", Upsample(scale_factor=4, mode="nearest"), ps[2]),
        ("p3", Upsample(scale_factor=2, mode="nearest"), ps[1]),
        ("fuse", Concat(1), ("p5", "p4", "p3", ps[0])),
    ]


def rse_layer(cin: int, cout: int, kernel: int, shortcut: bool = True) -> Graph:
    """``RSELayer``: ``in_conv``, then ``se_block`` (plus its input when ``shortcut``)."""
    nodes = [("in_conv", _conv(cin, cout, kernel), "x"), ("se_block", se_module(cout))]
    if shortcut:
        nodes.append(("add", Add(), ("in_conv", "se_block")))
    return Graph(nodes)


def intra_cl_block(channels: int, reduce_factor: int = 2) -> Graph:
    """``IntraCLBlock`` (``necks/intracl.py``): ``conv1x1_reduce_channel`` to C/r, three
    rounds of a square, a vertical and a horizontal conv summed (7, 5, 3),
    ``conv1x1_return_channel``, ``bn``, ReLU, plus the input. Every conv is biased with
    Paddle's default init; the nodes are listed in PaddleOCR's registration order."""
    r = channels // reduce_factor

    def conv(cin, cout, kh, kw):
        weight = paddle_conv_default(cin, (kh, kw))
        pad = (kh // 2, kw // 2)
        return Conv(cin, cout, (kh, kw), 1, pad, weight_init=weight, bias_init=Zeros())

    nodes = [
        ("conv1x1_reduce_channel", conv(channels, r, 1, 1), "x"),
        ("conv1x1_return_channel", conv(r, channels, 1, 1), "x_3"),
    ]
    source = {7: "conv1x1_reduce_channel", 5: "x_7", 3: "x_5"}
    nodes += [(f"v_layer_{k}x1", conv(r, r, k, 1), source[k]) for k in (7, 5, 3)]
    nodes += [(f"q_layer_1x{k}", conv(r, r, 1, k), source[k]) for k in (7, 5, 3)]
    nodes += [(f"c_layer_{k}x{k}", conv(r, r, k, k), source[k]) for k in (7, 5, 3)]
    nodes += [(f"x_{k}", Add(), (f"c_layer_{k}x{k}", f"v_layer_{k}x1", f"q_layer_1x{k}"))
              for k in (7, 5, 3)]  # fmt: skip
    nodes += [
        ("bn", BatchNorm(channels), "conv1x1_return_channel"),
        ("relu", ReLU(), "bn"),
        ("add", Add(), ("x", "relu")),
    ]
    return Graph(nodes)


def _intracl(node: str, width: int) -> list:
    """``incl1`` .. ``incl4`` (IntraCLBlocks of ``width``, reduce factor 2) on the four
    outputs of per-level ``node`` (p2 .. p5), registered after the necks' lists."""
    return [(f"incl{i + 1}", intra_cl_block(width), f"{node}.{i}") for i in range(4)]


@zoo_model
def rsefpn(
    in_channels=(16, 24, 56, 480),
    out_channels: int = 96,
    shortcut: bool = True,
    intracl: bool = False,
) -> Graph:
    """``RSEFPN``: ``ins_conv`` (1x1 RSELayers to ``out_channels``), top-down sums,
    ``inp_conv`` (3x3 RSELayers to ``out_channels // 4``), with ``intracl`` an IntraCLBlock
    per level, fused (N, out_channels, H/4, W/4)."""
    ins = [rse_layer(c, out_channels, 1, shortcut) for c in in_channels]
    inp = [rse_layer(out_channels, out_channels // 4, 3, shortcut) for _ in in_channels]
    incl = _intracl("inp_conv", out_channels // 4) if intracl else []
    return Graph(
        [
            ("ins_conv", _per_level(ins, LEVELS), LEVELS),
            *_top_down(_refs("ins_conv")),
            (
                "inp_conv",
                _per_level(inp, ("out2", "out3", "out4", "in5")),
                ("out2", "out3", "out4", "ins_conv.3"),
            ),
            *incl,
            *_fuse(tuple(n for n, _, _ in incl) or _refs("inp_conv")),
        ],  # fmt: skip
        inputs=LEVELS,
    )


def asf_block(in_channels: int, inter_channels: int, out_features_num: int = 4) -> Graph:
    """``ASFBlock`` (DBNet++'s adaptive scale fusion) on the fused map ``fuse`` and the
    ``out_features_num`` levels it concatenates (``f0`` ..): ``conv`` (3x3 with bias,
    Paddle's default init), plus ``spatial_scale`` (3x3 conv, ReLU, 1x1 conv, sigmoid) of
    its channel mean, ``channel_scale`` (1x1 conv to one weight per level, sigmoid); each
    level times its weight, concatenated."""
    levels = tuple(f"f{i}" for i in range(out_features_num))
    spatial = Sequential(_conv(1, 1, 3), ReLU(), _conv(1, 1, 1), Sigmoid())
    channel = Sequential(_conv(inter_channels, out_features_num, 1), Sigmoid())
    conv = Conv(
        in_channels, inter_channels, 3, 1, 1,
        weight_init=paddle_conv_default(in_channels, 3), bias_init=Zeros(),
    )  # fmt: skip
    nodes = [
        ("conv", conv, "fuse"),
        ("spatial_x", Reduce("mean", 1, keepdim=True), "conv"),
        ("spatial_scale", spatial, "spatial_x"),
        ("scores", Add(), ("spatial_scale", "conv")),
        ("channel_scale", channel, "scores"),
        ("weights", Split((1,) * out_features_num, 1), "channel_scale"),
    ]
    nodes += [(f"out{i}", Mul(), (f"weights.{i}", f)) for i, f in enumerate(levels)]
    nodes.append(("concat", Concat(1), tuple(f"out{i}" for i in range(out_features_num))))
    return Graph(nodes, inputs=("fuse", *levels))


@zoo_model
def dbfpn(in_channels=(16, 24, 56, 480), out_channels: int = 256, use_asf: bool = False) -> Graph:
    """``DBFPN``: ``in2_conv`` .. ``in5_conv`` (1x1), top-down sums, ``p2_conv`` ..
    ``p5_conv`` (3x3 to ``out_channels // 4``), fused; then ``asf`` when ``use_asf``."""
    q = out_channels // 4
    nodes = [(f"in{i + 2}_conv", _conv(c, out_channels, 1), LEVELS[i])
             for i, c in enumerate(in_channels)]  # fmt: skip
    nodes += _top_down(("in2_conv", "in3_conv", "in4_conv", "in5_conv"))
    nodes += [
        ("p5_conv", _conv(out_channels, q, 3), "in5_conv"),
        ("p4_conv", _conv(out_channels, q, 3), "out4"),
        ("p3_conv", _conv(out_channels, q, 3), "out3"),
        ("p2_conv", _conv(out_channels, q, 3), "out2"),
    ]
    nodes += _fuse(("p2_conv", "p3_conv", "p4_conv", "p5_conv"))
    if use_asf:
        asf = asf_block(out_channels, q)
        nodes.append(("asf", asf, ("fuse", "p5", "p4", "p3", "p2_conv")))
    return Graph(nodes, inputs=LEVELS)


def ds_conv(cin: int, cout: int, kernel: int, padding: int, act: str = "relu") -> Graph:
    """``DSConv`` (LKPAN lite): depthwise ``conv1``+``bn1``, ``conv2`` (x4)+``bn2``, the
    activation, ``conv3``; plus ``conv_end`` of the input when the channels change."""
    wide = cin * 4
    nodes = [
        ("conv1", Conv(cin, cin, kernel, 1, padding, groups=cin, bias=False,
                       weight_init=paddle_conv_default(cin, kernel)), "x"),
        ("bn1", BatchNorm(cin)),
        ("conv2", Conv(cin, wide, 1, bias=False, weight_init=paddle_conv_default(cin, 1))),
        ("bn2", BatchNorm(wide)),
        ("act", ReLU() if act == "relu" else Hardswish()),
        ("conv3", Conv(wide, cout, 1, bias=False, weight_init=paddle_conv_default(wide, 1))),
    ]  # fmt: skip
    if cin != cout:
        conv_end = Conv(cin, cout, 1, bias=False, weight_init=paddle_conv_default(cin, 1))
        nodes += [("conv_end", conv_end, "x"), ("add", Add(), ("conv3", "conv_end"))]
    return Graph(nodes)


@zoo_model
def lkpan(
    in_channels=(64, 128, 256, 512),
    out_channels: int = 256,
    mode: str = "large",
    intracl: bool = False,
) -> Graph:
    """``LKPAN``: ``ins_conv`` (1x1), top-down sums, ``inp_conv`` (9x9, to
    ``out_channels // 4``), a bottom-up path (``pan_head_conv``: 3x3 stride 2, summed),
    ``pan_lat_conv`` (9x9), with ``intracl`` an IntraCLBlock per level (PP-OCRv4 server),
    fused. ``mode="lite"`` makes the 9x9 layers ``DSConv``."""
    if mode.lower() not in ("large", "lite"):
        raise ValueError(f"LKPAN mode must be 'large' or 'lite'; got {mode!r}")
    q = out_channels // 4

    def big(cin, cout):
        if mode.lower() == "lite":
            return ds_conv(cin, cout, 9, 4)
        return _conv(cin, cout, 9)

    ins = [_conv(c, out_channels, 1) for c in in_channels]
    inp = [big(out_channels, q) for _ in in_channels]
    heads = [_conv(q, q, 3, 2) for _ in in_channels[1:]]
    lats = [big(q, q) for _ in in_channels]
    incl = _intracl("pan_lat_conv", q) if intracl else []
    return Graph(
        [
            ("ins_conv", _per_level(ins, LEVELS), LEVELS),
            *_top_down(_refs("ins_conv")),
            (
                "inp_conv",
                _per_level(inp, ("out2", "out3", "out4", "in5")),
                ("out2", "out3", "out4", "ins_conv.3"),
            ),
            (
                "pan_head_conv",
                _pan_heads(heads),
                ("inp_conv.0", "inp_conv.1", "inp_conv.2", "inp_conv.3"),
            ),
            (
                "pan_lat_conv",
                _per_level(lats, ("f2", "pan3", "pan4", "pan5")),
                ("inp_conv.0", "pan_head_conv.pan3", "pan_head_conv.pan4", "pan_head_conv.pan5"),
            ),
            *incl,
            *_fuse(tuple(n for n, _, _ in incl) or _refs("pan_lat_conv")),
        ],  # fmt: skip
        inputs=LEVELS,
    )


def _pan_heads(heads) -> Graph:
    """``pan_head_conv.0`` .. ``.2``: ``pan3 = f3 + head0(f2)``, ``pan4 = f4 + head1(pan3)``,
    ``pan5 = f5 + head2(pan4)`` (the bottom-up path, with its sums)."""
    return Graph(
        [
            ("0", heads[0], "f2"),
            ("pan3", Add(), ("f3", "0")),
            ("1", heads[1], "pan3"),
            ("pan4", Add(), ("f4", "1")),
            ("2", heads[2], "pan4"),
            ("pan5", Add(), ("f5", "2")),
        ],
        inputs=("f2", "f3", "f4", "f5"),
        outputs={"pan3": "pan3", "pan4": "pan4", "pan5": "pan5"},
    )


NECKS = {"DBFPN": dbfpn, "RSEFPN": rsefpn, "LKPAN": lkpan}

__all__ = [
    "dbfpn",
    "rsefpn",
    "lkpan",
    "rse_layer",
    "ds_conv",
    "asf_block",
    "intra_cl_block",
    "NECKS",
]

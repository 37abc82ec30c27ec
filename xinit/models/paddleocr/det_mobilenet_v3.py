"""PaddleOCR's ``MobileNetV3`` backbones (``ppocr/modeling/backbones/det_mobilenet_v3.py``
for DBNet, ``rec_mobilenet_v3.py`` for the text-direction classifier).

A ``ConvBNLayer`` is ``conv`` (no bias, Paddle's default init) and ``bn``, then the
activation it names; a ``ResidualUnit`` is ``expand_conv``, ``bottleneck_conv`` (depthwise),
``mid_se`` where the table says, ``linear_conv``, and the input added when the shape is
kept. Detection splits the units into ``stage0`` .. ``stage3`` at each stride 2 (the large
model from the third unit on) and returns the four stage outputs, ``c2`` .. ``c5``; the
classifier's units are ``blocks``, then ``conv2`` and a 2x2 max pool.
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...layers import Add, BatchNorm, Conv, Hardsigmoid, Hardswish, MaxPool, ReLU
from .._arguments import zoo_model
from ._common import PADDLE_HARDSIGMOID, paddle_conv_default
from ._common import squeeze_excite as _lcnet_se

LARGE = (  # k, exp, c, se, act, stride
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
CONFIGS = {"large": (LARGE, 960), "small": (SMALL, 576)}
SCALES = (0.35, 0.5, 0.75, 1.0, 1.25)


def make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNetV3's channel rounding (divisor 8), never 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def conv_bn_layer(cin, cout, kernel, stride, padding, groups=1, act=None) -> Sequential:
    """``ConvBNLayer``: ``conv`` (no bias, Paddle's default N(0, 2/(C_in·k·k))), ``bn``,
    then ``act`` (``"relu"``/``"hardswish"``) as a function, or none."""
    conv = Conv(
        cin, cout, kernel, stride, padding, groups=groups, bias=False,
        weight_init=paddle_conv_default(cin, kernel),
    )  # fmt: skip
    steps = [("conv", conv), ("bn", BatchNorm(cout))]
    if act is not None:
        steps.append((act, ReLU() if act == "relu" else Hardswish()))
    return Sequential(*steps)


def se_module(channels: int, slope: float | None = None) -> Graph:
    """``SEModule``: PaddleOCR's squeeze-excitation. Its hard-sigmoid is Paddle's default
    (``F.hardsigmoid(x)``, PaddleOCR's current code); ``slope=0.2`` gives the older
    releases' ``F.hardsigmoid(x, slope=0.2, offset=0.5)``, which PP-OCRv3 was trained with."""
    se = _lcnet_se(channels)
    if slope is None:
        return se
    nodes = [(n, Hardsigmoid(slope, 0.5) if s == PADDLE_HARDSIGMOID else s, r)
             for n, s, r in se.nodes]  # fmt: skip
    return Graph(nodes)


def residual_unit(cin, mid, cout, kernel, stride, use_se, act, se_slope=None) -> Graph:
    """``ResidualUnit``: expand, depthwise, optional SE, linear; plus the input when the
    stride is 1 and the channels are kept."""
    nodes = [
        ("expand_conv", conv_bn_layer(cin, mid, 1, 1, 0, act=act), "x"),
        ("bottleneck_conv", conv_bn_layer(mid, mid, kernel, stride, (kernel - 1) // 2, mid, act)),
    ]
    if use_se:
        nodes.append(("mid_se", se_module(mid, se_slope)))
    nodes.append(("linear_conv", conv_bn_layer(mid, cout, 1, 1, 0)))
    if stride == 1 and cin == cout:
        nodes.append(("add", Add(), ("x", "linear_conv")))
    return Graph(nodes)


def _units(model_name: str, scale: float, disable_se: bool, strides=None, se_slope=None):
    if model_name not in CONFIGS:
        raise ValueError(f"MobileNetV3 model_name must be 'large' or 'small'; got {model_name!r}")
    if scale not in SCALES:
        raise ValueError(f"MobileNetV3 scale must be one of {SCALES}; got {scale!r}")
    rows, squeeze = CONFIGS[model_name]
    cin = make_divisible(16 * scale)
    out = []
    for i, (k, exp, c, se, act, s) in enumerate(rows):
        stride = strides[i] if strides is not None else s
        cout = make_divisible(scale * c)
        unit = residual_unit(
            cin, make_divisible(scale * exp), cout, k, stride, se and not disable_se, act,
            se_slope,
        )  # fmt: skip
        out.append((i, s, unit))
        cin = cout
    return out, cin, make_divisible(scale * squeeze)


@zoo_model
def det_mobilenet_v3(
    model_name: str = "large", scale: float = 0.5, disable_se: bool = False, se_slope=None
) -> Graph:
    """DBNet's ``MobileNetV3`` backbone: ``conv`` then ``stage0`` .. ``stage3``, returning
    the four stage outputs ``{"c2", "c3", "c4", "c5"}`` (strides 4, 8, 16, 32)."""
    units, cin, last = _units(model_name, scale, disable_se, se_slope=se_slope)
    start = 2 if model_name == "large" else 0
    stages, current = [], []
    for i, s, unit in units:
        if s == 2 and i > start:
            stages.append(current)
            current = []
        current.append(unit)
    conv_last = conv_bn_layer(cin, last, 1, 1, 0, act="hardswish")
    stages.append([*current, conv_last])
    nodes = [("conv", conv_bn_layer(3, make_divisible(16 * scale), 3, 2, 1, act="hardswish"), "x")]
    for i, stage in enumerate(stages):
        nodes.append((f"stage{i}", Sequential(*stage)))
    return Graph(nodes, outputs={f"c{i + 2}": f"stage{i}" for i in range(4)})


def det_mobilenet_v3_channels(model_name="large", scale=0.5, **_) -> list[int]:
    """The channels of ``c2`` .. ``c5`` (``MobileNetV3.out_channels``)."""
    units, _, last = _units(model_name, scale, False)
    start = 2 if model_name == "large" else 0
    out, cin = [], make_divisible(16 * scale)
    for i, s, _unit in units:
        if s == 2 and i > start:
            out.append(cin)
        cin = make_divisible(scale * CONFIGS[model_name][0][i][2])
    return [*out, last]


@zoo_model
def cls_mobilenet_v3(
    model_name: str = "small", scale: float = 0.35, disable_se: bool = False, se_slope=None
) -> Sequential:
    """The classifier's ``MobileNetV3`` (``rec_mobilenet_v3.py``): ``conv1``, ``blocks``
    (strides (s, 1) where the table has 2, as ``small_stride``/``large_stride`` default),
    ``conv2``, ``pool`` (2x2 max)."""
    rows, _ = CONFIGS.get(model_name, (None, None))
    if rows is None:
        raise ValueError(f"MobileNetV3 model_name must be 'large' or 'small'; got {model_name!r}")
    strides = _rec_strides(model_name, rows)
    units, cin, last = _units(model_name, scale, disable_se, strides, se_slope)
    return Sequential(
        conv1=conv_bn_layer(3, make_divisible(16 * scale), 3, 2, 1, act="hardswish"),
        blocks=Sequential(*[unit for _, _, unit in units]),
        conv2=conv_bn_layer(cin, last, 1, 1, 0, act="hardswish"),
        pool=MaxPool(2, 2),
    )


REC_STRIDES = {  # rec_mobilenet_v3's (2, 1) strides by unit; every other unit strides 1
    "large": (1, 3, 12),  # large_stride [1, 2, 2, 2]: the first unit keeps stride 1
    "small": (0, 1, 3, 8),  # small_stride [2, 2, 2, 2]
}


def _rec_strides(model_name, rows):
    """``rec_mobilenet_v3``'s strides: (2, 1) at :data:`REC_STRIDES`, else 1 (its large
    table strides 1 where the detection one has its third 2)."""
    return [(2, 1) if i in REC_STRIDES[model_name] else 1 for i in range(len(rows))]


def cls_mobilenet_v3_channels(model_name="small", scale=0.35, **_) -> int:
    return make_divisible(scale * CONFIGS[model_name][1])


__all__ = [
    "det_mobilenet_v3",
    "cls_mobilenet_v3",
    "det_mobilenet_v3_channels",
    "cls_mobilenet_v3_channels",
    "conv_bn_layer",
    "residual_unit",
    "se_module",
    "make_divisible",
]

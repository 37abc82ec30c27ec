"""What PaddleOCR's recognisers share: its initialisers (as xinit initializers), the
``make_divisible`` channel rule and the squeeze-excitation block."""

from __future__ import annotations

import math

from ...graph import Graph
from ...initializers import (
    KaimingNormal,
    KaimingUniform,
    Normal,
    TruncatedNormal,
    Uniform,
    Zeros,
)
from ...layers import AdaptiveAvgPool, Conv, Hardsigmoid, Mul, ReLU

# ParamAttr(initializer=KaimingNormal()): Paddle's fan_in (C_in/groups · k·k), gain √2.
KAIMING_NORMAL = KaimingNormal(mode="fan_in", nonlinearity="relu")
# ParamAttr(initializer=KaimingUniform()) (SVTR's ConvBNLayer): U(±√(6/fan_in)).
KAIMING_UNIFORM = KaimingUniform(mode="fan_in", nonlinearity="relu")
# rec_svtrnet.py's trunc_normal_ = TruncatedNormal(std=0.02): Paddle 3's a=-2, b=2 are absolute
# bounds (as torch's/timm's trunc_normal_), so at std .02 the cut is at 100 std: measured on
# Paddle 3.3.1, 4e6 draws reach 5.09 std and 4.56% lie beyond 2 std (a plain normal: 4.55%).
TRUNC_NORMAL = TruncatedNormal(0.0, 0.02, -2.0, 2.0)
# paddle.nn.Hardsigmoid() / F.hardsigmoid(): slope 0.1666667 (a decimal, not 1/6), offset 0.5.
PADDLE_HARDSIGMOID = Hardsigmoid(slope=0.1666667, offset=0.5)


def paddle_conv_default(cin: int, kernel: int | tuple[int, int]) -> Normal:
    """A Paddle Conv2D with no initializer given: N(0, 2/(C_in·kh·kw)), the full C_in."""
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    return Normal(0.0, math.sqrt(2.0 / (cin * kh * kw)))


def ctc_uniform(fan_in: int) -> Uniform:
    """``rec_ctc_head.get_para_bias_attr``: U(±1/√k) for a Linear's weight and bias."""
    bound = 1.0 / math.sqrt(fan_in)
    return Uniform(-bound, bound)


def make_divisible(v: float, divisor: int = 16) -> int:
    """PPLCNetV3's channel rounding: to a multiple of ``divisor``, never 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def kaiming_conv(cin: int, cout: int, kernel: int, stride=1, groups: int = 1) -> Conv:
    """PaddleOCR's usual conv: padding (k-1)/2, no bias, ``KaimingNormal`` (PPLCNetV3's and
    PPHGNet's ``conv``)."""
    pad = (kernel - 1) // 2
    return Conv(
        cin, cout, kernel, stride, pad, groups=groups, bias=False, weight_init=KAIMING_NORMAL
    )


def paddle_conv(cin: int, cout: int, kernel: int = 1) -> Conv:
    """A Paddle Conv2D with bias and no initializer given (``ParamAttr()``): its defaults."""
    return Conv(cin, cout, kernel, weight_init=paddle_conv_default(cin, kernel), bias_init=Zeros())


def squeeze_excite(channels: int, reduction: int = 4) -> Graph:
    """PaddleOCR's SE (``SEModule``, ``SELayer``): ``avg_pool`` (1x1), ``conv1`` (C -> C/r),
    ReLU, ``conv2`` (C/r -> C), Paddle's hard-sigmoid, then the input times the gate
    (broadcast over H, W). Both convs keep Paddle's default init."""
    mid = channels // reduction
    return Graph(
        [
            ("avg_pool", AdaptiveAvgPool(1), "x"),
            ("conv1", paddle_conv(channels, mid)),
            ("relu", ReLU()),
            ("conv2", paddle_conv(mid, channels)),
            ("hardsigmoid", PADDLE_HARDSIGMOID),
            ("multiply", Mul(), ("x", "hardsigmoid")),
        ]
    )

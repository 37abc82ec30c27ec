"""PaddleOCR's ``MobileNetV1Enhance`` (``ppocr/modeling/backbones/rec_mv1_enhance.py``), the
PP-OCRv2 (and v3 server-distillation) recognition backbone.

A stride-2 ``conv1`` then ``block_list``: 13 ``DepthwiseSeparable`` blocks, each a depthwise
``_depthwise_conv``, an optional ``_se`` and a pointwise ``_pointwise_conv``; the height
halves three times more ((2, 1) strides: a text line keeps its width), then ``pool``. Each
``ConvBNLayer`` is ``_conv`` (no bias, ``KaimingNormal``) and ``_batch_norm`` (Paddle's old
``nn.BatchNorm`` with ``act="hard_swish"``: here a parameter-free ``act`` node after it).
``last_conv_stride``/``last_pool_type``/``last_pool_kernel_size`` are the PP-OCRv3 options.
"""

from __future__ import annotations

from ...blocks import Sequential
from ...layers import AvgPool, BatchNorm, Conv, Hardswish, MaxPool, SpecError
from .._arguments import zoo_model
from ._common import KAIMING_NORMAL, squeeze_excite

# (in, filters1, filters2, groups, stride, dw_size, se) of each DepthwiseSeparable, unscaled
BLOCKS = (
    (32, 32, 64, 32, 1, 3, False),
    (64, 64, 128, 64, 1, 3, False),
    (128, 128, 128, 128, 1, 3, False),
    (128, 128, 256, 128, (2, 1), 3, False),
    (256, 256, 256, 256, 1, 3, False),
    (256, 256, 512, 256, (2, 1), 3, False),
    *[(512, 512, 512, 512, 1, 5, False)] * 5,
    (512, 512, 1024, 512, (2, 1), 5, True),
    (1024, 1024, 1024, 1024, None, 5, True),  # stride: last_conv_stride
)


def conv_bn_layer(cin: int, kernel: int, cout: int, stride, padding: int, groups: int = 1):
    """``ConvBNLayer``: ``_conv`` (no bias, KaimingNormal), ``_batch_norm``, hard-swish."""
    return Sequential(
        _conv=Conv(
            cin,
            cout,
            kernel,
            stride,
            padding,
            groups=groups,
            bias=False,
            weight_init=KAIMING_NORMAL,
        ),
        _batch_norm=BatchNorm(cout),
        act=Hardswish(),
    )


def depthwise_separable(cin, filters1, filters2, groups, stride, scale, dw_size=3, se=False):
    """``DepthwiseSeparable``: ``_depthwise_conv`` (groups·scale groups), ``_se`` when asked,
    ``_pointwise_conv`` (1x1)."""
    mid = int(filters1 * scale)
    children = [
        (
            "_depthwise_conv",
            conv_bn_layer(cin, dw_size, mid, stride, dw_size // 2, int(groups * scale)),
        )
    ]
    if se:
        children.append(("_se", squeeze_excite(mid)))
    children.append(("_pointwise_conv", conv_bn_layer(mid, 1, int(filters2 * scale), 1, 0)))
    return Sequential(*children)


def _stride(stride):
    return tuple(stride) if isinstance(stride, list) else stride  # a YAML list


@zoo_model
def mobilenet_v1_enhance(
    in_channels: int = 3,
    scale: float = 0.5,
    last_conv_stride=1,
    last_pool_type: str = "max",
    last_pool_kernel_size=(3, 2),
) -> Sequential:
    """``MobileNetV1Enhance``: (N, 3, 32, W) -> (N, 1024·scale, 1, W/4) with the defaults
    (``conv1`` takes 3 channels whatever ``in_channels`` says, as PaddleOCR's)."""
    if last_pool_type not in ("max", "avg"):
        raise SpecError(
            f"MobileNetV1Enhance: last_pool_type must be 'max' or 'avg'; got {last_pool_type!r}"
        )
    blocks = [
        depthwise_separable(
            int(c * scale),
            f1,
            f2,
            g,
            _stride(last_conv_stride if st is None else st),
            scale,
            k,
            se,
        )
        for c, f1, f2, g, st, k, se in BLOCKS
    ]
    if last_pool_type == "avg":
        k = tuple(last_pool_kernel_size)
        pool = AvgPool(k, k)
    else:
        pool = MaxPool(2, 2)
    return Sequential(
        conv1=conv_bn_layer(3, 3, int(32 * scale), 2, 1),
        block_list=Sequential(*blocks),
        pool=pool,
    )


def out_channels(scale: float = 0.5) -> int:
    return int(1024 * scale)

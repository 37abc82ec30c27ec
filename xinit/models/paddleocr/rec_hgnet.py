"""PaddleOCR's ``PPHGNet`` recognition backbones (``ppocr/modeling/backbones/rec_hgnet.py``):
PPHGNet_small is PP-OCRv4 server's.

``stem`` (three ``ConvBNAct``: ``conv`` without bias, ``bn``, ReLU; the first stride 2),
then ``stages``: each an optional depthwise ``downsample`` (a ConvBNAct without activation,
stride (2, 1) or (1, 2): a text line keeps its width) and ``blocks`` of ``HG_Block``:
``layers`` (``layer_num`` 3x3 ConvBNActs in a chain), their outputs and the input
concatenated, ``aggregation_conv`` (1x1), ``att`` (``ESEModule``: pooled 1x1 ``conv`` with
bias, sigmoid, times the map) and, after the first block, the input added. Every conv is
KaimingNormal (biases 0), BatchNorms 1/0, as ``PPHGNet._init_weights``. At inference the map
is average-pooled by (3, 2).
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Zeros
from ...layers import AdaptiveAvgPool, Add, AvgPool, BatchNorm, Concat, Conv, Mul, ReLU, Sigmoid
from .._arguments import zoo_model
from ._common import KAIMING_NORMAL, kaiming_conv

# in, mid, out, blocks, downsample, stride of each stage (rec)
SMALL_STAGES = (
    (128, 128, 256, 1, True, (2, 1)),
    (256, 160, 512, 1, True, (1, 2)),
    (512, 192, 768, 2, True, (2, 1)),
    (768, 224, 1024, 1, True, (2, 1)),
)
TINY_STAGES = (
    (96, 96, 224, 1, False, (2, 1)),
    (224, 128, 448, 1, True, (1, 2)),
    (448, 160, 512, 2, True, (2, 1)),
    (512, 192, 768, 1, True, (2, 1)),
)


def conv_bn_act(cin: int, cout: int, kernel: int, stride=1, groups: int = 1, use_act=True):
    """``ConvBNAct``: ``conv`` (padding (k-1)/2, no bias), ``bn``, ``act`` (ReLU)."""
    conv = kaiming_conv(cin, cout, kernel, stride, groups)
    children = [("conv", conv), ("bn", BatchNorm(cout))]
    if use_act:
        children.append(("act", ReLU()))
    return Sequential(*children)


def ese_module(channels: int) -> Graph:
    """``ESEModule``: the input times sigmoid(``conv``(its global average))."""
    conv = Conv(channels, channels, 1, weight_init=KAIMING_NORMAL, bias_init=Zeros())
    return Graph(
        [
            ("avg_pool", AdaptiveAvgPool(1), "x"),
            ("conv", conv),
            ("sigmoid", Sigmoid()),
            ("multiply", Mul(), ("x", "sigmoid")),
        ]
    )


def hg_block(cin: int, mid: int, cout: int, layer_num: int, identity: bool = False) -> Graph:
    """``HG_Block``: ``layers.0`` .. (a chain), concat with the input, ``aggregation_conv``,
    ``att``, plus the input when ``identity``."""
    chain = [(str(i), conv_bn_act(cin if i == 0 else mid, mid, 3)) for i in range(layer_num)]
    layers = Graph(
        [(name, spec) for name, spec in chain]
        + [("concat", Concat(1), ("x", *(name for name, _ in chain)))]
    )
    nodes = [
        ("layers", layers, "x"),
        ("aggregation_conv", conv_bn_act(cin + layer_num * mid, cout, 1)),
        ("att", ese_module(cout)),
    ]
    if identity:
        nodes.append(("residual", Add(), ("att", "x")))
    return Graph(nodes)


def hg_stage(cin, mid, cout, block_num, layer_num, downsample=True, stride=(2, 1)):
    """``HG_Stage``: ``downsample`` (depthwise, no activation) when asked, ``blocks``."""
    children = []
    if downsample:
        stride = tuple(stride) if isinstance(stride, list) else stride
        children.append(("downsample", conv_bn_act(cin, cin, 3, stride, cin, use_act=False)))
    blocks = [hg_block(cin, mid, cout, layer_num)]
    blocks += [hg_block(cout, mid, cout, layer_num, identity=True) for _ in range(block_num - 1)]
    children.append(("blocks", Sequential(*blocks)))
    return Sequential(*children)


def pphgnet(stem_channels, stage_config, layer_num: int, in_channels: int = 3) -> Sequential:
    """``PPHGNet`` (rec) from its stem channels and per-stage rows (in, mid, out, blocks,
    downsample, stride)."""
    chans = (in_channels, *stem_channels)
    stem = Sequential(
        *[conv_bn_act(chans[i], chans[i + 1], 3, 2 if i == 0 else 1) for i in range(len(chans) - 1)]
    )
    stages = Sequential(*[hg_stage(*row[:4], layer_num, *row[4:]) for row in stage_config])
    return Sequential(stem=stem, stages=stages, pool=AvgPool((3, 2), (3, 2)))


@zoo_model
def pphgnet_small(in_channels: int = 3) -> Sequential:
    """``PPHGNet_small`` (rec): (N, 3, 48, W) -> (N, 1024, 1, W/8)."""
    return pphgnet((64, 64, 128), SMALL_STAGES, 6, in_channels)


@zoo_model
def pphgnet_tiny(in_channels: int = 3) -> Sequential:
    """``PPHGNet_tiny`` (rec): (N, 3, 48, W) -> (N, 768, 1, W/8)."""
    return pphgnet((48, 48, 96), TINY_STAGES, 5, in_channels)

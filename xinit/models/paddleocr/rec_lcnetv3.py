"""PaddleOCR's ``PPLCNetV3`` recognition backbone (``ppocr/modeling/backbones/rec_lcnetv3.py``),
PP-OCRv3/v4 mobile's.

``conv1`` (a stride-2 ``ConvBNLayer``: ``conv`` without bias, KaimingNormal; ``bn``), then
``blocks2`` .. ``blocks6`` of ``LCNetV3Block``: ``dw_conv`` (a depthwise
``LearnableRepLayer``), ``se`` where the table says, ``pw_conv`` (a pointwise one). A
``LearnableRepLayer`` sums its branches: ``identity`` (a BatchNorm, when the shape is kept),
``conv_1x1`` (when k > 1) and ``conv_kxk.0`` .. (``conv_kxk_num`` ConvBNLayers), then ``lab``
(a ``LearnableAffineBlock``: learned scalars ``scale`` 1 and ``bias`` 0, ``scale·x + bias``)
and ``act`` (hard-swish then its own ``lab``), skipped (its weights kept) at the integer
stride 2. At inference the map is average-pooled by (3, 2): 48 pixels high gives height 1.
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Constant
from ...layers import Add, AvgPool, BatchNorm, Hardswish, LearnedTensor, Mul, ReLU
from .._arguments import zoo_model
from ._common import kaiming_conv, make_divisible, squeeze_excite

NET_CONFIG_REC = {  # k, in, out, stride, se (unscaled)
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 1, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, (2, 1), False), (3, 128, 128, 1, False)),
    "blocks5": ((3, 128, 256, (1, 2), False), *[(5, 256, 256, 1, False)] * 4),
    "blocks6": (
        (5, 256, 512, (2, 1), True),
        (5, 512, 512, 1, True),
        (5, 512, 512, (2, 1), False),
        (5, 512, 512, 1, False),
    ),
}


def learnable_affine_block(scale_value: float = 1.0, bias_value: float = 0.0) -> Graph:
    """``LearnableAffineBlock``: ``scale * x + bias`` with learned (1,) ``scale``/``bias``."""
    return Graph(
        [
            ("scale", LearnedTensor((1,), Constant(scale_value)), "x"),
            ("bias", LearnedTensor((1,), Constant(bias_value)), "x"),
            ("scaled", Mul(), ("scale", "x")),
            ("shifted", Add(), ("scaled", "bias")),
        ]
    )


def act(kind: str = "hswish") -> Sequential:
    """``Act``: hard-swish (or ReLU) then a ``lab``."""
    return Sequential(act=Hardswish() if kind == "hswish" else ReLU(), lab=learnable_affine_block())


def conv_bn_layer(cin: int, cout: int, kernel: int, stride=1, groups: int = 1) -> Sequential:
    """``ConvBNLayer``: ``conv`` (padding (k-1)/2, no bias, KaimingNormal), ``bn``."""
    conv = kaiming_conv(cin, cout, kernel, stride, groups)
    return Sequential(conv=conv, bn=BatchNorm(cout))


def learnable_rep_layer(
    cin: int, cout: int, kernel: int, stride=1, groups: int = 1, num_conv_branches: int = 1
) -> Graph:
    """``LearnableRepLayer``: the sum of its branches, ``lab``, and ``act`` unless stride 2."""
    nodes, branches = [], []
    if cout == cin and stride == 1:
        nodes.append(("identity", BatchNorm(cin), "x"))
        branches.append("identity")
    branch = conv_bn_layer(cin, cout, kernel, stride, groups)
    kxk_nodes = [(str(i), branch, "x") for i in range(num_conv_branches)]
    if num_conv_branches > 1:  # PaddleOCR's conv_kxk list, summed
        kxk_nodes.append(("sum", Add(), tuple(name for name, _, _ in kxk_nodes)))
    kxk = Graph(kxk_nodes)
    nodes.append(("conv_kxk", kxk, "x"))
    if kernel > 1:
        nodes.append(("conv_1x1", conv_bn_layer(cin, cout, 1, stride, groups), "x"))
        branches.append("conv_1x1")
    branches.append("conv_kxk")
    nodes.append(("sum", Add(), tuple(branches)))
    nodes.append(("lab", learnable_affine_block(), "sum"))
    nodes.append(("act", act(), "lab"))  # PaddleOCR builds it always (its weights are saved)
    if stride == 2:  # and skips it at the integer stride 2 ((2, 1) keeps it)
        return Graph(nodes, outputs="lab")
    return Graph(nodes)


def lcnetv3_block(cin, cout, stride, dw_size, use_se=False, conv_kxk_num=4) -> Sequential:
    """``LCNetV3Block``: ``dw_conv``, ``se`` (optional), ``pw_conv``."""
    children = [
        ("dw_conv", learnable_rep_layer(cin, cin, dw_size, stride, cin, conv_kxk_num)),
    ]
    if use_se:
        children.append(("se", squeeze_excite(cin)))
    children.append(("pw_conv", learnable_rep_layer(cin, cout, 1, 1, 1, conv_kxk_num)))
    return Sequential(*children)


@zoo_model
def pplcnetv3(scale: float = 1.0, conv_kxk_num: int = 4) -> Sequential:
    """``PPLCNetV3`` (rec): (N, 3, 48, W) -> (N, make_divisible(512·scale), 1, W/8) at
    inference (PP-OCRv4 mobile's scale 0.95: 480 channels)."""
    md = make_divisible
    children = [("conv1", conv_bn_layer(3, md(16 * scale), 3, 2))]
    for name, rows in NET_CONFIG_REC.items():
        blocks = [
            lcnetv3_block(md(i * scale), md(o * scale), s, k, se, conv_kxk_num)
            for k, i, o, s, se in rows
        ]
        children.append((name, Sequential(*blocks)))
    children.append(("pool", AvgPool((3, 2), (3, 2))))
    return Sequential(*children)


def out_channels(scale: float = 1.0) -> int:
    return make_divisible(512 * scale)

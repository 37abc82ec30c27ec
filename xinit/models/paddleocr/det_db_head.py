"""PaddleOCR's ``DBHead`` (``ppocr/modeling/heads/det_db_head.py``) and the classifier's
``ClsHead`` (``cls_head.py``).

A DB ``Head`` is ``conv1`` (3x3 to C/4, no bias, Paddle's default init), ``conv_bn1`` (a
BatchNorm with weight 1 and bias 1e-4, then ReLU), ``conv2`` (a 2x2 stride-2 transposed conv,
KaimingUniform, bias U(±1/√(C/4))), ``conv_bn2`` + ReLU, ``conv3`` (transposed, to one map),
then a sigmoid: a probability map at the input's resolution. ``DBHead`` holds ``binarize``
and ``thresh``; at inference it returns ``{"maps": binarize(x)}``, the threshold branch only
trains (its weights are in every checkpoint, so the spec keeps it, unused).

``PFHeadLocal`` (PP-OCRv4 server detection) is a DBHead whose ``binarize`` also hands out
its stride-2 feature ``f`` (after ``conv_bn2``'s ReLU): ``up_conv`` (nearest 2x) of ``f``
beside the shrink map goes through ``cbn_layer`` (a ``LocalModule``: ``last_3``, a 3x3
ConvBNLayer with ReLU, ``last_1``, a 1x1 conv with bias), a sigmoid gives ``cbn_maps``, and
the map is the mean of the two. ``mode`` "large" keeps C/4 channels in ``last_3``, "small"
C/8.
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Constant, Ones, Zeros
from ...layers import (
    AdaptiveAvgPool,
    Add,
    BatchNorm,
    Concat,
    Conv,
    ConvTranspose,
    Flatten,
    Linear,
    ReLU,
    ScalarOp,
    Sigmoid,
    Softmax,
    Upsample,
)
from .._arguments import zoo_model
from ._common import KAIMING_UNIFORM, ctc_uniform, paddle_conv, paddle_conv_default
from .det_mobilenet_v3 import conv_bn_layer


def db_head_branch(in_channels: int, return_f: bool = False) -> Sequential | Graph:
    """One DB ``Head`` (binarize or thresh): (N, C, H, W) -> (N, 1, 4H, 4W) in (0, 1);
    ``return_f``: a graph of ``{"maps", "f"}``, ``f`` the (N, C/4, 2H, 2W) feature after
    ``conv_bn2``'s ReLU (PaddleOCR's ``forward(x, return_f=True)``)."""
    q = in_channels // 4
    bias = ctc_uniform(q)  # get_bias_attr(C/4): U(±1/√(C/4))

    def bn():
        return BatchNorm(q, weight_init=Ones(), bias_init=Constant(1e-4))

    steps = (
        ("conv1", Conv(in_channels, q, 3, 1, 1, bias=False,
                       weight_init=paddle_conv_default(in_channels, 3))),
        ("conv_bn1", bn()),
        ("relu1", ReLU()),
        ("conv2", ConvTranspose(q, q, 2, 2, weight_init=KAIMING_UNIFORM, bias_init=bias)),
        ("conv_bn2", bn()),
        ("relu2", ReLU()),
        ("conv3", ConvTranspose(q, 1, 2, 2, weight_init=KAIMING_UNIFORM, bias_init=bias)),
        ("sigmoid", Sigmoid()),
    )  # fmt: skip
    if not return_f:
        return Sequential(*steps)
    return Graph(steps, outputs={"maps": "sigmoid", "f": "relu2"})


@zoo_model
def db_head(in_channels: int = 96) -> Graph:
    """``DBHead`` at inference: ``{"maps": binarize(x)}``; ``thresh`` kept for its weights."""
    return Graph(
        [
            ("binarize", db_head_branch(in_channels), "x"),
            ("thresh", db_head_branch(in_channels), "x"),
        ],
        outputs={"maps": "binarize"},
    )


def local_module(in_channels: int, mid_channels: int) -> Graph:
    """``LocalModule``: the shrink map ``init_map`` and the feature ``x`` concatenated (the
    map first), ``last_3`` (3x3 ConvBNLayer + ReLU), ``last_1`` (1x1 to one map, biased)."""
    return Graph(
        [
            ("concat", Concat(1), ("init_map", "x")),
            ("last_3", conv_bn_layer(in_channels + 1, mid_channels, 3, 1, 1, act="relu")),
            ("last_1", paddle_conv(mid_channels, 1)),
        ],
        inputs=("x", "init_map"),
    )


PF_HEAD_MODES = {"large": 4, "small": 8}  # LocalModule's width: in_channels // this


@zoo_model
def pf_head_local(in_channels: int = 256, mode: str = "small") -> Graph:
    """``PFHeadLocal`` at inference: ``{"maps": (shrink + cbn_maps) / 2, "cbn_maps"}``;
    ``thresh`` kept for its weights."""
    if mode not in PF_HEAD_MODES:
        raise ValueError(f"PFHeadLocal mode must be 'large' or 'small'; got {mode!r}")
    mid = in_channels // PF_HEAD_MODES[mode]
    return Graph(
        [
            ("binarize", db_head_branch(in_channels, return_f=True), "x"),
            ("thresh", db_head_branch(in_channels), "x"),
            ("up_conv", Upsample(scale_factor=2, mode="nearest"), "binarize.f"),
            ("cbn_layer", local_module(in_channels // 4, mid), ("up_conv", "binarize.maps")),
            ("cbn_maps", Sigmoid(), "cbn_layer"),
            ("sum", Add(), ("binarize.maps", "cbn_maps")),
            ("average", ScalarOp("mul", 0.5), "sum"),
        ],
        outputs={"maps": "average", "cbn_maps": "cbn_maps"},
    )


@zoo_model
def cls_head(in_channels: int = 200, class_dim: int = 2) -> Sequential:
    """``ClsHead``: ``pool`` (global average), flatten, ``fc`` (weight U(±1/√C), bias
    Paddle's default 0), softmax over the classes at inference."""
    return Sequential(
        pool=AdaptiveAvgPool(1),
        flatten=Flatten(),
        fc=Linear(in_channels, class_dim, weight_init=ctc_uniform(in_channels), bias_init=Zeros()),
        softmax=Softmax(dim=1),
    )


HEADS = {"DBHead": db_head, "PFHeadLocal": pf_head_local, "ClsHead": cls_head}

__all__ = ["db_head", "db_head_branch", "pf_head_local", "local_module", "cls_head", "HEADS"]

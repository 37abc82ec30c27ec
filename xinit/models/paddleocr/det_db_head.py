"""PaddleOCR's ``DBHead`` (``ppocr/modeling/heads/det_db_head.py``) and the classifier's
``ClsHead`` (``cls_head.py``).

A DB ``Head`` is ``conv1`` (3x3 to C/4, no bias, Paddle's default init), ``conv_bn1`` (a
BatchNorm with weight 1 and bias 1e-4, then ReLU), ``conv2`` (a 2x2 stride-2 transposed conv,
KaimingUniform, bias U(±1/√(C/4))), ``conv_bn2`` + ReLU, ``conv3`` (transposed, to one map),
then a sigmoid: a probability map at the input's resolution. ``DBHead`` holds ``binarize``
and ``thresh``; at inference it returns ``{"maps": binarize(x)}``, the threshold branch only
trains (its weights are in every checkpoint, so the spec keeps it, unused).
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Constant, Ones, Zeros
from ...layers import (
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    ConvTranspose,
    Flatten,
    Linear,
    ReLU,
    Sigmoid,
    Softmax,
)
from .._arguments import zoo_model
from ._common import KAIMING_UNIFORM, ctc_uniform, paddle_conv_default


def db_head_branch(in_channels: int) -> Sequential:
    """One DB ``Head`` (binarize or thresh): (N, C, H, W) -> (N, 1, 4H, 4W) in (0, 1)."""
    q = in_channels // 4
    bias = ctc_uniform(q)  # get_bias_attr(C/4): U(±1/√(C/4))

    def bn():
        return BatchNorm(q, weight_init=Ones(), bias_init=Constant(1e-4))

    return Sequential(
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


HEADS = {"DBHead": db_head, "ClsHead": cls_head}

__all__ = ["db_head", "db_head_branch", "cls_head", "HEADS"]

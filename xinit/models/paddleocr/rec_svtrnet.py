"""SVTR's building blocks (``ppocr/modeling/backbones/rec_svtrnet.py``) as the SVTR neck uses
them: ``ConvBNLayer`` (``conv`` without bias, KaimingUniform; ``norm``; an activation) and
the global-mixer ``Block`` (``norm1``, ``mixer`` = ``Attention`` with ``qkv`` and ``proj``,
``norm2``, ``mlp`` = ``Mlp`` with ``fc1``/``fc2``). Linears are ``trunc_normal_(std=.02)``
(cut at ±2 std, as Paddle's TruncatedNormal) with zero biases, LayerNorms 1/0, as SVTR's
``_init_weights``. The attention core is the parameter-free ``sdpa`` (packed q, k, v rows of
one Linear, softmax(q kᵀ/√d) v); its attention-matrix dropout is not in the spec (eval)."""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Zeros
from ...layers import (
    GELU,
    Add,
    BatchNorm,
    Conv,
    Dropout,
    LayerNorm,
    Linear,
    ScaledDotProductAttention,
    SiLU,
)
from ._common import KAIMING_UNIFORM, TRUNC_NORMAL

ACTIVATIONS = {"gelu": GELU, "swish": SiLU}


def svtr_linear(cin: int, cout: int, bias: bool = True) -> Linear:
    """A Linear as SVTR's ``_init_weights`` leaves it: trunc_normal_(std=.02), bias 0."""
    return Linear(cin, cout, bias, weight_init=TRUNC_NORMAL, bias_init=Zeros())


def conv_bn_layer(cin: int, cout: int, kernel=3, stride=1, padding=0, act: str = "gelu"):
    """SVTR's ``ConvBNLayer``: ``conv`` (no bias, KaimingUniform), ``norm`` (BatchNorm2D),
    ``act``."""
    return Sequential(
        conv=Conv(cin, cout, kernel, stride, padding, bias=False, weight_init=KAIMING_UNIFORM),
        norm=BatchNorm(cout),
        act=ACTIVATIONS[act](),
    )


def block(
    dim: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = False,
    drop: float = 0.0,
    act: str = "gelu",
    epsilon: float = 1e-6,
    prenorm: bool = True,
) -> Graph:
    """SVTR's ``Block`` with the global mixer: post-norm (``prenorm``) ``norm1(x +
    mixer(x))``, ``norm2(x + mlp(x))``, or pre-norm ``x + mixer(norm1(x))``, ``x +
    mlp(norm2(x))``."""
    mixer = Sequential(
        qkv=svtr_linear(dim, 3 * dim, qkv_bias),
        sdpa=ScaledDotProductAttention(num_heads),
        proj=svtr_linear(dim, dim),
        proj_drop=Dropout(drop),
    )
    hidden = int(dim * mlp_ratio)
    mlp = Sequential(
        ("fc1", svtr_linear(dim, hidden)),
        ("act", ACTIVATIONS[act]()),
        ("drop", Dropout(drop)),
        ("fc2", svtr_linear(hidden, dim)),
        ("drop", Dropout(drop)),
    )
    norm = LayerNorm(dim, eps=epsilon)
    if prenorm:
        nodes = [
            ("mixer", mixer, "x"),
            ("residual1", Add(), ("x", "mixer")),
            ("norm1", norm, "residual1"),
            ("mlp", mlp, "norm1"),
            ("residual2", Add(), ("norm1", "mlp")),
            ("norm2", norm, "residual2"),
        ]
        # PaddleOCR registers norm1, mixer, norm2, mlp: its state-dict order
        order = ("norm1", "mixer", "norm2", "mlp", "residual1", "residual2")
        nodes.sort(key=lambda n: order.index(n[0]))
    else:
        nodes = [
            ("norm1", norm, "x"),
            ("mixer", mixer, "norm1"),
            ("residual1", Add(), ("x", "mixer")),
            ("norm2", norm, "residual1"),
            ("mlp", mlp, "norm2"),
            ("residual2", Add(), ("residual1", "mlp")),
        ]
    return Graph(nodes, outputs="residual2" if not prenorm else "norm2")

"""Layer specs: frozen dataclasses that know their parameters and infer their output shape.

Shapes include the batch dimension and are channel-first (N, C, *spatial), whatever the
backend. Parameter shapes are in the neutral (PyTorch) layout and carry a role for fans and
a default initializer (PyTorch's defaults, the neutral convention).

One module per family (``conv``, ``norm``, ``attention``, ...); every spec is importable from
``xinit.layers`` itself.
"""

from __future__ import annotations

from .. import kinds
from .activation import (
    GELU,
    Clip,
    Dropout,
    Hardsigmoid,
    Hardswish,
    Identity,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    StochasticDepth,
    Tanh,
)
from .attention import MultiheadAttention, ScaledDotProductAttention
from .base import Layer, ParamSpec, SpecError
from .base import inputs_text as inputs_text  # re-exported for other modules
from .channelwise import LayerScale, PReLU
from .conv import Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose2d
from .lengths import ArgMax, Compare, CumSum, LengthMask
from .linear import Embedding, Linear
from .merge import Add, Concat, Div, MatMul, Merge, Mul, Sub
from .norm import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, LayerNorm2d, RMSNorm
from .ops import ChannelShuffle, LearnedTensor, Pad, Reduce, ScalarOp, Slice, Split
from .pool import AdaptiveAvgPool, AdaptiveMaxPool, AvgPool, MaxPool, pool_out
from .positions import SinusoidPositions
from .recurrent import GRU, LSTM, RNN, RNN_BIASES, RNN_NONLINEARITIES
from .resample import Upsample
from .shape import Flatten, Permute, Reshape
from .tokens import LearnedParameter, PositionIds, Select
from .window import WindowAttention, WindowAttentionV2


def __getattr__(name: str):
    """``LAYER_KINDS``: the spec-backed kinds, read from the table when asked, so kinds
    registered later (a user's own) are in it; ``xinit.kinds.names()`` has native-only too."""
    if name == "LAYER_KINDS":
        return tuple(k for k in kinds.names() if kinds.get(k).spec is not None)
    raise AttributeError(f"module 'xinit.layers' has no attribute {name!r}")


__all__ = [
    "SpecError",
    "ParamSpec",
    "Layer",
    "Conv",
    "ConvTranspose",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose2d",
    "BatchNorm",
    "Linear",
    "Embedding",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm2d",
    "PReLU",
    "LayerScale",
    "MultiheadAttention",
    "ScaledDotProductAttention",
    "WindowAttention",
    "WindowAttentionV2",
    "LearnedParameter",
    "Select",
    "PositionIds",
    "SinusoidPositions",
    "LSTM",
    "GRU",
    "RNN",
    "RNN_BIASES",
    "RNN_NONLINEARITIES",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "SiLU",
    "Sigmoid",
    "Tanh",
    "Hardswish",
    "Hardsigmoid",
    "ReLU6",
    "Clip",
    "Softmax",
    "LogSoftmax",
    "Identity",
    "Dropout",
    "StochasticDepth",
    "Flatten",
    "Reshape",
    "Permute",
    "MaxPool",
    "AvgPool",
    "AdaptiveAvgPool",
    "AdaptiveMaxPool",
    "Merge",
    "Add",
    "Mul",
    "Concat",
    "Sub",
    "Div",
    "MatMul",
    "ScalarOp",
    "Reduce",
    "Split",
    "Slice",
    "ChannelShuffle",
    "Pad",
    "LearnedTensor",
    "ArgMax",
    "CumSum",
    "Compare",
    "LengthMask",
    "Upsample",
    "pool_out",
    "LAYER_KINDS",
]

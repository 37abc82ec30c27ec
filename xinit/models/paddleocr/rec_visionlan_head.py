"""VisionLAN's head (``ppocr/modeling/heads/rec_visionlan_head.py``, ``VLHead``) at inference:
the path PaddleOCR runs in eval mode, ``MLM_VRM``'s ``SequenceModeling`` (a post-norm
transformer encoder) and ``Prediction``'s ``pp`` (parallel reading-order attention) and
``w_vrm``, under PaddleOCR's names and with its initialisation.

Its eval forward is static (no data-dependent step). Training-only parts are not in the spec:
``MLM`` (the masked-language-aware module) and ``Prediction``'s ``pp_share``/``w_share``; a
PaddleOCR checkpoint's keys for them are dropped with a report line on port, as are the
``pos_table`` buffers (the constant sinusoid table, computed by the spec's
``SinusoidPositions``). Dropouts are left out (eval)."""

from __future__ import annotations

import math

from ...graph import Graph
from ...initializers import Normal, XavierNormal, XavierUniform, Zeros
from ...layers import (
    Add,
    Concat,
    Conv1d,
    Embedding,
    Flatten,
    LayerNorm,
    Linear,
    MatMul,
    Permute,
    PositionIds,
    ReLU,
    Reshape,
    ScaledDotProductAttention,
    Select,
    SinusoidPositions,
    Slice,
    Softmax,
    Tanh,
)
from ._common import paddle_conv_default

# Paddle's defaults where VisionLAN gives no initializer: a Linear's (and an Embedding's)
# weight XavierUniform over its two dims, biases 0.
PADDLE_LINEAR = XavierUniform()


def paddle_linear(cin: int, cout: int, weight_init=PADDLE_LINEAR) -> Linear:
    """A ``paddle.nn.Linear`` (Paddle's default init unless ``weight_init``), bias 0."""
    return Linear(cin, cout, weight_init=weight_init, bias_init=Zeros())


def multi_head_attention(d_model: int, n_head: int, d_k: int, d_v: int) -> Graph:
    """``MultiHeadAttention``: ``w_qs``/``w_ks``/``w_vs`` (N(0, 2/(d_model + d_k))), softmax
    attention over ``n_head`` heads, ``fc`` (XavierNormal), then ``layer_norm`` of it plus
    the input (post-norm)."""
    if d_k != d_v:
        raise ValueError(f"VisionLAN attention: d_k ({d_k}) must equal d_v ({d_v})")
    qk = Normal(0.0, math.sqrt(2.0 / (d_model + d_k)))
    v = Normal(0.0, math.sqrt(2.0 / (d_model + d_v)))
    return Graph(
        [
            ("w_qs", paddle_linear(d_model, n_head * d_k, qk), "x"),
            ("w_ks", paddle_linear(d_model, n_head * d_k, qk), "x"),
            ("w_vs", paddle_linear(d_model, n_head * d_v, v), "x"),
            ("qkv", Concat(2), ("w_qs", "w_ks", "w_vs")),
            # the packed rows q, k, v as sdpa takes them (a reshape in place: the concat
            # along the features leaves the channel count to follow unknown)
            ("packed", Reshape((-1, 3 * n_head * d_k))),
            ("attention", ScaledDotProductAttention(n_head), "packed"),
            ("fc", paddle_linear(n_head * d_v, d_model, XavierNormal())),
            ("residual", Add(), ("fc", "x")),
            ("layer_norm", LayerNorm(d_model), "residual"),
        ]
    )


def _conv1x1(cin: int, cout: int):
    """``nn.Conv1D(cin, cout, 1)`` with Paddle's default init, bias 0."""
    return Conv1d(cin, cout, 1, weight_init=paddle_conv_default(cin, 1), bias_init=Zeros())


def feed_forward(d_in: int, d_hid: int) -> Graph:
    """``PositionwiseFeedForward``: 1x1 ``Conv1D``s ``w_1``, ReLU, ``w_2`` over the
    features, then ``layer_norm`` of it plus the input."""
    return Graph(
        [
            ("transpose", Permute((0, 2, 1)), "x"),
            ("w_1", _conv1x1(d_in, d_hid)),
            ("relu", ReLU()),
            ("w_2", _conv1x1(d_hid, d_in)),
            ("transpose_back", Permute((0, 2, 1))),
            ("residual", Add(), ("transpose_back", "x")),
            ("layer_norm", LayerNorm(d_in), "residual"),
        ]
    )


def transformer_encoder(
    n_layers: int, n_position: int, d_model: int = 512, n_head: int = 8, d_inner: int = 2048
) -> Graph:
    """``Transformer_Encoder``: the sinusoid ``position_enc``, ``layer_stack`` of
    ``EncoderLayer`` (``slf_attn``, ``pos_ffn``), a final ``layer_norm`` (eps 1e-6)."""
    d_k = d_model // n_head
    layers = [
        Graph(
            [
                ("slf_attn", multi_head_attention(d_model, n_head, d_k, d_k), "x"),
                ("pos_ffn", feed_forward(d_model, d_inner)),
            ]
        )
        for _ in range(n_layers)
    ]
    return Graph(
        [
            ("position_enc", SinusoidPositions(n_position, d_model), "x"),
            ("layer_stack", Graph([(str(i), layer) for i, layer in enumerate(layers)])),
            ("layer_norm", LayerNorm(d_model, eps=1e-6)),
        ]
    )


def pp_layer(n_dim: int, n_characters: int, n_position: int) -> Graph:
    """``PP_layer``: the reading order's embeddings (``f0_embedding`` of 0..N-1) through
    ``w0`` (N -> n_position), plus ``wv`` of the features, tanh, ``we``; a softmax over the
    positions weighs the features: (B, N, n_dim). The ids 0..N-1 are ``PositionIds`` of
    the first N positions of one feature."""
    return Graph(
        [
            ("feature", Select(2, 0), "x"),
            ("first", Slice(1, 0, n_characters)),
            ("reading_order", PositionIds(n_characters)),
            ("f0_embedding", Embedding(n_characters, n_dim, PADDLE_LINEAR)),
            ("transpose", Permute((0, 2, 1))),
            ("w0", paddle_linear(n_characters, n_position)),
            ("transpose_w0", Permute((0, 2, 1))),
            ("wv", paddle_linear(n_dim, n_dim), "x"),
            ("sum", Add(), ("transpose_w0", "wv")),
            ("active", Tanh()),
            ("we", paddle_linear(n_dim, n_characters)),
            ("transpose_we", Permute((0, 2, 1))),
            ("softmax", Softmax(2)),
            ("g_output", MatMul(), ("softmax", "x")),
        ]
    )


def vl_head(
    in_channels: int = 512,
    out_channels: int = 36,
    n_layers: int = 3,
    n_position: int = 256,
    n_dim: int = 512,
    max_text_length: int = 25,
    n_head: int = 8,
    d_inner: int = 2048,
) -> Graph:
    """``VLHead`` in eval mode on a feature map (B, ``in_channels``, H, W) with H·W =
    ``n_position``: read column by column into (B, H·W, C), ``MLM_VRM.SequenceModeling``,
    ``MLM_VRM.Prediction.pp`` and ``w_vrm`` (``out_channels`` + 1 classes): (B,
    ``max_text_length`` + 1, classes) transposed time first, as PaddleOCR's ``text_pre``
    (its second output, the features read, is the input reordered: left out).
    PaddleOCR's encoder is 512 wide with 8 heads and 2048 hidden; ``n_head``/``d_inner``
    and ``n_dim`` = ``in_channels`` other than 512 give the same structure narrower."""
    if in_channels != n_dim:
        raise ValueError(f"VLHead: in_channels ({in_channels}) must equal n_dim ({n_dim})")
    n_characters = max_text_length + 1  # the characters and the end
    prediction = Graph(
        [
            ("pp", pp_layer(n_dim, n_characters, n_position), "x"),
            ("w_vrm", paddle_linear(n_dim, out_channels + 1)),
        ]
    )
    mlm_vrm = Graph(
        [
            ("columns", Permute((0, 1, 3, 2)), "x"),
            ("flatten", Flatten(start_dim=2)),
            ("sequence", Permute((0, 2, 1))),
            ("SequenceModeling", transformer_encoder(n_layers, n_position, n_dim, n_head, d_inner)),
            ("Prediction", prediction),
            ("time_first", Permute((1, 0, 2))),
        ]
    )
    return Graph([("MLM_VRM", mlm_vrm, "x")])

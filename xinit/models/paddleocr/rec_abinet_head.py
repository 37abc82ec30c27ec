"""ABINet's head (``ppocr/modeling/heads/rec_abinet_head.py``, ``ABINetHead``): the vision
model PaddleOCR runs at inference, and with ``use_lang`` its language model and alignment
(:mod:`.rec_abinet_language`), under its names and with its initialisation (Paddle's
defaults throughout: ``ABINetHead`` gives no initializer).

``pos_encoder`` (the sinusoid table, as the spec's ``SinusoidPositions``), ``encoder``
(``TransformerBlock``s of ``rec_nrtr_head.py``: self-attention, post-norm, ReLU ``mlp``),
``decoder`` (``PositionAttention``: a 4-level conv/upsample U-Net makes the keys, the
sinusoid table of the reading positions through ``project`` the queries) and ``cls``; eval
mode ends with a softmax. The saved ``pe`` buffers are constants the spec computes; a
checkpoint's keys for them are dropped with a report line on port. Dropouts are left out."""

from __future__ import annotations

from ...errors import ArgumentError
from ...graph import Graph
from ...initializers import Zeros
from ...layers import (
    Add,
    BatchNorm,
    Conv,
    Flatten,
    LayerNorm,
    MatMul,
    Permute,
    ReLU,
    Reshape,
    ScalarOp,
    ScaledDotProductAttention,
    SinusoidPositions,
    Slice,
    Softmax,
    Upsample,
)
from ._common import paddle_conv_default
from .rec_abinet_language import language_passes
from .rec_visionlan_head import paddle_linear

# PositionAttention's width: PaddleOCR builds it with its default in_channels (512), whatever
# d_model is, so ABINetHead only runs with d_model 512.
POSITION_ATTENTION_WIDTH = 512


def transformer_block(d_model: int, nhead: int, dim_feedforward: int) -> Graph:
    """``TransformerBlock(with_self_attn=True, with_cross_attn=False)``: ``self_attn``
    (``qkv``, softmax attention over ``nhead`` heads, ``out_proj``), ``norm1`` of it plus
    the input, ``mlp`` (``fc1``, ReLU, ``fc2``), ``norm3`` of it plus its input."""
    attention = Graph(
        [
            ("qkv", paddle_linear(d_model, 3 * d_model), "x"),
            ("attention", ScaledDotProductAttention(nhead)),
            ("out_proj", paddle_linear(d_model, d_model)),
        ]
    )
    mlp = Graph(
        [
            ("fc1", paddle_linear(d_model, dim_feedforward), "x"),
            ("act", ReLU()),
            ("fc2", paddle_linear(dim_feedforward, d_model)),
        ]
    )
    return Graph(
        [
            ("self_attn", attention, "x"),
            ("residual1", Add(), ("x", "self_attn")),
            ("norm1", LayerNorm(d_model)),
            ("mlp", mlp),
            ("residual3", Add(), ("norm1", "mlp")),
            ("norm3", LayerNorm(d_model)),
        ]
    )


def _conv_bn_relu(cin: int, cout: int, stride=1, upsample: Upsample | None = None) -> Graph:
    """``encoder_layer`` (conv 3x3, BatchNorm, ReLU: children 0, 1, 2) or, after an
    ``upsample``, ``decoder_layer`` (children 0 the upsample, then 1, 2, 3)."""
    conv = Conv(cin, cout, 3, stride, 1, weight_init=paddle_conv_default(cin, 3), bias_init=Zeros())
    layers = [conv, BatchNorm(cout), ReLU()]
    layers = [upsample, *layers] if upsample is not None else layers
    return Graph([(str(i), layer) for i, layer in enumerate(layers)])


def position_attention(
    max_length: int, h: int, w: int, in_channels: int = 512, num_channels: int = 64
) -> Graph:
    """``PositionAttention`` on (B, C, h, w): keys from ``k_encoder`` (strides (1, 2), then
    (2, 2) three times) and ``k_decoder`` (nearest upsamples x2 adding the encoder level of
    the same size, the last to (h, w)); queries the sinusoid table's first ``max_length``
    rows through ``project``; softmax(q·k / √C) weighs the features: (B, max_length, C).

    PaddleOCR's queries encode zeros of (B, max_length, C); here the zeros are the first
    ``max_length`` features times 0 (finite after the encoder's LayerNorm), so the graph
    stays one static chain."""
    k_encoder = Graph(
        [
            ("0", _conv_bn_relu(in_channels, num_channels, (1, 2)), "x"),
            ("1", _conv_bn_relu(num_channels, num_channels, 2)),
            ("2", _conv_bn_relu(num_channels, num_channels, 2)),
            ("3", _conv_bn_relu(num_channels, num_channels, 2)),
        ],
        outputs={str(i): str(i) for i in range(4)},
    )
    up = Upsample(scale_factor=2)
    k_decoder = Graph(
        [
            ("0", _conv_bn_relu(num_channels, num_channels, upsample=up), "x"),
            ("skip0", Add(), ("0", "level2")),
            ("1", _conv_bn_relu(num_channels, num_channels, upsample=up)),
            ("skip1", Add(), ("1", "level1")),
            ("2", _conv_bn_relu(num_channels, num_channels, upsample=up)),
            ("skip2", Add(), ("2", "level0")),
            ("3", _conv_bn_relu(num_channels, in_channels, upsample=Upsample(size=(h, w)))),
        ],
        inputs=("x", "level2", "level1", "level0"),
    )
    levels = ("k_encoder.3", "k_encoder.2", "k_encoder.1", "k_encoder.0")
    return Graph(
        [
            ("k_encoder", k_encoder, "x"),
            ("k_decoder", k_decoder, levels),
            ("keys", Flatten(start_dim=2), "k_decoder"),
            ("values", Flatten(start_dim=2), "x"),
            ("values_t", Permute((0, 2, 1))),
            ("zeros", Slice(1, 0, max_length), "values_t"),
            ("zeroed", ScalarOp("mul", 0.0)),
            ("pos_encoder", SinusoidPositions(max_length, in_channels)),
            ("project", paddle_linear(in_channels, in_channels)),
            ("scores", MatMul(), ("project", "keys")),
            ("scaled", ScalarOp("div", in_channels**0.5)),
            ("softmax", Softmax(-1)),
            ("attn_vecs", MatMul(), ("softmax", "values_t")),
        ]
    )


def abinet_head(
    in_channels: int = 512,
    out_channels: int = 37,
    d_model: int = 512,
    nhead: int = 8,
    num_layers: int = 3,
    dim_feedforward: int = 2048,
    max_length: int = 25,
    image_size: tuple[int, int] = (32, 128),
    softmax: bool = True,
    use_lang: bool = False,
    iter_size: int = 1,
) -> Graph:
    """``ABINetHead`` in eval mode on the backbone's (B, ``d_model``, H, W) with (H, W) =
    ``image_size`` / 4: (B, ``max_length`` + 1, ``out_channels``) class probabilities
    (``softmax=False``: the logits), of the vision model (``vis_logits``) or, ``use_lang``,
    of the last of ``iter_size`` language-and-alignment passes
    (:mod:`.rec_abinet_language`)."""
    if d_model != POSITION_ATTENTION_WIDTH or in_channels != d_model:
        raise ValueError(
            f"ABINetHead: PaddleOCR's PositionAttention is {POSITION_ATTENTION_WIDTH} wide, so "
            f"d_model and the backbone's channels must be {POSITION_ATTENTION_WIDTH}; got "
            f"d_model={d_model}, in_channels={in_channels}"
        )
    h, w = image_size[0] // 4, image_size[1] // 4
    blocks = [transformer_block(d_model, nhead, dim_feedforward) for _ in range(num_layers)]
    nodes = [
        ("sequence", Flatten(start_dim=2), "x"),
        ("sequence_t", Permute((0, 2, 1))),
        ("pos_encoder", SinusoidPositions(h * w, d_model)),
        ("encoder", Graph([(str(i), block) for i, block in enumerate(blocks)])),
        ("channels_first", Permute((0, 2, 1))),
        ("feature", Reshape((d_model, h, w))),
        ("decoder", position_attention(max_length + 1, h, w, d_model)),
        ("cls", paddle_linear(d_model, out_channels)),
    ]
    if use_lang:
        if not isinstance(iter_size, int) or isinstance(iter_size, bool) or iter_size < 1:
            raise ArgumentError(f"ABINetHead: iter_size must be a positive int; got {iter_size!r}")
        passes, _ = language_passes(
            "cls", "decoder", iter_size, d_model, nhead, dim_feedforward, max_length + 1,
            out_channels,
        )  # fmt: skip
        nodes += passes  # the last is the aligned logits
    if softmax:
        nodes.append(("softmax", Softmax(-1)))
    return Graph(nodes)

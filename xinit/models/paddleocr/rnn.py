"""PaddleOCR's recognition neck (``ppocr/modeling/necks/rnn.py``): ``SequenceEncoder`` with
``encoder_reshape`` (``Im2Seq``: (N, C, 1, W) -> (N, W, C)) and, by ``encoder_type``, no
encoder (``reshape``), ``EncoderWithRNN`` (``rnn``: ``encoder.lstm``, a 2-layer bidirectional
LSTM) or ``EncoderWithSVTR`` (``svtr``: convs around global SVTR blocks, run before Im2Seq)."""

from __future__ import annotations

from ...blocks import Sequential
from ...errors import UnknownNameError
from ...graph import Graph
from ...layers import LSTM, Concat, Flatten, LayerNorm, Permute, Reshape, SpecError
from .._arguments import zoo_model
from .rec_svtrnet import block, conv_bn_layer

ENCODER_TYPES = ("reshape", "rnn", "svtr")


def im2seq() -> Sequential:
    """``Im2Seq``: (N, C, 1, W) -> (N, W, C) (a height other than 1 gives C·H features,
    which the next layer refuses naming the shapes)."""
    return Sequential(transpose=Permute((0, 3, 1, 2)), flatten=Flatten(start_dim=2))


@zoo_model
def encoder_with_svtr(
    in_channels: int,
    dims: int = 64,
    depth: int = 2,
    hidden_dims: int = 120,
    use_guide: bool = False,
    num_heads: int = 8,
    qkv_bias: bool = True,
    mlp_ratio: float = 2.0,
    drop_rate: float = 0.1,
    attn_drop_rate: float = 0.1,
    drop_path: float = 0.0,
    kernel_size=(3, 3),
    qk_scale=None,
) -> Graph:
    """``EncoderWithSVTR`` on a (N, C, 1, W) map: ``conv1`` (k, C/8), ``conv2`` (1x1,
    hidden), ``svtr_block`` (``depth`` pre-norm blocks, Swish, eps 1e-5) on the W tokens,
    ``norm`` (eps 1e-6), back to a map, ``conv3`` (1x1, C), concatenated with the input,
    ``conv4`` (k, C/8), ``conv1x1`` (1x1, ``dims``). ``use_guide`` only stops gradients and
    ``drop_path`` is 0 in PaddleOCR's configs; a ``qk_scale`` other than None is refused."""
    if qk_scale is not None:
        raise SpecError(f"EncoderWithSVTR: qk_scale={qk_scale!r} is not supported")
    if drop_path:
        raise SpecError(f"EncoderWithSVTR: drop_path={drop_path!r} is not supported")
    del use_guide, attn_drop_rate  # no effect on the parameters or the eval output
    k = tuple(kernel_size)
    pad = (k[0] // 2, k[1] // 2)
    mid = in_channels // 8
    blocks = Sequential(
        *[
            block(hidden_dims, num_heads, mlp_ratio, qkv_bias, drop_rate, "swish", 1e-5, False)
            for _ in range(depth)
        ]
    )
    return Graph(
        [
            ("conv1", conv_bn_layer(in_channels, mid, k, padding=pad, act="swish"), "x"),
            ("conv2", conv_bn_layer(mid, hidden_dims, 1, act="swish")),
            ("flatten", Flatten(start_dim=2)),
            ("to_tokens", Permute((0, 2, 1))),  # (N, C, H·W) -> (N, H·W, C)
            ("svtr_block", blocks),
            ("norm", LayerNorm(hidden_dims, eps=1e-6)),
            ("to_channels", Permute((0, 2, 1))),
            ("to_map", Reshape((hidden_dims, 1, -1))),  # Im2Seq after it needs H = 1
            ("conv3", conv_bn_layer(hidden_dims, in_channels, 1, act="swish")),
            ("concat", Concat(1), ("x", "conv3")),
            ("conv4", conv_bn_layer(2 * in_channels, mid, k, padding=pad, act="swish")),
            ("conv1x1", conv_bn_layer(mid, dims, 1, act="swish")),
        ]
    )


def sequence_encoder(
    in_channels: int, encoder_type: str, hidden_size: int = 48, **kwargs
) -> tuple[Sequential, int]:
    """``SequenceEncoder``: the neck and its output width (PaddleOCR's ``out_channels``)."""
    if encoder_type == "reshape":
        return Sequential(encoder_reshape=im2seq()), in_channels
    if encoder_type == "rnn":
        lstm = LSTM(in_channels, hidden_size, num_layers=2, bidirectional=True)
        neck = Sequential(encoder_reshape=im2seq(), encoder=Sequential(lstm=lstm))
        return neck, 2 * hidden_size
    if encoder_type == "svtr":
        encoder = encoder_with_svtr(in_channels, **kwargs)
        return Sequential(encoder=encoder, encoder_reshape=im2seq()), kwargs.get("dims", 64)
    raise UnknownNameError(
        f"SequenceEncoder: encoder_type {encoder_type!r} is not supported "
        f"(supported: {', '.join(ENCODER_TYPES)})"
    )

"""ABINet's language model and alignment (``ABINetHead`` with ``use_lang: True``,
``ppocr/modeling/heads/rec_abinet_head.py``): ``BCNLanguage`` and the ``w_att_align`` /
``cls_align`` fusion, run ``iter_size`` times on the same weights, each pass masked by the
lengths of the last logits. PaddleOCR's names and Paddle's default initialisation.

A pass: the lengths (``_get_length``: 1 + the first position whose argmax is the stop class
0, else the sequence length; clipped to [2, length]) make the mask (``_get_mask``: keys at
or past the length, and each query's own position, -inf); the softmaxed logits go through
the language model; its feature and the vision feature are gated (``f·v + (1 - f)·l``,
f = sigmoid(``w_att_align``([l, v]))) and classified by ``cls_align``. Passes after the
first reuse the first pass's nodes (:class:`~xinit.graph.Reuse`)."""

from __future__ import annotations

from ...graph import Graph, Reuse
from ...layers import (
    Add,
    ArgMax,
    Clip,
    Compare,
    Concat,
    CumSum,
    LayerNorm,
    LengthMask,
    Linear,
    Mul,
    Reduce,
    ReLU,
    ScalarOp,
    ScaledDotProductAttention,
    Sigmoid,
    SinusoidPositions,
    Softmax,
)
from .rec_visionlan_head import PADDLE_LINEAR, paddle_linear

BCN_LAYERS = 4  # BCNLanguage's decoder: PaddleOCR fixes 4 blocks


def lengths(max_length: int) -> Graph:
    """Logits (N, L, classes) -> lengths (N,): ``_get_length`` clipped to [2, ``max_length``].
    The positions before the first stop-class argmax are counted (those whose running count
    of stop classes is still 0): count + 1 is the length, L + 1 where there is no stop, which
    the clip brings to L = ``max_length`` as PaddleOCR's ``where`` does."""
    return Graph(
        [
            ("argmax", ArgMax(-1), "x"),
            ("is_stop", Compare("eq", 0.0)),
            ("stops_so_far", CumSum(1)),
            ("before_stop", Compare("eq", 0.0)),
            ("count", Reduce("sum", 1)),
            ("length", ScalarOp("add", 1.0)),
            ("clipped", Clip(2.0, float(max_length))),
        ]
    )


def cross_attention_block(d_model: int, nhead: int, dim_feedforward: int) -> Graph:
    """``TransformerBlock(with_self_attn=False, with_cross_attn=True)`` on (x, memory, mask):
    ``cross_attn`` (``q`` of x, ``kv`` of memory, softmax attention with the additive mask
    over ``nhead`` heads, ``out_proj``), ``norm2`` of it plus x, ``mlp`` (``fc1``, ReLU,
    ``fc2``), ``norm3`` of it plus its input. x and memory have the same length, so q and kv
    (rows k, v) concatenated are the packed (N, L, 3E) rows ``sdpa`` takes."""
    attention = Graph(
        [
            ("q", paddle_linear(d_model, d_model), "x"),
            ("kv", paddle_linear(d_model, 2 * d_model), "memory"),
            ("packed", Concat(-1), ("q", "kv")),
            ("attention", ScaledDotProductAttention(nhead, attn_mask=True), ("packed", "mask")),
            ("out_proj", paddle_linear(d_model, d_model)),
        ],
        inputs=("x", "memory", "mask"),
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
            ("cross_attn", attention, ("x", "memory", "mask")),
            ("residual2", Add(), ("x", "cross_attn")),
            ("norm2", LayerNorm(d_model)),
            ("mlp", mlp),
            ("residual3", Add(), ("norm2", "mlp")),
            ("norm3", LayerNorm(d_model)),
        ],
        inputs=("x", "memory", "mask"),
    )


def bcn_language(
    d_model: int, nhead: int, dim_feedforward: int, length: int, num_classes: int
) -> Graph:
    """``BCNLanguage`` on (tokens (N, ``length``, classes), mask (N, 1, length, length)):
    ``proj`` (no bias) plus the sinusoid table (``token_encoder``) is the memory, the table
    alone (``pos_encoder`` of zeros) the queries, then the decoder's blocks and ``cls``.
    Outputs ``feature`` (N, length, ``d_model``) and ``logits`` (N, length, classes)."""
    blocks = [
        (str(i), cross_attention_block(d_model, nhead, dim_feedforward), (prev, "embed", "mask"))
        for i, prev in enumerate(["query", *map(str, range(BCN_LAYERS - 1))])
    ]
    decoder = Graph(blocks, inputs=("query", "embed", "mask"), outputs=str(BCN_LAYERS - 1))
    return Graph(
        [
            ("proj", Linear(num_classes, d_model, bias=False, weight_init=PADDLE_LINEAR), "x"),
            ("token_encoder", SinusoidPositions(length, d_model)),
            ("zeros", ScalarOp("mul", 0.0)),
            ("pos_encoder", SinusoidPositions(length, d_model)),
            ("decoder", decoder, ("pos_encoder", "token_encoder", "mask")),
            ("cls", paddle_linear(d_model, num_classes)),
        ],
        inputs=("x", "mask"),
        outputs={"feature": "decoder", "logits": "cls"},
    )


def language_passes(
    logits: str, v_feature: str, iter_size: int, d_model: int, nhead: int,
    dim_feedforward: int, length: int, num_classes: int,
) -> tuple[list, str]:  # fmt: skip
    """The head's nodes of ``iter_size`` language-and-alignment passes after node
    ``logits`` (the vision logits), with ``v_feature`` the vision feature; and the name of
    the last pass's ``cls_align`` node (the aligned logits). Pass 0 holds the weights
    (``language``, ``w_att_align``, ``cls_align``); pass i > 0 reuses them (``language_i``
    ...)."""
    learned = {
        "language": bcn_language(d_model, nhead, dim_feedforward, length, num_classes),
        "w_att_align": paddle_linear(2 * d_model, d_model),
        "cls_align": paddle_linear(d_model, num_classes),
    }
    nodes = []
    for i in range(iter_size):
        tag = f"_{i}" if i else ""
        layer = learned if i == 0 else {name: Reuse(name) for name in learned}
        nodes += [
            (f"lengths{tag}", lengths(length), logits),
            (f"mask{tag}", LengthMask(length, diagonal=True)),
            (f"tokens{tag}", Softmax(-1), logits),
            (f"language{tag}", layer["language"], (f"tokens{tag}", f"mask{tag}")),
            (f"fuse{tag}", Concat(-1), (f"language{tag}.feature", v_feature)),
            (f"w_att_align{tag}", layer["w_att_align"]),
            (f"gate{tag}", Sigmoid()),
            (f"gated_vision{tag}", Mul(), (f"gate{tag}", v_feature)),
            (f"ungate{tag}", ScalarOp("rsub", 1.0), f"gate{tag}"),
            (f"gated_language{tag}", Mul(), (f"ungate{tag}", f"language{tag}.feature")),
            (f"aligned{tag}", Add(), (f"gated_vision{tag}", f"gated_language{tag}")),
            (f"cls_align{tag}", layer["cls_align"]),
        ]
        logits = f"cls_align{tag}"
    return nodes, logits

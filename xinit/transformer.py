"""Transformer layers as graphs of xinit layers, named as PyTorch names their children.

``TransformerEncoderLayer(16, 4, 32)`` is a :class:`~xinit.graph.Graph` whose nodes are
``nn.TransformerEncoderLayer``'s children (``self_attn``, ``linear1``, ``dropout``,
``linear2``, ``norm1``, ``norm2``, ``dropout1``, ``dropout2``) plus parameter-free nodes for
what PyTorch computes in ``forward`` (``activation``, ``residual1``, ``residual2``). So:

* the torch build has exactly ``nn.TransformerEncoderLayer(batch_first=True)``'s state-dict
  keys, and the paddle build ``paddle.nn.TransformerEncoderLayer``'s (the same child names;
  ``norm_first`` is Paddle's ``normalize_before``);
* policies see ``multihead_attention``, ``linear`` and ``layernorm`` layers, as they do in a
  native model read layer by layer; parity compares node by node.

A graph's ``kind`` names the block (``transformer_encoder_layer``): parity rows and
summaries show it. Masks are graph inputs, named as PyTorch's ``forward`` arguments and
meaning what they mean there (bool True: masked out; float: added). Dropout is PyTorch's
(identity in eval mode). ``TransformerEncoder``/``TransformerDecoder`` stack copies of a
layer under ``layers.N`` with an optional final ``norm``, as PyTorch and Paddle name them.
"""

from __future__ import annotations

from . import kinds
from .graph import Graph
from .layers import (
    Add,
    Dropout,
    Layer,
    LayerNorm,
    Linear,
    MultiheadAttention,
    SpecError,
)


def _activation(activation) -> Layer:
    """The activation layer: an xinit layer of an activation kind, or such a kind's name
    (``"relu"``, ``"gelu"``: the kinds table's activations, each with its defaults)."""
    if isinstance(activation, Layer) and kinds.get(activation.kind).activation:
        return activation
    if isinstance(activation, str) and activation in kinds.activations():
        return kinds.get(activation).spec()
    raise SpecError(
        f"transformer layer: activation must be one of {kinds.activations()} or an xinit "
        f"activation layer (ReLU(), GELU(approximate='tanh'), ...); got {activation!r}"
    )


def _check(d_model, nhead, dim_feedforward, dropout) -> None:
    for name, value in (
        ("d_model", d_model),
        ("nhead", nhead),
        ("dim_feedforward", dim_feedforward),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SpecError(f"transformer layer: {name} must be a positive int; got {value!r}")
    if d_model % nhead:
        raise SpecError(f"transformer layer: d_model {d_model} is not divisible by nhead {nhead}")
    if not 0.0 <= dropout < 1.0:
        raise SpecError(f"transformer layer: dropout must be in [0, 1); got {dropout!r}")


def _feed_forward(d_model, dim_feedforward, dropout, activation, bias, source: str) -> dict:
    """linear1 -> activation -> dropout -> linear2, from node ``source`` (PyTorch's _ff_block)."""
    return {
        "linear1": (Linear(d_model, dim_feedforward, bias), source),
        "dropout": (Dropout(dropout), "activation"),
        "linear2": (Linear(dim_feedforward, d_model, bias), "dropout"),
        "activation": (_activation(activation), "linear1"),
    }


def TransformerEncoderLayer(  # noqa: N802 - PyTorch's class name, a factory here
    d_model: int,
    nhead: int,
    dim_feedforward: int = 2048,
    dropout: float = 0.1,
    activation: str | Layer = "relu",
    layer_norm_eps: float = 1e-5,
    norm_first: bool = False,
    bias: bool = True,
    *,
    src_mask: bool = False,
    src_key_padding_mask: bool = False,
    is_causal: bool = False,
) -> Graph:
    """PyTorch's ``nn.TransformerEncoderLayer(batch_first=True)`` as a graph (post-norm, or
    pre-norm with ``norm_first``). Inputs ``src`` (N, L, d_model), then ``src_mask`` (L, L)
    or (N·nhead, L, L) and ``src_key_padding_mask`` (N, L) when asked for; ``is_causal``
    masks later positions without a mask input."""
    _check(d_model, nhead, dim_feedforward, dropout)
    masks = tuple(
        m
        for m, on in (("src_mask", src_mask), ("src_key_padding_mask", src_key_padding_mask))
        if on
    )
    attn = MultiheadAttention(
        d_model,
        nhead,
        bias,
        attn_mask=src_mask,
        key_padding_mask=src_key_padding_mask,
        is_causal=is_causal,
    )
    ff = _feed_forward(
        d_model, dim_feedforward, dropout, activation, bias, "norm2" if norm_first else "norm1"
    )
    norm = LayerNorm(d_model, layer_norm_eps, bias=bias)
    if norm_first:  # x + sa(norm1(x)); then + ff(norm2(.))
        wiring = {"self_attn": ("norm1", *masks), "norm1": "src", "norm2": "residual1"}
        residual2, out = ("residual1", "dropout2"), "residual2"
    else:  # norm1(x + sa(x)); then norm2(. + ff(.))
        wiring = {"self_attn": ("src", *masks), "norm1": "residual1", "norm2": "residual2"}
        residual2, out = ("norm1", "dropout2"), "norm2"
    nodes = [  # PyTorch's registration order: its state-dict order
        ("self_attn", attn, wiring["self_attn"]),
        ("linear1", *ff["linear1"]),
        ("dropout", *ff["dropout"]),
        ("linear2", *ff["linear2"]),
        ("norm1", norm, wiring["norm1"]),
        ("norm2", norm, wiring["norm2"]),
        ("dropout1", Dropout(dropout), "self_attn"),
        ("dropout2", Dropout(dropout), "linear2"),
        ("activation", *ff["activation"]),
        ("residual1", Add(), ("src", "dropout1")),
        ("residual2", Add(), residual2),
    ]
    return Graph(nodes, inputs=("src", *masks), outputs=out, kind="transformer_encoder_layer")


def TransformerDecoderLayer(  # noqa: N802 - PyTorch's class name, a factory here
    d_model: int,
    nhead: int,
    dim_feedforward: int = 2048,
    dropout: float = 0.1,
    activation: str | Layer = "relu",
    layer_norm_eps: float = 1e-5,
    norm_first: bool = False,
    bias: bool = True,
    *,
    tgt_mask: bool = False,
    memory_mask: bool = False,
    tgt_key_padding_mask: bool = False,
    memory_key_padding_mask: bool = False,
    tgt_is_causal: bool = False,
    cross_attn_name: str = "multihead_attn",
) -> Graph:
    """PyTorch's ``nn.TransformerDecoderLayer(batch_first=True)`` as a graph. Inputs ``tgt``
    (N, T, d_model) and ``memory`` (N, S, d_model), then the masks asked for, in PyTorch's
    argument order: ``tgt_mask`` (T, T) or (N·nhead, T, T), ``memory_mask`` (T, S) or
    (N·nhead, T, S), ``tgt_key_padding_mask`` (N, T), ``memory_key_padding_mask`` (N, S).
    ``cross_attn_name="cross_attn"`` names the cross-attention as Paddle does (PyTorch:
    ``multihead_attn``)."""
    _check(d_model, nhead, dim_feedforward, dropout)
    if not isinstance(cross_attn_name, str) or not cross_attn_name.isidentifier():
        raise SpecError(
            f"TransformerDecoderLayer: cross_attn_name {cross_attn_name!r} is not a name"
        )
    flags = {
        "tgt_mask": tgt_mask,
        "memory_mask": memory_mask,
        "tgt_key_padding_mask": tgt_key_padding_mask,
        "memory_key_padding_mask": memory_key_padding_mask,
    }
    masks = tuple(m for m, on in flags.items() if on)
    self_masks = tuple(m for m in ("tgt_mask", "tgt_key_padding_mask") if flags[m])
    cross_masks = tuple(m for m in ("memory_mask", "memory_key_padding_mask") if flags[m])
    self_attn = MultiheadAttention(
        d_model,
        nhead,
        bias,
        attn_mask=tgt_mask,
        key_padding_mask=tgt_key_padding_mask,
        is_causal=tgt_is_causal,
    )
    cross = MultiheadAttention(
        d_model, nhead, bias, attn_mask=memory_mask, key_padding_mask=memory_key_padding_mask
    )
    norm = LayerNorm(d_model, layer_norm_eps, bias=bias)
    if norm_first:
        wiring = {
            "self_attn": ("norm1", *self_masks),
            "cross": ("norm2", "memory", *cross_masks),
            "norm1": "tgt",
            "norm2": "residual1",
            "norm3": "residual2",
            "residual2": ("residual1", "dropout2"),
            "residual3": ("residual2", "dropout3"),
        }
        ff_source, out = "norm3", "residual3"
    else:
        wiring = {
            "self_attn": ("tgt", *self_masks),
            "cross": ("norm1", "memory", *cross_masks),
            "norm1": "residual1",
            "norm2": "residual2",
            "norm3": "residual3",
            "residual2": ("norm1", "dropout2"),
            "residual3": ("norm2", "dropout3"),
        }
        ff_source, out = "norm2", "norm3"
    ff = _feed_forward(d_model, dim_feedforward, dropout, activation, bias, ff_source)
    nodes = [
        ("self_attn", self_attn, wiring["self_attn"]),
        (cross_attn_name, cross, wiring["cross"]),
        ("linear1", *ff["linear1"]),
        ("dropout", *ff["dropout"]),
        ("linear2", *ff["linear2"]),
        ("norm1", norm, wiring["norm1"]),
        ("norm2", norm, wiring["norm2"]),
        ("norm3", norm, wiring["norm3"]),
        ("dropout1", Dropout(dropout), "self_attn"),
        ("dropout2", Dropout(dropout), cross_attn_name),
        ("dropout3", Dropout(dropout), "linear2"),
        ("activation", *ff["activation"]),
        ("residual1", Add(), ("tgt", "dropout1")),
        ("residual2", Add(), wiring["residual2"]),
        ("residual3", Add(), wiring["residual3"]),
    ]
    return Graph(
        nodes, inputs=("tgt", "memory", *masks), outputs=out, kind="transformer_decoder_layer"
    )


def _stack(layer: Graph, num_layers: int, norm: LayerNorm | None, kind: str) -> Graph:
    """``num_layers`` copies of ``layer`` under ``layers.N`` (each on the previous one's
    output and the graph's other inputs: memory, masks), then ``norm``."""
    if not isinstance(layer, Graph) or not layer.kind.startswith("transformer_"):
        raise SpecError(f"{kind}: takes a layer made by xinit.transformer; got {layer!r}")
    if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers < 1:
        raise SpecError(f"{kind}: num_layers must be a positive int; got {num_layers!r}")
    inputs = layer.inputs
    shared = inputs[1:]  # memory and the masks reach every layer
    rows = [
        (str(i), layer, (inputs[0] if i == 0 else str(i - 1), *shared)) for i in range(num_layers)
    ]
    layers = Graph(rows, inputs=inputs, outputs=str(num_layers - 1))
    nodes = [("layers", layers, inputs)]
    if norm is not None:
        if not isinstance(norm, LayerNorm):
            raise SpecError(f"{kind}: norm must be a LayerNorm or None; got {norm!r}")
        nodes.append(("norm", norm, "layers"))
    return Graph(nodes, inputs=inputs, kind=kind)


def TransformerEncoder(  # noqa: N802 - PyTorch's class name, a factory here
    encoder_layer: Graph, num_layers: int, norm: LayerNorm | None = None
) -> Graph:
    """PyTorch's (and Paddle's) ``TransformerEncoder``: ``layers.0`` ... ``layers.{n-1}``, each
    a copy of ``encoder_layer`` taking the same mask inputs, then ``norm`` when given."""
    return _stack(encoder_layer, num_layers, norm, "transformer_encoder")


def TransformerDecoder(  # noqa: N802 - PyTorch's class name, a factory here
    decoder_layer: Graph, num_layers: int, norm: LayerNorm | None = None
) -> Graph:
    """PyTorch's (and Paddle's) ``TransformerDecoder``: ``layers.N`` copies of
    ``decoder_layer``, each on the previous output, ``memory`` and the masks; then ``norm``."""
    return _stack(decoder_layer, num_layers, norm, "transformer_decoder")


__all__ = [
    "TransformerEncoderLayer",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerDecoder",
]

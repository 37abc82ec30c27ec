"""Blocks in the defaults catalogue: a registered name, a graph factory, and the child layers
whose rows the catalogue shows.

A block (a transformer layer) is no layer kind: it is a :class:`~xinit.graph.Graph` of
layers, and its catalogue rows are its children's rows under their paths; what a
framework's own block adds beyond its children is that framework's
(``backends/<framework>/defaults.py``: ``block_rule``, ``block_note``, ``native_block``).
Putting a block into ``xinit defaults`` is one :func:`register_block` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xinit import layers as L
from xinit import transformer as T
from xinit.blocks import param_specs, walk
from xinit.errors import DefaultsError
from xinit.graph import Graph


@dataclass(frozen=True)
class Block:
    """A block the catalogue describes.

    ``make(in_features, heads, out_features)`` builds its graph from the catalogue's numbers
    (a transformer layer: d_model, nhead, dim_feedforward); ``read(graph)`` gives them back
    from a graph the factory made, as ``{"in": ..., "out": ..., "heads": ...}``; ``layers``
    are the child paths whose parameters are the block's rows, in this order; ``native`` is
    the class name of the frameworks' own block ("" for none: its rows are then its layers'
    own defaults, composed); ``text`` describes it with those numbers.
    """

    name: str
    make: Callable[[int, int, int], Graph]
    read: Callable[[Graph], dict[str, int]]
    layers: tuple[str, ...]
    native: str
    aliases: tuple[str, ...] = ()
    out_per_in: int = 4  # the default out count, per in (dim_feedforward 4·d_model)
    text: str = "{name}(d_model={in}, nhead={heads}, dim_feedforward={out})"

    def graph(self, in_features: int, out_features: int, heads: int) -> Graph:
        """The block's graph with these numbers, with its registered name as its kind."""
        graph = self.make(in_features, heads, out_features)
        if graph.kind != self.name:
            raise DefaultsError(f"block {self.name!r}: its factory made a {graph.kind!r} graph")
        return graph


BLOCKS: dict[str, Block] = {}


def register_block(
    name: str,
    make: Callable[[int, int, int], Graph],
    read: Callable[[Graph], dict[str, int]],
    layers: tuple[str, ...],
    native: str,
    *,
    aliases: tuple[str, ...] = (),
    out_per_in: int = 4,
    text: str = Block.text,
) -> Block:
    """Put block ``name`` into the catalogue (and ``xinit defaults --layer NAME``): its graph
    factory, how to read its numbers back from a graph, and the child layers it shows.
    What a framework's own block of that name adds is ``backends/<framework>/defaults.py``'s
    (``block_rule``, ``block_note``, ``native_block``)."""
    block = Block(name, make, read, tuple(layers), native, tuple(aliases), out_per_in, text)
    BLOCKS[name] = block
    return block


def block_of(graph: Graph) -> tuple[Block, dict[str, int]]:
    """The registered block ``graph`` is and its numbers; a graph made with options the
    catalogue does not describe (no bias, other child names) is refused, not guessed."""
    block = BLOCKS.get(getattr(graph, "kind", None))
    if block is None:
        raise DefaultsError(
            f"the catalogue knows the blocks {tuple(BLOCKS)}; got a {graph.kind!r} graph"
        )
    numbers = block.read(graph)
    want = block_params(block.graph(numbers["in"], numbers["out"], numbers["heads"]))
    have = block_params(graph)
    if tuple(have) != tuple(want):
        label = describe_block(block, numbers)
        raise DefaultsError(
            f"the catalogue has {label} with bias and PyTorch's child names; this "
            f"{graph.kind} has parameters {tuple(param_specs(graph))}"
        )
    return block, numbers


def block_params(graph: Graph) -> dict[str, L.ParamSpec]:
    """Dotted path -> ParamSpec of each parameter the catalogue shows for a block: those of
    its registered child layers, in the registration's order."""
    block = BLOCKS[graph.kind]
    every = param_specs(graph)
    return {
        path: spec
        for child in block.layers
        for path, spec in every.items()
        if path.startswith(f"{child}.")
    }


def describe_block(block: Block, numbers: dict[str, int]) -> str:
    """``transformer_encoder_layer(d_model=512, nhead=8, dim_feedforward=2048)``."""
    return block.text.format(name=block.name, **numbers)


# ---- the transformer layers ----------------------------------------------------------------
def _transformer_numbers(graph: Graph) -> dict[str, int]:
    """d_model and nhead of a transformer graph's first attention, dim_feedforward of its
    first linear layer (a feed-forward's ``linear1``)."""
    found: dict[str, Any] = {}
    for _, node in walk(graph):
        if isinstance(node, L.MultiheadAttention):
            found.setdefault("attention", node)
        elif isinstance(node, L.Linear):
            found.setdefault("linear", node)
    attn, linear = found["attention"], found["linear"]
    return {"in": attn.embed_dim, "out": linear.out_features, "heads": attn.num_heads}


def _transformer(d_model: int, nhead: int, dim_feedforward: int) -> Graph:
    """PyTorch's ``nn.Transformer`` with one encoder and one decoder layer, each stack with
    its final norm (every layer of a stack is alike at init)."""
    encoder_layer = T.TransformerEncoderLayer(d_model, nhead, dim_feedforward)
    decoder_layer = T.TransformerDecoderLayer(d_model, nhead, dim_feedforward)
    encoder = T.TransformerEncoder(encoder_layer, 1, L.LayerNorm(d_model))
    decoder = T.TransformerDecoder(decoder_layer, 1, L.LayerNorm(d_model))
    nodes = [("encoder", encoder, "src"), ("decoder", decoder, ("tgt", "encoder"))]
    return Graph(nodes, inputs=("src", "tgt"), kind="transformer")


_FEED_FORWARD = ("linear1", "linear2")
register_block(
    "transformer_encoder_layer",
    T.TransformerEncoderLayer,
    _transformer_numbers,
    ("self_attn", *_FEED_FORWARD, "norm1", "norm2"),
    "TransformerEncoderLayer",
    aliases=("transformer_encoder", "encoder_layer"),
)
register_block(
    "transformer_decoder_layer",
    T.TransformerDecoderLayer,
    _transformer_numbers,
    ("self_attn", "multihead_attn", *_FEED_FORWARD, "norm1", "norm2", "norm3"),
    "TransformerDecoderLayer",
    aliases=("transformer_decoder", "decoder_layer"),
)
register_block(
    "transformer", _transformer, _transformer_numbers, ("encoder", "decoder"), "Transformer"
)

__all__ = ["Block", "BLOCKS", "register_block", "block_of", "block_params"]

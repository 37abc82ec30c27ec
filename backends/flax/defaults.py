"""What a Flax NNX user's composition of layers gives for a block, and NNX state as numpy.

Each layer kind's default rule and default layer are its lowering's
(``backends/flax/lowerings.py``: ``Lowering.default_rule``, ``native_default``); Flax has no
transformer block of its own, so a block's rows are its layers' (marked as composed here).
``block`` is the catalogue's registration of a block (:class:`xinit.defaults.Block`;
duck-typed, as this module imports nothing of the catalogue, which imports it).
Only :func:`native_state` imports flax, when called.
"""

from __future__ import annotations

import numpy as np

# ---- blocks: transformer layers, composed of the layers above ------------------------------
_NO_BLOCK = (
    "flax.nnx has no transformer layer: each row is what composing nnx.MultiHeadAttention, "
    "nnx.Linear and nnx.LayerNorm gives (named as xinit's Flax build names them)"
)
CHILD_NAMES: dict[str, str] = {}  # no native block: xinit's Flax build names its children
_MODULE = {
    "multihead_attention": "nnx.MultiHeadAttention",
    "linear": "nnx.Linear",
    "layernorm": "nnx.LayerNorm",
}


def block_note(block) -> str:
    """Flax has no block of its own: its rows are a composition of its layers."""
    if not block.name.startswith("transformer"):
        return f"flax.nnx has no {block.name} block: each row is its layer's own default"
    return _NO_BLOCK


def block_rule(block, param: str, kind: str, shape: tuple[int, ...], child: tuple):
    """(initializer, fans, rule in words, source) of ``param`` of a Flax user's composition
    for ``block``: the child's own default ``child`` (the same 4-tuple), marked as composed
    (``kind``: the child's layer kind)."""
    init, fans, rule, source = child
    module = _MODULE.get(kind, "its layer")
    return init, fans, f"composed, {module}: {rule}", f"{block_note(block)}; {source}"


def native_block(block, numbers: dict[str, int], seed: int):
    """Flax has no block of its own: ValueError saying so."""
    raise ValueError(block_note(block))


def native_state(module) -> dict[str, np.ndarray]:
    """An NNX module's flat state (native dotted names and layout) as numpy arrays."""
    from flax import nnx

    out = {}
    for path, leaf in nnx.to_flat_state(nnx.state(module)):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        out[".".join(map(str, path))] = np.asarray(value)
    return out

"""What PaddlePaddle's own blocks do by default beyond their layers, and its state as numpy.

Each layer kind's default rule and default layer are its lowering's
(``backends/paddle/lowerings.py``: ``Lowering.default_rule``, ``native_default``); a block
(a transformer layer) is not a kind, so what Paddle's blocks do lives here. ``block`` is the
catalogue's registration of a block (:class:`xinit.defaults.Block`: ``name``, ``native``;
duck-typed, as this module imports nothing of the catalogue, which imports it).
Only the builders import paddle, when called.
"""

from __future__ import annotations

import numpy as np

# ---- blocks: transformer layers, composed of the layers above ------------------------------
_TRANSFORMER_SOURCE = (
    "python/paddle/nn/layer/transformer.py {}.__init__ (weight_attr=bias_attr=None: "
    "_convert_param_attr_to_list gives each child a ParamAttr without initializer, so each "
    "keeps its own default; nothing re-initialised)"
)
CHILD_NAMES = {"multihead_attn": "cross_attn"}  # the decoder's cross-attention
_BLOCKS = ("transformer_encoder_layer", "transformer_decoder_layer", "transformer")


def block_note(block) -> str:
    """What Paddle's own ``block`` does beyond building its children: nothing."""
    if block.name not in _BLOCKS:
        return f"{block.name}: each layer keeps Paddle's own default (composed)"
    if block.name == "transformer":
        return (
            "nn.Transformer: every layer keeps its children's defaults (no re-initialisation, "
            "unlike torch's nn.Transformer)"
        )
    return (
        f"nn.{block.native}: each child keeps its own default (nothing re-initialised, nor "
        "inside nn.Transformer)"
    )


def block_rule(block, param: str, kind: str, shape: tuple[int, ...], child: tuple):
    """(initializer, fans, rule in words, source) of ``param`` of Paddle's own ``block``:
    its child's own default ``child`` (the same 4-tuple), unchanged."""
    init, fans, rule, source = child
    if block.name not in _BLOCKS:  # no block of Paddle's own: its layers, composed
        return init, fans, rule, source
    return init, fans, rule, f"{_TRANSFORMER_SOURCE.format(block.native)}; {source}"


def native_block(block, numbers: dict[str, int], seed: int):
    """Paddle's own ``block`` with the catalogue's ``numbers`` (d_model ``in``, nhead
    ``heads``, dim_feedforward ``out``) under ``paddle.seed(seed)`` (nn.Transformer with one
    encoder and one decoder layer, every layer alike)."""
    import paddle

    nn = paddle.nn
    paddle.seed(seed)
    e, h, f = numbers["in"], numbers["heads"], numbers["out"]
    if block.name == "transformer":
        return nn.Transformer(e, h, 1, 1, f)
    if block.name not in _BLOCKS:
        raise ValueError(f"paddle.nn has no {block.name} block of its own")
    return getattr(nn, block.native)(e, h, f)


def native_state(module) -> dict[str, np.ndarray]:
    """A Paddle layer's state dict (native names and layout) as numpy arrays."""
    return {name: np.array(t.numpy()) for name, t in module.state_dict().items()}

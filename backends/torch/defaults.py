"""What PyTorch's own blocks do by default beyond their layers, and its state as numpy.

Each layer kind's default rule and default layer are its lowering's
(``backends/torch/lowerings.py``: ``Lowering.default_rule``, ``native_default``); a block
(a transformer layer, :mod:`xinit.transformer`'s graphs) is not a kind, so what
``nn.Transformer`` adds to its children lives here. The defaults catalogue,
:mod:`xinit.defaults`, reads both. ``block`` is the catalogue's registration of a block
(:class:`xinit.defaults.Block`: its ``name`` and the ``native`` class name; duck-typed, as
this module imports nothing of the catalogue, which imports it). Only the builders import
torch, when called.
"""

from __future__ import annotations

import math

import numpy as np

from xinit.fans import Fans
from xinit.initializers import XavierUniform

# ---- blocks: transformer layers, composed of the layers above ------------------------------
_TRANSFORMER_SOURCE = "torch/nn/modules/transformer.py"
_BLOCK_SOURCE = {
    "transformer_encoder_layer": f"{_TRANSFORMER_SOURCE} TransformerEncoderLayer.__init__ "
    "(builds its children, re-initialises nothing)",
    "transformer_decoder_layer": f"{_TRANSFORMER_SOURCE} TransformerDecoderLayer.__init__ "
    "(builds its children, re-initialises nothing)",
    "transformer": f"{_TRANSFORMER_SOURCE} Transformer._reset_parameters (xavier_uniform_ on "
    "every parameter with more than one dim)",
}
CHILD_NAMES: dict[str, str] = {}  # PyTorch's child names are the neutral ones


def block_note(block) -> str:
    """What PyTorch's own block does beyond building its children."""
    if block.name not in _BLOCK_SOURCE:
        return f"{block.name}: each layer keeps PyTorch's own default (composed)"
    if block.name == "transformer":
        return (
            "nn.Transformer._reset_parameters re-draws every parameter with more than one dim "
            "with xavier_uniform_ (its layers alone do not); biases and norms keep the layers' "
            "defaults"
        )
    return (
        f"nn.{block.native}: each child keeps its own default (nothing re-initialised); "
        "inside nn.Transformer every >1-d parameter is re-drawn with xavier_uniform_ "
        "(--layer transformer)"
    )


def block_rule(block, param: str, kind: str, shape: tuple[int, ...], child: tuple):
    """(initializer, fans, rule in words, source) of ``param`` (neutral ``shape``) of
    PyTorch's own ``block``, given its child's own default ``child`` (the same 4-tuple):
    the child's, except that ``nn.Transformer`` re-draws every >1-d parameter with
    ``xavier_uniform_``, whose fans are read from the tensor (the packed (3E, E)
    in_proj_weight: fan_out 3E, as the attention layer's own)."""
    init, fans, rule, source = child
    if block.name == "transformer" and len(shape) > 1:
        receptive = math.prod(shape[2:])  # torch's _calculate_fan_in_and_fan_out
        fans = Fans(shape[1] * receptive, shape[0] * receptive)
        text = (
            f"xavier_uniform_ (nn.Transformer._reset_parameters): fan_in {fans.fan_in}, "
            f"fan_out {fans.fan_out}; the layer alone: {rule}"
        )
        return XavierUniform(), fans, text, _BLOCK_SOURCE[block.name]
    if block.name not in _BLOCK_SOURCE:  # no block of PyTorch's own: its layers, composed
        return init, fans, rule, source
    return init, fans, rule, f"{_BLOCK_SOURCE[block.name]}; {source}"


def native_blocks() -> dict[type, str]:
    """PyTorch's classes that re-initialise their children after building them, by their
    row in the catalogue: a native model's layers read inside one get ``block_rule``."""
    import torch

    return {torch.nn.Transformer: "transformer"}


def native_block(block, numbers: dict[str, int], seed: int):
    """PyTorch's own ``block`` with the catalogue's ``numbers`` (d_model ``in``, nhead
    ``heads``, dim_feedforward ``out``) under ``torch.manual_seed(seed)`` (batch_first: the
    layout does not change the init; nn.Transformer with one encoder and one decoder
    layer, every layer alike)."""
    import torch

    nn = torch.nn
    torch.manual_seed(seed)
    e, h, f = numbers["in"], numbers["heads"], numbers["out"]
    if block.name == "transformer":
        return nn.Transformer(e, h, 1, 1, f, batch_first=True)
    if block.name not in _BLOCK_SOURCE:
        raise ValueError(f"torch.nn has no {block.name} block of its own")
    return getattr(nn, block.native)(e, h, f, batch_first=True)


def native_state(module) -> dict[str, np.ndarray]:
    """A torch module's state dict (native names and layout) as numpy arrays."""
    return {name: t.detach().cpu().numpy() for name, t in module.state_dict().items()}

"""PaddleOCR's ``CTCHead`` (``ppocr/modeling/heads/rec_ctc_head.py``): one Linear ``fc`` (or
``fc1`` then ``fc2`` with ``mid_channels``), weight and bias U(±1/√in) as its
``get_para_bias_attr``; at inference PaddleOCR applies a softmax over the classes, which the
spec includes unless ``softmax=False`` (the logits CTC training takes)."""

from __future__ import annotations

from ...blocks import Sequential
from ...layers import Linear, Softmax
from .._arguments import zoo_model
from ._common import ctc_uniform


def _fc(cin: int, cout: int) -> Linear:
    return Linear(cin, cout, weight_init=ctc_uniform(cin), bias_init=ctc_uniform(cin))


@zoo_model
def ctc_head(
    in_channels: int, out_channels: int, mid_channels: int | None = None, softmax: bool = True
) -> Sequential:
    """(N, T, in_channels) -> (N, T, out_channels): class probabilities (logits without
    ``softmax``); ``out_channels`` counts the characters, the blank and PaddleOCR's space."""
    if mid_channels is None:
        children = [("fc", _fc(in_channels, out_channels))]
    else:
        children = [
            ("fc1", _fc(in_channels, mid_channels)),
            ("fc2", _fc(mid_channels, out_channels)),
        ]
    if softmax:
        children.append(("softmax", Softmax(dim=-1)))
    return Sequential(*children)

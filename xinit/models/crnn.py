"""A PaddleOCR-style CRNN text recogniser: a small VGG-like CNN, PaddleOCR's sequence neck
(``ppocr/modeling/necks/rnn.py``: ``SequenceEncoder`` with ``Im2Seq`` and ``EncoderWithRNN``)
and its CTC head (``ppocr/modeling/heads/rec_ctc_head.py``: ``CTCHead``), with PaddleOCR's
parameter names: ``backbone.*``, ``neck.encoder.lstm.*`` (a 2-layer bidirectional LSTM),
``head.fc.*``.

The backbone is written so that a 32-pixel-high line becomes a sequence: four poolings halve
the height to 2 (the last two keep the width: a character is narrow), and a (2, 3) conv
without vertical padding makes it 1; the width shrinks by 4, so a 32x128 image gives 32
steps. Its blocks are PaddleOCR's ``ConvBNLayer`` (``conv`` without bias, ``bn``, ReLU).
``neck.encoder_reshape`` is ``Im2Seq``, (N, C, 1, W) -> (N, W, C), made of graph ops (no
parameters): a permute to (N, W, C, H) and a flatten of the last two dims, so a backbone whose
height is not 1 gives C·H features, which the LSTM refuses naming the shapes. The head
returns the CTC logits: PaddleOCR's softmax at inference is not part of the spec.
"""

from __future__ import annotations

from ..blocks import Sequential
from ..layers import LSTM, BatchNorm, Conv, Flatten, Linear, MaxPool, Permute, ReLU
from ._arguments import zoo_model

# (out channels, kernel, padding, pool after it) of each ConvBNLayer of the backbone
BACKBONE = (
    (64, 3, 1, (2, 2)),
    (128, 3, 1, (2, 2)),
    (256, 3, 1, None),
    (256, 3, 1, (2, 1)),
    (512, 3, 1, None),
    (512, 3, 1, (2, 1)),
    (512, (2, 3), (0, 1), None),
)


def conv_bn(cin: int, cout: int, kernel, padding) -> Sequential:
    """PaddleOCR's ``ConvBNLayer``: a conv without bias, batch norm, ReLU."""
    return Sequential(
        conv=Conv(cin, cout, kernel, 1, padding, bias=False),
        bn=BatchNorm(cout),
        relu=ReLU(),
    )


def crnn_backbone(in_channels: int = 3, width: float = 1.0) -> Sequential:
    """(N, in_channels, 32, W) -> (N, 512·width, 1, W/4): ``conv1`` .. ``conv7``, pools."""
    children, cin, pools = [], in_channels, 0
    for i, (cout, kernel, padding, pool) in enumerate(BACKBONE, start=1):
        cout = max(1, int(cout * width))
        children.append((f"conv{i}", conv_bn(cin, cout, kernel, padding)))
        if pool is not None:
            pools += 1
            children.append((f"pool{pools}", MaxPool(pool, pool)))
        cin = cout
    return Sequential(*children)


@zoo_model
def crnn(
    num_classes: int = 37,
    in_channels: int = 3,
    hidden_size: int = 256,
    width: float = 1.0,
) -> Sequential:
    """CRNN: ``backbone`` (:func:`crnn_backbone`), ``neck`` (``encoder_reshape``: Im2Seq;
    ``encoder.lstm``: LSTM(C, hidden_size, 2 layers, bidirectional)), ``head.fc`` (the CTC
    Linear, 2·hidden_size -> num_classes: 36 characters and the CTC blank by default).
    ``width`` scales the backbone's channels (a light model for tests). Input (N, C, 32, W)
    gives (N, W/4, num_classes)."""
    backbone = crnn_backbone(in_channels, width)
    channels = max(1, int(BACKBONE[-1][0] * width))
    neck = Sequential(
        encoder_reshape=Sequential(
            transpose=Permute((0, 3, 1, 2)),  # (N, C, 1, W) -> (N, W, C, 1)
            flatten=Flatten(start_dim=2),  # -> (N, W, C)
        ),
        encoder=Sequential(lstm=LSTM(channels, hidden_size, num_layers=2, bidirectional=True)),
    )
    head = Sequential(fc=Linear(2 * hidden_size, num_classes))
    return Sequential(backbone=backbone, neck=neck, head=head)

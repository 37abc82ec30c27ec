"""U-Net (Ronneberger et al.) with padded 3x3 convs, BatchNorm and ReLU, max-pool down,
2x2 transposed-conv up and concatenation skips; named like the common PyTorch U-Net
(``inc.double_conv.0``, ``down1.maxpool_conv.1.double_conv.0``, ``up1.up``,
``up1.conv.double_conv.0``, ``outc.conv``). Inputs need sides divisible by 2**depth (the
skips are concatenated without padding: a mismatch is a SpecError naming the sizes)."""

from __future__ import annotations

from ..blocks import Sequential
from ..graph import Graph
from ..layers import BatchNorm, Concat, Conv, ConvTranspose, MaxPool, ReLU, SpecError
from ._arguments import zoo_model


def double_conv(cin: int, cout: int) -> Sequential:
    return Sequential(
        {
            "double_conv": Sequential(
                Conv(cin, cout, 3, padding=1, bias=False),
                BatchNorm(cout),
                ReLU(),
                Conv(cout, cout, 3, padding=1, bias=False),
                BatchNorm(cout),
                ReLU(),
            )
        }
    )


def up(cin: int, cout: int) -> Graph:
    """``x1`` (deeper) up 2x by a transposed conv, concatenated after the skip ``x2``."""
    return Graph(
        {
            "up": (ConvTranspose(cin, cin // 2, 2, stride=2), "x1"),
            "cat": (Concat(1), ("x2", "up")),
            "conv": (double_conv(cin, cout), "cat"),
        },
        inputs=("x1", "x2"),
    )


@zoo_model
def unet(
    in_channels: int = 3, num_classes: int = 2, base_channels: int = 64, depth: int = 4
) -> Graph:
    if depth < 1:
        raise SpecError(f"unet: depth must be >= 1; got {depth}")
    widths = [base_channels * 2**i for i in range(depth + 1)]
    nodes = [("inc", double_conv(in_channels, widths[0]), "x")]
    for i in range(1, depth + 1):
        down = Sequential(
            {"maxpool_conv": Sequential(MaxPool(2), double_conv(widths[i - 1], widths[i]))}
        )
        nodes.append((f"down{i}", down, nodes[-1][0]))
    skips = ["inc"] + [f"down{i}" for i in range(1, depth)]
    deeper = f"down{depth}"
    for j in range(1, depth + 1):
        cin = widths[depth - j + 1]
        nodes.append((f"up{j}", up(cin, cin // 2), (deeper, skips[-j])))
        deeper = f"up{j}"
    nodes.append(("outc", Sequential({"conv": Conv(widths[0], num_classes, 1)}), deeper))
    return Graph(nodes)

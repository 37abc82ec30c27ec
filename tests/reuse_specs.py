"""Specs whose graphs run a layer again on the same weights (:class:`xinit.Reuse`), shared by
the Reuse tests of the core, the code export and the tracers."""

from __future__ import annotations

from xinit.graph import Graph, Reuse
from xinit.layers import Add, BatchNorm, Conv, LayerNorm, Linear, ReLU


def language() -> Graph:
    """A two-input block with parameters giving two outputs (as ABINet's language model its
    feature and logits): ``feature = norm(proj(x)) + y``, ``logits = out(feature)``."""
    return Graph(
        [
            ("proj", Linear(16, 16), "x"),
            ("norm", LayerNorm(16), "proj"),
            ("mix", Add(), ("norm", "y")),
            ("out", Linear(16, 16), "mix"),
        ],
        inputs=("x", "y"),
        outputs={"feature": "mix", "logits": "out"},
    )


def abinet_like() -> Graph:
    """A sub-graph run three times on the same weights, each time on other inputs."""
    return Graph(
        [
            ("embed", Linear(8, 16), "tokens"),
            ("language", language(), ("embed", "embed")),
            ("act", ReLU(), "language.logits"),
            ("language_2", Reuse("language"), ("act", "embed")),
            ("language_3", Reuse("language"), ("language_2.feature", "act")),
            ("head", Linear(16, 4), "language_3.logits"),
        ],
        inputs="tokens",
    )


def conv_twice() -> Graph:
    """An image graph calling one conv twice around a BatchNorm (Flax: channel-last)."""
    return Graph(
        [
            ("conv", Conv(4, 4, 3, padding=1), "x"),
            ("bn", BatchNorm(4), "conv"),
            ("conv_2", Reuse("conv"), "bn"),
            ("relu", ReLU(), "conv_2"),
            ("add", Add(), ("relu", "x")),
        ]
    )

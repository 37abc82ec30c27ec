"""Dense layers: ``Linear`` and ``Embedding``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..fans import compute_fans
from ..initializers import (
    Initializer,
    Normal,
)
from .base import _TORCH_DEFAULT, Layer, ParamSpec, SpecError, _positive_int


@kinds.layer(
    weight_role="linear",
    params=("weight", "bias"),
    aliases=("dense",),
    channels="in_features",
    example=lambda: kinds.Example(Linear(5, 3), ((2, 5),)),
)
@dataclass(frozen=True)
class Linear(Layer):
    """Fully connected layer on the last dim of (N, ..., in_features): weight (out, in).

    ``conv1d``: the PyTorch build is Hugging Face's ``Conv1D`` (GPT-2's ``c_attn``,
    ``c_proj``, ``c_fc``), which stores the weight (in, out); the neutral weight stays
    (out, in) and Paddle and Flax store (in, out) anyway, so only torch's map differs."""

    kind: ClassVar[str] = "linear"
    in_features: int
    out_features: int
    bias: bool = True
    weight_init: Initializer | None = None
    bias_init: Initializer | None = None
    conv1d: bool = False

    def __post_init__(self):
        _positive_int(self, in_features=self.in_features, out_features=self.out_features)

    def channels(self, c):
        self._take_channels(self.in_features, c)
        return self.out_features

    def _params(self):
        w = (self.out_features, self.in_features)
        fans = compute_fans(w, "linear")
        init = self.weight_init or _TORCH_DEFAULT
        out = [ParamSpec("weight", w, "linear", init, self.kind, fans=fans)]
        if self.bias:
            init = self.bias_init or _TORCH_DEFAULT
            out.append(ParamSpec("bias", (self.out_features,), "vector", init, self.kind, fans))
        return tuple(out)

    def output_shape(self, shape):
        """Applied to the last dim, as ``torch.nn.Linear``: (*, in) -> (*, out)."""
        if len(shape) < 2:
            raise SpecError(f"Linear expects at least a 2-d input (N, ..., {self.in_features})")
        if shape[-1] != self.in_features:
            nd = len(shape) > 2
            raise SpecError(
                f"Linear expects {self.in_features} input features"
                f"{' in the last dim' if nd else ''}; got {shape[-1]} (input shape "
                f"{tuple(shape)}){' (add a Flatten before it?)' if nd else ''}"
            )
        return (*shape[:-1], self.out_features)


@kinds.layer(
    weight_role="embedding",
    params=("weight",),
    aliases=("embed",),
    channel_free=True,
    example=lambda: kinds.Example(Embedding(10, 4), ((2, 5),), ids=10),
)
@dataclass(frozen=True)
class Embedding(Layer):
    """Lookup table (num_embeddings, embedding_dim) on integer input (N, L) -> (N, L, D)."""

    kind: ClassVar[str] = "embedding"
    takes: ClassVar[str] = "ids"
    num_embeddings: int
    embedding_dim: int
    weight_init: Initializer | None = None

    def __post_init__(self):
        _positive_int(self, num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim)

    def channels(self, c):
        return None  # integer ids in, (N, L, D) out: no channel axis to follow

    def _params(self):
        shape = (self.num_embeddings, self.embedding_dim)
        return (ParamSpec("weight", shape, "embedding", self.weight_init or Normal(), self.kind),)

    def output_shape(self, shape):
        return (*shape, self.embedding_dim)

"""One lowering per layer kind for Flax NNX: the native module and its parameter map.

Flax holds kernels channel-last: Linear ``(in, out)``, Conv ``(*k, in/groups, out)``,
ConvTranspose ``(*k, in, out/groups)``; the leaves are ``kernel``, ``scale`` (norms),
``embedding``, and BatchNorm's ``mean``/``var`` (no step counter). Weights are built with a
zero placeholder (``modules.zeros_init``) that xinit overwrites.
"""

from __future__ import annotations

from ..registry import Lowering, Registry


def layout(role: str, ndim: int) -> tuple[int, ...] | None:
    """Flax's layout of each fan role, as a permutation of the neutral (PyTorch) axes."""
    if role == "linear":
        return (1, 0)
    if role == "conv":  # (out, in/g, *k) -> (*k, in/g, out)
        return (*range(2, ndim), 1, 0)
    if role == "conv_transpose":  # (in, out/g, *k) -> (*k, in, out/g)
        return (*range(2, ndim), 0, 1)
    return None


REGISTRY = Registry("flax", layout)


def _nnx():
    from flax import nnx

    return nnx


def _modules():
    from . import modules

    return modules


_KERNEL = {"weight": "kernel"}


@REGISTRY.register("conv")
class Conv(Lowering):
    leaves = _KERNEL

    def build(self, spec, device):
        nnx, zeros = _nnx(), _modules().zeros_init
        return nnx.Conv(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            strides=spec.stride,
            padding=[(p, p) for p in spec.padding],
            kernel_dilation=spec.dilation,
            feature_group_count=spec.groups,
            use_bias=spec.bias,
            kernel_init=zeros,
            bias_init=zeros,
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Conv,)


@REGISTRY.register("conv_transpose")
class ConvTranspose(Lowering):
    leaves = _KERNEL

    def build(self, spec, device):
        return _modules().ConvTranspose(spec)

    def natives(self):
        return (_nnx().ConvTranspose, _modules().ConvTranspose)


@REGISTRY.register("batchnorm")
class BatchNorm(Lowering):
    leaves = {
        "weight": "scale",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    }

    def build(self, spec, device):
        return _modules().BatchNorm(spec)

    def natives(self):
        return (_nnx().BatchNorm, _modules().BatchNorm)


@REGISTRY.register("linear")
class Linear(Lowering):
    leaves = _KERNEL

    def build(self, spec, device):
        nnx, zeros = _nnx(), _modules().zeros_init
        return nnx.Linear(
            spec.in_features,
            spec.out_features,
            use_bias=spec.bias,
            kernel_init=zeros,
            bias_init=zeros,
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Linear,)


@REGISTRY.register("embedding")
class Embedding(Lowering):
    leaves = {"weight": "embedding"}

    def build(self, spec, device):
        m = _modules()
        rngs = _nnx().Rngs(0)
        return m.Embed(
            spec.num_embeddings, spec.embedding_dim, embedding_init=m.zeros_init, rngs=rngs
        )

    def natives(self):
        return (_nnx().Embed,)


@REGISTRY.register("max_pool")
class MaxPool(Lowering):
    def build(self, spec, device):
        return _modules().Pool(spec)


@REGISTRY.register("avg_pool")
class AvgPool(Lowering):
    def build(self, spec, device):
        return _modules().Pool(spec)


@REGISTRY.register("adaptive_avg_pool")
class AdaptiveAvgPool(Lowering):
    def build(self, spec, device):
        return _modules().AdaptiveAvgPool(spec)


@REGISTRY.register("flatten")
class Flatten(Lowering):
    def build(self, spec, device):
        return _modules().Flatten()


@REGISTRY.register("dropout")
class Dropout(Lowering):
    def build(self, spec, device):
        nnx = _nnx()
        return nnx.Dropout(spec.p, rngs=nnx.Rngs(dropout=0))


@REGISTRY.register("layernorm")
class LayerNorm(Lowering):
    leaves = {"weight": "scale"}

    def natives(self):
        return (_nnx().LayerNorm,)


@REGISTRY.register("groupnorm")
class GroupNorm(Lowering):
    leaves = {"weight": "scale"}

    def natives(self):
        return (_nnx().GroupNorm,)


# Element-wise activations: one module type, the function chosen by the spec's kind.
for _kind in ("relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "identity"):

    @REGISTRY.register(_kind)
    class Activation(Lowering):
        def build(self, spec, device):
            return _modules().Activation(spec)

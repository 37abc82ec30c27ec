"""One lowering per layer kind for PyTorch: the native ``torch.nn`` module and its parameter map.

PyTorch's names and layouts are the neutral ones, so every map is the identity and most
lowerings only build. The adapter builds on the meta device (no memory, no default init);
xinit draws every parameter once afterwards.
"""

from __future__ import annotations

from xinit import layers as L
from xinit.parammap import Leaf

from ..common.recurrent import register_recurrent
from ..registry import Lowering, Registry, register_builders

REGISTRY = Registry("torch")


def _nn():
    import torch

    return torch.nn


@REGISTRY.register("conv")
class Conv(Lowering):
    def build(self, spec, device):
        cls = (_nn().Conv1d, _nn().Conv2d, _nn().Conv3d)[spec.dims - 1]
        return cls(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.dilation,
            spec.groups,
            spec.bias,
        )

    def natives(self):
        return (_nn().modules.conv._ConvNd,)

    def read(self, m):
        padding = m.padding if isinstance(m.padding, tuple) else 0  # "same"/"valid": not read
        return L.Conv(
            m.in_channels,
            m.out_channels,
            tuple(m.kernel_size),
            tuple(m.stride),
            padding,
            tuple(m.dilation),
            m.groups,
            m.bias is not None,
        )


@REGISTRY.register("conv_transpose")
class ConvTranspose(Lowering):
    def build(self, spec, device):
        nn = _nn()
        cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[spec.dims - 1]
        return cls(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            spec.stride,
            spec.padding,
            spec.output_padding,
            spec.groups,
            spec.bias,
            spec.dilation,
        )

    def natives(self):
        return (_nn().modules.conv._ConvTransposeNd,)

    def read(self, m):
        return L.ConvTranspose(
            m.in_channels,
            m.out_channels,
            tuple(m.kernel_size),
            tuple(m.stride),
            tuple(m.padding),
            tuple(m.dilation),
            m.groups,
            m.bias is not None,
            output_padding=tuple(m.output_padding),
        )


@REGISTRY.register("batchnorm")
class BatchNorm(Lowering):
    def build(self, spec, device):
        cls = (_nn().BatchNorm1d, _nn().BatchNorm2d, _nn().BatchNorm3d)[spec.dims - 1]
        return cls(spec.num_features, spec.eps, spec.momentum, spec.affine)

    def natives(self):
        return (_nn().modules.batchnorm._BatchNorm,)

    def read(self, m):
        dims = {"BatchNorm1d": 1, "BatchNorm3d": 3}.get(type(m).__name__, 2)
        momentum = 0.1 if m.momentum is None else m.momentum  # None: cumulative average
        return L.BatchNorm(m.num_features, m.eps, momentum, m.affine, dims)


@REGISTRY.register("linear")
class Linear(Lowering):
    """``nn.Linear``; a ``conv1d`` spec is Hugging Face's ``Conv1D`` layout, weight (in, out)."""

    def params(self, spec):
        out = super().params(spec)
        if spec.conv1d:
            out["weight"] = (Leaf("weight", (1, 0)),)
        return out

    def build(self, spec, device):
        if spec.conv1d:
            return _torch_modules().Conv1D(spec.in_features, spec.out_features, spec.bias)
        return _nn().Linear(spec.in_features, spec.out_features, spec.bias)

    def natives(self):
        return (_nn().Linear, _torch_modules().Conv1D)

    def read(self, m):
        if isinstance(m, _torch_modules().Conv1D):
            n_in, n_out = m.weight.shape
            return L.Linear(n_in, n_out, m.bias is not None, conv1d=True)
        return L.Linear(m.in_features, m.out_features, m.bias is not None)


@REGISTRY.register("embedding")
class Embedding(Lowering):
    def build(self, spec, device):
        return _nn().Embedding(spec.num_embeddings, spec.embedding_dim)

    def natives(self):
        return (_nn().Embedding,)

    def read(self, m):
        return L.Embedding(m.num_embeddings, m.embedding_dim)


@REGISTRY.register("max_pool")
class MaxPool(Lowering):
    def build(self, spec, device):
        cls = (_nn().MaxPool1d, _nn().MaxPool2d, _nn().MaxPool3d)[spec.dims - 1]
        return cls(spec.kernel_size, spec.stride, spec.padding, ceil_mode=spec.ceil_mode)


@REGISTRY.register("avg_pool")
class AvgPool(Lowering):
    def build(self, spec, device):
        cls = (_nn().AvgPool1d, _nn().AvgPool2d, _nn().AvgPool3d)[spec.dims - 1]
        return cls(
            spec.kernel_size,
            spec.stride,
            spec.padding,
            ceil_mode=spec.ceil_mode,
            count_include_pad=spec.count_include_pad,
        )


@REGISTRY.register("adaptive_avg_pool")
class AdaptiveAvgPool(Lowering):
    def build(self, spec, device):
        nn = _nn()
        cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[spec.dims - 1]
        return cls(spec.output_size)


@REGISTRY.register("layernorm")
class LayerNorm(Lowering):
    def build(self, spec, device):
        return _nn().LayerNorm(
            spec.normalized_shape, spec.eps, spec.elementwise_affine, bias=spec.bias
        )

    def natives(self):
        return (_nn().LayerNorm,)

    def read(self, m):
        affine = m.elementwise_affine
        bias = m.bias is not None if affine else True
        return L.LayerNorm(tuple(m.normalized_shape), m.eps, affine, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(Lowering):
    def build(self, spec, device):
        return _nn().RMSNorm(spec.normalized_shape, spec.eps, spec.elementwise_affine)

    def natives(self):
        return (_nn().RMSNorm,)

    def read(self, m):
        return L.RMSNorm(tuple(m.normalized_shape), m.eps, m.elementwise_affine)


@REGISTRY.register("groupnorm")
class GroupNorm(Lowering):
    def build(self, spec, device):
        return _nn().GroupNorm(spec.num_groups, spec.num_channels, spec.eps, spec.affine)

    def natives(self):
        return (_nn().GroupNorm,)

    def read(self, m):
        return L.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine)


@REGISTRY.register("multihead_attention")
class MultiheadAttention(Lowering):
    def build(self, spec, device):
        return _torch_modules().Attention(spec)

    def natives(self):
        return (_nn().MultiheadAttention,)

    def read(self, m):
        if m.bias_k is not None or m.add_zero_attn:  # extra key/value rows: no neutral spec
            return None
        bias = m.in_proj_bias is not None
        return L.MultiheadAttention(m.embed_dim, m.num_heads, bias, kdim=m.kdim, vdim=m.vdim)


@REGISTRY.register("sdpa")
class ScaledDotProductAttention(Lowering):
    def build(self, spec, device):
        return _torch_modules().ScaledDotProductAttention(spec.num_heads, spec.causal)


@REGISTRY.register("learned_parameter")
class LearnedParameter(Lowering):
    """The native layer is the ``nn.Parameter`` itself: the enclosing container registers
    it under the node's name (the state-dict key ``cls_token``) and applies ``op``."""

    def build(self, spec, device):
        return _torch_modules().learned_parameter(spec)


def one_bias_refused(spec, framework: str, module: str) -> None:
    """TypeError for a one-bias recurrent spec (read from a Flax cell): ``module`` keeps both
    biases of every gate or none."""
    if isinstance(spec.bias, str):
        raise TypeError(
            f"{framework} cannot build {spec!r}: {module} keeps both biases or none, and "
            f"bias={spec.bias!r} keeps one (a spec read from one of Flax's own cells)"
        )


class _Recurrent(Lowering):
    """``nn.LSTM``/``nn.GRU``, batch first, returning the output sequence alone; PyTorch's
    names and layout are the neutral ones."""

    native_name: str = ""

    def build(self, spec, device):
        one_bias_refused(spec, "torch", f"nn.{self.native_name}")
        cls = getattr(_torch_modules(), self.native_name)
        return cls(
            spec.input_size, spec.hidden_size, spec.num_layers, spec.bias, spec.bidirectional
        )

    def natives(self):
        return (getattr(_nn(), self.native_name),)

    def read(self, m):
        if getattr(m, "proj_size", 0):  # LSTM projections (weight_hr_l{k}): not this map
            return None
        spec = getattr(L, self.native_name)
        return spec(m.input_size, m.hidden_size, m.num_layers, m.bias, m.bidirectional)


LSTM, GRU = register_recurrent(REGISTRY, _Recurrent)


def _torch_modules():
    from . import modules

    return modules


def _merge(spec):
    return _torch_modules().Merge(spec)


def _upsample(spec):
    align = spec.align_corners if spec.mode == "bilinear" else None
    return _nn().Upsample(spec.size, spec.scale_factor, spec.mode, align)


# Parameter-free layers: the native module from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        "relu": lambda s: _nn().ReLU(),
        "leaky_relu": lambda s: _nn().LeakyReLU(s.negative_slope),
        "gelu": lambda s: _nn().GELU(approximate=s.approximate),
        "silu": lambda s: _nn().SiLU(),
        "sigmoid": lambda s: _nn().Sigmoid(),
        "tanh": lambda s: _nn().Tanh(),
        "identity": lambda s: _nn().Identity(),
        "flatten": lambda s: _nn().Flatten(s.start_dim, s.end_dim),
        "reshape": lambda s: _torch_modules().Reshape(s.shape),
        "permute": lambda s: _torch_modules().Permute(s.dims),
        "dropout": lambda s: _nn().Dropout(s.p),
        "add": _merge,
        "mul": _merge,
        "concat": _merge,
        "upsample": _upsample,
        "select": lambda s: _torch_modules().Select(s.dim, s.index),
        "position_ids": lambda s: _torch_modules().PositionIds(),
    },
)

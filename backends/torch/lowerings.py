"""One lowering per layer kind for PyTorch: the native ``torch.nn`` module and its parameter map.

PyTorch's names and layouts are the neutral ones, so every map is the identity and most
lowerings only build. The adapter builds on the meta device (no memory, no default init);
xinit draws every parameter once afterwards.
"""

from __future__ import annotations

import math

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import (
    Constant,
    KaimingUniform,
    Normal,
    Ones,
    Uniform,
    XavierUniform,
    Zeros,
)
from xinit.parammap import Leaf

from ..common.recurrent import recurrent_keywords, register_recurrent
from ..common.window_attention import NO_WINDOW_ATTENTION
from ..registry import (
    BARE_PARAMETER,
    NO_LAYER_SCALE,
    Lowering,
    Registry,
    param_of,
    register_builders,
)
from .op_lowerings import ACTIVATIONS as ACTIVATIONS  # re-exported: the activation table
from .op_lowerings import BUILDERS
from .op_lowerings import FUNCTIONS as FUNCTIONS  # re-exported: the functional ops

REGISTRY = Registry("torch")


def _nn():
    import torch

    return torch.nn


def _seeded(seed: int):
    """``torch.nn`` after ``torch.manual_seed(seed)``: a default layer made next is seeded."""
    import torch

    torch.manual_seed(seed)
    return torch.nn


_SQRT5 = math.sqrt(5.0)
_NORM_SOURCE = "torch/nn/modules/normalization.py"


class _FanBased(Lowering):
    """Linear and convolutions: ``reset_parameters`` draws the weight kaiming_uniform_(a=√5)
    = U(±1/√fan_in) and the bias U(±1/√fan_in), fans read from the neutral weight."""

    fan_text = ""
    source = ""

    def default_rule(self, spec, param):
        fans = param_of(spec, "weight").fans
        if param == "weight":
            text = f"kaiming_uniform_(a=√5) = U(±1/√fan_in), {self.fan_text}"
            return KaimingUniform(a=_SQRT5), fans, text, self.source
        bound = 1.0 / math.sqrt(fans.fan_in)
        text = f"U(±1/√fan_in) with the weight's {self.fan_text}"
        return Uniform(-bound, bound), fans, text, self.source


class _Norm(Lowering):
    """Norm layers: weight (and running variance) ones, bias (and running mean) zeros."""

    source = _NORM_SOURCE

    def default_rule(self, spec, param):
        if param in ("weight", "running_var"):
            return Ones(), None, "ones", self.source
        return Zeros(), None, "zeros", self.source


@REGISTRY.register("conv")
class Conv(_FanBased):
    fan_text = "fan_in = (C_in/g)·∏k"
    source = "torch/nn/modules/conv.py _ConvNd.reset_parameters"
    native_prefix = "Conv"  # Conv1d, Conv2d, Conv3d

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"{self.native_prefix}{spec.dims}d")
        return cls(spec.in_channels, spec.out_channels, spec.kernel_size, groups=spec.groups)

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
class ConvTranspose(_FanBased):
    fan_text = "fan_in = (C_out/g)·∏k"
    source = "torch/nn/modules/conv.py _ConvNd.reset_parameters"
    native_prefix = "ConvTranspose"
    native_default = Conv.native_default

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
class BatchNorm(_Norm):
    source = "torch/nn/modules/batchnorm.py"

    def native_default(self, spec, seed):
        return _seeded(seed).BatchNorm2d(spec.num_features)

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
class Linear(_FanBased):
    """``nn.Linear``; a ``conv1d`` spec is Hugging Face's ``Conv1D`` layout, weight (in, out)."""

    fan_text = "fan_in = in"
    source = "torch/nn/modules/linear.py Linear.reset_parameters"

    def native_default(self, spec, seed):
        return _seeded(seed).Linear(spec.in_features, spec.out_features)

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
    def default_rule(self, spec, param):
        return Normal(0.0, 1.0), None, "normal_(0, 1)", "torch/nn/modules/sparse.py"

    def native_default(self, spec, seed):
        return _seeded(seed).Embedding(spec.num_embeddings, spec.embedding_dim)

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
class LayerNorm(_Norm):
    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(math.prod(spec.normalized_shape))

    def build(self, spec, device):
        return _nn().LayerNorm(
            spec.normalized_shape, spec.eps, spec.elementwise_affine, bias=spec.bias
        )

    def natives(self):
        return (_nn().LayerNorm,)

    def read(self, m):
        if type(m).__name__ == "LayerNorm2d" and len(m.normalized_shape) == 1:
            return channels_first_layernorm(m)  # timm's, torchvision's: over axis 1 (NCHW)
        affine = m.elementwise_affine
        bias = m.bias is not None if affine else True
        return L.LayerNorm(tuple(m.normalized_shape), m.eps, affine, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(_Norm):
    source = f"{_NORM_SOURCE} RMSNorm.reset_parameters"

    def native_default(self, spec, seed):
        return _seeded(seed).RMSNorm(math.prod(spec.normalized_shape))

    def build(self, spec, device):
        return _nn().RMSNorm(spec.normalized_shape, spec.eps, spec.elementwise_affine)

    def natives(self):
        return (_nn().RMSNorm,)

    def read(self, m):
        return L.RMSNorm(tuple(m.normalized_shape), m.eps, m.elementwise_affine)


@REGISTRY.register("groupnorm")
class GroupNorm(_Norm):
    def native_default(self, spec, seed):
        return _seeded(seed).GroupNorm(spec.num_groups, spec.num_channels)

    def build(self, spec, device):
        return _nn().GroupNorm(spec.num_groups, spec.num_channels, spec.eps, spec.affine)

    def natives(self):
        return (_nn().GroupNorm,)

    def read(self, m):
        return L.GroupNorm(m.num_groups, m.num_channels, m.eps, m.affine)


# ---- per-sample norms and per-channel learned layers (InstanceNorm, LayerNorm2d, PReLU,
# LayerScale): one block, kept together
@REGISTRY.register("instancenorm")
class InstanceNorm(_Norm):
    source = "torch/nn/modules/instancenorm.py (_NormBase.reset_parameters)"

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"InstanceNorm{spec.dims}d")
        return cls(spec.num_features, affine=spec.affine)

    def build(self, spec, device):
        nn = _nn()
        cls = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)[spec.dims - 1]
        return cls(
            spec.num_features, spec.eps, spec.momentum, spec.affine, spec.track_running_stats
        )

    def natives(self):
        return (_nn().modules.instancenorm._InstanceNorm,)

    def read(self, m):
        dims = {"InstanceNorm1d": 1, "InstanceNorm3d": 3}.get(type(m).__name__, 2)
        momentum = 0.1 if m.momentum is None else m.momentum
        return L.InstanceNorm(
            m.num_features, m.eps, momentum, m.affine, m.track_running_stats, dims
        )


@REGISTRY.register("layernorm2d")
class LayerNorm2d(_Norm):
    """xinit's ``LayerNorm2d`` (an ``nn.LayerNorm`` over axis 1, as timm's and torchvision's,
    which are read as this kind by ``LayerNorm.read``); its default is ``nn.LayerNorm``'s."""

    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(spec.num_channels)

    def build(self, spec, device):
        return _torch_modules().LayerNorm2d(spec)

    def natives(self):
        return (_torch_modules().LayerNorm2d,)

    def read(self, m):
        return channels_first_layernorm(m)


def channels_first_layernorm(m):
    """The LayerNorm2d spec of an ``nn.LayerNorm`` subclass that normalises axis 1."""
    (c,) = m.normalized_shape
    affine = m.elementwise_affine
    return L.LayerNorm2d(c, m.eps, affine, m.bias is not None if affine else True)


@REGISTRY.register("prelu")
class PReLU(Lowering):
    def default_rule(self, spec, param):
        text = "constant_(init=0.25), one slope or one per channel"
        return Constant(0.25), None, text, "torch/nn/modules/activation.py PReLU"

    def native_default(self, spec, seed):
        return _seeded(seed).PReLU(spec.num_parameters)

    def build(self, spec, device):
        return _nn().PReLU(spec.num_parameters, spec.init)

    def natives(self):
        return (_nn().PReLU,)

    def read(self, m):
        return L.PReLU(m.num_parameters, float(m.init))


@REGISTRY.register("layer_scale")
class LayerScale(Lowering):
    def default_missing(self, spec):
        return NO_LAYER_SCALE

    def build(self, spec, device):
        return _torch_modules().LayerScale(spec)

    def natives(self):
        return (_torch_modules().LayerScale,)

    def read(self, m):
        return m.spec


@REGISTRY.register("window_attention")
class WindowAttention(Lowering):
    """xinit's module of torchvision's ``ShiftedWindowAttention``, with its names and its
    ``relative_position_index`` buffer."""

    module = "WindowAttention"

    def default_missing(self, spec):
        return NO_WINDOW_ATTENTION

    def build(self, spec, device):
        return getattr(_torch_modules(), self.module)(spec)

    def natives(self):
        return (getattr(_torch_modules(), self.module),)

    def read(self, m):
        return m.spec


@REGISTRY.register("window_attention_v2")
class WindowAttentionV2(WindowAttention):
    """``ShiftedWindowAttentionV2``'s: ``logit_scale``, ``cpb_mlp`` and both buffers."""

    module = "WindowAttentionV2"


_MHA_SOURCE = "torch/nn/modules/activation.py MultiheadAttention._reset_parameters"


@REGISTRY.register("multihead_attention")
class MultiheadAttention(Lowering):
    def default_missing(self, spec):
        if spec.num_kv_heads is not None:
            note = "torch.nn has no grouped-query attention layer (num_kv_heads)"
            return note, "torch/nn/modules/activation.py MultiheadAttention (no num_kv_heads)"
        return None

    def default_rule(self, spec, param):
        """``nn.MultiheadAttention``: Xavier on the packed (3E, E) matrix, so fan_out is 3E
        (with kdim/vdim != E: on each separate (E, in) projection); ``out_proj`` is a Linear
        (NonDynamicallyQuantizableLinear) whose bias ``_reset_parameters`` then zeroes."""
        e = spec.embed_dim
        if param == "in_proj_weight":
            text = "xavier_uniform_ on the packed (3E, E): fan_in E, fan_out 3E: U(±√(6/4E))"
            return XavierUniform(), Fans(e, 3 * e), text, _MHA_SOURCE
        if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
            n = param_of(spec, param).shape[1]
            text = f"xavier_uniform_ on the separate (E, {n}) {param}: U(±√(6/(E+{n})))"
            return XavierUniform(), Fans(n, e), text, _MHA_SOURCE
        if param == "out_proj.weight":
            text = "kaiming_uniform_(a=√5) = U(±1/√E) (out_proj: Linear(E, E).reset_parameters)"
            linear = "torch/nn/modules/linear.py Linear"
            return KaimingUniform(a=_SQRT5), Fans(e, e), text, linear
        if param == "out_proj.bias":
            return Zeros(), None, "constant_(0), replacing Linear's U(±1/√E)", _MHA_SOURCE
        return Zeros(), None, "constant_(0)", _MHA_SOURCE

    def native_default(self, spec, seed):
        e, kdim, vdim = spec.embed_dim, spec.kdim or spec.embed_dim, spec.vdim or spec.embed_dim
        return _seeded(seed).MultiheadAttention(e, spec.num_heads, kdim=kdim, vdim=vdim)

    def build(self, spec, device):
        if spec.num_kv_heads is not None:
            return _torch_modules().GroupedQueryAttention(spec)
        return _torch_modules().Attention(spec)

    def natives(self):
        return (_nn().MultiheadAttention, _torch_modules().GroupedQueryAttention)

    def read(self, m):
        if isinstance(m, _torch_modules().GroupedQueryAttention):
            return m.spec
        if m.bias_k is not None or m.add_zero_attn:  # extra key/value rows: no neutral spec
            return None
        bias = m.in_proj_bias is not None
        return L.MultiheadAttention(m.embed_dim, m.num_heads, bias, kdim=m.kdim, vdim=m.vdim)


@REGISTRY.register("sdpa")
class ScaledDotProductAttention(Lowering):
    def build(self, spec, device):
        return _torch_modules().ScaledDotProductAttention(
            spec.num_heads, spec.causal, spec.window_mask()
        )


@REGISTRY.register("learned_parameter")
class LearnedParameter(Lowering):
    """The native layer is the ``nn.Parameter`` itself: the enclosing container registers
    it under the node's name (the state-dict key ``cls_token``) and applies ``op``."""

    def build(self, spec, device):
        return _torch_modules().learned_parameter(spec)

    def default_missing(self, spec):
        return BARE_PARAMETER


@REGISTRY.register("learned_tensor")
class LearnedTensor(LearnedParameter):
    """The ``nn.Parameter`` itself, on the enclosing container under the node's name (state
    key ``scale``), which hands the tensor on as the node's value (``op = "tensor"``)."""


def one_bias_refused(spec, framework: str, module: str) -> None:
    """TypeError for a one-bias recurrent spec (read from a Flax cell): ``module`` keeps both
    biases of every gate or none."""
    if isinstance(spec.bias, str):
        raise TypeError(
            f"{framework} cannot build {spec!r}: {module} keeps both biases or none, and "
            f"bias={spec.bias!r} keeps one (a spec read from one of Flax's own cells)"
        )


class _Recurrent(Lowering):
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` (tanh or relu), batch first, returning the output
    sequence alone; PyTorch's names and layout are the neutral ones."""

    native_name: str = ""

    def default_rule(self, spec, param):
        bound = 1.0 / math.sqrt(spec.hidden_size)
        text = "uniform_(-1/√H, 1/√H), H = hidden_size, on every weight and bias"
        return (
            Uniform(-bound, bound),
            None,
            text,
            "torch/nn/modules/rnn.py RNNBase.reset_parameters",
        )

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), self.native_name)
        return cls(spec.input_size, spec.hidden_size, **recurrent_keywords(spec))

    def build(self, spec, device):
        one_bias_refused(spec, "torch", f"nn.{self.native_name}")
        cls = getattr(_torch_modules(), self.native_name)
        shape = (spec.input_size, spec.hidden_size, spec.num_layers, spec.bias, spec.bidirectional)
        return cls(*shape, **recurrent_keywords(spec))

    def natives(self):
        return (getattr(_nn(), self.native_name),)

    def read(self, m):
        spec = getattr(L, self.native_name)
        shape = (m.input_size, m.hidden_size, m.num_layers, m.bias, m.bidirectional)
        if isinstance(m, _nn().RNN):
            return spec(*shape, nonlinearity=m.nonlinearity)
        if isinstance(m, _nn().LSTM):
            return spec(*shape, proj_size=m.proj_size)
        return spec(*shape)


LSTM, GRU, RNN = register_recurrent(REGISTRY, _Recurrent)


def _torch_modules():
    from . import modules

    return modules


# Parameter-free layers (op_lowerings.py): the native module from the spec, nothing else.
register_builders(REGISTRY, BUILDERS)
